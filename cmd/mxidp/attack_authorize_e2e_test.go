package main

// Attacks on the browser door: /authorize, the login and consent pages and
// the callback that issues the code, each performed against a started
// mxidp on every backend (docs/security.md names them).

import (
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// startLogin sends browser b to /authorize and returns the login link the
// client's redirect leads to (/login?id=…) and the request's id.
func startLogin(t *testing.T, b *browser, cfg *oauth2.Config) (string, string) {
	t.Helper()
	_, u := authURL(cfg)
	p := b.get(u)
	loc, err := url.Parse(p.location)
	if p.status != http.StatusFound || err != nil || loc.Query().Get("id") == "" {
		t.Fatalf("authorize: %d %q, want a redirect to the login page", p.status, p.location)
	}
	return p.location, loc.Query().Get("id")
}

// gotCode reports whether p, followed as far as the client, hands b a code.
func gotCode(b *browser, p page, redirectURI string) bool {
	p = b.until(p, redirectURI)
	return strings.HasPrefix(p.location, redirectURI) && strings.Contains(p.location, "code=")
}

// cookieOf returns the value of b's cookie name for the issuer, or "".
func cookieOf(b *browser, issuer, name string) string {
	u, _ := url.Parse(issuer)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// The one-click takeover: the attacker starts a login at the client in
// their own browser and gets a signed-in victim to open its genuine login
// link. The victim's browser is told what happened and completes nothing;
// the callback gives the attacker no code; a login form the attacker
// prepared (their CSRF token) is refused in the victim's browser.
func TestLoginLinkOfAnotherBrowsersRequestCompletesNothing(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		c := e.addClient("synapse")
		cfg := e.config(c, oauth2.AuthStyleInHeader)
		victim := newBrowser(t)
		e.exchange(cfg, e.authorize(victim, cfg)) // signed in: single sign-on would answer at once
		attacker := newBrowser(t)
		link, id := startLogin(t, attacker, cfg)

		p := victim.get(link)
		if p.status != http.StatusForbidden || p.location != "" || !strings.Contains(p.body, "started in another browser") {
			t.Errorf("the victim opening another browser's login link: %d (Location %q), want 403 with an explanation\n%s", p.status, p.location, p.body)
		}
		if gotCode(victim, p, c.redirectURI) {
			t.Error("the victim's browser completed the attacker's request")
		}
		if gotCode(attacker, attacker.get(e.issuer+"/authorize/callback?id="+url.QueryEscape(id)), c.redirectURI) {
			t.Fatal("the attacker fetched a code for the victim from the callback")
		}
		form, ok := parseLoginForm(attacker.get(link))
		if !ok {
			t.Fatal("the attacker's own browser gets no login form")
		}
		if p := victim.submitLogin(form, "alice", alicePassword); p.status != http.StatusForbidden || gotCode(victim, p, c.redirectURI) {
			t.Errorf("the attacker's form posted from the victim's browser: %d %q, want 403 and no code", p.status, p.location)
		}
		if gotCode(attacker, attacker.get(e.issuer+"/authorize/callback?id="+url.QueryEscape(id)), c.redirectURI) {
			t.Fatal("the attacker fetched a code after the victim posted the form")
		}
	})
}

// A request yields one code, ever, and only to the browser holding the
// session that completed it: a second visit of the callback gets none,
// and an attacker who planted their binding cookie in the victim's
// browser (cookie tossing from a sibling host) still cannot collect the
// victim's code, because the callback wants the victim's session too.
func TestCallbackGivesOneCodeOnlyToTheCompletingSession(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		c := e.addClient("synapse")
		cfg := e.config(c, oauth2.AuthStyleInHeader)
		b := newBrowser(t)
		link, id := startLogin(t, b, cfg)
		form, ok := parseLoginForm(b.get(link))
		if !ok {
			t.Fatal("no login form")
		}
		p := b.submitLogin(form, "alice", alicePassword)
		callback := p.location
		if !strings.Contains(callback, "/authorize/callback?id="+url.QueryEscape(id)) {
			t.Fatalf("login answered %d %q, want the callback", p.status, callback)
		}
		if !gotCode(b, b.get(callback), c.redirectURI) {
			t.Fatal("the first visit of the callback gave no code")
		}
		if gotCode(b, b.get(callback), c.redirectURI) {
			t.Error("a second visit of the callback minted another code")
		}

		victim := newBrowser(t)
		e.exchange(cfg, e.authorize(victim, cfg))
		attacker := newBrowser(t)
		link, id = startLogin(t, attacker, cfg)
		// The build before the binding sets no such cookie; there the
		// attack needs no tossing.
		if binding := cookieOf(attacker, e.issuer, "mxidp_browser"); binding != "" {
			u, _ := url.Parse(e.issuer)
			victim.c.Jar.SetCookies(u, []*http.Cookie{{Name: "mxidp_browser", Value: binding, Path: "/"}})
		} else if os.Getenv("MXIDP_TEST_BINARY") == "" {
			t.Fatal("/authorize set no browser-binding cookie")
		}
		victim.get(link) // single sign-on completes the request in the victim's browser
		callback = e.issuer + "/authorize/callback?id=" + url.QueryEscape(id)
		if gotCode(attacker, attacker.get(callback), c.redirectURI) {
			t.Fatal("the attacker collected the code of a request the victim completed")
		}
		// Nor through another method, which the router might hand to the
		// library unguarded.
		for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			req, _ := http.NewRequest(method, callback, strings.NewReader(url.Values{"id": {id}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if p := attacker.do(req); gotCode(attacker, p, c.redirectURI) {
				t.Fatalf("the attacker collected the victim's code with %s /authorize/callback", method)
			}
		}
	})
}

// Login CSRF by cookie tossing: a token an attacker sets in both the CSRF
// cookie and the form (as a sibling host can) is refused, because the
// form's token is an HMAC over the request and the browser binding, not a
// copy of a cookie.
func TestLoginFormRefusesATokenPlantedInCookieAndForm(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		c := e.addClient("synapse")
		cfg := e.config(c, oauth2.AuthStyleInHeader)
		b := newBrowser(t)
		link, id := startLogin(t, b, cfg)
		b.get(link)
		planted := randomAlnum(43)
		u, _ := url.Parse(e.issuer)
		b.c.Jar.SetCookies(u, []*http.Cookie{{Name: "mxidp_csrf", Value: planted, Path: "/"}})
		form := loginForm{action: e.issuer + "/login", fields: map[string]string{"id": id, "csrf": planted}}
		if p := b.submitLogin(form, "alice", alicePassword); p.status != http.StatusForbidden || gotCode(b, p, c.redirectURI) {
			t.Errorf("login with a planted CSRF token: %d %q, want 403", p.status, p.location)
		}
	})
}

// Under an https issuer every cookie has the __Host- prefix (so no sibling
// host can set it) and a cookie without it binds nothing.
func TestHTTPSCookiesCarryTheHostPrefix(t *testing.T) {
	d := newDeployment(t, "sqlite")
	d.env["MXIDP_ISSUER"] = "https://idp.example.org"
	(&cli{t: t, env: d.env}).must(alicePassword+"\n", "user", "add", "alice", "--password-stdin")
	out := d.cli("client", "add", "synapse", "--redirect-uri", "https://matrix.example.org/cb", "--skip-consent")
	_ = out
	s := d.start()
	q := url.Values{"client_id": {"synapse"}, "redirect_uri": {"https://matrix.example.org/cb"}, "response_type": {"code"},
		"scope": {"openid"}, "state": {"s"}, "nonce": {"n"}, "code_challenge": {strings.Repeat("a", 43)}, "code_challenge_method": {"S256"}}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(s.url + "/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var binding *http.Cookie
	for _, c := range resp.Cookies() {
		if strings.Contains(c.Name, "mxidp_browser") {
			binding = c
		}
	}
	if binding == nil || binding.Name != "__Host-mxidp_browser" || !binding.Secure || binding.Path != "/" || binding.Domain != "" || !binding.HttpOnly {
		t.Fatalf("binding cookie under https: %+v, want __Host-mxidp_browser, Secure, HttpOnly, Path=/", binding)
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	login := s.url + loc.Path + "?" + loc.RawQuery
	for name, want := range map[string]int{"mxidp_browser": http.StatusForbidden, "__Host-mxidp_browser": http.StatusOK} {
		req, _ := http.NewRequest(http.MethodGet, login, nil)
		req.AddCookie(&http.Cookie{Name: name, Value: binding.Value})
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("login page with the binding in cookie %s: %d, want %d", name, resp.StatusCode, want)
		}
	}
}

// PKCE is S256 or nothing, and a public client must use it: both refused
// at /authorize, before anyone logs in.
func TestAuthorizeRefusesPlainPKCEAndPublicClientsWithoutPKCE(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		conf := e.config(e.addClient("synapse"), oauth2.AuthStyleInHeader)
		pub := e.config(e.addClient("app", "--public"), oauth2.AuthStyleInParams)
		b := newBrowser(t)
		for name, u := range map[string]string{
			"plain PKCE": conf.AuthCodeURL("s", oidc.Nonce("n"), oauth2.SetAuthURLParam("code_challenge", strings.Repeat("v", 43)),
				oauth2.SetAuthURLParam("code_challenge_method", "plain")),
			"PKCE without a method":      conf.AuthCodeURL("s", oidc.Nonce("n"), oauth2.SetAuthURLParam("code_challenge", strings.Repeat("v", 43))),
			"public client without PKCE": pub.AuthCodeURL("s", oidc.Nonce("n")),
		} {
			p := b.get(u)
			loc, _ := url.Parse(p.location)
			if p.status != http.StatusFound || loc == nil || loc.Query().Get("error") != "invalid_request" {
				t.Errorf("%s: %d %q, want a redirect to the client with error=invalid_request", name, p.status, p.location)
			}
		}
	})
}

// Every stored parameter of an authorization request has a cap: an
// oversized one gets an explaining page, and nothing is stored.
func TestAuthorizeRefusesOversizedParameters(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		cfg := e.config(e.addClient("synapse"), oauth2.AuthStyleInHeader)
		b := newBrowser(t)
		ok := cfg.AuthCodeURL(strings.Repeat("s", 2048), oidc.Nonce("n"), oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
		if p := b.get(ok); p.status != http.StatusFound || !strings.Contains(p.location, "/login?id=") {
			t.Fatalf("a 2 KiB state: %d %q, want the login page", p.status, p.location)
		}
		for name, opt := range map[string]oauth2.AuthCodeOption{
			"state":      oauth2.SetAuthURLParam("state", strings.Repeat("s", 2049)),
			"nonce":      oidc.Nonce(strings.Repeat("n", 2049)),
			"login_hint": oauth2.SetAuthURLParam("login_hint", strings.Repeat("h", 257)),
			"ui_locales": oauth2.SetAuthURLParam("ui_locales", strings.Repeat("de ", 30)),
			"scope":      oauth2.SetAuthURLParam("scope", "openid "+strings.Repeat("x", 1100)),
			"unknown":    oauth2.SetAuthURLParam("padding", strings.Repeat("p", 20000)),
		} {
			p := b.get(cfg.AuthCodeURL("s", opt, oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
			if p.status != http.StatusBadRequest || p.location != "" {
				t.Errorf("oversized %s: %d %q, want 400 and no redirect", name, p.status, p.location)
			}
		}
		// The same through POST, with a body far over the form cap.
		body := url.Values{"client_id": {"synapse"}, "redirect_uri": {cfg.RedirectURL}, "response_type": {"code"},
			"scope": {"openid"}, "state": {strings.Repeat("s", 2<<20)}}
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/authorize", strings.NewReader(body.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if p := b.do(req); p.status < 400 || p.location != "" {
			t.Errorf("POST /authorize with a 2 MiB state: %d %q, want a refusal", p.status, p.location)
		}
	})
}

// Every login starts a new session: a new cookie and a new sid, and the
// cookie from before (planted or stolen) no longer signs anyone in.
func TestEveryLoginRotatesTheSessionCookieAndSid(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		cfg := e.config(e.addClient("synapse"), oauth2.AuthStyleInHeader)
		b := newBrowser(t)
		first := e.exchange(cfg, e.authorize(b, cfg))
		before := cookieOf(b, e.issuer, "mxidp_session")
		second := e.exchange(cfg, e.authorize(b, cfg, oauth2.SetAuthURLParam("prompt", "login")))
		after := cookieOf(b, e.issuer, "mxidp_session")
		if before == "" || after == before || second.claims.Sid == first.claims.Sid {
			t.Errorf("re-login: cookie changed %v, sid %q then %q; want both new", after != before, first.claims.Sid, second.claims.Sid)
		}
		old := newBrowser(t)
		u, _ := url.Parse(e.issuer)
		old.c.Jar.SetCookies(u, []*http.Cookie{{Name: "mxidp_session", Value: before, Path: "/"}})
		if !authorizeShowsForm(old, cfg, cfg.RedirectURL) {
			t.Error("the session cookie from before the re-login still signs the browser in")
		}
	})
}

// A callback for an unknown request is unauthenticated noise: a page for
// the user and an INFO line, no ERROR in the log.
func TestUnknownCallbackIsNotLoggedAsAnError(t *testing.T) {
	e := startOpenID(t, "sqlite")
	b := newBrowser(t)
	if p := b.get(e.issuer + "/authorize/callback?id=" + randomAlnum(22)); p.status != http.StatusNotFound {
		t.Errorf("unknown callback id: %d, want 404", p.status)
	}
	for _, line := range strings.Split(e.s.stderr.String(), "\n") {
		if strings.Contains(line, "ERROR") {
			t.Errorf("logged as an error: %s", line)
		}
	}
}

// The browser binding is per browser, not per tab: a login that began in
// one tab (the client opened the login page there) and is finished in
// another tab of the same browser signs in and reaches the client, whose
// code go-oidc redeems.
func TestBrowserLoginBegunInOneTabFinishesInAnother(t *testing.T) {
	c := newChrome(t)
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		rp := newRelyingParty(t)
		cfg := e.config(rp.register(e, "synapse", "--skip-consent"), oauth2.AuthStyleInHeader)
		first := c.user(t)
		r, u := authURL(cfg)
		first.do("open the login page in the first tab", chromedp.Navigate(u), chromedp.WaitVisible(chromedp.CSS("#password")))
		loginURL := eval[string](first, `location.href`)
		second := openTab(t, first.ctx) // the same browser: its cookies
		second.do("open the same login page in a second tab", chromedp.Navigate(loginURL), chromedp.WaitVisible(chromedp.CSS("#password")))
		second.signIn("alice", alicePassword)
		l := e.exchange(cfg, codeFrom(t, rp.callback(t, second), r))
		if l.claims.PreferredUsername != "alice" {
			t.Errorf("signed in as %q, want alice", l.claims.PreferredUsername)
		}
	})
}

// Every authorization request is a stored row, written for whoever asks:
// one network gets the burst and the rate, then 429 with Retry-After, so
// no one can fill the database by opening requests.
func TestAuthorizeFloodFromOneNetworkIsBounded(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		cfg := e.config(e.addClient("synapse"), oauth2.AuthStyleInHeader)
		u := cfg.AuthCodeURL("s", oidc.Nonce("n"), oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		start := time.Now()
		opened, refused := 0, 0
		var retryAfter string
		for range 400 {
			resp, err := client.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusFound:
				opened++
			case http.StatusTooManyRequests:
				refused++
				retryAfter = resp.Header.Get("Retry-After")
			default:
				t.Fatalf("authorize answered %d", resp.StatusCode)
			}
		}
		limit := 300 + int(5*time.Since(start).Seconds()) + 1
		if opened > limit || refused == 0 || retryAfter == "" {
			t.Errorf("400 authorization requests from one address: %d opened (limit %d), %d refused (Retry-After %q)", opened, limit, refused, retryAfter)
		}
		// Another network (named by the trusted proxy on loopback) is not
		// held up by the first one's flood.
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("X-Forwarded-For", "198.51.100.7")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound {
			t.Errorf("another network during the flood: %d, want the login page", resp.StatusCode)
		}
	})
}

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
