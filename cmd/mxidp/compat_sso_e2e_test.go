package main

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/mxidp/mxidp/storage/storagetest"
)

// m.login.sso through mxidp (Matrix client-server API, "Client login via
// SSO"), against the real Synapse: the cookie-jar browser starts at
// /login/sso/redirect as a Matrix client sends it there, signs in at
// mxidp, confirms, and arrives at the client's loopback listener with a
// loginToken, which the client exchanges with m.login.token for a token
// that Synapse takes.

// ssoClient is a Matrix client's redirectUrl: a loopback listener that
// records the query of every request it gets.
type ssoClient struct {
	url string
	mu  sync.Mutex
	got []url.Values
}

func newSSOClient(t *testing.T) *ssoClient {
	c := &ssoClient{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.got = append(c.got, r.URL.Query())
		c.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("the Matrix client"))
	}))
	t.Cleanup(srv.Close)
	c.url = srv.URL
	return c
}

// tokens are the loginTokens the client was sent.
func (c *ssoClient) tokens() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, q := range c.got {
		if tok := q.Get("loginToken"); tok != "" {
			out = append(out, tok)
		}
	}
	return out
}

// ssoRedirectPath is a client's /login/sso/redirect: version like "v3",
// idp "" for the path without an identity provider.
func ssoRedirectPath(version, idp, redirectURL string) string {
	p := "/_matrix/client/" + version + "/login/sso/redirect"
	if idp != "" {
		p += "/" + idp
	}
	if redirectURL == "" {
		return p
	}
	return p + "?" + url.Values{"redirectUrl": {redirectURL}}.Encode()
}

// ssoAllowlistYAML is the option that allow-lists prefixes (indented
// under matrix: as startNextGen's extra configuration).
func ssoAllowlistYAML(prefixes ...string) string {
	return "  sso_client_allowlist: [\"" + strings.Join(prefixes, "\", \"") + "\"]\n"
}

// ssoStart sends browser b to /login/sso/redirect for redirectURL and
// follows it to mxidp's page, which it returns.
func (n *nextGenEnv) ssoStart(b *browser, version, redirectURL string) page {
	n.t.Helper()
	p := b.get(n.issuer + ssoRedirectPath(version, "mxidp", redirectURL))
	if p.status != http.StatusFound || !strings.HasPrefix(p.location, n.issuer+"/matrix/sso?") {
		n.t.Fatalf("/login/sso/redirect: %d to %q, want 302 to mxidp's page\n%s", p.status, p.location, p.body)
	}
	return b.get(p.location)
}

// ssoSignIn submits the SSO page's sign-in form in p and follows the
// answer back to the page, which it returns.
func (n *nextGenEnv) ssoSignIn(b *browser, p page, username, password string) page {
	n.t.Helper()
	f := postFormOf(n.t, p, "sign_in")
	f.fields.Set("username", username)
	f.fields.Set("password", noteSecret(password))
	in := b.post(f.action, f.fields)
	if in.status != http.StatusSeeOther || !strings.HasPrefix(in.location, n.issuer+"/matrix/sso?") {
		n.t.Fatalf("SSO sign-in: %d to %q, want 303 back to the page\n%.2000s", in.status, in.location, in.body)
	}
	return b.get(in.location)
}

// wantLoginToken fails unless p sends the browser to the client at
// prefix with a loginToken, which it notes and returns.
func wantLoginToken(t *testing.T, what string, p page, prefix string) string {
	t.Helper()
	if (p.status != http.StatusFound && p.status != http.StatusSeeOther) || !strings.HasPrefix(p.location, prefix) {
		t.Fatalf("%s: %d to %q, want a redirect to %s…\n%.2000s", what, p.status, p.location, prefix, p.body)
	}
	u, err := url.Parse(p.location)
	if err != nil {
		t.Fatal(err)
	}
	tok := u.Query().Get("loginToken")
	if tok == "" || len(u.Query()["loginToken"]) != 1 {
		t.Fatalf("%s: the redirect %q has not exactly one loginToken", what, p.location)
	}
	return noteSecret(tok)
}

// tokenLogin exchanges a loginToken with m.login.token.
func (n *nextGenEnv) tokenLogin(token, deviceID string) (int, map[string]any) {
	n.t.Helper()
	body := map[string]any{"type": "m.login.token", "token": token}
	if deviceID != "" {
		body["device_id"] = deviceID
	}
	status, got := n.compatCall(http.MethodPost, "/_matrix/client/v3/login", "", body)
	if tok, _ := got["access_token"].(string); tok != "" {
		noteSecret(tok)
	}
	return status, got
}

// wantSynapseSession exchanges a loginToken and checks that Synapse takes
// the access token as alice on deviceID.
func (n *nextGenEnv) wantSynapseSession(what, token, deviceID string) {
	n.t.Helper()
	status, got := n.tokenLogin(token, deviceID)
	access, _ := got["access_token"].(string)
	if status != http.StatusOK || access == "" || got["user_id"] != "@alice:"+n.syn.ServerName || got["device_id"] != deviceID {
		n.t.Fatalf("%s: m.login.token: %d %v", what, status, got)
	}
	if status, user, device := n.syn.whoami(access); status != http.StatusOK || user != "@alice:"+n.syn.ServerName || device != deviceID {
		n.t.Fatalf("%s: whoami: %d %q %q", what, status, user, device)
	}
}

// TestCompatSSOLoginRoundTripAgainstSynapse: the browser goes from
// /login/sso/redirect through mxidp's sign-in and confirmation to the
// client with a loginToken (the client's own query and fragment kept),
// whose m.login.token gives a token Synapse takes; the token works once.
// GET /login offers mxidp as the identity provider.
func TestCompatSSOLoginRoundTripAgainstSynapse(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			client := newSSOClient(t)
			n := startNextGen(t, backend, "")
			status, flows := n.compatCall(http.MethodGet, "/_matrix/client/v3/login", "", nil)
			if status != http.StatusOK || !strings.Contains(string(mustJSON(flows)), `"id":"mxidp"`) {
				t.Fatalf("GET /login: %d %v; want m.login.sso with the identity provider mxidp", status, flows)
			}

			// The client knows only the homeserver's base URL: the
			// deployment's reverse proxy sends /login/sso/redirect to
			// mxidp, which sends the browser on to its own page.
			base := startMatrixProxy(t, n.syn.URL, n.issuer)
			b := newBrowser(t)
			target := strings.TrimPrefix(client.url, "http://")
			start := b.get(base + ssoRedirectPath("v3", "mxidp", client.url+"/cb?keep=1&loginToken=planted#/room/!abc:example.org"))
			if start.status != http.StatusFound || !strings.HasPrefix(start.location, n.issuer+"/matrix/sso?") {
				t.Fatalf("/login/sso/redirect through the homeserver: %d to %q, want 302 to mxidp's page", start.status, start.location)
			}
			p := b.get(start.location)
			wantPage(t, "the SSO page without a session", p, http.StatusOK, "Sign in", "to continue to "+target)
			p = n.ssoSignIn(b, p, "alice", alicePassword)
			wantPage(t, "the confirmation", p, http.StatusOK, "Continue to "+target+"?", "@alice:"+n.syn.ServerName,
				client.url+"/cb", "Only continue if you started this sign-in yourself")
			if strings.Contains(p.body, "keep=1") || strings.Contains(p.body, "planted") {
				t.Errorf("the confirmation shows the client's query")
			}
			// Showing it again issues nothing.
			again := b.get(p.url.String())
			wantPage(t, "the confirmation again", again, http.StatusOK, "Continue to "+target+"?")
			if len(client.tokens()) != 0 {
				t.Fatalf("a token went out before the confirmation")
			}
			done := b.post(postFormOf(t, p, "confirm").action, postFormOf(t, p, "confirm").fields)
			token := wantLoginToken(t, "the confirmed login", done, client.url+"/cb?keep=1&loginToken=")
			if !strings.HasSuffix(done.location, "#/room/%21abc:example.org") && !strings.HasSuffix(done.location, "#/room/!abc:example.org") {
				t.Errorf("the client's fragment is lost: %s", done.location)
			}
			if strings.Contains(done.location, "planted") {
				t.Errorf("the client's own loginToken stayed beside mxidp's: %s", done.location)
			}
			b.get(done.location)
			if got := client.tokens(); len(got) != 1 || got[0] != token {
				t.Fatalf("the client received %d tokens, want the one issued", len(got))
			}
			n.wantSynapseSession("the confirmed login", token, "SSODEVICE1")
			status, replay := n.tokenLogin(token, "SSODEVICE2")
			if status != http.StatusForbidden || replay["errcode"] != "M_FORBIDDEN" {
				t.Errorf("the loginToken used again: %d %v; want 403 M_FORBIDDEN", status, replay)
			}
			if status, made := n.tokenLogin(noteSecret(randomAlnum(43)), ""); status != http.StatusForbidden || made["errcode"] != "M_FORBIDDEN" {
				t.Errorf("a made-up loginToken: %d %v; want 403 M_FORBIDDEN", status, made)
			}
		})
	}
}

// TestCompatSSOAllowListedClientSkipsTheConfirmation: a client on
// matrix.sso_client_allowlist gets its token straight after the sign-in,
// or at once with a session; a client off it (the allow-listed host with
// another path) is asked about, with or without a session. Every r0, v3,
// unstable and api/v1 path leads there, with and without the identity
// provider in the path.
func TestCompatSSOAllowListedClientSkipsTheConfirmation(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			client := newSSOClient(t)
			n := startNextGen(t, backend, ssoAllowlistYAML(client.url+"/allowed/"))
			allowed := client.url + "/allowed/app?x=1"

			// Without a session: the sign-in, then straight on.
			b := newBrowser(t)
			p := n.ssoStart(b, "r0", allowed)
			wantSignInForm(t, "the SSO page without a session", p)
			f := postFormOf(t, p, "sign_in")
			f.fields.Set("username", "alice")
			f.fields.Set("password", noteSecret(alicePassword))
			in := b.post(f.action, f.fields)
			p = b.get(in.location)
			tok := wantLoginToken(t, "an allow-listed client after the sign-in", p, client.url+"/allowed/app?x=1&loginToken=")
			n.wantSynapseSession("allow-listed after the sign-in", tok, "ALLOWED01")

			// With the session: at once, from every path.
			for _, path := range []string{ssoRedirectPath("v3", "", allowed), ssoRedirectPath("unstable", "mxidp", allowed),
				ssoRedirectPath("api/v1", "", allowed), ssoRedirectPath("r0", "mxidp", allowed)} {
				start := b.get(n.issuer + path)
				if start.status != http.StatusFound {
					t.Fatalf("%s: %d, want 302 to mxidp's page", path, start.status)
				}
				wantLoginToken(t, path+" with a session", b.get(start.location), client.url+"/allowed/app?x=1&loginToken=")
			}
			if got := len(client.tokens()); got != 0 {
				t.Fatalf("the client's listener was called %d times; the test follows no redirect to it", got)
			}

			// Off the list: the same host, another path, or a prefix
			// without its boundary.
			for _, off := range []string{client.url + "/other", client.url + "/allowedx/", client.url + "/allowed/../other"} {
				p := n.ssoStart(b, "v3", off)
				wantPage(t, off+" with a session", p, http.StatusOK, "Continue to")
				postFormOf(t, p, "confirm")
				fresh := newBrowser(t)
				p = n.ssoSignIn(fresh, n.ssoStart(fresh, "v3", off), "alice", alicePassword)
				wantPage(t, off+" after the sign-in", p, http.StatusOK, "Continue to")
			}
		})
	}
}

// TestCompatSSOConfirmationPageSpeaksGerman: the sign-in and the
// confirmation follow the browser's language.
func TestCompatSSOConfirmationPageSpeaksGerman(t *testing.T) {
	n := startNextGen(t, "sqlite", "")
	client := newSSOClient(t)
	b := newBrowser(t)
	get := func(u string) page {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("Accept-Language", "de-DE,de;q=0.9")
		return b.do(req)
	}
	start := get(n.issuer + ssoRedirectPath("v3", "mxidp", client.url+"/cb"))
	p := get(start.location)
	wantPage(t, "the German sign-in", p, http.StatusOK, "Anmelden", "um mit "+strings.TrimPrefix(client.url, "http://")+" fortzufahren")
	f := postFormOf(t, p, "sign_in")
	f.fields.Set("username", "alice")
	f.fields.Set("password", noteSecret(alicePassword))
	in := b.post(f.action, f.fields)
	p = get(in.location)
	wantPage(t, "the German confirmation", p, http.StatusOK, "Weiter zu "+strings.TrimPrefix(client.url, "http://")+"?",
		"Fahren Sie nur fort, wenn Sie diese Anmeldung selbst begonnen haben")
}
