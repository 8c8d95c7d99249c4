package main

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mxidp/mxidp/storage/storagetest"
)

// Attacks on m.login.sso (/login/sso/redirect and mxidp's page behind it),
// against a started mxidp and the real Synapse, on every backend: a
// login finished in a browser that did not start it, forms without their
// CSRF token or with another session's, a GET that would issue, redirect
// URLs that are scripts, carry credentials, are too long or only look
// like an allow-listed client, floods, and the token in the log. Each
// checks that no login token was issued (none stored, none sent) where
// none may be.

// loginTokenRows counts the login tokens mxidp has stored.
func (n *nextGenEnv) loginTokenRows() int {
	n.t.Helper()
	var rows int
	if err := (&cli{t: n.t, env: n.d.env}).store().DB().QueryRow(`SELECT COUNT(*) FROM matrix_login_tokens`).Scan(&rows); err != nil {
		n.t.Fatal(err)
	}
	return rows
}

// wantNoLoginToken fails if p sends the browser anywhere with a
// loginToken, or if mxidp stored more tokens than before.
func (n *nextGenEnv) wantNoLoginToken(what string, p page, rowsBefore int) {
	n.t.Helper()
	if strings.Contains(p.location, "loginToken") || strings.Contains(p.body, "loginToken") {
		n.t.Errorf("%s: a login token went out (%d to %q)", what, p.status, p.location)
	}
	if rows := n.loginTokenRows(); rows != rowsBefore {
		n.t.Errorf("%s: %d login tokens stored, want %d", what, rows, rowsBefore)
	}
}

// ssoConfirmation signs alice in on the SSO page for redirectURL in a new
// browser and returns the browser and the confirmation form.
func (n *nextGenEnv) ssoConfirmation(username, password, redirectURL string) (*browser, htmlForm) {
	n.t.Helper()
	b := newBrowser(n.t)
	p := n.ssoSignIn(b, n.ssoStart(b, "v3", redirectURL), username, password)
	return b, postFormOf(n.t, p, "confirm")
}

// The one-click takeover: an attacker starts m.login.sso for their own
// client in their own browser and gets a signed-in victim's browser to
// finish it. Neither the attacker's sign-in form nor their confirmation
// (their own session's, or with the victim's session cookie beside the
// attacker's binding) gives a token to anyone; the victim's own login
// still works, so the refusals were the binding's.
func TestCompatSSOLoginStartedInAnotherBrowserIssuesNothing(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			n := startNextGen(t, backend, "")
			const malloryPassword = "mallory's own long password"
			(&cli{t: t, env: n.d.env}).must(noteSecret(malloryPassword)+"\n", "user", "add", "mallory", "--password-stdin")
			evil := newSSOClient(t)

			attacker := newBrowser(t)
			attackerSignIn := postFormOf(t, n.ssoStart(attacker, "v3", evil.url+"/steal"), "sign_in")
			victim, victimConfirm := n.ssoConfirmation("alice", alicePassword, "http://127.0.0.1:1/own")
			rows := n.loginTokenRows()

			// The attacker's sign-in form, posted from the victim's
			// browser with the victim's password (say, autofilled):
			// refused, and the victim's session stays what it was.
			session := cookieOf(victim, n.issuer, "mxidp_session")
			f := url.Values{}
			for k, v := range attackerSignIn.fields {
				f[k] = v
			}
			f.Set("username", "alice")
			f.Set("password", noteSecret(alicePassword))
			p := victim.post(attackerSignIn.action, f)
			wantPage(t, "the attacker's sign-in form in the victim's browser", p, http.StatusForbidden, "sent from another browser")
			n.wantNoLoginToken("the attacker's sign-in form", p, rows)
			if cookieOf(victim, n.issuer, "mxidp_session") != session {
				t.Errorf("the attacker's sign-in form changed the victim's session")
			}

			// The attacker signs in as mallory and sends the victim the
			// confirmation: refused in the victim's browser.
			mb := n.ssoSignIn(attacker, n.ssoStart(attacker, "v3", evil.url+"/steal"), "mallory", malloryPassword)
			attackerConfirm := postFormOf(t, mb, "confirm")
			p = victim.post(attackerConfirm.action, attackerConfirm.fields)
			wantPage(t, "the attacker's confirmation in the victim's browser", p, http.StatusForbidden, "sent from another browser")
			n.wantNoLoginToken("the attacker's confirmation", p, rows)

			// The victim's browser carrying the attacker's binding cookie
			// (tossed in from a sibling host, say) beside its own
			// session: the confirmation is still the attacker's session's.
			tossed := newBrowser(t)
			tossed.c.Jar.SetCookies(mustURL(t, n.issuer), []*http.Cookie{
				{Name: "mxidp_browser", Value: cookieOf(attacker, n.issuer, "mxidp_browser"), Path: "/"},
				{Name: "mxidp_session", Value: session, Path: "/"},
			})
			p = tossed.post(attackerConfirm.action, attackerConfirm.fields)
			wantPage(t, "the attacker's confirmation with the attacker's binding and the victim's session", p, http.StatusForbidden)
			n.wantNoLoginToken("a tossed binding cookie", p, rows)

			// A cross-site form: the browser sends no SameSite=Lax cookie.
			req, _ := http.NewRequest(http.MethodPost, attackerConfirm.action, strings.NewReader(attackerConfirm.fields.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", evil.url)
			status, hdr, _ := n.send(req)
			if status != http.StatusForbidden || strings.Contains(hdr.Get("Location"), "loginToken") {
				t.Errorf("a cross-site confirmation: %d %q, want 403", status, hdr.Get("Location"))
			}
			if got := evil.tokens(); len(got) != 0 {
				t.Fatalf("the attacker's client received %d login tokens", len(got))
			}
			n.wantNoLoginToken("every attack", page{}, rows)

			// The attacker's confirmation in the attacker's browser works
			// (for mallory), and so does the victim's own.
			wantLoginToken(t, "the attacker's own confirmation", attacker.post(attackerConfirm.action, attackerConfirm.fields), evil.url+"/steal?loginToken=")
			tok := wantLoginToken(t, "the victim's own confirmation", victim.post(victimConfirm.action, victimConfirm.fields), "http://127.0.0.1:1/own?loginToken=")
			n.wantSynapseSession("the victim's own login", tok, "VICTIMDEV1")
		})
	}
}

// The confirmation without its CSRF token, with a wrong one, with the
// sign-in form's, with another pending login's state, with its state
// pointed elsewhere, or from another session of the same browser (after
// signing in again): refused, nothing issued. The real form still works.
func TestCompatSSOConfirmationRefusesAMissingWrongOrOtherSessionsToken(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			n := startNextGen(t, backend, "")
			client := newSSOClient(t)
			b, f := n.ssoConfirmation("alice", alicePassword, client.url+"/cb")
			other := postFormOf(t, n.ssoStart(b, "v3", client.url+"/other"), "confirm")
			signIn := postFormOf(t, n.ssoStart(newBrowser(t), "v3", client.url+"/cb"), "sign_in")
			rows := n.loginTokenRows()
			state, csrf := f.fields.Get("state"), f.fields.Get("csrf")
			enc, rest, _ := strings.Cut(state, ".")
			pointed := b64url(client.url+"/evil") + "." + rest
			for _, c := range []struct {
				what   string
				fields url.Values
			}{
				{"no token", url.Values{"do": {"confirm"}, "state": {state}}},
				{"an empty token", url.Values{"do": {"confirm"}, "state": {state}, "csrf": {""}}},
				{"a wrong token", url.Values{"do": {"confirm"}, "state": {state}, "csrf": {randomAlnum(43)}}},
				{"the token with one character changed", url.Values{"do": {"confirm"}, "state": {state}, "csrf": {flipLast(csrf)}}},
				{"another pending login's token", url.Values{"do": {"confirm"}, "state": {state}, "csrf": {other.fields.Get("csrf")}}},
				{"another pending login's state", url.Values{"do": {"confirm"}, "state": {other.fields.Get("state")}, "csrf": {csrf}}},
				{"the state pointed elsewhere", url.Values{"do": {"confirm"}, "state": {pointed}, "csrf": {csrf}}},
				{"the state with its expiry moved", url.Values{"do": {"confirm"}, "state": {enc + ".99999999999." + rest[strings.LastIndex(rest, ".")+1:]}, "csrf": {csrf}}},
				{"no state", url.Values{"do": {"confirm"}, "csrf": {csrf}}},
				{"the token for signing in", url.Values{"do": {"sign_in"}, "state": {state}, "csrf": {csrf}, "username": {"alice"}, "password": {alicePassword}}},
				{"another browser's sign-in form", url.Values{"do": {"sign_in"}, "state": {signIn.fields.Get("state")}, "csrf": {signIn.fields.Get("csrf")}}},
				{"something else", url.Values{"do": {"issue"}, "state": {state}, "csrf": {csrf}}},
			} {
				p := b.post(f.action, c.fields)
				wantPage(t, c.what, p, http.StatusForbidden, "The form expired or was sent from another browser or site")
				n.wantNoLoginToken(c.what, p, rows)
			}

			// Another session of this browser: after signing in again the
			// old confirmation is refused, and a signed-out browser gets
			// the sign-in form instead of a token.
			b.c.Jar.SetCookies(mustURL(t, n.issuer), []*http.Cookie{{Name: "mxidp_session", Value: "", Path: "/", MaxAge: -1}})
			p := b.post(f.action, f.fields)
			wantSignInForm(t, "the confirmation without a session", p)
			n.wantNoLoginToken("the confirmation without a session", p, rows)
			fresh := n.ssoSignIn(b, p, "alice", alicePassword)
			p = b.post(f.action, f.fields)
			wantPage(t, "the old session's confirmation", p, http.StatusForbidden, "The form expired")
			n.wantNoLoginToken("the old session's confirmation", p, rows)

			// A body over the pages' cap is refused before it is read.
			big := url.Values{"do": {"confirm"}, "state": {state}, "csrf": {csrf}, "pad": {strings.Repeat("p", 70<<10)}}
			if p := b.post(f.action, big); p.status != http.StatusRequestEntityTooLarge {
				t.Errorf("a 70 KiB form: %d, want 413", p.status)
			}
			if len(client.tokens()) != 0 {
				t.Fatalf("the client received a token")
			}
			wantLoginToken(t, "the new session's confirmation", b.post(f.action, postFormOf(t, fresh, "confirm").fields), client.url+"/cb?loginToken=")
		})
	}
}

func b64url(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// A GET never issues a token for a client that is not allow-listed: not
// with the confirmation's fields in its query, not as HEAD; other methods
// are refused at both doors.
func TestCompatSSOGetNeverIssuesForAClientOffTheList(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			n := startNextGen(t, backend, "")
			client := newSSOClient(t)
			b, f := n.ssoConfirmation("alice", alicePassword, client.url+"/cb")
			rows := n.loginTokenRows()
			q := url.Values{"redirectUrl": {client.url + "/cb"}}
			for k, v := range f.fields {
				q[k] = v
			}
			p := b.get(f.action + "?" + q.Encode())
			wantPage(t, "GET with the confirmation's fields", p, http.StatusOK, "Continue to")
			n.wantNoLoginToken("GET with the confirmation's fields", p, rows)
			for _, m := range []string{http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodPatch} {
				req, _ := http.NewRequest(m, f.action+"?"+q.Encode(), strings.NewReader(f.fields.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				p := b.do(req)
				if p.status != http.StatusMethodNotAllowed {
					t.Errorf("%s on the SSO page: %d, want 405", m, p.status)
				}
				n.wantNoLoginToken(m+" on the SSO page", p, rows)
			}
			for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
				req, _ := http.NewRequest(m, n.issuer+ssoRedirectPath("v3", "mxidp", client.url+"/cb"), nil)
				status, _, body := n.send(req)
				if status != http.StatusMethodNotAllowed || !strings.Contains(string(body), "M_UNRECOGNIZED") {
					t.Errorf("%s /login/sso/redirect: %d %s, want 405 M_UNRECOGNIZED", m, status, body)
				}
			}
			if len(client.tokens()) != 0 {
				t.Fatalf("the client received a token")
			}
		})
	}
}

// Redirect URLs a client (or an attacker's link) may send: scripts, data,
// files, credentials, no host, relative ones, oversized ones, twice, none;
// and identity providers other than mxidp. /login/sso/redirect answers
// each with the spec's Matrix error, mxidp's page with an error page; a
// signed-in browser is sent nowhere with a token.
func TestCompatSSORefusesRedirectURLTricks(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			n := startNextGen(t, backend, ssoAllowlistYAML("https://app.example.org/"))
			b, _ := n.ssoConfirmation("alice", alicePassword, "https://other.example/cb") // a signed-in browser
			rows := n.loginTokenRows()
			long := "https://app.example.org/" + strings.Repeat("a", 2049-len("https://app.example.org/"))
			for _, bad := range []string{
				"javascript:alert(document.domain)",
				"JavaScript:alert(1)//https://app.example.org/",
				" javascript:alert(1)",
				"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
				"vbscript:msgbox(1)",
				"file:///etc/passwd",
				"blob:https://app.example.org/x",
				"https://attacker@app.example.org/",
				"https://app.example.org:pass@evil.example/",
				"https://app.example.org\\@evil.example/",
				"https:app.example.org",
				"https:///app.example.org",
				"//evil.example/",
				"/_matrix/client/v3/login",
				"https://app.example.org/\r\nLocation: https://evil.example/",
				long,
				"https://app.example.org/" + strings.Repeat("x", 30<<10),
			} {
				what := "redirectUrl " + strings.ReplaceAll(bad[:min(len(bad), 40)], "\r\n", "\\r\\n")
				status, hdr, body := n.send(mustRequest(t, n.issuer+ssoRedirectPath("v3", "mxidp", bad)))
				if status != http.StatusBadRequest || !strings.Contains(string(body), `"errcode":"M_INVALID_PARAM"`) || hdr.Get("Location") != "" {
					t.Errorf("%s at /login/sso/redirect: %d %.200s; want 400 M_INVALID_PARAM", what, status, body)
				}
				p := b.get(n.issuer + "/matrix/sso?" + url.Values{"redirectUrl": {bad}}.Encode())
				wantPage(t, what+" at the SSO page", p, http.StatusBadRequest, "This sign-in cannot be used")
				n.wantNoLoginToken(what, p, rows)
			}
			if status, _, body := n.send(mustRequest(t, n.issuer+"/_matrix/client/v3/login/sso/redirect?redirectUrl="+url.QueryEscape(long))); status != http.StatusBadRequest || !strings.Contains(string(body), "2048") {
				t.Errorf("2049 bytes: %d %s; want the limit named", status, body)
			}
			for _, c := range []struct{ path, errcode string }{
				{ssoRedirectPath("v3", "mxidp", ""), "M_MISSING_PARAM"},
				{ssoRedirectPath("v3", "", "") + "?redirectUrl=", "M_MISSING_PARAM"},
				{ssoRedirectPath("v3", "", "") + "?redirectUrl=https%3A%2F%2Fapp.example.org%2F&redirectUrl=https%3A%2F%2Fevil.example%2F", "M_INVALID_PARAM"},
			} {
				status, _, body := n.send(mustRequest(t, n.issuer+c.path))
				if status != http.StatusBadRequest || !strings.Contains(string(body), `"errcode":"`+c.errcode+`"`) {
					t.Errorf("%s: %d %s; want 400 %s", c.path, status, body, c.errcode)
				}
			}
			for _, idp := range []string{"oidc-mxidp", "MXIDP", "saml", "mxidp2"} {
				status, _, body := n.send(mustRequest(t, n.issuer+ssoRedirectPath("v3", idp, "https://app.example.org/")))
				if status != http.StatusNotFound || !strings.Contains(string(body), `"errcode":"M_NOT_FOUND"`) {
					t.Errorf("identity provider %q: %d %s; want 404 M_NOT_FOUND", idp, status, body)
				}
			}
		})
	}
}

func mustRequest(t *testing.T, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// With https://app.example.org on the allow-list (no trailing slash, as
// Synapse's documentation warns against), addresses that only begin like
// it are confirmed first; the real client and its paths go straight on.
// Entries with a query or fragment, or not a client's address, stop
// start-up with the problem named.
func TestCompatSSOAllowListPrefixIsNoHostPrefix(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			n := startNextGen(t, backend, ssoAllowlistYAML("https://app.example.org", "https://web.example.org/chat/"))
			b, _ := n.ssoConfirmation("alice", alicePassword, "https://elsewhere.example/")
			for _, look := range []string{
				"https://app.example.org.evil.com/",
				"https://app.example.org.evil.com",
				"https://app.example.orgevil.com/",
				"https://app.example.org:8443/",
				"http://app.example.org/",
				"https://evil.com/https://app.example.org/",
				"https://evil.com/?u=https://app.example.org",
				"https://web.example.org/chatroom/",
				"https://web.example.org/chat/../admin/",
				"https://web.example.org/",
			} {
				rows := n.loginTokenRows()
				p := n.ssoStart(b, "v3", look)
				wantPage(t, look, p, http.StatusOK, "Continue to")
				n.wantNoLoginToken(look, p, rows)
			}
			for _, real := range []string{"https://app.example.org/", "https://APP.example.org/#/home", "https://app.example.org/deep/path?x=1",
				"https://web.example.org/chat/", "https://web.example.org/chat/#/room"} {
				wantLoginToken(t, real, n.ssoStart(b, "v3", real), "https://")
			}
		})
	}
	for _, bad := range []string{"https://app.example.org/?client=1", "https://app.example.org/#/", "javascript:", "app.example.org", "https://user@app.example.org/"} {
		_, err := LoadConfig(writeConfig(t, "matrix:\n  sso_client_allowlist: ["+strconvQuote(bad)+"]\n"), env(nil))
		if err == nil || !strings.Contains(err.Error(), "matrix.sso_client_allowlist[0]") {
			t.Errorf("allow-list entry %q: %v; want a problem naming the entry", bad, err)
		}
	}
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

// Tokens are rows: one network gets them issued only as fast as it may
// open authorization requests (throttle.authorize_burst), so that a flood
// of SSO logins, even by a signed-in user of an allow-listed client,
// stores a bounded number.
func TestCompatSSOFloodIsBoundedByTheAuthorizeLimit(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			n := startNextGen(t, backend, ssoAllowlistYAML("https://app.example.org/")+"throttle:\n  authorize_burst: 5\n  authorize_per_second: 0.01\n")
			b := newBrowser(t)
			p := n.ssoSignIn(b, n.ssoStart(b, "v3", "https://app.example.org/"), "alice", alicePassword)
			wantLoginToken(t, "the first login", p, "https://app.example.org/?loginToken=")
			issued, refused := 1, 0
			for range 30 {
				p := n.ssoStart(b, "v3", "https://app.example.org/")
				switch {
				case strings.Contains(p.location, "loginToken="):
					noteSecret(p.location[strings.Index(p.location, "loginToken=")+len("loginToken="):])
					issued++
				case p.status == http.StatusTooManyRequests:
					refused++
					if p.body == "" || !strings.Contains(p.body, "Too many sign-ins") {
						t.Errorf("the refusal says nothing: %s", p.body)
					}
				default:
					t.Fatalf("flood: %d %q", p.status, p.location)
				}
			}
			if issued != 5 || refused != 26 {
				t.Errorf("31 logins: %d issued, %d refused; want 5 and 26", issued, refused)
			}
			if rows := n.loginTokenRows(); rows != 5 {
				t.Errorf("%d login tokens stored, want 5", rows)
			}
		})
	}
}

// Without a session no row is written however often the page is opened
// (the pending login lives in the browser's form), and the sign-in form
// is throttled and audited as the login page is, with the same throttle.
func TestCompatSSOSignInIsThrottledAndStoresNothingBefore(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			n := startNextGen(t, backend, slowThrottle)
			for range 50 {
				wantSignInForm(t, "an anonymous start", n.ssoStart(newBrowser(t), "v3", "https://app.example.org/"))
			}
			if rows := n.loginTokenRows(); rows != 0 {
				t.Errorf("anonymous starts stored %d login tokens", rows)
			}
			var auth int
			if err := (&cli{t: t, env: n.d.env}).store().DB().QueryRow(`SELECT COUNT(*) FROM auth_requests`).Scan(&auth); err != nil || auth != 0 {
				t.Errorf("anonymous starts stored %d authorization requests (%v)", auth, err)
			}
			b := newBrowser(t)
			p := n.ssoStart(b, "v3", "https://app.example.org/")
			for i := 1; i <= 5; i++ {
				p = b.accountSignIn(p, "alice", "wrong guess "+randomAlnum(6))
				if p.status != http.StatusUnauthorized {
					t.Fatalf("wrong password %d: %d, want 401", i, p.status)
				}
			}
			p = b.accountSignIn(p, "alice", "wrong guess "+randomAlnum(6))
			wantPage(t, "the 6th wrong password", p, http.StatusTooManyRequests, "Too many sign-in attempts")
			p = b.accountSignIn(p, "alice", alicePassword)
			wantPage(t, "the right password during the delay", p, http.StatusTooManyRequests, "Too many sign-in attempts")
			wantSignInForm(t, "the right password during the delay", p)
			if cookieOf(b, n.issuer, "mxidp_session") != "" {
				t.Errorf("the throttled sign-in set a session")
			}
			events := auditJSONOf(t, &cli{t: t, env: n.d.env}, "--user", "alice", "--event", "login")
			if got := countDetail(events, "matrix sso: wrong password"); got != 5 {
				t.Errorf("%d wrong passwords audited at the matrix sso door, want 5: %+v", got, events)
			}
			// The Matrix password login shares the throttle.
			status, got := n.compatCall(http.MethodPost, "/_matrix/client/v3/login", "", passwordLoginBody("alice", alicePassword, nil))
			if status != http.StatusTooManyRequests || got["errcode"] != "M_LIMIT_EXCEEDED" {
				t.Errorf("m.login.password after the SSO page's guesses: %d %v; want 429", status, got)
			}
		})
	}
}

// The login token appears only in the redirect: never in mxidp's log
// (which has the line saying one was issued), nor the password, nor the
// pending login's state.
func TestCompatSSOLoginTokenIsNeverLogged(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			n := startNextGen(t, backend, "log:\n  level: debug\n")
			client := newSSOClient(t)
			b, f := n.ssoConfirmation("alice", alicePassword, client.url+"/cb?state="+noteSecret(randomAlnum(24)))
			noteSecret(f.fields.Get("state"))
			noteSecret(f.fields.Get("csrf"))
			p := b.post(f.action, f.fields)
			tok := wantLoginToken(t, "the login", p, client.url+"/cb?state=")
			b.get(p.location)
			n.wantSynapseSession("the login", tok, "LOGGEDDEV1")
			n.tokenLogin(tok, "") // the replay, refused
			log := n.s.stderr.String()
			if !strings.Contains(log, "m.login.sso: login token issued") {
				t.Fatalf("mxidp's log does not record the issue:\n%s", log)
			}
			for what, secret := range map[string]string{"the login token": tok, "the password": alicePassword, "the state": f.fields.Get("state")} {
				if strings.Contains(log, secret) {
					t.Errorf("mxidp's log holds %s", what)
				}
			}
			checkLogHasNoSecrets(t, "mxidp serve", log)
		})
	}
}
