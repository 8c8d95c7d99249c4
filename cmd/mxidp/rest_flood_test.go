package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mxidp/mxidp/provider/password"
	"github.com/mxidp/mxidp/storage"
)

// pid is the server process's ID, for reading /proc/PID/status.
func (s *server) pid() int { return s.cmd.Process.Pid }

// procStatusKiB reads one "Vm…: N kB" line of /proc/pid/status.
func procStatusKiB(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

const mib = 1 << 20

// A flood of password checks for one account (docs/rest.md, rest.timeout;
// the hash slots of provider.Login.CheckPassword) neither grows the server's
// memory with the flood nor starves another user's check past the REST
// deadline. The hash cost is the default one (argon2id, 19 MiB, 2 passes):
// a cheap cost would hide exactly what is measured here.
//
// SQLite only: the hash slots and the memory they bound do not depend on
// the database, and one backend keeps the test to about 15 s (10 s of
// flood, then 1 s against an instance with a 100 ms deadline).
//
// The account throttle is off (throttle.account_burst: 0) so that every
// flood request really hashes: with the default throttle the victim's
// account would be refused after five wrong guesses without any hashing,
// and memory would be bounded trivially. This is the worst case the slots
// alone must bound (it is also what a flood spread over many names costs).
func TestRESTPasswordFloodKeepsMemoryBoundedAndOthersServed(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/PID/status")
	}
	const (
		floodFor     = 10 * time.Second
		floodWorkers = 64
		otherEvery   = 500 * time.Millisecond
		restTimeout  = 5 * time.Second // rest.timeout's default (config.go)
		argonMiB     = 19              // password.Default's memory cost
		victimPW     = "Victim-Flood-Pass-1"
		otherPW      = "Other-User-Pass-2"
	)
	if password.Default.MemoryKiB != argonMiB*1024 {
		t.Fatalf("password.Default.MemoryKiB = %d; the bound below assumes %d MiB", password.Default.MemoryKiB, argonMiB)
	}

	env := testEnv(t, "sqlite", "")
	// No passwords section: the default hash cost, so no hash is
	// "upgraded" to another cost during the flood either.
	env["MXIDP_CONFIG"] = writeConfig(t, "matrix:\n  server_name: example.org\nrest:\n  enabled: true\nthrottle:\n  account_burst: 0\n")
	env["MXIDP_ISSUER"] = "http://127.0.0.1:8080"
	env["MXIDP_LISTEN"] = "127.0.0.1:0"
	c := &cli{t: t, env: env}
	c.must("", "migrate")
	store := c.store()
	for _, a := range []struct{ name, pw string }{{"victim", victimPW}, {"other", otherPW}} {
		h, err := password.Hash(noteSecret(a.pw), password.Default)
		noteSecret(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.CreateUser(context.Background(), storage.User{ID: "id-" + a.name, Username: a.name, PasswordHash: h}); err != nil {
			t.Fatal(err)
		}
	}
	s := (&deployment{t: t, env: env}).start()
	pid := s.pid()

	client := &http.Client{
		Transport: &http.Transport{MaxIdleConns: 2 * floodWorkers, MaxIdleConnsPerHost: 2 * floodWorkers},
		// Past the server's deadline plus generous slack: a request that
		// still has no answer then counts as dropped.
		Timeout: restTimeout + 10*time.Second,
	}
	defer client.CloseIdleConnections()
	// check posts one check_credentials and classifies the answer.
	check := func(base, user, pw string) (status int, success bool, errcode string, err error) {
		resp, err := client.Post(base+ccPath, "application/json", strings.NewReader(cc("@"+user+":example.org", pw)))
		if err != nil {
			return 0, false, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return resp.StatusCode, false, "", err
		}
		var v struct {
			Auth *struct {
				Success *bool `json:"success"`
			} `json:"auth"`
			Errcode string `json:"errcode"`
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			return resp.StatusCode, false, "", fmt.Errorf("status %d with Content-Type %q: %.200s", resp.StatusCode, ct, body)
		}
		if err := json.NewDecoder(bytes.NewReader(body)).Decode(&v); err != nil {
			return resp.StatusCode, false, "", fmt.Errorf("status %d, not JSON: %v: %.200s", resp.StatusCode, err, body)
		}
		if resp.StatusCode == http.StatusOK {
			if v.Auth == nil || v.Auth.Success == nil {
				return resp.StatusCode, false, "", fmt.Errorf("200 without auth.success: %.200s", body)
			}
			return resp.StatusCode, *v.Auth.Success, "", nil
		}
		return resp.StatusCode, false, v.Errcode, nil
	}

	// Warm up: the dummy hash, the connection pools, one check of each.
	for _, u := range []struct{ name, pw string }{{"other", otherPW}, {"victim", victimPW}} {
		if status, ok, _, err := check(s.url, u.name, u.pw); err != nil || status != 200 || !ok {
			t.Fatalf("warm-up check of %s: %d %v %v", u.name, status, ok, err)
		}
	}
	runtime.GC()
	time.Sleep(200 * time.Millisecond)
	baseline, err := procStatusKiB(pid, "VmRSS")
	if err != nil {
		t.Fatal(err)
	}

	// Sample the server's RSS every 100 ms.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		samplerDone = make(chan struct{})
		maxSample   int64
		samples     int
	)
	go func() {
		defer close(samplerDone)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if rss, err := procStatusKiB(pid, "VmRSS"); err == nil {
				maxSample = max(maxSample, rss)
				samples++
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()

	// flood runs 64 workers against base until stop, as fast as they can,
	// right and wrong passwords alternating, and returns at once; wait
	// waits for the workers' last answers.
	type floodStats struct {
		done, rightOK, wrongRefused, unavailable atomic.Int64
		mu                                       sync.Mutex
		problems                                 []string
		wg                                       sync.WaitGroup
	}
	flood := func(base string, stop time.Time) *floodStats {
		st := &floodStats{}
		problem := func(format string, args ...any) {
			st.mu.Lock()
			defer st.mu.Unlock()
			if len(st.problems) < 20 {
				st.problems = append(st.problems, fmt.Sprintf(format, args...))
			}
		}
		for w := range floodWorkers {
			st.wg.Add(1)
			go func() {
				defer st.wg.Done()
				for i := w; time.Now().Before(stop); i++ {
					right := i%2 == 0
					pw := victimPW
					if !right {
						pw = "wrong-guess-" + strconv.Itoa(i)
					}
					status, ok, errcode, err := check(base, "victim", pw)
					st.done.Add(1)
					switch {
					case err != nil:
						problem("flood request: status %d: %v", status, err)
					case status == http.StatusOK && ok == right:
						if right {
							st.rightOK.Add(1)
						} else {
							st.wrongRefused.Add(1)
						}
					case status == http.StatusServiceUnavailable && errcode == "M_UNKNOWN":
						// The deadline ran out waiting for a hash slot:
						// the documented answer to "try again"
						// (docs/rest.md, rest.timeout; handler.go's unavailable).
						st.unavailable.Add(1)
					default:
						problem("flood request (right password %v): status %d, success %v, errcode %q", right, status, ok, errcode)
					}
				}
			}()
		}
		return st
	}
	start := time.Now()
	stop := start.Add(floodFor)
	fl := flood(s.url, stop)

	// Meanwhile the other user logs in every 500 ms (each check on its own,
	// so that a slow one does not delay the next), and must always get in
	// within the REST deadline.
	var (
		otherMu        sync.Mutex
		otherLatencies []time.Duration
		otherWG        sync.WaitGroup
	)
	tick := time.NewTicker(otherEvery)
	for n := 1; time.Now().Add(otherEvery).Before(stop); n++ {
		<-tick.C
		otherWG.Add(1)
		go func() {
			defer otherWG.Done()
			t0 := time.Now()
			status, ok, errcode, err := check(s.url, "other", otherPW)
			d := time.Since(t0)
			otherMu.Lock()
			otherLatencies = append(otherLatencies, d)
			otherMu.Unlock()
			if err != nil || status != http.StatusOK || !ok || d > restTimeout {
				t.Errorf("the other user's check %d at %v: status %d, success %v, errcode %q, err %v, took %v",
					n, t0.Sub(start).Round(time.Millisecond), status, ok, errcode, err, d)
			}
		}()
	}
	tick.Stop()
	otherWG.Wait()
	fl.wg.Wait()
	elapsed := time.Since(start)
	cancel()
	<-samplerDone
	hwm, err := procStatusKiB(pid, "VmHWM")
	if err != nil {
		t.Fatal(err)
	}
	peak := max(hwm, maxSample) * 1024

	slices.Sort(otherLatencies)
	pct := func(p float64) time.Duration {
		if len(otherLatencies) == 0 {
			return 0
		}
		return otherLatencies[min(len(otherLatencies)-1, int(p*float64(len(otherLatencies))))]
	}
	procs := runtime.GOMAXPROCS(0) // the server inherits the same environment and CPUs
	base := baseline * 1024
	// Each of the GOMAXPROCS hash slots holds one 19 MiB argon2id block
	// array; the garbage collector may let as much again of freed arrays
	// accumulate before it runs (GOGC=100), hence ×2; 64 MiB for the 64
	// connections, their buffers and goroutines and the runtime's slack.
	bound := base + int64(procs)*argonMiB*mib*2 + 64*mib
	// Without the slots every flood request would hash at once.
	unbounded := int64(floodWorkers) * argonMiB * mib

	t.Logf("GOMAXPROCS %d; %d flood requests in %v (%.1f/s): %d right passwords accepted, %d wrong refused, %d deadline answers (503 M_UNKNOWN)",
		procs, fl.done.Load(), elapsed.Round(time.Millisecond), float64(fl.done.Load())/elapsed.Seconds(),
		fl.rightOK.Load(), fl.wrongRefused.Load(), fl.unavailable.Load())
	t.Logf("other user: %d checks, p50 %v, p99 %v, max %v (deadline %v)",
		len(otherLatencies), pct(0.50).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), pct(1).Round(time.Millisecond), restTimeout)
	t.Logf("server RSS: baseline %.1f MiB, peak %.1f MiB (VmHWM %.1f MiB, max of %d samples %.1f MiB), growth %.1f MiB; bound %.1f MiB; unbounded design would need ≈ %.0f MiB more",
		float64(base)/mib, float64(peak)/mib, float64(hwm)/1024, samples, float64(maxSample)/1024,
		float64(peak-base)/mib, float64(bound)/mib, float64(unbounded)/mib)

	for _, p := range fl.problems {
		t.Error(p)
	}
	if len(otherLatencies) < int(floodFor/otherEvery)-2 {
		t.Errorf("only %d checks of the other user in %v", len(otherLatencies), floodFor)
	}
	if fl.rightOK.Load() == 0 || fl.wrongRefused.Load() == 0 {
		t.Errorf("the flood was not served: %d right accepted, %d wrong refused", fl.rightOK.Load(), fl.wrongRefused.Load())
	}
	if peak > bound {
		t.Errorf("peak RSS %.1f MiB is over the bound %.1f MiB (baseline %.1f + %d slots × %d MiB × 2 + 64)",
			float64(peak)/mib, float64(bound)/mib, float64(base)/mib, procs, argonMiB)
	}
	// On machines with up to 14 cores the bound itself is under half of
	// what 64 hashes at once would hold; there the growth must be too.
	if growth := peak - base; bound-base < unbounded/2 && growth > unbounded/2 {
		t.Errorf("RSS grew by %.1f MiB, not well under the %.0f MiB of 64 hashes at once", float64(growth)/mib, float64(unbounded)/mib)
	}

	// With the default deadline the queue never outlasts it (above). An
	// instance with the shortest deadline allowed (rest.timeout: 100ms)
	// shows what a request whose deadline runs out waiting for a hash slot
	// gets: 503 with the JSON error M_UNKNOWN, never a bare 5xx or a
	// dropped connection.
	short := maps.Clone(env)
	short["MXIDP_CONFIG"] = writeConfig(t, "matrix:\n  server_name: example.org\nrest:\n  enabled: true\n  timeout: 100ms\nthrottle:\n  account_burst: 0\n")
	s2 := (&deployment{t: t, env: short}).start()
	sf := flood(s2.url, time.Now().Add(time.Second))
	sf.wg.Wait()
	t.Logf("rest.timeout 100ms: %d flood requests: %d right accepted, %d wrong refused, %d deadline answers (503 M_UNKNOWN)",
		sf.done.Load(), sf.rightOK.Load(), sf.wrongRefused.Load(), sf.unavailable.Load())
	for _, p := range sf.problems {
		t.Error("rest.timeout 100ms:", p)
	}
	if sf.unavailable.Load() == 0 {
		t.Error("rest.timeout 100ms: no request ran out of time; the deadline answer went untested")
	}
}
