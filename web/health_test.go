package web

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// switchDB is a database whose availability the test switches.
type switchDB struct{ down atomic.Bool }

func (d *switchDB) Ping(context.Context) error {
	if d.down.Load() {
		return errors.New("connection refused")
	}
	return nil
}

// fakeREST stands in for the REST service: told by the gate when the
// database is down (ma1sd.Service.WhileDown), it answers 503 then.
type fakeREST struct {
	calls atomic.Int32
	down  func() bool
}

func (f *fakeREST) WhileDown(down func() bool) { f.down = down }

func (f *fakeREST) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	if f.down != nil && f.down() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"errcode": "M_UNKNOWN"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"served": "yes"})
}

func TestGateAnswersForTheDatabaseWhileItIsDownAndReopensByItself(t *testing.T) {
	f := newFixture(t, true) // for its key ring
	db := &switchDB{}
	rest := &fakeREST{}
	srv := httptest.NewServer(NewHandler(Deps{DB: db, Keys: f.ring, REST: rest, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	t.Cleanup(srv.Close)
	post := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, strings.TrimSpace(string(body))
	}
	const cc = "/_matrix-internal/identity/v1/check_credentials"
	if resp, body := post(cc); resp.StatusCode != 200 || rest.calls.Load() != 1 {
		t.Fatalf("while up: %d %s", resp.StatusCode, body)
	}

	db.down.Store(true)
	if resp, body := get(t, srv.URL+"/readyz"); resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" ||
		body != `{"reason":"database unreachable","status":"unavailable"}`+"\n" {
		t.Errorf("/readyz while down: %d %q", resp.StatusCode, body)
	}
	// The REST service answers for itself (after its access checks), told
	// by the gate that the database is down; its 503 gets a Retry-After.
	if resp, body := post(cc); resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || body != `{"errcode":"M_UNKNOWN"}` {
		t.Errorf("POST %s while down: %d %s (Retry-After %q)", cc, resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	if resp, _ := get(t, srv.URL+"/healthz"); resp.StatusCode != 200 {
		t.Errorf("/healthz while down: %d", resp.StatusCode)
	}
	if resp, _ := get(t, srv.URL+JWKSPath); resp.StatusCode != 200 {
		t.Errorf("/keys while down: %d", resp.StatusCode)
	}

	db.down.Store(false)
	deadline := time.Now().Add(3 * time.Second)
	for {
		resp, _ := get(t, srv.URL+"/readyz")
		if resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d 3 s after the database returned", resp.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if resp, body := post(cc); resp.StatusCode != 200 || rest.calls.Load() != 3 {
		t.Errorf("after recovery: %d %s", resp.StatusCode, body)
	}
}
