package main

// Attacks on next-gen auth's flow (the authorization and token endpoints
// with the Matrix scopes, the devices mxidp creates in Synapse), on
// Synapse's introspection door and on the device cleanup, against a
// started mxidp on every backend. Where the outcome is in Synapse (a
// device, its keys, an admin API), the Synapse is the real one
// (startNextGen); where it is in what mxidp tells Synapse, the stand-in of
// account_e2e_test.go, which can be made to refuse.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/oauth2"

	"github.com/mxidp/mxidp/storage/storagetest"
)

// registeredRedirect is where the registered native clients of these
// tests are sent back: metadata's loopback redirect, on a port of their
// choosing.
const registeredRedirect = "http://127.0.0.1:40123/callback"

// codeGrant is a code a registered client got, with what redeems it.
type codeGrant struct {
	cfg      *oauth2.Config
	code     string
	verifier string
}

// registeredCode signs alice in through the registered client in browser b
// (the password when b has no session), allows it on the consent page and
// returns the code.
func (e *openIDEnv) registeredCode(b *browser, clientID string, scopes ...string) codeGrant {
	e.t.Helper()
	cfg := &oauth2.Config{ClientID: clientID, RedirectURL: registeredRedirect, Endpoint: e.provider.Endpoint(), Scopes: scopes}
	cfg.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	verifier := oauth2.GenerateVerifier()
	p := b.until(b.get(cfg.AuthCodeURL("state-"+randomAlnum(8), oauth2.S256ChallengeOption(verifier))), registeredRedirect)
	if login, ok := parseLoginForm(p); ok {
		p = b.until(b.submitLogin(login, "alice", alicePassword), registeredRedirect)
	}
	consent, ok := consentPage(p)
	if !ok {
		e.t.Fatalf("no consent page for the registered client: %d Location %q\n%.2000s", p.status, p.location, p.body)
	}
	p = b.until(b.decide(consent, "allow", false), registeredRedirect)
	u, _ := url.Parse(p.location)
	if u == nil || u.Query().Get("code") == "" {
		e.t.Fatalf("after consent: %d Location %q", p.status, p.location)
	}
	return codeGrant{cfg: cfg, code: noteSecret(u.Query().Get("code")), verifier: verifier}
}

// redeem exchanges the code as a public client: as clientID, with the
// verifier given.
func (e *openIDEnv) redeem(g codeGrant, clientID, verifier string) rawAnswer {
	e.t.Helper()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {g.code}, "redirect_uri": {g.cfg.RedirectURL}, "client_id": {clientID}}
	if verifier != "" {
		form.Set("code_verifier", verifier)
	}
	return e.post(e.meta.Token, form, "", "")
}

// tokenOf reads the access and refresh tokens of a 200 answer.
func tokenOf(t *testing.T, what string, a rawAnswer) *oauth2.Token {
	t.Helper()
	var tok struct {
		Access  string `json:"access_token"`
		Refresh string `json:"refresh_token"`
	}
	if a.status != http.StatusOK || json.Unmarshal(a.body, &tok) != nil || tok.Access == "" {
		t.Fatalf("%s: %d %s; want tokens", what, a.status, a.body)
	}
	return &oauth2.Token{AccessToken: tok.Access, RefreshToken: tok.Refresh}
}

// wantOAuthError fails unless a is an OAuth error answer with code.
func wantOAuthError(t *testing.T, what string, a rawAnswer, code string) {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if a.status < 400 || json.Unmarshal(a.body, &e) != nil || e.Error != code || strings.Contains(string(a.body), "access_token") {
		t.Errorf("%s: %d %s; want error %s and no token", what, a.status, a.body, code)
	}
}

// A client is never given Synapse's admin scope, whatever it asks for at
// sign-in or at a refresh: Synapse grants its admin API to exactly that
// scope (Synapse synapse/api/auth/mas.py, is_server_admin).
func TestNextGenRefusesTheSynapseAdminScope(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			n := startNextGen(t, backend, "")
			c := n.addClient("element")
			cfg := n.config(c, oauth2.AuthStyleInHeader, append(matrixScopes("ADMINWANTED"), "urn:synapse:admin:*")...)
			tok := n.exchange(cfg, n.authorize(newBrowser(t), cfg)).token
			noteSecret(tok.AccessToken)
			noteSecret(tok.RefreshToken)
			adminAPI := "/_synapse/admin/v2/users/@alice:" + n.syn.ServerName
			wantNoAdmin := func(what, access string) {
				t.Helper()
				_, got := n.introspect(n.secret, access)
				if scope, _ := got["scope"].(string); got["active"] != true || strings.Contains(scope, "synapse:admin") {
					t.Errorf("%s: introspection %v; want active without the admin scope", what, got)
				}
				if status, got := n.syn.request(http.MethodGet, adminAPI, access, nil); status != http.StatusForbidden || got["errcode"] != "M_FORBIDDEN" {
					t.Errorf("%s: Synapse's admin API answered %d %v; want 403 M_FORBIDDEN", what, status, got)
				}
			}
			wantNoAdmin("asked for at sign-in", tok.AccessToken)

			// A refresh may narrow the scope, never widen it.
			form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken},
				"scope": {"openid urn:matrix:client:api:* urn:matrix:client:device:ADMINWANTED urn:synapse:admin:*"}}
			a := n.post(n.meta.Token, form, c.id, c.secret)
			if a.status == http.StatusOK {
				wantNoAdmin("asked for at a refresh", tokenOf(t, "refresh", a).AccessToken)
			} else {
				wantOAuthError(t, "a refresh asking for the admin scope", a, "invalid_scope")
			}
		})
	}
}

// The devices of registered clients are named after them in Synapse,
// which refuses a device name over 100 characters (Synapse
// synapse/handlers/device.py, MAX_DEVICE_DISPLAY_NAME_LEN): a client
// whose registered name is longer still signs in, its device named by the
// name's first 100 characters. A display name from the platform of any
// length and script becomes the user's in Synapse, and the user can join
// a room with it.
func TestNextGenLoginsWithLongAndHostileNamesCreateTheirDevice(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			n := startNextGenNoAlice(t, backend, "")
			hostile := "Ålice \u202e" + strings.Repeat("ﷺ", 300) + "\n<b>&amp;"
			(&cli{t: t, env: n.d.env}).must(alicePassword+"\n", "user", "add", "alice", "--password-stdin", "--name", hostile)
			name := "Chat " + strings.Repeat("é", 120) // 125 characters, 245 bytes: within registration's 256
			id := wantRegistered(t, n.register(metadata(map[string]any{"client_name": name}), "application/json"))
			g := n.registeredCode(newBrowser(t), id, matrixScopes("LONGNAMED1")...)
			tok := tokenOf(t, "the exchange of a client with a long name", n.redeem(g, id, g.verifier))
			if status, user, device := n.syn.whoami(tok.AccessToken); status != http.StatusOK || user != "@alice:"+n.syn.ServerName || device != "LONGNAMED1" {
				t.Fatalf("whoami = %d %q %q", status, user, device)
			}
			status, got := n.syn.request(http.MethodGet, "/_matrix/client/v3/devices/LONGNAMED1", tok.AccessToken, nil)
			shown, _ := got["display_name"].(string)
			if status != http.StatusOK || utf8.RuneCountInString(shown) != 100 || !strings.HasPrefix(name, shown) {
				t.Errorf("the device in Synapse: %d %v; want the client's name cut to 100 characters", status, got)
			}
			if status, got := n.syn.request(http.MethodPost, "/_matrix/client/v3/createRoom", tok.AccessToken, map[string]any{}); status != http.StatusOK {
				t.Errorf("alice, named by the platform, creating (and joining) a room: %d %v", status, got)
			}
		})
	}
}

// A device ID that a live login of the user holds cannot be taken by
// another client, registered or not, in either scope spelling: the taker
// would receive what is sent to that device. The holder keeps working, its
// device keeps its name and keys; another client cannot read the holder's
// token at the library's introspection either. Once the holder signs out,
// the ID may be used again, but as a new device: Synapse deleted the old
// one with its keys first.
func TestMatrixDeviceOfAnotherClientCannotBeTakenOver(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			n := startNextGen(t, backend, "")
			element := n.addClient("element", "--name", "Element")
			victim := n.matrixLogin(element, "VICTIMDEV1")
			noteSecret(victim.AccessToken)
			noteSecret(victim.RefreshToken)
			keys := map[string]any{"device_keys": map[string]any{
				"user_id": "@alice:" + n.syn.ServerName, "device_id": "VICTIMDEV1",
				"algorithms": []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"},
				"keys":       map[string]string{"curve25519:VICTIMDEV1": "victimcurvekey", "ed25519:VICTIMDEV1": "victimedkey"},
				"signatures": map[string]any{}}}
			if status, got := n.syn.request(http.MethodPost, "/_matrix/client/v3/keys/upload", victim.AccessToken, keys); status != http.StatusOK {
				t.Fatalf("uploading the victim's device keys: %d %v", status, got)
			}
			deviceKeys := func() map[string]any {
				t.Helper()
				_, got := n.syn.request(http.MethodPost, "/_matrix/client/v3/keys/query", victim.AccessToken,
					map[string]any{"device_keys": map[string]any{"@alice:" + n.syn.ServerName: []string{}}})
				m, _ := dig(got, "device_keys", "@alice:"+n.syn.ServerName).(map[string]any)
				return m
			}
			if deviceKeys()["VICTIMDEV1"] == nil {
				t.Fatal("Synapse does not list the victim's device keys")
			}

			taker := wantRegistered(t, n.register(metadata(map[string]any{"client_name": "Element"}), "application/json"))
			b := newBrowser(t)
			for _, scope := range []string{"urn:matrix:client:device:VICTIMDEV1", "urn:matrix:org.matrix.msc2967.client:device:VICTIMDEV1"} {
				g := n.registeredCode(b, taker, "openid", "urn:matrix:client:api:*", scope)
				wantOAuthError(t, "a registered client's login as "+scope, n.redeem(g, taker, g.verifier), "invalid_grant")
			}
			other := n.addClient("other-app")
			cfg := n.config(other, oauth2.AuthStyleInHeader, matrixScopes("VICTIMDEV1")...)
			r := n.authorize(newBrowser(t), cfg)
			_, err := cfg.Exchange(n.ctx, r.code, oauth2.VerifierOption(r.verifier))
			wantTokenError(t, "an operator's client's login as the victim's device", err, "invalid_grant", http.StatusBadRequest)

			if status, _, device := n.syn.whoami(victim.AccessToken); status != http.StatusOK || device != "VICTIMDEV1" {
				t.Errorf("the victim after the refused takeovers: whoami %d %q", status, device)
			}
			if status, got := n.syn.request(http.MethodGet, "/_matrix/client/v3/devices/VICTIMDEV1", victim.AccessToken, nil); status != http.StatusOK || got["display_name"] != "Element" {
				t.Errorf("the victim's device in Synapse: %d %v; want it still named Element", status, got)
			}
			if deviceKeys()["VICTIMDEV1"] == nil {
				t.Error("the victim's device keys went with the refused takeovers")
			}
			if a := n.post(n.meta.Introspection, url.Values{"token": {victim.AccessToken}}, other.id, other.secret); !strings.Contains(string(a.body), `"active":false`) ||
				strings.Contains(string(a.body), "alice") {
				t.Errorf("another client introspecting the victim's token: %d %s; want inactive and nothing else", a.status, a.body)
			}

			// The victim signs out; the ID is free once its device is gone.
			if status, _, body := n.postForm(n.meta.Revocation, url.Values{"token": {victim.RefreshToken}}, element.id, element.secret); status != http.StatusOK {
				t.Fatalf("revocation: %d %s", status, body)
			}
			waitFor(t, 10*time.Second, "the victim's device deleted in Synapse", func() bool { return len(n.syn.devices("alice")) == 0 })
			g := n.registeredCode(b, taker, matrixScopes("VICTIMDEV1")...)
			tok := tokenOf(t, "a login as the freed device ID", n.redeem(g, taker, g.verifier))
			if status, _, device := n.syn.whoami(tok.AccessToken); status != http.StatusOK || device != "VICTIMDEV1" {
				t.Fatalf("whoami of the new login: %d %q", status, device)
			}
			victim.AccessToken = tok.AccessToken // deviceKeys asks with it
			if k := deviceKeys()["VICTIMDEV1"]; k != nil {
				t.Errorf("the new device of the freed ID has the old device's keys: %v", k)
			}
		})
	}
}

// A code is redeemed only by the client it was issued to, only with its
// PKCE verifier: another registered client holding the code and the
// verifier gets invalid_grant, and so do the right client without the
// verifier or with another. None of the refusals creates a device or uses
// up the code; once spent and signed out, it brings no device back.
func TestCodeOfARegisteredClientIsRedeemedByItAloneWithItsVerifier(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			n := startNextGen(t, backend, "")
			owner := wantRegistered(t, n.register(metadata(nil), "application/json"))
			thief := wantRegistered(t, n.register(metadata(nil), "application/json"))
			g := n.registeredCode(newBrowser(t), owner, matrixScopes("CODEOWNER1")...)
			wantOAuthError(t, "another client redeeming the code with its verifier", n.redeem(g, thief, g.verifier), "invalid_grant")
			if a := n.redeem(g, owner, ""); a.status != http.StatusBadRequest || strings.Contains(string(a.body), "access_token") {
				t.Errorf("the code without a verifier: %d %s; want 400 and no token", a.status, a.body)
			}
			wantOAuthError(t, "the code with another verifier", n.redeem(g, owner, oauth2.GenerateVerifier()), "invalid_grant")
			if got := n.syn.devices("alice"); len(got) != 0 {
				t.Errorf("refused redemptions created devices in Synapse: %v", got)
			}
			tok := tokenOf(t, "the owner redeeming its code", n.redeem(g, owner, g.verifier))
			if status, _, device := n.syn.whoami(tok.AccessToken); status != http.StatusOK || device != "CODEOWNER1" {
				t.Errorf("whoami of the owner's login: %d %q", status, device)
			}
			// After the owner signed out, the spent code brings the device
			// back for no one.
			if a := n.post(n.meta.Revocation, url.Values{"token": {tok.RefreshToken}, "client_id": {owner}}, "", ""); a.status != http.StatusOK {
				t.Fatalf("revocation: %d %s", a.status, a.body)
			}
			waitFor(t, 10*time.Second, "the owner's device deleted in Synapse", func() bool { return len(n.syn.devices("alice")) == 0 })
			wantOAuthError(t, "the spent code after the sign-out", n.redeem(g, owner, g.verifier), "invalid_grant")
			waitFor(t, 10*time.Second, "no device left in Synapse after the replay", func() bool { return len(n.syn.devices("alice")) == 0 })
			if status, _, _ := n.syn.whoami(tok.AccessToken); status != http.StatusUnauthorized {
				t.Errorf("whoami with the signed-out token after the replay: %d, want 401", status)
			}
		})
	}
}

// prompt=none never stands in for the consent a registered client needs
// at every sign-in, not even when a decision for it was stored: the client
// gets consent_required and no code.
func TestPromptNoneGetsARegisteredClientNoCode(t *testing.T) {
	eachRegistrationBackend(t, "", func(t *testing.T, e *openIDEnv) {
		id := wantRegistered(t, e.register(metadata(nil), "application/json"))
		b := newBrowser(t)
		e.registeredCode(b, id, "openid") // b has alice's session now
		store := (&cli{t: t, env: e.d.env}).store()
		alice, err := store.UserByUsername(e.ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		scopes := []string{"openid", "urn:matrix:client:api:*", "urn:matrix:client:device:SILENTDEV1", "offline_access"}
		if err := store.SaveConsent(e.ctx, alice.ID, id, scopes); err != nil {
			t.Fatal(err)
		}
		cfg := &oauth2.Config{ClientID: id, RedirectURL: registeredRedirect, Endpoint: e.provider.Endpoint(), Scopes: scopes[:3]}
		p := b.until(b.get(cfg.AuthCodeURL("state-silent", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
			oauth2.SetAuthURLParam("prompt", "none"))), registeredRedirect)
		u, _ := url.Parse(p.location)
		if u == nil || !strings.HasPrefix(p.location, registeredRedirect) || u.Query().Get("error") != "consent_required" ||
			u.Query().Get("code") != "" || u.Query().Get("state") != "state-silent" {
			t.Errorf("prompt=none for a registered client: %d Location %q; want error=consent_required with the state, no code", p.status, p.location)
		}
	})
}

// startAccountWith is startAccount with a Synapse stand-in that answers
// through refuse first: refuse answers a call itself (returning true) or
// leaves it to the stand-in.
func startAccountWith(t *testing.T, backend string, refuse func(w http.ResponseWriter, name string, body map[string]any) bool) *accountEnv {
	t.Helper()
	syn := newMASStandIn(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/_synapse/mas/")
		body := map[string]any{}
		if r.Method == http.MethodPost {
			json.NewDecoder(r.Body).Decode(&body)
		}
		syn.mu.Lock()
		syn.calls = append(syn.calls, masCall{name: "attempt:" + name, body: body})
		syn.mu.Unlock()
		if refuse(w, name, body) {
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(mustJSON(body)))
		syn.serve(w, r)
	}))
	t.Cleanup(srv.Close)
	secretFile := filepath.Join(t.TempDir(), "synapse-secret")
	if err := os.WriteFile(secretFile, []byte(syn.secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := newDeployment(t, backend)
	d.env["MXIDP_CONFIG"] = writeConfig(t, fmt.Sprintf("passwords:\n  argon2id: {time: 1, memory_kib: 64, threads: 1}\n"+
		"keys:\n  refresh_interval: 100ms\nmatrix:\n  server_name: %s\n  synapse:\n    url: %s\n    shared_secret_file: %s\n",
		accountServerName, srv.URL, secretFile))
	(&cli{t: t, env: d.env}).must(alicePassword+"\n", "user", "add", "alice", "--password-stdin",
		"--email", aliceEmail, "--name", aliceName)
	e := &accountEnv{openIDEnv: connectOpenID(t, d), syn: syn}
	e.element = e.addClient("element", "--name", "Element")
	return e
}

// A dead device that Synapse keeps refusing to delete does not hold up
// the others: the cleanup goes on past it, and tries it again later.
func TestDeviceCleanupGoesOnPastADeviceSynapseRefusesToDelete(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			e := startAccountWith(t, backend, func(w http.ResponseWriter, name string, body map[string]any) bool {
				if name == "delete_device" && body["device_id"] == "STUCKDEVICE" {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusInternalServerError)
					fmt.Fprint(w, `{"errcode":"M_UNKNOWN","error":"Internal server error"}`)
					return true
				}
				return false
			})
			b := newBrowser(t)
			stuck := e.deviceLogin(b, "STUCKDEVICE") // the oldest: first in every batch
			other := e.deviceLogin(b, "OTHERDEVICE")
			for _, tok := range []*oauth2.Token{stuck, other} {
				if status, _, body := e.postForm(e.meta.Revocation, url.Values{"token": {tok.RefreshToken}}, e.element.id, e.element.secret); status != http.StatusOK {
					t.Fatalf("revocation: %d %s", status, body)
				}
			}
			e.wantEnded("the device after the one Synapse refuses", other, "alice", "OTHERDEVICE")
			attempts := func() int {
				return e.syn.called("attempt:delete_device", map[string]string{"device_id": "STUCKDEVICE"})
			}
			first := attempts()
			waitFor(t, 10*time.Second, "the refused device tried again", func() bool { return attempts() > first })
			if e.syn.hasDevice("alice", "OTHERDEVICE") || !e.syn.hasDevice("alice", "STUCKDEVICE") {
				t.Errorf("Synapse's devices of alice: other %v, stuck %v; want only the refused one left",
					e.syn.hasDevice("alice", "OTHERDEVICE"), e.syn.hasDevice("alice", "STUCKDEVICE"))
			}
		})
	}
}

// An operator who removes a client (one that registered itself to phish,
// say) ends what it holds: its Matrix tokens are inactive at once, and
// their devices go from Synapse.
func TestRemovedClientsMatrixLoginsEnd(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			n := startNextGen(t, backend, "")
			phish := wantRegistered(t, n.register(metadata(map[string]any{"client_name": "Totally Element"}), "application/json"))
			g := n.registeredCode(newBrowser(t), phish, matrixScopes("PHISHED001")...)
			tok := tokenOf(t, "the phishing client's login", n.redeem(g, phish, g.verifier))
			element := n.addClient("element")
			kept := n.matrixLogin(element, "ELEMENTDEV")
			if status, _, _ := n.syn.whoami(tok.AccessToken); status != http.StatusOK {
				t.Fatalf("whoami of the phishing client's token: %d", status)
			}
			n.d.cli("client", "remove", phish)
			if _, got := n.introspect(n.secret, tok.AccessToken); got["active"] != false {
				t.Errorf("introspection of a removed client's token: %v; want inactive", got)
			}
			waitFor(t, 10*time.Second, "the removed client's device deleted in Synapse", func() bool {
				return !slices.Contains(n.syn.devices("alice"), "PHISHED001")
			})
			if status, _, _ := n.syn.whoami(tok.AccessToken); status != http.StatusUnauthorized {
				t.Errorf("whoami with the removed client's token: %d, want 401", status)
			}
			refresh := n.post(n.meta.Token, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {phish}}, "", "")
			if refresh.status < 400 || strings.Contains(string(refresh.body), "access_token") {
				t.Errorf("refresh by the removed client: %d %s", refresh.status, refresh.body)
			}
			if status, _, _ := n.syn.whoami(kept.AccessToken); status != http.StatusOK {
				t.Errorf("another client's login after the removal: whoami %d", status)
			}
		})
	}
}

// A platform that disables an account and gives its username to a new
// one (renaming the old account away) leaves the departed account's
// devices to the cleanup. Their Matrix ID is the new account's now: the
// cleanup deletes the departed account's devices, and neither locks that
// Matrix ID nor removes the new account's devices.
func TestDeviceCleanupLocksNoAccountThatNowHoldsTheLocalpart(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			users := platformUsers(t)[:2]
			n, db := startNextGenOnDjango(t, backend, users[:1], "1h", "")
			c := n.addClient("element")
			login := func(deviceID, password string) *oauth2.Token {
				t.Helper()
				cfg := n.config(c, oauth2.AuthStyleInHeader, matrixScopes(deviceID)...)
				return n.exchange(cfg, n.authorizeWith(newBrowser(t), cfg, randomAlnum(30), []string{password})).token
			}
			login("OLDALICE01", users[0].password)

			// The platform disables the first alice, renames her away and
			// gives "alice" to a new account, who signs in to Matrix.
			if _, err := db.Exec(`UPDATE auth_user SET is_active = FALSE, username = 'alice_departed' WHERE id = 1`); err != nil {
				t.Fatal(err)
			}
			newcomer := users[1].DjangoUser
			newcomer.Username, newcomer.Email = "alice", "new.alice@example.net"
			storagetest.AddDjangoUsers(t, db, newcomer)
			// The localpart stays with the first account until the operator
			// releases it (TestNewAccountWithADepartedUsersNameInheritsNoMatrixAccount);
			// here the operator did.
			n.d.cli("user", "release-matrix-id", "alice")
			tok := login("NEWALICE01", users[1].password)
			if status, user, _ := n.syn.whoami(tok.AccessToken); status != http.StatusOK || user != "@alice:"+n.syn.ServerName {
				t.Fatalf("the new alice's whoami: %d %q", status, user)
			}

			// The check of departed users ends the first alice's logins
			// (it runs every check_interval; here, now).
			store := (&cli{t: t, env: n.d.env}).store()
			if _, err := store.DB().ExecContext(n.ctx, `UPDATE tokens SET revoked = TRUE WHERE user_id = '1'`); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "the departed account's device cleaned up", func() bool {
				var left int
				if err := store.DB().QueryRowContext(n.ctx, `SELECT COUNT(*) FROM matrix_devices WHERE user_id = '1'`).Scan(&left); err != nil {
					t.Fatal(err)
				}
				return left == 0
			})
			if status, _, device := n.syn.whoami(tok.AccessToken); status != http.StatusOK || device != "NEWALICE01" {
				t.Errorf("the new alice after the cleanup: whoami %d %q", status, device)
			}
			if got := n.syn.devices("alice"); !slices.Equal(got, []string{"NEWALICE01"}) {
				t.Errorf("Synapse's devices of @alice: %v; want the new account's alone", got)
			}
			if n.syn.userLocked("alice") {
				t.Error("the cleanup locked @alice, the new account's Matrix ID")
			}
		})
	}
}

// A user the platform disables is refused at once, long before the check
// of departed users ends their logins: Synapse's next introspection of
// their token says inactive and nothing else, their refresh token is
// refused, and their browser's session no longer opens the account page.
func TestSynapseIntrospectionRefusesAPlatformUserTheMomentTheyAreDisabled(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			users := platformUsers(t)[:1]
			n, db := startNextGenOnDjango(t, backend, users, "1h", "")
			c := n.addClient("element")
			cfg := n.config(c, oauth2.AuthStyleInHeader, matrixScopes("DISABLED01")...)
			b := newBrowser(t)
			tok := n.exchange(cfg, n.authorizeWith(b, cfg, randomAlnum(30), []string{users[0].password})).token
			if _, got := n.introspect(n.secret, tok.AccessToken); got["active"] != true {
				t.Fatalf("introspection before: %v", got)
			}
			if p := b.get(n.issuer + "/account"); !strings.Contains(p.body, "DISABLED01") {
				t.Fatalf("the account page before: %d\n%.1000s", p.status, p.body)
			}
			if _, err := db.Exec(`UPDATE auth_user SET is_active = FALSE WHERE id = 1`); err != nil {
				t.Fatal(err)
			}
			if status, got := n.introspect(n.secret, tok.AccessToken); status != http.StatusOK || got["active"] != false || len(got) != 1 {
				t.Errorf("introspection of a disabled user's token: %d %v; want {active: false} alone", status, got)
			}
			a := n.post(n.meta.Token, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, c.id, c.secret)
			wantOAuthError(t, "a disabled user's refresh", a, "invalid_grant")
			p := b.get(n.issuer + "/account")
			wantSignInForm(t, "the account page of a disabled user's session", p)
			if strings.Contains(p.body, "DISABLED01") || strings.Contains(p.body, "@alice:") {
				t.Errorf("the account page shows a disabled user's sessions:\n%.2000s", p.body)
			}
		})
	}
}

// Discovery in next-gen auth, which Synapse hands to every Matrix client,
// offers nothing mxidp refuses or must never grant: PKCE S256 alone, the
// code flow alone, no "create" prompt (accounts come from the platform),
// no admin scope.
func TestNextGenDiscoveryOffersNothingMxidpRefuses(t *testing.T) {
	e := startAccount(t, storagetest.Backends[0], "")
	status, body := e.s.get("/.well-known/openid-configuration")
	var d map[string]any
	if status != http.StatusOK || json.Unmarshal(body, &d) != nil {
		t.Fatalf("discovery: %d %s", status, body)
	}
	list := func(key string) []string { return anyStrings(d[key]) }
	for key, want := range map[string][]string{
		"code_challenge_methods_supported": {"S256"},
		"grant_types_supported":            {"authorization_code", "refresh_token"},
		"response_types_supported":         {"code"},
	} {
		if got := list(key); !slices.Equal(got, want) {
			t.Errorf("%s = %v; want %v", key, got, want)
		}
	}
	if got := list("prompt_values_supported"); slices.Contains(got, "create") || !slices.Contains(got, "consent") {
		t.Errorf("prompt_values_supported = %v; want consent among them and no create", got)
	}
	if got := list("scopes_supported"); slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, "admin") }) ||
		!slices.Contains(got, "urn:matrix:client:api:*") {
		t.Errorf("scopes_supported = %v; want the Matrix API scope and no admin scope", got)
	}
	for _, key := range []string{"registration_endpoint", "account_management_uri", "revocation_endpoint", "token_endpoint"} {
		if u, _ := d[key].(string); !strings.HasPrefix(u, e.issuer+"/") {
			t.Errorf("%s = %q; want an address of mxidp's (%s)", key, u, e.issuer)
		}
	}
}
