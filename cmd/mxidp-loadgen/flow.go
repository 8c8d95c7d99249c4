package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// The steps of one login flow, in order, as the report names them.
var flowSteps = []string{"authorize", "login page", "login submit", "callback", "token", "ID-token check", "userinfo"}

// account is one seeded user.
type account struct{ name, password string }

func makeAccounts(n int) []account {
	users := make([]account, n)
	for i := range users {
		name := fmt.Sprintf("load-%03d", i)
		users[i] = account{name: name, password: "pw-of-" + name}
	}
	return users
}

// metadata is the part of the discovery document the flow follows.
type metadata struct {
	Issuer                string   `json:"issuer"`
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	UserinfoEndpoint      string   `json:"userinfo_endpoint"`
	JWKSURI               string   `json:"jwks_uri"`
	IDTokenAlgs           []string `json:"id_token_signing_alg_values_supported"`
}

// op is the OpenID provider as relying parties see it: its metadata and
// published keys, and the connections to it, which every client shares.
type op struct {
	issuer      string
	meta        metadata
	transport   *http.Transport
	backChannel *http.Client // token, userinfo, documents: no cookies, no redirects

	keysMu sync.Mutex
	keys   jose.JSONWebKeySet
}

// relyingParty is one registered client doing flows against the provider:
// its registration, the ID-token algorithm it was registered with, the
// users it logs in.
type relyingParty struct {
	*op
	clientID     string
	clientSecret string
	alg          jose.SignatureAlgorithm // the ID tokens must be signed so
	redirectURI  *url.URL
	users        []account

	turn atomic.Uint64 // round-robin over users
}

func newTransport(workers int) *http.Transport {
	return &http.Transport{
		Proxy:               nil, // 127.0.0.1 only, never through a proxy
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        4 * workers,
		MaxIdleConnsPerHost: 4 * workers,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// connect reads the discovery document and the key set of the server.
func connect(ctx context.Context, issuer string, workers int) (*op, error) {
	tr := newTransport(workers)
	p := &op{issuer: issuer, transport: tr,
		backChannel: &http.Client{Transport: tr, Timeout: 30 * time.Second, CheckRedirect: noRedirects}}
	body, err := p.get(ctx, issuer+"/.well-known/openid-configuration")
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	if err := json.Unmarshal(body, &p.meta); err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	if p.meta.Issuer != issuer {
		return nil, fmt.Errorf("discovery names issuer %q, not %q", p.meta.Issuer, issuer)
	}
	for _, e := range []string{p.meta.AuthorizationEndpoint, p.meta.TokenEndpoint, p.meta.UserinfoEndpoint, p.meta.JWKSURI} {
		if !strings.HasPrefix(e, issuer+"/") {
			return nil, fmt.Errorf("discovery endpoint %q is not under the issuer", e)
		}
	}
	return p, p.refreshKeys(ctx)
}

// client is a relying party of the provider registered as c.
func (p *op) client(c registration, users []account) (*relyingParty, error) {
	u, err := url.Parse(c.redirectURI)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(p.meta.IDTokenAlgs, string(c.alg)) {
		return nil, fmt.Errorf("discovery's id_token_signing_alg_values_supported %v lacks %s, client %s's algorithm", p.meta.IDTokenAlgs, c.alg, c.id)
	}
	return &relyingParty{op: p, clientID: c.id, clientSecret: c.secret, alg: c.alg, redirectURI: u, users: users}, nil
}

func (p *op) get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.backChannel.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: HTTP %d: %.200s", u, resp.StatusCode, body)
	}
	return body, err
}

func (p *op) refreshKeys(ctx context.Context) error {
	body, err := p.get(ctx, p.meta.JWKSURI)
	if err != nil {
		return fmt.Errorf("JWKS: %w", err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return fmt.Errorf("JWKS: %w", err)
	}
	p.keysMu.Lock()
	p.keys = set
	p.keysMu.Unlock()
	return nil
}

// key returns the published key with this kid, reading /keys again once
// when it is unknown (as a relying party does after a rotation).
func (p *op) key(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	for attempt := 0; attempt < 2; attempt++ {
		p.keysMu.Lock()
		found := p.keys.Key(kid)
		p.keysMu.Unlock()
		if len(found) > 0 {
			return &found[0], nil
		}
		if attempt == 0 {
			if err := p.refreshKeys(ctx); err != nil {
				return nil, err
			}
		}
	}
	return nil, fmt.Errorf("no key with kid %q in /keys", kid)
}

// failure is one failed flow or request: where, the HTTP status (0 when
// there was no response), a kind that groups alike failures, and the
// particulars of this one (body, request ID).
type failure struct {
	step   string
	status int
	kind   string
	detail string
}

func (f *failure) key() string { return fmt.Sprintf("%s | HTTP %d | %s", f.step, f.status, f.kind) }

func fail(step string, status int, kind, detail string) *failure {
	return &failure{step: step, status: status, kind: kind, detail: detail}
}

// exchange sends req and reads the whole answer; any status but want is a
// failure that carries the body and the server's request ID.
func exchange(c *http.Client, step string, req *http.Request, want int) (*http.Response, []byte, *failure) {
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, fail(step, 0, "request failed", err.Error())
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return nil, nil, fail(step, resp.StatusCode, "reading the response failed", err.Error())
	}
	if resp.StatusCode != want {
		return nil, nil, fail(step, resp.StatusCode, fmt.Sprintf("HTTP %d where %d was expected", resp.StatusCode, want),
			describe(req, resp, body))
	}
	return resp, body, nil
}

// describe tells what a response was, for a failure's example.
func describe(req *http.Request, resp *http.Response, body []byte) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s -> %s", req.Method, req.URL.Path, resp.Status)
	if id := resp.Header.Get("X-Request-Id"); id != "" {
		fmt.Fprintf(&b, ", X-Request-Id %s", id)
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		fmt.Fprintf(&b, ", Location %s", redactQuery(loc))
	}
	if len(body) > 0 {
		text := string(body)
		if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			// The page's words, not its markup (nor the hidden inputs).
			text = html.UnescapeString(anyTag.ReplaceAllString(text, " "))
		}
		text = strings.Join(strings.Fields(text), " ")
		if len(text) > 600 {
			text = text[:600] + "…"
		}
		fmt.Fprintf(&b, ", body: %s", text)
	}
	return b.String()
}

// redactQuery keeps codes and tokens out of the report.
func redactQuery(loc string) string {
	u, err := url.Parse(loc)
	if err != nil {
		return "(unparsable)"
	}
	q := u.Query()
	for _, k := range []string{"code", "access_token", "id_token"} {
		if q.Has(k) {
			q.Set(k, "…")
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// redirectTo checks a 302 and returns where it points.
func redirectTo(step string, resp *http.Response, wantPath string) (*url.URL, *failure) {
	loc, err := resp.Location()
	if err != nil {
		return nil, fail(step, resp.StatusCode, "redirect without a usable Location", err.Error())
	}
	if wantPath != "" && loc.Path != wantPath {
		return nil, fail(step, resp.StatusCode, "redirect to an unexpected path "+loc.Path, redactQuery(loc.String()))
	}
	return loc, nil
}

func random(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// flow runs one complete login flow as a new browser and records each
// step's latency; it returns nil when everything checked out.
func (rp *relyingParty) flow(ctx context.Context, rec *recorder) *failure {
	begin := time.Now()
	user := rp.users[(rp.turn.Add(1)-1)%uint64(len(rp.users))]
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Transport: rp.transport, Jar: jar, Timeout: 30 * time.Second, CheckRedirect: noRedirects}
	state, nonce, verifier := random(16), random(16), random(32)
	challenge := sha256.Sum256([]byte(verifier))

	// authorize → 302 /login?id=ID
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {rp.clientID},
		"redirect_uri":          {rp.redirectURI.String()},
		"scope":                 {"openid profile email"},
		"state":                 {state},
		"nonce":                 {nonce},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(challenge[:])},
		"code_challenge_method": {"S256"},
	}
	t := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, rp.meta.AuthorizationEndpoint+"?"+q.Encode(), nil)
	resp, _, f := exchange(browser, "authorize", req, http.StatusFound)
	if f != nil {
		return f
	}
	loginURL, f := redirectTo("authorize", resp, "/login")
	if f != nil {
		return f
	}
	rec.observe("authorize", time.Since(t))

	// login page → the form with hidden id and csrf, and the CSRF cookie
	t = time.Now()
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, loginURL.String(), nil)
	resp, body, f := exchange(browser, "login page", req, http.StatusOK)
	if f != nil {
		return f
	}
	form, err := parseLoginForm(body, resp.Request.URL)
	if err != nil {
		return fail("login page", resp.StatusCode, err.Error(), describe(req, resp, body))
	}
	if form.fields.Get("id") != loginURL.Query().Get("id") {
		return fail("login page", resp.StatusCode, "the form's id is not the one in the URL", describe(req, resp, body))
	}
	rec.observe("login page", time.Since(t))

	// login submit → 302 /authorize/callback?id=ID
	t = time.Now()
	form.fields.Set("username", user.name)
	form.fields.Set("password", user.password)
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, form.action, strings.NewReader(form.fields.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, _, f = exchange(browser, "login submit", req, http.StatusFound)
	if f != nil {
		return f
	}
	callbackURL, f := redirectTo("login submit", resp, "/authorize/callback")
	if f != nil {
		return f
	}
	rec.observe("login submit", time.Since(t))

	// callback → 302 redirect_uri?code=…&state=… (not followed)
	t = time.Now()
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, callbackURL.String(), nil)
	resp, _, f = exchange(browser, "callback", req, http.StatusFound)
	if f != nil {
		return f
	}
	back, f := redirectTo("callback", resp, "")
	if f != nil {
		return f
	}
	if back.Scheme != rp.redirectURI.Scheme || back.Host != rp.redirectURI.Host || back.Path != rp.redirectURI.Path {
		return fail("callback", resp.StatusCode, "redirect elsewhere than the redirect_uri", redactQuery(back.String()))
	}
	bq := back.Query()
	if e := bq.Get("error"); e != "" {
		return fail("callback", resp.StatusCode, "error="+e, bq.Get("error_description"))
	}
	if bq.Get("state") != state {
		return fail("callback", resp.StatusCode, "state of another flow", "")
	}
	code := bq.Get("code")
	if code == "" {
		return fail("callback", resp.StatusCode, "no code", redactQuery(back.String()))
	}
	rec.observe("callback", time.Since(t))

	// token (client_secret_basic)
	t = time.Now()
	tf := url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {rp.redirectURI.String()}, "code_verifier": {verifier}}
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, rp.meta.TokenEndpoint, strings.NewReader(tf.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(rp.clientID), url.QueryEscape(rp.clientSecret))
	resp, body, f = exchange(rp.backChannel, "token", req, http.StatusOK)
	if f != nil {
		return f
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		IDToken     string `json:"id_token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil {
		return fail("token", resp.StatusCode, "the answer is not JSON", describe(req, resp, body))
	}
	if tok.AccessToken == "" || tok.IDToken == "" || !strings.EqualFold(tok.TokenType, "Bearer") {
		return fail("token", resp.StatusCode, "no access_token, no id_token or not Bearer", fmt.Sprintf("token_type %q", tok.TokenType))
	}
	rec.observe("token", time.Since(t))

	// ID-token check (client side: signature and claims)
	t = time.Now()
	sub, f := rp.checkIDToken(ctx, tok.IDToken, nonce, user.name)
	if f != nil {
		return f
	}
	rec.observe("ID-token check", time.Since(t))

	// userinfo with the access token: the same subject
	t = time.Now()
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, rp.meta.UserinfoEndpoint, nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, body, f = exchange(rp.backChannel, "userinfo", req, http.StatusOK)
	if f != nil {
		return f
	}
	var info struct {
		Sub               string `json:"sub"`
		PreferredUsername string `json:"preferred_username"`
	}
	if err := json.Unmarshal(body, &info); err != nil {
		return fail("userinfo", resp.StatusCode, "the answer is not JSON", describe(req, resp, body))
	}
	if info.Sub != sub {
		return fail("userinfo", resp.StatusCode, "sub differs from the ID token's", fmt.Sprintf("%q vs %q", info.Sub, sub))
	}
	if info.PreferredUsername != "" && info.PreferredUsername != user.name {
		return fail("userinfo", resp.StatusCode, "preferred_username of another user",
			fmt.Sprintf("%q for %q", info.PreferredUsername, user.name))
	}
	rec.observe("userinfo", time.Since(t))
	rec.observe("flow", time.Since(begin))
	return nil
}

// idTokenAlgs are the signature algorithms the ID-token check verifies.
var idTokenAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA}

// checkIDToken verifies the signature (RS256, ES256 or EdDSA, whichever
// the client was registered with) with the key /keys publishes under the
// token's kid, then iss, aud, nonce, exp and iat, and that the token is
// about the user who logged in. It returns the subject.
func (rp *relyingParty) checkIDToken(ctx context.Context, raw, nonce, username string) (string, *failure) {
	const step = "ID-token check"
	jws, err := jose.ParseSignedCompact(raw, idTokenAlgs)
	if err != nil {
		return "", fail(step, 0, "not a JWS in RS256, ES256 or EdDSA", err.Error())
	}
	if len(jws.Signatures) != 1 {
		return "", fail(step, 0, "not exactly one signature", "")
	}
	if alg := jose.SignatureAlgorithm(jws.Signatures[0].Header.Algorithm); alg != rp.alg {
		return "", fail(step, 0, fmt.Sprintf("signed with %s, not the client's %s", alg, rp.alg), "")
	}
	key, err := rp.key(ctx, jws.Signatures[0].Header.KeyID)
	if err != nil {
		return "", fail(step, 0, "signing key not published", err.Error())
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return "", fail(step, 0, "bad signature", err.Error())
	}
	var c struct {
		Iss               string          `json:"iss"`
		Sub               string          `json:"sub"`
		Aud               json.RawMessage `json:"aud"`
		Exp               int64           `json:"exp"`
		Iat               int64           `json:"iat"`
		Nonce             string          `json:"nonce"`
		PreferredUsername string          `json:"preferred_username"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", fail(step, 0, "claims are not JSON", err.Error())
	}
	now := time.Now().Unix()
	var aud []string
	if json.Unmarshal(c.Aud, &aud) != nil {
		var one string
		json.Unmarshal(c.Aud, &one)
		aud = []string{one}
	}
	audOK := false
	for _, a := range aud {
		audOK = audOK || a == rp.clientID
	}
	switch {
	case c.Iss != rp.issuer:
		return "", fail(step, 0, "wrong iss", c.Iss)
	case !audOK:
		return "", fail(step, 0, "aud lacks the client", string(c.Aud))
	case c.Nonce != nonce:
		return "", fail(step, 0, "nonce of another flow", "")
	case c.Exp <= now:
		return "", fail(step, 0, "expired", fmt.Sprintf("exp %d, now %d", c.Exp, now))
	case c.Iat > now+60:
		return "", fail(step, 0, "issued in the future", fmt.Sprintf("iat %d, now %d", c.Iat, now))
	case c.Sub == "":
		return "", fail(step, 0, "no sub", "")
	case c.PreferredUsername != "" && c.PreferredUsername != username:
		return "", fail(step, 0, "preferred_username of another user", fmt.Sprintf("%q for %q", c.PreferredUsername, username))
	}
	return c.Sub, nil
}

// loginForm is the login page's form as a browser would submit it.
type loginForm struct {
	action string
	fields url.Values
}

var (
	formTag  = regexp.MustCompile(`(?is)<form\b[^>]*>`)
	inputTag = regexp.MustCompile(`(?is)<input\b[^>]*>`)
	anyTag   = regexp.MustCompile(`(?s)<[^>]*>`)
	attrPair = regexp.MustCompile(`(?s)([a-zA-Z_:][-a-zA-Z0-9_:.]*)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))`)
)

func attributes(tag string) map[string]string {
	attrs := map[string]string{}
	for _, m := range attrPair.FindAllStringSubmatch(tag, -1) {
		attrs[strings.ToLower(m[1])] = html.UnescapeString(m[2] + m[3] + m[4])
	}
	return attrs
}

// parseLoginForm reads the first POST form: its action and its hidden
// inputs, which must include id and csrf.
func parseLoginForm(page []byte, base *url.URL) (loginForm, error) {
	loc := formTag.FindIndex(page)
	if loc == nil {
		return loginForm{}, fmt.Errorf("no form on the login page")
	}
	fa := attributes(string(page[loc[0]:loc[1]]))
	if !strings.EqualFold(fa["method"], "post") {
		return loginForm{}, fmt.Errorf("the login form is not method=post")
	}
	action, err := base.Parse(fa["action"])
	if err != nil {
		return loginForm{}, fmt.Errorf("the login form's action is not a URL")
	}
	rest := page[loc[1]:]
	if end := strings.Index(strings.ToLower(string(rest)), "</form"); end >= 0 {
		rest = rest[:end]
	}
	f := loginForm{action: action.String(), fields: url.Values{}}
	for _, tag := range inputTag.FindAll(rest, -1) {
		a := attributes(string(tag))
		if strings.EqualFold(a["type"], "hidden") && a["name"] != "" {
			f.fields.Set(a["name"], a["value"])
		}
	}
	if f.fields.Get("id") == "" || f.fields.Get("csrf") == "" {
		return loginForm{}, fmt.Errorf("the login form lacks the hidden id or csrf")
	}
	return f, nil
}
