package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mxidp/mxidp/provider"
	"github.com/mxidp/mxidp/provider/password"
)

// user import: hashes a platform exported (made here by Django and
// passlib) log in as they are and are replaced by argon2id at the first
// login; a bad file changes nothing.
func TestUserImportKeepsForeignHashesUntilTheFirstLogin(t *testing.T) {
	hashes := platformHashes(t, []map[string]any{
		{"scheme": "django:pbkdf2_sha256", "password": "Wonder-Land-42"},
		{"scheme": "passlib:phpass", "password": "builder-99"},
	})
	line := func(v map[string]any) string { b, _ := json.Marshal(v); return string(b) }
	file := filepath.Join(t.TempDir(), "export.jsonl")
	export := strings.Join([]string{
		line(map[string]any{"username": "Alice", "email": "Alice@Example.org", "display_name": "Alice Liddell", "password_hash": hashes[0], "groups": []string{"staff"}}),
		"",
		line(map[string]any{"username": "bob", "email": "bob@example.net", "email_verified": false, "password_hash": hashes[1], "msisdn": "+44 7700 900123"}),
	}, "\n")
	if err := os.WriteFile(file, []byte(export), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newCLI(t, "sqlite")
	if out := c.must("", "user", "import", file); !strings.Contains(out, "imported 2 user(s)") {
		t.Errorf("user import printed %q", out)
	}
	store := c.store()
	ctx := context.Background()
	alice, err := store.UserByUsername(ctx, "alice")
	if err != nil || alice.PasswordHash != hashes[0] || !alice.EmailVerified || alice.Email != "alice@example.org" {
		t.Fatalf("imported alice = %+v, %v", alice, err)
	}
	if g, _ := store.UserGroups(ctx, alice.ID); len(g) != 1 || g[0] != "staff" {
		t.Errorf("alice's groups = %v", g)
	}
	if bob, _ := store.UserByUsername(ctx, "bob"); bob.EmailVerified || bob.MSISDN != "447700900123" {
		t.Errorf("imported bob = %+v; want an unverified address and the msisdn", bob)
	}

	login := &provider.Login{Store: store, Hash: password.Params{Time: 1, MemoryKiB: 64, Threads: 1}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for name, pw := range map[string]string{"alice": "Wonder-Land-42", "bob": "builder-99"} {
		if _, err := login.CheckPassword(ctx, provider.Attempt{Login: name, Password: pw + "x"}); err == nil {
			t.Errorf("%s: a wrong password passed", name)
		}
		if _, err := login.CheckPassword(ctx, provider.Attempt{Login: name, Password: pw}); err != nil {
			t.Errorf("%s: the exported hash does not log in: %v", name, err)
		}
		u, _ := store.UserByUsername(ctx, name)
		if password.Format(u.PasswordHash) != "argon2id" {
			t.Errorf("%s's hash after the first login is %s; want argon2id", name, password.Format(u.PasswordHash))
		}
		if _, err := login.CheckPassword(ctx, provider.Attempt{Login: name, Password: pw}); err != nil {
			t.Errorf("%s: the upgraded hash does not log in: %v", name, err)
		}
	}

	// Run again: nothing changes, both are reported as taken.
	if out := c.must("", "user", "import", file); !strings.Contains(out, "imported 0 user(s)") || !strings.Contains(out, "skipped 2") {
		t.Errorf("second import printed %q", out)
	}

	// A file with problems imports nothing, and names every line at fault.
	bad := strings.Join([]string{
		line(map[string]any{"username": "carol", "password_hash": hashes[0]}),
		line(map[string]any{"username": "dave", "password_hash": "md5:not-a-known-format"}),
		line(map[string]any{"username": "Carol", "password_hash": hashes[0]}),
		`{"username": "erin", "pasword_hash": "typo"}`,
		`not json`,
	}, "\n")
	status, _, errOut := c.run(bad, "user", "import", "-")
	for _, want := range []string{"line 2: password_hash of dave is in no format", "line 3: username carol is on line 1 too", "line 4:", "pasword_hash", "line 5:", "nothing was imported"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("bad import: error lacks %q:\n%s", want, errOut)
		}
	}
	if status != 2 {
		t.Errorf("bad import: exit %d; want 2", status)
	}
	if n, _ := store.CountUsers(ctx); n != 2 {
		t.Errorf("%d users after a refused import; want 2", n)
	}
}
