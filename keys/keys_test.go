package keys_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
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

func jwksKIDs(t *testing.T, r *keys.Ring) []string {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(r.JWKS(), &set); err != nil {
		t.Fatalf("JWKS is not a key set: %v", err)
	}
	var ids []string
	for _, k := range set.Keys {
		if k.Use != "sig" || k.Algorithm != "RS256" || k.IsPublic() == false {
			t.Errorf("published key %s: use %q alg %q public %v", k.KeyID, k.Use, k.Algorithm, k.IsPublic())
		}
		ids = append(ids, k.KeyID)
	}
	return ids
}

func TestEnsureMakesOneKeyAcrossInstances(t *testing.T) {
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
		first, err := rings[0].SigningKey()
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range rings {
			k, err := r.SigningKey()
			if err != nil || k.ID != first.ID || k.Signer() == nil {
				t.Errorf("instance %d signs with %s (%v), instance 0 with %s", i, k.ID, err, first.ID)
			}
		}
		if n := len(rings[0].Keys()); n != 1 {
			t.Errorf("three instances starting together made %d keys, want 1", n)
		}
		// A restart finds the same key.
		restarted := f.ring(secretA)
		if err := restarted.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		if k, _ := restarted.SigningKey(); k.ID != first.ID {
			t.Errorf("after restart the signing key is %s, want %s", k.ID, first.ID)
		}
	})
}

func TestRotationPublishesAtOnceSignsAfterDelayAndRetiresAfterRetention(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f fixture) {
		ctx := context.Background()
		a, b := f.ring(secretA), f.ring(secretA) // two instances
		if err := a.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		if err := b.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		old, _ := a.SigningKey()
		f.clock.Advance(time.Minute)
		added, err := a.Rotate(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		if added.State != keys.Pending {
			t.Errorf("new key state %s, want pending", added.State)
		}
		if err := b.Load(ctx); err != nil {
			t.Fatal(err)
		}
		for name, r := range map[string]*keys.Ring{"rotating instance": a, "other instance": b} {
			if got := strings.Join(jwksKIDs(t, r), ","); got != old.ID+","+added.ID {
				t.Errorf("%s publishes %s right after rotation, want both keys", name, got)
			}
			if k, _ := r.SigningKey(); k.ID != old.ID {
				t.Errorf("%s signs with %s before the publication delay, want the old key", name, k.ID)
			}
		}

		f.clock.Advance(10 * time.Minute)
		for name, r := range map[string]*keys.Ring{"rotating instance": a, "other instance": b} {
			if k, _ := r.SigningKey(); k.ID != added.ID {
				t.Errorf("%s signs with %s after the delay, want the new key", name, k.ID)
			}
			if got := jwksKIDs(t, r); len(got) != 2 {
				t.Errorf("%s dropped the retired key at once: %v", name, got)
			}
		}

		f.clock.Advance(time.Hour) // the retention has passed
		if got := jwksKIDs(t, b); len(got) != 1 || got[0] != added.ID {
			t.Errorf("after retention the JWKS holds %v, want only %s", got, added.ID)
		}
		// The next rotation removes the expired key from the database.
		if _, err := a.Rotate(ctx, true); err != nil {
			t.Fatal(err)
		}
		if n := len(a.Keys()); n != 2 {
			t.Errorf("after the next rotation the ring holds %d keys, want 2 (expired key removed)", n)
		}
	})
}

func TestImmediateRotationSignsAtOnce(t *testing.T) {
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
		if k, _ := r.SigningKey(); k.ID != added.ID {
			t.Errorf("signing with %s after an immediate rotation, want %s", k.ID, added.ID)
		}
	})
}

func TestPublishedKeyVerifiesWhatTheSigningKeySigned(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f fixture) {
		r := f.ring(secretA)
		if err := r.Ensure(context.Background()); err != nil {
			t.Fatal(err)
		}
		k, _ := r.SigningKey()
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: k.Signer(), KeyID: k.ID}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		jws, _ := signer.Sign([]byte("payload"))
		var set jose.JSONWebKeySet
		json.Unmarshal(r.JWKS(), &set)
		pub := set.Key(k.ID)
		if len(pub) != 1 {
			t.Fatalf("kid %s not in JWKS", k.ID)
		}
		if out, err := jws.Verify(pub[0]); err != nil || string(out) != "payload" {
			t.Errorf("verify with the published key: %q, %v", out, err)
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
		if ks := public.Keys(); len(ks) != 1 || ks[0].State != keys.Active || ks[0].Signer() != nil {
			t.Errorf("public-only ring: %+v", ks)
		}
		if _, err := public.Rotate(ctx, false); err == nil {
			t.Error("a ring without the secret rotated")
		}
		wrong := f.ring("a different secret key of enough length!")
		if err := wrong.Load(ctx); !errors.Is(err, keys.ErrUnseal) || !strings.Contains(err.Error(), "secret_key_file") {
			t.Errorf("wrong secret: err = %v, want ErrUnseal naming secret_key_file", err)
		}
	})
}

func TestAutomaticRotationHappensOnceAcrossInstances(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f fixture) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		a, b := f.ring(secretA), f.ring(secretA)
		if err := a.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(25 * time.Hour) // past the rotation period
		go a.Run(ctx, 5*time.Millisecond)
		go b.Run(ctx, 5*time.Millisecond)
		deadline := time.Now().Add(10 * time.Second)
		for len(a.Keys()) < 2 || len(b.Keys()) < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("no automatic rotation: a has %d keys, b %d", len(a.Keys()), len(b.Keys()))
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond) // give a second, wrong rotation time to happen
		if err := a.Load(ctx); err != nil {
			t.Fatal(err)
		}
		if n := len(a.Keys()); n != 2 {
			t.Errorf("two instances rotating automatically made %d new keys, want 1", n-1)
		}
	})
}
