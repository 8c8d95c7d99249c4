package keys

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mxidp/mxidp/storage"
	"github.com/mxidp/mxidp/storage/storagetest"
)

// The public half of a row is published as it is stored; only the private
// half is sealed (bound to the kid). A row whose public key is not its
// private key's, or that names another algorithm or kid than the row (a
// row another instance wrote wrongly, or one changed in the database),
// would have /keys publish a key that verifies none of what the ring
// signs under that kid, or verifies what someone else signs. It stops the
// load, on a ring that signs and on one that only lists.
func TestRowsWhosePublicKeyIsNotTheirsAreRefused(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			sealer, err := NewSealer([]byte("0123456789abcdef0123456789abcdef-internal"), "signing keys")
			if err != nil {
				t.Fatal(err)
			}
			for name, c := range map[string]struct {
				public func(row storage.SigningKey, r *Ring) string
				// What the refusal names, on a signing ring and on a
				// listing one ("": a listing ring cannot tell).
				signing, listing string
			}{
				"another P-256 key under the row's kid": {func(row storage.SigningKey, r *Ring) string {
					o, _ := r.newRow(other, ES256, time.Now(), time.Now())
					return withMembers(t, o.PublicJWK, map[string]any{"kid": row.ID})
				}, "is not the public half", ""},
				"an RSA key said to be RS256 on an ES256 row": {func(row storage.SigningKey, r *Ring) string {
					o, _ := r.newRow(rsaKey, RS256, time.Now(), time.Now())
					return withMembers(t, o.PublicJWK, map[string]any{"kid": row.ID})
				}, "is not the public half", "RS256"},
				"its own key under another alg": {func(row storage.SigningKey, r *Ring) string {
					return withMembers(t, row.PublicJWK, map[string]any{"alg": EdDSA})
				}, "EdDSA", "EdDSA"},
				"its own key under another kid": {func(row storage.SigningKey, r *Ring) string {
					return withMembers(t, row.PublicJWK, map[string]any{"kid": "someone-elses"})
				}, "someone-elses", "someone-elses"},
			} {
				t.Run(name, func(t *testing.T) {
					store := storagetest.Open(t, backend, storage.Options{})
					r := NewRing(store, sealer, Config{Now: time.Now})
					row, err := r.newRow(p256, ES256, time.Now(), time.Now())
					if err != nil {
						t.Fatal(err)
					}
					row.PublicJWK = c.public(row, r)
					if _, err := store.ChangeKeyRing(context.Background(), 0, []storage.SigningKey{row}, nil); err != nil {
						t.Fatal(err)
					}
					for what, ring := range map[string]*Ring{"signing ring": r, "listing ring": NewRing(store, nil, Config{Now: time.Now})} {
						err := ring.Load(context.Background())
						want := c.signing
						if ring.sealer == nil {
							want = c.listing
						}
						if want == "" {
							continue // without the private half, nothing to compare
						}
						if err == nil || !strings.Contains(err.Error(), want) {
							t.Errorf("%s: Load = %v, want an error naming %q", what, err, want)
						}
						if jwks := string(ring.JWKS()); strings.Contains(jwks, row.ID) {
							t.Errorf("%s publishes the row: %s", what, jwks)
						}
					}
				})
			}
		})
	}
}

// withMembers returns the JSON object s with the members in set replaced.
func withMembers(t *testing.T, s string, set map[string]any) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range set {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	return string(b)
}
