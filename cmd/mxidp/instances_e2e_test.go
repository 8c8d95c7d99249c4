package main

// Several instances behind a load balancer on one database: sessions,
// codes, tokens, keys and the back-channel queue are shared, so a flow may
// hop between instances at every step, and an instance may die (SIGKILL)
// and come back while the other carries on.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/mxidp/mxidp/storage/storagetest"
	"golang.org/x/oauth2"
)

// lbBackend is one instance as the test's load balancer sees it. Its
// transport dials the instance whatever the URL's host, without keep-alive,
// so that every request is a connection of its own to the chosen instance.
type lbBackend struct {
	name   string
	addr   string // host:port the instance listens on; a restart keeps it
	tr     *http.Transport
	up     atomic.Bool
	dials  atomic.Int64 // connections made
	served atomic.Int64 // responses received
	mu     sync.Mutex
	errs   []lbError // requests sent that got no response
	downs  []lbError // when a refused connection took it out of rotation
}

type lbError struct {
	sent, at time.Time
	err      error
}

// backendDownError is a failed connection: nothing was sent, so the
// balancer may mark the backend down and send the request elsewhere.
type backendDownError struct {
	be  *lbBackend
	err error
}

func (e *backendDownError) Error() string { return e.be.name + " is down: " + e.err.Error() }
func (e *backendDownError) Unwrap() error { return e.err }

func newLBBackend(name, addr string) *lbBackend {
	be := &lbBackend{name: name, addr: addr}
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	be.tr = &http.Transport{
		DisableKeepAlives:     true,
		ResponseHeaderTimeout: 15 * time.Second,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, be.addr)
			if err != nil {
				return nil, &backendDownError{be, err}
			}
			be.dials.Add(1)
			return c, nil
		},
	}
	be.up.Store(true)
	return be
}

func (be *lbBackend) lost() []lbError {
	be.mu.Lock()
	defer be.mu.Unlock()
	return slices.Clone(be.errs)
}

// balancer is the load balancer in front of the instances: every client
// talks to the issuer's URL and the balancer decides who answers.
type balancer struct {
	backends []*lbBackend
}

// route is one client's path through the balancer: requests alternate
// between the backends that are up, starting at a given one, or all go to
// one pinned backend. It records which backend served each request.
type route struct {
	bal   *balancer
	pin   *lbBackend
	mu    sync.Mutex
	next  int
	steps []string // "A GET /authorize", ...
	fails int      // requests sent that got no response
}

func (bal *balancer) alternate(start int) *route  { return &route{bal: bal, next: start} }
func (bal *balancer) pinned(be *lbBackend) *route { return &route{bal: bal, pin: be} }

func (r *route) pick() *lbBackend {
	if r.pin != nil {
		return r.pin
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.bal.backends)
	for range n {
		be := r.bal.backends[r.next%n]
		r.next++
		if be.up.Load() {
			return be
		}
	}
	return r.bal.backends[0]
}

func (r *route) RoundTrip(req *http.Request) (*http.Response, error) {
	for tries := 0; ; tries++ {
		be := r.pick()
		sent := time.Now()
		resp, err := be.tr.RoundTrip(req)
		var down *backendDownError
		if err != nil && errors.As(err, &down) && r.pin == nil && tries < len(r.bal.backends) {
			// What a load balancer does when a backend refuses connections:
			// take it out of rotation and try another. Nothing was sent.
			be.mu.Lock()
			if be.up.Swap(false) {
				be.downs = append(be.downs, lbError{sent, time.Now(), err})
			}
			be.mu.Unlock()
			if req.Body != nil && req.Body != http.NoBody {
				if req.GetBody == nil {
					return nil, err
				}
				body, gerr := req.GetBody()
				if gerr != nil {
					return nil, err
				}
				req = req.Clone(req.Context())
				req.Body = body
			}
			continue
		}
		if err != nil {
			if !errors.As(err, &down) {
				be.mu.Lock()
				be.errs = append(be.errs, lbError{sent, time.Now(), err})
				be.mu.Unlock()
			}
			r.mu.Lock()
			r.fails++
			r.mu.Unlock()
			return nil, fmt.Errorf("via %s: %w", be.name, err)
		}
		be.served.Add(1)
		r.mu.Lock()
		r.steps = append(r.steps, be.name+" "+req.Method+" "+req.URL.Path)
		r.mu.Unlock()
		return resp, nil
	}
}

func (r *route) client() *http.Client { return &http.Client{Transport: r, Timeout: 20 * time.Second} }

// servedBy returns the names of the backends that served the route's
// requests, in order.
func (r *route) servedBy() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var names []string
	for _, s := range r.steps {
		names = append(names, s[:strings.IndexByte(s, ' ')])
	}
	return names
}

func (r *route) stepLog() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.steps, " → ")
}

func (r *route) failures() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fails
}

// cluster is two instances, A and B, of one deployment on one database,
// both serving the issuer http://127.0.0.1:PORT_A.
type cluster struct {
	t      *testing.T
	e      *openIDEnv // relying-party view; its provider talks through the balancer
	dA, dB *deployment
	a, b   *server
	bal    *balancer
	beA    *lbBackend
	beB    *lbBackend
}

func startCluster(t *testing.T, backend string) *cluster {
	t.Helper()
	env := testEnv(t, backend, "keys:\n  refresh_interval: 100ms\n"+
		"throttle: {account_burst: 0, network_burst: 0}\n"+restFixture)
	env["MXIDP_ISSUER"] = "http://127.0.0.1:8080"
	env["MXIDP_LISTEN"] = "127.0.0.1:0"
	dA := &deployment{t: t, env: env}
	(&cli{t: t, env: env}).must(alicePassword+"\n", "user", "add", "alice", "--password-stdin",
		"--email", aliceEmail, "--name", aliceName)
	a := dA.startOnFreePort()

	// B: the same environment (database, secret key, issuer) on another port,
	// kept for its restart.
	envB := map[string]string{}
	for k, v := range dA.env {
		envB[k] = v
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	envB["MXIDP_LISTEN"] = l.Addr().String()
	l.Close()
	dB := &deployment{t: t, env: envB}
	b := dB.start()

	c := &cluster{t: t, dA: dA, dB: dB, a: a, b: b}
	c.beA = newLBBackend("A", strings.TrimPrefix(a.url, "http://"))
	c.beB = newLBBackend("B", strings.TrimPrefix(b.url, "http://"))
	c.bal = &balancer{backends: []*lbBackend{c.beA, c.beB}}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	c.e = &openIDEnv{t: t, ctx: oidc.ClientContext(ctx, c.bal.alternate(0).client()), d: dA}
	c.e.connect(a)
	return c
}

// flowClient runs one relying party's flow through one route: the browser,
// x/oauth2 and go-oidc all use it. Its methods return errors, so that
// load goroutines can use them.
type flowClient struct {
	c       *cluster
	r       *route
	http    *http.Client
	browser *http.Client
	ctx     context.Context
	cfg     *oauth2.Config
}

func (c *cluster) flow(ctx context.Context, r *route, cfg *oauth2.Config) *flowClient {
	jar, _ := cookiejar.New(nil)
	hc := r.client()
	return &flowClient{c: c, r: r, http: hc, ctx: oidc.ClientContext(ctx, hc), cfg: cfg,
		browser: &http.Client{Transport: r, Jar: jar, Timeout: 20 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (f *flowClient) do(req *http.Request) (page, error) {
	resp, err := f.browser.Do(req)
	if err != nil {
		return page{}, err
	}
	defer resp.Body.Close()
	noteCookies(resp)
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return page{}, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	p := page{url: req.URL, status: resp.StatusCode, body: string(body)}
	if loc, err := resp.Location(); err == nil {
		p.location = loc.String()
	}
	return p, nil
}

func (f *flowClient) get(u string) (page, error) {
	req, err := http.NewRequestWithContext(f.ctx, http.MethodGet, u, nil)
	if err != nil {
		return page{}, err
	}
	return f.do(req)
}

// authorize signs alice in with the browser (S256 PKCE, nonce) and returns
// the code sent to the redirect URI.
func (f *flowClient) authorize() (authResult, error) {
	r := authResult{state: randomAlnum(30), nonce: randomAlnum(32), verifier: oauth2.GenerateVerifier()}
	p, err := f.get(f.cfg.AuthCodeURL(r.state, oidc.Nonce(r.nonce), oauth2.S256ChallengeOption(r.verifier)))
	for hops := 0; hops < 12; hops++ {
		if err != nil {
			return r, err
		}
		form, isForm := parseLoginForm(p)
		switch {
		case p.location != "" && strings.HasPrefix(p.location, f.cfg.RedirectURL):
			cb, err := url.Parse(p.location)
			if err != nil {
				return r, err
			}
			q := cb.Query()
			if q.Get("state") != r.state || q.Get("code") == "" {
				return r, fmt.Errorf("redirect %s: want the state back and a code", cb)
			}
			r.code = q.Get("code")
			return r, nil
		case p.status >= 300 && p.status < 400 && p.location != "":
			p, err = f.get(p.location)
		case isForm && len(r.forms) == 0:
			r.forms = append(r.forms, p.status)
			vals := url.Values{"id": {form.fields["id"]}, "csrf": {form.fields["csrf"]},
				"username": {"alice"}, "password": {noteSecret(alicePassword)}}
			req, rerr := http.NewRequestWithContext(f.ctx, http.MethodPost, form.action, strings.NewReader(vals.Encode()))
			if rerr != nil {
				return r, rerr
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			p, err = f.do(req)
		default:
			return r, fmt.Errorf("browser stuck at %s: %d (Location %q) %.300s", p.url.Path, p.status, p.location, p.body)
		}
	}
	return r, errors.New("too many redirects")
}

// exchange redeems the code and verifies the ID token with go-oidc, the
// discovery document and the JWKS fetched through the route.
func (f *flowClient) exchange(r authResult) (login, *oidc.Provider, error) {
	tok, err := f.cfg.Exchange(f.ctx, r.code, oauth2.VerifierOption(r.verifier))
	if err != nil {
		return login{}, nil, fmt.Errorf("exchange: %w", err)
	}
	p, err := oidc.NewProvider(f.ctx, f.c.e.issuer)
	if err != nil {
		return login{}, nil, fmt.Errorf("discovery: %w", err)
	}
	l, err := verifyVia(f.ctx, p, f.cfg.ClientID, tok)
	if err != nil {
		return l, p, err
	}
	if l.idToken.Nonce != r.nonce {
		return l, p, fmt.Errorf("ID token nonce %q, want %q", l.idToken.Nonce, r.nonce)
	}
	return l, p, nil
}

func verifyVia(ctx context.Context, p *oidc.Provider, clientID string, tok *oauth2.Token) (login, error) {
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return login{}, errors.New("token response without id_token")
	}
	noteSecret(tok.AccessToken)
	noteSecret(tok.RefreshToken)
	noteSecret(raw)
	idt, err := p.Verifier(&oidc.Config{ClientID: clientID}).Verify(ctx, raw)
	if err != nil {
		return login{}, fmt.Errorf("go-oidc rejects the ID token: %w", err)
	}
	l := login{token: tok, rawID: raw, idToken: idt}
	if err := idt.Claims(&l.claims); err != nil {
		return l, err
	}
	if l.claims.Sid == "" || idt.Subject == "" {
		return l, errors.New("ID token without sub or sid")
	}
	return l, nil
}

// userinfo fetches the claims of accessToken; want is the subject.
func (f *flowClient) userinfo(accessToken, want string) error {
	status, body, err := f.userinfoStatus(accessToken)
	if err != nil {
		return err
	}
	var got struct {
		Sub string `json:"sub"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &got) != nil || got.Sub != want {
		return fmt.Errorf("userinfo: %d %s; want 200 for sub %s", status, body, want)
	}
	return nil
}

func (f *flowClient) userinfoStatus(accessToken string) (int, []byte, error) {
	req, _ := http.NewRequestWithContext(f.ctx, http.MethodGet, f.c.e.meta.Userinfo, nil)
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := f.http.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("userinfo: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// refresh redeems a refresh token, verifying a new ID token if there is one.
func (f *flowClient) refresh(p *oidc.Provider, rt string) (*oauth2.Token, error) {
	tok, err := f.cfg.TokenSource(f.ctx, &oauth2.Token{RefreshToken: rt}).Token()
	if err != nil {
		return nil, fmt.Errorf("refresh: %w", err)
	}
	if tok.RefreshToken == "" || tok.RefreshToken == rt {
		return nil, errors.New("refresh did not rotate the refresh token")
	}
	noteSecret(tok.AccessToken)
	noteSecret(tok.RefreshToken)
	if raw, _ := tok.Extra("id_token").(string); raw != "" && p != nil {
		if _, err := verifyVia(f.ctx, p, f.cfg.ClientID, tok); err != nil {
			return nil, fmt.Errorf("refreshed ID token: %w", err)
		}
	}
	return tok, nil
}

// checkCredentials asks the REST service for alice's password.
func (f *flowClient) checkCredentials() error {
	req, _ := http.NewRequestWithContext(f.ctx, http.MethodPost, f.c.e.issuer+ccPath,
		strings.NewReader(cc("@alice:example.org", alicePassword)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.http.Do(req)
	if err != nil {
		return fmt.Errorf("check_credentials: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"success":true`) {
		return fmt.Errorf("check_credentials: %d %s %v", resp.StatusCode, body, err)
	}
	return nil
}

// endSession is RP-initiated logout in the browser.
func (f *flowClient) endSession(l login, afterLogout string) error {
	p, err := f.get(f.c.e.meta.EndSession + "?" + url.Values{"id_token_hint": {l.rawID}, "post_logout_redirect_uri": {afterLogout}}.Encode())
	if err != nil {
		return fmt.Errorf("end_session: %w", err)
	}
	if p.status != http.StatusFound || p.location != afterLogout {
		return fmt.Errorf("end_session: %d Location %q; want 302 to %s", p.status, p.location, afterLogout)
	}
	return nil
}

// fullFlow is a relying party's whole life with one login: authorize,
// code exchange, ID token verification, userinfo, two refreshes, a REST
// password check, and logout.
func (f *flowClient) fullFlow(afterLogout string) (login, error) {
	r, err := f.authorize()
	if err != nil {
		return login{}, fmt.Errorf("authorize: %w", err)
	}
	l, p, err := f.exchange(r)
	if err != nil {
		return l, err
	}
	if err := f.userinfo(l.token.AccessToken, l.idToken.Subject); err != nil {
		return l, err
	}
	tok, err := f.refresh(p, l.token.RefreshToken)
	if err != nil {
		return l, err
	}
	if tok, err = f.refresh(p, tok.RefreshToken); err != nil {
		return l, fmt.Errorf("second %w", err)
	}
	if err := f.userinfo(tok.AccessToken, l.idToken.Subject); err != nil {
		return l, fmt.Errorf("after the refreshes: %w", err)
	}
	if err := f.checkCredentials(); err != nil {
		return l, err
	}
	return l, f.endSession(l, afterLogout)
}

// sidReceiver is a back-channel logout endpoint for the load: it counts
// the logout tokens it is sent per sid. (The alternating flows check the
// tokens themselves with checkLogoutToken.)
type sidReceiver struct {
	url  string
	mu   sync.Mutex
	sids map[string]int
}

func newSIDReceiver(t *testing.T) *sidReceiver {
	r := &sidReceiver{sids: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.ParseForm() == nil {
			if parts := strings.Split(req.PostForm.Get("logout_token"), "."); len(parts) == 3 {
				payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
				var claims struct {
					Sid string `json:"sid"`
				}
				if json.Unmarshal(payload, &claims) == nil && claims.Sid != "" {
					r.mu.Lock()
					r.sids[claims.Sid]++
					r.mu.Unlock()
				}
			}
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL + "/_synapse/client/oidc/backchannel_logout"
	return r
}

func (r *sidReceiver) count(sid string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sids[sid]
}

func deliveredBy(s *server) int {
	return strings.Count(s.stderr.String(), "back-channel logout delivered")
}

// The acceptance: two instances on one database complete flows
// whose steps alternate between them; one is killed with SIGKILL under
// load, the other carries on, and the restarted one rejoins.
func TestInstancesServeAlternatingFlowsAndSurviveAKill(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) { testInstances(t, backend) })
	}
}

func testInstances(t *testing.T, backend string) {
	c := startCluster(t, backend)
	e := c.e
	if ka, kb := c.a.kids(), c.b.kids(); len(ka) == 0 || !slices.Equal(ka, kb) {
		t.Fatalf("A publishes keys %v, B %v; want the same", ka, kb)
	}
	afterLogout := "http://127.0.0.1:9/app/logged-out"
	rp := newLogoutReceiver(t)
	app := e.addClient("app", "--backchannel-logout-uri", rp.url, "--post-logout-redirect-uri", afterLogout)
	scopes := []string{oidc.ScopeOpenID, "profile", "email", oidc.ScopeOfflineAccess}
	cfg := e.config(app, oauth2.AuthStyleInHeader, scopes...)

	// 1. Complete flows, every request on the other instance than the one
	// before, each flow starting on another instance.
	t.Run("alternating", func(t *testing.T) {
		e.t = t
		defer func() { e.t = c.t }()
		for i := range 4 {
			r := c.bal.alternate(i)
			f := c.flow(e.ctx, r, cfg)
			l, err := f.fullFlow(afterLogout)
			if err != nil {
				t.Fatalf("flow %d: %v\nsteps: %s", i, err, r.stepLog())
			}
			e.checkLogoutToken(rp.wait(t, 10*time.Second), app.id, l)
			served := r.servedBy()
			for j := 1; j < len(served); j++ {
				if served[j] == served[j-1] {
					t.Errorf("flow %d: steps %d and %d both on %s: %s", i, j-1, j, served[j], r.stepLog())
					break
				}
			}
			if want := c.bal.backends[i%2].name; served[0] != want {
				t.Errorf("flow %d started on %s, want %s", i, served[0], want)
			}
			if i == 0 {
				t.Logf("flow 0, %d requests: %s", len(served), r.stepLog())
			}
		}
		rp.none(t, 500*time.Millisecond)
		t.Logf("A served %d requests, B %d; logout notices delivered by A %d, by B %d",
			c.beA.served.Load(), c.beB.served.Load(), deliveredBy(c.a), deliveredBy(c.b))
	})

	// The code is single-use across instances: redeemed at one, replayed at
	// the other, refused, and the tokens of the replayed code are revoked
	// everywhere.
	t.Run("code single use across instances", func(t *testing.T) {
		for _, pair := range [][2]*lbBackend{{c.beA, c.beB}, {c.beB, c.beA}} {
			first, other := c.flow(e.ctx, c.bal.pinned(pair[0]), cfg), c.flow(e.ctx, c.bal.pinned(pair[1]), cfg)
			r, err := c.flow(e.ctx, c.bal.alternate(0), cfg).authorize()
			if err != nil {
				t.Fatal(err)
			}
			l, _, err := first.exchange(r)
			if err != nil {
				t.Fatalf("exchange at %s: %v", pair[0].name, err)
			}
			_, err = other.cfg.Exchange(other.ctx, r.code, oauth2.VerifierOption(r.verifier))
			wantTokenError(t, "code replayed at "+pair[1].name, err, "invalid_grant", http.StatusBadRequest)
			for _, f := range []*flowClient{first, other} {
				if status, body, err := f.userinfoStatus(l.token.AccessToken); err != nil || status != http.StatusUnauthorized {
					t.Errorf("userinfo at %s with the access token of a replayed code: %d %s %v; want 401", f.r.pin.name, status, body, err)
				}
			}
		}

		// Eight simultaneous exchanges of one code, half at each instance:
		// exactly one succeeds.
		r, err := c.flow(e.ctx, c.bal.alternate(1), cfg).authorize()
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, 8)
		for i := range errs {
			f := c.flow(e.ctx, c.bal.pinned(c.bal.backends[i%2]), cfg)
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = f.cfg.Exchange(f.ctx, r.code, oauth2.VerifierOption(r.verifier))
			}()
		}
		close(start)
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
			} else {
				wantTokenError(t, "losing parallel exchange", err, "invalid_grant", http.StatusBadRequest)
			}
		}
		if ok != 1 {
			t.Errorf("%d of 8 parallel exchanges of one code at two instances succeeded, want exactly 1", ok)
		}
	})

	// Refresh tokens rotate across instances: refreshed at A, the old one
	// reused at B is refused and revokes the family at both.
	t.Run("refresh rotation across instances", func(t *testing.T) {
		fa, fb := c.flow(e.ctx, c.bal.pinned(c.beA), cfg), c.flow(e.ctx, c.bal.pinned(c.beB), cfg)
		r, err := c.flow(e.ctx, c.bal.alternate(0), cfg).authorize()
		if err != nil {
			t.Fatal(err)
		}
		l, p, err := fb.exchange(r)
		if err != nil {
			t.Fatal(err)
		}
		second, err := fa.refresh(p, l.token.RefreshToken)
		if err != nil {
			t.Fatalf("refresh at A of a token issued by B: %v", err)
		}
		_, err = fb.cfg.TokenSource(fb.ctx, &oauth2.Token{RefreshToken: l.token.RefreshToken}).Token()
		wantTokenError(t, "rotated refresh token reused at B", err, "invalid_grant", http.StatusBadRequest)
		_, err = fa.cfg.TokenSource(fa.ctx, &oauth2.Token{RefreshToken: second.RefreshToken}).Token()
		wantTokenError(t, "newest refresh token at A after the reuse at B", err, "invalid_grant", http.StatusBadRequest)
		for _, f := range []*flowClient{fa, fb} {
			if status, body, err := f.userinfoStatus(second.AccessToken); err != nil || status != http.StatusUnauthorized {
				t.Errorf("userinfo at %s with the newest access token after a reuse: %d %s %v; want 401", f.r.pin.name, status, body, err)
			}
		}
	})
	if t.Failed() {
		return
	}

	// 2. Load, a SIGKILL of B, B's restart.
	loadRP := newSIDReceiver(t)
	loadApp := e.addClient("load", "--backchannel-logout-uri", loadRP.url, "--post-logout-redirect-uri", afterLogout)
	loadCfg := e.config(loadApp, oauth2.AuthStyleInParams, scopes...)

	// A login at A before the kill, to be used at the restarted B.
	preA := c.flow(e.ctx, c.bal.pinned(c.beA), cfg)
	preAuth, err := preA.authorize()
	if err != nil {
		t.Fatal(err)
	}
	pre, _, err := preA.exchange(preAuth)
	if err != nil {
		t.Fatal(err)
	}
	kidsBefore := c.a.kids()

	type flowRun struct {
		start, end time.Time
		r          *route
		sid        string
		err        error
	}
	const workers = 6
	var (
		mu   sync.Mutex
		runs []flowRun
		stop = make(chan struct{})
		wg   sync.WaitGroup
		// phase counts the flows that started after its beginning and
		// completed, so that each phase lasts until every worker could
		// finish a flow in it, however slow the machine.
		phase struct {
			sync.Mutex
			start time.Time
			done  int
		}
	)
	newPhase := func() time.Time {
		phase.Lock()
		defer phase.Unlock()
		phase.start, phase.done = time.Now(), 0
		return phase.start
	}
	waitPhase := func(n int) {
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			phase.Lock()
			done := phase.done
			phase.Unlock()
			if done >= n {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	stopOnce := sync.Once{}
	stopLoad := func() { stopOnce.Do(func() { close(stop); wg.Wait() }) }
	defer stopLoad() // also when the test fails early
	loadStart := newPhase()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r := c.bal.alternate(w + i)
				run := flowRun{start: time.Now(), r: r}
				l, err := c.flow(e.ctx, r, loadCfg).fullFlow(afterLogout)
				run.end, run.err, run.sid = time.Now(), err, l.claims.Sid
				phase.Lock()
				if run.start.After(phase.start) {
					phase.done++
				}
				phase.Unlock()
				mu.Lock()
				runs = append(runs, run)
				mu.Unlock()
			}
		}()
	}
	time.Sleep(time.Second)
	waitPhase(2 * workers)
	servedBByKill := c.beB.served.Load()
	killedAt := time.Now()
	c.b.signal(syscall.SIGKILL)
	killDone := newPhase()

	time.Sleep(time.Second)
	waitPhase(workers)
	restartAt := time.Now()
	b2 := c.dB.start() // same environment, same listen address
	if b2.url != c.b.url {
		t.Errorf("B restarted on %s, was %s", b2.url, c.b.url)
	}
	// Back in rotation once ready, as a health check would put it.
	servedBAtRejoin := c.beB.served.Load()
	c.beB.up.Store(true)
	rejoinedAt := newPhase()

	time.Sleep(time.Second)
	waitPhase(workers)
	stopLoad()
	stoppedAt := time.Now()

	// Flows by phase: before the kill, spanning it, with A alone, after B
	// rejoined.
	var before, during, aloneOK, rejoinOK, rejoinWithB int
	var failed []flowRun
	var afterKillSids []string
	for _, run := range runs {
		switch {
		case run.end.Before(killedAt):
			before++
			if run.err != nil {
				t.Errorf("flow before the kill failed: %v\nsteps: %s", run.err, run.r.stepLog())
			}
		case run.start.Before(killDone):
			during++
			if run.err != nil {
				failed = append(failed, run)
			}
		case run.start.Before(rejoinedAt):
			if run.err != nil {
				t.Errorf("flow started after the kill failed: %v\nsteps: %s", run.err, run.r.stepLog())
			} else {
				aloneOK++
			}
		default:
			if run.err != nil {
				t.Errorf("flow started after B rejoined failed: %v\nsteps: %s", run.err, run.r.stepLog())
				continue
			}
			rejoinOK++
			if slices.Contains(run.r.servedBy(), "B") && slices.Contains(run.r.servedBy(), "A") {
				rejoinWithB++
			}
		}
		if run.err == nil && run.start.After(killDone) {
			afterKillSids = append(afterKillSids, run.sid)
		}
		if run.err == nil && run.end.Before(killedAt) && !(slices.Contains(run.r.servedBy(), "A") && slices.Contains(run.r.servedBy(), "B")) {
			t.Errorf("a flow before the kill was not served by both instances: %s", run.r.stepLog())
		}
	}
	// Errors only from requests in flight on B when it died: none at A;
	// at B only requests sent before the process was gone (SIGKILL takes a
	// few milliseconds, during which B's listening socket still accepts)
	// that got their error after the signal; few of them; and every failed
	// flow lost a request.
	if errs := c.beA.lost(); len(errs) != 0 {
		t.Errorf("%d requests failed at A, want none; first: %v", len(errs), errs[0].err)
	}
	bErrs := c.beB.lost()
	for _, be := range bErrs {
		if be.at.Before(killedAt) || !be.sent.Before(killDone) {
			t.Errorf("a request to B failed that was not in flight at the kill (sent %v, failed %v after the kill): %v",
				be.sent.Sub(killedAt), be.at.Sub(killedAt), be.err)
		}
	}
	inFlight := 0 // sent before the signal: at most one per worker
	for _, be := range bErrs {
		if be.sent.Before(killedAt) {
			inFlight++
		}
	}
	if inFlight > workers || len(bErrs) > 3*workers || len(failed) > len(bErrs) {
		t.Errorf("%d requests (%d sent before the signal) and %d flows failed at the kill; want at most %d sent before it, a few more while B died, no more flows than requests",
			len(bErrs), inFlight, len(failed), workers)
	}
	for _, run := range failed {
		if run.r.failures() == 0 {
			t.Errorf("a flow spanning the kill failed without a lost request: %v\nsteps: %s", run.err, run.r.stepLog())
		} else {
			t.Logf("flow lost at the kill: %v", run.err)
		}
	}
	if aloneOK == 0 {
		t.Error("no flow completed with A alone after the kill")
	}
	if rejoinOK == 0 || rejoinWithB != rejoinOK {
		c.beB.mu.Lock()
		downs := slices.Clone(c.beB.downs)
		c.beB.mu.Unlock()
		exited := "running"
		select {
		case <-b2.done:
			exited = "exited: " + b2.cmd.ProcessState.String()
		default:
		}
		t.Errorf("%d flows after B rejoined, %d of them served partly by B; want some, all. Restarted B %s\n%s",
			rejoinOK, rejoinWithB, exited, b2.stderr)
		for _, d := range downs {
			t.Logf("B taken out of rotation %v after the kill: %v", d.at.Sub(killedAt), d.err)
		}
	}

	// The restarted B accepts what A issued before the kill: the same keys,
	// the access token, the ID token (JWKS from B) and the refresh token.
	if kb := b2.kids(); !slices.Equal(kb, kidsBefore) || !slices.Equal(c.a.kids(), kidsBefore) {
		t.Errorf("keys before the kill %v; after, A publishes %v and the restarted B %v", kidsBefore, c.a.kids(), kb)
	}
	atB := c.flow(e.ctx, c.bal.pinned(c.beB), cfg)
	if err := atB.userinfo(pre.token.AccessToken, pre.idToken.Subject); err != nil {
		t.Errorf("restarted B, access token issued by A before the kill: %v", err)
	}
	pB, err := oidc.NewProvider(atB.ctx, e.issuer)
	if err != nil {
		t.Fatalf("discovery at the restarted B: %v", err)
	}
	if _, err := pB.Verifier(&oidc.Config{ClientID: app.id}).Verify(atB.ctx, pre.rawID); err != nil {
		t.Errorf("restarted B's JWKS does not verify A's ID token from before the kill: %v", err)
	}
	if _, err := atB.refresh(pB, pre.token.RefreshToken); err != nil {
		t.Errorf("restarted B refreshing A's refresh token from before the kill: %v", err)
	}

	// Every session of a flow started after the kill gets its back-channel
	// notice, once, from A or the restarted B. (A notice B had claimed when
	// it died waits for its lease, minutes.)
	deadline := time.Now().Add(8 * time.Second)
	missing := afterKillSids
	for len(missing) > 0 && time.Now().Before(deadline) {
		missing = slices.DeleteFunc(slices.Clone(afterKillSids), func(sid string) bool { return loadRP.count(sid) > 0 })
		if len(missing) > 0 {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d of %d sessions of flows started after the kill got no back-channel logout", len(missing), len(afterKillSids))
	}
	for _, sid := range afterKillSids {
		if n := loadRP.count(sid); n > 1 {
			t.Errorf("session %s got %d back-channel logouts, want one", sid, n)
		}
	}
	var beforeNoticed, beforeOK int
	for _, run := range runs {
		if run.err == nil && run.end.Before(killedAt) {
			beforeOK++
			if loadRP.count(run.sid) > 0 {
				beforeNoticed++
			}
		}
	}

	t.Logf("%s: %d workers, %d flows in %v: %d before the kill, %d spanning it (%d lost), %d with A alone (%v), %d after B rejoined (restart took %v)",
		backend, workers, len(runs), stoppedAt.Sub(loadStart).Round(time.Millisecond), before, during, len(failed),
		aloneOK, restartAt.Sub(killDone).Round(time.Millisecond), rejoinOK, rejoinedAt.Sub(restartAt).Round(time.Millisecond))
	t.Logf("requests served: A %d, B %d (%d before the kill, %d after rejoining); connections A %d, B %d; requests lost at B at the kill: %d (%d sent before the signal, %d while B died)",
		c.beA.served.Load(), c.beB.served.Load(), servedBByKill, c.beB.served.Load()-servedBAtRejoin,
		c.beA.dials.Load(), c.beB.dials.Load(), len(bErrs), inFlight, len(bErrs)-inFlight)
	for _, be := range bErrs {
		t.Logf("  lost at B: sent %v, failed %v after the kill (B was gone after %v): %v", be.sent.Sub(killedAt).Round(time.Microsecond),
			be.at.Sub(killedAt).Round(time.Microsecond), killDone.Sub(killedAt).Round(time.Microsecond), be.err)
	}
	t.Logf("back-channel notices: %d/%d sessions of flows started after the kill, %d/%d before it; delivered by A %d, B %d, restarted B %d",
		len(afterKillSids)-len(missing), len(afterKillSids), beforeNoticed, beforeOK, deliveredBy(c.a), deliveredBy(c.b), deliveredBy(b2))
}
