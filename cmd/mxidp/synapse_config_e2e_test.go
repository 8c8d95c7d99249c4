package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/mxidp/mxidp/storage/storagetest"
	"golang.org/x/oauth2"
)

// TestSynapseRunsOnThePrintedNextGenBlock: Synapse 1.160 started with
// exactly what `mxidp synapse-config --mode next-gen` prints, the shared
// secret in the file its secret_path names, delegates to mxidp: it hands
// out mxidp's discovery as auth_metadata, its introspection calls carry
// the right secret (a made-up token is 401 M_UNKNOWN_TOKEN, where a
// refused call would be 503), and a Matrix login through mxidp is
// whoami's user and device.
func TestSynapseRunsOnThePrintedNextGenBlock(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			secret := noteSecret(randomAlnum(48))
			secretFile := filepath.Join(t.TempDir(), "synapse-secret")
			if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			synPort, synDir := freePort(t), t.TempDir()
			d := newDeployment(t, backend)
			d.env["MXIDP_CONFIG"] = writeConfig(t, fmt.Sprintf("passwords:\n  argon2id: {time: 1, memory_kib: 64, threads: 1}\n"+
				"matrix:\n  server_name: %s\n  synapse:\n    url: http://127.0.0.1:%d\n    shared_secret_file: %s\n",
				synapseServerName, synPort, secretFile))
			(&cli{t: t, env: d.env}).must(alicePassword+"\n", "user", "add", "alice", "--password-stdin", "--name", aliceName)
			e := connectOpenID(t, d)
			block := d.cli("synapse-config", "--mode", "next-gen", "--secret-path", filepath.Join(synDir, "mxidp-shared-secret"))
			syn := startSynapse(t, synapseOptions{Port: synPort, Dir: synDir, YAML: block,
				Files: map[string]string{"mxidp-shared-secret": secret + "\n"}})

			status, meta := syn.request(http.MethodGet, "/_matrix/client/v1/auth_metadata", "", nil)
			if status != http.StatusOK || meta["issuer"] != e.issuer || meta["account_management_uri"] != e.issuer+"/account" {
				t.Errorf("auth_metadata: %d %v; want mxidp's discovery", status, meta)
			}
			if status, got := syn.request(http.MethodGet, "/_matrix/client/v3/account/whoami", "made-up-token", nil); status != http.StatusUnauthorized || got["errcode"] != "M_UNKNOWN_TOKEN" {
				t.Errorf("whoami with a made-up token: %d %v; want 401 M_UNKNOWN_TOKEN (mxidp answered Synapse)", status, got)
			}
			cfg := e.config(e.addClient("element"), oauth2.AuthStyleInHeader,
				"openid", "urn:matrix:client:api:*", "urn:matrix:client:device:PRINTEDDEV")
			tok := e.exchange(cfg, e.authorize(newBrowser(t), cfg)).token
			if status, user, device := syn.whoami(tok.AccessToken); status != http.StatusOK || user != "@alice:"+syn.ServerName || device != "PRINTEDDEV" {
				t.Errorf("whoami = %d %q %q; want 200 @alice:%s PRINTEDDEV", status, user, device, syn.ServerName)
			}
		})
	}
}
