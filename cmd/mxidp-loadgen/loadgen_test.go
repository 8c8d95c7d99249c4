package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// loginPage is shaped like web/templates/login.html.
const loginPage = `<!doctype html>
<html lang="en"><body><main>
<h1>Sign in</h1>
<form method="post" action="http://127.0.0.1:8080/login">
<input type="hidden" name="id" value="abc&amp;1">
<input type="hidden" name="csrf" value="t0k3n">
<p><input id="username" name="username" type="text" required value="" autofocus></p>
<p><input id="password" name="password" type="password" required></p>
<p><button type="submit">Sign in</button></p>
</form></main></body></html>`

func TestParseLoginForm(t *testing.T) {
	base, _ := url.Parse("http://127.0.0.1:8080/login?id=abc")
	f, err := parseLoginForm([]byte(loginPage), base)
	if err != nil {
		t.Fatal(err)
	}
	if f.action != "http://127.0.0.1:8080/login" || f.fields.Get("id") != "abc&1" || f.fields.Get("csrf") != "t0k3n" {
		t.Errorf("got action %q fields %v", f.action, f.fields)
	}
	if f.fields.Has("username") || f.fields.Has("password") {
		t.Errorf("visible inputs taken as hidden ones: %v", f.fields)
	}
	if _, err := parseLoginForm([]byte(strings.Replace(loginPage, `name="csrf"`, `name="other"`, 1)), base); err == nil {
		t.Error("a form without csrf was accepted")
	}
}

func TestDescribeShowsTextOfHTML(t *testing.T) {
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:8080/login", nil)
	resp := &http.Response{Status: "401 Unauthorized", StatusCode: 401, Header: http.Header{
		"Content-Type": {"text/html; charset=utf-8"}, "X-Request-Id": {"r1"}}}
	got := describe(req, resp, []byte(`<p role="alert">Unknown username or wrong password.</p><input type="hidden" name="csrf" value="secret">`))
	want := "POST /login -> 401 Unauthorized, X-Request-Id r1, body: Unknown username or wrong password."
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestReadProcStat(t *testing.T) {
	s, err := readProcStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.ppid != os.Getppid() || s.comm == "" {
		t.Errorf("read %+v; parent is %d", s, os.Getppid())
	}
}

func TestQuantile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	for q, want := range map[float64]time.Duration{0.5: 50, 0.99: 99, 1: 100, 0: 1} {
		if got := quantile(d, q); got != want {
			t.Errorf("quantile %.2f = %d, want %d", q, got, want)
		}
	}
	if s := summarize(nil); s.n != 0 {
		t.Errorf("summary of nothing: %+v", s)
	}
}

// The ID-token check verifies each algorithm a client may be registered
// with, and refuses a token in another algorithm than the client's, a
// forged signature and a key /keys does not publish.
func TestCheckIDTokenAlgorithms(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	private := map[jose.SignatureAlgorithm]any{jose.RS256: rsaKey, jose.ES256: ecKey, jose.EdDSA: edKey}
	p := &op{issuer: "http://127.0.0.1:1"}
	for alg, k := range private {
		jwk := jose.JSONWebKey{Key: k, KeyID: "kid-" + string(alg), Algorithm: string(alg), Use: "sig"}
		p.keys.Keys = append(p.keys.Keys, jwk.Public())
	}
	now := time.Now().Unix()
	token := func(alg jose.SignatureAlgorithm, kid string, claims map[string]any) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: private[alg]},
			(&jose.SignerOptions{}).WithHeader("kid", kid))
		if err != nil {
			t.Fatal(err)
		}
		payload, _ := json.Marshal(claims)
		obj, err := s.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := obj.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	claims := map[string]any{"iss": p.issuer, "sub": "s1", "aud": "c1", "exp": now + 60, "iat": now,
		"nonce": "n1", "preferred_username": "alice"}
	ctx := context.Background()
	for alg := range private {
		rp := &relyingParty{op: p, clientID: "c1", alg: alg}
		raw := token(alg, "kid-"+string(alg), claims)
		if sub, f := rp.checkIDToken(ctx, raw, "n1", "alice"); f != nil || sub != "s1" {
			t.Errorf("%s: a good token: sub %q, %v", alg, sub, f)
		}
		forged := raw[:len(raw)-4] + map[bool]string{true: "AAAA", false: "BBBB"}[strings.HasSuffix(raw, "BBBB")]
		if _, f := rp.checkIDToken(ctx, forged, "n1", "alice"); f == nil || f.kind != "bad signature" {
			t.Errorf("%s: a forged signature: %v", alg, f)
		}
		if _, f := rp.checkIDToken(ctx, raw, "n2", "alice"); f == nil || f.kind != "nonce of another flow" {
			t.Errorf("%s: another flow's nonce: %v", alg, f)
		}
	}
	es := &relyingParty{op: p, clientID: "c1", alg: jose.ES256}
	if _, f := es.checkIDToken(ctx, token(jose.RS256, "kid-RS256", claims), "n1", "alice"); f == nil || !strings.Contains(f.kind, "not the client's ES256") {
		t.Errorf("an RS256 token for an ES256 client: %v", f)
	}
}

func TestParseStatements(t *testing.T) {
	exposition := "# HELP mxidp_db_statements_total Statements sent.\n# TYPE mxidp_db_statements_total counter\nmxidp_db_statements_total 1.234567e+06\n"
	if n, err := parseStatements([]byte(exposition)); err != nil || n != 1234567 {
		t.Errorf("got %d, %v", n, err)
	}
	if _, err := parseStatements([]byte("mxidp_http_requests_total 3\n")); err == nil {
		t.Error("an exposition without the count was read")
	}
	var s stepStatements
	s.step = map[string]int64{"authorize": 1, "login submit": 10, "ID-token check": 5}
	if s.total() != 11 {
		t.Errorf("total %d: only the server's steps count", s.total())
	}
}

func TestParseStatus(t *testing.T) {
	m, err := parseStatus("Name:\tmxidp\nVmPeak:\t 1261380 kB\nVmHWM:\t   27012 kB\nVmRSS:\t   26480 kB\nThreads:\t7\n")
	if err != nil || m.rss != 26480<<10 || m.hwm != 27012<<10 {
		t.Errorf("got %+v, %v", m, err)
	}
	if _, err := parseStatus("Name:\tmxidp\nVmRSS:\t26480 kB\n"); err == nil {
		t.Error("a status without VmHWM was read")
	}
	if m, err := readMemory(os.Getpid()); err != nil || m.rss <= 0 || m.hwm < m.rss {
		t.Errorf("this process: %+v, %v", m, err)
	}
}

func TestScanInfoLog(t *testing.T) {
	s := scanInfoLog([]string{
		`time=2026-12-07T23:00:00Z level=INFO msg="listening"`,
		`time=2026-12-07T23:00:00Z level=INFO msg=request method=GET path=/keys status=200`,
		`{"time":"2026-12-07T23:00:00Z","level":"INFO","msg":"request","path":"/keys"}`,
		`time=2026-12-07T23:00:01Z level=WARN msg="key ring refresh failed"`,
		`{"time":"2026-12-07T23:00:01Z","level":"ERROR","msg":"boom"}`,
		`panic: runtime error`,
	})
	if s.lines != 6 || s.requests != 2 || len(s.problems) != 3 {
		t.Errorf("got %+v", s)
	}
}

func TestAbbaInterleaves(t *testing.T) {
	for n, want := range map[int]string{1: "0000", 2: "01100110", 3: "012210012210"} {
		var got strings.Builder
		for _, i := range abba(n) {
			got.WriteString(strconv.Itoa(i))
		}
		if got.String() != want {
			t.Errorf("abba(%d) = %s, want %s", n, got.String(), want)
		}
	}
}

func TestServerConfig(t *testing.T) {
	y := serverConfig{name: "d", level: "info", passwords: defaultCost, rest: true}.yaml()
	for _, want := range []string{"log: {level: info}", "rest: {enabled: true, allowed_networks: [\"127.0.0.0/8\"]}", "server_name: " + matrixDomain, "memory_kib: 19456"} {
		if !strings.Contains(y, want) {
			t.Errorf("config lacks %q:\n%s", want, y)
		}
	}
	if y := (serverConfig{level: "warn", passwords: cheapCost}).yaml(); strings.Contains(y, "rest:") {
		t.Errorf("REST on without asking:\n%s", y)
	}
}

// The summary has a line per figure of the Performance table, with its
// targets: the RS256 one moves with the signature measured in the run.
func TestFigures(t *testing.T) {
	flows := func(n int, cpu time.Duration, db time.Duration) outcome {
		return outcome{recorder: newRecorder(), counted: n, elapsed: time.Second, cpu: cpuUse{wall: time.Second, server: cpu, db: db, statements: int64(26 * n)}}
	}
	sqlite := &backendResult{name: "SQLite", es256: true,
		idle:    memory{rss: 17 << 20, hwm: 19 << 20},
		sigIdle: signatures{n: 10, cpu: 12 * time.Millisecond}, // 1.2 ms
		cheapRun: []clientRun{
			{alg: jose.RS256, flows: flows(100, 210*time.Millisecond, 0), // 2.1 ms
				steps: stepStatements{step: map[string]int64{"authorize": 1, "token": 25}}},
			{alg: jose.ES256, flows: flows(100, 110*time.Millisecond, 0)}, // 1.1 ms
		},
		defaultRun: flows(91, 0, 0), checks: flows(80, 0, 0),
		hash: hashResult{n: 100, elapsed: time.Second, workers: 2},
	}
	pg := &backendResult{name: "PostgreSQL", dbCPU: "postmaster", es256: true,
		idle:    memory{rss: 30 << 20, hwm: 30 << 20},
		sigIdle: signatures{n: 10, cpu: 10 * time.Millisecond},
		cheapRun: []clientRun{
			{alg: jose.RS256, flows: flows(100, 200*time.Millisecond, 100*time.Millisecond)}, // 3.0 ms
			{alg: jose.ES256, flows: flows(100, 100*time.Millisecond, 90*time.Millisecond)},  // 1.9 ms
		},
		defaultRun: flows(89, 0, 0), checks: flows(90, 0, 0),
		hash: hashResult{n: 100, elapsed: time.Second, workers: 2},
	}
	sqlite.cheapHash, pg.cheapHash = 100*time.Microsecond, 100*time.Microsecond
	want := map[string]string{
		"SQLite: server CPU per flow beyond the hash, ES256 client":              "1.000 ms|≤ 1.0 ms|PASS",
		"SQLite: server CPU per flow beyond the hash, RS256 client":              "2.000 ms|≤ 1.200 + 1.0 = 2.200 ms|PASS",
		"SQLite: flows/s at the default cost ÷ parallel hashes/s":                "0.910|≥ 0.9|PASS",
		"SQLite: check_credentials/s ÷ parallel hashes/s":                        "0.800|PostgreSQL's ≥ 0.9|(FAIL)",
		"SQLite: RSS idle, 3s after ready (VmRSS; VmHWM)":                        "17.0 MiB; 19.0|≤ 18 MiB|PASS",
		"SQLite: SQL statements per flow, one flow step by step; under load":     "26; 26.00|fewer|",
		"PostgreSQL: server+database CPU per flow beyond the hash, RS256 client": "2.900 ms|≤ 1.000 + 2.0 = 3.000 ms|PASS",
		"PostgreSQL: server+database CPU per flow beyond the hash, ES256 client": "1.800 ms|none; ≤ 2.0 ms by analogy|(PASS)",
		"PostgreSQL: flows/s at the default cost ÷ parallel hashes/s":            "0.890|≥ 0.9|FAIL",
		"PostgreSQL: check_credentials/s ÷ parallel hashes/s":                    "0.900|≥ 0.9|PASS",
		"PostgreSQL: RSS idle, 3s after ready (VmRSS; VmHWM)":                    "30.0 MiB; 30.0|SQLite's ≤ 18 MiB|(FAIL)",
	}
	got := map[string]string{}
	for _, f := range figures([]*backendResult{sqlite, pg}) {
		got[f.label] = f.value + "|" + f.target + "|" + f.verdict
	}
	for label, w := range want {
		if got[label] != w {
			t.Errorf("%s:\n got  %q\n want %q", label, got[label], w)
		}
	}
	sqlite.cheapRun = sqlite.cheapRun[:1]
	for _, f := range figures([]*backendResult{sqlite}) {
		if strings.Contains(f.label, "ES256") && f.value != "not available in this binary" {
			t.Errorf("without an ES256 client: %+v", f)
		}
	}
}
