package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// Attacks on the account page (/account, next-gen auth): whoever opens it
// without alice's session, another site's forms, another session's
// tokens, another user's device IDs, device IDs of any size, and guessing
// the password through its sign-in form. Each is run against a started
// mxidp with the Synapse stand-in of account_e2e_test.go, on every
// backend, and checks that nothing was ended and nothing shown.

// aliceData is what the page must not show without alice's session.
var aliceData = []string{aliceName, aliceEmail, "@alice:" + accountServerName, "Element", "Signed in as"}

func wantNoAccountData(t *testing.T, what string, p page) {
	t.Helper()
	for _, s := range aliceData {
		if strings.Contains(p.body, s) {
			t.Errorf("%s: the page shows %q\n%.2000s", what, s, p.body)
		}
	}
}

// endForm signs alice in (as the device) in a new browser and returns the
// browser and the confirmation form that ends the device.
func (e *accountEnv) endForm(deviceID string) (*browser, *oauth2.Token, htmlForm) {
	e.t.Helper()
	b := newBrowser(e.t)
	tok := e.deviceLogin(b, deviceID)
	return b, tok, postFormOf(e.t, b.get(e.accountURL("action", "org.matrix.session_end", "device_id", deviceID)), "end")
}

func TestAccountPageShowsNothingWithoutASession(t *testing.T) {
	eachAccountBackend(t, "", func(t *testing.T, e *accountEnv) {
		e.deviceLogin(newBrowser(t), "ABCDEFGHIJ")
		for _, params := range [][]string{
			nil,
			{"action", "org.matrix.profile"},
			{"action", "org.matrix.sessions_list"},
			{"action", "org.matrix.session_view", "device_id", "ABCDEFGHIJ"},
			{"action", "org.matrix.session_end", "device_id", "ABCDEFGHIJ"},
			{"action", "org.matrix.cross_signing_reset"},
			{"confirm", "end_all"},
		} {
			what := "GET /account?" + strings.Join(params, " ")
			p := newBrowser(t).get(e.accountURL(params...))
			wantSignInForm(t, what, p)
			wantNoAccountData(t, what, p)
		}
		// A session cookie that is no session's: the sign-in form too.
		b := newBrowser(t)
		u, _ := url.Parse(e.issuer)
		b.c.Jar.SetCookies(u, []*http.Cookie{{Name: "mxidp_session", Value: noteSecret(randomAlnum(43)), Path: "/"}})
		p := b.get(e.accountURL())
		wantSignInForm(t, "a made-up session cookie", p)
		wantNoAccountData(t, "a made-up session cookie", p)
		// Nor does a signed-out session show anything.
		b, _, _ = e.endForm("SIGNEDOUT1")
		lo := b.get(e.issuer + "/end_session")
		f := forms(lo)
		if len(f) != 1 {
			t.Fatalf("no logout confirmation: %d\n%s", lo.status, lo.body)
		}
		b.post(f[0].action, f[0].fields)
		p = b.get(e.accountURL())
		wantSignInForm(t, "after signing out", p)
		wantNoAccountData(t, "after signing out", p)
	})
}

func TestAccountFormsRefuseAMissingOrWrongCSRFToken(t *testing.T) {
	eachAccountBackend(t, "", func(t *testing.T, e *accountEnv) {
		b, tok, f := e.endForm("ABCDEFGHIJ")
		csrf := f.fields.Get("csrf")
		endAll := postFormOf(t, b.get(e.accountURL("confirm", "end_all")), "end_all").fields.Get("csrf")
		reset := postFormOf(t, b.get(e.accountURL("action", "org.matrix.cross_signing_reset")), "cross_signing_reset").fields.Get("csrf")
		for _, c := range []struct {
			what   string
			fields url.Values
		}{
			{"no token", url.Values{"do": {"end"}, "device_id": {"ABCDEFGHIJ"}}},
			{"an empty token", url.Values{"do": {"end"}, "device_id": {"ABCDEFGHIJ"}, "csrf": {""}}},
			{"a wrong token", url.Values{"do": {"end"}, "device_id": {"ABCDEFGHIJ"}, "csrf": {randomAlnum(43)}}},
			{"the token with one character changed", url.Values{"do": {"end"}, "device_id": {"ABCDEFGHIJ"}, "csrf": {flipLast(csrf)}}},
			{"the end-all form's token", url.Values{"do": {"end"}, "device_id": {"ABCDEFGHIJ"}, "csrf": {endAll}}},
			{"the reset form's token for ending all", url.Values{"do": {"end_all"}, "csrf": {reset}}},
			{"the end form's token for the reset", url.Values{"do": {"cross_signing_reset"}, "csrf": {csrf}}},
			{"the end form's token for something unknown", url.Values{"do": {"delete_account"}, "csrf": {csrf}}},
		} {
			p := b.post(f.action, c.fields)
			wantPage(t, c.what, p, http.StatusForbidden, "The form expired or was sent from another site")
		}
		// A GET carrying a valid form changes nothing.
		p := b.get(f.action + "?" + f.fields.Encode())
		if p.status != http.StatusOK {
			t.Errorf("GET with the end form's fields: %d, want the page", p.status)
		}
		e.wantActive("after the refused forms", tok, "ABCDEFGHIJ")
		if n := e.syn.called("allow_cross_signing_reset", nil) + e.syn.called("delete_device", nil); n != 0 {
			t.Errorf("refused forms made %d calls to Synapse", n)
		}
		// The real form still works, so the refusals were the tokens'.
		wantPage(t, "the real form", b.post(f.action, f.fields), http.StatusOK, "Session ended")
		e.wantEnded("the real form", tok, "alice", "ABCDEFGHIJ")
	})
}

// flipLast changes the last character of s.
func flipLast(s string) string {
	if s == "" {
		return "x"
	}
	last := byte('A')
	if s[len(s)-1] == 'A' {
		last = 'B'
	}
	return s[:len(s)-1] + string(last)
}

func TestAccountFormsRefuseAnotherSessionsToken(t *testing.T) {
	eachAccountBackend(t, "", func(t *testing.T, e *accountEnv) {
		_, tokA, formA := e.endForm("DEVICEAAAA")
		b, tokB, formB := e.endForm("DEVICEBBBB")
		// Browser B, alice's too, posts the form browser A was shown
		// (for A's device, and then for its own): another session's and
		// another browser's token.
		wantPage(t, "A's token in B", b.post(formA.action, formA.fields), http.StatusForbidden, "The form expired")
		own := url.Values{"do": {"end"}, "device_id": {"DEVICEBBBB"}, "csrf": {formA.fields.Get("csrf")}}
		wantPage(t, "A's token for B's device", b.post(formA.action, own), http.StatusForbidden, "The form expired")
		e.wantActive("A's device", tokA, "DEVICEAAAA")
		e.wantActive("B's device", tokB, "DEVICEBBBB")
		// A token outlives no sign-in: after B signs in again (a new
		// session), B's old token is refused.
		b.c.Jar.SetCookies(mustURL(t, e.issuer), []*http.Cookie{{Name: "mxidp_session", Value: "", Path: "/", MaxAge: -1}})
		p := b.get(e.accountURL())
		wantSignInForm(t, "B without its session", p)
		if in := b.accountSignIn(p, "alice", alicePassword); in.status != http.StatusSeeOther {
			t.Fatalf("signing B in again: %d", in.status)
		}
		wantPage(t, "B's token of the old session", b.post(formB.action, formB.fields), http.StatusForbidden, "The form expired")
		e.wantActive("B's device after the old token", tokB, "DEVICEBBBB")
	})
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestAccountPageEndsNoOtherUsersDevice(t *testing.T) {
	eachAccountBackend(t, "", func(t *testing.T, e *accountEnv) {
		const bobPassword = "bob's own long password"
		(&cli{t: t, env: e.d.env}).must(noteSecret(bobPassword)+"\n", "user", "add", "bob", "--password-stdin", "--name", "Bob Builder")
		bobTok := e.deviceLoginAs(newBrowser(t), e.element, "BOBDEVICE1", "bob", bobPassword)
		b, aliceTok, f := e.endForm("ALICEDEV01")
		view := b.get(e.accountURL("action", "org.matrix.session_view", "device_id", "BOBDEVICE1"))
		wantPage(t, "viewing bob's device", view, http.StatusNotFound, "No such session")
		if strings.Contains(view.body, "Bob Builder") {
			t.Errorf("viewing bob's device shows bob")
		}
		wantPage(t, "the confirmation for bob's device", b.get(e.accountURL("action", "org.matrix.session_end", "device_id", "BOBDEVICE1")),
			http.StatusNotFound, "No such session")
		f.fields.Set("device_id", "BOBDEVICE1")
		wantPage(t, "ending bob's device with alice's valid form", b.post(f.action, f.fields), http.StatusNotFound, "No such session")
		e.wantActive("bob's device", bobTok, "BOBDEVICE1")
		e.wantActive("alice's device", aliceTok, "ALICEDEV01")
		if n := e.syn.called("delete_device", nil); n != 0 {
			t.Errorf("Synapse was asked to delete %d devices", n)
		}
		if !strings.Contains(b.get(e.accountURL()).body, "ALICEDEV01") || strings.Contains(b.get(e.accountURL()).body, "BOBDEVICE1") {
			t.Errorf("alice's list does not show exactly her own device")
		}
	})
}

func TestAccountPageBoundsDeviceIDs(t *testing.T) {
	eachAccountBackend(t, "", func(t *testing.T, e *accountEnv) {
		b, tok, f := e.endForm("ABCDEFGHIJ")
		long := strings.Repeat("A", 256)
		huge := strings.Repeat("B", 30<<10)
		for _, id := range []string{long, huge, "ABCDEFGHIJ" + strings.Repeat("J", 246), "<script>x</script>", "ABCDEFGHIJ\x00", "ABC DEF", "%00"} {
			what := "device_id of " + strings.Repeat("*", min(len(id), 20))
			for _, action := range []string{"org.matrix.session_view", "org.matrix.session_end"} {
				p := b.get(e.accountURL("action", action, "device_id", id))
				wantPage(t, what+" ("+action+")", p, http.StatusNotFound, "No such session")
				if strings.Contains(p.body, id) || strings.Contains(p.body, "<script>x") {
					t.Errorf("%s: the page repeats the device ID", what)
				}
			}
			posted := url.Values{"do": {"end"}, "device_id": {id}, "csrf": {f.fields.Get("csrf")}}
			wantPage(t, what+" (POST)", b.post(f.action, posted), http.StatusNotFound, "No such session")
			// The sign-in form does not carry it.
			if p := newBrowser(t).get(e.accountURL("action", "org.matrix.session_view", "device_id", id)); strings.Contains(p.body, id) {
				t.Errorf("%s: the sign-in form carries it", what)
			}
		}
		// Two device IDs: the first one counts, and only in the form.
		two := url.Values{"do": {"end"}, "device_id": {"NOSUCHDEV1", "ABCDEFGHIJ"}, "csrf": {f.fields.Get("csrf")}}
		wantPage(t, "two device IDs", b.post(f.action, two), http.StatusNotFound, "No such session")
		e.wantActive("after the bad device IDs", tok, "ABCDEFGHIJ")
		// A body over the pages' cap is refused before it is read.
		big := url.Values{"do": {"end"}, "device_id": {"ABCDEFGHIJ"}, "csrf": {f.fields.Get("csrf")}, "pad": {strings.Repeat("p", 70<<10)}}
		if p := b.post(f.action, big); p.status != http.StatusRequestEntityTooLarge {
			t.Errorf("a 70 KiB form: %d, want 413", p.status)
		}
		e.wantActive("after the oversized form", tok, "ABCDEFGHIJ")
	})
}

func TestAccountPageRefusesCrossSitePostsWithoutCookies(t *testing.T) {
	eachAccountBackend(t, "", func(t *testing.T, e *accountEnv) {
		b, tok, f := e.endForm("ABCDEFGHIJ")
		// Another site's form: the browser sends no SameSite=Lax cookie
		// with a cross-site POST, so the form arrives without any.
		for _, c := range []struct {
			what    string
			cookies []string // names of b's cookies sent along
		}{
			{"no cookies", nil},
			{"the session cookie without the binding cookie", []string{"mxidp_session"}},
			{"the binding cookie without the session cookie", []string{"mxidp_browser"}},
		} {
			req, _ := http.NewRequest(http.MethodPost, f.action, strings.NewReader(f.fields.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", "https://evil.example")
			for _, name := range c.cookies {
				req.AddCookie(&http.Cookie{Name: name, Value: cookieOf(b, e.issuer, name)})
			}
			status, _, body := e.send(req)
			if status != http.StatusForbidden {
				t.Errorf("%s: %d, want 403\n%.1000s", c.what, status, body)
			}
		}
		e.wantActive("after the cross-site posts", tok, "ABCDEFGHIJ")
		for _, name := range []string{"mxidp_session", "mxidp_browser"} {
			if c := setCookieOf(t, e, name); c == nil || c.SameSite != http.SameSiteLaxMode || !c.HttpOnly {
				t.Errorf("cookie %s: %+v; want HttpOnly and SameSite=Lax", name, c)
			}
		}
		// Methods other than GET and POST change nothing either.
		for _, m := range []string{http.MethodPut, http.MethodDelete, http.MethodPatch} {
			req, _ := http.NewRequest(m, f.action, strings.NewReader(f.fields.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if p := b.do(req); p.status != http.StatusMethodNotAllowed {
				t.Errorf("%s /account: %d, want 405", m, p.status)
			}
		}
		e.wantActive("after the other methods", tok, "ABCDEFGHIJ")
	})
}

// setCookieOf signs alice in on the account page in a new browser and
// returns the cookie named name that the answers set.
func setCookieOf(t *testing.T, e *accountEnv, name string) *http.Cookie {
	t.Helper()
	b := newBrowser(t)
	resp, err := b.c.Get(e.accountURL())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookies := resp.Cookies()
	p := b.get(e.accountURL())
	f := postFormOf(t, p, "sign_in")
	f.fields.Set("username", "alice")
	f.fields.Set("password", alicePassword)
	resp, err = b.c.PostForm(f.action, f.fields)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range append(cookies, resp.Cookies()...) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func TestAccountSignInRefusesAFormOfAnotherBrowser(t *testing.T) {
	eachAccountBackend(t, "", func(t *testing.T, e *accountEnv) {
		// Login CSRF: an attacker's own sign-in form (their token, their
		// binding) posted from a victim's browser must not sign the
		// victim in to the attacker's account.
		attacker := newBrowser(t)
		f := postFormOf(t, attacker.get(e.accountURL()), "sign_in")
		victim := newBrowser(t)
		victim.get(e.accountURL()) // the victim's browser has a binding of its own
		f.fields.Set("username", "alice")
		f.fields.Set("password", alicePassword)
		p := victim.post(f.action, f.fields)
		wantPage(t, "another browser's sign-in form", p, http.StatusForbidden, "The form expired")
		if cookieOf(victim, e.issuer, "mxidp_session") != "" {
			t.Errorf("another browser's sign-in form set a session")
		}
		noCookies := newBrowser(t)
		wantPage(t, "a sign-in form without cookies", noCookies.post(f.action, f.fields), http.StatusForbidden, "The form expired")
		if events := auditJSONOf(t, &cli{t: t, env: e.d.env}, "--event", "login."); len(events) != 0 {
			t.Errorf("refused forms reached the password check: %+v", events)
		}
	})
}

func TestAccountSignInIsThrottledLikeTheLoginPage(t *testing.T) {
	eachAccountBackend(t, slowThrottle, func(t *testing.T, e *accountEnv) {
		b := newBrowser(t)
		p := b.get(e.accountURL())
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
		if cookieOf(b, e.issuer, "mxidp_session") != "" {
			t.Errorf("the throttled sign-in set a session")
		}
		// The login page's throttle is the same one: its form is held off
		// for alice too.
		lb, form := e.signInPage()
		if status, _ := attempt(t, lb, form, "alice", alicePassword); status != http.StatusTooManyRequests {
			t.Errorf("the login page after the account page's guesses: %d, want 429", status)
		}
	})
}
