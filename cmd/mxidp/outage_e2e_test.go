package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// pgCluster is a PostgreSQL cluster of the test's own, which it may stop
// and start: the shared one of .ci/with-postgres serves other packages'
// tests in parallel. It listens on a Unix socket only.
type pgCluster struct {
	t      *testing.T
	bindir string
	dir    string
	as     []string // runs a command as the cluster's owner
	url    string
}

// newPGCluster creates and starts a cluster, or skips the test when
// PostgreSQL is not installed (fails if MXIDP_TEST_POSTGRES_REQUIRED=1).
func newPGCluster(t *testing.T) *pgCluster {
	t.Helper()
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) < pgVersion(dirs[j]) })
	var bindir string
	if len(dirs) > 0 {
		bindir = dirs[len(dirs)-1]
	}
	if _, err := os.Stat(filepath.Join(bindir, "initdb")); bindir == "" || err != nil {
		msg := "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (apt-get install postgresql)"
		if os.Getenv("MXIDP_TEST_POSTGRES_REQUIRED") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	// Not t.TempDir: its parents are private to root, and the cluster's
	// owner must reach the socket and data directories.
	dir, err := os.MkdirTemp("", "mxidp-outage-pg")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := &pgCluster{t: t, bindir: bindir, dir: dir}
	if os.Geteuid() == 0 {
		// initdb refuses to run as root.
		owner := "postgres"
		u, err := user.Lookup(owner)
		if err != nil {
			owner = "nobody"
			if u, err = user.Lookup(owner); err != nil {
				t.Fatal(err)
			}
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		c.as = []string{"runuser", "-u", owner, "--"}
	}
	t.Cleanup(func() {
		c.pgctl("-m", "immediate", "stop")
		os.RemoveAll(dir)
	})
	if out, err := c.run("initdb", "-D", c.data(), "-U", "mxidp_test", "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	c.start()
	c.url = "postgres:///postgres?host=" + dir + "&user=mxidp_test&sslmode=disable"
	return c
}

func pgVersion(bindir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(bindir)))
	return v
}

func (c *pgCluster) data() string { return filepath.Join(c.dir, "data") }

func (c *pgCluster) run(prog string, args ...string) ([]byte, error) {
	argv := append(append(append([]string{}, c.as...), filepath.Join(c.bindir, prog)), args...)
	return exec.Command(argv[0], argv[1:]...).CombinedOutput()
}

func (c *pgCluster) pgctl(args ...string) ([]byte, error) {
	return c.run("pg_ctl", append([]string{"-D", c.data(), "-w", "-t", "60"}, args...)...)
}

// start starts the server and waits until it accepts connections.
func (c *pgCluster) start() {
	c.t.Helper()
	if out, err := c.pgctl("-l", filepath.Join(c.dir, "server.log"),
		"-o", "-c listen_addresses='' -k "+c.dir+" -c max_connections=200", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
		c.t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
}

// stop shuts the server down the way an operator's restart does: clients
// are disconnected and everything committed is on disk.
func (c *pgCluster) stop() {
	c.t.Helper()
	if out, err := c.pgctl("-m", "fast", "stop"); err != nil {
		c.t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
}

// loadStats counts the load's answers in one phase of the test.
type loadStats struct {
	mu       sync.Mutex
	requests int
	statuses map[string]int // "endpoint status" → count
	maxLat   time.Duration
	problems []string
}

func (s *loadStats) record(endpoint string, status int, lat time.Duration, problem string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if s.statuses == nil {
		s.statuses = map[string]int{}
	}
	s.statuses[fmt.Sprintf("%s %d", endpoint, status)]++
	s.maxLat = max(s.maxLat, lat)
	if problem != "" && len(s.problems) < 20 {
		s.problems = append(s.problems, problem)
	}
}

func (s *loadStats) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.statuses))
	for k := range s.statuses {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s×%d", k, s.statuses[k]))
	}
	return fmt.Sprintf("%d requests, max latency %v: %s", s.requests, s.maxLat.Round(time.Millisecond), strings.Join(parts, ", "))
}

// answer is one HTTP exchange as the outage test sees it.
type answer struct {
	status int
	header http.Header
	body   []byte
	lat    time.Duration
	err    error
}

func (a answer) json() bool { return isJSON(a.header) && json.Valid(a.body) }

func (a answer) html() bool { return strings.HasPrefix(a.header.Get("Content-Type"), "text/html") }

var outageClient = &http.Client{Timeout: 20 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func exchangeHTTP(method, url, contentType, body string, hdr map[string]string) answer {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return answer{err: err}
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := outageClient.Do(req)
	if err != nil {
		return answer{err: err, lat: time.Since(start)}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: b, lat: time.Since(start)}
}

// The issue "Database outages": PostgreSQL stops under load and starts
// again. mxidp must not panic or exit, must answer clear 503s quickly
// meanwhile (JSON for APIs, a page for browsers), report it at /readyz,
// and recover by itself, having lost nothing that was committed.
func TestOutageOfPostgreSQLUnderLoadAndRecovery(t *testing.T) {
	pg := newPGCluster(t)
	env := testEnv(t, "sqlite", restFixture+"throttle:\n  account_burst: 0\n  network_burst: 0\n")
	env["MXIDP_DATABASE"] = pg.url
	env["MXIDP_ISSUER"] = "http://127.0.0.1:8080"
	env["MXIDP_LISTEN"] = "127.0.0.1:0"
	d := &deployment{t: t, env: env}
	c := &cli{t: t, env: env}
	c.must("", "migrate")
	seedREST(t, c.store())
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	e := &openIDEnv{t: t, ctx: ctx, d: d}
	e.connect(d.startOnFreePort())
	s := e.s
	rp := e.addClient("outage-rp")
	cfg := e.config(rp, oauth2.AuthStyleInHeader, oidc.ScopeOpenID, "profile", oidc.ScopeOfflineAccess)
	signIn := func(b *browser) login {
		t.Helper()
		return e.exchange(cfg, e.authorizeWith(b, cfg, randomAlnum(30), []string{alicePW}))
	}

	// Committed before the outage: logins and their tokens, a browser
	// session, and a user added while mxidp runs.
	ssoBrowser := newBrowser(t)
	before := []login{signIn(ssoBrowser), signIn(newBrowser(t)), signIn(newBrowser(t))}
	c.must("frank-pass-1\n", "user", "add", "frank", "--password-stdin", "--email", "frank@example.net")
	noteSecret("frank-pass-1")

	// The load: password checks, userinfo, discovery and the token
	// endpoint (a refresh of a token that is never valid: it reads the
	// database and must never pass), from several goroutines.
	var phase atomic.Int32 // 0 before, 1 during, 2 recovering, 3 after
	stats := [4]*loadStats{{}, {}, {}, {}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	accessToken := before[0].token.AccessToken
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := phase.Load()
				var endpoint string
				var a answer
				switch (g + i) % 4 {
				case 0:
					endpoint = "check_credentials"
					user := fmt.Sprintf("t%03d", 1+(g*7+i)%60)
					a = exchangeHTTP(http.MethodPost, s.url+ccPath, "application/json", cc("@"+user+":example.org", "x"), nil)
				case 1:
					endpoint = "userinfo"
					a = exchangeHTTP(http.MethodGet, e.meta.Userinfo, "", "", map[string]string{"Authorization": "Bearer " + accessToken})
				case 2:
					endpoint = "discovery"
					a = exchangeHTTP(http.MethodGet, s.url+"/.well-known/openid-configuration", "", "", nil)
				case 3:
					endpoint = "token"
					a = exchangeHTTP(http.MethodPost, e.meta.Token, "application/x-www-form-urlencoded",
						"grant_type=refresh_token&refresh_token=not-a-token-"+strconv.Itoa(i), map[string]string{"Authorization": basicAuth(rp.id, rp.secret)})
				}
				stats[p].record(endpoint, a.status, a.lat, judgeLoad(endpoint, p, a))
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	stopLoad := func() {
		select {
		case <-stop:
		default:
			close(stop)
			wg.Wait()
		}
	}
	defer stopLoad()
	time.Sleep(1500 * time.Millisecond)

	// The outage.
	phase.Store(1)
	stoppedAt := time.Now()
	pg.stop()
	t.Logf("PostgreSQL stopped after %s", stats[0])

	// Whatever the load meets first, within a few seconds every route that
	// needs the database answers 503 at once.
	deadline := time.Now().Add(5 * time.Second)
	for {
		a := exchangeHTTP(http.MethodGet, s.url+"/readyz", "", "", nil)
		if a.status == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d %s 5 s after PostgreSQL stopped", a.status, a.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("/readyz reported the outage after %v", time.Since(stoppedAt).Round(time.Millisecond))
	var maxLat time.Duration
	check := func(what string, a answer, status int, body func(answer) bool) {
		t.Helper()
		maxLat = max(maxLat, a.lat)
		if a.err != nil {
			t.Errorf("%s during the outage: %v", what, a.err)
			return
		}
		if a.status != status || (body != nil && !body(a)) {
			t.Errorf("%s during the outage: %d %q %s; want %d", what, a.status, a.header.Get("Content-Type"), a.body, status)
		}
		if status == http.StatusServiceUnavailable && a.header.Get("Retry-After") == "" {
			t.Errorf("%s during the outage: 503 without Retry-After", what)
		}
		if a.lat > 2*time.Second {
			t.Errorf("%s during the outage took %v", what, a.lat)
		}
	}
	for round := 0; round < 5; round++ {
		check("/readyz", exchangeHTTP(http.MethodGet, s.url+"/readyz", "", "", nil), 503, func(a answer) bool {
			return strings.TrimSpace(string(a.body)) == `{"reason":"database unreachable","status":"unavailable"}`
		})
		check("/healthz", exchangeHTTP(http.MethodGet, s.url+"/healthz", "", "", nil), 200, nil)
		check("discovery", exchangeHTTP(http.MethodGet, s.url+"/.well-known/openid-configuration", "", "", nil), 200, answer.json)
		check("/keys", exchangeHTTP(http.MethodGet, s.url+"/keys", "", "", nil), 200, answer.json)
		check("/metrics", exchangeHTTP(http.MethodGet, s.url+"/metrics", "", "", nil), 200, nil)
		check("check_credentials", exchangeHTTP(http.MethodPost, s.url+ccPath, "application/json", cc("@bob:example.org", "builder-99"), nil),
			503, func(a answer) bool {
				return strings.TrimSpace(string(a.body)) == `{"errcode":"M_UNKNOWN","error":"temporarily unavailable; try again"}`
			})
		check("directory search", exchangeHTTP(http.MethodPost, s.url+restPrefixes[0]+"/directory/user/search", "application/json",
			`{"by":"name","search_term":"alice"}`, nil), 200, func(a answer) bool {
			return strings.TrimSpace(string(a.body)) == `{"limited":true,"results":[]}`
		})
		isUnavailable := func(a answer) bool {
			var v struct{ Error string }
			return a.json() && json.Unmarshal(a.body, &v) == nil && v.Error == "temporarily_unavailable"
		}
		check("userinfo", exchangeHTTP(http.MethodGet, e.meta.Userinfo, "", "", map[string]string{"Authorization": "Bearer " + accessToken}),
			503, isUnavailable)
		check("refresh", exchangeHTTP(http.MethodPost, e.meta.Token, "application/x-www-form-urlencoded",
			"grant_type=refresh_token&refresh_token="+before[1].token.RefreshToken, map[string]string{"Authorization": basicAuth(rp.id, rp.secret)}),
			503, isUnavailable)
		isPage := func(a answer) bool {
			return a.html() && bytes.Contains(a.body, []byte("briefly unavailable"))
		}
		authURL := cfg.AuthCodeURL(randomAlnum(20), oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
		check("authorize", exchangeHTTP(http.MethodGet, authURL, "", "", nil), 503, isPage)
		check("login page", exchangeHTTP(http.MethodGet, s.url+"/login?id=whatever", "", "", nil), 503, isPage)
		check("login page in German", exchangeHTTP(http.MethodGet, s.url+"/login?id=whatever", "", "", map[string]string{"Accept-Language": "de"}),
			503, func(a answer) bool { return a.html() && bytes.Contains(a.body, []byte("kurz nicht möglich")) })
		time.Sleep(500 * time.Millisecond)
	}
	select {
	case <-s.done:
		t.Fatalf("mxidp exited during the outage:\n%s", s.stderr)
	default:
	}
	outage := time.Since(stoppedAt)

	// The database returns: mxidp serves again by itself.
	pg.start()
	startedAt := time.Now()
	phase.Store(2)
	for {
		if status, _ := s.get("/readyz"); status == http.StatusOK {
			break
		}
		if time.Since(startedAt) > 10*time.Second {
			t.Fatalf("/readyz not 200 10 s after PostgreSQL started:\n%s", s.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	recovered := time.Since(startedAt)
	phase.Store(3)
	time.Sleep(1500 * time.Millisecond)
	stopLoad()

	// Nothing committed was lost: the browser session, the tokens, the
	// users; and new logins work.
	for i, l := range before {
		e.wantUserinfoOK(fmt.Sprintf("access token %d from before the outage", i), l.token.AccessToken)
	}
	refreshed, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: before[1].token.RefreshToken}).Token()
	if err != nil {
		t.Errorf("refresh token from before the outage: %v", err)
	} else {
		e.wantUserinfoOK("the access token refreshed after the outage", refreshed.AccessToken)
	}
	sso := e.authorizeWith(ssoBrowser, cfg, randomAlnum(30), nil) // no form: the session survived
	e.exchange(cfg, sso)
	signIn(newBrowser(t))
	for _, u := range []struct{ id, pw string }{{"@bob:example.org", "builder-99"}, {"@frank:example.org", "frank-pass-1"}} {
		if got := postJSON(t, s.url+ccPath, cc(u.id, u.pw)); dig(got, "auth", "success") != true {
			t.Errorf("check_credentials for %s after the outage: %v", u.id, got)
		}
	}

	for p, name := range []string{"before", "during", "recovering", "after"} {
		t.Logf("load %s the outage: %s", name, stats[p])
		for _, problem := range stats[p].problems {
			t.Errorf("load %s the outage: %s", name, problem)
		}
	}
	if stats[1].maxLat > 2*time.Second {
		t.Errorf("the slowest request during the outage took %v", stats[1].maxLat)
	}
	t.Logf("outage %v; probes' max latency during it %v; ready again %v after PostgreSQL started",
		outage.Round(time.Millisecond), maxLat.Round(time.Millisecond), recovered.Round(time.Millisecond))
	select {
	case <-s.done:
		t.Fatalf("mxidp exited:\n%s", s.stderr)
	default:
	}
	if log := s.stderr.String(); strings.Contains(log, "panic") {
		t.Errorf("mxidp's log shows a panic:\n%s", log)
	}
	if log := s.stderr.String(); !strings.Contains(log, "database unreachable") || !strings.Contains(log, "database reachable again") {
		t.Errorf("the log does not tell the outage's start and end")
	}
}

// judgeLoad says what is wrong with a load answer in a phase, or "".
func judgeLoad(endpoint string, phase int32, a answer) string {
	if a.err != nil {
		if errors.Is(a.err, context.DeadlineExceeded) || strings.Contains(a.err.Error(), "Timeout") {
			return fmt.Sprintf("%s: no answer within %v", endpoint, outageClient.Timeout)
		}
		return fmt.Sprintf("%s: %v", endpoint, a.err)
	}
	problem := func(want string) string {
		return fmt.Sprintf("%s: %d %q %.200s; want %s", endpoint, a.status, a.header.Get("Content-Type"), a.body, want)
	}
	if !a.json() {
		return problem("JSON")
	}
	// While the database is down or coming back, 503 is the one other
	// answer allowed; before and after, only the normal one.
	unavailable := phase == 1 || phase == 2
	switch endpoint {
	case "discovery":
		if a.status != 200 {
			return problem("200")
		}
	case "check_credentials", "userinfo":
		if a.status != 200 && !(unavailable && a.status == 503) {
			return problem("200 (or 503 during the outage)")
		}
		if endpoint == "check_credentials" && a.status == 200 && !bytes.Contains(a.body, []byte(`"success":true`)) {
			return problem("success")
		}
	case "token":
		if a.status != 400 && !(unavailable && a.status == 503) {
			return problem("400 invalid_grant (or 503 during the outage)")
		}
	}
	if phase == 1 && a.lat > 2*time.Second {
		return fmt.Sprintf("%s took %v during the outage", endpoint, a.lat)
	}
	return ""
}

func basicAuth(user, pass string) string {
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(user, pass)
	return req.Header.Get("Authorization")
}
