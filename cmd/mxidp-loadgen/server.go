package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// cheapCost makes the password hash nearly free, so that the CPU measured
// per flow is everything else; defaultCost is mxidp's default.
const (
	cheapCost   = "passwords: {argon2id: {time: 1, memory_kib: 64, threads: 1}}\n"
	defaultCost = "passwords: {argon2id: {time: 2, memory_kib: 19456, threads: 1}}\n"
)

// cost is one argon2id cost, for the in-process hash measurements.
type cost struct {
	time, memoryKiB uint32
	threads         uint8
}

var (
	cheap    = cost{time: 1, memoryKiB: 64, threads: 1}
	defaultC = cost{time: 2, memoryKiB: 19456, threads: 1}
)

func (c cost) String() string {
	return fmt.Sprintf("argon2id t=%d m=%d KiB p=%d", c.time, c.memoryKiB, c.threads)
}

// instance is one configured mxidp: its files, its database and, while
// running, its process.
type instance struct {
	bin, dir, config, database string
	port                       int
	issuer                     string

	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	waitErr error
}

// env is the environment every mxidp command of the instance runs with;
// MXIDP_* variables of the caller are dropped so that they change nothing.
func (in *instance) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MXIDP_") || strings.HasPrefix(kv, "MXIDP_TEST_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"MXIDP_CONFIG="+in.config,
		"MXIDP_DATABASE="+in.database,
		"MXIDP_SECRET_KEY_FILE="+filepath.Join(in.dir, "secret.key"),
		fmt.Sprintf("MXIDP_LISTEN=127.0.0.1:%d", in.port),
		"MXIDP_ISSUER="+in.issuer,
	)
}

// serverConfig is what differs between the servers a run starts.
type serverConfig struct {
	name      string // the file's and the log's name
	level     string // log level: warn, or info for the request log
	passwords string // cheapCost or defaultCost
	rest      bool   // the REST service, answering 127.0.0.1
}

// matrixDomain is the Matrix server name of the users' IDs in REST calls.
const matrixDomain = "example.org"

// yaml is the configuration file's text.
func (c serverConfig) yaml() string {
	// The statement count is on /metrics only when asked for.
	y := "log: {level: " + c.level + "}\nthrottle: {authorize_burst: 0}\nmetrics: {database_statements: true}\nmatrix: {server_name: " + matrixDomain + "}\n" + c.passwords
	if c.rest {
		y += "rest: {enabled: true, allowed_networks: [\"127.0.0.0/8\"]}\n"
	}
	return y
}

// configure writes a configuration and picks a free port (issuer and
// listener must agree).
func (in *instance) configure(c serverConfig) error {
	in.config = filepath.Join(in.dir, c.name+".yaml")
	if err := os.WriteFile(in.config, []byte(c.yaml()), 0o600); err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	in.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	in.issuer = fmt.Sprintf("http://127.0.0.1:%d", in.port)
	return nil
}

// cli runs one mxidp command and returns its standard output.
func (in *instance) cli(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, in.bin, args...)
	cmd.Env = in.env()
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("mxidp %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	return out.String(), nil
}

var secretLine = regexp.MustCompile(`(?m)^client_secret: (\S+)$`)

// registration is one client as `mxidp client add` registered it.
type registration struct {
	id, secret, redirectURI string
	alg                     jose.SignatureAlgorithm // of its ID tokens
}

// The clients every run registers: the default (RS256 ID tokens) and, when
// the binary has --id-token-alg, one with ES256 and one with EdDSA ID
// tokens (the EdDSA one only for the statement count, which checks its
// tokens as well).
const (
	clientID    = "loadgen"
	redirectURI = "http://127.0.0.1:9/cb" // never requested: the flow stops at the redirect
)

var otherAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA}

// hasIDTokenAlg reports whether this mxidp registers clients with an ID
// token algorithm of their own.
func (in *instance) hasIDTokenAlg(ctx context.Context) (bool, error) {
	help, err := in.cli(ctx, "", "client", "add", "--help")
	if err != nil {
		return false, err
	}
	return strings.Contains(help, "--id-token-alg"), nil
}

// addClient registers a confidential client that skips consent, with
// extra flags, and returns its registration.
func (in *instance) addClient(ctx context.Context, id string, alg jose.SignatureAlgorithm, extra ...string) (registration, error) {
	args := append([]string{"client", "add", id, "--skip-consent", "--redirect-uri", redirectURI}, extra...)
	out, err := in.cli(ctx, "", args...)
	if err != nil {
		return registration{}, err
	}
	m := secretLine.FindStringSubmatch(out)
	if m == nil {
		return registration{}, fmt.Errorf("mxidp client add printed no client_secret line: %q", out)
	}
	return registration{id: id, secret: m[1], redirectURI: redirectURI, alg: alg}, nil
}

// seed registers the clients and the users through the command line, a
// few commands at a time. The ES256 and EdDSA clients are registered when
// algs is set.
func (in *instance) seed(ctx context.Context, users []account, algs bool) ([]registration, error) {
	rs, err := in.addClient(ctx, clientID, jose.RS256)
	if err != nil {
		return nil, err
	}
	clients := []registration{rs}
	for _, alg := range otherAlgs {
		if !algs {
			break
		}
		c, err := in.addClient(ctx, clientID+"-"+strings.ToLower(string(alg)), alg, "--id-token-alg", string(alg))
		if err != nil {
			return nil, err
		}
		clients = append(clients, c)
	}
	sem := make(chan struct{}, 4)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for _, u := range users {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if _, err := in.cli(ctx, u.password+"\n", "user", "add", u.name, "--password-stdin", "--name", "Load "+u.name); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return clients, firstErr
}

// start runs `mxidp serve` and waits until it prints its address and
// /readyz answers 200. Its standard output and error go to logPath.
func (in *instance) start(ctx context.Context, logPath string) error {
	in.logPath = logPath
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(in.bin, "serve")
	cmd.Env = in.env()
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return err
	}
	// Should this process die, the server goes too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	in.cmd, in.exited = cmd, make(chan struct{})
	listening := make(chan string, 1)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			if _, addr, ok := strings.Cut(line, "listening on "); ok {
				select {
				case listening <- addr:
				default:
				}
			}
		}
	}()
	go func() {
		<-copied
		in.waitErr = cmd.Wait()
		logf.Close()
		close(in.exited)
	}()

	deadline := time.After(30 * time.Second)
	select {
	case addr := <-listening:
		if addr != fmt.Sprintf("127.0.0.1:%d", in.port) {
			in.stop()
			return fmt.Errorf("mxidp listens on %s, not on 127.0.0.1:%d", addr, in.port)
		}
	case <-in.exited:
		return fmt.Errorf("mxidp serve exited at start (%v); its log:\n%s", in.waitErr, tail(logPath, 30))
	case <-deadline:
		in.stop()
		return fmt.Errorf("mxidp serve printed no 'listening on' line in 30 s; its log:\n%s", tail(logPath, 30))
	case <-ctx.Done():
		in.stop()
		return ctx.Err()
	}
	for {
		resp, err := http.Get(in.issuer + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-in.exited:
			return fmt.Errorf("mxidp serve exited at start (%v); its log:\n%s", in.waitErr, tail(logPath, 30))
		case <-deadline:
			in.stop()
			return fmt.Errorf("GET /readyz did not answer 200 in 30 s; the server's log:\n%s", tail(logPath, 30))
		case <-ctx.Done():
			in.stop()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// pid is the server's process ID.
func (in *instance) pid() int { return in.cmd.Process.Pid }

// alive reports whether the server is still running.
func (in *instance) alive() bool {
	select {
	case <-in.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM, waits for the graceful shutdown (mxidp allows
// requests in flight 10 s), and kills the server if it takes longer.
func (in *instance) stop() error {
	if in.cmd == nil {
		return nil
	}
	if !in.alive() {
		return fmt.Errorf("mxidp serve had exited by itself: %v", in.waitErr)
	}
	in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.exited:
	case <-time.After(15 * time.Second):
		in.cmd.Process.Kill()
		<-in.exited
		return errors.New("mxidp serve did not stop within 15 s of SIGTERM; killed")
	}
	if in.waitErr != nil {
		return fmt.Errorf("mxidp serve exited with %v after SIGTERM", in.waitErr)
	}
	return nil
}

// logLines returns the server's log without the start-up line.
func logLines(path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		return []string{"(cannot read the server's log: " + err.Error() + ")"}
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		if l == "" || strings.HasPrefix(l, "mxidp: issuer ") {
			continue
		}
		lines = append(lines, l)
	}
	return lines
}

// infoLog is the log of a server run at level info: its problems (lines
// at warn or error, and anything about a panic) and how many request lines
// it wrote.
type infoLog struct {
	lines, requests int
	problems        []string
}

// scanInfoLog sorts an info-level log, text or JSON: a line at level WARN
// or ERROR, or one that mentions a panic, is a problem; a line whose
// message is "request" is the request log.
func scanInfoLog(lines []string) infoLog {
	var s infoLog
	for _, l := range lines {
		s.lines++
		switch {
		case strings.Contains(l, "level=WARN"), strings.Contains(l, "level=ERROR"),
			strings.Contains(l, `"level":"WARN"`), strings.Contains(l, `"level":"ERROR"`),
			strings.Contains(l, "panic"), strings.HasPrefix(l, "goroutine "):
			s.problems = append(s.problems, l)
		case strings.Contains(l, "msg=request "), strings.Contains(l, `"msg":"request"`):
			s.requests++
		}
	}
	return s
}

func tail(path string, n int) string {
	lines := logLines(path)
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}
