package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mxidp/mxidp/storage"
	"github.com/mxidp/mxidp/storage/storagetest"
)

// checkYAML is the healthy deployment's configuration: the REST service
// on, for a network the check's probe from 127.0.0.1 is not in.
func checkYAML(networks string) string {
	return "rest:\n  enabled: true\n  allowed_networks: [" + networks + "]\n"
}

// runCheck runs the mxidp binary's check with the deployment's
// environment, changed by env, and returns its exit status and output.
func runCheck(t *testing.T, base map[string]string, env map[string]string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), append([]string{"check", "--timeout", "3s"}, args...)...)
	cmd.Env = os.Environ()
	for k, v := range base {
		if _, ok := env[k]; !ok {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("mxidp check: %v", err)
		}
	}
	checkLogHasNoSecrets(t, "mxidp check", out.String()+errOut.String())
	return cmd.ProcessState.ExitCode(), out.String()
}

// fakeSynapse answers GET /_matrix/client/v3/login with flows, and a Date
// header skew away from now.
func fakeSynapse(t *testing.T, flows string, skew time.Duration) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_matrix/client/v3/login" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Date", time.Now().Add(skew).UTC().Format(http.TimeFormat))
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, flows)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// fakeAuthMetadata is a next-gen Synapse's auth metadata naming issuer,
// at the stable path only.
func fakeAuthMetadata(t *testing.T, issuer string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_matrix/client/v1/auth_metadata" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"issuer":%q,"authorization_endpoint":%q}`, issuer, issuer+"/authorize")
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// nextGenConfig is checkYAML with next-gen auth on, Synapse at synapse.
func nextGenConfig(t *testing.T, synapse string) string {
	secret := filepath.Join(t.TempDir(), "synapse.secret")
	if err := os.WriteFile(secret, []byte(strings.Repeat("s3cr", 10)), 0o600); err != nil {
		t.Fatal(err)
	}
	return writeConfig(t, checkYAML(`"10.0.0.0/8"`)+"matrix:\n  synapse:\n    url: "+synapse+"\n    shared_secret_file: "+secret+"\n")
}

const (
	flowsWithMxidp = `{"flows":[{"type":"m.login.password"},{"type":"m.login.sso","identity_providers":[{"id":"oidc-mxidp","name":"Platform account"}]},{"type":"m.login.token"}]}`
	flowsNoSSO     = `{"flows":[{"type":"m.login.password"},{"type":"m.login.token"}]}`
	flowsOtherIdP  = `{"flows":[{"type":"m.login.sso","identity_providers":[{"id":"oidc-github","name":"GitHub"}]}]}`
)

// TestCheckNamesEachProblemOfABrokenDeployment: mxidp check runs beside a
// real mxidp serve; each case breaks one thing and must get the line that
// names it, with exit 1, while the healthy deployment passes with exit 0.
func TestCheckNamesEachProblemOfABrokenDeployment(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			d := &deployment{t: t, env: testEnv(t, backend, checkYAML(`"10.0.0.0/8"`))}
			d.env["MXIDP_LISTEN"] = "127.0.0.1:0"
			srv := d.startOnFreePort()
			issuer := d.env["MXIDP_ISSUER"]
			secret := d.env["MXIDP_SECRET_KEY_FILE"]

			// A deployment whose REST service answers every address.
			open := &deployment{t: t, env: testEnv(t, backend, checkYAML(`"0.0.0.0/0"`))}
			open.env["MXIDP_LISTEN"] = "127.0.0.1:0"
			open.startOnFreePort()

			loose := filepath.Join(t.TempDir(), "secret.key")
			data, err := os.ReadFile(secret)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(loose, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(loose, 0o644); err != nil {
				t.Fatal(err)
			}

			// A database that answers but was never migrated.
			fresh := storagetest.URL(t, backend)
			s, err := storage.Open(context.Background(), fresh, storage.Options{})
			if err != nil {
				t.Fatal(err)
			}
			s.Close()

			// A database migrated by a newer mxidp.
			newer := storagetest.URL(t, backend)
			s, err = storage.Open(context.Background(), newer, storage.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Migrate(context.Background()); err != nil {
				t.Fatal(err)
			}
			if _, err := s.DB().Exec(`INSERT INTO goose_db_version (version_id, is_applied) VALUES (9999, true)`); err != nil {
				t.Fatal(err)
			}
			s.Close()

			down := "postgres://mxidp:pw@127.0.0.1:1/mxidp?connect_timeout=2"
			cases := []struct {
				name   string
				env    map[string]string
				args   []string
				status int
				line   string
			}{
				{"healthy", nil, []string{"--synapse", fakeSynapse(t, flowsWithMxidp, 0)}, 0,
					"ok    discovery " + issuer + "/.well-known/openid-configuration answers with issuer \"" + issuer + "\""},
				{"healthy: loopback http is development only", nil, nil, 0,
					"warn  issuer " + issuer + " is plain http on a loopback host: development only; set an https issuer for production"},
				{"healthy: REST refused from outside the allow-list", nil, nil, 0,
					"ok    REST service refuses " + issuer + restProbePath + " from here (mxidp: not in rest.allowed_networks)"},
				{"healthy: key ring", nil, nil, 0, "ok    key ring: an active key that unseals for each of "},
				{"http issuer on a non-loopback host", map[string]string{"MXIDP_ISSUER": "http://id.example.org"}, nil, 1,
					"FAIL  issuer http://id.example.org is not https: Synapse and browsers need https; put mxidp behind a TLS proxy and set issuer to its https URL"},
				{"issuer mismatch", map[string]string{"MXIDP_ISSUER": strings.Replace(issuer, "127.0.0.1", "localhost", 1)}, nil, 1,
					"FAIL  discovery " + strings.Replace(issuer, "127.0.0.1", "localhost", 1) + "/.well-known/openid-configuration publishes issuer \"" +
						issuer + "\", not the configured \"" + strings.Replace(issuer, "127.0.0.1", "localhost", 1) + "\""},
				{"unreachable issuer", map[string]string{"MXIDP_ISSUER": "http://127.0.0.1:1"}, nil, 1,
					"FAIL  discovery http://127.0.0.1:1/.well-known/openid-configuration: "},
				{"secret file mode 0644", map[string]string{"MXIDP_SECRET_KEY_FILE": loose}, nil, 1,
					"FAIL  secret key file " + loose + " has mode 0644, readable by others; chmod 600 " + loose},
				{"secret file missing", map[string]string{"MXIDP_SECRET_KEY_FILE": loose + ".gone"}, nil, 1,
					"FAIL  secret key file " + loose + ".gone does not exist"},
				{"database unreachable", map[string]string{"MXIDP_DATABASE": down}, nil, 1,
					"FAIL  database " + storage.RedactURL(down) + " does not answer: "},
				{"schema older", map[string]string{"MXIDP_DATABASE": fresh}, nil, 1,
					"FAIL  database " + storage.RedactURL(fresh) + ": schema at version 0, this binary's is "},
				{"schema newer", map[string]string{"MXIDP_DATABASE": newer}, nil, 1,
					"FAIL  database " + storage.RedactURL(newer) + ": schema at version 9999, newer than this binary's "},
				{"next-gen: Synapse names mxidp", map[string]string{"MXIDP_CONFIG": nextGenConfig(t, fakeAuthMetadata(t, issuer))}, nil, 0,
					"ok    Synapse's auth metadata names mxidp's issuer"},
				{"next-gen: Synapse names another issuer", map[string]string{"MXIDP_CONFIG": nextGenConfig(t, fakeAuthMetadata(t, "https://auth.example.org"))}, nil, 1,
					"FAIL  Synapse's auth metadata names issuer \"https://auth.example.org\", not mxidp's \"" + issuer + "\""},
				{"REST allow-list 0.0.0.0/0", map[string]string{"MXIDP_CONFIG": open.env["MXIDP_CONFIG"]}, nil, 1,
					"FAIL  rest.allowed_networks has 0.0.0.0/0, every address; list only the networks of Synapse and ma1sd, like 10.0.0.0/8"},
				{"REST served to the public", open.env, nil, 1,
					"FAIL  REST service is exposed: POST " + open.env["MXIDP_ISSUER"] + restProbePath + " answered HTTP "},
				{"REST probed through --from-outside", map[string]string{"MXIDP_ISSUER": "https://id.example.org"}, []string{"--from-outside", open.env["MXIDP_ISSUER"]}, 1,
					"FAIL  REST service is exposed: POST " + open.env["MXIDP_ISSUER"] + restProbePath + " answered HTTP "},
				{"Synapse login without SSO", nil, []string{"--synapse", fakeSynapse(t, flowsNoSSO, 0)}, 1,
					"FAIL  Synapse's login flows have no m.login.sso: add mxidp to Synapse's oidc_providers (mxidp synapse-config) and restart Synapse"},
				{"Synapse SSO without mxidp", nil, []string{"--synapse", fakeSynapse(t, flowsOtherIdP, 0)}, 1,
					"FAIL  Synapse's m.login.sso flow has no identity provider oidc-mxidp"},
				{"clock two minutes off", nil, []string{"--synapse", fakeSynapse(t, flowsWithMxidp, 2*time.Minute)}, 1,
					"FAIL  clock: this host and a server differ by "},
				{"clock ten seconds off", nil, []string{"--synapse", fakeSynapse(t, flowsWithMxidp, 10*time.Second)}, 0,
					"warn  clock: this host and a server differ by "},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					status, out := runCheck(t, d.env, tc.env, tc.args...)
					t.Logf("exit %d\n%s", status, out)
					found := false
					for _, l := range strings.Split(out, "\n") {
						if strings.HasPrefix(l, tc.line) {
							found = true
						}
					}
					if status != tc.status || !found {
						t.Errorf("exit %d, want %d; want a line starting %q in:\n%s", status, tc.status, tc.line, out)
					}
					fails := strings.Count(out, "\nFAIL  ")
					if strings.HasPrefix(out, "FAIL  ") {
						fails++
					}
					if (tc.status == 0) != (fails == 0) {
						t.Errorf("exit %d with %d FAIL line(s):\n%s", status, fails, out)
					}
				})
			}
			if status, _ := srv.get("/readyz"); status != http.StatusOK {
				t.Errorf("the checked server is no longer ready: %d", status)
			}
		})
	}
}

func TestCheckUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"check", "extra"}, {"check", "--synapse", "ftp://x"}, {"check", "--timeout", "0s"}, {"check", "--nope"}} {
		c := &cli{t: t, env: testEnv(t, "sqlite", "")}
		if status, out, errOut := c.run("", args...); status != exitUsage {
			t.Errorf("mxidp %v: exit %d, want 2\n%s%s", args, status, out, errOut)
		}
	}
}

// privatePrefix holds a network private only when the whole of it lies in
// one private or loopback range: check warns about the others in
// rest.allowed_networks.
func TestPrivatePrefixWantsTheWholeNetworkPrivate(t *testing.T) {
	for n, want := range map[string]bool{
		"10.0.0.0/8": true, "10.1.2.0/24": true, "172.20.0.0/16": true, "192.168.1.7/32": true,
		"127.0.0.1/32": true, "fd00:1::/32": true, "::1/128": true, "fe80::/64": true,
		"10.0.0.0/7": false, "172.16.0.0/11": false, "8.8.8.0/24": false, "2001:db8::/32": false,
	} {
		if got := privatePrefix(netip.MustParsePrefix(n).Masked()); got != want {
			t.Errorf("privatePrefix(%s) = %v, want %v", n, got, want)
		}
	}
}
