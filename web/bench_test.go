package web

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkJWKS serves the key set through the full middleware chain;
// BenchmarkPlainHandler serves the same bytes from a bare net/http handler,
// the baseline the OpenID issue's target (≥ 0.9×) is measured against.
func BenchmarkJWKS(b *testing.B) {
	f := newFixture(b, true)
	h := NewHandler(Deps{DB: f.store, Keys: f.ring, Logger: discardLogger()})
	benchmarkHandler(b, h, JWKSPath)
}

func BenchmarkPlainHandler(b *testing.B) {
	f := newFixture(b, true)
	body := f.ring.JWKS()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	benchmarkHandler(b, h, JWKSPath)
}

func benchmarkHandler(b *testing.B, h http.Handler, path string) {
	req := httptest.NewRequest("GET", path, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("status %d", rec.Code)
			}
		}
	})
}
