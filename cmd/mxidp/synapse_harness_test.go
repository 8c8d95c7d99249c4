package main

// A real Synapse for the end-to-end tests: Debian's matrix-synapse,
// installed in a Debian sid chroot by .ci/synapse-chroot (Debian ships it
// only in sid), started on a free loopback port with a homeserver.yaml of
// the test's. It runs in a private mount namespace with /proc and the
// test's directory mounted inside the chroot, so nothing stays mounted on
// the host; the chroot shares the host's network, so Synapse and mxidp
// reach each other on 127.0.0.1.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite" // Synapse's own SQLite database, read by devices
)

// synapseServerName is the Matrix server name of every test Synapse.
const synapseServerName = "mx.test"

// synapseRoot is where .ci/synapse-chroot keeps the chroot.
func synapseRoot() string {
	if root := os.Getenv("MXIDP_SYNAPSE_ROOT"); root != "" {
		return root
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home := os.Getenv("HOME")
		if u, err := user.Current(); home == "" && err == nil {
			home = u.HomeDir
		}
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "mxidp", "synapse-sid")
}

// synapseOptions shape one Synapse.
type synapseOptions struct {
	// Port is the client listener's port; 0 picks a free one. A test that
	// must name Synapse's URLs before it starts (redirect URIs) picks one
	// with freePort.
	Port int
	// Dir is the directory for homeserver.yaml, Synapse's database and
	// Files; "" makes a new one. A test whose YAML names files by path
	// makes it first.
	Dir string
	// YAML is appended to homeserver.yaml: an oidc_providers block,
	// modules, matrix_authentication_service, further options.
	YAML string
	// Files are written beside homeserver.yaml (name → content): secrets
	// the YAML names by path, Python modules (the directory is on
	// Synapse's PYTHONPATH).
	Files map[string]string
}

// synapse is one started Synapse.
type synapse struct {
	t          *testing.T
	URL        string // http://127.0.0.1:PORT, without a trailing slash
	ServerName string
	Dir        string        // holds homeserver.yaml, the database and opts.Files
	StartTime  time.Duration // from exec to a healthy /health
	cmd        *exec.Cmd
	out        *syncBuffer
	done       chan struct{}
}

// freePort returns a loopback port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startSynapse starts Synapse from the chroot and waits until /health
// answers; the test's cleanup stops it (SIGTERM, then SIGKILL) and shows
// its log when the test failed. Without the chroot the test fails: the
// suite requires a real Synapse.
func startSynapse(t *testing.T, opts synapseOptions) *synapse {
	t.Helper()
	root := synapseRoot()
	if _, err := os.Stat(filepath.Join(root, ".mxidp-synapse-ready")); err != nil {
		t.Fatalf("no Synapse chroot at %s: run .ci/synapse-chroot (as root; make test and .ci/deps do) first: %v", root, err)
	}
	if os.Geteuid() != 0 {
		t.Fatalf("running Synapse from its chroot (%s) needs root, for unshare -m and chroot", root)
	}
	if opts.Port == 0 {
		opts.Port = freePort(t)
	}
	dir := opts.Dir
	if dir == "" {
		dir = t.TempDir()
	}
	s := &synapse{t: t, URL: fmt.Sprintf("http://127.0.0.1:%d", opts.Port), ServerName: synapseServerName,
		Dir: dir, out: &syncBuffer{}, done: make(chan struct{})}
	files := map[string]string{
		"homeserver.yaml":                  s.config(opts),
		"log.yaml":                         synapseLogConfig,
		synapseServerName + ".signing.key": synapseSigningKey(t),
	}
	for name, content := range opts.Files {
		files[name] = content
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// A tmpfs on the chroot's /tmp takes the mount point of a test
	// directory under /tmp, so that the cached tree gains no directories.
	// Each step execs the next: the PID held here is Synapse's.
	script := `set -e
mount -t proc proc "$R/proc"
case "$D" in /tmp/*) mount -t tmpfs -o mode=1777 tmpfs "$R/tmp" ;; esac
mkdir -p "$R$D"
mount --bind "$D" "$R$D"
exec chroot "$R" /usr/bin/python3 -m synapse.app.homeserver -c "$D/homeserver.yaml"`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script)
	cmd.Env = []string{"R=" + root, "D=" + dir, "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
		"HOME=" + dir, "PYTHONPATH=" + dir, "PYTHONDONTWRITEBYTECODE=1"}
	cmd.Stdout, cmd.Stderr = s.out, s.out
	s.cmd = cmd
	began := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start Synapse: %v", err)
	}
	go func() { cmd.Wait(); close(s.done) }()
	t.Cleanup(s.stop)

	deadline := time.Now().Add(90 * time.Second)
	probe := &http.Client{Timeout: 2 * time.Second}
	for {
		if resp, err := probe.Get(s.URL + "/health"); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && string(body) == "OK" {
				break
			}
		}
		select {
		case <-s.done:
			t.Fatalf("Synapse exited while starting (%v):\n%s", cmd.ProcessState, s.out)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("Synapse was not healthy within 90 s:\n%s", s.out)
		}
	}
	s.StartTime = time.Since(began)
	t.Logf("Synapse started in %v at %s", s.StartTime.Round(time.Millisecond), s.URL)
	return s
}

// stop ends Synapse: SIGTERM, and SIGKILL after 10 s.
func (s *synapse) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	if s.t.Failed() {
		s.t.Logf("Synapse log:\n%s", s.out)
	}
	checkLogHasNoSecrets(s.t, "Synapse", s.out.String())
}

// config renders homeserver.yaml: a client listener only (no federation),
// SQLite in the test's directory, rate limits out of the way of tests
// that log in many times (mxidp's throttle is what they test), and no
// reporting or key-server traffic.
func (s *synapse) config(opts synapseOptions) string {
	q := func(v string) string { return fmt.Sprintf("%q", v) }
	unlimited := "{per_second: 1000, burst_count: 1000}"
	var b strings.Builder
	fmt.Fprintf(&b, `server_name: %s
public_baseurl: %s
pid_file: %s
listeners:
  - port: %d
    bind_addresses: ["127.0.0.1"]
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: %s
log_config: %s
media_store_path: %s
signing_key_path: %s
macaroon_secret_key: %s
form_secret: %s
report_stats: false
suppress_key_server_warning: true
trusted_key_servers: []
enable_registration: false
presence:
  enabled: false
rc_login:
  address: %s
  account: %s
  failed_attempts: %s
rc_registration: %s
rc_message: %s
rc_joins:
  local: %s
  remote: %s
`, q(s.ServerName), q(s.URL+"/"), q(filepath.Join(s.Dir, "homeserver.pid")), opts.Port,
		q(filepath.Join(s.Dir, "homeserver.db")), q(filepath.Join(s.Dir, "log.yaml")),
		q(filepath.Join(s.Dir, "media")), q(filepath.Join(s.Dir, s.ServerName+".signing.key")),
		q(randomAlnum(40)), q(randomAlnum(40)),
		unlimited, unlimited, unlimited, unlimited, unlimited, unlimited, unlimited)
	b.WriteString(opts.YAML)
	return b.String()
}

// synapseLogConfig sends Synapse's log, at INFO, to standard error.
const synapseLogConfig = `version: 1
formatters:
  precise:
    format: '%(asctime)s %(name)s %(levelname)s %(request)s %(message)s'
handlers:
  console:
    class: logging.StreamHandler
    formatter: precise
root:
  level: INFO
  handlers: [console]
disable_existing_loggers: false
`

// synapseSigningKey is a fresh server signing key in Synapse's file
// format: "ed25519 KEY_ID SEED", the seed unpadded base64
// (Synapse synapse/config/key.py, signedjson's write_signing_keys).
func synapseSigningKey(t *testing.T) string {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return "ed25519 a_" + randomAlnum(4) + " " + base64.RawStdEncoding.EncodeToString(key.Seed()) + "\n"
}

// log is what Synapse has logged so far.
func (s *synapse) log() string { return s.out.String() }

// request sends a Matrix client-server API request, with a bearer token
// when token is set and body as JSON when not nil, and decodes the JSON
// answer (nil when it is not JSON).
func (s *synapse) request(method, path, token string, body any) (int, map[string]any) {
	s.t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(mustJSON(body))
	}
	req, err := http.NewRequest(method, s.URL+path, r)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var got map[string]any
	if json.Unmarshal(raw, &got) != nil {
		got = nil
	}
	return resp.StatusCode, got
}

// whoami asks Synapse whose token this is (Matrix client-server API
// "GET /_matrix/client/v3/account/whoami").
func (s *synapse) whoami(token string) (status int, userID, deviceID string) {
	s.t.Helper()
	status, got := s.request(http.MethodGet, "/_matrix/client/v3/account/whoami", token, nil)
	userID, _ = got["user_id"].(string)
	deviceID, _ = got["device_id"].(string)
	return status, userID, deviceID
}

// devices lists the device IDs Synapse has for a local user, read from
// its own devices table (hidden rows hold cross-signing keys, not
// devices).
func (s *synapse) devices(localpart string) []string {
	s.t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(s.Dir, "homeserver.db")+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		s.t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT device_id FROM devices WHERE user_id = ? AND NOT hidden ORDER BY device_id`,
		"@"+localpart+":"+s.ServerName)
	if err != nil {
		s.t.Fatalf("read Synapse's devices table: %v", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			s.t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		s.t.Fatal(err)
	}
	return ids
}

// TestSynapseHarnessStartsSynapseFromTheChroot: the harness's Synapse
// answers the client-server API as the server name it was given, refuses
// an unknown token, and leaves nothing mounted on the host.
func TestSynapseHarnessStartsSynapseFromTheChroot(t *testing.T) {
	s := startSynapse(t, synapseOptions{})
	status, got := s.request(http.MethodGet, "/_matrix/client/versions", "", nil)
	if versions, _ := got["versions"].([]any); status != http.StatusOK || len(versions) == 0 {
		t.Errorf("GET /_matrix/client/versions: %d %v", status, got)
	}
	if status, _, _ := s.whoami("syt_not_a_token"); status != http.StatusUnauthorized {
		t.Errorf("whoami with an unknown token: %d; want 401", status)
	}
	if ids := s.devices("nobody"); len(ids) != 0 {
		t.Errorf("devices of a user that does not exist: %v", ids)
	}
	mounts, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mounts), synapseRoot()) {
		t.Errorf("the host sees mounts in the chroot while Synapse runs:\n%s", mounts)
	}
}
