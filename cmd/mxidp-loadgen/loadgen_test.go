package main

import (
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
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
		t.Skip("no /proc:", err)
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
