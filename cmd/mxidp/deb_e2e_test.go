package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// TestDebianPackageInstallsServesAndPurges builds the package as make deb
// does, installs it with dpkg, has systemd-analyze verify its unit, makes
// a user and a client with the packaged command line as root (which works
// as the service user), starts the installed binary with the packaged
// configuration as the service user, logs in through go-oidc, stops it
// with SIGTERM, and purges the package, which must leave no file, user or
// group behind. It installs system-wide, so it needs root: make test on
// CI runs as root, and there a missing part fails instead of skipping.
func TestDebianPackageInstallsServesAndPurges(t *testing.T) {
	required := os.Getenv("MXIDP_TEST_POSTGRES_REQUIRED") == "1"
	for _, need := range []string{"dpkg", "dpkg-deb", "systemd-analyze", "runuser"} {
		if _, err := exec.LookPath(need); err != nil {
			if required {
				t.Fatalf("%s is missing: apt-get install dpkg systemd util-linux", need)
			}
			t.Skipf("%s is missing", need)
		}
	}
	if os.Getuid() != 0 {
		if required {
			t.Fatal("the package test installs system-wide and needs root")
		}
		t.Skip("the package test installs system-wide and needs root")
	}
	run := func(stdin string, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if exec.Command("dpkg", "-s", "mxidp").Run() == nil {
		t.Fatal("a package mxidp is installed on this machine already; the test installs and purges its own")
	}
	built := strings.TrimSpace(run("", "bash", filepath.Join("..", "..", "contrib", "debian", "build"), t.TempDir()))
	deb := built[strings.LastIndex(built, "\n")+1:]
	run("", "dpkg", "-i", deb)
	purged := false
	t.Cleanup(func() {
		if !purged {
			exec.Command("dpkg", "--purge", "mxidp").Run()
		}
	})
	run("", "systemd-analyze", "verify", "/lib/systemd/system/mxidp.service")
	for path, want := range map[string]string{"/etc/mxidp/mxidp.yaml": "-rw-r-----", "/var/lib/mxidp": "drwxr-x---"} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().String()[len(fi.Mode().String())-10:] != want {
			t.Errorf("%s: %v %v, want mode %s", path, fi.Mode(), err, want)
		}
	}

	run(alicePassword+"\n", "/usr/bin/mxidp", "user", "add", "alice", "--password-stdin", "--email", aliceEmail, "--name", aliceName)
	rp := rpClient{id: "rp", redirectURI: "http://127.0.0.1:9/rp/callback"}
	m := clientSecretRE.FindStringSubmatch(run("", "/usr/bin/mxidp", "client", "add", rp.id,
		"--redirect-uri", rp.redirectURI, "--skip-consent"))
	if m == nil {
		t.Fatal("client add printed no secret")
	}
	rp.secret = m[1]
	// What root's command line made belongs to the service.
	entries, err := os.ReadDir("/var/lib/mxidp")
	if err != nil || len(entries) == 0 {
		t.Fatalf("/var/lib/mxidp after user add and client add: %d entries, %v; want the database", len(entries), err)
	}
	for _, e := range entries {
		fi, err := os.Stat(filepath.Join("/var/lib/mxidp", e.Name()))
		if err != nil {
			t.Errorf("/var/lib/mxidp/%s: %v", e.Name(), err)
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid == 0 {
			t.Errorf("/var/lib/mxidp/%s belongs to root; the service could not write it", e.Name())
		}
	}

	addr := freeAddr(t)
	issuer := "http://" + addr
	// As systemd runs it: the binary itself, as the service user.
	svc, err := user.Lookup("mxidp")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.ParseUint(svc.Uid, 10, 32)
	gid, _ := strconv.ParseUint(svc.Gid, 10, 32)
	srv := exec.Command("/usr/lib/mxidp/mxidp", "serve")
	srv.Dir = "/var/lib/mxidp"
	srv.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	srv.Env = append(os.Environ(), "MXIDP_CONFIG=/etc/mxidp/mxidp.yaml", "MXIDP_LISTEN="+addr, "MXIDP_ISSUER="+issuer)
	logs := &syncBuffer{}
	srv.Stdout, srv.Stderr = logs, logs
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	defer func() {
		srv.Process.Kill()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	waitFor(t, 30*time.Second, "the installed mxidp to be ready", func() bool {
		resp, err := http.Get(issuer + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	e := &openIDEnv{t: t, ctx: ctx, issuer: issuer}
	var p *oidc.Provider
	p, err = oidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatalf("discovery of the installed mxidp: %v\n%s", err, logs)
	}
	e.provider = p
	if err := p.Claims(&e.meta); err != nil {
		t.Fatal(err)
	}
	cfg := e.config(rp, oauth2.AuthStyleInHeader)
	l := e.exchange(cfg, e.authorize(newBrowser(t), cfg))
	if l.claims.Email != aliceEmail {
		t.Errorf("ID token e-mail %q, want %q", l.claims.Email, aliceEmail)
	}
	e.wantUserinfoOK("a token of the installed mxidp", l.token.AccessToken)
	// serve ends cleanly on SIGTERM, as systemctl stop sends it.
	srv.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve ended with %v after SIGTERM:\n%s", err, logs)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not end after SIGTERM")
	}

	run("", "dpkg", "--purge", "mxidp")
	purged = true
	for _, path := range []string{"/etc/mxidp", "/var/lib/mxidp", "/usr/lib/mxidp", "/usr/bin/mxidp",
		"/lib/systemd/system/mxidp.service", "/usr/share/doc/mxidp"} {
		if _, err := os.Lstat(path); !os.IsNotExist(err) {
			t.Errorf("%s is still there after the purge (%v)", path, err)
		}
	}
	for _, db := range []string{"passwd", "group"} {
		if exec.Command("getent", db, "mxidp").Run() == nil {
			t.Errorf("the purge left the %s entry mxidp", db)
		}
	}
}
