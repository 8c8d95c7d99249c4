package main

import (
	"database/sql"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mxidp/mxidp/storage/storagetest"
	"golang.org/x/oauth2"
)

// TestNextGenLoginProvisionsTheUserAndDeviceThenLogoutDeletesIt: against
// Synapse 1.160 delegating to mxidp, a login with the Matrix scopes
// creates the user (with the platform's display name) and the device in
// Synapse before the token is handed out; Synapse takes the token as that
// user and device; a refresh keeps the device; revoking the refresh token
// (how a client logs out) deletes the device in Synapse and kills the
// token there.
func TestNextGenLoginProvisionsTheUserAndDeviceThenLogoutDeletesIt(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			n := startNextGen(t, backend, "")
			afterLogout := "http://127.0.0.1:9/element/logged-out"
			c := n.addClient("element", "--post-logout-redirect-uri", afterLogout)
			// alice has a device from before next-gen auth (an SSO login):
			// her first login here removes it, since its tokens are dead.
			for _, call := range []struct {
				path string
				body map[string]any
			}{{"provision_user", map[string]any{"localpart": "alice"}}, {"upsert_device", map[string]any{"localpart": "alice", "device_id": "OLDSSODEVICE"}}} {
				if status, got := n.syn.request(http.MethodPost, "/_synapse/mas/"+call.path, n.secret, call.body); status != http.StatusCreated {
					t.Fatalf("%s at Synapse: %d %v", call.path, status, got)
				}
			}
			b := newBrowser(t)
			l := n.matrixLoginIn(b, c, "ELEMENTDEV1")
			tok := l.token
			if status, user, device := n.syn.whoami(tok.AccessToken); status != http.StatusOK || user != "@alice:"+n.syn.ServerName || device != "ELEMENTDEV1" {
				t.Fatalf("whoami = %d %q %q; want 200 @alice:%s ELEMENTDEV1", status, user, device, n.syn.ServerName)
			}
			if got := n.syn.devices("alice"); !slices.Equal(got, []string{"ELEMENTDEV1"}) {
				t.Errorf("Synapse's devices of alice: %v", got)
			}
			if status, got := n.syn.request(http.MethodGet, "/_matrix/client/v3/profile/@alice:"+n.syn.ServerName+"/displayname", tok.AccessToken, nil); status != http.StatusOK || got["displayname"] != "alice" {
				t.Errorf("display name in Synapse: %d %v; want alice's own, set when Synapse created her, kept", status, got)
			}
			status, got := n.introspect(n.secret, tok.AccessToken)
			scope, _ := got["scope"].(string)
			if status != http.StatusOK || got["active"] != true || got["username"] != "alice" || got["device_id"] != "ELEMENTDEV1" ||
				!strings.Contains(" "+scope+" ", " urn:matrix:client:api:* ") || !strings.Contains(scope, "urn:matrix:org.matrix.msc2967.client:device:ELEMENTDEV1") {
				t.Errorf("introspection for Synapse: %d %v", status, got)
			}
			if exp, ok := got["expires_in"].(float64); !ok || exp <= 0 || exp > 3600 || exp != float64(int64(exp)) {
				t.Errorf("expires_in = %v; want a whole number of seconds up to an hour", got["expires_in"])
			}

			// Signing out of mxidp in the browser ends the browser's session,
			// not the Matrix device that began in it.
			p := b.get(n.meta.EndSession + "?" + url.Values{"id_token_hint": {l.rawID}, "post_logout_redirect_uri": {afterLogout}}.Encode())
			if p.status != http.StatusFound || p.location != afterLogout {
				t.Fatalf("end_session: %d Location %q", p.status, p.location)
			}
			time.Sleep(500 * time.Millisecond) // a cleanup round, were it to delete the device
			if status, _, _ := n.syn.whoami(tok.AccessToken); status != http.StatusOK || len(n.syn.devices("alice")) != 1 {
				t.Errorf("after the browser signed out of mxidp: whoami %d, devices %v; want the device to stay", status, n.syn.devices("alice"))
			}

			cfg := n.config(c, oauth2.AuthStyleInHeader, matrixScopes("ELEMENTDEV1")...)
			refreshed, err := cfg.TokenSource(n.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
			if err != nil {
				t.Fatalf("refresh: %v", err)
			}
			if status, _, device := n.syn.whoami(refreshed.AccessToken); status != http.StatusOK || device != "ELEMENTDEV1" {
				t.Errorf("whoami after refresh = %d %q", status, device)
			}

			form := url.Values{"token": {refreshed.RefreshToken}, "token_type_hint": {"refresh_token"}}
			if status, _, body := n.postForm(n.meta.Revocation, form, c.id, c.secret); status != http.StatusOK {
				t.Fatalf("revocation: %d %s", status, body)
			}
			waitFor(t, 10*time.Second, "the device deleted in Synapse", func() bool { return len(n.syn.devices("alice")) == 0 })
			for _, access := range []string{tok.AccessToken, refreshed.AccessToken} {
				if status, got := n.syn.request(http.MethodGet, "/_matrix/client/v3/account/whoami", access, nil); status != http.StatusUnauthorized || got["errcode"] != "M_UNKNOWN_TOKEN" {
					t.Errorf("whoami after logout = %d %v; want 401 M_UNKNOWN_TOKEN", status, got)
				}
			}
			if _, got := n.introspect(n.secret, refreshed.AccessToken); got["active"] != false || len(got) != 1 {
				t.Errorf("introspection after logout: %v; want {active: false} alone", got)
			}
		})
	}
}

// TestSynapseIntrospectionAnswersSynapseOnly: the door Synapse introspects
// through takes the shared secret and nothing else, says nothing about a
// token to anyone without it, says only "inactive" of tokens that are not
// live Matrix tokens, and Synapse refuses a token whose device is gone.
func TestSynapseIntrospectionAnswersSynapseOnly(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			n := startNextGen(t, backend, "")
			c := n.addClient("element")
			tok := n.matrixLogin(c, "DOORDEVICE1")
			if status, got := n.syn.request(http.MethodGet, "/_matrix/client/v3/profile/@alice:"+n.syn.ServerName+"/displayname", tok.AccessToken, nil); status != http.StatusOK || got["displayname"] != aliceName {
				t.Errorf("display name Synapse created alice with: %d %v; want %q", status, got, aliceName)
			}
			for _, bearer := range []string{"", n.secret + "x", n.secret[:len(n.secret)-1], strings.ToUpper(n.secret), c.secret} {
				status, got := n.introspect(bearer, tok.AccessToken)
				if status != http.StatusUnauthorized || got["error"] != "invalid_client" || got["active"] != nil || got["username"] != nil {
					t.Errorf("introspection with bearer %q…: %d %v; want 401 invalid_client and nothing about the token", prefix(bearer), status, got)
				}
			}
			// Basic authentication with the secret is not the door either.
			req, _ := http.NewRequest(http.MethodPost, n.issuer+"/oauth2/introspect", strings.NewReader("token="+url.QueryEscape(tok.AccessToken)))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth("synapse", n.secret)
			if status, _, body := n.send(req); status != http.StatusUnauthorized {
				t.Errorf("Basic authentication: %d %s", status, body)
			}
			req, _ = http.NewRequest(http.MethodGet, n.issuer+"/oauth2/introspect?token="+url.QueryEscape(tok.AccessToken), nil)
			req.Header.Set("Authorization", "Bearer "+n.secret)
			if status, _, body := n.send(req); status != http.StatusMethodNotAllowed || strings.Contains(string(body), "alice") {
				t.Errorf("GET: %d %s", status, body)
			}
			if status, got := n.introspect(n.secret, ""); status != http.StatusBadRequest || got["error"] != "invalid_request" {
				t.Errorf("no token: %d %v", status, got)
			}

			// Tokens that are not live Matrix access tokens are inactive.
			plain := n.exchange(n.config(c, oauth2.AuthStyleInHeader, "openid", "profile"), n.authorize(newBrowser(t), n.config(c, oauth2.AuthStyleInHeader, "openid", "profile"))).token
			for what, token := range map[string]string{
				"garbage": "not-a-token", "a refresh token": tok.RefreshToken, "an access token without the Matrix scopes": plain.AccessToken,
				"the shared secret": n.secret, "an access token with a byte changed": tok.AccessToken[:10] + flip(tok.AccessToken[10]) + tok.AccessToken[11:],
			} {
				if status, got := n.introspect(n.secret, token); status != http.StatusOK || got["active"] != false || len(got) != 1 {
					t.Errorf("%s: %d %v; want 200 {active: false} alone", what, status, got)
				}
			}
			if status, got := n.syn.request(http.MethodGet, "/_matrix/client/v3/account/whoami", plain.AccessToken, nil); status != http.StatusUnauthorized || got["errcode"] != "M_UNKNOWN_TOKEN" {
				t.Errorf("Synapse took a token without the Matrix scopes: %d %v", status, got)
			}

			// A device ID the user's live login holds cannot be taken by
			// another login: it would receive what is sent to that device.
			cfg := n.config(c, oauth2.AuthStyleInHeader, matrixScopes("DOORDEVICE1")...)
			r := n.authorize(newBrowser(t), cfg)
			_, err := cfg.Exchange(n.ctx, r.code, oauth2.VerifierOption(r.verifier))
			wantTokenError(t, "a second login as the same device", err, "invalid_grant", http.StatusBadRequest)
			if status, _, _ := n.syn.whoami(tok.AccessToken); status != http.StatusOK {
				t.Errorf("the first login stopped working after the refused takeover: %d", status)
			}
			// Bad device scopes are refused before anyone logs in.
			for _, scope := range []string{"urn:matrix:client:device:has/slash", "urn:matrix:client:device:" + strings.Repeat("A", 256),
				"urn:matrix:client:device:ONE urn:matrix:client:device:TWO"} {
				cfg := n.config(c, oauth2.AuthStyleInHeader, "openid", "urn:matrix:client:api:*", scope)
				u, _ := newBrowser(t).authorize(cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), c.redirectURI, "alice")
				if u.Query().Get("error") != "invalid_scope" {
					t.Errorf("scope %.60q: redirected with %s; want error=invalid_scope", scope, u.RawQuery)
				}
			}

			// Synapse refuses a token whose device was deleted there, whatever
			// mxidp says of the token.
			status, _ := n.syn.request(http.MethodPost, "/_synapse/mas/delete_device", n.secret,
				map[string]string{"localpart": "alice", "device_id": "DOORDEVICE1"})
			if status != http.StatusNoContent {
				t.Fatalf("delete_device at Synapse: %d", status)
			}
			if status, got := n.syn.request(http.MethodGet, "/_matrix/client/v3/account/whoami", tok.AccessToken, nil); status != http.StatusUnauthorized || got["errcode"] != "M_UNKNOWN_TOKEN" {
				t.Errorf("whoami with a deleted device's token = %d %v; want 401 M_UNKNOWN_TOKEN", status, got)
			}
		})
	}
}

func prefix(s string) string {
	if len(s) > 4 {
		return s[:4]
	}
	return s
}

func flip(b byte) string {
	if b == 'A' {
		return "B"
	}
	return "A"
}

// TestDisabledUserIsLockedOutOfSynapseWithEveryDevice: `mxidp user
// disable`, and a platform that disables its user, end the user's Matrix
// sessions: every device goes from Synapse, the user is locked there, the
// tokens stop working; the platform's within users.platform.check_interval.
func TestDisabledUserIsLockedOutOfSynapseWithEveryDevice(t *testing.T) {
	t.Run("builtin", func(t *testing.T) {
		for _, backend := range storagetest.Backends {
			t.Run(backend, func(t *testing.T) {
				n := startNextGen(t, backend, "")
				c := n.addClient("element")
				toks := []*oauth2.Token{n.matrixLogin(c, "PHONEDEVICE"), n.matrixLogin(c, "LAPTOPDEVICE")}
				if got := n.syn.devices("alice"); len(got) != 2 {
					t.Fatalf("devices before: %v", got)
				}
				n.d.cli("user", "disable", "alice")
				n.wantLockedOut(toks, "alice", 15*time.Second)
			})
		}
	})
	t.Run("platform", func(t *testing.T) {
		for _, backend := range storagetest.Backends {
			t.Run(backend, func(t *testing.T) {
				users := platformUsers(t)[:1]
				n, db := startNextGenOnDjango(t, backend, users, "1s", "")
				c := n.addClient("element")
				cfg := n.config(c, oauth2.AuthStyleInHeader, matrixScopes("PLATFORMDEV")...)
				tok := n.exchange(cfg, n.authorizeWith(newBrowser(t), cfg, randomAlnum(30), []string{users[0].password})).token
				if status, user, _ := n.syn.whoami(tok.AccessToken); status != http.StatusOK || user != "@alice:"+n.syn.ServerName {
					t.Fatalf("whoami = %d %q", status, user)
				}
				if _, err := db.Exec(`UPDATE auth_user SET is_active = FALSE WHERE id = 1`); err != nil {
					t.Fatal(err)
				}
				n.wantLockedOut([]*oauth2.Token{tok}, "alice", 10*time.Second)
			})
		}
	})
}

// wantLockedOut waits for the user's devices to go from Synapse and checks
// that the user is locked there and the tokens are dead.
func (n *nextGenEnv) wantLockedOut(toks []*oauth2.Token, localpart string, within time.Duration) {
	n.t.Helper()
	began := time.Now()
	waitFor(n.t, within, "every device removed from Synapse", func() bool { return len(n.syn.devices(localpart)) == 0 })
	n.t.Logf("devices removed %v after the user was disabled", time.Since(began).Round(100*time.Millisecond))
	for _, tok := range toks {
		if status, got := n.syn.request(http.MethodGet, "/_matrix/client/v3/account/whoami", tok.AccessToken, nil); status != http.StatusUnauthorized || got["errcode"] != "M_UNKNOWN_TOKEN" {
			n.t.Errorf("whoami of a disabled user = %d %v; want 401 M_UNKNOWN_TOKEN", status, got)
		}
	}
	waitFor(n.t, 5*time.Second, "the user locked in Synapse", func() bool { return n.syn.userLocked(localpart) })
}

// userLocked reads Synapse's own users table.
func (s *synapse) userLocked(localpart string) bool {
	s.t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(s.Dir, "homeserver.db")+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		s.t.Fatal(err)
	}
	defer db.Close()
	var locked bool
	if err := db.QueryRow(`SELECT locked FROM users WHERE name = ?`, "@"+localpart+":"+s.ServerName).Scan(&locked); err != nil {
		s.t.Fatalf("read Synapse's users table: %v", err)
	}
	return locked
}

// TestNextGenAcrossTwoInstances: two instances on one PostgreSQL behind
// one issuer serve one Synapse: the user signs in at one, the code is
// exchanged (and the device created in Synapse) at the other, Synapse
// introspects at the first, and a logout at the second deletes the
// device.
func TestNextGenAcrossTwoInstances(t *testing.T) {
	if !slices.Contains(storagetest.Backends, "postgres") {
		t.Fatal("several instances need PostgreSQL (.ci/with-postgres)")
	}
	n := startNextGen(t, "postgres", "")
	envB := map[string]string{}
	for k, v := range n.d.env {
		envB[k] = v
	}
	envB["MXIDP_LISTEN"] = "127.0.0.1:0" // another port, the same issuer
	b := (&deployment{t: t, env: envB}).start()

	c := n.addClient("element")
	cfg := n.config(c, oauth2.AuthStyleInHeader, matrixScopes("TWOINSTANCES")...)
	r := n.authorize(newBrowser(t), cfg)
	atB := *cfg
	atB.Endpoint.TokenURL = b.url + "/oauth/token"
	tok, err := atB.Exchange(n.ctx, r.code, oauth2.VerifierOption(r.verifier))
	if err != nil {
		t.Fatalf("exchange at the second instance: %v", err)
	}
	if status, user, device := n.syn.whoami(tok.AccessToken); status != http.StatusOK || user != "@alice:"+n.syn.ServerName || device != "TWOINSTANCES" {
		t.Fatalf("whoami (Synapse introspects at the first instance) = %d %q %q", status, user, device)
	}
	form := url.Values{"token": {tok.RefreshToken}, "token_type_hint": {"refresh_token"}}
	if status, _, body := n.postForm(b.url+"/revoke", form, c.id, c.secret); status != http.StatusOK {
		t.Fatalf("revocation at the second instance: %d %s", status, body)
	}
	waitFor(t, 10*time.Second, "the device deleted in Synapse", func() bool { return len(n.syn.devices("alice")) == 0 })
	if status, _, _ := n.syn.whoami(tok.AccessToken); status != http.StatusUnauthorized {
		t.Errorf("whoami after the logout at the other instance: %d", status)
	}
}

// TestAccountPageEndsADeviceInSynapseAndAllowsACrossSigningReset: the
// account page against the real Synapse: ending a session there deletes
// the device in Synapse and kills its token; confirming a cross-signing
// reset is accepted by Synapse's allow_cross_signing_reset.
func TestAccountPageEndsADeviceInSynapseAndAllowsACrossSigningReset(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			n := startNextGen(t, backend, "")
			c := n.addClient("element")
			b := newBrowser(t)
			phone := n.matrixLoginIn(b, c, "PHONEDEVICE").token
			laptop := n.matrixLoginIn(b, c, "LAPTOPDEVICE").token
			account := n.issuer + "/account"

			list := b.get(account)
			wantPage(t, "the account page", list, http.StatusOK, "PHONEDEVICE", "LAPTOPDEVICE", "@alice:"+n.syn.ServerName)
			confirm := b.get(account + "?" + url.Values{"action": {"org.matrix.session_end"}, "device_id": {"PHONEDEVICE"}}.Encode())
			f := postFormOf(t, confirm, "end")
			wantPage(t, "ending the session", b.post(f.action, f.fields), http.StatusOK, "PHONEDEVICE")
			waitFor(t, 10*time.Second, "the phone's device deleted in Synapse", func() bool {
				return slices.Equal(n.syn.devices("alice"), []string{"LAPTOPDEVICE"})
			})
			if status, _, _ := n.syn.whoami(phone.AccessToken); status != http.StatusUnauthorized {
				t.Errorf("whoami with the ended session's token: %d", status)
			}
			if status, _, _ := n.syn.whoami(laptop.AccessToken); status != http.StatusOK {
				t.Errorf("whoami with the other session's token: %d", status)
			}

			reset := b.get(account + "?action=org.matrix.cross_signing_reset")
			f = postFormOf(t, reset, "cross_signing_reset")
			wantPage(t, "allowing the reset in Synapse", b.post(f.action, f.fields), http.StatusOK, "within 10 minutes")
		})
	}
}

// TestNewAccountWithADepartedUsersNameInheritsNoMatrixAccount: Synapse
// knows users by localpart alone, so an account given the username of an
// earlier one (deleted and added again, or reused by the platform) must
// not become the earlier one's Matrix user: its OAuth and password logins
// are refused until the operator releases the localpart.
func TestNewAccountWithADepartedUsersNameInheritsNoMatrixAccount(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			n := startNextGen(t, backend, "")
			c := n.addClient("element")
			tok := n.matrixLogin(c, "OLDALICEDEV")
			status, room := n.syn.request(http.MethodPost, "/_matrix/client/v3/createRoom", tok.AccessToken, map[string]any{"name": "alice's secrets"})
			if status != http.StatusOK {
				t.Fatalf("createRoom: %d %v", status, room)
			}
			n.d.cli("user", "delete", "alice")
			waitFor(t, 10*time.Second, "the deleted user's devices removed", func() bool { return len(n.syn.devices("alice")) == 0 })
			(&cli{t: t, env: n.d.env}).must(alicePassword+"\n", "user", "add", "alice", "--password-stdin")

			cfg := n.config(c, oauth2.AuthStyleInHeader, matrixScopes("NEWALICEDEV")...)
			r := n.authorize(newBrowser(t), cfg)
			_, err := cfg.Exchange(n.ctx, r.code, oauth2.VerifierOption(r.verifier))
			wantTokenError(t, "the new alice's OAuth login", err, "access_denied", http.StatusBadRequest, http.StatusForbidden)
			status, got := n.compatCall(http.MethodPost, "/_matrix/client/v3/login", "", passwordLoginBody("alice", alicePassword, nil))
			if status != http.StatusForbidden || got["errcode"] != "M_FORBIDDEN" || got["access_token"] != nil {
				t.Errorf("the new alice's password login: %d %v; want 403 M_FORBIDDEN", status, got)
			}
			if len(n.syn.devices("alice")) != 0 {
				t.Errorf("the new account got a device in the old alice's Matrix account: %v", n.syn.devices("alice"))
			}
			if got := auditJSONOf(t, &cli{t: t, env: n.d.env}, "--event", "matrix.localpart_taken"); len(got) != 2 {
				t.Errorf("%d matrix.localpart_taken audit events, want 2", len(got))
			}

			// The operator says it is the same person: the next login gets it.
			n.d.cli("user", "release-matrix-id", "alice")
			status, got = n.compatCall(http.MethodPost, "/_matrix/client/v3/login", "", passwordLoginBody("alice", alicePassword, nil))
			if token, _ := got["access_token"].(string); status != http.StatusOK || token == "" {
				t.Fatalf("login after the release: %d %v", status, got)
			} else {
				noteSecret(token)
			}
		})
	}
}
