package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mxidp/mxidp/provider"
	"github.com/mxidp/mxidp/provider/password"
	"github.com/mxidp/mxidp/storage"
	"github.com/mxidp/mxidp/storage/storagetest"
)

// cli runs mxidp in-process against one database.
type cli struct {
	t   *testing.T
	env map[string]string
}

func newCLI(t *testing.T, backend string) *cli {
	return &cli{t: t, env: testEnv(t, backend, "")}
}

// testEnv configures mxidp through its environment for one test: a new
// database of the backend, a private secret key file, and a cheap password
// hash; extraYAML adds options.
func testEnv(t testing.TB, backend, extraYAML string) map[string]string {
	return map[string]string{
		"MXIDP_DATABASE":        storagetest.URL(t, backend),
		"MXIDP_SECRET_KEY_FILE": filepath.Join(t.TempDir(), "secret.key"),
		"MXIDP_ISSUER":          "https://id.example.org",
		"MXIDP_CONFIG":          writeConfig(t, "passwords:\n  argon2id: {time: 1, memory_kib: 64, threads: 1}\n"+extraYAML),
	}
}

func (c *cli) run(stdin string, args ...string) (status int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	if strings.Contains(strings.Join(args, " "), "-stdin") {
		noteSecret(stdin)
	}
	status = run(args, strings.NewReader(stdin), &out, &errOut, env(c.env))
	noteGenerated(out.String())
	checkLogHasNoSecrets(c.t, "mxidp "+strings.Join(args, " "), errOut.String())
	return status, out.String(), errOut.String()
}

func (c *cli) must(stdin string, args ...string) string {
	c.t.Helper()
	status, out, errOut := c.run(stdin, args...)
	if status != 0 {
		c.t.Fatalf("mxidp %s: exit %d\n%s%s", strings.Join(args, " "), status, out, errOut)
	}
	return out
}

func (c *cli) store() *storage.Store {
	c.t.Helper()
	s, err := storage.Open(context.Background(), c.env["MXIDP_DATABASE"], storage.Options{})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { s.Close() })
	return s
}

func TestUserCommands(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			c := newCLI(t, backend)
			out := c.must("s3cret password\n", "user", "add", "Alice", "--password-stdin", "--email", "alice@example.org", "--name", "Alice L.")
			if !strings.Contains(out, "@alice:id.example.org") || strings.Contains(out, "s3cret") {
				t.Errorf("user add printed %q", out)
			}
			var users []map[string]any
			if err := json.Unmarshal([]byte(c.must("", "user", "list", "--json")), &users); err != nil {
				t.Fatal(err)
			}
			if len(users) != 1 || users[0]["username"] != "alice" || users[0]["email_verified"] != true || users[0]["disabled"] != false {
				t.Errorf("user list --json = %v", users)
			}
			if _, hasHash := users[0]["password_hash"]; hasHash {
				t.Error("user list --json shows the password hash")
			}
			u, err := c.store().UserByUsername(context.Background(), "alice")
			if err != nil || strings.HasSuffix(u.PasswordHash, "\n") {
				t.Fatal(u, err)
			}
			if ok, _ := verifyPassword(u.PasswordHash, "s3cret password"); !ok {
				t.Error("the password read from stdin (less its newline) does not verify")
			}

			c.must("", "user", "disable", "alice")
			if u, _ := c.store().UserByUsername(context.Background(), "alice"); !u.Disabled {
				t.Error("user disable did not disable")
			}
			c.must("", "user", "enable", "ALICE")
			out = c.must("", "user", "passwd", "alice")
			pw := regexp.MustCompile(`password: (\S+)`).FindStringSubmatch(out)
			if pw == nil {
				t.Fatalf("user passwd printed no generated password: %q", out)
			}
			if u, _ := c.store().UserByUsername(context.Background(), "alice"); u.Disabled {
				t.Error("user enable did not enable")
			} else if ok, _ := verifyPassword(u.PasswordHash, pw[1]); !ok {
				t.Error("the generated password does not verify")
			}
			gen := c.must("", "user", "add", "bob")
			if !regexp.MustCompile(`password: [A-Z2-7]{26}\n`).MatchString(gen) {
				t.Errorf("user add without --password-stdin printed %q", gen)
			}
			c.must("", "user", "delete", "bob")
			if status, _, errOut := c.run("", "user", "delete", "bob"); status != 1 || !strings.Contains(errOut, `no user "bob"`) {
				t.Errorf("deleting a missing user: exit %d, %q", status, errOut)
			}
			if status, _, errOut := c.run("pw\n", "user", "add", "carol", "--password-stdin"); status != 1 || !strings.Contains(errOut, "fewer than 8") {
				t.Errorf("short password: exit %d, %q", status, errOut)
			}
			if status, _, errOut := c.run("", "user", "add", "carol", "--password-stdin"); status != 2 || !strings.Contains(errOut, "standard input is empty") {
				t.Errorf("empty stdin: exit %d, %q", status, errOut)
			}
		})
	}
}

func TestUserSetChangesOnlyTheGivenProfileFields(t *testing.T) {
	c := newCLI(t, "sqlite")
	c.must("s3cret password\n", "user", "add", "alice", "--password-stdin", "--email", "alice@example.org",
		"--name", "Alice", "--msisdn", "+44 7700 900123", "--avatar", "mxc://example.org/AvatarAlice")
	c.must("", "user", "set", "alice", "--name", "Alice Liddell", "--avatar", "")
	u, err := c.store().UserByUsername(context.Background(), "alice")
	if err != nil || u.DisplayName != "Alice Liddell" || u.AvatarURL != "" || u.MSISDN != "447700900123" || u.Email != "alice@example.org" {
		t.Errorf("after user set: %+v, %v", u, err)
	}
	if status, _, errOut := c.run("", "user", "set", "alice"); status != 2 || !strings.Contains(errOut, "nothing to change") {
		t.Errorf("user set without flags: exit %d, %q", status, errOut)
	}
	if status, _, errOut := c.run("", "user", "set", "alice", "--msisdn", "call me"); status != 1 || !strings.Contains(errOut, "not an international number") {
		t.Errorf("bad phone number: exit %d, %q", status, errOut)
	}
	var users []map[string]any
	if err := json.Unmarshal([]byte(c.must("", "user", "list", "--json")), &users); err != nil || users[0]["msisdn"] != "447700900123" {
		t.Errorf("user list --json = %v, %v; want the msisdn", users, err)
	}
}

func TestClientAddPrintsTheSecretOnceAndStoresOnlyItsHash(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			c := newCLI(t, backend)
			out := c.must("", "client", "add", "synapse",
				"--redirect-uri", "https://matrix.example.org/_synapse/client/oidc/callback",
				"--backchannel-logout-uri", "https://matrix.example.org/_synapse/client/oidc/backchannel_logout",
				"--post-logout-redirect-uri", "https://app.example.org/", "--skip-consent")
			m := regexp.MustCompile(`client_secret: ([A-Za-z0-9_-]{43})\n`).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("client add printed no secret: %q", out)
			}
			secret := m[1]
			// Nothing in the database holds the secret; the stored hash verifies it.
			var stored string
			if err := c.store().DB().QueryRow(`SELECT secret_hash FROM clients WHERE id = 'synapse'`).Scan(&stored); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(stored, secret) || !provider.VerifyClientSecret(stored, secret) {
				t.Errorf("stored %q for secret %q", stored, secret)
			}
			var hits int
			c.store().DB().QueryRow(`SELECT COUNT(*) FROM clients WHERE secret_hash LIKE $1 OR redirect_uris LIKE $1`, "%"+secret+"%").Scan(&hits)
			if hits != 0 {
				t.Error("the secret is stored in the clear")
			}
			list := c.must("", "client", "list", "--json")
			if strings.Contains(list, secret) || strings.Contains(list, stored) || !strings.Contains(list, `"skip_consent": true`) {
				t.Errorf("client list --json = %s", list)
			}
			if text := c.must("", "client", "list"); strings.Contains(text, secret) || !strings.Contains(text, "synapse") {
				t.Errorf("client list = %s", text)
			}

			out = c.must("", "client", "rotate-secret", "synapse")
			if m2 := regexp.MustCompile(`client_secret: (\S+)`).FindStringSubmatch(out); m2 == nil || m2[1] == secret {
				t.Errorf("rotate-secret printed %q", out)
			}
			chosen := strings.Repeat("Zz9-", 10)
			if out := c.must(chosen+"\n", "client", "add", "element", "--public", "--redirect-uri", "https://app.example.org/"); strings.Contains(out, "client_secret") {
				t.Errorf("public client printed a secret: %q", out)
			}
			if status, _, errOut := c.run(chosen+"\n", "client", "add", "other", "--secret-stdin", "--redirect-uri", "https://o.example/cb"); status != 0 {
				t.Errorf("chosen secret: exit %d %s", status, errOut)
			}
			// What the rules refuse is the operator's mistake: exit 2, with
			// the reason, and nothing registered or changed.
			for name, tc := range map[string]struct {
				stdin, want string
				args        []string
			}{
				"no redirect URI":        {"", "--redirect-uri", []string{"client", "add", "nouri"}},
				"short secret":           {"short\n", "fewer than", []string{"client", "add", "weak", "--secret-stdin", "--redirect-uri", "https://o.example/cb"}},
				"secret with a space":    {strings.Repeat("a", 40) + " b\n", "A-Z a-z 0-9", []string{"client", "add", "spaced", "--secret-stdin", "--redirect-uri", "https://o.example/cb"}},
				"public with a secret":   {chosen + "\n", "public client has no secret", []string{"client", "add", "pub", "--public", "--secret-stdin", "--redirect-uri", "https://o.example/cb"}},
				"fragment in a URI":      {"", "fragment", []string{"client", "add", "frag", "--redirect-uri", "https://o.example/cb#x"}},
				"short rotated secret":   {"short\n", "fewer than", []string{"client", "rotate-secret", "other", "--secret-stdin"}},
				"public client's secret": {"", "has no secret", []string{"client", "rotate-secret", "element"}},
			} {
				if status, _, errOut := c.run(tc.stdin, tc.args...); status != 2 || !strings.Contains(errOut, tc.want) {
					t.Errorf("%s: exit %d, %q; want 2 naming %q", name, status, errOut, tc.want)
				}
			}
			if list := c.must("", "client", "list"); strings.Contains(list, "weak") || strings.Contains(list, "spaced") || strings.Contains(list, "frag") || strings.Contains(list, "nouri") {
				t.Errorf("a refused client was registered: %s", list)
			}
			var otherHash string
			if err := c.store().DB().QueryRow(`SELECT secret_hash FROM clients WHERE id = 'other'`).Scan(&otherHash); err != nil || !provider.VerifyClientSecret(otherHash, chosen) {
				t.Errorf("after the refused rotation the client's secret is no longer the one it had (%v)", err)
			}
			c.must("", "client", "remove", "synapse")
			if status, _, _ := c.run("", "client", "remove", "synapse"); status != 1 {
				t.Errorf("removing a missing client: exit %d, want 1", status)
			}
		})
	}
}

func TestBadCommandLinesAndConfigurationsExitTwo(t *testing.T) {
	c := newCLI(t, "sqlite")
	for name, args := range map[string][]string{
		"unknown command":    {"frobnicate"},
		"unknown flag":       {"user", "list", "--colour"},
		"missing argument":   {"user", "add"},
		"extra argument":     {"keys", "list", "extra"},
		"flag needs value":   {"client", "add", "x", "--redirect-uri"},
		"unknown subcommand": {"user", "frobnicate"},
	} {
		if status, _, errOut := c.run("", args...); status != 2 || errOut == "" {
			t.Errorf("%s: exit %d, stderr %q; want 2 with a message", name, status, errOut)
		}
	}
	c.env["MXIDP_LISTEN"] = "nonsense"
	c.env["MXIDP_DATABASE"] = "mysql://x"
	status, _, errOut := c.run("", "serve")
	if status != 2 || !strings.Contains(errOut, "listen:") || !strings.Contains(errOut, "database:") || !strings.Contains(errOut, "127.0.0.1:8080") {
		t.Errorf("invalid config: exit %d, %q", status, errOut)
	}
}

func TestKeysRotateNeedsTheServersSecret(t *testing.T) {
	c := newCLI(t, "sqlite")
	if out := c.must("", "keys", "list"); !strings.Contains(out, "no signing keys yet") {
		t.Errorf("keys list on a fresh database: %q", out)
	}
	status, _, errOut := c.run("", "keys", "rotate")
	if status != 1 || !strings.Contains(errOut, "secret key file") {
		t.Errorf("rotate without the secret file: exit %d, %q", status, errOut)
	}
}

func verifyPassword(hash, pw string) (bool, error) { return password.Verify(hash, pw) }
