package ma1sd_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mxidp/mxidp/provider"
	"github.com/mxidp/mxidp/provider/ma1sd"
	"github.com/mxidp/mxidp/provider/password"
	"github.com/mxidp/mxidp/storage"
	"github.com/mxidp/mxidp/storage/storagetest"
)

// BenchmarkCheckCredentials measures one Synapse password check at the
// default hash cost, the latency Synapse's event loop waits for
// (ma1sd-rest.md §3.7 asks for p99 well under 300 ms).
func BenchmarkCheckCredentials(b *testing.B) {
	store := storagetest.Open(b, "sqlite", storage.Options{})
	h, err := password.Hash("Wonder-Land-42", password.Default)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := store.CreateUser(context.Background(), storage.User{ID: "u1", Username: "alice", PasswordHash: h}); err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := ma1sd.New(store, &provider.Login{Store: store, Hash: password.Default, Logger: log}, "example.org", ma1sd.Options{Logger: log})
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := httptest.NewRequest("POST", ma1sd.CheckCredentialsPath, strings.NewReader(aliceCC))
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			if w.Code != 200 || !strings.Contains(w.Body.String(), `"success":true`) {
				b.Fatalf("%d %s", w.Code, w.Body)
			}
		}
	})
}
