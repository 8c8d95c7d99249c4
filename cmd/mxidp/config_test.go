package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func writeConfig(t testing.TB, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mxidp.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDefaultsServeALocalTrial(t *testing.T) {
	c, err := LoadConfig("", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Issuer != "http://127.0.0.1:8080" || c.Listen != "127.0.0.1:8080" || c.Database != "sqlite://./data/mxidp.db" ||
		c.SecretKeyFile != "./data/secret.key" || c.Matrix.ServerName != "127.0.0.1:8080" || c.Users.Source != "builtin" ||
		c.Passwords.Argon2id != (Argon2idConfig{Time: 2, MemoryKiB: 19456, Threads: 1}) {
		t.Errorf("defaults: %+v", c)
	}
}

func TestFileThenEnvironmentOverrideDefaults(t *testing.T) {
	path := writeConfig(t, `
issuer: https://id.example.org
listen: 0.0.0.0:9000
database: postgres://mxidp@db.example.org/mxidp
matrix:
  server_name: example.org
passwords:
  argon2id: {time: 3, memory_kib: 65536, threads: 2}
keys:
  publication_delay: 1h
  rotation_period: 0s
tokens:
  id_token_lifetime: 30m
log: {level: debug, format: json}
`)
	c, err := LoadConfig("", env(map[string]string{"MXIDP_CONFIG": path, "MXIDP_LISTEN": "127.0.0.1:9001", "MXIDP_MATRIX_SERVER_NAME": "matrix.example.org"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Issuer != "https://id.example.org" || c.Listen != "127.0.0.1:9001" || c.Matrix.ServerName != "matrix.example.org" ||
		c.Passwords.Argon2id.MemoryKiB != 65536 || c.Keys.PublicationDelay != time.Hour || c.Keys.RotationPeriod != 0 ||
		c.Keys.RefreshInterval != 5*time.Second || c.Tokens.IDTokenLifetime != 30*time.Minute || c.Log.Format != "json" {
		t.Errorf("loaded: %+v", c)
	}
	if c.Database != "postgres://mxidp@db.example.org/mxidp" {
		t.Errorf("database = %q", c.Database)
	}
}

func TestServerNameDefaultsToTheIssuerHost(t *testing.T) {
	c, err := LoadConfig("", env(map[string]string{"MXIDP_ISSUER": "https://example.org:8448"}))
	if err != nil || c.Matrix.ServerName != "example.org:8448" {
		t.Errorf("server name %q, %v", c.Matrix.ServerName, err)
	}
}

// Every problem is reported at once, each naming its option and a fix.
func TestInvalidConfigurationListsEveryProblemWithItsFix(t *testing.T) {
	path := writeConfig(t, `
issuer: https://id.example.org/
listen: nonsense
database: mysql://root:hunter2@x/db
passwords:
  argon2id: {time: 0, memory_kib: 19456, threads: 1}
users:
  source: ldap
keys:
  rotation_period: 5m
log: {level: loud}
`)
	_, err := LoadConfig(path, env(nil))
	var cfgErr *ConfigError
	if !errors.As(err, &cfgErr) {
		t.Fatalf("err = %v, want a ConfigError", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"issuer:", "trailing slash",
		`listen: "nonsense" is not HOST:PORT`, "127.0.0.1:8080",
		"database:", "mysql://root:xxxxx@x/db", "sqlite://PATH", "postgres://",
		"passwords.argon2id: time must be at least 1",
		`users.source: "ldap"`,
		"keys.rotation_period",
		"log.level",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "hunter2") {
		t.Error("the message shows the database password")
	}
	if len(cfgErr.Problems) != 7 {
		t.Errorf("%d problems listed, want 7:\n%s", len(cfgErr.Problems), msg)
	}
}

func TestUnknownKeysAndBadValuesInTheFileAreProblems(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, want string }{
		"typo":            {"isuer: https://id.example.org\n", `unknown option "isuer"`},
		"nested typo":     {"matrix:\n  servername: example.org\n", `unknown option "servername"`},
		"bad duration":    {"keys:\n  publication_delay: soon\n", "durations like"},
		"not yaml":        {"issuer: [unclosed\n", "not valid YAML"},
		"wrong type":      {"passwords:\n  argon2id:\n    time: many\n", "cannot unmarshal"},
		"http off-host":   {"issuer: http://id.example.org\n", "must use https"},
		"issuer userinfo": {"issuer: https://user:hunter2@id.example.org\n", `remove the "user:password@" part`},
		"issuer user":     {"issuer: https://user@id.example.org\n", `issuer: "https://user@id.example.org" has a user name or password`},
		"issuer query":    {"issuer: https://id.example.org/?tenant=a\n", `remove everything from the "?" or "#" on`},
		"issuer empty ?":  {"issuer: https://id.example.org/idp?\n", "may not have a ?query or #fragment"},
		"issuer fragment": {"issuer: https://id.example.org/#top\n", "may not have a ?query or #fragment"},
		"platform w/o db": {"users:\n  source: platform\n", "users.platform.database: empty"},
		"bad server name": {"matrix:\n  server_name: 'exa mple.org'\n", "matrix.server_name"},
		"sqlite no path":  {"database: 'sqlite://'\n", "plain file path"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := LoadConfig(writeConfig(t, tc.yaml), env(nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// An issuer with a user name and password is refused with the fix, and
// the password is not repeated in the message.
func TestIssuerWithUserinfoIsRefusedWithoutShowingThePassword(t *testing.T) {
	for _, issuer := range []string{"https://user:hunter2@id.example.org", "http://admin:hunter2@127.0.0.1:8080"} {
		_, err := LoadConfig("", env(map[string]string{"MXIDP_ISSUER": issuer}))
		var cfgErr *ConfigError
		if !errors.As(err, &cfgErr) || !strings.Contains(err.Error(), `remove the "user:password@" part`) {
			t.Errorf("issuer %s: err = %v; want a ConfigError naming the fix", issuer, err)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("issuer %s: the message shows the password: %v", issuer, err)
		}
	}
}

func TestMissingConfigFileIsAProblem(t *testing.T) {
	_, err := LoadConfig(filepath.Join(t.TempDir(), "nope.yaml"), env(nil))
	var cfgErr *ConfigError
	if !errors.As(err, &cfgErr) || !strings.Contains(err.Error(), "--config") {
		t.Errorf("err = %v", err)
	}
}

func TestEmptyConfigFileMeansDefaults(t *testing.T) {
	if _, err := LoadConfig(writeConfig(t, "# nothing set\n"), env(nil)); err != nil {
		t.Error(err)
	}
}

func TestBrandingIsValidatedAndDefaultsToTheServerName(t *testing.T) {
	c, err := LoadConfig("", env(map[string]string{"MXIDP_MATRIX_SERVER_NAME": "example.org"}))
	if err != nil || c.Branding.ProductName != "example.org" || c.Branding.PrimaryColor != "#2a5db0" {
		t.Fatalf("defaults: %+v, %v", c.Branding, err)
	}
	logo := filepath.Join(t.TempDir(), "logo.gif")
	os.WriteFile(logo, []byte("GIF89a"), 0o600)
	_, err = LoadConfig(writeConfig(t, `
branding:
  primary_color: blue
  platform_url: http://community.example.org
  logo_file: `+logo+`
  stylesheet_file: /nonexistent/platform.css
`), env(nil))
	for _, want := range []string{"branding.primary_color", "#2a5db0", "branding.platform_url", "https", "branding.logo_file", ".png", "branding.stylesheet_file"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestPlatformDatabaseMayBeMySQLButMxidpsOwnMayNot(t *testing.T) {
	platform := func(url string) string {
		return "users:\n  source: platform\n  platform:\n    database: '" + url + "'\n    queries:\n" +
			"      by_login: SELECT 1\n      by_id: SELECT 1\n      by_email: SELECT 1\n      search: SELECT 1\n"
	}
	for _, url := range []string{
		"mysql://wp:s%40cret@db.example.org/wordpress",
		"mysql://wp:secret@/wordpress?socket=/run/mysqld/mysqld.sock",
	} {
		if _, err := LoadConfig(writeConfig(t, platform(url)), env(nil)); err != nil {
			t.Errorf("users.platform.database: %s refused: %v", url, err)
		}
	}
	for yaml, want := range map[string]string{
		platform("mysql://wp:hunter2@/wordpress"):                 "users.platform.database: \"mysql://wp:xxxxx@/wordpress\" names no host",
		platform("mysql://wp:hunter2@h/wordpress?sslmode=off"):    `unknown parameter "sslmode"`,
		"database: mysql://wp:hunter2@db.example.org/wordpress\n": "database: \"mysql://wp:xxxxx@db.example.org/wordpress\": MySQL/MariaDB is supported only as a platform database",
	} {
		_, err := LoadConfig(writeConfig(t, yaml), env(nil))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to mention %q", err, want)
		} else if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the message shows the password: %v", err)
		}
	}
}
