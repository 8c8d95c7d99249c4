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

func TestGateAnswersForTheDatabaseWhileItIsDownAndReopensByItself(t *testing.T) {
	f := newFixture(t, true) // for its key ring
	db := &switchDB{}
	var restCalls atomic.Int32
	rest := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		restCalls.Add(1)
		writeJSON(w, http.StatusOK, map[string]string{"served": "yes"})
	})
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
	if resp, body := post(cc); resp.StatusCode != 200 || restCalls.Load() != 1 {
		t.Fatalf("while up: %d %s", resp.StatusCode, body)
	}

	db.down.Store(true)
	if resp, body := get(t, srv.URL+"/readyz"); resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" ||
		body != `{"reason":"database unreachable","status":"unavailable"}`+"\n" {
		t.Errorf("/readyz while down: %d %q", resp.StatusCode, body)
	}
	for _, c := range []struct{ path, want string }{
		{cc, `{"errcode":"M_UNKNOWN","error":"temporarily unavailable; try again"}`},
		{"/_ma1sd/backend/api/v1/auth/login", `{"errcode":"M_UNKNOWN","error":"temporarily unavailable; try again"}`},
		{"/_mxisd/backend/api/v1/identity/single", `{"errcode":"M_UNKNOWN","error":"temporarily unavailable; try again"}`},
		{"/_ma1sd/backend/api/v1/directory/user/search", `{"limited":true,"results":[]}`},
		{"//_ma1sd/backend/api/v1/profile/displayName", `{"profile":{}}`},
	} {
		resp, body := post(c.path)
		if body != c.want || (resp.StatusCode == 503) != (resp.Header.Get("Retry-After") != "") {
			t.Errorf("POST %s while down: %d %s (Retry-After %q); want %s", c.path, resp.StatusCode, body, resp.Header.Get("Retry-After"), c.want)
		}
	}
	if restCalls.Load() != 1 {
		t.Errorf("the REST service was called %d times while the database was down", restCalls.Load()-1)
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
	if resp, body := post(cc); resp.StatusCode != 200 || restCalls.Load() != 2 {
		t.Errorf("after recovery: %d %s", resp.StatusCode, body)
	}
}
