package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRESTIsOffByDefaultAndLimitedToLoopback(t *testing.T) {
	c, err := LoadConfig("", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	r := c.REST
	if r.Enabled || r.SharedSecretFile != "" || strings.Join(r.AllowedNetworks, " ") != "127.0.0.0/8 ::1/128" ||
		r.Timeout != 5*time.Second || r.DirectoryMaxResults != 50 || r.ExposeProfileThreepids ||
		!r.LoginDisplayName || !r.LoginThreepids {
		t.Errorf("rest defaults: %+v", r)
	}
}

func TestInvalidRESTOptionsAreListedWithTheirFix(t *testing.T) {
	_, err := LoadConfig(writeConfig(t, `
rest:
  enabled: true
  allowed_networks: ["10.0.0.0/8", "10.0.0.300/8", "example.org"]
  timeout: 1m
  directory_max_results: 0
`), env(nil))
	for _, want := range []string{
		`rest.allowed_networks: "10.0.0.300/8"`, `rest.allowed_networks: "example.org"`, "CIDRs like 10.0.0.0/8",
		"rest.timeout: 1m0s", "like 5s", "rest.directory_max_results: 0", "like 50",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestRESTSharedSecretFileIsReadAndChecked(t *testing.T) {
	dir := t.TempDir()
	good, short := filepath.Join(dir, "good"), filepath.Join(dir, "short")
	os.WriteFile(good, []byte("  0123456789abcdef0123\n"), 0o600)
	os.WriteFile(short, []byte("abc\n"), 0o600)
	for _, tc := range []struct {
		file, want, wantErr string
	}{
		{"", "", ""},
		{good, "0123456789abcdef0123", ""},
		{short, "", "at least 16"},
		{filepath.Join(dir, "missing"), "", "create it"},
	} {
		got, err := RESTConfig{SharedSecretFile: tc.file}.sharedSecret()
		if got != tc.want || (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%q: %q, %v; want %q, error with %q", tc.file, got, err, tc.want, tc.wantErr)
		}
	}
}

// The access checks are wired into the started server: a source outside
// rest.allowed_networks is refused, and a configured token is required.
func TestStartedRESTServiceEnforcesNetworksAndToken(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "rest.token")
	os.WriteFile(secret, []byte("0123456789abcdef0123\n"), 0o600)
	for _, tc := range []struct {
		name, yaml, token string
		status            int
	}{
		{"outside the allowed networks", "  allowed_networks: [\"10.0.0.0/8\"]\n", "", http.StatusForbidden},
		{"token missing", "  shared_secret_file: " + secret + "\n", "", http.StatusUnauthorized},
		{"token given", "  shared_secret_file: " + secret + "\n", "0123456789abcdef0123", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := testEnv(t, "sqlite", "matrix:\n  server_name: example.org\nrest:\n  enabled: true\n"+tc.yaml)
			env["MXIDP_LISTEN"] = "127.0.0.1:0"
			env["MXIDP_ISSUER"] = "http://127.0.0.1:8080"
			s := (&deployment{t: t, env: env}).start()
			req, _ := http.NewRequest(http.MethodPost, s.url+ccPath, strings.NewReader(cc("@zed:example.org", "x")))
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("status %d; want %d", resp.StatusCode, tc.status)
			}
		})
	}
}
