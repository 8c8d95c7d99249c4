package web

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mxidp/mxidp/web/logging"
)

// BenchmarkJWKS serves the key set through the full middleware chain with
// the request log off (level warn); BenchmarkJWKSRequestLog with it on, as
// mxidp serve writes it (package logging, text, to a discarding output);
// BenchmarkJWKSRequestLogSlog with it on through slog's own text handler,
// what the line cost before. BenchmarkPlainHandler serves the same bytes
// from a bare net/http handler, the baseline of the README's Performance target
// (discovery and JWKS at ≥ 0.8× a plain handler, with the log on).
func BenchmarkJWKS(b *testing.B) {
	f := newFixture(b, true)
	h := NewHandler(Deps{DB: f.store, Keys: f.ring, Logger: discardLogger()})
	benchmarkHandler(b, h, JWKSPath)
}

func BenchmarkJWKSRequestLog(b *testing.B) {
	f := newFixture(b, true)
	log, w := logging.New(io.Discard, "text", slog.LevelInfo)
	defer w.Close()
	h := NewHandler(Deps{DB: f.store, Keys: f.ring, Logger: log})
	benchmarkHandler(b, h, JWKSPath)
}

func BenchmarkJWKSRequestLogSlog(b *testing.B) {
	f := newFixture(b, true)
	h := NewHandler(Deps{DB: f.store, Keys: f.ring, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
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
	b.ResetTimer() // not the fixture's key generation
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
