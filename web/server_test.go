package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/mxidp/mxidp/keys"
	"github.com/mxidp/mxidp/storage"
	"github.com/mxidp/mxidp/storage/storagetest"
	"github.com/mxidp/mxidp/web/logging"
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
	if err := json.Unmarshal([]byte(body), &set); err != nil || len(set.Keys) != len(keys.Algorithms) {
		t.Fatalf("JWKS %q: %v; want one key per algorithm", body, err)
	}
	for _, k := range set.Keys {
		if _, hasPrivate := k["d"]; hasPrivate {
			t.Fatalf("the JWKS publishes a private key: %v", k)
		}
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

// The routes' map answers exactly what chi would: GETs of plain paths
// registered with Get, unless another registration took the path over.
func TestExactRoutesAnswerAsChiWould(t *testing.T) {
	rt := newRoutes()
	answer := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			_, viaChi := r.Context().Value(chi.RouteCtxKey).(*chi.Context)
			fmt.Fprintf(w, "%s chi=%v", name, viaChi)
		}
	}
	rt.Get("/a", answer("get a"))
	rt.Post("/a", answer("post a"))
	rt.Get("/b/{id}", answer("get b"))
	rt.Get("/c", answer("get c"))
	rt.HandleFunc("/c", answer("any c"))
	rt.Get("/d", answer("get d"))
	rt.MethodFunc(http.MethodGet, "/d", answer("method d"))
	rt.Get("/e/", answer("get e/"))
	for _, tc := range []struct{ method, target, want string }{
		{"GET", "/a", "get a chi=false"},
		{"POST", "/a", "post a chi=true"},
		{"HEAD", "/a", ""}, // chi: 405
		{"GET", "/b/1", "get b chi=true"},
		{"GET", "/c", "any c chi=true"},
		{"GET", "/d", "method d chi=true"},
		{"GET", "/e/", "get e/ chi=false"},
		{"GET", "/e", ""},   // chi: 404
		{"GET", "/%61", ""}, // chi routes on the escaped form: 404
		{"GET", "/a?x=1", "get a chi=false"},
	} {
		rec := httptest.NewRecorder()
		rt.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.target, nil))
		if got := rec.Body.String(); tc.want != "" && got != tc.want || tc.want == "" && rec.Code < 400 {
			t.Errorf("%s %s = %d %q, want %q", tc.method, tc.target, rec.Code, got, tc.want)
		}
	}
}

// With mxidp's logger, the request line is logging's, with every field.
func TestRequestLineThroughLogging(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var out bytes.Buffer
		log, w := logging.New(&out, format, slog.LevelInfo)
		f := newFixture(t, true)
		srv := httptest.NewServer(NewHandler(Deps{DB: f.store, Keys: f.ring, Logger: log}))
		resp, body := get(t, srv.URL+JWKSPath+"?access_token=SECRET")
		get(t, srv.URL+"/no/such/page")
		srv.Close()
		w.Close()
		id := resp.Header.Get(requestIDHeader)
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) != 2 {
			t.Fatalf("%s: %d lines: %q", format, len(lines), out.String())
		}
		var want []string
		if format == "text" {
			want = []string{" level=INFO msg=request method=GET path=/keys status=200 bytes=" + strconv.Itoa(len(body)) + " duration_ms=",
				" request_id=" + id, "path=/no/such/page status=404"}
		} else {
			want = []string{`,"level":"INFO","msg":"request","method":"GET","path":"/keys","status":200,"bytes":` + strconv.Itoa(len(body)) + `,"duration_ms":`,
				`,"request_id":"` + id + `"}`, `"path":"/no/such/page","status":404`}
		}
		if !strings.Contains(lines[0], want[0]) || !strings.HasSuffix(lines[0], want[1]) || !strings.Contains(lines[1], want[2]) {
			t.Errorf("%s lines:\n%s\nwant %q", format, out.String(), want)
		}
		if strings.Contains(out.String(), "SECRET") {
			t.Errorf("%s: the log shows a query string", format)
		}
	}
}

// Each route keeps the series it has used; goroutines that meet a new
// status at once still count in one series each.
func TestMetricsSeriesCountEveryObservation(t *testing.T) {
	m := newMetrics(nil, nil)
	statuses := []int{200, 404, 302, 500, 0, 200}
	const goroutines, each = 8, 500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				m.observe([]string{JWKSPath, "/nowhere", StaticPath + "/mxidp.css"}[(g+i)%3], statuses[i%len(statuses)], time.Millisecond)
			}
		})
	}
	wg.Wait()
	families, err := m.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	var observed uint64
	for _, f := range families {
		for _, s := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch f.GetName() {
			case "mxidp_http_requests_total":
				counts[labels["route"]+" "+labels["code"]] += s.GetCounter().GetValue()
			case "mxidp_http_request_duration_seconds":
				observed += s.GetHistogram().GetSampleCount()
			}
		}
	}
	var total float64
	for _, n := range counts {
		total += n
	}
	if total != goroutines*each || observed != goroutines*each || len(counts) != 3*5 {
		t.Errorf("%v requests in %d series (%v), %d durations; want %d in 15", total, len(counts), counts, observed, goroutines*each)
	}
	if counts["/keys 200"] == 0 || counts["other 0"] == 0 || counts["/static 500"] == 0 {
		t.Errorf("series %v", counts)
	}
}

// underBase serves the routes under the issuer's path and at the root,
// and nothing that merely starts with the same letters.
func TestUnderBaseServesTheRoutesUnderTheIssuersPath(t *testing.T) {
	var got string
	h := underBase("/idp", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.URL.Path + "|" + r.URL.RawPath }))
	for in, want := range map[string]string{
		"/idp/authorize":    "/authorize|",
		"/idp":              "/|",
		"/idp/":             "/|",
		"/authorize":        "/authorize|", // a proxy stripped the path
		"/idpx/authorize":   "/idpx/authorize|",
		"/idp/static/a%2Fb": "/static/a/b|/static/a%2Fb",
		"/other/idp/keys":   "/other/idp/keys|",
	} {
		got = ""
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, in, nil))
		if got != want {
			t.Errorf("%s reached the routes as %q, want %q", in, got, want)
		}
	}
}
