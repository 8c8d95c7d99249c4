package keys_test

import (
	"context"
	"testing"
	"time"

	"github.com/mxidp/mxidp/keys"
	"github.com/mxidp/mxidp/storage"
	"github.com/mxidp/mxidp/storage/storagetest"
)

// BenchmarkRingSign measures one signature of a small token payload with
// each algorithm's key, as an ID token or a logout token costs it: the
// ratios between the algorithms are what docs/signing.md speaks of.
func BenchmarkRingSign(b *testing.B) {
	r := keys.NewRing(storagetest.Open(b, "sqlite", storage.Options{}), sealerOrNil(secretA), keys.Config{Now: time.Now})
	if err := r.Ensure(context.Background()); err != nil {
		b.Fatal(err)
	}
	payload := []byte(`{"iss":"https://id.example.org","sub":"0b4c5f3e-6a1d-4d0e-9f55-2f1b7c8d9e10","aud":"synapse","exp":1790000000,"iat":1789996400,"nonce":"n-0S6_WzA2Mj","sid":"s1"}`)
	for _, alg := range keys.Algorithms {
		b.Run(alg, func(b *testing.B) {
			for b.Loop() {
				if _, err := r.Sign(alg, "", payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
