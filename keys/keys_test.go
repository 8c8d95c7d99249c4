package keys_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/mxidp/mxidp/keys"
	"github.com/mxidp/mxidp/storage"
	"github.com/mxidp/mxidp/storage/storagetest"
)

type clock struct{ unix atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.unix.Store(time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC).Unix())
	return c
}
func (c *clock) Now() time.Time          { return time.Unix(c.unix.Load(), 0) }
func (c *clock) Advance(d time.Duration) { c.unix.Add(int64(d / time.Second)) }

func sealer(t *testing.T, secret string) *keys.Sealer {
	t.Helper()
	s, err := keys.NewSealer([]byte(secret), "signing keys")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const secretA = "0123456789abcdef0123456789abcdef-instance-a"

func TestSealerOpensOnlyWhatItSealedForTheSameContext(t *testing.T) {
	s := sealer(t, secretA)
	sealed := s.Seal([]byte("private key"), []byte("kid-1"))
	if bytes.Contains(sealed, []byte("private key")) {
		t.Fatal("sealed value contains the plaintext")
	}
	if got, err := s.Open(sealed, []byte("kid-1")); err != nil || string(got) != "private key" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	tampered := append([]byte{}, sealed...)
	tampered[len(tampered)-1] ^= 1
	other := sealer(t, "another secret of at least thirty-two bytes")
	otherPurpose, _ := keys.NewSealer([]byte(secretA), "cookies")
	for name, open := range map[string]func() ([]byte, error){
		"other context": func() ([]byte, error) { return s.Open(sealed, []byte("kid-2")) },
		"tampered":      func() ([]byte, error) { return s.Open(tampered, []byte("kid-1")) },
		"other secret":  func() ([]byte, error) { return other.Open(sealed, []byte("kid-1")) },
		"other purpose": func() ([]byte, error) { return otherPurpose.Open(sealed, []byte("kid-1")) },
		"truncated":     func() ([]byte, error) { return s.Open(sealed[:5], []byte("kid-1")) },
	} {
		if _, err := open(); !errors.Is(err, keys.ErrUnseal) {
			t.Errorf("%s: err = %v, want ErrUnseal", name, err)
		}
	}
}

func TestSecretFileIsCreatedOncePrivatelyAndValidated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "secret.key")
	first, created, err := keys.LoadOrCreateSecret(path)
	if err != nil || !created || len(first) != 64 {
		t.Fatalf("first LoadOrCreateSecret = %d bytes, created %v, %v", len(first), created, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	again, created, err := keys.LoadOrCreateSecret(path)
	if err != nil || created || !bytes.Equal(again, first) {
		t.Fatalf("second LoadOrCreateSecret changed the secret (created %v, %v)", created, err)
	}
	short := filepath.Join(t.TempDir(), "short.key")
	os.WriteFile(short, []byte("too short\n"), 0o600)
	if _, _, err := keys.LoadOrCreateSecret(short); err == nil || !strings.Contains(err.Error(), "openssl rand -hex 32") {
		t.Errorf("short secret: err = %v, want a message with the fix", err)
	}
}

type fixture struct {
	store *storage.Store
	clock *clock
	cfg   keys.Config
}

func (f fixture) ring(secret string) *keys.Ring {
	return keys.NewRing(f.store, sealerOrNil(secret), f.cfg)
}

func sealerOrNil(secret string) *keys.Sealer {
	if secret == "" {
		return nil
	}
	s, _ := keys.NewSealer([]byte(secret), "signing keys")
	return s
}

// forEachBackend runs a ring test on SQLite and on PostgreSQL.
func forEachBackend(t *testing.T, test func(t *testing.T, f fixture)) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			clk := newClock()
			f := fixture{
				store: storagetest.Open(t, backend, storage.Options{}),
				clock: clk,
				cfg:   keys.Config{PublicationDelay: 10 * time.Minute, Retention: time.Hour, RotationPeriod: 24 * time.Hour, Now: clk.Now},
			}
			test(t, f)
		})
	}
}

// jwksKIDs returns the key IDs the ring publishes, in order, checking
// that each is a public signing key of one of the ring's algorithms, of
// the key type that algorithm needs.
func jwksKIDs(t *testing.T, r *keys.Ring) []string {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(r.JWKS(), &set); err != nil {
		t.Fatalf("JWKS is not a key set: %v", err)
	}
	var ids []string
	for _, k := range set.Keys {
		if k.Use != "sig" || !slices.Contains(keys.Algorithms, k.Algorithm) || !k.IsPublic() {
			t.Errorf("published key %s: use %q alg %q public %v", k.KeyID, k.Use, k.Algorithm, k.IsPublic())
		}
		if got := keyType(k.Key); got != k.Algorithm {
			t.Errorf("published key %s says alg %s but is a key for %s", k.KeyID, k.Algorithm, got)
		}
		ids = append(ids, k.KeyID)
	}
	return ids
}

// keyType names the algorithm a public key is for.
func keyType(pub any) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() >= 2048 {
			return keys.RS256
		}
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return keys.ES256
		}
	case ed25519.PublicKey:
		return keys.EdDSA
	}
	return fmt.Sprintf("%T", pub)
}

// signingKIDs returns the kid that signs now, per algorithm.
func signingKIDs(t *testing.T, r *keys.Ring) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, alg := range keys.Algorithms {
		k, err := r.SigningKeyFor(alg)
		if err != nil {
			t.Fatalf("no %s signing key: %v", alg, err)
		}
		if k.Algorithm != alg || k.State != keys.Active {
			t.Errorf("SigningKeyFor(%s) = %s key in state %s", alg, k.Algorithm, k.State)
		}
		out[alg] = k.ID
	}
	return out
}

func TestEnsureMakesOneKeyPerAlgorithmAcrossInstances(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f fixture) {
		ctx := context.Background()
		rings := []*keys.Ring{f.ring(secretA), f.ring(secretA), f.ring(secretA)}
		var wg sync.WaitGroup
		for _, r := range rings {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := r.Ensure(ctx); err != nil {
					t.Errorf("Ensure: %v", err)
				}
			}()
		}
		wg.Wait()
		first := signingKIDs(t, rings[0])
		for i, r := range rings {
			if err := r.Load(ctx); err != nil {
				t.Fatal(err)
			}
			if got := signingKIDs(t, r); !maps.Equal(got, first) {
				t.Errorf("instance %d signs with %v, instance 0 with %v", i, got, first)
			}
			if err := r.SigningKeyReady(); err != nil {
				t.Errorf("instance %d not ready: %v", i, err)
			}
		}
		ks := rings[0].Keys()
		if len(ks) != len(keys.Algorithms) {
			t.Errorf("three instances starting together made %d keys, want one per algorithm (%d)", len(ks), len(keys.Algorithms))
		}
		for _, k := range ks {
			if k.State != keys.Active || k.Signer() == nil || first[k.Algorithm] != k.ID {
				t.Errorf("key %s (%s) is %s, signer %v", k.ID, k.Algorithm, k.State, k.Signer() != nil)
			}
		}
		if got := jwksKIDs(t, rings[1]); len(got) != len(keys.Algorithms) {
			t.Errorf("the JWKS holds %v, want every algorithm's key", got)
		}
		// The default is RS256.
		if k, _ := rings[0].SigningKey(); k.Algorithm != keys.RS256 || k.ID != first[keys.RS256] {
			t.Errorf("SigningKey() = %s %s, want the RS256 key", k.Algorithm, k.ID)
		}
		// A restart finds the same keys.
		restarted := f.ring(secretA)
		if err := restarted.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		if got := signingKIDs(t, restarted); !maps.Equal(got, first) {
			t.Errorf("after restart the signing keys are %v, want %v", got, first)
		}
		if n := len(restarted.Keys()); n != len(keys.Algorithms) {
			t.Errorf("a restart made keys: %d now", n)
		}
	})
}

// A ring made before mxidp offered ES256 and EdDSA holds one RS256 key,
// as the old Ensure made it. Ensure gives it the other algorithms' keys,
// signing at once (no relying party can be using them yet), and leaves
// the RS256 key alone.
func TestRSAOnlyRingGainsTheOtherAlgorithmsSigningAtOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f fixture) {
		ctx := context.Background()
		old := f.ring(secretA)
		if err := old.Load(ctx); err != nil {
			t.Fatal(err)
		}
		made, err := old.Rotate(ctx, true, keys.RS256)
		if err != nil || len(made) != 1 || made[0].Algorithm != keys.RS256 || made[0].State != keys.Active {
			t.Fatalf("making the RS256-only ring: %+v, %v", made, err)
		}
		if _, err := old.SigningKeyFor(keys.ES256); !errors.Is(err, keys.ErrNoKey) {
			t.Fatalf("an RS256-only ring has an ES256 key: %v", err)
		}
		if err := old.SigningKeyReady(); err == nil {
			t.Error("a ring without ES256 and EdDSA keys says it is ready")
		}

		f.clock.Advance(time.Hour)
		upgraded := f.ring(secretA)
		if err := upgraded.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		got := signingKIDs(t, upgraded) // fails unless every algorithm signs now
		if got[keys.RS256] != made[0].ID {
			t.Errorf("the RS256 key changed from %s to %s", made[0].ID, got[keys.RS256])
		}
		if n := len(upgraded.Keys()); n != len(keys.Algorithms) {
			t.Errorf("the upgraded ring holds %d keys, want %d", n, len(keys.Algorithms))
		}
		if err := upgraded.SigningKeyReady(); err != nil {
			t.Errorf("upgraded ring not ready: %v", err)
		}
		// The instance still running the old view loads the new keys.
		if err := old.Load(ctx); err != nil {
			t.Fatal(err)
		}
		if again := signingKIDs(t, old); !maps.Equal(again, got) {
			t.Errorf("the other instance signs with %v, want %v", again, got)
		}
	})
}

// Each algorithm rotates on its own: a rotation of one publishes its new
// key at once on every instance, signs with it after the publication
// delay, retires its predecessor after the retention, and leaves the other
// algorithms' keys as they were.
func TestRotationOfEachAlgorithmPublishesAtOnceSignsAfterDelayAndRetiresAfterRetention(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f fixture) {
		ctx := context.Background()
		a, b := f.ring(secretA), f.ring(secretA) // two instances
		if err := a.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		if err := b.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		for _, alg := range keys.Algorithms {
			t.Run(alg, func(t *testing.T) {
				before := signingKIDs(t, a)
				published := jwksKIDs(t, a)
				f.clock.Advance(time.Minute)
				added, err := a.Rotate(ctx, false, alg)
				if err != nil {
					t.Fatal(err)
				}
				if len(added) != 1 || added[0].Algorithm != alg || added[0].State != keys.Pending {
					t.Fatalf("Rotate(%s) added %+v, want one pending %s key", alg, added, alg)
				}
				if err := b.Load(ctx); err != nil {
					t.Fatal(err)
				}
				for name, r := range map[string]*keys.Ring{"rotating instance": a, "other instance": b} {
					if got := jwksKIDs(t, r); !slices.Equal(got, append(slices.Clone(published), added[0].ID)) {
						t.Errorf("%s publishes %v right after rotation, want %v and the new key", name, got, published)
					}
					if got := signingKIDs(t, r); !maps.Equal(got, before) {
						t.Errorf("%s signs with %v before the publication delay, want %v", name, got, before)
					}
				}

				f.clock.Advance(10 * time.Minute)
				want := maps.Clone(before)
				want[alg] = added[0].ID
				for name, r := range map[string]*keys.Ring{"rotating instance": a, "other instance": b} {
					if got := signingKIDs(t, r); !maps.Equal(got, want) {
						t.Errorf("%s signs with %v after the delay, want %v", name, got, want)
					}
					if got := jwksKIDs(t, r); len(got) != len(published)+1 {
						t.Errorf("%s dropped the retired key at once: %v", name, got)
					}
				}
				for _, k := range b.Keys() {
					if k.ID == before[alg] && (k.State != keys.Retired || !k.PublishedUntil.Equal(added[0].SignFrom.Add(time.Hour))) {
						t.Errorf("the old %s key is %s until %v; want retired until an hour after its successor signs", alg, k.State, k.PublishedUntil)
					}
				}

				f.clock.Advance(time.Hour) // the retention has passed
				got := jwksKIDs(t, b)
				if slices.Contains(got, before[alg]) || !slices.Contains(got, added[0].ID) || len(got) != len(published) {
					t.Errorf("after retention the JWKS holds %v; want the old %s key %s gone, the rest kept", got, alg, before[alg])
				}
				for other, kid := range before {
					if other != alg && !slices.Contains(got, kid) {
						t.Errorf("the %s rotation unpublished the %s key %s", alg, other, kid)
					}
				}
			})
		}
		// The next rotation removes the expired keys from the database.
		if _, err := a.Rotate(ctx, true); err != nil {
			t.Fatal(err)
		}
		if n := len(a.Keys()); n != 2*len(keys.Algorithms) {
			t.Errorf("after rotating every algorithm the ring holds %d keys, want %d (expired keys removed)", n, 2*len(keys.Algorithms))
		}
	})
}

func TestImmediateRotationSignsAtOnceAndUnknownAlgorithmsAreRefused(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f fixture) {
		ctx := context.Background()
		r := f.ring(secretA)
		if err := r.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Second)
		added, err := r.Rotate(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(added) != len(keys.Algorithms) {
			t.Fatalf("rotating every algorithm added %d keys", len(added))
		}
		now := signingKIDs(t, r)
		for _, k := range added {
			if now[k.Algorithm] != k.ID {
				t.Errorf("signing %s with %s after an immediate rotation, want %s", k.Algorithm, now[k.Algorithm], k.ID)
			}
		}
		version := r.Version()
		for _, bad := range []string{"none", "HS256", "rs256", "RS512", "ES384", "", "EdDSA\x00"} {
			if _, err := r.Rotate(ctx, true, bad); err == nil {
				t.Errorf("Rotate(%q) succeeded", bad)
			}
			if err := keys.CheckAlgorithm(bad); err == nil {
				t.Errorf("CheckAlgorithm(%q) admits it", bad)
			}
			if _, err := r.SigningKeyFor(bad); err == nil {
				t.Errorf("SigningKeyFor(%q) found a key", bad)
			}
		}
		if err := r.Load(ctx); err != nil || r.Version() != version {
			t.Errorf("refused rotations changed the ring: version %d, was %d (%v)", r.Version(), version, err)
		}
	})
}

func TestPublishedKeysVerifyWhatEachAlgorithmsKeySigned(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f fixture) {
		r := f.ring(secretA)
		if err := r.Ensure(context.Background()); err != nil {
			t.Fatal(err)
		}
		other := f.ring(secretA) // another instance verifies
		if err := other.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
		var set jose.JSONWebKeySet
		if err := json.Unmarshal(other.JWKS(), &set); err != nil {
			t.Fatal(err)
		}
		for _, alg := range keys.Algorithms {
			k, _ := r.SigningKeyFor(alg)
			token, err := r.Sign(alg, "logout+jwt", []byte(`{"x":1}`))
			if err != nil {
				t.Fatalf("Sign(%s): %v", alg, err)
			}
			jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
			if err != nil || len(jws.Signatures) != 1 {
				t.Fatalf("%s: not a compact JWS in its algorithm: %v", alg, err)
			}
			h := jws.Signatures[0].Protected
			if h.Algorithm != alg || h.KeyID != k.ID || h.ExtraHeaders[jose.HeaderType] != "logout+jwt" {
				t.Errorf("%s header: alg %q kid %q typ %v; want %s, %s, logout+jwt", alg, h.Algorithm, h.KeyID, h.ExtraHeaders[jose.HeaderType], alg, k.ID)
			}
			pub := set.Key(k.ID)
			if len(pub) != 1 || pub[0].Algorithm != alg {
				t.Fatalf("%s kid %s not in the JWKS", alg, k.ID)
			}
			if out, err := jws.Verify(pub[0]); err != nil || string(out) != `{"x":1}` {
				t.Errorf("%s: verify with the published key: %q, %v", alg, out, err)
			}
			// Nothing another algorithm's key signed verifies with it.
			for _, o := range keys.Algorithms {
				if o == alg {
					continue
				}
				ok, _ := other.SigningKeyFor(o)
				if _, err := jws.Verify(set.Key(ok.ID)[0]); err == nil {
					t.Errorf("a %s token verifies with the %s key", alg, o)
				}
			}
		}
		// The JWKS is prepared once, not per call.
		if a, b := r.JWKS(), r.JWKS(); &a[0] != &b[0] {
			t.Error("JWKS rebuilt on every call")
		}
	})
}

func TestRingWithoutSecretListsButCannotSignAndWrongSecretFailsClearly(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f fixture) {
		ctx := context.Background()
		if err := f.ring(secretA).Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		public := f.ring("")
		if err := public.Load(ctx); err != nil {
			t.Fatal(err)
		}
		ks := public.Keys()
		if len(ks) != len(keys.Algorithms) {
			t.Errorf("public-only ring lists %d keys", len(ks))
		}
		for _, k := range ks {
			if k.State != keys.Active || k.Signer() != nil {
				t.Errorf("public-only ring: %+v", k)
			}
		}
		if _, err := public.Rotate(ctx, false); err == nil {
			t.Error("a ring without the secret rotated")
		}
		if _, err := public.Sign(keys.ES256, "", []byte("{}")); err == nil {
			t.Error("a ring without the secret signed")
		}
		wrong := f.ring("a different secret key of enough length!")
		if err := wrong.Load(ctx); !errors.Is(err, keys.ErrUnseal) || !strings.Contains(err.Error(), "secret_key_file") {
			t.Errorf("wrong secret: err = %v, want ErrUnseal naming secret_key_file", err)
		}
	})
}

func TestAutomaticRotationHappensOncePerDueAlgorithmAcrossInstances(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f fixture) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		a, b := f.ring(secretA), f.ring(secretA)
		if err := a.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		// ES256 was rotated by hand half a day later: it is not due when
		// the others are.
		f.clock.Advance(12 * time.Hour)
		if _, err := a.Rotate(ctx, true, keys.ES256); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(13 * time.Hour) // past the rotation period of RS256 and EdDSA
		perAlg := func(r *keys.Ring) map[string]int {
			count := map[string]int{}
			for _, k := range r.Keys() {
				count[k.Algorithm]++
			}
			return count
		}
		rotated := func(r *keys.Ring) bool { c := perAlg(r); return c[keys.RS256] == 2 && c[keys.EdDSA] == 2 }
		go a.Run(ctx, 5*time.Millisecond)
		go b.Run(ctx, 5*time.Millisecond)
		deadline := time.Now().Add(20 * time.Second)
		for !rotated(a) || !rotated(b) {
			if time.Now().After(deadline) {
				t.Fatalf("no automatic rotation: a has %v keys, b %v", perAlg(a), perAlg(b))
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond) // give a second, wrong rotation time to happen
		cancel()
		if err := a.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
		count := perAlg(a)
		// RS256 and EdDSA: the first key and one rotation; ES256: only the
		// manual one, none automatic (its first key expired an hour after
		// the manual one began to sign, and the rotation removed it).
		if want := map[string]int{keys.RS256: 2, keys.ES256: 1, keys.EdDSA: 2}; !maps.Equal(count, want) {
			t.Errorf("keys per algorithm after two instances rotated automatically: %v, want %v", count, want)
		}
	})
}
