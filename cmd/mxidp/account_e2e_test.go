package main

// End-to-end tests of the account page (next-gen auth's
// account_management_uri, MSC4191 deep links), on every backend: a
// started mxidp in next-gen mode, Matrix logins through the OAuth flow to
// give alice devices, and /account driven in the cookie-jar browser (and
// in Chromium for the screenshots).
//
// The Synapse here is a stand-in: a small HTTP server of the test's that
// answers Synapse's /_synapse/mas/ API (Synapse synapse/rest/synapse/mas/)
// and records the calls, so that the page's tests can create and end
// devices quickly and see what mxidp told Synapse. It stands in at unit
// level for this page only; the flows against the real Synapse (its
// introspection, its device deletion) are tested with it in the
// next-gen end-to-end tests.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/mxidp/mxidp/storage/storagetest"
)

// accountServerName is the Matrix server name of the account tests.
const accountServerName = "example.org"

// masStandIn plays Synapse's /_synapse/mas/ API (see the file comment).
type masStandIn struct {
	t      *testing.T
	url    string
	secret string

	mu      sync.Mutex
	calls   []masCall
	users   map[string]bool
	devices map[string][]string // localpart → device IDs
}

// masCall is one call mxidp made: the API's name and its JSON body (or
// query, for query_user).
type masCall struct {
	name string
	body map[string]any
}

func newMASStandIn(t *testing.T) *masStandIn {
	s := &masStandIn{t: t, secret: noteSecret(randomAlnum(48)), users: map[string]bool{}, devices: map[string][]string{}}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

func (s *masStandIn) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.Header.Get("Authorization") != "Bearer "+s.secret {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"errcode":"M_UNKNOWN_TOKEN","error":"wrong secret"}`)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, "/_synapse/mas/")
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"errcode":"M_UNRECOGNIZED"}`)
		return
	}
	body := map[string]any{}
	if r.Method == http.MethodPost {
		json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body)
	}
	for k, v := range r.URL.Query() {
		body[k] = v[0]
	}
	localpart, _ := body["localpart"].(string)
	deviceID, _ := body["device_id"].(string)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, masCall{name: name, body: body})
	switch name {
	case "query_user":
		if !s.users[localpart] {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"errcode":"M_NOT_FOUND","error":"no such user"}`)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"user_id": "@" + localpart + ":" + accountServerName,
			"display_name": nil, "avatar_url": nil, "is_suspended": false, "is_deactivated": false})
		return
	case "provision_user":
		created := !s.users[localpart]
		s.users[localpart] = true
		if created {
			w.WriteHeader(http.StatusCreated)
		}
	case "upsert_device":
		if !slices.Contains(s.devices[localpart], deviceID) {
			s.devices[localpart] = append(s.devices[localpart], deviceID)
		}
	case "delete_device":
		s.devices[localpart] = slices.DeleteFunc(s.devices[localpart], func(d string) bool { return d == deviceID })
	case "sync_devices":
		s.devices[localpart] = nil
	}
	io.WriteString(w, `{}`)
}

// called counts the calls of an API whose body has these fields.
func (s *masStandIn) called(name string, fields map[string]string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		match := c.name == name
		for k, v := range fields {
			if got, _ := c.body[k].(string); got != v {
				match = false
			}
		}
		if match {
			n++
		}
	}
	return n
}

// hasDevice reports whether Synapse (the stand-in) has the device.
func (s *masStandIn) hasDevice(localpart, deviceID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.devices[localpart], deviceID)
}

// accountEnv is mxidp in next-gen mode with the stand-in as its Synapse,
// alice registered, and a client "element" (shown as "Element") for the
// Matrix logins.
type accountEnv struct {
	*openIDEnv
	syn     *masStandIn
	element rpClient
}

// startAccount starts it; extraYAML is added to mxidp's configuration.
func startAccount(t *testing.T, backend, extraYAML string) *accountEnv {
	t.Helper()
	syn := newMASStandIn(t)
	secretFile := filepath.Join(t.TempDir(), "synapse-secret")
	if err := os.WriteFile(secretFile, []byte(syn.secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := newDeployment(t, backend)
	d.env["MXIDP_CONFIG"] = writeConfig(t, fmt.Sprintf("passwords:\n  argon2id: {time: 1, memory_kib: 64, threads: 1}\n"+
		"keys:\n  refresh_interval: 100ms\nmatrix:\n  server_name: %s\n  synapse:\n    url: %s\n    shared_secret_file: %s\n%s",
		accountServerName, syn.url, secretFile, extraYAML))
	(&cli{t: t, env: d.env}).must(alicePassword+"\n", "user", "add", "alice", "--password-stdin",
		"--email", aliceEmail, "--name", aliceName)
	e := &accountEnv{openIDEnv: connectOpenID(t, d), syn: syn}
	e.element = e.addClient("element", "--name", "Element")
	return e
}

// eachAccountBackend runs test against a freshly started next-gen mxidp
// on every backend.
func eachAccountBackend(t *testing.T, extraYAML string, test func(t *testing.T, e *accountEnv)) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) { test(t, startAccount(t, backend, extraYAML)) })
	}
}

// accountScopes asks for the Matrix API as one device (Matrix
// client-server API, "OAuth 2.0 API", scopes).
func accountScopes(deviceID string) []string {
	return []string{"openid", "urn:matrix:client:api:*", "urn:matrix:client:device:" + deviceID}
}

// deviceLogin logs alice in through the element client in browser b as
// the device deviceID and returns the tokens; b keeps the mxidp session.
func (e *accountEnv) deviceLogin(b *browser, deviceID string) *oauth2.Token {
	e.t.Helper()
	return e.deviceLoginAs(b, e.element, deviceID, "alice", alicePassword)
}

func (e *accountEnv) deviceLoginAs(b *browser, c rpClient, deviceID, username, password string) *oauth2.Token {
	e.t.Helper()
	cfg := e.config(c, oauth2.AuthStyleInHeader, accountScopes(deviceID)...)
	r := authResult{state: randomAlnum(30), verifier: oauth2.GenerateVerifier()}
	cb, _ := b.authorize(cfg.AuthCodeURL(r.state, oauth2.S256ChallengeOption(r.verifier)), cfg.RedirectURL, username, password)
	if r.code = cb.Query().Get("code"); r.code == "" {
		e.t.Fatalf("no code in the redirect %s", cb)
	}
	tok, err := cfg.Exchange(e.ctx, r.code, oauth2.VerifierOption(r.verifier))
	if err != nil {
		e.t.Fatalf("exchange for device %s: %v", deviceID, err)
	}
	noteSecret(tok.AccessToken)
	noteSecret(tok.RefreshToken)
	if raw, _ := tok.Extra("id_token").(string); raw != "" {
		noteSecret(raw)
	}
	if !e.syn.hasDevice(username, deviceID) {
		e.t.Fatalf("after the login, Synapse does not have the device %s", deviceID)
	}
	return tok
}

// active asks the introspection endpoint, as Synapse does, whether the
// access token is live, and for which device.
func (e *accountEnv) active(tok *oauth2.Token) (bool, string) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth2/introspect",
		strings.NewReader(url.Values{"token": {tok.AccessToken}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+e.syn.secret)
	status, _, body := e.send(req)
	var got struct {
		Active   bool   `json:"active"`
		DeviceID string `json:"device_id"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &got) != nil {
		e.t.Fatalf("introspection: %d %s", status, body)
	}
	return got.Active, got.DeviceID
}

// wantActive fails unless the token is live for deviceID.
func (e *accountEnv) wantActive(what string, tok *oauth2.Token, deviceID string) {
	e.t.Helper()
	if active, dev := e.active(tok); !active || dev != deviceID {
		e.t.Errorf("%s: introspection says active %v, device %q; want the live device %s", what, active, dev, deviceID)
	}
}

// wantEnded fails unless the token is dead and Synapse was told to delete
// the device (within a few seconds: the cleanup does it).
func (e *accountEnv) wantEnded(what string, tok *oauth2.Token, localpart, deviceID string) {
	e.t.Helper()
	if active, _ := e.active(tok); active {
		e.t.Errorf("%s: the token of %s is still active", what, deviceID)
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.syn.called("delete_device", map[string]string{"localpart": localpart, "device_id": deviceID}) == 0 {
		if time.Now().After(deadline) {
			e.t.Errorf("%s: Synapse was not asked to delete the device %s", what, deviceID)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// accountURL is the account page with a deep link's parameters.
func (e *accountEnv) accountURL(params ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(params); i += 2 {
		v.Add(params[i], params[i+1])
	}
	if len(v) == 0 {
		return e.issuer + "/account"
	}
	return e.issuer + "/account?" + v.Encode()
}

// htmlForm is one form of a page.
type htmlForm struct {
	method, action string
	fields         url.Values
}

var (
	formRE       = regexp.MustCompile(`(?s)<form\b([^>]*)>(.*?)</form>`)
	formMethodRE = regexp.MustCompile(`\bmethod="([^"]*)"`)
)

// forms parses a page's forms: method, action and every named input.
func forms(p page) []htmlForm {
	var out []htmlForm
	for _, m := range formRE.FindAllStringSubmatch(p.body, -1) {
		f := htmlForm{method: "get", fields: url.Values{}}
		if mm := formMethodRE.FindStringSubmatch(m[1]); mm != nil {
			f.method = mm[1]
		}
		if am := formActionRE.FindStringSubmatch("<form " + m[1] + ">"); am != nil {
			if u, err := p.url.Parse(html.UnescapeString(am[1])); err == nil {
				f.action = u.String()
			}
		}
		for _, in := range inputRE.FindAllString(m[2], -1) {
			attrs := map[string]string{}
			for _, a := range attrRE.FindAllStringSubmatch(in, -1) {
				attrs[a[1]] = html.UnescapeString(a[2])
			}
			if name, ok := attrs["name"]; ok {
				f.fields.Add(name, attrs["value"])
			}
		}
		out = append(out, f)
	}
	return out
}

// postForm finds the page's POST form that asks for do (the "do" field).
func postFormOf(t *testing.T, p page, do string) htmlForm {
	t.Helper()
	for _, f := range forms(p) {
		if f.method == "post" && f.fields.Get("do") == do {
			return f
		}
	}
	t.Fatalf("no form asking for %q on the page (%d):\n%.3000s", do, p.status, p.body)
	return htmlForm{}
}

// post submits fields to the account page in browser b.
func (b *browser) post(action string, fields url.Values) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, action, strings.NewReader(fields.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// accountSignIn submits the account page's sign-in form shown in p.
func (b *browser) accountSignIn(p page, username, password string) page {
	b.t.Helper()
	f := postFormOf(b.t, p, "sign_in")
	f.fields.Set("username", username)
	f.fields.Set("password", noteSecret(password))
	return b.post(f.action, f.fields)
}

// wantPage fails unless p has the status and contains every text
// (HTML-escaped as the page writes it).
func wantPage(t *testing.T, what string, p page, status int, texts ...string) {
	t.Helper()
	if p.status != status {
		t.Errorf("%s: status %d, want %d\n%.2000s", what, p.status, status, p.body)
		return
	}
	for _, s := range texts {
		if !strings.Contains(p.body, html.EscapeString(s)) {
			t.Errorf("%s: the page does not say %q\n%.3000s", what, s, p.body)
		}
	}
}

// wantSignInForm fails unless p is the account page's sign-in form.
func wantSignInForm(t *testing.T, what string, p page) {
	t.Helper()
	if p.status != http.StatusOK && p.status != http.StatusUnauthorized && p.status != http.StatusTooManyRequests {
		t.Errorf("%s: status %d, want the sign-in form\n%.2000s", what, p.status, p.body)
		return
	}
	hasForm := false
	for _, f := range forms(p) {
		hasForm = hasForm || (f.method == "post" && f.fields.Get("do") == "sign_in" && f.fields.Has("password"))
	}
	if !hasForm {
		t.Errorf("%s: no sign-in form (%d)\n%.2000s", what, p.status, p.body)
	}
}

func TestAccountPageListsTheMatrixSessionsAndEndsOne(t *testing.T) {
	eachAccountBackend(t, "", func(t *testing.T, e *accountEnv) {
		b := newBrowser(t)
		phone := e.deviceLogin(b, "ABCDEFGHIJ")
		laptop := e.deviceLogin(b, "LAPTOPDEV1")
		e.wantActive("after the login", phone, "ABCDEFGHIJ")

		p := b.get(e.accountURL())
		wantPage(t, "the account page", p, http.StatusOK, aliceName, "alice", "@alice:"+accountServerName, aliceEmail,
			"ABCDEFGHIJ", "LAPTOPDEV1", "Element", "End session", "End all sessions", "just now", e.issuer+"/end_session")
		resp, err := b.c.Get(e.accountURL())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if cc, csp := resp.Header.Get("Cache-Control"), resp.Header.Get("Content-Security-Policy"); cc != "no-store" ||
			!strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("account page: Cache-Control %q, CSP %q; want no-store and the pages' policy", cc, csp)
		}

		view := b.get(e.accountURL("action", "org.matrix.session_view", "device_id", "ABCDEFGHIJ"))
		wantPage(t, "session_view", view, http.StatusOK, "ABCDEFGHIJ", "Element", "element", "Last active")
		if strings.Contains(view.body, "LAPTOPDEV1") {
			t.Errorf("session_view of ABCDEFGHIJ shows the other device too")
		}
		unknown := b.get(e.accountURL("action", "org.matrix.session_view", "device_id", "NOSUCHDEV1"))
		wantPage(t, "session_view of an unknown device", unknown, http.StatusNotFound, "No such session")

		// The link a client opens asks first; the GET ends nothing.
		confirm := b.get(e.accountURL("action", "org.matrix.session_end", "device_id", "ABCDEFGHIJ"))
		wantPage(t, "session_end", confirm, http.StatusOK, "End this session?", "ABCDEFGHIJ", "Element")
		e.wantActive("after the confirmation page", phone, "ABCDEFGHIJ")

		f := postFormOf(t, confirm, "end")
		done := b.post(f.action, f.fields)
		wantPage(t, "ending the session", done, http.StatusOK, "Session ended", "ABCDEFGHIJ")
		e.wantEnded("the ended session", phone, "alice", "ABCDEFGHIJ")
		e.wantActive("the other session", laptop, "LAPTOPDEV1")

		after := b.get(e.accountURL())
		wantPage(t, "the list after the end", after, http.StatusOK, "LAPTOPDEV1")
		if strings.Contains(after.body, "ABCDEFGHIJ") {
			t.Errorf("the ended session is still listed")
		}
		again := b.post(f.action, f.fields)
		wantPage(t, "ending it again", again, http.StatusNotFound, "No such session")
		if n := len(auditJSONOf(t, &cli{t: t, env: e.d.env}, "--event", "device.end")); n != 1 {
			t.Errorf("%d device.end audit events, want 1", n)
		}
	})
}

func TestAccountPageEndsAllSessions(t *testing.T) {
	eachAccountBackend(t, "", func(t *testing.T, e *accountEnv) {
		b := newBrowser(t)
		toks := map[string]*oauth2.Token{"PHONEDEV01": e.deviceLogin(b, "PHONEDEV01"), "TABLETDEV1": e.deviceLogin(b, "TABLETDEV1")}
		list := b.get(e.accountURL())
		var confirmURL string
		for _, f := range forms(list) {
			if f.method == "get" && f.fields.Get("confirm") == "end_all" {
				confirmURL = f.action + "?" + f.fields.Encode()
			}
		}
		if confirmURL == "" {
			t.Fatalf("no End all sessions button:\n%s", list.body)
		}
		confirm := b.get(confirmURL)
		wantPage(t, "the confirmation", confirm, http.StatusOK, "End all sessions?")
		for id, tok := range toks {
			e.wantActive("after the confirmation page", tok, id)
		}
		f := postFormOf(t, confirm, "end_all")
		wantPage(t, "ending all", b.post(f.action, f.fields), http.StatusOK, "All sessions ended")
		for id, tok := range toks {
			e.wantEnded("after ending all", tok, "alice", id)
		}
		wantPage(t, "the list after", b.get(e.accountURL()), http.StatusOK, "No app or device is signed in")
	})
}

func TestAccountSignInFormKeepsTheDeepLink(t *testing.T) {
	eachAccountBackend(t, "", func(t *testing.T, e *accountEnv) {
		e.deviceLogin(newBrowser(t), "ABCDEFGHIJ")
		b := newBrowser(t)
		link := e.accountURL("action", "org.matrix.session_view", "device_id", "ABCDEFGHIJ", "next", "https://evil.example/")
		p := b.get(link)
		wantSignInForm(t, "the deep link without a session", p)
		wrong := b.accountSignIn(p, "alice", "not the password")
		wantSignInForm(t, "a wrong password", wrong)
		wantPage(t, "a wrong password", wrong, http.StatusUnauthorized, "Unknown username or wrong password.")
		in := b.accountSignIn(wrong, "alice", alicePassword)
		want := e.accountURL("action", "org.matrix.session_view", "device_id", "ABCDEFGHIJ")
		if in.status != http.StatusSeeOther || in.location != want {
			t.Fatalf("signing in: %d to %q, want 303 to %q (the deep link's known parameters only)", in.status, in.location, want)
		}
		if cookieOf(b, e.issuer, "mxidp_session") == "" {
			t.Errorf("signing in set no session cookie")
		}
		wantPage(t, "the deep link after the sign-in", b.get(in.location), http.StatusOK, "ABCDEFGHIJ", "Element")
		// The session is the login page's: the authorization flow goes
		// through without a password now.
		cfg := e.config(e.element, oauth2.AuthStyleInHeader)
		cb, forms := b.authorize(cfg.AuthCodeURL("s-"+randomAlnum(8), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), cfg.RedirectURL, "alice")
		if cb.Query().Get("code") == "" || len(forms) != 0 {
			t.Errorf("the account page's session did not sign the authorization in: %s, %d forms", cb, len(forms))
		}
		events := auditJSONOf(t, &cli{t: t, env: e.d.env}, "--event", "login.")
		if countDetail(events, "account page") != 2 {
			t.Errorf("audit log: %+v; want the failed and the successful check at the account page", events)
		}
	})
}

func TestAccountPageDeepLinksToTheProfileAndTheCrossSigningReset(t *testing.T) {
	eachAccountBackend(t, "", func(t *testing.T, e *accountEnv) {
		b := newBrowser(t)
		e.deviceLogin(b, "ABCDEFGHIJ")
		profile := b.get(e.accountURL("action", "org.matrix.profile"))
		wantPage(t, "profile", profile, http.StatusOK, aliceName, "@alice:"+accountServerName, aliceEmail, "Your whole account")
		if strings.Contains(profile.body, "ABCDEFGHIJ") {
			t.Errorf("the profile view lists the sessions")
		}
		sessions := b.get(e.accountURL("action", "org.matrix.sessions_list"))
		wantPage(t, "sessions_list", sessions, http.StatusOK, "ABCDEFGHIJ")
		if strings.Contains(sessions.body, aliceEmail) {
			t.Errorf("the sessions view shows the profile")
		}
		wantPage(t, "the later MSC4191 name of session_view", b.get(e.accountURL("action", "org.matrix.device_view", "device_id", "ABCDEFGHIJ")),
			http.StatusOK, "ABCDEFGHIJ", "Last active")
		wantPage(t, "an unknown action", b.get(e.accountURL("action", "org.matrix.account_deactivate")), http.StatusOK,
			aliceEmail, "ABCDEFGHIJ")

		reset := b.get(e.accountURL("action", "org.matrix.cross_signing_reset"))
		wantPage(t, "cross_signing_reset", reset, http.StatusOK, "reset your cryptographic identity", "verify you again")
		if n := e.syn.called("allow_cross_signing_reset", nil); n != 0 {
			t.Errorf("the explanation page already allowed the reset (%d calls)", n)
		}
		f := postFormOf(t, reset, "cross_signing_reset")
		wantPage(t, "allowing the reset", b.post(f.action, f.fields), http.StatusOK, "within 10 minutes")
		if n := e.syn.called("allow_cross_signing_reset", map[string]string{"localpart": "alice"}); n != 1 {
			t.Errorf("Synapse was asked %d times to allow alice's reset, want 1", n)
		}
		if n := len(auditJSONOf(t, &cli{t: t, env: e.d.env}, "--event", "matrix.cross_signing_reset")); n != 1 {
			t.Errorf("%d matrix.cross_signing_reset audit events, want 1", n)
		}
	})
}

func TestAccountPageSpeaksGerman(t *testing.T) {
	eachAccountBackend(t, "", func(t *testing.T, e *accountEnv) {
		b := newBrowser(t)
		e.deviceLogin(b, "ABCDEFGHIJ")
		get := func(u string) page {
			req, _ := http.NewRequest(http.MethodGet, u, nil)
			req.Header.Set("Accept-Language", "de-DE,de;q=0.9")
			return b.do(req)
		}
		p := get(e.accountURL())
		if !strings.Contains(p.body, `<html lang="de">`) {
			t.Errorf("the account page is not marked German")
		}
		wantPage(t, "German", p, http.StatusOK, "Ihr Konto", "Sitzungen", "Sitzung beenden", "Alle Sitzungen beenden", "gerade eben", "Abmelden")
		wantPage(t, "German confirmation", get(e.accountURL("action", "org.matrix.session_end", "device_id", "ABCDEFGHIJ")),
			http.StatusOK, "Diese Sitzung beenden?")
		wantPage(t, "German unknown session", get(e.accountURL("action", "org.matrix.session_view", "device_id", "XYZ")),
			http.StatusNotFound, "Diese Sitzung gibt es nicht")
		req, _ := http.NewRequest(http.MethodGet, e.accountURL(), nil)
		req.Header.Set("Accept-Language", "de")
		wantPage(t, "German sign-in", newBrowser(t).do(req), http.StatusOK, "um Ihr Konto zu verwalten", "Passwort")
	})
}

func TestAccountPageIsOnlyServedInNextGenMode(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		p := newBrowser(t).get(e.issuer + "/account")
		if p.status != http.StatusNotFound || strings.Contains(p.body, "password") {
			t.Errorf("GET /account without next-gen auth: %d\n%.1000s; want 404", p.status, p.body)
		}
	})
}

// TestAccountPageScreenshots photographs the account page in Chromium, in
// English and German, at desktop and phone widths, after signing in
// through its own form: docs/screenshots/account-{en,de}-{desktop,phone}.png
// with MXIDP_SCREENSHOTS_DIR (`make screenshots`).
func TestAccountPageScreenshots(t *testing.T) {
	c := newChrome(t)
	e := startAccount(t, "sqlite", "branding:\n  product_name: Example Chat\n  platform_name: Example Chat\n  platform_url: https://chat.example.org/\n")
	e.deviceLogin(newBrowser(t), "ABCDEFGHIJ")
	e.deviceLogin(newBrowser(t), "QWERTYUIOP")
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
		b := c.user(t)
		b.do("set the language", chromeLanguage(lang))
		b.do("open the account page", navigateTo(e.accountURL()))
		b.signIn("alice", alicePassword)
		b.do("show the sessions", waitVisible("#sessions"))
		if got := eval[string](b, `document.documentElement.lang`); got != lang {
			t.Errorf("account page language %q, want %q", got, lang)
		}
		for _, size := range sizes {
			shot := screenshot(b, size.width, size.height)
			file := fmt.Sprintf("account-%s-%s.png", lang, size.name)
			for _, d := range dirs {
				if err := os.WriteFile(filepath.Join(d, file), shot, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if len(dirs) > 1 {
		t.Logf("screenshots written to %s", dirs[1])
	}
}

// chromeLanguage makes the tab's requests ask for lang.
func chromeLanguage(lang string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": lang}})
		return err
	})
}

func navigateTo(u string) chromedp.Action[chromedp.Void] { return chromedp.Navigate(u) }

func waitVisible(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(sel))
}

// screenshot photographs the whole page at the given width, failing the
// test when the page is wider than the viewport.
func screenshot(b *tab, width, height int64) []byte {
	b.t.Helper()
	b.do("resize", chromedp.EmulateViewport(width, height))
	if w := eval[int64](b, `document.documentElement.scrollWidth`); w > width {
		b.t.Errorf("the page is %d px wide in a %d px viewport", w, width)
	}
	b.do("resize to the page", chromedp.EmulateViewport(width, max(height, eval[int64](b, `document.documentElement.scrollHeight`))))
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	if conf, err := png.DecodeConfig(bytes.NewReader(shot)); err != nil || int64(conf.Width) != width {
		b.t.Errorf("screenshot: PNG %v, width %d; want a PNG %d px wide", err, conf.Width, width)
	}
	return shot
}
