package web

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mxidp/mxidp/keys"
	"github.com/mxidp/mxidp/storage"
	"github.com/mxidp/mxidp/storage/storagetest"
)

type fixture struct {
	store *storage.Store
	ring  *keys.Ring
	log   *bytes.Buffer
	srv   *httptest.Server
}

func newFixture(t testing.TB, withKey bool) fixture {
	store := storagetest.Open(t, "sqlite", storage.Options{})
	sealer, err := keys.NewSealer([]byte("a test secret that is long enough!!"), "signing keys")
	if err != nil {
		t.Fatal(err)
	}
	ring := keys.NewRing(store, sealer, keys.Config{Retention: time.Hour})
	if withKey {
		if err := ring.Ensure(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	var logBuf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	srv := httptest.NewServer(NewHandler(Deps{DB: store, Keys: ring, Logger: log}))
	t.Cleanup(srv.Close)
	return fixture{store, ring, &logBuf, srv}
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestReadyzReportsDatabaseAndKeyProblems(t *testing.T) {
	f := newFixture(t, true)
	if resp, body := get(t, f.srv.URL+"/readyz"); resp.StatusCode != 200 || !strings.Contains(body, `"ready"`) {
		t.Errorf("ready: %d %s", resp.StatusCode, body)
	}
	f.store.Close()
	resp, body := get(t, f.srv.URL+"/readyz")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "database unreachable") || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("database closed: %d %s", resp.StatusCode, body)
	}
	if resp, _ := get(t, f.srv.URL+"/healthz"); resp.StatusCode != 200 {
		t.Errorf("/healthz with the database down = %d, want 200 (the process is alive)", resp.StatusCode)
	}

	noKey := newFixture(t, false)
	if resp, body := get(t, noKey.srv.URL+"/readyz"); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "no signing key") {
		t.Errorf("no key: %d %s", resp.StatusCode, body)
	}
}

func TestJWKSIsCacheableJSONWithSecurityHeaders(t *testing.T) {
	f := newFixture(t, true)
	resp, body := get(t, f.srv.URL+JWKSPath)
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal([]byte(body), &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("JWKS %q: %v", body, err)
	}
	if _, hasPrivate := set.Keys[0]["d"]; hasPrivate {
		t.Fatal("the JWKS publishes a private key")
	}
	for h, want := range map[string]string{
		"Content-Type":           "application/json",
		"Cache-Control":          "public, max-age=300",
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options":        "DENY",
	} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	if resp.Header.Get(requestIDHeader) == "" {
		t.Error("no request ID header")
	}
}

func TestPanicsBecomeA500AndALogEntry(t *testing.T) {
	var logBuf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	h := logRequests(log, newMetrics(nil, nil))(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/x?code=SECRETCODE", nil))
	if rec.Code != 500 || strings.Contains(rec.Body.String(), "boom") || !strings.Contains(rec.Body.String(), rec.Header().Get(requestIDHeader)) {
		t.Errorf("panic answered %d %q", rec.Code, rec.Body)
	}
	out := logBuf.String()
	if !strings.Contains(out, "panic serving request") || !strings.Contains(out, "status=500") || strings.Contains(out, "SECRETCODE") {
		t.Errorf("log after panic:\n%s", out)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestMetricsCountRequestsByKnownRoute(t *testing.T) {
	f := newFixture(t, true)
	get(t, f.srv.URL+"/healthz")
	get(t, f.srv.URL+"/keys")
	get(t, f.srv.URL+"/no/such/page/"+strings.Repeat("x", 20))
	resp, body := get(t, f.srv.URL+MetricsPath)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		`mxidp_http_requests_total{code="200",route="/healthz"} 1`,
		`mxidp_http_requests_total{code="200",route="/keys"} 1`,
		`mxidp_http_requests_total{code="404",route="other"} 1`,
		`mxidp_http_request_duration_seconds_bucket{route="/keys",le="0.005"}`,
		"go_goroutines", "process_resident_memory_bytes",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, "xxxxxxxx") {
		t.Error("an unknown path became a label")
	}
}
