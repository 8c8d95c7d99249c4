package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/mxidp/mxidp/storage/storagetest"
)

// compatCall sends a Matrix client-server request to mxidp's
// compatibility layer.
func (n *nextGenEnv) compatCall(method, path, token string, body any) (int, map[string]any) {
	n.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, n.issuer+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	status, _, raw := n.send(req)
	var got map[string]any
	json.Unmarshal(raw, &got)
	return status, got
}

func passwordLoginBody(user, password string, extra map[string]any) map[string]any {
	b := map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": user}, "password": noteSecret(password)}
	for k, v := range extra {
		b[k] = v
	}
	return b
}

// TestCompatPasswordLoginLogoutAndRefreshAgainstSynapse: the compatibility
// layer's password login gives a device and a token Synapse takes; a
// refreshable login rotates; a reused device_id replaces the device's
// token; logout and logout/all delete the devices in Synapse.
func TestCompatPasswordLoginLogoutAndRefreshAgainstSynapse(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			n := startNextGen(t, backend, "")
			status, got := n.compatCall(http.MethodGet, "/_matrix/client/v3/login", "", nil)
			if status != http.StatusOK || len(got["flows"].([]any)) != 3 {
				t.Fatalf("GET /login: %d %v", status, got)
			}
			status, got = n.compatCall(http.MethodPost, "/_matrix/client/v3/login", "", passwordLoginBody("alice", alicePassword,
				map[string]any{"device_id": "BOTDEVICE", "initial_device_display_name": "sync bot"}))
			token, _ := got["access_token"].(string)
			if status != http.StatusOK || token == "" || got["device_id"] != "BOTDEVICE" || got["user_id"] != "@alice:"+n.syn.ServerName || got["expires_in_ms"] != nil {
				t.Fatalf("password login: %d %v", status, got)
			}
			noteSecret(token)
			if status, user, device := n.syn.whoami(token); status != http.StatusOK || user != "@alice:"+n.syn.ServerName || device != "BOTDEVICE" {
				t.Fatalf("whoami: %d %q %q", status, user, device)
			}
			if _, intro := n.introspect(n.secret, token); intro["expires_in"] != nil || intro["active"] != true {
				t.Errorf("a non-refreshable compatibility token: %v; want active without expires_in", intro)
			}
			// The account page lists the password login beside OAuth ones.
			b := newBrowser(t)
			page := b.accountSignIn(b.get(n.issuer+"/account"), "alice", alicePassword)
			if page.status == http.StatusSeeOther {
				page = b.get(page.location)
			}
			wantPage(t, "the account page", page, http.StatusOK, "BOTDEVICE", "sync bot · Matrix login (password or single sign-on)")
			// The same device_id again: the device's old token goes, the device stays.
			_, again := n.compatCall(http.MethodPost, "/_matrix/client/v3/login", "", passwordLoginBody("@alice:"+n.syn.ServerName, alicePassword,
				map[string]any{"device_id": "BOTDEVICE", "refresh_token": true}))
			second, _ := again["access_token"].(string)
			refresh, _ := again["refresh_token"].(string)
			noteSecret(second)
			noteSecret(refresh)
			if second == "" || refresh == "" || again["expires_in_ms"] == nil {
				t.Fatalf("refreshable login: %v", again)
			}
			if status, _, _ := n.syn.whoami(second); status != http.StatusOK {
				t.Errorf("whoami with the new token: %d", status)
			}
			if _, intro := n.introspect(n.secret, token); intro["active"] != false {
				t.Errorf("the replaced token is still active: %v", intro)
			}
			if got := n.syn.devices("alice"); !slices.Equal(got, []string{"BOTDEVICE"}) {
				t.Errorf("devices after the take-over: %v", got)
			}
			status, rot := n.compatCall(http.MethodPost, "/_matrix/client/v3/refresh", "", map[string]any{"refresh_token": refresh})
			third, _ := rot["access_token"].(string)
			noteSecret(third)
			if r, _ := rot["refresh_token"].(string); r != "" {
				noteSecret(r)
			}
			if status != http.StatusOK || third == "" || rot["refresh_token"] == refresh {
				t.Fatalf("refresh: %d %v", status, rot)
			}
			if status, _, _ := n.syn.whoami(third); status != http.StatusOK {
				t.Errorf("whoami after refresh: %d", status)
			}
			status, reuse := n.compatCall(http.MethodPost, "/_matrix/client/v3/refresh", "", map[string]any{"refresh_token": refresh})
			if status != http.StatusUnauthorized || reuse["errcode"] != "M_UNKNOWN_TOKEN" {
				t.Errorf("refresh token used twice: %d %v", status, reuse)
			}
			waitFor(t, 10*time.Second, "the device of a reused refresh token deleted", func() bool { return len(n.syn.devices("alice")) == 0 })

			// Two devices, logout of one, then logout/all.
			var toks []string
			for _, dev := range []string{"DEVONE", "DEVTWO", "DEVTHREE"} {
				_, got := n.compatCall(http.MethodPost, "/_matrix/client/r0/login", "", passwordLoginBody("alice", alicePassword, map[string]any{"device_id": dev}))
				tok, _ := got["access_token"].(string)
				noteSecret(tok)
				toks = append(toks, tok)
			}
			if status, _ := n.compatCall(http.MethodPost, "/_matrix/client/v3/logout", toks[0], nil); status != http.StatusOK {
				t.Fatalf("logout: %d", status)
			}
			waitFor(t, 10*time.Second, "DEVONE deleted", func() bool { return slices.Equal(n.syn.devices("alice"), []string{"DEVTHREE", "DEVTWO"}) })
			if status, got := n.compatCall(http.MethodPost, "/_matrix/client/v3/logout", toks[0], nil); status != http.StatusUnauthorized || got["errcode"] != "M_UNKNOWN_TOKEN" {
				t.Errorf("logout with a dead token: %d %v", status, got)
			}
			if status, _ := n.compatCall(http.MethodPost, "/_matrix/client/v3/logout/all", toks[1], nil); status != http.StatusOK {
				t.Fatalf("logout/all: %d", status)
			}
			waitFor(t, 10*time.Second, "every device deleted", func() bool { return len(n.syn.devices("alice")) == 0 })
			if status, _, _ := n.syn.whoami(toks[2]); status != http.StatusUnauthorized {
				t.Errorf("whoami after logout/all: %d", status)
			}
		})
	}
}

// TestCompatSSOWithThePlatformTableAsTheUserSource: m.login.sso and
// m.login.token with the users read from a Django-shaped platform table
// on PostgreSQL: the round trip ends in a token Synapse takes as the
// platform user, and a replayed login token is refused.
func TestCompatSSOWithThePlatformTableAsTheUserSource(t *testing.T) {
	if !slices.Contains(storagetest.Backends, "postgres") {
		t.Fatal("the platform table lives on PostgreSQL (.ci/with-postgres)")
	}
	users := platformUsers(t)[:1]
	client := newSSOClient(t)
	n, _ := startNextGenOnDjango(t, "postgres", users, "", ssoAllowlistYAML(client.url+"/"))
	b := newBrowser(t)
	p := n.ssoStart(b, "v3", client.url+"/cb")
	f := postFormOf(t, p, "sign_in")
	f.fields.Set("username", "alice")
	f.fields.Set("password", noteSecret(users[0].password))
	in := b.post(f.action, f.fields)
	done := b.get(in.location)
	token := wantLoginToken(t, "the platform user's SSO login", done, client.url+"/cb?loginToken=")
	n.wantSynapseSession("the platform user's SSO login", token, "PLATFORMSSO")
	if status, replay := n.tokenLogin(token, "PLATFORMSSO2"); status != http.StatusForbidden || replay["errcode"] != "M_FORBIDDEN" {
		t.Errorf("the loginToken used again: %d %v; want 403 M_FORBIDDEN", status, replay)
	}
}
