package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// nextGenEnv is mxidp in next-gen auth with the Synapse that delegates
// its tokens to it: Synapse's matrix_authentication_service points at
// mxidp, mxidp's matrix.synapse at Synapse, both with one shared secret.
type nextGenEnv struct {
	*openIDEnv
	syn    *synapse
	secret string // shared by mxidp and Synapse
}

// matrixScopes asks for the Matrix API as a device (Matrix client-server
// API, "OAuth 2.0 API", scopes).
func matrixScopes(deviceID string) []string {
	return []string{"openid", "urn:matrix:client:api:*", "urn:matrix:client:device:" + deviceID}
}

// startNextGen starts mxidp (user alice registered) and Synapse wired to
// each other for next-gen auth. extraYAML is added to mxidp's
// configuration.
func startNextGen(t *testing.T, backend, extraYAML string) *nextGenEnv {
	t.Helper()
	return startNextGenWith(t, backend, extraYAML, startOpenIDIn)
}

// startNextGenNoAlice is startNextGen for a deployment whose users come
// from elsewhere (extraYAML says where).
func startNextGenNoAlice(t *testing.T, backend, extraYAML string) *nextGenEnv {
	t.Helper()
	return startNextGenWith(t, backend, extraYAML, connectOpenID)
}

func startNextGenWith(t *testing.T, backend, extraYAML string, start func(*testing.T, *deployment) *openIDEnv) *nextGenEnv {
	t.Helper()
	secret := randomAlnum(48)
	noteSecret(secret)
	synPort := freePort(t)
	secretFile := filepath.Join(t.TempDir(), "synapse-secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := newDeployment(t, backend)
	d.env["MXIDP_CONFIG"] = writeConfig(t, fmt.Sprintf("passwords:\n  argon2id: {time: 1, memory_kib: 64, threads: 1}\n"+
		"keys:\n  refresh_interval: 100ms\nmatrix:\n  server_name: %s\n  synapse:\n    url: http://127.0.0.1:%d\n    shared_secret_file: %s\n%s",
		synapseServerName, synPort, secretFile, extraYAML))
	e := start(t, d)
	syn := startSynapse(t, synapseOptions{Port: synPort, YAML: fmt.Sprintf(
		"matrix_authentication_service:\n  enabled: true\n  endpoint: %q\n  secret: %q\n", e.issuer+"/", secret)})
	return &nextGenEnv{openIDEnv: e, syn: syn, secret: secret}
}

// introspect asks mxidp what Synapse asks it, with the bearer given.
func (n *nextGenEnv) introspect(bearer, token string) (int, map[string]any) {
	n.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, n.issuer+"/oauth2/introspect",
		strings.NewReader(url.Values{"token": {token}, "token_type_hint": {"access_token"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	status, _, body := n.send(req)
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		n.t.Fatalf("introspection answered %d with no JSON: %q", status, body)
	}
	return status, got
}

// matrixLogin logs alice in through client c with a device scope and
// returns the tokens.
func (n *nextGenEnv) matrixLogin(c rpClient, deviceID string) *oauth2.Token {
	n.t.Helper()
	return n.matrixLoginIn(newBrowser(n.t), c, deviceID).token
}

// matrixLoginIn is matrixLogin in browser b.
func (n *nextGenEnv) matrixLoginIn(b *browser, c rpClient, deviceID string) login {
	n.t.Helper()
	cfg := n.config(c, oauth2.AuthStyleInHeader, matrixScopes(deviceID)...)
	return n.exchange(cfg, n.authorize(b, cfg))
}

// waitFor polls cond for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
