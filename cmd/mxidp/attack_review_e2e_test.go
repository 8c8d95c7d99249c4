package main

// Attacks of a second review of the doors fixed for issue 11, each
// performed against a started mxidp on every backend.

import (
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// prompt=login and max_age demand that the user enter the password again
// (OpenID Connect Core 1.0 §3.1.2.1). Someone at a browser whose owner is
// signed in (a shared computer) gets the login form for such a request;
// posting its id and CSRF token to the consent form instead, with
// decision=allow, must not complete the request with the old session:
// neither for a client that asks for consent nor for one that skips it.
func TestConsentFormDoesNotStandInForTheFreshLoginPromptLoginDemands(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		for _, flags := range [][]string{{"--skip-consent"}, nil} {
			id := "app" + randomAlnum(6)
			redirect := "http://127.0.0.1:9/" + id + "/callback"
			e.d.cli(append([]string{"client", "add", id, "--redirect-uri", redirect, "--public"}, flags...)...)
			cfg := &oauth2.Config{ClientID: id, RedirectURL: redirect, Endpoint: e.provider.Endpoint(), Scopes: defaultScopes}
			b := newBrowser(t)
			p := b.until(b.submitLoginOf(t, b.until(b.get(mustAuthURL(cfg)), redirect)), redirect)
			if f, ok := consentPage(p); ok {
				p = b.until(b.decide(f, "allow", false), redirect)
			}
			if !strings.Contains(p.location, "code=") {
				t.Fatalf("%v: the owner's own login gave no code: %d %q", flags, p.status, p.location)
			}

			for _, demand := range []oauth2.AuthCodeOption{
				oauth2.SetAuthURLParam("prompt", "login"), oauth2.SetAuthURLParam("max_age", "0"),
			} {
				p = b.until(b.get(mustAuthURL(cfg, demand)), redirect)
				login, ok := parseLoginForm(p)
				if !ok {
					t.Fatalf("%v: a fresh login was demanded but no login form shown: %d %q", flags, p.status, p.location)
				}
				skip := loginForm{action: e.issuer + "/consent", fields: login.fields}
				p = b.until(b.decide(skip, "allow", false), redirect)
				if strings.HasPrefix(p.location, redirect) && strings.Contains(p.location, "code=") {
					t.Errorf("%v: the consent form completed a request demanding a fresh login without the password", flags)
				}
			}
		}
	})
}

func mustAuthURL(cfg *oauth2.Config, extra ...oauth2.AuthCodeOption) string {
	_, u := authURL(cfg, extra...)
	return u
}

// submitLoginOf signs in as alice on the login form p.
func (b *browser) submitLoginOf(t *testing.T, p page) page {
	t.Helper()
	f, ok := parseLoginForm(p)
	if !ok {
		t.Fatalf("no login form: %d %q", p.status, p.location)
	}
	return b.submitLogin(f, "alice", alicePassword)
}

