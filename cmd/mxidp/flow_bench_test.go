package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/mxidp/mxidp/storage/storagetest"
)

// inProcessFlow is mxidp's real handler on a database of the given
// backend, behind an httptest server, with one user (alice, a cheap
// password hash) and one confidential client that skips consent, made
// with the extra `client add` arguments given.
type inProcessFlow struct {
	srv    *httptest.Server
	svc    *service
	secret string
}

const inProcessRedirect = "http://127.0.0.1:9/cb"

func startInProcess(tb testing.TB, backend string, clientArgs ...string) *inProcessFlow {
	var handler http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	tb.Cleanup(srv.Close)
	// authorize_burst 0: no limit on new authorization requests, which a
	// benchmark makes hundreds of a second from one address.
	envs := testEnv(tb, backend, "log: {level: warn}\nthrottle: {authorize_burst: 0}\n")
	envs["MXIDP_ISSUER"] = srv.URL
	a := &app{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, getenv: env(envs)}
	c, err := a.config()
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	svc, err := a.newService(ctx, c, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { svc.store.Close() })
	handler = svc.handler

	var out bytes.Buffer
	if run([]string{"user", "add", "alice", "--password-stdin", "--email", "alice@example.org"}, strings.NewReader("alicepassword\n"), &out, &out, env(envs)) != 0 {
		tb.Fatal(out.String())
	}
	out.Reset()
	if run(append([]string{"client", "add", "bench", "--skip-consent", "--redirect-uri", inProcessRedirect}, clientArgs...), strings.NewReader(""), &out, &out, env(envs)) != 0 {
		tb.Fatal(out.String())
	}
	secret := regexp.MustCompile(`client_secret: (\S+)`).FindStringSubmatch(out.String())[1]
	return &inProcessFlow{srv: srv, svc: svc, secret: secret}
}

var (
	hiddenFields = regexp.MustCompile(`name="(id|csrf)" value="([^"]+)"`)
	accessToken  = regexp.MustCompile(`"access_token":"([^"]+)"`)
)

// login runs one complete login in a new browser: authorize, login page,
// login, callback, token, userinfo. before is called ahead of each step
// with its name.
func (f *inProcessFlow) login(tb testing.TB, before func(step string)) {
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(step string, req *http.Request, want int) []byte {
		before(step)
		resp, err := client.Do(req)
		if err != nil {
			tb.Fatalf("%s: %v", step, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			tb.Fatalf("%s: %s %s", step, resp.Status, body)
		}
		if want == http.StatusFound {
			return []byte(resp.Header.Get("Location"))
		}
		return body
	}
	form := func(u string, v url.Values) *http.Request {
		req, _ := http.NewRequest("POST", u, strings.NewReader(v.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return req
	}
	q := url.Values{"response_type": {"code"}, "client_id": {"bench"}, "redirect_uri": {inProcessRedirect},
		"scope": {"openid profile email"}, "state": {"s"}, "nonce": {"n"}}
	req, _ := http.NewRequest("GET", f.srv.URL+"/authorize?"+q.Encode(), nil)
	loc := do("authorize", req, http.StatusFound)
	req, _ = http.NewRequest("GET", string(loc), nil)
	page := do("login page", req, http.StatusOK)
	login := url.Values{"username": {"alice"}, "password": {"alicepassword"}}
	for _, m := range hiddenFields.FindAllStringSubmatch(string(page), -1) {
		login.Set(m[1], m[2])
	}
	loc = do("login", form(f.srv.URL+"/login", login), http.StatusFound)
	req, _ = http.NewRequest("GET", string(loc), nil)
	cb, _ := url.Parse(string(do("callback", req, http.StatusFound)))
	req = form(f.srv.URL+"/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {cb.Query().Get("code")},
		"redirect_uri": {inProcessRedirect}})
	req.SetBasicAuth("bench", f.secret)
	at := accessToken.FindSubmatch(do("token", req, http.StatusOK))
	if at == nil {
		tb.Fatal("token: no access token in the answer")
	}
	req, _ = http.NewRequest("GET", f.srv.URL+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+string(at[1]))
	do("userinfo", req, http.StatusOK)
	before("")
}

// BenchmarkLoginFlow runs complete logins in-process (authorize, login
// page, login, callback, token, userinfo) against the real handler on
// SQLite with a cheap password hash, for CPU profiles of everything but
// the hash, once per ID-token algorithm:
// go test -run '^$' -bench LoginFlow/ES256 -cpuprofile cpu.out ./cmd/mxidp/
func BenchmarkLoginFlow(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		b.Run(alg, func(b *testing.B) {
			f := startInProcess(b, "sqlite", "--id-token-alg", alg)
			for b.Loop() {
				f.login(b, func(string) {})
			}
		})
	}
}

// TestLoginFlowStatements holds the number of database statements each
// step of a login sends (queries, BEGIN and COMMIT, as /metrics counts
// them), on every backend: a change that adds one fails here and must
// say why. The counts are those of a warm server (the first flow also
// makes the throttle counters' rows).
func TestLoginFlowStatements(t *testing.T) {
	want := map[string]uint64{
		"authorize":  1, // the request
		"login page": 1, // the request
		// the request; admit the login name and network together, the
		// user, admit the user; end the three checks together; the audit
		// event, the session, the request done
		"login": 8,
		// the request joined with its session; the code
		"callback": 2,
		// the request by code; consume it, the access token and the
		// session's client, in one transaction; the user for the claims
		"token": 7,
		// the token, the user
		"userinfo": 2,
	}
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			f := startInProcess(t, backend)
			f.login(t, func(string) {})
			got := map[string]uint64{}
			step, last := "", f.svc.store.Statements()
			f.login(t, func(next string) {
				now := f.svc.store.Statements()
				if step != "" {
					got[step] = now - last
				}
				step, last = next, now
			})
			var total uint64
			for s, n := range want {
				total += got[s]
				if got[s] != n {
					t.Errorf("%s: %d statements, want %d", s, got[s], n)
				}
			}
			t.Logf("%d statements per login flow (%v)", total, got)
		})
	}
}
