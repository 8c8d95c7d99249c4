package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"
	"time"

	"github.com/mxidp/mxidp/storage"
	"github.com/mxidp/mxidp/storage/storagetest"
)

// A row whose private key is not of its algorithm's type, or whose
// algorithm the ring does not offer, stops the load: signing with it
// would put one algorithm in the header and another key's signature
// behind it, or sign with an algorithm nobody checked (an HS256 row keyed
// with something public would be a forgery kit).
func TestRowsWhoseKeyDoesNotFitTheirAlgorithmAreRefused(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			sealer, err := NewSealer([]byte("0123456789abcdef0123456789abcdef-internal"), "signing keys")
			if err != nil {
				t.Fatal(err)
			}
			for name, c := range map[string]struct {
				key   any
				alg   string
				label string // the row's algorithm as stored
				want  string
			}{
				"RSA key as ES256":   {rsaKey, RS256, ES256, "not a key for ES256"},
				"P-384 key as ES256": {p384, ES256, ES256, "not a key for ES256"},
				"P-256 key as EdDSA": {p256, ES256, EdDSA, "not a key for EdDSA"},
				"HS256 row":          {rsaKey, RS256, "HS256", "not offered"},
				"none row":           {p256, ES256, "none", "not offered"},
			} {
				t.Run(name, func(t *testing.T) {
					store := storagetest.Open(t, backend, storage.Options{})
					r := NewRing(store, sealer, Config{Now: time.Now})
					row, err := r.newRow(c.key.(crypto.Signer), c.alg, time.Now(), time.Now())
					if err != nil {
						t.Fatal(err)
					}
					row.Algorithm = c.label
					if _, err := store.ChangeKeyRing(context.Background(), 0, []storage.SigningKey{row}, nil); err != nil {
						t.Fatal(err)
					}
					err = r.Load(context.Background())
					if err == nil || !strings.Contains(err.Error(), c.want) {
						t.Errorf("Load = %v, want an error saying %q", err, c.want)
					}
					if _, err := r.SigningKeyFor(c.label); err == nil {
						t.Errorf("the ring signs with the %s row", c.label)
					}
				})
			}
		})
	}
}
