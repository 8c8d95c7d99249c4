package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// mxidp backup copies the SQLite database while serve runs and signs
// people in; a second deployment started on the copy, with the same
// secret key file, has the users, clients and signing keys: a relying
// party logs in there and verifies the ID token with the keys the copy
// publishes. The copy is refused over an existing file and on PostgreSQL,
// which pg_dump backs up.
func TestBackupCopiesTheSQLiteDatabaseWhileServing(t *testing.T) {
	e := startOpenID(t, "sqlite")
	c := e.addClient("rp")
	cfg := e.config(c, oauth2.AuthStyleInHeader)
	e.exchange(cfg, e.authorize(newBrowser(t), cfg))

	copyPath := filepath.Join(t.TempDir(), "backup.db")
	if out := e.d.cli("backup", copyPath); !strings.Contains(out, "secret.key") {
		t.Errorf("backup does not remind of the secret key file: %q", out)
	}
	if fi, err := os.Stat(copyPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the copy (password hashes, sealed keys) has mode %v, %v; want 0600", fi.Mode(), err)
	}
	cl := &cli{t: t, env: e.d.env}
	if status, _, errOut := cl.run("", "backup", copyPath); status != 2 || !strings.Contains(errOut, "exists already") {
		t.Errorf("backup over an existing file: exit %d, %q", status, errOut)
	}

	restored := newDeployment(t, "sqlite")
	restored.env["MXIDP_DATABASE"] = "sqlite://" + copyPath
	restored.env["MXIDP_SECRET_KEY_FILE"] = e.d.env["MXIDP_SECRET_KEY_FILE"]
	r := connectOpenID(t, restored)
	if got, want := r.s.kids(), e.s.kids(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("the copy publishes keys %v, the original %v", got, want)
	}
	rc := rpClient{id: c.id, secret: c.secret, redirectURI: c.redirectURI}
	rcfg := r.config(rc, oauth2.AuthStyleInHeader)
	if l := r.exchange(rcfg, r.authorize(newBrowser(t), rcfg)); l.claims.Email != aliceEmail {
		t.Errorf("login on the copy: e-mail %q, want %q", l.claims.Email, aliceEmail)
	}

	pg := &cli{t: t, env: testEnv(t, "postgres", "")}
	pgCopy := filepath.Join(t.TempDir(), "x.db")
	if status, _, errOut := pg.run("", "backup", pgCopy); status != 2 || !strings.Contains(errOut, "pg_dump") {
		t.Errorf("backup of PostgreSQL: exit %d, %q; want 2 naming pg_dump", status, errOut)
	}
	if _, err := os.Stat(pgCopy); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the refused backup left %s behind: %v", pgCopy, err)
	}
}
