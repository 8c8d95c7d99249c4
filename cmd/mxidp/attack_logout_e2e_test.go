package main

// Attacks on the logout door (end_session and its confirmation page),
// against a started mxidp on every backend.

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// Logout CSRF: another site sends the victim's browser to end_session
// with an ID token of the attacker's own (valid, or garbage). The victim's
// session must survive, with a confirmation page instead, and the session
// cookie must stay; the victim's own hint still logs out at once.
func TestEndSessionWithAHintForAnotherSessionAsksFirst(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		c := e.addClient("synapse", "--post-logout-redirect-uri", "http://127.0.0.1:9/synapse/logged-out")
		cfg := e.config(c, oauth2.AuthStyleInHeader)
		victim := newBrowser(t)
		mine := e.exchange(cfg, e.authorize(victim, cfg))
		attacker := newBrowser(t)
		theirs := e.exchange(cfg, e.authorize(attacker, cfg))
		before := cookieOf(victim, e.issuer, "mxidp_session")

		for name, hint := range map[string]string{"another session's ID token": theirs.rawID, "a garbage hint": "garbage." + randomAlnum(20)} {
			q := url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"http://127.0.0.1:9/synapse/logged-out"}}
			p := victim.get(e.meta.EndSession + "?" + q.Encode())
			if p.status != http.StatusOK || !strings.Contains(p.body, "Sign out?") {
				t.Errorf("end_session with %s: %d %q, want the confirmation page", name, p.status, p.location)
			}
			if cookieOf(victim, e.issuer, "mxidp_session") != before {
				t.Errorf("end_session with %s cleared the session cookie", name)
			}
			if authorizeShowsForm(victim, cfg, c.redirectURI) {
				t.Fatalf("end_session with %s ended the victim's session", name)
			}
		}
		e.wantUserinfoOK("the victim's access token after the forged logouts", mine.token.AccessToken)

		// Confirming on that page logs out and then honours the redirect.
		p := victim.get(e.meta.EndSession + "?" + url.Values{"id_token_hint": {theirs.rawID},
			"post_logout_redirect_uri": {"http://127.0.0.1:9/synapse/logged-out"}, "state": {"st"}}.Encode())
		f, ok := parseForm(p, "/logout")
		if !ok {
			t.Fatalf("no confirmation form: %s", p.body)
		}
		form := url.Values{}
		for k, v := range f.fields {
			form.Set(k, v)
		}
		req, _ := http.NewRequest(http.MethodPost, f.action, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if p := victim.do(req); !strings.HasPrefix(p.location, "http://127.0.0.1:9/synapse/logged-out") || !strings.Contains(p.location, "state=st") {
			t.Errorf("after confirming: %d %q, want the client's post-logout redirect with its state", p.status, p.location)
		}
		if !authorizeShowsForm(victim, cfg, c.redirectURI) {
			t.Error("the confirmed logout did not end the session")
		}
		e.wantUserinfoRefused("the victim's access token after the confirmed logout", mine.token.AccessToken)
		e.wantUserinfoOK("the attacker's own access token", theirs.token.AccessToken)

		// The browser's own hint (its sub and sid) logs out at once.
		own := e.exchange(cfg, e.authorize(attacker, cfg))
		p = attacker.get(e.meta.EndSession + "?" + url.Values{"id_token_hint": {own.rawID}}.Encode())
		if p.status != http.StatusFound || cookieOf(attacker, e.issuer, "mxidp_session") != "" {
			t.Errorf("end_session with the browser's own hint: %d %q, want a redirect and the cookie cleared", p.status, p.location)
		}
	})
}

// Probing client IDs through end_session: a browser without a session
// gets the same answer for a registered client and an unknown one, with or
// without a (wrong) post_logout_redirect_uri or a garbage hint; only a
// registered client's registered address is followed.
func TestEndSessionTellsNoUnknownClientFromARegisteredOne(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		afterLogout := "http://127.0.0.1:9/synapse/logged-out"
		e.addClient("synapse", "--post-logout-redirect-uri", afterLogout)
		b := newBrowser(t)
		answer := func(q url.Values) string {
			p := b.get(e.meta.EndSession + "?" + q.Encode())
			return fmt.Sprintf("%d %s %s", p.status, p.location, p.body)
		}
		for name, q := range map[string]url.Values{
			"client_id alone":          {},
			"an unregistered redirect": {"post_logout_redirect_uri": {"https://evil.example/"}},
			"a garbage hint":           {"id_token_hint": {"x.y.z"}, "post_logout_redirect_uri": {afterLogout}},
		} {
			known, unknown := url.Values{"client_id": {"synapse"}}, url.Values{"client_id": {"no-such-client"}}
			for k, v := range q {
				known[k], unknown[k] = v, v
			}
			if a, b := answer(known), answer(unknown); a != b {
				t.Errorf("end_session with %s: a registered client gets\n%s\nan unknown one\n%s", name, a, b)
			}
		}
		if p := b.get(e.meta.EndSession + "?" + url.Values{"client_id": {"synapse"}, "post_logout_redirect_uri": {afterLogout}, "state": {"s"}}.Encode()); p.location != afterLogout+"?state=s" {
			t.Errorf("the registered address with client_id: %d %q, want a redirect there with the state", p.status, p.location)
		}
	})
}

// A back-channel receiver that answers with a redirect does not get the
// logout token posted to wherever it points: the token is for the address
// the client registered, not for a host an attacker who controls that
// answer (or its path) chooses.
func TestBackchannelLogoutFollowsNoRedirect(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		elsewhere := newLogoutReceiver(t)
		asked := make(chan struct{}, 16)
		redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case asked <- struct{}{}:
			default:
			}
			http.Redirect(w, r, elsewhere.url, http.StatusTemporaryRedirect)
		}))
		t.Cleanup(redirector.Close)
		c := e.addClient("synapse", "--backchannel-logout-uri", redirector.URL+"/_synapse/client/oidc/backchannel_logout")
		cfg := e.config(c, oauth2.AuthStyleInHeader)
		b := newBrowser(t)
		l := e.exchange(cfg, e.authorize(b, cfg))
		if p := b.get(e.meta.EndSession + "?" + url.Values{"id_token_hint": {l.rawID}}.Encode()); p.status != http.StatusFound {
			t.Fatalf("end_session with the browser's own hint: %d", p.status)
		}
		select {
		case <-asked:
		case <-time.After(10 * time.Second):
			t.Fatal("the registered back-channel address was never called")
		}
		select {
		case got := <-elsewhere.got:
			t.Errorf("the logout token was posted to the redirect's target (%s)", got.method)
		case <-time.After(2 * time.Second):
		}
	})
}

// post_logout_redirect_uri is followed only when it is, byte for byte, an
// address the named client registered: no trailing slash, other case,
// userinfo, port trick, extra query, fragment or another client's address
// gets a redirect; the state is one query parameter, however it is
// spelled, and cannot add others.
func TestEndSessionRedirectsOnlyToTheExactRegisteredAddress(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		registered := "http://127.0.0.1:9/synapse/logged-out"
		withQuery := "http://127.0.0.1:9/synapse/bye?x=1"
		e.addClient("synapse", "--post-logout-redirect-uri", registered, "--post-logout-redirect-uri", withQuery)
		e.addClient("other", "--post-logout-redirect-uri", "http://127.0.0.1:9/other/bye")
		b := newBrowser(t)
		loggedOut := e.issuer + "/logged-out"
		for _, c := range []struct{ client, uri string }{
			{"synapse", registered + "/"},
			{"synapse", "http://127.0.0.1:9/Synapse/logged-out"},
			{"synapse", "HTTP://127.0.0.1:9/synapse/logged-out"},
			{"synapse", "http://evil@127.0.0.1:9/synapse/logged-out"},
			{"synapse", "http://127.0.0.1:9@evil.example/synapse/logged-out"},
			{"synapse", "http://127.0.0.1:9/synapse/logged-out?next=https://evil.example/"},
			{"synapse", "http://127.0.0.1:9/synapse/logged-out#x"},
			{"synapse", "http://127.0.0.1:9//synapse/logged-out"},
			{"synapse", " " + registered},
			{"synapse", withQuery + "&y=2"},
			{"synapse", "http://127.0.0.1:9/other/bye"},
			{"other", registered},
			{"", registered},
		} {
			q := url.Values{"post_logout_redirect_uri": {c.uri}, "state": {"s"}}
			if c.client != "" {
				q.Set("client_id", c.client)
			}
			if p := b.get(e.meta.EndSession + "?" + q.Encode()); p.location != loggedOut {
				t.Errorf("end_session for %q with %q: %d %q, want the logged-out page", c.client, c.uri, p.status, p.location)
			}
		}
		for _, c := range []struct{ uri, state, want string }{
			{registered, "a&next=https://evil.example/#f", registered + "?state=a%26next%3Dhttps%3A%2F%2Fevil.example%2F%23f"},
			{withQuery, "s", "http://127.0.0.1:9/synapse/bye?state=s&x=1"},
		} {
			q := url.Values{"client_id": {"synapse"}, "post_logout_redirect_uri": {c.uri}, "state": {c.state}}
			p := b.get(e.meta.EndSession + "?" + q.Encode())
			u, err := url.Parse(p.location)
			if p.location != c.want || err != nil || u.Host != "127.0.0.1:9" || fmt.Sprint(u.Query()["state"]) != fmt.Sprint([]string{c.state}) {
				t.Errorf("end_session to %q with state %q: %d %q, want %q", c.uri, c.state, p.status, p.location, c.want)
			}
		}
	})
}
