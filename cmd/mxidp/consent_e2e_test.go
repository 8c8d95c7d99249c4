package main

import (
	"html"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// consentPage finds the consent form in a page: id and csrf, posted to
// /consent.
func consentPage(p page) (loginForm, bool) {
	return parseFormWithID(p, "/consent")
}

func parseFormWithID(p page, suffix string) (loginForm, bool) {
	f, ok := parseForm(p, suffix)
	return f, ok && f.fields["id"] != ""
}

// until follows redirects from p until a page that is not a redirect, or a
// redirect to the client's redirect URI (not fetched).
func (b *browser) until(p page, redirectURI string) page {
	b.t.Helper()
	for hops := 0; p.status >= 300 && p.status < 400 && !strings.HasPrefix(p.location, redirectURI); hops++ {
		if hops > 10 {
			b.t.Fatal("too many redirects")
		}
		p = b.get(p.location)
	}
	return p
}

func (b *browser) decide(f loginForm, decision string, remember bool) page {
	b.t.Helper()
	form := url.Values{"id": {f.fields["id"]}, "csrf": {f.fields["csrf"]}, "decision": {decision}}
	if remember {
		form.Set("remember", "1")
	}
	req, _ := http.NewRequest(http.MethodPost, f.action, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// Consent (issue 4): asked for clients not registered to skip it, denial
// reaches the client as access_denied with its state, a remembered "allow"
// is not asked again, prompt=consent asks anyway, and prompt=none without a
// decision gets consent_required.
func TestConsentIsAskedRememberedAndDeniable(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		redirect := "http://127.0.0.1:9/app/callback"
		e.d.cli("client", "add", "app", "--name", "Example App", "--redirect-uri", redirect)
		cfg := &oauth2.Config{ClientID: "app", RedirectURL: redirect, Endpoint: e.provider.Endpoint(),
			Scopes: []string{oidc.ScopeOpenID, "profile", "email"}}
		authURL := func(state string, extra ...oauth2.AuthCodeOption) string {
			return cfg.AuthCodeURL(state, append(extra, oidc.Nonce(randomAlnum(32)), oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))...)
		}
		b := newBrowser(t)

		// Log in: the consent page follows.
		p := b.until(b.get(authURL("state-1")), redirect)
		login, ok := parseLoginForm(p)
		if !ok {
			t.Fatalf("no login form: %d %s", p.status, p.body)
		}
		p = b.until(b.submitLogin(login, "alice", alicePassword), redirect)
		f, ok := consentPage(p)
		if !ok || !strings.Contains(p.body, "Example App") || !strings.Contains(p.body, "See your e-mail address") || !strings.Contains(p.body, "alice") {
			t.Fatalf("no consent page after login: %d %s", p.status, p.body)
		}
		// Deny: access_denied with the state.
		p = b.until(b.decide(f, "deny", false), redirect)
		u, _ := url.Parse(p.location)
		if !strings.HasPrefix(p.location, redirect) || u.Query().Get("error") != "access_denied" || u.Query().Get("state") != "state-1" || u.Query().Get("code") != "" {
			t.Fatalf("deny: %d Location %q", p.status, p.location)
		}

		// Same browser: no password (SSO), but consent again.
		p = b.until(b.get(authURL("state-2")), redirect)
		if _, isLogin := parseLoginForm(p); isLogin {
			t.Fatal("asked for the password again within the session")
		}
		f, ok = consentPage(p)
		if !ok {
			t.Fatalf("no consent page on the second attempt: %d %s", p.status, p.body)
		}
		p = b.until(b.decide(f, "allow", true), redirect)
		u, _ = url.Parse(p.location)
		if u == nil || u.Query().Get("code") == "" || u.Query().Get("state") != "state-2" {
			t.Fatalf("allow: %d Location %q", p.status, p.location)
		}

		// Remembered: straight back with a code.
		p = b.until(b.get(authURL("state-3")), redirect)
		if u, _ = url.Parse(p.location); u == nil || u.Query().Get("code") == "" {
			t.Fatalf("a remembered consent was asked again: %d %s", p.status, p.body)
		}
		// prompt=consent asks anyway.
		p = b.until(b.get(authURL("state-4", oauth2.SetAuthURLParam("prompt", "consent"))), redirect)
		if _, ok := consentPage(p); !ok {
			t.Fatalf("prompt=consent did not ask: %d Location %q", p.status, p.location)
		}

		// Another client, no decision yet, prompt=none: consent_required.
		other := "http://127.0.0.1:9/other/callback"
		e.d.cli("client", "add", "other", "--redirect-uri", other)
		cfg.ClientID, cfg.RedirectURL = "other", other
		p = b.until(b.get(authURL("state-5", oauth2.SetAuthURLParam("prompt", "none"))), other)
		u, _ = url.Parse(p.location)
		if u == nil || u.Query().Get("error") != "consent_required" || u.Query().Get("state") != "state-5" {
			t.Fatalf("prompt=none without consent: %d Location %q", p.status, p.location)
		}
	})
}

// The German catalogue reaches the pages through Accept-Language.
func TestLoginPageSpeaksGermanWhenAsked(t *testing.T) {
	e := startOpenID(t, "sqlite")
	c := e.addClient("app")
	cfg := e.config(c, oauth2.AuthStyleInHeader)
	b := newBrowser(t)
	first := b.get(cfg.AuthCodeURL("s", oidc.Nonce("n"), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	req, _ := http.NewRequest(http.MethodGet, first.location, nil)
	req.Header.Set("Accept-Language", "de")
	p := b.do(req)
	if !strings.Contains(p.body, `<html lang="de">`) || !strings.Contains(p.body, "Passwort") || strings.Contains(p.body, "Password<") {
		t.Errorf("German login page expected:\n%s", p.body)
	}
}

// signedIn returns a browser with a session at mxidp, and the client.
func signedIn(t *testing.T, e *openIDEnv) (*browser, *oauth2.Config, rpClient) {
	t.Helper()
	c := e.addClient("app")
	cfg := e.config(c, oauth2.AuthStyleInHeader)
	b := newBrowser(t)
	e.exchange(cfg, e.authorize(b, cfg))
	return b, cfg, c
}

// authorizeShowsForm reports whether a new authorization in b asks for the
// password (no session) or returns a code at once (session).
func authorizeShowsForm(b *browser, cfg *oauth2.Config, redirect string) bool {
	b.t.Helper()
	p := b.until(b.get(cfg.AuthCodeURL(randomAlnum(30), oidc.Nonce("n"), oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))), redirect)
	_, isForm := parseLoginForm(p)
	if !isForm && !strings.Contains(p.location, "code=") {
		b.t.Fatalf("neither a form nor a code: %d %q", p.status, p.location)
	}
	return isForm
}

// RP-initiated logout without an id_token_hint asks the user first; the
// confirmation form needs its CSRF token; confirming ends the session.
func TestLogoutWithoutHintAsksTheUserFirst(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		b, cfg, c := signedIn(t, e)
		p := b.get(e.meta.EndSession)
		f, ok := parseForm(p, "/logout")
		if p.status != http.StatusOK || !ok || !strings.Contains(p.body, "Sign out?") || !strings.Contains(p.body, "alice") {
			t.Fatalf("no confirmation page: %d %s", p.status, p.body)
		}
		if authorizeShowsForm(b, cfg, c.redirectURI) {
			t.Fatal("showing the confirmation ended the session already")
		}
		forged := url.Values{}
		req, _ := http.NewRequest(http.MethodPost, f.action, strings.NewReader(forged.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if p := b.do(req); p.status != http.StatusForbidden {
			t.Errorf("logout without its CSRF token: %d, want 403", p.status)
		}
		if authorizeShowsForm(b, cfg, c.redirectURI) {
			t.Fatal("a forged logout ended the session")
		}
		req, _ = http.NewRequest(http.MethodPost, f.action, strings.NewReader(url.Values{"csrf": {f.fields["csrf"]}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if p := b.until(b.do(req), "-"); p.status != http.StatusOK || !strings.Contains(p.body, "You are signed out") {
			t.Errorf("after confirming: %d %s", p.status, p.body)
		}
		if !authorizeShowsForm(b, cfg, c.redirectURI) {
			t.Error("the session survived a confirmed logout")
		}
	})
}

// parseForm finds a form posting to a path ending in suffix, with its inputs.
func parseForm(p page, suffix string) (loginForm, bool) {
	m := formActionRE.FindStringSubmatch(p.body)
	if m == nil || !strings.HasSuffix(html.UnescapeString(m[1]), suffix) {
		return loginForm{}, false
	}
	f := loginForm{action: html.UnescapeString(m[1]), fields: map[string]string{}}
	for _, in := range inputRE.FindAllString(p.body, -1) {
		attrs := map[string]string{}
		for _, a := range attrRE.FindAllStringSubmatch(in, -1) {
			attrs[a[1]] = html.UnescapeString(a[2])
		}
		f.fields[attrs["name"]] = attrs["value"]
	}
	return f, f.fields["csrf"] != ""
}

// Issue 4 acceptance 3: a login POST without its CSRF token is refused;
// pages may not be framed or cached, and load nothing from elsewhere.
func TestLoginPageRefusesForgedPostsFramingAndCaching(t *testing.T) {
	e := startOpenID(t, "sqlite")
	c := e.addClient("app")
	cfg := e.config(c, oauth2.AuthStyleInHeader)
	b := newBrowser(t)
	first := b.get(cfg.AuthCodeURL("s", oidc.Nonce("n"), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	req, _ := http.NewRequest(http.MethodGet, first.location, nil)
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "style-src 'self'", "base-uri 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	// No form-action: browsers would apply it to the whole redirect chain
	// after the login, which goes on past the client (Synapse's SSO
	// callback to the Matrix client).
	if strings.Contains(csp, "form-action") {
		t.Errorf("CSP %q limits form-action, which breaks the redirect chain after a login", csp)
	}
	if resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("headers: X-Frame-Options %q, Cache-Control %q", resp.Header.Get("X-Frame-Options"), resp.Header.Get("Cache-Control"))
	}
	p := b.get(first.location)
	f, ok := parseLoginForm(p)
	if !ok {
		t.Fatal("no login form")
	}
	form := url.Values{"id": {f.fields["id"]}, "username": {"alice"}, "password": {alicePassword}}
	req, _ = http.NewRequest(http.MethodPost, f.action, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if p := b.do(req); p.status != http.StatusForbidden || p.location != "" {
		t.Errorf("login without the CSRF token: %d, Location %q; want 403", p.status, p.location)
	}
	form.Set("csrf", strings.Repeat("x", 43))
	req, _ = http.NewRequest(http.MethodPost, f.action, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if p := b.do(req); p.status != http.StatusForbidden {
		t.Errorf("login with a wrong CSRF token: %d, want 403", p.status)
	}
}

// login_hint fills in the username; ui_locales chooses the language ahead
// of the browser's Accept-Language (OIDC Core §3.1.2.1).
func TestLoginHintAndUILocalesShapeTheForm(t *testing.T) {
	e := startOpenID(t, "sqlite")
	c := e.addClient("app")
	cfg := e.config(c, oauth2.AuthStyleInHeader)
	b := newBrowser(t)
	first := b.get(cfg.AuthCodeURL("s", oidc.Nonce("n"), oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
		oauth2.SetAuthURLParam("login_hint", "alice"), oauth2.SetAuthURLParam("ui_locales", "de en")))
	req, _ := http.NewRequest(http.MethodGet, first.location, nil)
	req.Header.Set("Accept-Language", "en-US")
	p := b.do(req)
	f, ok := parseLoginForm(p)
	if !ok || f.fields["username"] != "alice" {
		t.Errorf("username field %q, want alice from login_hint", f.fields["username"])
	}
	if !strings.Contains(p.body, `<html lang="de">`) {
		t.Errorf("ui_locales=de did not win over Accept-Language: %s", p.body)
	}
	// After a wrong password the username stays and the password does not.
	p = b.submitLogin(f, "alice", "wrong password")
	f2, ok := parseLoginForm(p)
	if p.status != http.StatusUnauthorized || !ok || f2.fields["username"] != "alice" || f2.fields["password"] != "" || !strings.Contains(p.body, `role="alert"`) {
		t.Errorf("after a wrong password: %d, username %q, password %q", p.status, f2.fields["username"], f2.fields["password"])
	}
}

// A request mxidp cannot send back to the client (an unregistered redirect
// URI, which RFC 6749 §4.1.2.1 forbids redirecting to) gets a page that
// says what happened and what to do, in the user's language, not a bare
// "invalid_request".
func TestUnusableAuthorizeRequestGetsAnExplainingPage(t *testing.T) {
	e := startOpenID(t, "sqlite")
	c := e.addClient("app")
	cfg := e.config(c, oauth2.AuthStyleInHeader)
	cfg.RedirectURL = c.redirectURI + "/elsewhere"
	req, _ := http.NewRequest(http.MethodGet, cfg.AuthCodeURL("s", oidc.Nonce("n")), nil)
	req.Header.Set("Accept-Language", "de")
	resp, err := newBrowser(t).c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body := new(strings.Builder)
	_, _ = io.Copy(body, resp.Body)
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("status %d, Location %q, Content-Type %q", resp.StatusCode, resp.Header.Get("Location"), resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{"Diese Anmeldeanfrage ist ungültig", "redirect_uri", `role="alert"`} {
		if !strings.Contains(body.String(), want) {
			t.Errorf("page lacks %q:\n%s", want, body)
		}
	}
}
