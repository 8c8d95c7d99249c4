package main

// End-to-end tests of the OpenID provider: a started mxidp binary, driven
// by real relying-party libraries (go-oidc and x/oauth2) and by net/http
// with a cookie jar playing the browser, on every storage backend. Each
// test checks what Synapse relies on (Synapse synapse/handlers/oidc.py)
// against the RFC or OpenID section it comes from.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"html"
	"io"
	"math/big"
	"mime"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/mxidp/mxidp/storage/storagetest"
	"golang.org/x/oauth2"
)

const (
	alicePassword = "correct horse battery staple"
	aliceEmail    = "alice@example.org"
	aliceName     = "Alice Liddell"
	// logoutEventKey is the member of a logout token's events claim.
	logoutEventKey = "http://schemas.openid.net/event/backchannel-logout"
)

var defaultScopes = []string{oidc.ScopeOpenID, "profile", "email"}

// openIDEnv is one started mxidp (user alice registered) as a relying
// party sees it through go-oidc.
type openIDEnv struct {
	t        *testing.T
	ctx      context.Context
	d        *deployment
	s        *server
	issuer   string
	provider *oidc.Provider
	meta     struct {
		Token         string `json:"token_endpoint"`
		Userinfo      string `json:"userinfo_endpoint"`
		Revocation    string `json:"revocation_endpoint"`
		Introspection string `json:"introspection_endpoint"`
		EndSession    string `json:"end_session_endpoint"`
	}
}

// eachBackend runs test against a freshly started mxidp on every backend.
func eachBackend(t *testing.T, test func(t *testing.T, e *openIDEnv)) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) { test(t, startOpenID(t, backend)) })
	}
}

func startOpenID(t *testing.T, backend string) *openIDEnv {
	t.Helper()
	return startOpenIDIn(t, newDeployment(t, backend))
}

// startOpenIDIn registers alice in deployment d and starts it on a free
// port.
func startOpenIDIn(t *testing.T, d *deployment) *openIDEnv {
	t.Helper()
	(&cli{t: t, env: d.env}).must(alicePassword+"\n", "user", "add", "alice", "--password-stdin",
		"--email", aliceEmail, "--name", aliceName)
	return connectOpenID(t, d)
}

// connect points the relying party at a (re)started instance.
func (e *openIDEnv) connect(s *server) {
	e.t.Helper()
	e.s = s
	e.issuer = e.d.env["MXIDP_ISSUER"]
	if s.url != e.issuer {
		e.t.Fatalf("mxidp listens on %s but its issuer is %s", s.url, e.issuer)
	}
	p, err := oidc.NewProvider(e.ctx, e.issuer)
	if err != nil {
		e.t.Fatalf("go-oidc rejects the discovery document: %v", err)
	}
	e.provider = p
	if err := p.Claims(&e.meta); err != nil {
		e.t.Fatal(err)
	}
}

// rpClient is a registered relying party.
type rpClient struct {
	id, secret, redirectURI string
}

var clientSecretRE = regexp.MustCompile(`client_secret: (\S+)`)

// addClient registers a client whose redirect URI is on loopback but never
// fetched: the browser stops when it is sent there.
func (e *openIDEnv) addClient(id string, flags ...string) rpClient {
	e.t.Helper()
	c := rpClient{id: id, redirectURI: "http://127.0.0.1:9/" + id + "/callback"}
	out := e.d.cli(append([]string{"client", "add", id, "--redirect-uri", c.redirectURI, "--skip-consent"}, flags...)...)
	if m := clientSecretRE.FindStringSubmatch(out); m != nil {
		c.secret = m[1]
	} else if !slices.Contains(flags, "--public") {
		e.t.Fatalf("client add printed no secret: %q", out)
	}
	return c
}

// config is the client's x/oauth2 configuration, endpoints from discovery.
func (e *openIDEnv) config(c rpClient, style oauth2.AuthStyle, scopes ...string) *oauth2.Config {
	if len(scopes) == 0 {
		scopes = defaultScopes
	}
	ep := e.provider.Endpoint()
	ep.AuthStyle = style
	return &oauth2.Config{ClientID: c.id, ClientSecret: c.secret, Endpoint: ep, RedirectURL: c.redirectURI, Scopes: scopes}
}

// authResult is what the relying party keeps of one authorization.
type authResult struct {
	state, nonce, verifier, code string
	forms                        []int // status of each login form shown
}

// authorize runs an authorization (S256 PKCE, nonce) in browser b, signing
// in as alice when asked, and returns the code sent to the redirect URI.
func (e *openIDEnv) authorize(b *browser, cfg *oauth2.Config, extra ...oauth2.AuthCodeOption) authResult {
	e.t.Helper()
	return e.authorizeWith(b, cfg, randomAlnum(30), []string{alicePassword}, extra...)
}

func (e *openIDEnv) authorizeWith(b *browser, cfg *oauth2.Config, state string, passwords []string, extra ...oauth2.AuthCodeOption) authResult {
	e.t.Helper()
	r := authResult{state: state, nonce: randomAlnum(32), verifier: oauth2.GenerateVerifier()}
	opts := append([]oauth2.AuthCodeOption{oidc.Nonce(r.nonce), oauth2.S256ChallengeOption(r.verifier)}, extra...)
	cb, forms := b.authorize(cfg.AuthCodeURL(r.state, opts...), cfg.RedirectURL, "alice", passwords...)
	r.forms = forms
	q := cb.Query()
	if q.Get("error") != "" {
		e.t.Fatalf("authorization failed: %s", cb)
	}
	if got := q.Get("state"); got != r.state {
		e.t.Errorf("state came back as %q, want %q unchanged", got, r.state)
	}
	if r.code = q.Get("code"); r.code == "" {
		e.t.Fatalf("no code in the redirect %s", cb)
	}
	return r
}

// idClaims are the ID token claims go-oidc's IDToken does not expose.
type idClaims struct {
	Sid               string `json:"sid"`
	Azp               string `json:"azp"`
	PreferredUsername string `json:"preferred_username"`
	Name              string `json:"name"`
	Email             string `json:"email"`
	EmailVerified     *bool  `json:"email_verified"`
}

// login is the outcome of a successful exchange.
type login struct {
	token   *oauth2.Token
	rawID   string
	idToken *oidc.IDToken
	claims  idClaims
}

// exchange redeems r's code with its verifier and verifies the ID token.
func (e *openIDEnv) exchange(cfg *oauth2.Config, r authResult) login {
	e.t.Helper()
	tok, err := cfg.Exchange(e.ctx, r.code, oauth2.VerifierOption(r.verifier))
	if err != nil {
		e.t.Fatalf("exchange for %s: %v", cfg.ClientID, err)
	}
	l := e.verifyIDToken(cfg.ClientID, tok)
	if l.idToken.Nonce != r.nonce {
		e.t.Errorf("ID token nonce %q, want %q", l.idToken.Nonce, r.nonce)
	}
	return l
}

// verifyIDToken checks the token response's ID token with go-oidc: the
// signature against the JWKS, iss, aud and exp.
func (e *openIDEnv) verifyIDToken(clientID string, tok *oauth2.Token) login {
	e.t.Helper()
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		e.t.Fatalf("token response without id_token")
	}
	noteSecret(tok.AccessToken)
	noteSecret(tok.RefreshToken)
	noteSecret(raw)
	idt, err := e.provider.Verifier(&oidc.Config{ClientID: clientID}).Verify(e.ctx, raw)
	if err != nil {
		e.t.Fatalf("go-oidc rejects the ID token: %v", err)
	}
	l := login{token: tok, rawID: raw, idToken: idt}
	if err := idt.Claims(&l.claims); err != nil {
		e.t.Fatal(err)
	}
	return l
}

// userinfo sends a bearer token to the userinfo endpoint.
func (e *openIDEnv) userinfo(accessToken string) (int, http.Header, []byte) {
	e.t.Helper()
	req, _ := http.NewRequestWithContext(e.ctx, http.MethodGet, e.meta.Userinfo, nil)
	req.Header.Set("Authorization", "Bearer "+accessToken)
	return e.send(req)
}

// wantUserinfoRefused asserts that accessToken no longer works: 401 with a
// Bearer challenge, never a 200 (RFC 6750 §3.1).
func (e *openIDEnv) wantUserinfoRefused(what, accessToken string) {
	e.t.Helper()
	status, h, body := e.userinfo(accessToken)
	if status != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
		e.t.Errorf("userinfo with %s: %d (WWW-Authenticate %q) %s; want 401 with a Bearer challenge",
			what, status, h.Get("WWW-Authenticate"), body)
	}
}

// wantUserinfoOK asserts that accessToken works: 200 JSON (OIDC Core §5.3.2).
func (e *openIDEnv) wantUserinfoOK(what, accessToken string) {
	e.t.Helper()
	status, h, body := e.userinfo(accessToken)
	if status != http.StatusOK || !isJSON(h) {
		e.t.Errorf("userinfo with %s: %d %q %s; want 200 JSON", what, status, h.Get("Content-Type"), body)
	}
}

// postForm POSTs a form, with Basic client credentials when user is set.
func (e *openIDEnv) postForm(endpoint string, form url.Values, user, pass string) (int, http.Header, []byte) {
	e.t.Helper()
	req, _ := http.NewRequestWithContext(e.ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	return e.send(req)
}

func (e *openIDEnv) send(req *http.Request) (int, http.Header, []byte) {
	e.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body
}

// jwks returns the published key set, parsed by go-jose and raw.
func (e *openIDEnv) jwks() (jose.JSONWebKeySet, []map[string]any) {
	e.t.Helper()
	status, body := e.s.get("/keys")
	var set jose.JSONWebKeySet
	var raw struct {
		Keys []map[string]any `json:"keys"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &set) != nil || json.Unmarshal(body, &raw) != nil {
		e.t.Fatalf("GET /keys: %d %s", status, body)
	}
	return set, raw.Keys
}

// signingAlgs are the algorithms mxidp signs with.
var signingAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA}

// jwsHeader returns the protected header of a compact JWS in one of
// mxidp's algorithms.
func jwsHeader(t *testing.T, token string) jose.Header {
	t.Helper()
	if strings.Count(token, ".") != 2 {
		t.Fatalf("%q is not a 3-part compact JWS", token)
	}
	jws, err := jose.ParseSignedCompact(token, signingAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		t.Fatalf("not a JWS of mxidp's algorithms with one signature: %v", err)
	}
	return jws.Signatures[0].Protected
}

// wantTokenError asserts a token-endpoint refusal: a JSON body with the
// given error code and one of the given statuses (RFC 6749 §5.2).
func wantTokenError(t *testing.T, what string, err error, code string, statuses ...int) {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Errorf("%s: got %v, want a token error %s", what, err, code)
		return
	}
	if !slices.Contains(statuses, re.Response.StatusCode) || re.ErrorCode != code {
		t.Errorf("%s: %d %q, want %v %q; body %s", what, re.Response.StatusCode, re.ErrorCode, statuses, code, re.Body)
	}
	if !isJSON(re.Response.Header) || !json.Valid(re.Body) {
		t.Errorf("%s: Content-Type %q, body %s; want JSON", what, re.Response.Header.Get("Content-Type"), re.Body)
	}
}

func isJSON(h http.Header) bool {
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	return mt == "application/json"
}

func randomAlnum(n int) string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	for i := range b {
		k, _ := rand.Int(rand.Reader, big.NewInt(int64(len(letters))))
		b[i] = letters[k.Int64()]
	}
	return string(b)
}

// browser is a user agent with a cookie jar that shows each redirect to
// the test instead of following it.
type browser struct {
	t *testing.T
	c *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, c: &http.Client{Jar: jar, Timeout: 15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// page is one response as the browser saw it.
type page struct {
	url      *url.URL
	status   int
	location string // absolute
	body     string
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	noteCookies(resp)
	body, _ := io.ReadAll(resp.Body)
	p := page{url: req.URL, status: resp.StatusCode, body: string(body)}
	if loc, err := resp.Location(); err == nil {
		p.location = loc.String()
	}
	return p
}

func (b *browser) get(u string) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

// authorize plays the user from authURL until the server redirects to
// redirectURI (not fetched), which it returns. Each login form shown is
// answered with the next of passwords; the forms' statuses are returned.
func (b *browser) authorize(authURL, redirectURI, username string, passwords ...string) (*url.URL, []int) {
	b.t.Helper()
	var forms []int
	p := b.get(authURL)
	for hops := 0; hops < 12; hops++ {
		form, isForm := parseLoginForm(p)
		switch {
		case p.location != "" && strings.HasPrefix(p.location, redirectURI):
			u, err := url.Parse(p.location)
			if err != nil {
				b.t.Fatal(err)
			}
			return u, forms
		case p.status >= 300 && p.status < 400 && p.location != "":
			p = b.get(p.location)
		case isForm && len(forms) < len(passwords):
			forms = append(forms, p.status)
			p = b.submitLogin(form, username, passwords[len(forms)-1])
		case isForm:
			b.t.Fatalf("login form shown (%d) after %d sign-in attempt(s); none expected", p.status, len(forms))
		default:
			b.t.Fatalf("browser stuck after %d login form(s) at %s: %d (Location %q)\n%s", len(forms), p.url, p.status, p.location, p.body)
		}
	}
	b.t.Fatalf("too many redirects from %s", authURL)
	return nil, nil
}

// loginForm is the parsed sign-in form.
type loginForm struct {
	action string
	fields map[string]string // input name → value
}

var (
	formActionRE = regexp.MustCompile(`<form\b[^>]*\baction="([^"]*)"`)
	inputRE      = regexp.MustCompile(`<input\b[^>]*>`)
	attrRE       = regexp.MustCompile(`\b(name|value|type)="([^"]*)"`)
)

// parseLoginForm finds the sign-in form: hidden id and csrf, a username
// and a password input.
func parseLoginForm(p page) (loginForm, bool) {
	m := formActionRE.FindStringSubmatch(p.body)
	if m == nil {
		return loginForm{}, false
	}
	action, err := p.url.Parse(html.UnescapeString(m[1]))
	if err != nil {
		return loginForm{}, false
	}
	f := loginForm{action: action.String(), fields: map[string]string{}}
	types := map[string]string{}
	for _, in := range inputRE.FindAllString(p.body, -1) {
		attrs := map[string]string{}
		for _, a := range attrRE.FindAllStringSubmatch(in, -1) {
			attrs[a[1]] = html.UnescapeString(a[2])
		}
		if name, ok := attrs["name"]; ok {
			f.fields[name] = attrs["value"]
			types[name] = attrs["type"]
		}
	}
	ok := f.fields["id"] != "" && f.fields["csrf"] != "" && types["id"] == "hidden" && types["csrf"] == "hidden" &&
		types["username"] == "text" && types["password"] == "password"
	return f, ok
}

func (b *browser) submitLogin(f loginForm, username, password string) page {
	b.t.Helper()
	form := url.Values{"id": {f.fields["id"]}, "csrf": {f.fields["csrf"]}, "username": {username}, "password": {noteSecret(password)}}
	req, err := http.NewRequest(http.MethodPost, f.action, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// logoutReceiver is a relying party's back-channel logout endpoint that
// records what it is sent.
type logoutReceiver struct {
	url string
	got chan receivedLogout
}

type receivedLogout struct {
	method, contentType, token string
}

func newLogoutReceiver(t *testing.T) *logoutReceiver {
	r := &logoutReceiver{got: make(chan receivedLogout, 16)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rec := receivedLogout{method: req.Method, contentType: req.Header.Get("Content-Type")}
		if req.ParseForm() == nil {
			rec.token = req.PostForm.Get("logout_token")
		}
		select {
		case r.got <- rec:
		default:
		}
		w.Header().Set("Cache-Control", "no-cache, no-store")
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL + "/_synapse/client/oidc/backchannel_logout"
	return r
}

// wait returns the next notice, failing after within.
func (r *logoutReceiver) wait(t *testing.T, within time.Duration) receivedLogout {
	t.Helper()
	select {
	case rec := <-r.got:
		return rec
	case <-time.After(within):
		t.Fatalf("no back-channel logout within %v", within)
		return receivedLogout{}
	}
}

// none asserts that nothing more arrives during d.
func (r *logoutReceiver) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case rec := <-r.got:
		t.Errorf("an unexpected further back-channel logout arrived: %+v", rec)
	case <-time.After(d):
	}
}

// checkLogoutToken verifies a received notice (Back-Channel Logout §2.4
// and §2.5) against the login it must end: the form POST, the signature
// with go-jose against /keys, every claim (sid and sub those of the ID
// token, no nonce), and go-oidc's own logout-token verification.
func (e *openIDEnv) checkLogoutToken(rec receivedLogout, clientID string, l login) {
	t := e.t
	t.Helper()
	if mt, _, _ := mime.ParseMediaType(rec.contentType); rec.method != http.MethodPost || mt != "application/x-www-form-urlencoded" {
		t.Errorf("back-channel logout sent as %s %q; want a form POST", rec.method, rec.contentType)
	}
	if rec.token == "" {
		t.Fatalf("back-channel logout without a logout_token")
	}
	// The logout token is signed in the algorithm of the client's ID tokens.
	header, want := jwsHeader(t, rec.token), jwsHeader(t, l.rawID).Algorithm
	if header.Algorithm != want || header.ExtraHeaders[jose.HeaderType] != "logout+jwt" {
		t.Errorf("logout token header alg %q typ %v; want %s, logout+jwt", header.Algorithm, header.ExtraHeaders[jose.HeaderType], want)
	}
	set, _ := e.jwks()
	keys := set.Key(header.KeyID)
	if header.KeyID == "" || len(keys) != 1 {
		t.Fatalf("logout token kid %q is not in /keys", header.KeyID)
	}
	jws, err := jose.ParseSignedCompact(rec.token, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(want)})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("logout token signature does not verify against /keys: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil {
		t.Fatal(err)
	}
	if claims["iss"] != e.issuer {
		t.Errorf("logout token iss %v, want %q", claims["iss"], e.issuer)
	}
	if aud := claims["aud"]; aud != clientID && !(slices.Equal(anyStrings(aud), []string{clientID})) {
		t.Errorf("logout token aud %v, want %q", aud, clientID)
	}
	if claims["sid"] != l.claims.Sid || l.claims.Sid == "" {
		t.Errorf("logout token sid %v, want the ID token's %q", claims["sid"], l.claims.Sid)
	}
	if claims["sub"] != l.idToken.Subject {
		t.Errorf("logout token sub %v, want the ID token's %q", claims["sub"], l.idToken.Subject)
	}
	events, _ := claims["events"].(map[string]any)
	ev, isObject := events[logoutEventKey].(map[string]any)
	if len(events) != 1 || !isObject || len(ev) != 0 {
		t.Errorf("logout token events %v, want {%q: {}}", claims["events"], logoutEventKey)
	}
	if jti, _ := claims["jti"].(string); jti == "" {
		t.Errorf("logout token jti %v, want a non-empty string", claims["jti"])
	}
	iatNum, _ := claims["iat"].(json.Number)
	if iat, err := iatNum.Int64(); err != nil || time.Since(time.Unix(iat, 0)).Abs() > time.Minute {
		t.Errorf("logout token iat %v, want an integer close to now", claims["iat"])
	}
	if nonce, has := claims["nonce"]; has {
		t.Errorf("logout token has a nonce (%v)", nonce)
	}
	lt, err := e.provider.Verifier(&oidc.Config{ClientID: clientID}).VerifyLogout(e.ctx, rec.token)
	if err != nil {
		t.Errorf("go-oidc rejects the logout token: %v", err)
	} else if lt.SessionID != l.claims.Sid || lt.Subject != l.idToken.Subject {
		t.Errorf("go-oidc reads sid %q sub %q from the logout token", lt.SessionID, lt.Subject)
	}
}

func anyStrings(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// go-oidc accepts discovery (so the issuer matches the URL), and the
// document and key set say what Synapse relies on (Synapse
// synapse/handlers/oidc.py, _validate_metadata and load_jwks).
func TestOpenIDDiscoveryIsAcceptedByGoOIDCAndAdvertisesWhatSynapseNeeds(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		req, _ := http.NewRequest(http.MethodGet, e.issuer+"/.well-known/openid-configuration", nil)
		status, h, body := e.send(req)
		var doc map[string]any
		if status != http.StatusOK || !isJSON(h) || json.Unmarshal(body, &doc) != nil {
			t.Fatalf("discovery: %d %q %s; want 200 JSON object", status, h.Get("Content-Type"), body)
		}
		if doc["issuer"] != e.issuer {
			t.Errorf("issuer %v, want %q byte for byte", doc["issuer"], e.issuer)
		}
		for key, path := range map[string]string{
			"authorization_endpoint": "/authorize",
			"token_endpoint":         "/oauth/token",
			"userinfo_endpoint":      "/userinfo",
			"jwks_uri":               "/keys",
			"revocation_endpoint":    "/revoke",
			"introspection_endpoint": "/oauth/introspect",
			"end_session_endpoint":   "/end_session",
		} {
			if doc[key] != e.issuer+path {
				t.Errorf("%s = %v, want %s", key, doc[key], e.issuer+path)
			}
		}
		strs := func(key string) []string { return anyStrings(doc[key]) }
		if !slices.Contains(strs("response_types_supported"), "code") {
			t.Errorf("response_types_supported %v lacks code", doc["response_types_supported"])
		}
		if methods := strs("token_endpoint_auth_methods_supported"); !slices.Contains(methods, "client_secret_basic") ||
			!slices.Contains(methods, "client_secret_post") || !slices.Contains(methods, "none") {
			t.Errorf("token_endpoint_auth_methods_supported %v; want client_secret_basic, client_secret_post and none", methods)
		}
		if m, present := doc["code_challenge_methods_supported"]; present && !slices.Contains(anyStrings(m), "S256") {
			t.Errorf("code_challenge_methods_supported %v lacks S256", m)
		}
		if !slices.Contains(strs("id_token_signing_alg_values_supported"), "RS256") {
			t.Errorf("id_token_signing_alg_values_supported %v lacks RS256", doc["id_token_signing_alg_values_supported"])
		}
		if doc["backchannel_logout_supported"] != true || doc["backchannel_logout_session_supported"] != true {
			t.Errorf("backchannel_logout_supported %v, backchannel_logout_session_supported %v; want true, true",
				doc["backchannel_logout_supported"], doc["backchannel_logout_session_supported"])
		}

		req, _ = http.NewRequest(http.MethodGet, doc["jwks_uri"].(string), nil)
		if status, h, body := e.send(req); status != http.StatusOK || !isJSON(h) || !json.Valid(body) {
			t.Errorf("JWKS %d %q %s", status, h.Get("Content-Type"), body)
		}
		_, keys := e.jwks()
		if len(keys) == 0 {
			t.Fatal("the JWKS has no keys")
		}
		seen := map[string]bool{}
		for _, k := range keys {
			kid, _ := k["kid"].(string)
			if kid == "" || seen[kid] {
				t.Errorf("kid %q missing or repeated in %v", kid, keys)
			}
			seen[kid] = true
			if use, present := k["use"]; present && use != "sig" {
				t.Errorf("key %s has use %v", kid, use)
			}
			if ops, present := k["key_ops"]; present && !slices.Contains(anyStrings(ops), "verify") {
				t.Errorf("key %s has key_ops %v", kid, ops)
			}
			if _, private := k["d"]; private {
				t.Errorf("key %s publishes its private part", kid)
			}
		}
	})
}

// Synapse's default setup (client_secret_basic, S256, nonce), verified by
// go-oidc: the code and state come back, the token answer, the ID token's
// signature, claims and at_hash, and userinfo agreeing with the ID token.
func TestOpenIDCodeFlowWithClientSecretBasicPKCEAndNonceVerifiesWithGoOIDC(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		c := e.addClient("synapse")
		cfg := e.config(c, oauth2.AuthStyleInHeader)
		r := e.authorize(newBrowser(t), cfg)
		if !slices.Equal(r.forms, []int{http.StatusOK}) {
			t.Errorf("login forms shown %v, want one (200)", r.forms)
		}
		before := time.Now()
		l := e.exchange(cfg, r)

		if !strings.EqualFold(l.token.TokenType, "Bearer") || l.token.AccessToken == "" || l.token.Expiry.IsZero() {
			t.Errorf("token response: type %q, access token %t, expiry %v; want Bearer, a token, expires_in",
				l.token.TokenType, l.token.AccessToken != "", l.token.Expiry)
		}
		idt := l.idToken
		if idt.Issuer != e.issuer || idt.Subject == "" || !slices.Equal(idt.Audience, []string{c.id}) || l.claims.Azp != c.id {
			t.Errorf("ID token iss %q sub %q aud %v azp %q", idt.Issuer, idt.Subject, idt.Audience, l.claims.Azp)
		}
		if idt.IssuedAt.After(time.Now().Add(5*time.Second)) || !idt.Expiry.After(before) {
			t.Errorf("ID token iat %v exp %v around now %v", idt.IssuedAt, idt.Expiry, before)
		}
		if l.claims.Sid == "" {
			t.Error("the ID token has no sid")
		}
		want := idClaims{Sid: l.claims.Sid, Azp: c.id, PreferredUsername: "alice", Name: aliceName, Email: aliceEmail, EmailVerified: oidcTrue()}
		if !claimsEqual(l.claims, want) {
			t.Errorf("ID token claims %+v (email_verified %v), want %+v", l.claims, deref(l.claims.EmailVerified), want)
		}
		header := jwsHeader(t, l.rawID)
		set, _ := e.jwks()
		if header.Algorithm != "RS256" || len(set.Key(header.KeyID)) != 1 {
			t.Errorf("ID token alg %q kid %q; want RS256 and a kid in /keys", header.Algorithm, header.KeyID)
		}
		if err := idt.VerifyAccessToken(l.token.AccessToken); err != nil {
			t.Errorf("at_hash: %v", err)
		}

		info, err := e.provider.UserInfo(e.ctx, oauth2.StaticTokenSource(l.token))
		if err != nil {
			t.Fatalf("go-oidc userinfo: %v", err)
		}
		var uc idClaims
		if err := info.Claims(&uc); err != nil {
			t.Fatal(err)
		}
		if info.Subject != idt.Subject || info.Email != aliceEmail || !info.EmailVerified ||
			uc.PreferredUsername != l.claims.PreferredUsername || uc.Name != l.claims.Name {
			t.Errorf("userinfo sub %q %+v; want the ID token's sub %q and claims %+v", info.Subject, uc, idt.Subject, l.claims)
		}
		e.wantUserinfoOK("the access token", l.token.AccessToken)
		e.wantUserinfoRefused("a made-up token", "not-a-token")
		e.wantUserinfoRefused("the ID token", l.rawID)
	})
}

func oidcTrue() *bool { b := true; return &b }

func deref(b *bool) any {
	if b == nil {
		return nil
	}
	return *b
}

func claimsEqual(a, b idClaims) bool {
	return a.Sid == b.Sid && a.Azp == b.Azp && a.PreferredUsername == b.PreferredUsername && a.Name == b.Name &&
		a.Email == b.Email && deref(a.EmailVerified) == deref(b.EmailVerified)
}

// client_secret_post works; credentials in both the header and the
// body are refused (RFC 6749 §2.3: one method per request).
func TestOpenIDClientSecretPostWorksAndBothAuthMethodsAtOnceAreRefused(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		c := e.addClient("synapse")
		cfg := e.config(c, oauth2.AuthStyleInParams)
		l := e.exchange(cfg, e.authorize(newBrowser(t), cfg))
		if l.claims.PreferredUsername != "alice" {
			t.Errorf("client_secret_post login gave preferred_username %q", l.claims.PreferredUsername)
		}

		r := e.authorize(newBrowser(t), cfg)
		status, h, body := e.postForm(e.meta.Token, url.Values{
			"grant_type": {"authorization_code"}, "code": {r.code}, "redirect_uri": {c.redirectURI},
			"code_verifier": {r.verifier}, "client_id": {c.id}, "client_secret": {c.secret},
		}, c.id, c.secret)
		var resp struct {
			Error       string `json:"error"`
			AccessToken string `json:"access_token"`
		}
		json.Unmarshal(body, &resp)
		if status != http.StatusBadRequest || resp.Error != "invalid_request" || !isJSON(h) || resp.AccessToken != "" {
			t.Errorf("basic header and client_secret in the body: %d %q %s; want 400 invalid_request JSON", status, h.Get("Content-Type"), body)
		}
	})
}

// A public client exchanges with PKCE and cannot without the verifier
// (RFC 7636 §4.6).
func TestOpenIDPublicClientNeedsTheCodeVerifier(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		c := e.addClient("element", "--public")
		if c.secret != "" {
			t.Fatalf("a public client got a secret")
		}
		cfg := e.config(c, oauth2.AuthStyleInParams)
		l := e.exchange(cfg, e.authorize(newBrowser(t), cfg))
		e.wantUserinfoOK("the public client's access token", l.token.AccessToken)

		r := e.authorize(newBrowser(t), cfg)
		_, err := cfg.Exchange(e.ctx, r.code)
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.Response.StatusCode != http.StatusBadRequest ||
			(re.ErrorCode != "invalid_request" && re.ErrorCode != "invalid_grant") || !isJSON(re.Response.Header) {
			t.Errorf("public client without code_verifier: %v; want 400 JSON invalid_request or invalid_grant", err)
		}
	})
}

// A wrong code verifier, a wrong secret (Basic or in the body) and a
// redirect URI other than the authorization request's are refused with the
// right JSON error (RFC 6749 §5.2, RFC 7636 §4.6).
func TestOpenIDRefusedExchangesAnswerWithJSONErrors(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		c := e.addClient("synapse")
		tests := []struct {
			name     string
			style    oauth2.AuthStyle
			secret   string
			verifier func(right string) string
			redirect string
			code     string
			statuses []int
		}{
			{name: "wrong code_verifier", style: oauth2.AuthStyleInHeader, verifier: func(string) string { return oauth2.GenerateVerifier() },
				code: "invalid_grant", statuses: []int{http.StatusBadRequest}},
			{name: "wrong secret, basic", style: oauth2.AuthStyleInHeader, secret: "wrong-" + c.secret,
				code: "invalid_client", statuses: []int{http.StatusUnauthorized, http.StatusBadRequest}},
			{name: "wrong secret, post", style: oauth2.AuthStyleInParams, secret: "wrong-" + c.secret,
				code: "invalid_client", statuses: []int{http.StatusUnauthorized, http.StatusBadRequest}},
			{name: "redirect_uri differs from the authorization request", style: oauth2.AuthStyleInHeader, redirect: c.redirectURI + "/other",
				code: "invalid_grant", statuses: []int{http.StatusBadRequest}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				cfg := e.config(c, tc.style)
				r := e.authorize(newBrowser(t), cfg)
				if tc.secret != "" {
					cfg.ClientSecret = tc.secret
				}
				if tc.redirect != "" {
					cfg.RedirectURL = tc.redirect
				}
				verifier := r.verifier
				if tc.verifier != nil {
					verifier = tc.verifier(verifier)
				}
				tok, err := cfg.Exchange(e.ctx, r.code, oauth2.VerifierOption(verifier))
				if err == nil {
					t.Fatalf("exchange succeeded (access token %t)", tok.AccessToken != "")
				}
				wantTokenError(t, tc.name, err, tc.code, tc.statuses...)
			})
		}
	})
}

// RFC 6749 §4.1.2: a replayed code is refused and the tokens issued
// from it stop working.
func TestOpenIDReplayedCodeIsRefusedAndRevokesItsTokens(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		c := e.addClient("synapse")
		cfg := e.config(c, oauth2.AuthStyleInHeader)
		r := e.authorize(newBrowser(t), cfg)
		l := e.exchange(cfg, r)
		e.wantUserinfoOK("the access token before the replay", l.token.AccessToken)

		_, err := cfg.Exchange(e.ctx, r.code, oauth2.VerifierOption(r.verifier))
		wantTokenError(t, "replayed code", err, "invalid_grant", http.StatusBadRequest)
		e.wantUserinfoRefused("the access token of a replayed code", l.token.AccessToken)
	})
}

// Single use under concurrency: of 8 simultaneous exchanges of one code,
// exactly one succeeds.
func TestOpenIDParallelExchangesOfOneCodeYieldOneSuccess(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		c := e.addClient("synapse")
		cfg := e.config(c, oauth2.AuthStyleInHeader)
		r := e.authorize(newBrowser(t), cfg)
		const n = 8
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = cfg.Exchange(e.ctx, r.code, oauth2.VerifierOption(r.verifier))
			}()
		}
		close(start)
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
				continue
			}
			wantTokenError(t, "losing parallel exchange", err, "invalid_grant", http.StatusBadRequest)
		}
		if ok != 1 {
			t.Errorf("%d of %d parallel exchanges of one code succeeded, want exactly 1", ok, n)
		}
	})
}

// Refresh tokens rotate; reusing a rotated one revokes the whole family.
func TestOpenIDRefreshRotatesAndReuseRevokesTheFamily(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		c := e.addClient("app")
		cfg := e.config(c, oauth2.AuthStyleInHeader, oidc.ScopeOpenID, "profile", oidc.ScopeOfflineAccess)
		l := e.exchange(cfg, e.authorize(newBrowser(t), cfg))
		first := l.token.RefreshToken
		if first == "" {
			t.Fatal("no refresh token with offline_access")
		}
		refresh := func(rt string) (*oauth2.Token, error) {
			return cfg.TokenSource(e.ctx, &oauth2.Token{RefreshToken: rt}).Token()
		}
		second, err := refresh(first)
		if err != nil {
			t.Fatalf("refresh: %v", err)
		}
		if second.RefreshToken == "" || second.RefreshToken == first || second.AccessToken == l.token.AccessToken {
			t.Errorf("refresh did not rotate: new refresh token differs %t, new access token differs %t",
				second.RefreshToken != first, second.AccessToken != l.token.AccessToken)
		}
		if raw, _ := second.Extra("id_token").(string); raw != "" {
			if again := e.verifyIDToken(c.id, second); again.idToken.Subject != l.idToken.Subject {
				t.Errorf("refreshed ID token sub %q, want %q", again.idToken.Subject, l.idToken.Subject)
			}
		}
		e.wantUserinfoOK("the refreshed access token", second.AccessToken)

		_, err = refresh(first)
		wantTokenError(t, "reused refresh token", err, "invalid_grant", http.StatusBadRequest)
		_, err = refresh(second.RefreshToken)
		wantTokenError(t, "newest refresh token after a reuse", err, "invalid_grant", http.StatusBadRequest)
		e.wantUserinfoRefused("the newest access token after a reuse", second.AccessToken)
		e.wantUserinfoRefused("the first access token after a reuse", l.token.AccessToken)
	})
}

// RFC 7009: a revoked access token is refused at userinfo.
func TestOpenIDRevokedAccessTokenIsRefusedAtUserinfo(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		c := e.addClient("synapse")
		cfg := e.config(c, oauth2.AuthStyleInHeader)
		l := e.exchange(cfg, e.authorize(newBrowser(t), cfg))
		e.wantUserinfoOK("the access token before revocation", l.token.AccessToken)

		status, _, body := e.postForm(e.meta.Revocation, url.Values{
			"token": {l.token.AccessToken}, "token_type_hint": {"access_token"},
		}, c.id, c.secret)
		if status != http.StatusOK {
			t.Fatalf("revoke: %d %s", status, body)
		}
		e.wantUserinfoRefused("a revoked access token", l.token.AccessToken)
	})
}

// RFC 7662: introspection tells the client an access token is active, with
// its subject and scopes, and inactive once revoked; it needs client
// authentication.
func TestOpenIDIntrospectionReportsActiveThenRevokedTokens(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		c := e.addClient("synapse")
		cfg := e.config(c, oauth2.AuthStyleInHeader)
		l := e.exchange(cfg, e.authorize(newBrowser(t), cfg))
		introspect := func() map[string]any {
			t.Helper()
			status, h, body := e.postForm(e.meta.Introspection, url.Values{"token": {l.token.AccessToken}}, c.id, c.secret)
			var out map[string]any
			if status != http.StatusOK || !isJSON(h) || json.Unmarshal(body, &out) != nil {
				t.Fatalf("introspect: %d %s", status, body)
			}
			return out
		}
		got := introspect()
		if got["active"] != true || got["sub"] != l.idToken.Subject || got["client_id"] != c.id || !strings.Contains(string(mustJSON(got["scope"])), "openid") {
			t.Errorf("introspection of a live token: %v", got)
		}
		if status, _, _ := e.postForm(e.meta.Introspection, url.Values{"token": {l.token.AccessToken}}, c.id, "wrong secret"); status == http.StatusOK {
			t.Error("introspection with a wrong client secret answered 200")
		}
		if status, _, body := e.postForm(e.meta.Revocation, url.Values{"token": {l.token.AccessToken}}, c.id, c.secret); status != http.StatusOK {
			t.Fatalf("revoke: %d %s", status, body)
		}
		if got := introspect(); got["active"] != false {
			t.Errorf("introspection of a revoked token: %v", got)
		}
	})
}

// A redirect URI that is not registered exactly is refused at mxidp,
// without sending the browser there (RFC 6749 §4.1.2.1).
func TestOpenIDUnregisteredRedirectURIIsRefusedWithoutRedirecting(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		c := e.addClient("synapse")
		cfg := e.config(c, oauth2.AuthStyleInHeader)
		cfg.RedirectURL = c.redirectURI + "/"
		p := newBrowser(t).get(cfg.AuthCodeURL(randomAlnum(30), oidc.Nonce(randomAlnum(32)), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		if p.status != http.StatusBadRequest || p.location != "" {
			t.Errorf("authorize with redirect_uri %s: %d, Location %q; want 400 and no redirect", cfg.RedirectURL, p.status, p.location)
		}
	})
}

// Unknown parameters are ignored and state comes back unchanged;
// a second client in the same browser signs in without the form and shares
// the sid; another browser gets another sid.
func TestOpenIDUnknownParametersIgnoredAndSingleSignOnSharesTheSid(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		synapse, other := e.addClient("synapse"), e.addClient("other")
		cfgS, cfgO := e.config(synapse, oauth2.AuthStyleInHeader), e.config(other, oauth2.AuthStyleInParams)
		b := newBrowser(t)
		state := randomAlnum(30) + "-._~ +/=&?%"
		r := e.authorizeWith(b, cfgS, state, []string{alicePassword},
			oauth2.SetAuthURLParam("org.matrix.msc3824.action", "login"), oauth2.SetAuthURLParam("foo", "bar"))
		first := e.exchange(cfgS, r)

		r2 := e.authorizeWith(b, cfgO, randomAlnum(30), nil)
		if len(r2.forms) != 0 {
			t.Errorf("the second client's login showed the form (%v) despite the session", r2.forms)
		}
		second := e.exchange(cfgO, r2)
		if first.claims.Sid == "" || second.claims.Sid != first.claims.Sid {
			t.Errorf("sids %q and %q within one browser session; want the same, non-empty", first.claims.Sid, second.claims.Sid)
		}
		if second.idToken.Subject != first.idToken.Subject {
			t.Errorf("subs %q and %q for one user", first.idToken.Subject, second.idToken.Subject)
		}

		third := e.exchange(cfgS, e.authorize(newBrowser(t), cfgS))
		if third.claims.Sid == "" || third.claims.Sid == first.claims.Sid {
			t.Errorf("a new browser got sid %q, the first had %q; want a different one", third.claims.Sid, first.claims.Sid)
		}
	})
}

// The sub claim is alice's stable user ID across logins; a wrong password
// shows the form again with 401.
func TestOpenIDSubjectIsStableAcrossLogins(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		c := e.addClient("synapse")
		cfg := e.config(c, oauth2.AuthStyleInHeader)
		r := e.authorizeWith(newBrowser(t), cfg, randomAlnum(30), []string{"wrong password", alicePassword})
		if !slices.Equal(r.forms, []int{http.StatusOK, http.StatusUnauthorized}) {
			t.Errorf("login form statuses %v; want 200, then 401 after the wrong password", r.forms)
		}
		first := e.exchange(cfg, r)
		second := e.exchange(cfg, e.authorize(newBrowser(t), cfg))
		if first.idToken.Subject == "" || second.idToken.Subject != first.idToken.Subject {
			t.Errorf("subs %q and %q across two logins of alice", first.idToken.Subject, second.idToken.Subject)
		}
		var users []userJSON
		if err := json.Unmarshal([]byte(e.d.cli("user", "list", "--json")), &users); err != nil || len(users) != 1 {
			t.Fatalf("user list: %v %v", users, err)
		}
		if first.idToken.Subject != users[0].ID {
			t.Errorf("sub %q, want alice's user ID %q", first.idToken.Subject, users[0].ID)
		}
	})
}

// Disabling a user (from the command line, another process) sends
// the client a valid logout token for the session within 10 s.
func TestOpenIDBackchannelLogoutWhenAUserIsDisabled(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		rp := newLogoutReceiver(t)
		c := e.addClient("synapse", "--backchannel-logout-uri", rp.url)
		cfg := e.config(c, oauth2.AuthStyleInHeader)
		l := e.exchange(cfg, e.authorize(newBrowser(t), cfg))

		e.d.cli("user", "disable", "alice")
		e.checkLogoutToken(rp.wait(t, 10*time.Second), c.id, l)
		rp.none(t, 2500*time.Millisecond)
		e.wantUserinfoRefused("the access token of a disabled user", l.token.AccessToken)
	})
}

// The logout notice is durable: queued by the command line while the
// server is down, it is delivered after the restart.
func TestOpenIDBackchannelLogoutQueuedWhileStoppedIsSentAfterRestart(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		rp := newLogoutReceiver(t)
		c := e.addClient("synapse", "--backchannel-logout-uri", rp.url)
		cfg := e.config(c, oauth2.AuthStyleInHeader)
		l := e.exchange(cfg, e.authorize(newBrowser(t), cfg))

		if status := e.s.signal(syscall.SIGTERM); status != 0 {
			t.Errorf("exit status after SIGTERM = %d\n%s", status, e.s.stderr)
		}
		e.d.cli("user", "disable", "alice")
		e.connect(e.d.startOnFreePort())
		e.checkLogoutToken(rp.wait(t, 10*time.Second), c.id, l)
	})
}

// RP-initiated logout ends the browser's session: redirect to the
// registered URI, a logout token to the client, and no more single sign-on.
func TestOpenIDRPInitiatedLogoutEndsTheSession(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		rp := newLogoutReceiver(t)
		afterLogout := "http://127.0.0.1:9/synapse/logged-out"
		c := e.addClient("synapse", "--backchannel-logout-uri", rp.url, "--post-logout-redirect-uri", afterLogout)
		cfg := e.config(c, oauth2.AuthStyleInHeader)
		b := newBrowser(t)
		l := e.exchange(cfg, e.authorize(b, cfg))

		p := b.get(e.meta.EndSession + "?" + url.Values{"id_token_hint": {l.rawID}, "post_logout_redirect_uri": {afterLogout}}.Encode())
		if p.status != http.StatusFound || p.location != afterLogout {
			t.Errorf("end_session: %d Location %q; want 302 to %s\n%s", p.status, p.location, afterLogout, p.body)
		}
		e.checkLogoutToken(rp.wait(t, 10*time.Second), c.id, l)

		again := e.authorize(b, cfg)
		if !slices.Equal(again.forms, []int{http.StatusOK}) {
			t.Errorf("after logout the browser's next login showed forms %v; want the login form", again.forms)
		}
		if next := e.exchange(cfg, again); next.claims.Sid == l.claims.Sid {
			t.Errorf("the login after logout reuses the ended sid %q", next.claims.Sid)
		}
	})
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
