package main

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Attacks on the doors where clients authenticate: the token endpoint,
// introspection and revocation. The attacker is a registered client that
// wants another client's users, or anyone probing for client IDs.

// rawAnswer is one HTTP answer, headers and all.
type rawAnswer struct {
	status int
	header http.Header
	body   []byte
}

// post sends a form to endpoint with Basic credentials when user is set,
// and notes any token in the answer as a secret.
func (e *openIDEnv) post(endpoint string, form url.Values, user, pass string) rawAnswer {
	e.t.Helper()
	status, h, body := e.postForm(endpoint, form, user, pass)
	var tokens map[string]any
	if json.Unmarshal(body, &tokens) == nil {
		for _, k := range []string{"access_token", "refresh_token", "id_token"} {
			if s, ok := tokens[k].(string); ok {
				noteSecret(s)
			}
		}
	}
	return rawAnswer{status, h, body}
}

// comparable is the answer without what differs between any two requests:
// the Date and the request ID.
func (a rawAnswer) comparable() rawAnswer {
	h := a.header.Clone()
	h.Del("Date")
	h.Del("X-Request-Id")
	return rawAnswer{a.status, h, a.body}
}

func (a rawAnswer) equal(b rawAnswer) bool {
	a, b = a.comparable(), b.comparable()
	return a.status == b.status && bytes.Equal(a.body, b.body) &&
		maps.EqualFunc(a.header, b.header, func(x, y []string) bool { return slices.Equal(x, y) })
}

// offlineLogin signs alice in at client c with a refresh token.
func (e *openIDEnv) offlineLogin(c rpClient) login {
	e.t.Helper()
	cfg := e.config(c, oauth2.AuthStyleInHeader, oidc.ScopeOpenID, "profile", "email", oidc.ScopeOfflineAccess)
	l := e.exchange(cfg, e.authorize(newBrowser(e.t), cfg))
	if l.token.RefreshToken == "" {
		e.t.Fatal("no refresh token with offline_access")
	}
	return l
}

// Client B holds a token client A was given (it leaked, or B is A's
// relying party's neighbour on a shared proxy) and asks introspection
// about it: for B the token is inactive, with nothing else said (neither
// alice's name nor her e-mail address); refresh tokens likewise.
func TestIntrospectionRefusesAnotherClientsToken(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		a, b := e.addClient("app-a"), e.addClient("app-b")
		l := e.offlineLogin(a)

		own := e.post(e.meta.Introspection, url.Values{"token": {l.token.AccessToken}}, a.id, a.secret)
		var got map[string]any
		if own.status != http.StatusOK || json.Unmarshal(own.body, &got) != nil || got["active"] != true || got["email"] != aliceEmail {
			t.Fatalf("client A introspecting its own token: %d %s; want it active with alice's claims", own.status, own.body)
		}
		for what, token := range map[string]string{"access token": l.token.AccessToken, "refresh token": l.token.RefreshToken} {
			other := e.post(e.meta.Introspection, url.Values{"token": {token}}, b.id, b.secret)
			if other.status != http.StatusOK || strings.TrimSpace(string(other.body)) != `{"active":false}` {
				t.Errorf("client B introspecting client A's %s: %d %s; want 200 {\"active\":false} and nothing else", what, other.status, other.body)
			}
		}
		// A's refresh token is no access token, for A either.
		if own := e.post(e.meta.Introspection, url.Values{"token": {l.token.RefreshToken}}, a.id, a.secret); strings.TrimSpace(string(own.body)) != `{"active":false}` {
			t.Errorf("client A introspecting its refresh token: %d %s; want {\"active\":false}", own.status, own.body)
		}
	})
}

// RFC 6749 §5.1: no answer of the token endpoint, tokens or refusal, may
// be kept by a cache between client and server; nor an introspection
// answer, which describes a token.
func TestTokenAndIntrospectionAnswersRefuseCaching(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		c := e.addClient("synapse")
		cfg := e.config(c, oauth2.AuthStyleInHeader)
		r := e.authorize(newBrowser(t), cfg)
		exchange := url.Values{"grant_type": {"authorization_code"}, "code": {r.code}, "redirect_uri": {c.redirectURI}, "code_verifier": {r.verifier}}
		tokens := e.post(e.meta.Token, exchange, c.id, c.secret)
		var issued struct {
			AccessToken string `json:"access_token"`
		}
		if tokens.status != http.StatusOK || json.Unmarshal(tokens.body, &issued) != nil || issued.AccessToken == "" {
			t.Fatalf("code exchange: %d %s", tokens.status, tokens.body)
		}
		answers := map[string]rawAnswer{
			"tokens":                   tokens,
			"replayed code":            e.post(e.meta.Token, exchange, c.id, c.secret),
			"wrong secret":             e.post(e.meta.Token, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}, c.id, "wrong-"+c.secret),
			"no grant_type":            e.post(e.meta.Token, url.Values{"code": {"x"}}, c.id, c.secret),
			"unsupported grant":        e.post(e.meta.Token, url.Values{"grant_type": {"client_credentials"}}, c.id, c.secret),
			"introspection, active":    e.post(e.meta.Introspection, url.Values{"token": {issued.AccessToken}}, c.id, c.secret),
			"introspection, inactive":  e.post(e.meta.Introspection, url.Values{"token": {"not-a-token"}}, c.id, c.secret),
			"introspection, refused":   e.post(e.meta.Introspection, url.Values{"token": {issued.AccessToken}}, c.id, "wrong-"+c.secret),
			"revocation":               e.post(e.meta.Revocation, url.Values{"token": {"not-a-token"}}, c.id, c.secret),
			"revocation, wrong secret": e.post(e.meta.Revocation, url.Values{"token": {"not-a-token"}}, c.id, "wrong-"+c.secret),
		}
		for what, a := range answers {
			if a.header.Get("Cache-Control") != "no-store" || a.header.Get("Pragma") != "no-cache" {
				t.Errorf("%s (%d): Cache-Control %q, Pragma %q; want no-store and no-cache", what, a.status,
					a.header.Get("Cache-Control"), a.header.Get("Pragma"))
			}
		}
	})
}

// The token endpoint serves the grants discovery advertises and no other:
// the JWT bearer grant (RFC 7523), which the library carries, answered a
// malformed assertion with a 500. Each of these is a 400
// unsupported_grant_type JSON error now, whoever asks.
func TestTokenEndpointRefusesGrantsDiscoveryDoesNotList(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		var d struct {
			Grants []string `json:"grant_types_supported"`
		}
		if err := e.provider.Claims(&d); err != nil || !slices.Equal(d.Grants, []string{"authorization_code", "refresh_token"}) {
			t.Fatalf("discovery grant_types_supported %v (%v); want authorization_code and refresh_token", d.Grants, err)
		}
		c := e.addClient("synapse")
		const jwtBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"
		for _, tc := range []struct {
			name       string
			form       url.Values
			user, pass string
		}{
			{"jwt-bearer, garbage assertion", url.Values{"grant_type": {jwtBearer}, "assertion": {"garbage"}}, "", ""},
			{"jwt-bearer, three garbage parts", url.Values{"grant_type": {jwtBearer}, "assertion": {"a.b.c"}}, "", ""},
			{"jwt-bearer, unsigned JWT", url.Values{"grant_type": {jwtBearer}, "assertion": {"eyJhbGciOiJub25lIn0.eyJpc3MiOiJzeW5hcHNlIn0."}}, "", ""},
			{"jwt-bearer, authenticated client", url.Values{"grant_type": {jwtBearer}, "assertion": {"garbage"}}, c.id, c.secret},
			{"client_credentials", url.Values{"grant_type": {"client_credentials"}}, c.id, c.secret},
			{"password", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"x"}}, c.id, c.secret},
			{"token exchange", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {"x"},
				"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"}}, c.id, c.secret},
			{"device code", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {"x"}}, c.id, c.secret},
		} {
			a := e.post(e.meta.Token, tc.form, tc.user, tc.pass)
			var got struct {
				Error string `json:"error"`
			}
			if a.status != http.StatusBadRequest || !isJSON(a.header) || json.Unmarshal(a.body, &got) != nil || got.Error != "unsupported_grant_type" {
				t.Errorf("%s: %d %q %s; want 400 JSON unsupported_grant_type", tc.name, a.status, a.header.Get("Content-Type"), a.body)
			}
		}
	})
}

// Probing for client IDs: an unknown client and a registered one with a
// wrong (or no) secret get the same answer, byte for byte, headers other
// than Date and the request ID included, at the token endpoint (both
// grants), introspection and revocation, with Basic and with form
// credentials; and take about as long.
func TestClientRefusalsDoNotTellUnknownClientsFromWrongSecrets(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		c := e.addClient("synapse")
		l := e.offlineLogin(c)
		const unknown = "no-such-client"
		wrong := "wrong-" + c.secret
		requests := map[string]url.Values{
			"token, refresh_token":      {"grant_type": {"refresh_token"}, "refresh_token": {l.token.RefreshToken}},
			"token, authorization_code": {"grant_type": {"authorization_code"}, "code": {"not-a-code"}, "redirect_uri": {c.redirectURI}},
			"introspection":             {"token": {l.token.AccessToken}},
			"revocation":                {"token": {l.token.AccessToken}},
		}
		endpoints := map[string]string{"token, refresh_token": e.meta.Token, "token, authorization_code": e.meta.Token,
			"introspection": e.meta.Introspection, "revocation": e.meta.Revocation}
		for what, form := range requests {
			endpoint := endpoints[what]
			withForm := func(id, secret string) url.Values {
				f := maps.Clone(form)
				f.Set("client_id", id)
				if secret != "" {
					f.Set("client_secret", secret)
				}
				return f
			}
			pairs := map[string][2]rawAnswer{
				"basic":     {e.post(endpoint, form, unknown, wrong), e.post(endpoint, form, c.id, wrong)},
				"form":      {e.post(endpoint, withForm(unknown, wrong), "", ""), e.post(endpoint, withForm(c.id, wrong), "", "")},
				"no secret": {e.post(endpoint, withForm(unknown, ""), "", ""), e.post(endpoint, withForm(c.id, ""), "", "")},
			}
			for style, p := range pairs {
				if !p[0].equal(p[1]) {
					t.Errorf("%s, %s: an unknown client gets %d %v %s\nbut a wrong secret %d %v %s", what, style,
						p[0].status, p[0].comparable().header, p[0].body, p[1].status, p[1].comparable().header, p[1].body)
				}
				if p[1].status == http.StatusOK {
					t.Errorf("%s, %s: a wrong secret was accepted: %s", what, style, p[1].body)
				}
			}
		}
		// The tokens were not touched by any of this.
		e.wantUserinfoOK("the access token after the probes", l.token.AccessToken)

		// Time: alternate the two refusals at introspection and compare
		// each back-to-back pair; the median ratio stays near 1.
		var ratios []float64
		for range 41 {
			start := time.Now()
			e.post(e.meta.Introspection, requests["introspection"], unknown, wrong)
			u := time.Since(start)
			start = time.Now()
			e.post(e.meta.Introspection, requests["introspection"], c.id, wrong)
			ratios = append(ratios, float64(u)/float64(time.Since(start)))
		}
		sort.Float64s(ratios)
		if m := ratios[len(ratios)/2]; m < 0.5 || m > 2 {
			t.Errorf("an unknown client is refused %.2f times as long as a wrong secret (median of %d pairs); want about 1", m, len(ratios))
		}
	})
}

// Replay without client authentication: whoever holds a used code (from a
// log, a referrer) and sends it without the client's secret, or under a
// public client's ID, must not make the login's tokens go. Only the
// authenticated client's replay revokes them.
func TestReplayedCodeWithoutClientAuthenticationRevokesNothing(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		c := e.addClient("synapse")
		e.addClient("app", "--public")
		cfg := e.config(c, oauth2.AuthStyleInHeader)
		r := e.authorize(newBrowser(t), cfg)
		l := e.exchange(cfg, r)
		for name, form := range map[string]url.Values{
			"no client at all":              {},
			"the client without its secret": {"client_id": {c.id}},
			"a public client's ID":          {"client_id": {"app"}, "code_verifier": {r.verifier}},
			"a wrong secret":                {"client_id": {c.id}, "client_secret": {"wrong"}},
		} {
			form.Set("grant_type", "authorization_code")
			form.Set("code", r.code)
			form.Set("redirect_uri", c.redirectURI)
			if status, _, body := e.postForm(e.meta.Token, form, "", ""); status < 400 {
				t.Errorf("replay with %s: %d %s, want a refusal", name, status, body)
			}
			e.wantUserinfoOK("the access token after a replay with "+name, l.token.AccessToken)
		}
		// The client's own replay is the one that revokes (RFC 6749 §4.1.2).
		if _, err := cfg.Exchange(e.ctx, r.code, oauth2.VerifierOption(r.verifier)); err == nil {
			t.Fatal("the client's replay succeeded")
		}
		e.wantUserinfoRefused("the access token after the client's own replay", l.token.AccessToken)
	})
}

// Refresh-token reuse, triggered by someone else: an old (rotated) refresh
// token sent under a public client's ID, another confidential client's
// credentials, or no credentials at all must not revoke the login it
// belongs to. Only its own client's reuse does (the family is revoked, as
// the stolen copy and the real one cannot be told apart).
func TestReusedRefreshTokenFromAnotherClientRevokesNothing(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		c := e.addClient("synapse")
		other := e.addClient("other")
		e.addClient("app", "--public")
		cfg := e.config(c, oauth2.AuthStyleInHeader, oidc.ScopeOpenID, "profile", oidc.ScopeOfflineAccess)
		l := e.exchange(cfg, e.authorize(newBrowser(t), cfg))
		old := l.token.RefreshToken
		current, err := cfg.TokenSource(e.ctx, &oauth2.Token{RefreshToken: old}).Token()
		if err != nil || current.RefreshToken == "" {
			t.Fatalf("refresh: %v", err)
		}
		noteSecret(current.RefreshToken)
		noteSecret(current.AccessToken)
		for name, attempt := range map[string]struct {
			form       url.Values
			user, pass string
		}{
			"a public client's ID":          {form: url.Values{"client_id": {"app"}}},
			"another client's credentials":  {user: other.id, pass: other.secret},
			"no client at all":              {},
			"the client without its secret": {form: url.Values{"client_id": {c.id}}},
		} {
			form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {old}}
			for k, v := range attempt.form {
				form[k] = v
			}
			if status, _, body := e.postForm(e.meta.Token, form, attempt.user, attempt.pass); status < 400 {
				t.Errorf("the old refresh token under %s: %d %s, want a refusal", name, status, body)
			}
			e.wantUserinfoOK("the current access token after a reuse under "+name, current.AccessToken)
		}
		next, err := cfg.TokenSource(e.ctx, &oauth2.Token{RefreshToken: current.RefreshToken}).Token()
		if err != nil {
			t.Fatalf("the current refresh token after the others' attempts: %v", err)
		}
		// The client's own reuse revokes the family.
		if _, err := cfg.TokenSource(e.ctx, &oauth2.Token{RefreshToken: old}).Token(); err == nil {
			t.Fatal("the client's reuse of an old refresh token succeeded")
		}
		e.wantUserinfoRefused("the newest access token after the client's own reuse", next.AccessToken)
	})
}
