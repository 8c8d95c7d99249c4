package main

// Attacks on the signing algorithms and the cheaper login, against a
// started mxidp on SQLite and PostgreSQL: per-client signing algorithms (tokens in an algorithm the
// client did not register, signed userinfo passed off as something else),
// the batched throttle statements (parallel checks that share counters),
// and the callback that no longer reads the user.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/mxidp/mxidp/provider/password"
	"github.com/mxidp/mxidp/storage"
	"github.com/mxidp/mxidp/storage/storagetest"
)

// signIn is one browser's sign-in, safe to run in a goroutine: it opens
// authURL in a new browser, follows the redirects to the sign-in form,
// submits it, and returns the status of the answer to the form.
func signIn(ctx context.Context, authURL, username, pw string) (int, error) {
	return signInFrom(ctx, authURL, username, pw, "")
}

// signInFrom is signIn through the loopback proxy for the client address
// forwardedFor, when set.
func signInFrom(ctx context.Context, authURL, username, pw, forwardedFor string) (int, error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	fetch := func(req *http.Request) (page, error) {
		if forwardedFor != "" {
			req.Header.Set("X-Forwarded-For", forwardedFor)
		}
		resp, err := c.Do(req.WithContext(ctx))
		if err != nil {
			return page{}, err
		}
		defer resp.Body.Close()
		noteCookies(resp)
		body, err := io.ReadAll(resp.Body)
		p := page{url: req.URL, status: resp.StatusCode, body: string(body)}
		if loc, err := resp.Location(); err == nil {
			p.location = loc.String()
		}
		return p, err
	}
	req, _ := http.NewRequest(http.MethodGet, authURL, nil)
	p, err := fetch(req)
	for hops := 0; err == nil && p.status >= 300 && p.status < 400 && hops < 5; hops++ {
		req, _ = http.NewRequest(http.MethodGet, p.location, nil)
		p, err = fetch(req)
	}
	if err != nil {
		return 0, err
	}
	f, ok := parseLoginForm(p)
	if !ok {
		return 0, fmt.Errorf("no sign-in form: %d %.300s", p.status, p.body)
	}
	form := url.Values{"id": {f.fields["id"]}, "csrf": {f.fields["csrf"]}, "username": {username}, "password": {pw}}
	req, _ = http.NewRequest(http.MethodPost, f.action, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if p, err = fetch(req); err != nil {
		return 0, err
	}
	return p.status, nil
}

// inflightCounters lists the throttle counters that still count a check
// as under way.
func inflightCounters(t *testing.T, s *storage.Store) []string {
	t.Helper()
	rows, err := s.DB().Query(`SELECT key, inflight FROM throttle WHERE inflight <> 0 ORDER BY key`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var k string
		var n int64
		if err := rows.Scan(&k, &n); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s=%d", k, n))
	}
	return out
}

// Parallel sign-ins of one user from one address share their counters
// (the network's, the login name's, the account's), which a password
// check now admits and ends in one statement each, several rows at a
// time. On PostgreSQL two such statements that lock the same rows in
// different orders deadlock: one check fails with an error, and when the
// failing statement was the one ending a check, its counters count it as
// under way for good, so that a user's own parallel logins (or an
// attacker's, against the user) could leave the account busy. Every
// sign-in must get in, nothing may fail, and nothing may stay counted.
func TestParallelSignInsSharingThrottleCountersNeitherFailNorLeak(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			e := startOpenIDWith(t, backend, "")
			cfg := e.config(e.addClient("rp-parallel"), oauth2.AuthStyleInHeader)
			const workers, each = 8, 12
			var mu sync.Mutex
			statuses := map[int]int{}
			var errs []error
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						login := "alice"
						if (w+i)%3 == 0 {
							login = aliceEmail // the same account by its other name
						}
						status, err := signIn(e.ctx, cfg.AuthCodeURL(randomAlnum(16)), login, alicePassword)
						mu.Lock()
						statuses[status]++
						if err != nil {
							errs = append(errs, err)
						}
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if len(errs) > 0 || statuses[http.StatusFound] != workers*each {
				t.Errorf("%d parallel sign-ins with the right password: answers %v, errors %v; want every one a 302", workers*each, statuses, errors.Join(errs...))
			}
			for _, bad := range []string{"deadlock", "updating a throttle counter failed", "level=ERROR"} {
				if strings.Contains(e.s.stderr.String(), bad) {
					t.Errorf("the log has %q:\n%s", bad, grepLines(e.s.stderr.String(), bad))
				}
			}
			if left := inflightCounters(t, (&cli{t: t, env: e.d.env}).store()); len(left) > 0 {
				t.Errorf("after every check ended, counters still count checks under way: %v", left)
			}
		})
	}
}

// A check is admitted under its counters in order (the network first),
// and a request waiting for one counter holds none that come after it:
// so a request that waits for its network never keeps a login name's
// place. The fast path admits every counter with room in one statement;
// keeping what it admitted past a counter that must be waited for would
// let an attacker whose own network is busy (one slow check under way
// fills a network whose failures reached its burst) park requests for
// alice's login name, each holding one of its five places while it waits
// for the attacker's network, and lock alice out of her own login name
// from every other network without one more guess. Here a check with a
// costly stored hash (seconds) fills the attacker's network; five
// requests for alice then wait behind it, and alice, from another
// network, must get in while that slow check is still under way.
func TestRequestsWaitingForTheirNetworkHoldNoPlaceOfTheLoginName(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			d := newDeployment(t, backend)
			d.env["GOMAXPROCS"] = "2" // two hash slots: the slow check takes one
			d.env["MXIDP_CONFIG"] = writeConfig(t, "passwords:\n  argon2id: {time: 1, memory_kib: 64, threads: 1}\nkeys:\n  refresh_interval: 100ms\n"+
				slowThrottle+"  network_burst: 1\n")
			c := &cli{t: t, env: d.env}
			c.must(alicePassword+"\n", "user", "add", "alice", "--password-stdin", "--email", aliceEmail)
			c.must("slow-password\n", "user", "add", "slowpoke", "--password-stdin")
			s := c.store()
			dear, err := password.Hash("slow-password", password.Params{Time: 6, MemoryKiB: 256 * 1024, Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			u, err := s.UserByUsername(context.Background(), "slowpoke")
			if err == nil {
				_, err = s.UpdateUser(context.Background(), u.ID, func(u *storage.User) error { u.PasswordHash = dear; return nil })
			}
			if err != nil {
				t.Fatal(err)
			}
			e := connectOpenID(t, d)
			cfg := e.config(e.addClient("rp-park"), oauth2.AuthStyleInHeader)
			const aliceNet = "192.0.2.7"
			if status, err := signInFrom(e.ctx, cfg.AuthCodeURL(randomAlnum(16)), "alice", alicePassword, aliceNet); status != http.StatusFound || err != nil {
				t.Fatalf("alice's first sign-in: %d, %v", status, err)
			}

			// The slow check fills loopback's one place for seconds.
			slowDone := make(chan time.Time, 1)
			go func() {
				signIn(e.ctx, cfg.AuthCodeURL(randomAlnum(16)), "slowpoke", "wrong-"+randomAlnum(6))
				slowDone <- time.Now()
			}()
			deadline := time.Now().Add(10 * time.Second)
			for !slices.Contains(inflightCounters(t, s), "user:"+u.ID+"=1") {
				if time.Now().After(deadline) {
					t.Fatalf("the slow check never got under way: %v", inflightCounters(t, s))
				}
				time.Sleep(10 * time.Millisecond)
			}
			// Five requests for alice from loopback wait for its place.
			for range 5 {
				go signIn(e.ctx, cfg.AuthCodeURL(randomAlnum(16)), "alice", "guess-"+randomAlnum(6))
			}
			time.Sleep(700 * time.Millisecond)
			held := inflightCounters(t, s)
			status, err := signInFrom(e.ctx, cfg.AuthCodeURL(randomAlnum(16)), "alice", alicePassword, aliceNet)
			in := time.Now()
			select {
			case done := <-slowDone:
				t.Errorf("alice got in (%d, %v) only %v after the slow check on the attacker's network ended; she waited for it (counters under way meanwhile: %v)",
					status, err, in.Sub(done).Round(time.Millisecond), held)
			default:
				if status != http.StatusFound || err != nil {
					t.Errorf("alice from her own network during the attack: %d, %v; want 302", status, err)
				}
				<-slowDone
			}
		})
	}
}

// Thirty parallel wrong guesses for alice, by her username and her e-mail
// address in turn, after one guess made every counter a row the
// one-statement admission serves: no more password checks than the
// account's burst (five in all), the rest refused unchecked.
func TestParallelGuessesOnWarmCountersGetNoMoreThanTheBurst(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			e := startOpenIDWith(t, backend, slowThrottle)
			cfg := e.config(e.addClient("rp-guess"), oauth2.AuthStyleInHeader)
			if status, err := signIn(e.ctx, cfg.AuthCodeURL(randomAlnum(16)), "alice", "guess-"+randomAlnum(8)); status != http.StatusUnauthorized || err != nil {
				t.Fatalf("the first guess: %d, %v; want 401", status, err)
			}
			var mu sync.Mutex
			statuses := map[int]int{}
			var wg sync.WaitGroup
			for i := range 30 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					login := []string{"alice", aliceEmail}[i%2]
					status, err := signIn(e.ctx, cfg.AuthCodeURL(randomAlnum(16)), login, "guess-"+randomAlnum(8))
					if err != nil {
						t.Error(err)
					}
					mu.Lock()
					statuses[status]++
					mu.Unlock()
				}()
			}
			wg.Wait()
			if statuses[http.StatusUnauthorized] != 4 || statuses[http.StatusTooManyRequests] != 26 {
				t.Errorf("30 parallel guesses after the first: answers %v; want 4 checked (401) and 26 refused (429)", statuses)
			}
			events := auditJSONOf(t, &cli{t: t, env: e.d.env}, "--user", "alice", "--event", "login")
			if n := countDetail(events, "wrong password"); n != 5 {
				t.Errorf("%d password checks for alice; want 5 (the account's burst)", n)
			}
		})
	}
}

// completeLogin starts an authorization in b and signs in as alice, and
// returns the callback the browser is sent to, not yet fetched.
func completeLogin(t *testing.T, b *browser, cfg *oauth2.Config, pw string) string {
	t.Helper()
	link, id := startLogin(t, b, cfg)
	form, ok := parseLoginForm(b.get(link))
	if !ok {
		t.Fatal("no sign-in form")
	}
	p := b.submitLogin(form, "alice", pw)
	if !strings.Contains(p.location, "/authorize/callback?id="+url.QueryEscape(id)) {
		t.Fatalf("sign-in answered %d %q; want the callback", p.status, p.location)
	}
	return p.location
}

// formFields returns the action and the fields of the first form of p.
func formFields(p page) (string, url.Values) {
	m := formActionRE.FindStringSubmatch(p.body)
	if m == nil {
		return "", nil
	}
	action, _ := p.url.Parse(html.UnescapeString(m[1]))
	fields := url.Values{}
	for _, in := range inputRE.FindAllString(p.body, -1) {
		attrs := map[string]string{}
		for _, a := range attrRE.FindAllStringSubmatch(in, -1) {
			attrs[a[1]] = html.UnescapeString(a[2])
		}
		if name, ok := attrs["name"]; ok {
			fields.Set(name, attrs["value"])
		}
	}
	return action.String(), fields
}

// The callback reads the authorization request joined with the session
// that completed it, and no longer reads the user. Between the sign-in
// and the callback, the session that completed the request is ended by a
// logout, replaced by a new sign-in in the same browser, or expires; or the
// callback comes with the binding cookie but another live session of the
// same user; or the operator disables the user. None of these gets a
// code.
func TestCallbackWantsTheLiveSessionThatCompletedTheRequest(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			e := startOpenIDWith(t, backend, "")
			c := e.addClient("rp-cb")
			cfg := e.config(c, oauth2.AuthStyleInHeader)
			refused := func(what string, b *browser, callback string) {
				t.Helper()
				p := b.get(callback)
				if gotCode(b, p, c.redirectURI) || p.status != http.StatusForbidden {
					t.Errorf("%s: the callback answered %d %q; want 403 and no code", what, p.status, p.location)
				}
			}

			// Logged out between the sign-in and the callback.
			b := newBrowser(t)
			callback := completeLogin(t, b, cfg, alicePassword)
			confirm := b.get(e.meta.EndSession)
			action, fields := formFields(confirm)
			if action == "" || fields.Get("csrf") == "" {
				t.Fatalf("end_session without a hint: %d, no confirmation form\n%.500s", confirm.status, confirm.body)
			}
			req, _ := http.NewRequest(http.MethodPost, action, strings.NewReader(fields.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if p := b.do(req); p.status != http.StatusFound {
				t.Fatalf("logout confirmation: %d %q", p.status, p.location)
			}
			refused("after the session was logged out", b, callback)

			// Replaced by a new sign-in in the same browser (prompt=login).
			b = newBrowser(t)
			callback = completeLogin(t, b, cfg, alicePassword)
			e.authorize(b, cfg, oauth2.SetAuthURLParam("prompt", "login"))
			refused("after the session was replaced by a new sign-in", b, callback)

			// Another live session of alice, with this request's binding.
			b = newBrowser(t)
			callback = completeLogin(t, b, cfg, alicePassword)
			other := newBrowser(t)
			e.authorize(other, cfg)
			u, _ := url.Parse(e.issuer)
			other.c.Jar.SetCookies(u, []*http.Cookie{{Name: "mxidp_browser", Value: cookieOf(b, e.issuer, "mxidp_browser"), Path: "/"}})
			refused("with another session of the same user", other, callback)

			// Expired: its end moved into the past (sessions.lifetime is a
			// minute at least).
			b = newBrowser(t)
			callback = completeLogin(t, b, cfg, alicePassword)
			if _, err := (&cli{t: t, env: e.d.env}).store().DB().Exec(`UPDATE sessions SET expires_at = 1`); err != nil {
				t.Fatal(err)
			}
			refused("after the session expired", b, callback)

			// The operator disables alice (which ends her sessions).
			b = newBrowser(t)
			callback = completeLogin(t, b, cfg, alicePassword)
			e.d.cli("user", "disable", "alice")
			refused("after the user was disabled", b, callback)
		})
	}
}

// A platform disables its user without telling mxidp (the sessions end
// at the next users.platform.check_interval): between the sign-in and the
// callback, the callback, which no longer reads the user, may hand the
// browser a code. The code exchange must then be refused with a token
// error (invalid_grant, not a server error naming the user), and no token
// of any kind; what was issued before stops working.
func TestCodeOfAUserThePlatformDisabledAfterSignInYieldsNoToken(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			platformURL, db := storagetest.DjangoPlatform(t, backend)
			h, err := password.Hash(alicePassword, password.Params{Time: 1, MemoryKiB: 64, Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			storagetest.AddDjangoUsers(t, db, storagetest.DjangoUser{ID: 1, Username: "alice", Password: "argon2" + h,
				Email: aliceEmail, EmailVerified: true, Active: true})
			d := newDeployment(t, backend)
			d.env["MXIDP_CONFIG"] = writeConfig(t, "passwords:\n  argon2id: {time: 1, memory_kib: 64, threads: 1}\nkeys:\n  refresh_interval: 100ms\n"+
				platformUsersYAML(platformURL, storagetest.DjangoQueries(backend), "1h"))
			e := connectOpenID(t, d)
			c := e.addClient("rp-platform")
			cfg := e.config(c, oauth2.AuthStyleInHeader, "openid", "profile", "email", "offline_access")
			b := newBrowser(t)
			l := e.exchange(cfg, e.authorize(b, cfg)) // alice can log in
			r := authResult{state: randomAlnum(20), nonce: randomAlnum(20), verifier: oauth2.GenerateVerifier()}
			link := cfg.AuthCodeURL(r.state, oidc.Nonce(r.nonce), oauth2.S256ChallengeOption(r.verifier), oauth2.SetAuthURLParam("prompt", "login"))
			p := b.get(link)
			for p.status >= 300 && p.status < 400 && !strings.Contains(p.location, "/authorize/callback") {
				if form, ok := parseLoginForm(p); ok {
					p = b.submitLogin(form, "alice", alicePassword)
					continue
				}
				p = b.get(p.location)
			}
			if form, ok := parseLoginForm(p); ok {
				p = b.submitLogin(form, "alice", alicePassword)
			}
			if !strings.Contains(p.location, "/authorize/callback") {
				t.Fatalf("sign-in answered %d %q; want the callback", p.status, p.location)
			}
			callback := p.location
			if _, err := db.Exec(`UPDATE auth_user SET is_active = FALSE WHERE id = 1`); err != nil {
				t.Fatal(err)
			}
			p = b.until(b.get(callback), c.redirectURI)
			cb, _ := url.Parse(p.location)
			if code := cb.Query().Get("code"); code != "" {
				status, _, body := e.postForm(e.meta.Token, url.Values{"grant_type": {"authorization_code"}, "code": {code},
					"redirect_uri": {c.redirectURI}, "code_verifier": {r.verifier}}, c.id, c.secret)
				var answer map[string]any
				json.Unmarshal(body, &answer)
				if status != http.StatusBadRequest || answer["error"] != "invalid_grant" || answer["access_token"] != nil || answer["id_token"] != nil || answer["refresh_token"] != nil {
					t.Errorf("code exchange for a user the platform disabled: %d %s; want 400 invalid_grant and no token", status, body)
				}
			} else if p.status != http.StatusForbidden {
				t.Errorf("callback for a user the platform disabled: %d %q; want a code (then refused) or 403", p.status, p.location)
			}
			// Nor does anything issued before still work.
			e.wantUserinfoRefused("an access token of the disabled user", l.token.AccessToken)
			if _, err := cfg.TokenSource(e.ctx, &oauth2.Token{RefreshToken: l.token.RefreshToken}).Token(); err == nil {
				t.Error("the disabled user's refresh token still works")
			}
			if strings.Contains(e.s.stderr.String(), "level=ERROR") {
				t.Errorf("the refusal was logged as an error:\n%s", grepLines(e.s.stderr.String(), "level=ERROR"))
			}
		})
	}
}

// tokenPost posts a token request with the client's Basic credentials and
// returns the decoded answer; safe in a goroutine.
func tokenPost(ctx context.Context, endpoint string, c rpClient, form url.Values) (int, map[string]any, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(c.id), url.QueryEscape(c.secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var answer map[string]any
	err = json.NewDecoder(resp.Body).Decode(&answer)
	for _, k := range []string{"access_token", "refresh_token", "id_token"} {
		if v, ok := answer[k].(string); ok {
			noteSecret(v)
		}
	}
	return resp.StatusCode, answer, err
}

// checkSignedFor verifies that token is a JWS in alg whose kid names a
// published key of alg, that the key verifies it, and that its aud is
// clientID.
func checkSignedFor(set jose.JSONWebKeySet, token, alg, clientID string) error {
	jws, err := jose.ParseSignedCompact(token, signingAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		return fmt.Errorf("not a JWS of one signature: %v", err)
	}
	h := jws.Signatures[0].Protected
	keys := set.Key(h.KeyID)
	if h.Algorithm != alg || len(keys) != 1 || keys[0].Algorithm != alg {
		return fmt.Errorf("header alg %q kid %q (published as %v); want %s with a published %s key", h.Algorithm, h.KeyID, keys, alg, alg)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		return fmt.Errorf("%s token does not verify with its kid: %v", alg, err)
	}
	var claims struct {
		Aud any `json:"aud"`
	}
	json.Unmarshal(payload, &claims)
	if aud := fmt.Sprint(claims.Aud); aud != clientID && aud != "["+clientID+"]" {
		return fmt.Errorf("aud %v; want %s", claims.Aud, clientID)
	}
	return nil
}

// The algorithm a token is signed with is noted per request, by the
// client lookup of the token endpoint. Clients of each algorithm redeem
// codes and refresh tokens at once, interleaved in one process: every ID
// token is in its own client's algorithm, with a kid published for that
// algorithm alone (no kid of one algorithm names a key of another) and
// verified by that key, for that client.
func TestInterleavedTokenRequestsOfClientsInEachAlgorithmAreSignedInTheirOwn(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		set, raw := e.jwks()
		kids := map[string]string{}
		for i, k := range set.Keys {
			if prev, dup := kids[k.KeyID]; dup {
				t.Errorf("kid %s is published for %s and %s", k.KeyID, prev, k.Algorithm)
			}
			kids[k.KeyID] = k.Algorithm
			if raw[i]["alg"] != k.Algorithm || raw[i]["use"] != "sig" {
				t.Errorf("published key %s: alg %v use %v", k.KeyID, raw[i]["alg"], raw[i]["use"])
			}
		}
		type chain struct {
			alg     string
			client  rpClient
			refresh string
			code    authResult
		}
		var chains []*chain
		b := newBrowser(t)
		for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
			c := e.addClient("rp-mix-"+strings.ToLower(alg), "--id-token-alg", alg)
			cfg := e.config(c, oauth2.AuthStyleInHeader, "openid", "profile", "offline_access")
			for range 4 {
				l := e.exchange(cfg, e.authorize(b, cfg))
				chains = append(chains, &chain{alg: alg, client: c, refresh: l.token.RefreshToken, code: e.authorize(b, cfg)})
			}
		}
		var mu sync.Mutex
		var problems []string
		report := func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			problems = append(problems, fmt.Sprintf(format, args...))
		}
		var wg sync.WaitGroup
		for _, ch := range chains {
			wg.Add(1)
			go func() {
				defer wg.Done()
				status, answer, err := tokenPost(e.ctx, e.meta.Token, ch.client, url.Values{"grant_type": {"authorization_code"},
					"code": {ch.code.code}, "redirect_uri": {ch.client.redirectURI}, "code_verifier": {ch.code.verifier}})
				idToken, _ := answer["id_token"].(string)
				if err != nil || status != http.StatusOK {
					report("%s code exchange: %d %v %v", ch.alg, status, answer, err)
				} else if err := checkSignedFor(set, idToken, ch.alg, ch.client.id); err != nil {
					report("%s client's ID token from a code: %v", ch.alg, err)
				}
				for i := range 8 {
					status, answer, err := tokenPost(e.ctx, e.meta.Token, ch.client, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {ch.refresh}})
					idToken, _ := answer["id_token"].(string)
					if err != nil || status != http.StatusOK || idToken == "" {
						report("%s refresh %d: %d %v %v", ch.alg, i, status, answer, err)
						return
					}
					if err := checkSignedFor(set, idToken, ch.alg, ch.client.id); err != nil {
						report("%s client's refreshed ID token %d: %v", ch.alg, i, err)
					}
					ch.refresh, _ = answer["refresh_token"].(string)
				}
			}()
		}
		wg.Wait()
		for _, p := range problems {
			t.Error(p)
		}
	})
}

// reheader returns token with its protected header replaced by h (its
// payload and signature kept) or, with key set, re-signed with HS256 under
// that key, the way an attacker turns a public key into a MAC secret.
func reheader(t *testing.T, token string, h map[string]any, key []byte) string {
	t.Helper()
	parts := strings.Split(token, ".")
	hb, _ := json.Marshal(h)
	head := base64.RawURLEncoding.EncodeToString(hb)
	if key == nil {
		return head + "." + parts[1] + "." + parts[2]
	}
	if h["alg"] == "none" {
		return head + "." + parts[1] + "."
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(head + "." + parts[1]))
	return head + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// id_token_hint at end_session is verified in any of the ring's
// algorithms, and a valid hint naming this browser's session logs out at
// once. Hints made from a real ID token of the session (its sub and sid)
// but unsigned, keyed as HS256 with a published public key, relabelled
// with another algorithm or another algorithm's kid, or a signed userinfo
// answer in place of an ID token, all get the confirmation page and end
// nothing; the real hint, in each algorithm, logs out at once.
func TestForgedAndRelabelledIDTokenHintsAskBeforeLoggingOut(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		after := "http://127.0.0.1:9/after-logout"
		type rp struct {
			client rpClient
			cfg    *oauth2.Config
		}
		rps := map[string]rp{}
		for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
			c := e.addClient("rp-hint-"+strings.ToLower(alg), "--id-token-alg", alg, "--userinfo-alg", alg, "--post-logout-redirect-uri", after)
			rps[alg] = rp{c, e.config(c, oauth2.AuthStyleInHeader)}
		}
		set, raw := e.jwks()
		kidOf := map[string]string{}
		jwkOf := map[string][]byte{}
		for i, k := range set.Keys {
			kidOf[k.Algorithm] = k.KeyID
			jwkOf[k.Algorithm], _ = json.Marshal(raw[i])
		}
		rsaPEM := func() []byte {
			for _, k := range set.Keys {
				if k.Algorithm == "RS256" {
					der, err := x509.MarshalPKIXPublicKey(k.Key)
					if err != nil {
						t.Fatal(err)
					}
					return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
				}
			}
			t.Fatal("no RS256 key published")
			return nil
		}()

		for _, alg := range []string{"ES256", "EdDSA", "RS256"} {
			b := newBrowser(t)
			logins := map[string]login{}
			for _, a := range []string{"RS256", "ES256", "EdDSA"} {
				logins[a] = e.exchange(rps[a].cfg, e.authorize(b, rps[a].cfg))
			}
			real := logins[alg].rawID
			_, _, userinfoJWT := e.userinfo(logins[alg].token.AccessToken)
			h := jwsHeader(t, real)
			forged := map[string]string{
				"unsigned (alg none)":                     reheader(t, real, map[string]any{"alg": "none", "typ": "JWT"}, []byte{}),
				"HS256 keyed with the RSA key's PEM":      reheader(t, real, map[string]any{"alg": "HS256", "kid": kidOf["RS256"]}, rsaPEM),
				"HS256 keyed with the RSA JWK":            reheader(t, real, map[string]any{"alg": "HS256", "kid": kidOf["RS256"]}, jwkOf["RS256"]),
				"HS256 keyed with the EC JWK":             reheader(t, real, map[string]any{"alg": "HS256", "kid": kidOf["ES256"]}, jwkOf["ES256"]),
				"HS256 keyed with the Ed25519 JWK":        reheader(t, real, map[string]any{"alg": "HS256", "kid": kidOf["EdDSA"]}, jwkOf["EdDSA"]),
				"alg spelled in lower case":               reheader(t, real, map[string]any{"alg": strings.ToLower(alg), "kid": h.KeyID}, nil),
				"signed userinfo in place of an ID token": string(userinfoJWT),
			}
			for _, other := range []string{"RS256", "ES256", "EdDSA"} {
				if other != alg {
					forged["relabelled "+other] = reheader(t, real, map[string]any{"alg": other, "kid": h.KeyID}, nil)
					forged["with the kid of the "+other+" key"] = reheader(t, real, map[string]any{"alg": alg, "kid": kidOf[other]}, nil)
					forged["relabelled "+other+" with its kid"] = reheader(t, real, map[string]any{"alg": other, "kid": kidOf[other]}, nil)
				}
			}
			for what, hint := range forged {
				p := b.get(e.meta.EndSession + "?" + url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {after}}.Encode())
				if action, fields := formFields(p); p.status != http.StatusOK || !strings.HasSuffix(action, "/logout") || fields.Get("csrf") == "" {
					t.Errorf("%s client, hint %s: %d %q; want the confirmation page", alg, what, p.status, p.location)
				}
			}
			// The session lives on: single sign-on still answers at once.
			if again := e.authorize(b, rps[alg].cfg); len(again.forms) != 0 {
				t.Errorf("%s: after the forged hints the session was gone (login forms %v)", alg, again.forms)
			}
			p := b.get(e.meta.EndSession + "?" + url.Values{"id_token_hint": {real}, "post_logout_redirect_uri": {after}}.Encode())
			if p.status != http.StatusFound || p.location != after {
				t.Errorf("%s client, the real hint: %d %q; want 302 to %s", alg, p.status, p.location, after)
			}
		}
	})
}

// A client registered for signed userinfo gets a JWT of the claims its
// token's scopes allow and no more (an openid-only token: sub, iss and
// aud), which go-oidc refuses as an ID token (it has no exp), and which
// no other client takes for its own (its aud).
func TestSignedUserinfoHoldsOnlyItsScopesAndPassesForNoIDToken(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		c := e.addClient("rp-ui", "--id-token-alg", "ES256", "--userinfo-alg", "ES256")
		other := e.addClient("rp-other", "--id-token-alg", "ES256")
		cfg := e.config(c, oauth2.AuthStyleInHeader, "openid")
		b := newBrowser(t)
		l := e.exchange(cfg, e.authorize(b, cfg))
		status, h, body := e.userinfo(l.token.AccessToken)
		if status != http.StatusOK || h.Get("Content-Type") != "application/jwt" {
			t.Fatalf("signed userinfo: %d %q %.200s", status, h.Get("Content-Type"), body)
		}
		set, _ := e.jwks()
		if err := checkSignedFor(set, string(body), "ES256", c.id); err != nil {
			t.Fatal(err)
		}
		jws, _ := jose.ParseSignedCompact(string(body), signingAlgs)
		var claims map[string]any
		json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &claims)
		var names []string
		for k := range claims {
			names = append(names, k)
		}
		slices.Sort(names)
		if want := []string{"aud", "iss", "sub"}; !slices.Equal(names, want) {
			t.Errorf("signed userinfo of an openid-only token has claims %v; want %v", names, want)
		}
		for _, id := range []string{c.id, other.id} {
			if _, err := e.provider.Verifier(&oidc.Config{ClientID: id}).Verify(e.ctx, string(body)); err == nil {
				t.Errorf("go-oidc takes the signed userinfo for an ID token of %s", id)
			}
		}
	})
}

// The request log formats its line itself when every value is plain
// (letters, digits, URL punctuation) and leaves anything else to slog.
// Paths and methods that would break a line or fake another (a newline, a
// quote, "level=ERROR", JSON's quote and brace), sent as raw bytes or
// percent-encoded, come out inside one quoted value of one line, in text
// and in JSON, and the forged line appears nowhere.
func TestRequestLogLinesCannotBeForgedThroughThePathOrTheMethod(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			d := newDeployment(t, "sqlite")
			d.env["MXIDP_CONFIG"] = writeConfig(t, "passwords:\n  argon2id: {time: 1, memory_kib: 64, threads: 1}\nlog:\n  level: info\n  format: "+format+"\n")
			s := d.start()
			forged := `level=ERROR msg=forged`
			jsonForged := `{"level":"ERROR","msg":"forged"}`
			paths := []string{
				"/x%0Atime=2026-01-01T00:00:00.000Z%20" + url.PathEscape(forged),
				"/x%0D%0A" + url.PathEscape(jsonForged),
				"/x%22%20" + url.PathEscape(forged),
				"/x%22,%22level%22:%22ERROR%22,%22msg%22:%22forged",
				"/keys%0A" + url.PathEscape(forged),
			}
			for _, p := range paths {
				resp, err := http.Get(s.url + p)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
			}
			req, _ := http.NewRequest("GET|x", s.url+"/keys", nil)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
			time.Sleep(50 * time.Millisecond) // the request lines leave in batches, every 5 ms
			var lines []string
			for _, l := range strings.Split(s.stderr.String(), "\n") {
				if strings.Contains(l, "forged") || strings.Contains(l, "GET|x") {
					lines = append(lines, l)
				}
			}
			if len(lines) != len(paths)+1 {
				t.Errorf("%d log lines name the requests; want one each (%d):\n%s", len(lines), len(paths)+1, strings.Join(lines, "\n"))
			}
			for _, l := range lines {
				if format == "json" {
					var rec map[string]any
					if err := json.Unmarshal([]byte(l), &rec); err != nil || rec["level"] != "INFO" || rec["msg"] != "request" {
						t.Errorf("not one JSON request record: %s (%v)", l, err)
					}
					continue
				}
				f := strings.SplitN(l, " ", 4)
				if len(f) < 4 || !strings.HasPrefix(f[0], "time=") || f[1] != "level=INFO" || f[2] != "msg=request" ||
					(strings.Contains(l, "forged") && !strings.Contains(l, ` path="`)) {
					t.Errorf("not one request line with the path quoted: %s", l)
				}
			}
		})
	}
}

// grepLines returns the lines of log that contain s.
func grepLines(log, s string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
