package main

// Browser tests (issue 4): the login, consent and logout pages driven in a
// real headless Chromium through chromedp, against a started mxidp on every
// backend, with a relying party of x/oauth2 and go-oidc behind a callback
// served on loopback. TestPageScreenshots also photographs the pages;
// `make screenshots` keeps the pictures in docs/screenshots.

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/mxidp/mxidp/storage/storagetest"
	"golang.org/x/oauth2"
)

// chromiumPath is Debian's Chromium, which .ci/deps installs.
const chromiumPath = "/usr/bin/chromium"

// chrome is one headless Chromium, shared by the subtests of a test; each
// user of it gets a browser context of their own (no shared cookies).
type chrome struct {
	ctx context.Context
}

// newChrome starts Chromium with a fresh profile. Without Chromium the test
// fails where MXIDP_TEST_POSTGRES_REQUIRED=1 (make test, CI), else skips.
func newChrome(t *testing.T, extra ...chromedp.ExecAllocatorOption) *chrome {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		msg := fmt.Sprintf("browser tests need Chromium at %s (Debian: apt-get install chromium): %v", chromiumPath, err)
		if os.Getenv(storagetest.RequiredEnv) == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	profile, err := os.MkdirTemp("", "mxidp-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(profile),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(opts, extra...)...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		os.RemoveAll(profile)
	})
	// A browser that does not start within a minute is stopped.
	timer := time.AfterFunc(60*time.Second, cancel)
	defer timer.Stop()
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", chromiumPath, err)
	}
	return &chrome{ctx: ctx}
}

// tab is one browser user: a tab in a browser context of its own, which
// records what it requests and which documents it shows.
type tab struct {
	t   *testing.T
	ctx context.Context

	mu        sync.Mutex
	requests  []string // every URL requested, redirects included
	documents []string // the documents the main frame showed
	status    int64    // of the last document response
	frames    map[string]string
}

func (c *chrome) user(t *testing.T) *tab {
	t.Helper()
	return openTab(t, c.ctx, chromedp.WithNewBrowserContext())
}

// openTab opens a tab under parent: in a browser context of its own with
// chromedp.WithNewBrowserContext, else in parent's (sharing its cookies).
func openTab(t *testing.T, parent context.Context, opts ...chromedp.ContextOption) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(parent, opts...)
	t.Cleanup(cancel)
	b := &tab{t: t, ctx: ctx, frames: map[string]string{}}
	if err := chromedp.Listen(ctx, b.record); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	return b
}

func (b *tab) record(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		b.requests = append(b.requests, ev.Request.URL)
	case *network.EventResponseReceived:
		if ev.Type == network.ResourceTypeDocument {
			b.status = ev.Response.Status
		}
	case *cdppage.EventFrameNavigated:
		if ev.Frame.ParentID == "" {
			b.documents = append(b.documents, ev.Frame.URL)
		} else {
			b.frames[string(ev.Frame.ID)] = ev.Frame.URL
		}
	}
}

// reset forgets what was recorded so far.
func (b *tab) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.requests, b.documents, b.status = nil, nil, 0
	clear(b.frames)
}

func (b *tab) seen() (requests, documents []string, status int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.requests), slices.Clone(b.documents), b.status
}

// do runs the steps, failing the test after 20 s.
func (b *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		_, docs, status := b.seen()
		b.t.Fatalf("%s: %v (documents shown %v, last status %d)", what, err, docs, status)
	}
}

// eval runs JavaScript in the page.
func eval[T any](b *tab, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func (b *tab) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// signIn fills the login form the tab shows and submits it.
func (b *tab) signIn(username, password string) {
	b.t.Helper()
	b.do("sign in through the form",
		chromedp.WaitVisible(chromedp.CSS("#password")),
		chromedp.SendKeys(chromedp.CSS("#username"), username),
		chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Click(chromedp.CSS(`form button[type=submit]`)))
}

// relyingParty serves the clients' redirect URIs on loopback: a callback
// records its query and shows a small page; /frame frames another page.
type relyingParty struct {
	srv       *httptest.Server
	callbacks chan url.Values
}

func newRelyingParty(t *testing.T) *relyingParty {
	rp := &relyingParty{callbacks: make(chan url.Values, 16)}
	rp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		switch {
		case strings.HasSuffix(r.URL.Path, "/callback"):
			select {
			case rp.callbacks <- r.URL.Query():
			default:
			}
		case r.URL.Path == "/frame":
			fmt.Fprintf(w, `<!doctype html><title>frame</title><iframe id="framed" src="%s"></iframe>`, html.EscapeString(r.URL.Query().Get("src")))
			return
		}
		fmt.Fprintf(w, `<!doctype html><title>relying party</title><p id="rp">%s</p>`, html.EscapeString(r.URL.Path))
	}))
	t.Cleanup(rp.srv.Close)
	return rp
}

// callback waits for the next visit of a callback, and for its page.
func (rp *relyingParty) callback(t *testing.T, b *tab) url.Values {
	t.Helper()
	select {
	case q := <-rp.callbacks:
		b.do("show the callback page", chromedp.WaitVisible(chromedp.CSS("#rp")))
		return q
	case <-time.After(15 * time.Second):
		_, docs, status := b.seen()
		t.Fatalf("the browser never reached the callback (documents shown %v, last status %d)", docs, status)
		return nil
	}
}

// register adds a client whose redirect URI is this relying party's.
func (rp *relyingParty) register(e *openIDEnv, id string, flags ...string) rpClient {
	e.t.Helper()
	c := rpClient{id: id, redirectURI: rp.srv.URL + "/" + id + "/callback"}
	out := e.d.cli(append([]string{"client", "add", id, "--redirect-uri", c.redirectURI}, flags...)...)
	m := clientSecretRE.FindStringSubmatch(out)
	if m == nil {
		e.t.Fatalf("client add printed no secret: %q", out)
	}
	c.secret = m[1]
	return c
}

// authURL starts an authorization with S256 PKCE and a nonce.
func authURL(cfg *oauth2.Config, extra ...oauth2.AuthCodeOption) (authResult, string) {
	r := authResult{state: randomAlnum(30), nonce: randomAlnum(32), verifier: oauth2.GenerateVerifier()}
	opts := append([]oauth2.AuthCodeOption{oidc.Nonce(r.nonce), oauth2.S256ChallengeOption(r.verifier)}, extra...)
	return r, cfg.AuthCodeURL(r.state, opts...)
}

// codeFrom checks a callback's query for the state and a code.
func codeFrom(t *testing.T, q url.Values, r authResult) authResult {
	t.Helper()
	if q.Get("error") != "" || q.Get("code") == "" {
		t.Fatalf("callback without a code: %v", q)
	}
	if q.Get("state") != r.state {
		t.Errorf("state came back as %q, want %q", q.Get("state"), r.state)
	}
	r.code = q.Get("code")
	return r
}

// wantOrigins asserts that every request went to one of the origins.
func wantOrigins(t *testing.T, requests []string, origins ...string) {
	t.Helper()
	if len(requests) == 0 {
		t.Error("no requests were recorded")
	}
	for _, r := range requests {
		if !slices.Contains(origins, origin(r)) {
			t.Errorf("the browser requested %s, outside %v", r, origins)
		}
	}
}

func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Scheme + "://" + u.Host
}

// onlyAt asserts that every document shown came from origin.
func onlyAt(t *testing.T, what string, documents []string, origin string) {
	t.Helper()
	for _, d := range documents {
		if !strings.HasPrefix(d, origin+"/") {
			t.Errorf("%s: the browser showed %s (documents %v); want only pages of %s", what, d, documents, origin)
		}
	}
}

// (a) sign-in through the form, the code exchanges and the ID token
// verifies; (b) a second client in the same browser gets its code without
// any page of mxidp's being shown; (g) every request of the pages goes to
// mxidp or to the client.
func TestBrowserSignInThenSingleSignOnLoadsNothingFromElsewhere(t *testing.T) {
	c := newChrome(t)
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		rp := newRelyingParty(t)
		synapse, other := rp.register(e, "synapse", "--skip-consent"), rp.register(e, "other", "--skip-consent")
		cfgS, cfgO := e.config(synapse, oauth2.AuthStyleInHeader), e.config(other, oauth2.AuthStyleInParams)
		b := c.user(t)

		r, u := authURL(cfgS)
		b.do("open the login page", chromedp.Navigate(u), chromedp.WaitVisible(chromedp.CSS("#password")))
		if got := b.text("h1"); got != "Sign in" {
			t.Errorf("login page heading %q, want Sign in", got)
		}
		b.signIn("alice", alicePassword)
		first := e.exchange(cfgS, codeFrom(t, rp.callback(t, b), r))
		if first.claims.PreferredUsername != "alice" || first.claims.Sid == "" {
			t.Errorf("ID token claims %+v", first.claims)
		}
		requests, docs, _ := b.seen()
		wantOrigins(t, requests, e.issuer, rp.srv.URL)
		if !slices.ContainsFunc(requests, func(r string) bool { return strings.HasSuffix(r, "/static/mxidp.css") }) {
			t.Errorf("the login page loaded no stylesheet; requests %v", requests)
		}
		if len(docs) != 2 || !strings.HasPrefix(docs[0], e.issuer+"/login?") || !strings.HasPrefix(docs[1], synapse.redirectURI+"?") {
			t.Errorf("documents shown %v; want the login page, then the callback", docs)
		}

		b.reset()
		r2, u2 := authURL(cfgO)
		b.do("authorize the second client", chromedp.Navigate(u2))
		second := e.exchange(cfgO, codeFrom(t, rp.callback(t, b), r2))
		requests, docs, _ = b.seen()
		onlyAt(t, "single sign-on", docs, rp.srv.URL)
		wantOrigins(t, requests, e.issuer, rp.srv.URL)
		if second.claims.Sid != first.claims.Sid || second.idToken.Subject != first.idToken.Subject {
			t.Errorf("single sign-on gave sid %q sub %q, the first login sid %q sub %q",
				second.claims.Sid, second.idToken.Subject, first.claims.Sid, first.idToken.Subject)
		}
	})
}

// (c) a client without skip-consent shows the consent page with its name;
// Allow with "remember" checked gives a code, and the next authorization
// of that client in the browser asks nothing; (g) as above.
func TestBrowserConsentIsAskedOnceWhenRemembered(t *testing.T) {
	c := newChrome(t)
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		rp := newRelyingParty(t)
		app := rp.register(e, "app", "--name", "Example App")
		cfg := e.config(app, oauth2.AuthStyleInHeader)
		b := c.user(t)

		r, u := authURL(cfg)
		b.do("open the login page", chromedp.Navigate(u))
		b.signIn("alice", alicePassword)
		b.do("show the consent page", chromedp.WaitVisible(chromedp.CSS(`button[name=decision][value=allow]`)))
		if body := b.text("main"); !strings.Contains(body, "Example App") || !strings.Contains(body, "See your e-mail address") {
			t.Errorf("consent page without the client's name or the scopes:\n%s", body)
		}
		if !eval[bool](b, `document.querySelector('#remember').checked`) {
			b.do("check remember", chromedp.Click(chromedp.CSS("#remember")))
		}
		b.do("allow", chromedp.Click(chromedp.CSS(`button[name=decision][value=allow]`)))
		e.exchange(cfg, codeFrom(t, rp.callback(t, b), r))
		requests, docs, _ := b.seen()
		wantOrigins(t, requests, e.issuer, rp.srv.URL)
		// The consent page is the answer to the login form's POST.
		if len(docs) != 3 || !strings.HasPrefix(docs[0], e.issuer+"/login?") || docs[1] != e.issuer+"/login" ||
			!strings.HasPrefix(docs[2], app.redirectURI+"?") {
			t.Errorf("documents shown %v; want the login page, the consent page, the callback", docs)
		}

		b.reset()
		r2, u2 := authURL(cfg)
		b.do("authorize again", chromedp.Navigate(u2))
		e.exchange(cfg, codeFrom(t, rp.callback(t, b), r2))
		_, docs, _ = b.seen()
		onlyAt(t, "remembered consent", docs, rp.srv.URL)
	})
}

// (d) RP-initiated logout in the browser: the client gets a logout token
// within 10 s, the browser lands on the registered post-logout URI, and the
// next authorization shows the login form; without a redirect URI the
// browser ends on mxidp's signed-out page.
func TestBrowserLogoutNotifiesTheClientAndEndsSingleSignOn(t *testing.T) {
	c := newChrome(t)
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		rp := newRelyingParty(t)
		receiver := newLogoutReceiver(t)
		afterLogout := rp.srv.URL + "/synapse/logged-out"
		synapse := rp.register(e, "synapse", "--skip-consent", "--backchannel-logout-uri", receiver.url, "--post-logout-redirect-uri", afterLogout)
		cfg := e.config(synapse, oauth2.AuthStyleInHeader)
		b := c.user(t)

		r, u := authURL(cfg)
		b.do("open the login page", chromedp.Navigate(u))
		b.signIn("alice", alicePassword)
		l := e.exchange(cfg, codeFrom(t, rp.callback(t, b), r))

		b.reset()
		end := e.meta.EndSession + "?" + url.Values{"id_token_hint": {l.rawID}, "post_logout_redirect_uri": {afterLogout}}.Encode()
		b.do("log out", chromedp.Navigate(end), chromedp.WaitVisible(chromedp.CSS("#rp")))
		if _, docs, _ := b.seen(); len(docs) == 0 || docs[len(docs)-1] != afterLogout {
			t.Errorf("after end_session the browser showed %v; want %s", docs, afterLogout)
		}
		e.checkLogoutToken(receiver.wait(t, 10*time.Second), synapse.id, l)

		b.reset()
		r, u = authURL(cfg)
		b.do("authorize after logout", chromedp.Navigate(u), chromedp.WaitVisible(chromedp.CSS("#password")))
		b.signIn("alice", alicePassword)
		again := e.exchange(cfg, codeFrom(t, rp.callback(t, b), r))
		if again.claims.Sid == l.claims.Sid {
			t.Errorf("the login after logout reuses the ended sid %q", again.claims.Sid)
		}

		// Without post_logout_redirect_uri: mxidp's own page.
		b.reset()
		end = e.meta.EndSession + "?" + url.Values{"id_token_hint": {again.rawID}}.Encode()
		b.do("log out without a redirect", chromedp.Navigate(end), chromedp.WaitVisible(chromedp.CSS("h1")))
		_, docs, status := b.seen()
		if len(docs) == 0 || docs[len(docs)-1] != e.issuer+"/logged-out" || status != http.StatusOK {
			t.Errorf("end_session without a redirect showed %v (status %d); want %s/logged-out", docs, status, e.issuer)
		}
		if h1 := b.text("h1"); h1 != "You are signed out" {
			t.Errorf("signed-out page heading %q", h1)
		}
		e.checkLogoutToken(receiver.wait(t, 10*time.Second), synapse.id, again)
	})
}

// (e) prompt=none in a browser without a session: the client gets
// login_required with its state, and no page is shown.
func TestBrowserPromptNoneWithoutASessionGetsLoginRequired(t *testing.T) {
	c := newChrome(t)
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		rp := newRelyingParty(t)
		cfg := e.config(rp.register(e, "synapse", "--skip-consent"), oauth2.AuthStyleInHeader)
		b := c.user(t)
		r, u := authURL(cfg, oauth2.SetAuthURLParam("prompt", "none"))
		b.do("authorize with prompt=none", chromedp.Navigate(u))
		q := rp.callback(t, b)
		if q.Get("error") != "login_required" || q.Get("state") != r.state || q.Get("code") != "" {
			t.Errorf("prompt=none without a session: callback %v; want error=login_required and the state", q)
		}
		_, docs, _ := b.seen()
		onlyAt(t, "prompt=none", docs, rp.srv.URL)
	})
}

// (f) a browser whose language is German gets the login page in German.
func TestBrowserInGermanGetsTheGermanLoginPage(t *testing.T) {
	// On Linux --lang alone does not reach Accept-Language; --accept-lang does.
	c := newChrome(t, chromedp.Flag("lang", "de"), chromedp.Flag("accept-lang", "de"))
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		rp := newRelyingParty(t)
		cfg := e.config(rp.register(e, "synapse", "--skip-consent"), oauth2.AuthStyleInHeader)
		b := c.user(t)
		_, u := authURL(cfg)
		b.do("open the login page", chromedp.Navigate(u), chromedp.WaitVisible(chromedp.CSS("#password")))
		if lang := eval[string](b, `document.documentElement.lang`); lang != "de" {
			t.Errorf(`<html lang=%q>, want "de" (navigator.languages %v)`, lang, eval[[]string](b, `navigator.languages`))
		}
		if got := b.text(`label[for=password]`); got != "Passwort" {
			t.Errorf("password label %q, want Passwort", got)
		}
		if got := b.text(`form button[type=submit]`); got != "Anmelden" {
			t.Errorf("submit button %q, want Anmelden", got)
		}
		if got := eval[string](b, `document.title`); got != "Anmelden" {
			t.Errorf("title %q, want Anmelden", got)
		}
	})
}

// (h) the login form without its CSRF field is refused with 403 and no
// session; the login page forbids framing by its headers, and Chromium
// does not show it in another origin's frame.
func TestBrowserLoginFormWithoutCSRFIsRefusedAndThePageIsNotFramed(t *testing.T) {
	c := newChrome(t)
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		rp := newRelyingParty(t)
		cfg := e.config(rp.register(e, "synapse", "--skip-consent"), oauth2.AuthStyleInHeader)
		b := c.user(t)
		_, u := authURL(cfg)
		b.do("open the login page", chromedp.Navigate(u), chromedp.WaitVisible(chromedp.CSS("#password")))
		if !eval[bool](b, `(() => { const f = document.querySelector('input[name=csrf]'); if (!f) return false; f.remove(); return true })()`) {
			t.Fatal("the login form has no csrf field")
		}
		b.reset()
		b.signIn("alice", alicePassword)
		b.do("show the refusal", chromedp.WaitVisible(chromedp.CSS(".alert")))
		_, docs, status := b.seen()
		if status != http.StatusForbidden {
			t.Errorf("login without csrf: status %d (documents %v), want 403", status, docs)
		}
		if text := b.text(".alert"); !strings.Contains(text, "another site") {
			t.Errorf("refusal text %q", text)
		}
		onlyAt(t, "login without csrf", docs, e.issuer)
		select {
		case q := <-rp.callbacks:
			t.Errorf("the client got a callback despite the refused form: %v", q)
		default:
		}
		// No session was started: the next authorization asks again.
		_, u = authURL(cfg)
		b.do("authorize again", chromedp.Navigate(u), chromedp.WaitVisible(chromedp.CSS("#password")))

		// Framing: the headers of the login page (fetched without the
		// browser's cookies, it is the page for another browser: the
		// same headers)...
		loginURL := eval[string](b, `location.href`)
		resp, err := http.Get(loginURL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if csp := resp.Header.Get("Content-Security-Policy"); resp.StatusCode != http.StatusForbidden ||
			!strings.Contains(csp, "frame-ancestors 'none'") || resp.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("login page %d, Content-Security-Policy %q, X-Frame-Options %q; want frame-ancestors 'none' and DENY",
				resp.StatusCode, csp, resp.Header.Get("X-Frame-Options"))
		}
		// ...and what Chromium makes of them in another origin's page.
		b.reset()
		b.do("frame the login page", chromedp.Navigate(rp.srv.URL+"/frame?"+url.Values{"src": {loginURL}}.Encode()),
			chromedp.WaitReady(chromedp.CSS("#framed")))
		deadline := time.Now().Add(10 * time.Second)
		for {
			b.mu.Lock()
			frames := values(b.frames)
			b.mu.Unlock()
			if len(frames) > 0 {
				for _, f := range frames {
					if strings.HasPrefix(f, e.issuer) {
						t.Errorf("Chromium showed the login page in a frame of another origin (%s)", f)
					}
				}
				break
			}
			if time.Now().After(deadline) {
				break // nothing committed in the frame: blocked as well
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

func values(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// TestPageScreenshots photographs the login page, the login page after a
// wrong password, the consent page and an error page, in English and
// German, at desktop and phone widths. The pictures go to a temporary
// directory, and also to MXIDP_SCREENSHOTS_DIR when it is set
// (`make screenshots` sets docs/screenshots).
func TestPageScreenshots(t *testing.T) {
	c := newChrome(t)
	// A fixed product name and a platform link: the pictures show the
	// footer and do not change with the test's port.
	d := newDeployment(t, "sqlite")
	d.env["MXIDP_CONFIG"] = writeConfig(t, "passwords:\n  argon2id: {time: 1, memory_kib: 64, threads: 1}\n"+
		"keys:\n  refresh_interval: 100ms\n"+
		"branding:\n  product_name: Example Chat\n  platform_name: Example Chat\n  platform_url: https://chat.example.org/\n")
	(&cli{t: t, env: d.env}).must(alicePassword+"\n", "user", "add", "alice", "--password-stdin", "--name", aliceName)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	e := &openIDEnv{t: t, ctx: ctx, d: d}
	e.connect(d.startOnFreePort())
	rp := newRelyingParty(t)
	app := rp.register(e, "app", "--name", "Example App")
	cfg := e.config(app, oauth2.AuthStyleInHeader)
	dirs := []string{t.TempDir()}
	if d := os.Getenv("MXIDP_SCREENSHOTS_DIR"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
	}
	sizes := []struct {
		name          string
		width, height int64
	}{{"desktop", 1280, 800}, {"phone", 360, 780}}

	for _, lang := range []string{"en", "de"} {
		speaking := func(b *tab) *tab {
			b.do("set the language", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
				_, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": lang}})
				return err
			}))
			return b
		}
		b := speaking(c.user(t))
		shootIn := func(b *tab, name string) {
			t.Helper()
			if got := eval[string](b, `document.documentElement.lang`); got != lang {
				t.Errorf("%s: page language %q, want %q", name, got, lang)
			}
			for _, size := range sizes {
				b.do("resize", chromedp.EmulateViewport(size.width, size.height))
				if w := eval[int64](b, `document.documentElement.scrollWidth`); w > size.width {
					t.Errorf("%s-%s-%s: the page is %d px wide in a %d px viewport", name, lang, size.name, w, size.width)
				}
				height := max(size.height, eval[int64](b, `document.documentElement.scrollHeight`))
				b.do("resize to the page", chromedp.EmulateViewport(size.width, height))
				ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
				shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
				cancel()
				if err != nil {
					t.Fatalf("screenshot: %v", err)
				}
				file := fmt.Sprintf("%s-%s-%s.png", name, lang, size.name)
				conf, err := png.DecodeConfig(bytes.NewReader(shot))
				if err != nil || int64(conf.Width) != size.width {
					t.Errorf("%s: PNG %v, width %d; want a PNG %d px wide", file, err, conf.Width, size.width)
				}
				for _, d := range dirs {
					if err := os.WriteFile(filepath.Join(d, file), shot, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
		}

		shoot := func(name string) { t.Helper(); shootIn(b, name) }
		_, u := authURL(cfg)
		b.do("open the login page", chromedp.Navigate(u), chromedp.WaitVisible(chromedp.CSS("#password")))
		loginURL := eval[string](b, `location.href`)
		shoot("login")
		b.signIn("alice", "wrong password")
		b.do("show the error", chromedp.WaitVisible(chromedp.CSS(".alert")), chromedp.WaitVisible(chromedp.CSS("#password")))
		shoot("login-error")
		b.do("sign in", chromedp.SendKeys(chromedp.CSS("#password"), alicePassword), chromedp.Click(chromedp.CSS(`form button[type=submit]`)),
			chromedp.WaitVisible(chromedp.CSS(`button[name=decision][value=allow]`)))
		shoot("consent")
		b.do("open an expired link", chromedp.Navigate(e.issuer+"/login?id=expired"), chromedp.WaitVisible(chromedp.CSS(".alert")))
		shoot("error")
		other := speaking(c.user(t))
		other.do("open another browser's login link", chromedp.Navigate(loginURL), chromedp.WaitVisible(chromedp.CSS(".alert")))
		shootIn(other, "other-browser")
	}
	if len(dirs) > 1 {
		t.Logf("screenshots written to %s", dirs[1])
	}
}
