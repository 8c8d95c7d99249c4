package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// synapseProvider is the part of Synapse's oidc_providers entry mxidp writes.
type synapseProvider struct {
	IdpID            string   `yaml:"idp_id"`
	IdpName          string   `yaml:"idp_name"`
	IdpBrand         string   `yaml:"idp_brand"`
	Issuer           string   `yaml:"issuer"`
	ClientID         string   `yaml:"client_id"`
	ClientSecretPath string   `yaml:"client_secret_path"`
	ClientAuthMethod string   `yaml:"client_auth_method"`
	PKCEMethod       string   `yaml:"pkce_method"`
	Scopes           []string `yaml:"scopes"`
	Backchannel      bool     `yaml:"backchannel_logout_enabled"`
	Mapping          struct {
		Config map[string]string `yaml:"config"`
	} `yaml:"user_mapping_provider"`
}

func parseSynapseConfig(t *testing.T, out string) synapseProvider {
	t.Helper()
	var doc struct {
		Providers []synapseProvider `yaml:"oidc_providers"`
	}
	if err := yaml.Unmarshal([]byte(out), &doc); err != nil || len(doc.Providers) != 1 {
		t.Fatalf("synapse-config output is not one oidc_providers entry (%v):\n%s", err, out)
	}
	return doc.Providers[0]
}

func TestSynapseConfigPrintsAWorkingProviderBlock(t *testing.T) {
	c := newCLI(t, "sqlite")
	c.must("", "client", "add", "synapse", "--redirect-uri", "https://matrix.example.org/_synapse/client/oidc/callback",
		"--backchannel-logout-uri", "https://matrix.example.org/_synapse/client/oidc/backchannel_logout")
	out := c.must("", "synapse-config", "--client", "synapse", "--idp-name", `Our "Platform"`)
	p := parseSynapseConfig(t, out)
	if p.Issuer != "https://id.example.org" || p.ClientID != "synapse" || p.IdpName != `Our "Platform"` || p.IdpID != "mxidp" ||
		p.ClientAuthMethod != "client_secret_basic" || p.ClientSecretPath == "" || !p.Backchannel || p.IdpBrand != "mxidp" ||
		strings.Join(p.Scopes, " ") != "openid profile email" {
		t.Errorf("provider block: %+v", p)
	}
	for key, want := range map[string]string{
		"subject_template":      "{{ user.sub }}",
		"localpart_template":    "{{ user.preferred_username }}",
		"display_name_template": "{{ user.name }}",
		"email_template":        "{{ user.email }}",
	} {
		if p.Mapping.Config[key] != want {
			t.Errorf("%s = %q, want %q", key, p.Mapping.Config[key], want)
		}
	}
	if !strings.Contains(out, "# ") || !strings.Contains(out, "public_baseurl") {
		t.Error("no comment saying what to check")
	}
	if strings.Contains(out, "no back-channel logout URI") {
		t.Error("warns about a back-channel URI that is registered")
	}
}

func TestSynapseConfigForAPublicClientUsesPKCE(t *testing.T) {
	c := newCLI(t, "sqlite")
	c.must("", "client", "add", "pub", "--public", "--redirect-uri", "https://m.example.org/_synapse/client/oidc/callback")
	p := parseSynapseConfig(t, c.must("", "synapse-config", "--client", "pub"))
	if p.ClientAuthMethod != "none" || p.PKCEMethod != "always" || p.ClientSecretPath != "" {
		t.Errorf("public client block: %+v", p)
	}
	if status, _, errOut := c.run("", "synapse-config", "--client", "nobody"); status != 1 || !strings.Contains(errOut, "client add") {
		t.Errorf("unknown client: exit %d, %q", status, errOut)
	}
	if status, _, _ := c.run("", "synapse-config"); status != 2 {
		t.Errorf("missing --client: exit %d, want 2", status)
	}
}

func TestSynapseConfigWithoutModeIsTheLegacyBlock(t *testing.T) {
	c := newCLI(t, "sqlite")
	c.must("", "client", "add", "synapse", "--redirect-uri", "https://matrix.example.org/_synapse/client/oidc/callback")
	plain := c.must("", "synapse-config", "--client", "synapse")
	if legacy := c.must("", "synapse-config", "--mode", "legacy", "--client", "synapse"); legacy != plain {
		t.Errorf("--mode legacy differs from the default:\n%s\n---\n%s", legacy, plain)
	}
	if p := parseSynapseConfig(t, plain); p.ClientSecretPath != "/etc/matrix-synapse/mxidp-client-secret" {
		t.Errorf("client_secret_path = %q, want the legacy default", p.ClientSecretPath)
	}
	for name, args := range map[string][]string{
		"no client":            {"synapse-config", "--mode", "legacy"},
		"endpoint is next-gen": {"synapse-config", "--client", "synapse", "--endpoint", "http://127.0.0.1:8080/"},
	} {
		if status, out, errOut := c.run("", args...); status != 2 || out != "" || !strings.Contains(errOut, "--") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want 2 naming the flag", name, status, out, errOut)
		}
	}
}

// nextGenBlock is what synapse-config --mode next-gen must put into
// homeserver.yaml (Synapse docs/usage/configuration/config_documentation.md,
// "matrix_authentication_service"; synapse/config/mas.py).
type nextGenBlock struct {
	MAS struct {
		Enabled    bool   `yaml:"enabled"`
		Endpoint   string `yaml:"endpoint"`
		SecretPath string `yaml:"secret_path"`
	} `yaml:"matrix_authentication_service"`
	PasswordConfig struct {
		Enabled bool `yaml:"enabled"`
	} `yaml:"password_config"`
	EnableRegistration bool `yaml:"enable_registration"`
}

// parseNextGen reads the block strictly: the keys above, every one of them
// set, and nothing else that Synapse would also read.
func parseNextGen(t *testing.T, out string) nextGenBlock {
	t.Helper()
	var top map[string]any
	if err := yaml.Unmarshal([]byte(out), &top); err != nil {
		t.Fatalf("synapse-config --mode next-gen is not YAML (%v):\n%s", err, out)
	}
	want := map[string]bool{"matrix_authentication_service": true, "password_config": true, "enable_registration": true}
	for key := range top {
		if !want[key] {
			t.Errorf("unexpected top-level key %q", key)
		}
		delete(want, key)
	}
	for key := range want {
		t.Errorf("missing top-level key %q", key)
	}
	mas, _ := top["matrix_authentication_service"].(map[string]any)
	if len(mas) != 3 || mas["enabled"] != true || mas["endpoint"] == nil || mas["secret_path"] == nil {
		t.Errorf("matrix_authentication_service = %#v, want enabled: true, endpoint and secret_path only", mas)
	}
	if pc, _ := top["password_config"].(map[string]any); len(pc) != 1 || pc["enabled"] != false {
		t.Errorf("password_config = %#v, want enabled: false only", pc)
	}
	if top["enable_registration"] != false {
		t.Errorf("enable_registration = %#v, want false", top["enable_registration"])
	}
	var b nextGenBlock
	dec := yaml.NewDecoder(strings.NewReader(out))
	dec.KnownFields(true)
	if err := dec.Decode(&b); err != nil {
		t.Fatalf("next-gen block: %v", err)
	}
	return b
}

// nextGenCLI is a command line whose mxidp has next-gen auth configured.
func nextGenCLI(t *testing.T, extraYAML string) *cli {
	secret := filepath.Join(t.TempDir(), "synapse-secret")
	if err := os.WriteFile(secret, []byte("not-a-real-secret-for-the-printer\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &cli{t: t, env: testEnv(t, "sqlite", "matrix:\n  server_name: example.org\n  synapse:\n"+
		"    url: http://127.0.0.1:8008\n    shared_secret_file: "+secret+"\n"+extraYAML)}
}

func TestSynapseConfigNextGenPrintsTheAuthServiceBlock(t *testing.T) {
	c := nextGenCLI(t, "")
	out := c.must("", "synapse-config", "--mode", "next-gen")
	b := parseNextGen(t, out)
	if !b.MAS.Enabled || b.MAS.Endpoint != "https://id.example.org" || b.MAS.SecretPath != "/etc/matrix-synapse/mxidp-shared-secret" ||
		b.PasswordConfig.Enabled || b.EnableRegistration {
		t.Errorf("next-gen block: %+v", b)
	}
	for _, want := range []string{
		// What to check, and the settings Synapse refuses next to the block.
		"matrix.synapse.shared_secret_file", "server_name must be example.org", "oidc_providers", "password_providers",
		"session_lifetime", "refresh_token_lifetime", "experimental_features.msc3861", "http://127.0.0.1:8008 (matrix.synapse.url)",
		// The reverse proxy: mxidp's host, Synapse's paths, and Synapse's side door hidden.
		"server_name id.example.org;", "proxy_pass http://127.0.0.1:8080;", "location ^~ /_synapse/mas { return 404; }",
		"location ~ ^(/_matrix|/_synapse/client) {", "proxy_pass http://127.0.0.1:8008;", "location ^~ /_matrix-internal/ { return 404; }",
		"never make it public",
		// The Matrix login API goes to mxidp, ahead of Synapse's location.
		"location ~ ^/_matrix/client/(api/v1|[^/]+)/(login|logout|refresh)(/|$) {\n#           proxy_pass http://127.0.0.1:8080;",
		"/login/sso/redirect", "/logout/all", "/refresh",
		// Moving from oidc_providers.
		"Matrix IDs stay", "@localpart:example.org", "Everyone logs in once more", "mxidp client remove",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "/oauth2/introspect { return 404; }") {
		t.Error("hides Synapse's introspection door on the host Synapse reaches mxidp at")
	}
	compat, synapse := strings.Index(out, "location ~ "+compatPathRE), strings.Index(out, "location ~ ^(/_matrix|/_synapse/client)")
	if compat < 0 || synapse < 0 || compat > synapse {
		t.Errorf("the Matrix login API's location must come before Synapse's (nginx takes the first matching regular expression):\n%s", out)
	}
	if strings.Contains(out, "mxidp does not either") {
		t.Error("still says mxidp does not answer /login")
	}
}

// TestCompatPathsGoToMxidpAndTheRestToSynapse: the location printed for
// the Matrix login API takes every version's /login (with the SSO
// redirect), /logout, /logout/all and /refresh, and nothing else of
// Synapse's, such as an event of type "login" sent to a room.
func TestCompatPathsGoToMxidpAndTheRestToSynapse(t *testing.T) {
	re := regexp.MustCompile(compatPathRE)
	for path, toMxidp := range map[string]bool{
		"/_matrix/client/v3/login":                                  true,
		"/_matrix/client/r0/login":                                  true,
		"/_matrix/client/unstable/login":                            true,
		"/_matrix/client/api/v1/login":                              true,
		"/_matrix/client/v3/login/sso/redirect":                     true,
		"/_matrix/client/v3/login/sso/redirect/mxidp":               true,
		"/_matrix/client/r0/logout":                                 true,
		"/_matrix/client/v3/logout/all":                             true,
		"/_matrix/client/v3/refresh":                                true,
		"/_matrix/client/v1/refresh":                                true,
		"/_matrix/client/v3/loginx":                                 false,
		"/_matrix/client/v3/logouts":                                false,
		"/_matrix/client/v3/account/whoami":                         false,
		"/_matrix/client/v3/sync":                                   false,
		"/_matrix/client/v3/rooms/!r:example.org/send/login/txn1":   false,
		"/_matrix/client/v3/rooms/!r:example.org/state/m.login/":    false,
		"/_matrix/client/v3/user/@a:example.org/account_data/login": false,
		"/_matrix/client/login":                                     false,
		"/_matrix/login":                                            false,
		"/_synapse/mas/login":                                       false,
		"/_matrix/client/v1/auth_metadata":                          false,
	} {
		if got := re.MatchString(path); got != toMxidp {
			t.Errorf("%s: to mxidp %v, want %v", path, got, toMxidp)
		}
	}
}

func TestSynapseConfigNextGenWithAnInternalEndpoint(t *testing.T) {
	c := nextGenCLI(t, "")
	path := `/srv/synapse "secret"`
	out := c.must("", "synapse-config", "--mode", "next-gen", "--endpoint", "http://127.0.0.1:8080/", "--secret-path", path)
	b := parseNextGen(t, out)
	if b.MAS.Endpoint != "http://127.0.0.1:8080/" || b.MAS.SecretPath != path {
		t.Errorf("endpoint %q, secret_path %q", b.MAS.Endpoint, b.MAS.SecretPath)
	}
	if !strings.Contains(out, "location = /oauth2/introspect { return 404; }") || !strings.Contains(out, "same mxidp as the issuer\n#    https://id.example.org.") {
		t.Errorf("an internal endpoint: the public host need not serve Synapse's introspection:\n%s", out)
	}
	out = c.must("", "synapse-config", "--mode", "next-gen", "--endpoint", "http://10.0.0.5:8080")
	if !strings.Contains(out, "plain http") {
		t.Errorf("no warning about the secret crossing a network in clear:\n%s", out)
	}
}

func TestSynapseConfigNextGenUnderAPath(t *testing.T) {
	c := nextGenCLI(t, "listen: 0.0.0.0:9000\n")
	c.env["MXIDP_ISSUER"] = "https://matrix.example.org/auth"
	out := c.must("", "synapse-config", "--mode", "next-gen")
	if b := parseNextGen(t, out); b.MAS.Endpoint != "https://matrix.example.org/auth" {
		t.Errorf("endpoint %q", b.MAS.Endpoint)
	}
	for _, want := range []string{
		"server_name matrix.example.org;", "location ^~ /auth/ {", "proxy_pass http://127.0.0.1:9000/;",
		"location ^~ /auth/_matrix-internal/ { return 404; }", "location = /auth/metrics { return 404; }",
		"location ^~ /_synapse/mas { return 404; }",
		// The login API is at the root of mxidp's listener, not under the prefix.
		"location ~ " + compatPathRE + " {\n#           proxy_pass http://127.0.0.1:9000;\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the output lacks %q:\n%s", want, out)
		}
	}
}

// Values that reach the comments cannot add YAML of their own.
func TestNextGenBlockKeepsConfigValuesInsideComments(t *testing.T) {
	out := nextGenSynapseBlock(nextGen{
		Issuer: "https://id.example.org", Endpoint: "https://id.example.org", SecretPath: "/x\nenable_registration: true",
		ServerName: "example.org\npassword_config: {enabled: true}", SynapseURL: "http://127.0.0.1:8008\nuser_consent: {}",
		SharedSecretFile: "/etc/s\noidc_providers: []", Listen: "127.0.0.1:8080",
	})
	b := parseNextGen(t, out)
	if b.MAS.SecretPath != "/x\nenable_registration: true" || b.EnableRegistration || b.PasswordConfig.Enabled {
		t.Errorf("a value escaped its quotes or its comment: %+v\n%s", b, out)
	}
}

func TestSynapseConfigNextGenRefusesWhatCannotWork(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "synapse-secret")
	if err := os.WriteFile(secret, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "no-such-secret")
	for name, tc := range map[string]struct {
		yaml string
		args []string
		want []string
	}{
		"next-gen not configured": {"", nil, []string{"matrix.synapse.url", "matrix.synapse.shared_secret_file", "openssl rand -hex 32"}},
		"no shared secret":        {"matrix:\n  synapse:\n    url: http://127.0.0.1:8008\n", nil, []string{"matrix.synapse.shared_secret_file"}},
		"no Synapse URL":          {"matrix:\n  synapse:\n    shared_secret_file: " + secret + "\n", nil, []string{"matrix.synapse.url"}},
		"secret too short": {"matrix:\n  synapse:\n    url: http://127.0.0.1:8008\n    shared_secret_file: " + secret + "\n", nil,
			[]string{secret, "openssl rand -hex 32"}},
		"secret file missing": {"matrix:\n  synapse:\n    url: http://127.0.0.1:8008\n    shared_secret_file: " + missing + "\n", nil,
			[]string{missing, "openssl rand -hex 32"}},
		"legacy client flag":    {"", []string{"--client", "synapse"}, []string{"--client"}},
		"legacy idp flag":       {"", []string{"--idp-name", "X"}, []string{"--idp-name"}},
		"endpoint not http":     {"", []string{"--endpoint", "ftp://127.0.0.1/"}, []string{"--endpoint"}},
		"endpoint without host": {"", []string{"--endpoint", "http:///x"}, []string{"--endpoint"}},
		"endpoint with a query": {"", []string{"--endpoint", "http://127.0.0.1:8080/?a=b"}, []string{"--endpoint"}},
		"endpoint with a password": {"", []string{"--endpoint", "http://mxidp:" + noteSecret("endpoint-pw-7f3a9c") + "@127.0.0.1:8080/"},
			[]string{"--endpoint", "user name and password"}},
		"secret path with a newline": {"", []string{"--secret-path", "/x\nenable_registration: true"}, []string{"--secret-path"}},
	} {
		t.Run(name, func(t *testing.T) {
			c := nextGenCLI(t, "")
			if tc.yaml != "" || tc.args == nil {
				c.env["MXIDP_CONFIG"] = writeConfig(t, tc.yaml)
			}
			status, out, errOut := c.run("", append([]string{"synapse-config", "--mode", "next-gen"}, tc.args...)...)
			if status != 2 || out != "" {
				t.Errorf("exit %d, stdout %q; want 2 and nothing printed", status, out)
			}
			for _, want := range tc.want {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr lacks %q: %s", want, errOut)
				}
			}
		})
	}
	c := nextGenCLI(t, "")
	if status, _, errOut := c.run("", "synapse-config", "--mode", "modern"); status != 2 || !strings.Contains(errOut, "next-gen") {
		t.Errorf("unknown mode: exit %d, %q", status, errOut)
	}
}
