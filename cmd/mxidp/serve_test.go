package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mxidp/mxidp/keys"
	"github.com/mxidp/mxidp/storage/storagetest"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds mxidp once per test run, so that serve is tested as
// operators run it: a separate process, signals and all.
//
// MXIDP_TEST_BINARY names a binary built elsewhere instead: the attack
// tests are run that way against an older build to show that they fail
// without the defence they test.
func binary(t *testing.T) string {
	t.Helper()
	if prebuilt := os.Getenv("MXIDP_TEST_BINARY"); prebuilt != "" {
		return prebuilt
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mxidp-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "mxidp")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = &buildError{out}
		}
	})
	if buildErr != nil {
		t.Fatalf("build mxidp: %v", buildErr)
	}
	return binPath
}

type buildError struct{ out []byte }

func (e *buildError) Error() string { return string(e.out) }

// syncBuffer collects a process's output while tests read it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type server struct {
	t      *testing.T
	env    map[string]string // the deployment's, for CLI commands beside it
	cmd    *exec.Cmd
	url    string
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan struct{}
}

// deployment is the shared configuration of one or more instances.
type deployment struct {
	t   *testing.T
	env map[string]string
}

func newDeployment(t *testing.T, backend string) *deployment {
	env := testEnv(t, backend, "keys:\n  refresh_interval: 100ms\n")
	env["MXIDP_ISSUER"] = "http://127.0.0.1:8080"
	env["MXIDP_LISTEN"] = "127.0.0.1:0"
	return &deployment{t: t, env: env}
}

var listeningRE = regexp.MustCompile(`listening on (\S+)`)

// start runs `mxidp serve` and waits until it is ready.
func (d *deployment) start(args ...string) *server {
	t := d.t
	t.Helper()
	cmd := exec.Command(binary(t), append([]string{"serve"}, args...)...)
	cmd.Env = os.Environ()
	for k, v := range d.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	s := &server{t: t, env: d.env, cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = s.stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			s.stdout.Write([]byte(sc.Text() + "\n"))
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		io.Copy(io.Discard, pipe)
	}()
	go func() { cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-s.done
		checkLogHasNoSecrets(t, "mxidp serve", s.stderr.String())
	})
	select {
	case a := <-addr:
		s.url = "http://" + a
	case <-s.done:
		t.Fatalf("mxidp serve exited early:\n%s%s", s.stdout, s.stderr)
	case <-time.After(60 * time.Second):
		t.Fatalf("mxidp serve did not start:\n%s%s", s.stdout, s.stderr)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if status, _ := s.get("/readyz"); status == http.StatusOK {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("mxidp serve never became ready:\n%s", s.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startOnFreePort starts an instance whose issuer is the URL clients use:
// http://127.0.0.1:PORT on a free port, chosen at the deployment's first
// start and kept for later ones, so that a restart serves the same issuer.
func (d *deployment) startOnFreePort(args ...string) *server {
	d.t.Helper()
	if d.env["MXIDP_LISTEN"] == "127.0.0.1:0" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			d.t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		d.env["MXIDP_LISTEN"] = addr
		d.env["MXIDP_ISSUER"] = "http://" + addr
	}
	return d.start(args...)
}

func (s *server) get(path string) (int, []byte) {
	resp, err := http.Get(s.url + path)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// kids returns the key IDs the server publishes, sorted.
func (s *server) kids() []string {
	s.t.Helper()
	status, body := s.get("/keys")
	if status != http.StatusOK {
		s.t.Fatalf("GET /keys: %d", status)
	}
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		s.t.Fatalf("GET /keys: %v", err)
	}
	var ids []string
	for _, k := range set.Keys {
		ids = append(ids, k.Kid)
	}
	sort.Strings(ids)
	return ids
}

// signal sends sig and returns the exit status.
func (s *server) signal(sig syscall.Signal) int {
	s.t.Helper()
	s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		s.t.Fatalf("mxidp did not exit after %v", sig)
	}
	return s.cmd.ProcessState.ExitCode()
}

func (d *deployment) cli(args ...string) string {
	d.t.Helper()
	c := &cli{t: d.t, env: d.env}
	return c.must("", args...)
}

func TestServeStartsFreshReadyWithOneActiveKeyAndStopsOnSIGTERM(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			d := newDeployment(t, backend)
			s := d.start("--demo")
			if !strings.Contains(s.stdout.String(), "issuer http://127.0.0.1:8080") {
				t.Errorf("serve did not print the issuer: %q", s.stdout)
			}
			pw := regexp.MustCompile(`password: (\S+)`).FindStringSubmatch(s.stdout.String())
			if pw == nil {
				t.Fatalf("--demo printed no password: %q", s.stdout)
			}
			if strings.Contains(s.stderr.String(), pw[1]) {
				t.Error("the demo password is in the log")
			}
			if status, _ := s.get("/healthz"); status != http.StatusOK {
				t.Errorf("/healthz = %d", status)
			}
			var listed []keyJSON
			if err := json.Unmarshal([]byte(d.cli("keys", "list", "--json")), &listed); err != nil {
				t.Fatal(err)
			}
			kids := s.kids()
			var listedIDs []string
			algs := map[string]bool{}
			for _, k := range listed {
				listedIDs = append(listedIDs, k.ID)
				algs[k.Algorithm] = k.State == "active"
			}
			sort.Strings(listedIDs)
			if len(listed) != len(keys.Algorithms) || len(algs) != len(keys.Algorithms) || !slices.Equal(kids, listedIDs) {
				t.Errorf("keys list %+v, JWKS %v; want one active key per algorithm, published", listed, kids)
			}
			for _, alg := range keys.Algorithms {
				if !algs[alg] {
					t.Errorf("no active %s key in %+v", alg, listed)
				}
			}
			if users := d.cli("user", "list"); !strings.Contains(users, "demo") {
				t.Errorf("demo user missing: %s", users)
			}

			// One log line per request, without the query string.
			s.get("/readyz?access_token=SUPERSECRET")
			time.Sleep(50 * time.Millisecond)
			log := s.stderr.String()
			if !regexp.MustCompile(`msg=request method=GET path=/readyz status=200 bytes=\d+ duration_ms=[\d.]+ request_id=[0-9a-f]{8}-[0-9a-f]+`).MatchString(log) {
				t.Errorf("no structured request line in the log:\n%s", log)
			}
			if strings.Contains(log, "SUPERSECRET") {
				t.Error("the log shows a query string")
			}
			if status := s.signal(syscall.SIGTERM); status != 0 {
				t.Errorf("exit status after SIGTERM = %d, want 0\n%s", status, s.stderr)
			}
			if !strings.Contains(s.stderr.String(), "shutting down") {
				t.Errorf("no graceful shutdown in the log:\n%s", s.stderr)
			}

			// A second start finds everything in place: same key, no new demo user.
			again := d.start("--demo")
			if got := again.kids(); strings.Join(got, ",") != strings.Join(kids, ",") {
				t.Errorf("after restart the keys are %v, want %v", got, kids)
			}
			if strings.Contains(again.stdout.String(), "password:") {
				t.Error("a restart created another demo user")
			}
		})
	}
}

// Acceptance 5 of the foundation issue: instances on one database agree on
// the key set through a rotation made elsewhere and a kill -9.
func TestInstancesShareTheKeyRingThroughRotationAndKill(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			d := newDeployment(t, backend)
			a := d.start()
			b := d.start()
			first := a.kids()
			n := len(keys.Algorithms)
			if len(first) != n || strings.Join(b.kids(), ",") != strings.Join(first, ",") {
				t.Fatalf("two instances publish %v and %v; want the same key per algorithm", first, b.kids())
			}

			out := d.cli("keys", "rotate")
			if !strings.Contains(out, "pending") {
				t.Errorf("keys rotate printed %q", out)
			}
			deadline := time.Now().Add(10 * time.Second)
			for len(a.kids()) != 2*n || len(b.kids()) != 2*n {
				if time.Now().After(deadline) {
					t.Fatalf("after rotation: a publishes %v, b %v; want two keys per algorithm each", a.kids(), b.kids())
				}
				time.Sleep(50 * time.Millisecond)
			}
			rotated := a.kids()
			if strings.Join(b.kids(), ",") != strings.Join(rotated, ",") {
				t.Errorf("after rotation a publishes %v, b %v", rotated, b.kids())
			}

			a.signal(syscall.SIGKILL)
			restarted := d.start()
			if got := restarted.kids(); strings.Join(got, ",") != strings.Join(rotated, ",") {
				t.Errorf("restarted instance publishes %v, want %v", got, rotated)
			}
			if got := b.kids(); strings.Join(got, ",") != strings.Join(rotated, ",") {
				t.Errorf("surviving instance publishes %v, want %v", got, rotated)
			}
		})
	}
}

func TestServeFailsClearlyWhenTheDatabaseIsUnreachable(t *testing.T) {
	d := newDeployment(t, "sqlite")
	d.env["MXIDP_DATABASE"] = "postgres://mxidp:pw@127.0.0.1:1/mxidp?connect_timeout=2"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), "serve")
	cmd.Env = os.Environ()
	for k, v := range d.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "database: connect to postgres://mxidp:xxxxx@127.0.0.1:1/") {
		t.Errorf("exit %d, output %q; want 1 and the redacted database URL", cmd.ProcessState.ExitCode(), out)
	}
}

// TestStatementCountIsOffUnlessConfigured: /metrics needs no login, and
// the statement count around one sign-in would tell whether its login name
// is an account's, so mxidp_db_statements_total appears only when
// metrics.database_statements asks for it (as the load generator does).
func TestStatementCountIsOffUnlessConfigured(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprintf("database_statements=%v", on), func(t *testing.T) {
			env := testEnv(t, "sqlite", fmt.Sprintf("metrics: {database_statements: %v}\n", on))
			env["MXIDP_ISSUER"], env["MXIDP_LISTEN"] = "http://127.0.0.1:8080", "127.0.0.1:0"
			s := (&deployment{t: t, env: env}).start()
			status, body := s.get("/metrics")
			if status != http.StatusOK {
				t.Fatalf("/metrics = %d", status)
			}
			if got := strings.Contains(string(body), "\nmxidp_db_statements_total "); got != on {
				t.Errorf("mxidp_db_statements_total shown: %v, want %v", got, on)
			}
			if !strings.Contains(string(body), "mxidp_http_requests_total") {
				t.Error("/metrics lost its request counts")
			}
		})
	}
}
