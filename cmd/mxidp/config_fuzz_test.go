package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// urlPassword returns the password in a database URL as a URL parser
// finds it (the userinfo ends at the authority's last "@"), or "".
func urlPassword(raw string) string {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return ""
	}
	_, pw, _ := strings.Cut(rest[:at], ":")
	return pw
}

// FuzzConfig loads fuzzed configuration files. Properties: no panic;
// either a configuration that validates again without problems, or a
// *ConfigError listing at least one non-empty problem; and the password
// of a database URL never appears in the error.
func FuzzConfig(f *testing.F) {
	for _, s := range []string{
		"",
		"issuer: https://id.example.org\nmatrix: {server_name: example.org}\n",
		"issuer: https://id.example.org/\nlisten: nonsense\ndatabase: mysql://root:hunter2@x/db\n",
		"database: postgres://mxidp:s3cr3t-pw@db.example.org/mxidp\n",
		"database: postgresql://mxidp:p@ss-w0rd@db.example.org:99999/mxidp\n",
		"database: sqlite://\n",
		"users: {source: platform, platform: {database: 'sqlite:///tmp/x.db', queries: {by_login: 'select 1', by_id: x, by_email: x, search: x}}}\n",
		"issuer: [1, 2]\nlisten: {a: b}\n",
		"issuer: https://id.example.org\nunknown_option: 1\nrest: {enabled: yes, allowed_networks: [10.0.0.0/8, nonsense], timeout: 5}\n",
		"keys: {rotation_period: 1m, refresh_interval: 1ns}\ntokens: {id_token_lifetime: -1h}\n",
		"branding: {primary_color: red, platform_url: 'javascript:alert(1)', logo_file: /etc/passwd}\n",
		"passwords: {argon2id: {time: 0, memory_kib: -1, threads: 300}}\n",
		"throttle: {account_burst: -1, base_delay: 0s}\naudit: {retention: 1s}\nlog: {level: loud, format: xml}\n",
		"trusted_proxies: [::1/129]\n",
		"a: &a [*a, *a]\n",
		"- just\n- a list\n",
		"issuer: \"\\xff\"\n",
		"---\nissuer: https://a.example\n---\nissuer: https://b.example\n",
		"%YAML 1.1\n---\nissuer: !!binary aGk=\n",
		"\t\tissuer: x",
	} {
		f.Add(s)
	}
	dir := f.TempDir()
	path := filepath.Join(dir, "mxidp.yaml")
	f.Fuzz(func(t *testing.T, text string) {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := LoadConfig(path, env(nil))
		if err == nil {
			if problems := c.validate(); len(problems) > 0 {
				t.Fatalf("accepted configuration %q fails validation again: %q", text, problems)
			}
			return
		}
		var ce *ConfigError
		if !errors.As(err, &ce) {
			t.Fatalf("LoadConfig(%q): %T %v; want a *ConfigError", text, err, err)
		}
		if len(ce.Problems) == 0 {
			t.Fatalf("LoadConfig(%q): a ConfigError without problems", text)
		}
		for _, p := range ce.Problems {
			if strings.TrimSpace(p) == "" {
				t.Errorf("LoadConfig(%q): an empty problem in %q", text, ce.Problems)
			}
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "configuration ("+path+") has ") {
			t.Errorf("error %q does not name the file", msg)
		}
		// The passwords of database URLs, as the YAML reads them.
		var doc struct {
			Database string `yaml:"database"`
			Users    struct {
				Platform struct {
					Database string `yaml:"database"`
				} `yaml:"platform"`
			} `yaml:"users"`
		}
		if yaml.Unmarshal([]byte(text), &doc) != nil {
			return
		}
		for _, db := range []string{doc.Database, doc.Users.Platform.Database} {
			if strings.HasPrefix(db, "sqlite://") {
				continue // a file path, no password
			}
			pw := urlPassword(db)
			// Short or repeated strings may appear in the error for
			// other reasons.
			if len(pw) < 4 || strings.Count(text, pw) != 1 || strings.Contains(path, pw) {
				continue
			}
			// The password, or a piece of it between "@" signs (a
			// redaction that stops at the first "@" shows the rest).
			var shown string
			for _, piece := range append([]string{pw}, strings.Split(pw, "@")...) {
				if len(piece) >= 4 && strings.Contains(msg, piece) {
					shown = piece
					break
				}
			}
			if shown == "" {
				continue
			}
			// Not a leak when the text is there for another reason: the
			// same file with another password shows it too.
			if err := os.WriteFile(path, []byte(strings.Replace(text, pw, "Zq9-other-Zq9", 1)), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err2 := LoadConfig(path, env(nil)); err2 == nil || !strings.Contains(err2.Error(), shown) {
				t.Errorf("the error shows %q of the database password %q in %q:\n%s", shown, pw, db, msg)
			}
		}
	})
}
