package main

// End-to-end tests of the per-client signing algorithm: clients given
// ES256 or EdDSA (mxidp client add --id-token-alg, or dynamic registration
// with id_token_signed_response_alg) get their ID tokens, refreshed ID
// tokens and logout tokens in that algorithm, verified by go-oidc against
// the published keys; RS256 clients keep RS256; signed userinfo
// (userinfo_signed_response_alg, OIDC Core §5.3.2) is a JWT go-oidc reads.

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/mxidp/mxidp/storage/storagetest"
	"golang.org/x/oauth2"
	"gopkg.in/yaml.v3"
)

// wantSignedWith asserts that token is a JWS in alg whose kid is a
// published key of alg.
func (e *openIDEnv) wantSignedWith(what, token, alg string) {
	e.t.Helper()
	h := jwsHeader(e.t, token)
	set, _ := e.jwks()
	keys := set.Key(h.KeyID)
	if h.Algorithm != alg || len(keys) != 1 || keys[0].Algorithm != alg {
		e.t.Errorf("%s: header alg %q kid %q (published as %v); want %s with a published %s key", what, h.Algorithm, h.KeyID, keys, alg, alg)
	}
}

// Discovery lists every algorithm, RS256 first, for ID tokens and
// userinfo, and the JWKS holds a key of each: go-oidc accepts all three.
func TestDiscoveryAndJWKSOfferEveryAlgorithm(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		var doc struct {
			IDToken  []string `json:"id_token_signing_alg_values_supported"`
			Userinfo []string `json:"userinfo_signing_alg_values_supported"`
		}
		if err := e.provider.Claims(&doc); err != nil {
			t.Fatal(err)
		}
		want := []string{"RS256", "ES256", "EdDSA"}
		if !slices.Equal(doc.IDToken, want) || !slices.Equal(doc.Userinfo, want) {
			t.Errorf("id_token_signing_alg_values_supported %v, userinfo_signing_alg_values_supported %v; want %v", doc.IDToken, doc.Userinfo, want)
		}
		set, raw := e.jwks()
		kinds := map[string]string{}
		for i, k := range set.Keys {
			kinds[k.Algorithm] = raw[i]["kty"].(string)
			if crv, _ := raw[i]["crv"].(string); k.Algorithm != "RS256" {
				kinds[k.Algorithm] += "/" + crv
			}
		}
		if w := map[string]string{"RS256": "RSA", "ES256": "EC/P-256", "EdDSA": "OKP/Ed25519"}; len(set.Keys) != 3 || !maps.Equal(kinds, w) {
			t.Errorf("JWKS key types %v (%d keys); want %v", kinds, len(set.Keys), w)
		}
	})
}

// An ES256 client and an EdDSA client log in through go-oidc beside an
// RS256 client in one browser session: each ID token, and each refreshed
// one, is in its client's algorithm with a published kid and a matching
// at_hash; an EdDSA ID token serves as id_token_hint at the logout; and
// the logout reaches each client as a logout token in its algorithm.
func TestES256AndEdDSAClientsLogInThroughGoOIDCAndAreLoggedOutInTheirAlgorithm(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		afterLogout := "http://127.0.0.1:9/logged-out"
		type rp struct {
			alg      string
			client   rpClient
			cfg      *oauth2.Config
			receiver *logoutReceiver
			login    login
		}
		var rps []*rp
		for _, alg := range []string{"ES256", "EdDSA", "RS256"} {
			r := &rp{alg: alg, receiver: newLogoutReceiver(t)}
			flags := []string{"--backchannel-logout-uri", r.receiver.url, "--post-logout-redirect-uri", afterLogout}
			if alg != "RS256" {
				flags = append(flags, "--id-token-alg", alg) // RS256: the default, not named
			}
			r.client = e.addClient("rp-"+strings.ToLower(alg), flags...)
			r.cfg = e.config(r.client, oauth2.AuthStyleInHeader, oidc.ScopeOpenID, "profile", "email", oidc.ScopeOfflineAccess)
			rps = append(rps, r)
		}
		b := newBrowser(t)
		for i, r := range rps {
			auth := e.authorize(b, r.cfg)
			if want := []int{http.StatusOK}; (i == 0) != slices.Equal(auth.forms, want) {
				t.Errorf("%s: login forms %v; want one for the first client only (single sign-on)", r.alg, auth.forms)
			}
			r.login = e.exchange(r.cfg, auth) // go-oidc verifies signature, iss, aud, exp, nonce
			e.wantSignedWith(r.alg+" client's ID token", r.login.rawID, r.alg)
			if err := r.login.idToken.VerifyAccessToken(r.login.token.AccessToken); err != nil {
				t.Errorf("%s: at_hash: %v", r.alg, err)
			}
			if r.login.claims.PreferredUsername != "alice" || r.login.claims.Email != aliceEmail || r.login.claims.Sid == "" {
				t.Errorf("%s: claims %+v", r.alg, r.login.claims)
			}
			refreshed, err := r.cfg.TokenSource(e.ctx, &oauth2.Token{RefreshToken: r.login.token.RefreshToken}).Token()
			if err != nil {
				t.Fatalf("%s: refresh: %v", r.alg, err)
			}
			again := e.verifyIDToken(r.client.id, refreshed)
			e.wantSignedWith(r.alg+" client's refreshed ID token", again.rawID, r.alg)
			if again.idToken.Subject != r.login.idToken.Subject {
				t.Errorf("%s: refreshed sub %q, want %q", r.alg, again.idToken.Subject, r.login.idToken.Subject)
			}
			e.wantUserinfoOK(r.alg+" client's access token", refreshed.AccessToken)
		}
		if rps[0].login.claims.Sid != rps[1].login.claims.Sid || rps[1].login.claims.Sid != rps[2].login.claims.Sid {
			t.Fatalf("one browser session gave the clients different sids")
		}

		// The EdDSA ID token as the hint: verified, it lets the logout
		// through at once to the client's registered address.
		ed := rps[1]
		p := b.get(e.meta.EndSession + "?" + url.Values{"id_token_hint": {ed.login.rawID}, "post_logout_redirect_uri": {afterLogout}}.Encode())
		if p.status != http.StatusFound || p.location != afterLogout {
			t.Errorf("end_session with an EdDSA id_token_hint: %d Location %q; want 302 to %s\n%.500s", p.status, p.location, afterLogout, p.body)
		}
		for _, r := range rps {
			rec := r.receiver.wait(t, 10*time.Second)
			e.checkLogoutToken(rec, r.client.id, r.login) // its alg is the ID token's
			e.wantSignedWith(r.alg+" client's logout token", rec.token, r.alg)
		}
	})
}

// A client registered with a userinfo algorithm gets /userinfo as a JWT
// (application/jwt) in that algorithm with iss and aud (OIDC Core
// §5.3.2), which go-oidc verifies against the JWKS; set-alg moves it back
// to JSON and its ID tokens to another algorithm; bad algorithms are
// refused at the command line.
func TestSignedUserinfoAndChangingAClientsAlgorithms(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		c := e.addClient("signed", "--id-token-alg", "ES256", "--userinfo-alg", "EdDSA")
		cfg := e.config(c, oauth2.AuthStyleInHeader)
		b := newBrowser(t)
		l := e.exchange(cfg, e.authorize(b, cfg))
		e.wantSignedWith("ID token", l.rawID, "ES256")

		status, h, body := e.userinfo(l.token.AccessToken)
		if status != http.StatusOK || h.Get("Content-Type") != "application/jwt" || h.Get("Cache-Control") != "no-store" {
			t.Fatalf("signed userinfo: %d %q %q %.200s; want 200 application/jwt, no-store", status, h.Get("Content-Type"), h.Get("Cache-Control"), body)
		}
		e.wantSignedWith("userinfo", string(body), "EdDSA")
		set, _ := e.jwks()
		jws, err := jose.ParseSignedCompact(string(body), []jose.SignatureAlgorithm{jose.EdDSA})
		if err != nil {
			t.Fatal(err)
		}
		payload, err := jws.Verify(set.Key(jws.Signatures[0].Protected.KeyID)[0])
		if err != nil {
			t.Fatalf("signed userinfo does not verify against /keys: %v", err)
		}
		var claims map[string]any
		json.Unmarshal(payload, &claims)
		if claims["iss"] != e.issuer || claims["aud"] != c.id || claims["sub"] != l.idToken.Subject ||
			claims["email"] != aliceEmail || claims["preferred_username"] != "alice" {
			t.Errorf("signed userinfo claims %v; want iss %s, aud %s, alice's sub and claims", claims, e.issuer, c.id)
		}
		for _, idTokenOnly := range []string{"exp", "nonce", "at_hash"} {
			if _, has := claims[idTokenOnly]; has {
				t.Errorf("signed userinfo has %s: it could pass for an ID token", idTokenOnly)
			}
		}
		info, err := e.provider.UserInfo(e.ctx, oauth2.StaticTokenSource(l.token))
		if err != nil || info.Subject != l.idToken.Subject || info.Email != aliceEmail {
			t.Errorf("go-oidc reads the signed userinfo as %+v, %v", info, err)
		}
		e.wantUserinfoRefused("a made-up token", "not-a-token")

		// Back to JSON, and RS256 ID tokens from the next login on.
		if out := e.d.cli("client", "set-alg", c.id, "--id-token-alg", "RS256", "--userinfo-json"); !strings.Contains(out, "RS256, userinfo JSON") {
			t.Errorf("set-alg printed %q", out)
		}
		time.Sleep(1100 * time.Millisecond) // the one-second client cache
		status, h, body = e.userinfo(l.token.AccessToken)
		if status != http.StatusOK || !isJSON(h) || !json.Valid(body) {
			t.Errorf("userinfo after --userinfo-json: %d %q %.200s; want JSON", status, h.Get("Content-Type"), body)
		}
		next := e.exchange(cfg, e.authorize(b, cfg))
		e.wantSignedWith("ID token after set-alg", next.rawID, "RS256")

		var listed []clientJSON
		if err := json.Unmarshal([]byte(e.d.cli("client", "list", "--json")), &listed); err != nil || len(listed) != 1 ||
			listed[0].IDTokenAlg != "RS256" || listed[0].UserinfoAlg != "" {
			t.Errorf("client list --json: %+v, %v", listed, err)
		}
		e.d.cli("client", "set-alg", c.id, "--userinfo-alg", "ES256")
		if text := e.d.cli("client", "list"); !strings.Contains(text, "ALG") || !strings.Contains(text, "JWT ES256") {
			t.Errorf("client list shows no algorithms:\n%s", text)
		}
		audited := auditJSONOf(t, &cli{t: t, env: e.d.env}, "--event", "client.signing_changed")
		if len(audited) != 2 || !strings.Contains(audited[0].Detail+audited[1].Detail, "userinfo ES256") {
			t.Errorf("audit of set-alg: %+v", audited)
		}

		run := &cli{t: t, env: e.d.env}
		for _, args := range [][]string{
			{"client", "add", "x", "--redirect-uri", "https://x.example/cb", "--id-token-alg", "HS256"},
			{"client", "add", "x", "--redirect-uri", "https://x.example/cb", "--id-token-alg", "none"},
			{"client", "add", "x", "--redirect-uri", "https://x.example/cb", "--userinfo-alg", "es256"},
			{"client", "set-alg", c.id, "--id-token-alg", "PS256"},
			{"client", "set-alg", c.id},
			{"client", "set-alg", c.id, "--userinfo-alg", "EdDSA", "--userinfo-json"},
		} {
			if status, _, errOut := run.run("", args...); status != 2 || errOut == "" {
				t.Errorf("mxidp %s: exit %d %q; want 2 with a message", strings.Join(args, " "), status, errOut)
			}
		}
		if status, _, errOut := run.run("", "client", "set-alg", "nobody", "--id-token-alg", "ES256"); status != 1 || !strings.Contains(errOut, "nobody") {
			t.Errorf("set-alg of an unknown client: exit %d %q", status, errOut)
		}
		if n := strings.Count(e.d.cli("client", "list"), "\n"); n != 2 {
			t.Errorf("refused commands registered clients: %d lines in client list", n)
		}
	})
}

// A dynamic client (next-gen auth) that asks for ES256 ID tokens at
// registration is told so in the answer and gets them; one that asks for
// nothing gets RS256. Attack: registrations asking for unsigned tokens, a
// MAC keyed with a secret, an unknown or differently spelled algorithm, or
// a value that is no string are refused with invalid_client_metadata and
// store nothing.
func TestDynamicClientChoosesItsAlgorithmAtRegistrationAndBadOnesAreRefused(t *testing.T) {
	eachRegistrationBackend(t, "", func(t *testing.T, e *openIDEnv) {
		redirect := "http://127.0.0.1:40123/callback"
		for _, alg := range []string{"ES256", "EdDSA", ""} {
			fields := map[string]any{"redirect_uris": []string{"http://127.0.0.1/callback"}}
			want := alg
			if alg != "" {
				fields["id_token_signed_response_alg"] = alg
			} else {
				want = "RS256"
			}
			r := e.register(metadata(fields), "application/json")
			id := wantRegistered(t, r)
			if r.json["id_token_signed_response_alg"] != want {
				t.Errorf("registration asking %q answers id_token_signed_response_alg %v, want %s", alg, r.json["id_token_signed_response_alg"], want)
			}
			cfg := &oauth2.Config{ClientID: id, RedirectURL: redirect, Endpoint: e.provider.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "profile"}}
			cfg.Endpoint.AuthStyle = oauth2.AuthStyleInParams
			verifier := oauth2.GenerateVerifier()
			b := newBrowser(t)
			// Sign in (the consent page follows), then take the code of the
			// consent the next authorization asks for.
			p := b.until(b.get(cfg.AuthCodeURL("state-"+want, oauth2.S256ChallengeOption(verifier))), redirect)
			form, ok := parseLoginForm(p)
			if !ok {
				t.Fatalf("no login form: %d %.300s", p.status, p.body)
			}
			b.until(b.submitLogin(form, "alice", alicePassword), redirect)
			code := e.authorizeAgain(t, b, cfg, verifier, redirect)
			tok, err := cfg.Exchange(e.ctx, code, oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			l := e.verifyIDToken(id, tok)
			e.wantSignedWith("dynamic client's ID token", l.rawID, want)
		}

		clients, audited := e.dynamicClients()
		for _, tc := range []struct {
			field string
			value any
		}{
			{"id_token_signed_response_alg", "none"},
			{"id_token_signed_response_alg", "HS256"},
			{"id_token_signed_response_alg", "HS512"},
			{"id_token_signed_response_alg", "RS1"},
			{"id_token_signed_response_alg", "es256"},
			{"id_token_signed_response_alg", "Ed25519"},
			{"id_token_signed_response_alg", "ES256 "},
			{"id_token_signed_response_alg", strings.Repeat("ES256", 1000)},
			{"id_token_signed_response_alg", 256},
			{"id_token_signed_response_alg", []string{"ES256"}},
			{"id_token_signed_response_alg", map[string]string{"alg": "ES256"}},
			{"id_token_signed_response_alg", true},
			{"userinfo_signed_response_alg", "none"},
			{"userinfo_signed_response_alg", "HS256"},
			{"userinfo_signed_response_alg", 1},
		} {
			r := e.register(metadata(map[string]any{tc.field: tc.value}), "application/json")
			desc, _ := r.json["error_description"].(string)
			if r.status != http.StatusBadRequest || r.json["error"] != "invalid_client_metadata" || !strings.Contains(desc, tc.field) || len(desc) > 300 {
				t.Errorf("registration with %s = %v: %s; want 400 invalid_client_metadata naming the field, briefly", tc.field, tc.value, r)
			}
		}
		if c, a := e.dynamicClients(); c != clients || a != audited {
			t.Errorf("refused registrations stored %d clients and %d audit events", c-clients, a-audited)
		}
	})
}

// Debian's python3-authlib, making Synapse's calls (testdata/authlib_rp.py),
// verifies an ES256 client's ID tokens and signed userinfo, and an EdDSA
// client's ID tokens, at_hash included, on both backends.
func TestAuthlibVerifiesES256AndEdDSAClients(t *testing.T) {
	t.Logf("authlib %s", authlibVersion(t))
	const password = "alicepassword"
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			d := newDeployment(t, backend)
			s := d.startOnFreePort()
			c := &cli{t: t, env: d.env}
			c.must(password+"\n", "user", "add", "alice", "--password-stdin", "--email", "alice@example.org", "--name", "Alice Liddell")
			for _, tc := range []struct {
				alg, method string
				flags       []string
			}{
				{"ES256", "basic", []string{"--userinfo-alg", "ES256"}},
				{"EdDSA", "post", nil},
			} {
				t.Run(tc.alg, func(t *testing.T) {
					id := "synapse-" + strings.ToLower(tc.alg)
					redirectURI := "http://" + freeAddr(t) + "/_synapse/client/oidc/callback"
					secret := clientSecretOf(t, c.must("", append([]string{"client", "add", id, "--skip-consent",
						"--redirect-uri", redirectURI, "--id-token-alg", tc.alg}, tc.flags...)...))
					args := []string{"--issuer", d.env["MXIDP_ISSUER"], "--client-id", id, "--redirect-uri", redirectURI,
						"--username", "alice", "--auth-method", tc.method, "--email", "alice@example.org", "--name", "Alice Liddell",
						"--alg", tc.alg}
					if tc.flags != nil {
						args = append(args, "--userinfo-jwt")
					}
					runAuthlibRP(t, s, secret, password, slices.Concat(authlibChecks, authlibAlgChecks(tc.alg), authlibMethodChecks(tc.method)), args...)
				})
			}
		})
	}
}

// The real Synapse (oidc_providers, configured as synapse-config prints it
// for an ES256 client) logs a user in with ES256 ID tokens and ends the
// session on an ES256 logout token, on both backends. The printed block
// lists ES256 alone, and Synapse holds to it: the same client moved to
// RS256 is refused, so the login that passed was ES256.
func TestSynapseLegacyLogsInWithES256IDTokens(t *testing.T) {
	c := newChrome(t)
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			l := startLegacy(t, backend, "--id-token-alg", "ES256")
			if !strings.Contains(l.block, `    id_token_signing_alg_values_supported: ["ES256"]`+"\n") {
				t.Fatalf("synapse-config for an ES256 client does not list ES256 alone:\n%s", l.block)
			}
			b, token, _ := l.ssoLogin(t, c, "alice")
			status, profile := l.syn.request(http.MethodGet, "/_matrix/client/v3/profile/@alice:"+synapseServerName, token, nil)
			if status != http.StatusOK || profile["displayname"] != "Alice Legacy" {
				t.Errorf("alice's Matrix profile: %d %v; want the display name from the ES256 ID token", status, profile)
			}
			b.do("log out at mxidp", chromedp.Navigate(l.e.meta.EndSession), chromedp.WaitVisible(chromedp.CSS(`form button[type=submit]`)))
			b.do("confirm", chromedp.Click(chromedp.CSS(`form button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS("h1")))
			l.waitLoggedOut(t, token, "the Matrix token after an ES256 logout token")
			if bad := oidcErrorRE.FindAllString(l.syn.log(), -1); len(bad) > 0 {
				t.Fatalf("Synapse logged errors about the provider:\n%s", strings.Join(bad, "\n"))
			}

			l.e.d.cli("client", "set-alg", "synapse", "--id-token-alg", "RS256")
			time.Sleep(1100 * time.Millisecond) // the one-second client cache
			other := c.user(t)
			other.do("open Synapse's SSO redirect", chromedp.Navigate(l.syn.URL+"/_matrix/client/v3/login/sso/redirect?"+
				url.Values{"redirectUrl": {l.client.srv.URL + "/element/callback"}}.Encode()))
			other.signIn("alice", legacyUsers["alice"])
			waitFor(t, 15*time.Second, "Synapse to refuse an RS256 ID token", func() bool {
				return strings.Contains(l.syn.log(), "Invalid id_token")
			})
			select {
			case q := <-l.client.callbacks:
				t.Errorf("Synapse let an RS256 ID token through: the Matrix client got %v", q)
			case <-time.After(time.Second):
			}
		})
	}
}

// synapse-config lists the algorithms Synapse must accept for the client:
// none for RS256 (every Synapse's default) but a hint to pick ES256, the
// client's own otherwise, and its userinfo algorithm beside it.
func TestSynapseConfigNamesTheClientsAlgorithms(t *testing.T) {
	c := newCLI(t, "sqlite")
	for id, flags := range map[string][]string{
		"rs":    nil,
		"es":    {"--id-token-alg", "ES256"},
		"mixed": {"--id-token-alg", "ES256", "--userinfo-alg", "EdDSA"},
	} {
		c.must("", append([]string{"client", "add", id, "--redirect-uri", "https://matrix.example.org/_synapse/client/oidc/callback"}, flags...)...)
	}
	for id, want := range map[string][]string{"rs": nil, "es": {"ES256"}, "mixed": {"ES256", "EdDSA"}} {
		out := c.must("", "synapse-config", "--client", id)
		parseSynapseConfig(t, out) // one valid entry
		var doc struct {
			Providers []struct {
				Algs []string `yaml:"id_token_signing_alg_values_supported"`
			} `yaml:"oidc_providers"`
		}
		if err := yaml.Unmarshal([]byte(out), &doc); err != nil || !slices.Equal(doc.Providers[0].Algs, want) {
			t.Errorf("client %s: id_token_signing_alg_values_supported %v (%v), want %v\n%s", id, doc.Providers[0].Algs, err, want, out)
		}
		if id == "rs" && !strings.Contains(out, "--id-token-alg ES256") {
			t.Errorf("the RS256 client's block does not say how to move to ES256:\n%s", out)
		}
		if !strings.Contains(out, "EdDSA only") {
			t.Errorf("client %s: the block does not say where EdDSA fits:\n%s", id, out)
		}
	}
}

// keys rotate --alg rotates that algorithm's key alone, which the running
// server publishes and keys list shows with its algorithm; an algorithm
// the ring does not offer is a usage error that changes nothing.
func TestKeysRotateOneAlgorithm(t *testing.T) {
	d := newDeployment(t, "sqlite")
	s := d.startOnFreePort()
	before := s.kids()
	out := d.cli("keys", "rotate", "--alg", "ES256")
	if strings.Count(out, "added ") != 1 || !strings.Contains(out, "added ES256 signing key") || !strings.Contains(out, "pending") {
		t.Errorf("keys rotate --alg ES256 printed %q", out)
	}
	var listed []keyJSON
	if err := json.Unmarshal([]byte(d.cli("keys", "list", "--json")), &listed); err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, k := range listed {
		count[k.Algorithm+" "+string(k.State)]++
	}
	if want := map[string]int{"RS256 active": 1, "ES256 active": 1, "ES256 pending": 1, "EdDSA active": 1}; !maps.Equal(count, want) {
		t.Errorf("keys list after rotating ES256: %v, want %v", count, want)
	}
	if text := d.cli("keys", "list"); !strings.Contains(text, "ALG") || strings.Count(text, "ES256") != 2 {
		t.Errorf("keys list:\n%s", text)
	}
	waitFor(t, 10*time.Second, "the server to publish the new key", func() bool { return len(s.kids()) == len(before)+1 })
	run := &cli{t: t, env: d.env}
	for _, bad := range []string{"HS256", "none", "es256"} {
		if status, _, errOut := run.run("", "keys", "rotate", "--alg", bad); status != 2 || !strings.Contains(errOut, "--alg") {
			t.Errorf("keys rotate --alg %s: exit %d %q; want 2 naming --alg", bad, status, errOut)
		}
	}
	if got := s.kids(); len(got) != len(before)+1 {
		t.Errorf("refused rotations changed the published keys: %v", got)
	}
}
