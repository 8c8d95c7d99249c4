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
)

// BenchmarkLoginFlow runs complete logins in-process (authorize, login
// page, login, callback, token, userinfo) against the real handler on
// SQLite with a cheap password hash, for CPU profiles of everything but
// the hash: go test -run '^$' -bench LoginFlow -cpuprofile cpu.out ./cmd/mxidp/
func BenchmarkLoginFlow(b *testing.B) {
	var handler http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	defer srv.Close()
	envs := testEnv(b, "sqlite", "log: {level: warn}\n")
	envs["MXIDP_ISSUER"] = srv.URL
	a := &app{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, getenv: env(envs)}
	c, err := a.config()
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc, err := a.newService(ctx, c, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer svc.store.Close()
	handler = svc.handler

	var out bytes.Buffer
	if run([]string{"user", "add", "alice", "--password-stdin", "--email", "alice@example.org"}, strings.NewReader("alicepassword\n"), &out, &out, env(envs)) != 0 {
		b.Fatal(out.String())
	}
	const redirect = "http://127.0.0.1:9/cb"
	out.Reset()
	if run([]string{"client", "add", "bench", "--skip-consent", "--redirect-uri", redirect}, strings.NewReader(""), &out, &out, env(envs)) != 0 {
		b.Fatal(out.String())
	}
	secret := regexp.MustCompile(`client_secret: (\S+)`).FindStringSubmatch(out.String())[1]
	hidden := regexp.MustCompile(`name="(id|csrf)" value="([^"]+)"`)

	noFollow := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	step := func(client *http.Client, req *http.Request, want int) *http.Response {
		resp, err := client.Do(req)
		if err != nil || resp.StatusCode != want {
			b.Fatalf("%s %s: %v %v", req.Method, req.URL.Path, resp.Status, err)
		}
		return resp
	}
	b.ResetTimer()
	for b.Loop() {
		jar, _ := cookiejar.New(nil)
		client := &http.Client{Jar: jar, CheckRedirect: noFollow}
		q := url.Values{"response_type": {"code"}, "client_id": {"bench"}, "redirect_uri": {redirect},
			"scope": {"openid profile email"}, "state": {"s"}, "nonce": {"n"}}
		req, _ := http.NewRequest("GET", srv.URL+"/authorize?"+q.Encode(), nil)
		loc := step(client, req, 302).Header.Get("Location")
		req, _ = http.NewRequest("GET", loc, nil)
		resp := step(client, req, 200)
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		form := url.Values{"username": {"alice"}, "password": {"alicepassword"}}
		for _, m := range hidden.FindAllStringSubmatch(string(page), -1) {
			form.Set(m[1], m[2])
		}
		req, _ = http.NewRequest("POST", srv.URL+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		loc = step(client, req, 302).Header.Get("Location")
		req, _ = http.NewRequest("GET", loc, nil)
		cb, _ := url.Parse(step(client, req, 302).Header.Get("Location"))
		tq := url.Values{"grant_type": {"authorization_code"}, "code": {cb.Query().Get("code")}, "redirect_uri": {redirect}}
		req, _ = http.NewRequest("POST", srv.URL+"/oauth/token", strings.NewReader(tq.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("bench", secret)
		resp = step(client, req, 200)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		at := regexp.MustCompile(`"access_token":"([^"]+)"`).FindSubmatch(body)[1]
		req, _ = http.NewRequest("GET", srv.URL+"/userinfo", nil)
		req.Header.Set("Authorization", "Bearer "+string(at))
		step(client, req, 200).Body.Close()
	}
}
