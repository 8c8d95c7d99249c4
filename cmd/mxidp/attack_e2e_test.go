package main

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mxidp/mxidp/storage/storagetest"
	"golang.org/x/oauth2"
)

// auditJSONOf runs `mxidp audit --json` with args and decodes it.
func auditJSONOf(t *testing.T, c *cli, args ...string) []auditJSON {
	t.Helper()
	var events []auditJSON
	if err := json.Unmarshal([]byte(c.must("", append([]string{"audit", "--json"}, args...)...)), &events); err != nil {
		t.Fatal(err)
	}
	return events
}

// countDetail counts the events whose detail contains detail, a repeated
// event as often as it happened.
func countDetail(events []auditJSON, detail string) int {
	n := 0
	for _, e := range events {
		if strings.Contains(e.Detail, detail) {
			n += int(max(e.Count, 1))
		}
	}
	return n
}

// An attack through the REST door: 100 parallel wrong guesses for alice
// get 5 password checks (the default burst), the rest are refused unseen;
// bob logs in meanwhile; the audit log tells the story, counting the
// refusals in one event instead of writing one each.
func TestParallelGuessesThroughRESTAreThrottledAndAudited(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			s := startREST(t, backend)
			var wg sync.WaitGroup
			for i := range 100 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					body := postRaw(t, s.url+ccPath, cc("@alice:example.org", "guess-"+randomAlnum(8)))
					if strings.TrimSpace(string(body)) != `{"auth":{"success":false}}` {
						t.Errorf("guess %d: %s", i, body)
					}
				}()
			}
			wg.Wait()
			if got := postJSON(t, s.url+ccPath, cc("@bob:example.org", "builder-99")); dig(got, "auth", "success") != true {
				t.Errorf("bob during the attack on alice: %v", got)
			}
			c := &cli{t: t, env: s.env}
			failed := auditJSONOf(t, c, "--user", "alice", "--event", "login.failed")
			throttled := auditJSONOf(t, c, "--user", "alice", "--event", "login.throttled")
			if n, m := countDetail(failed, "rest: wrong password"), countDetail(throttled, "rest, by account"); n != 5 || m != 95 || len(throttled) > 2 {
				t.Errorf("audit: %d wrong-password checks, %d throttled in %d events; want 5 and 95 in one or two", n, m, len(throttled))
			}
			if ok := auditJSONOf(t, c, "--user", "bob", "--event", "login.succeeded"); len(ok) != 1 || ok[0].Detail != "rest" {
				t.Errorf("bob's login in the audit log: %+v", ok)
			}
			_, metrics := s.get("/metrics")
			for _, want := range []string{
				`mxidp_password_checks_total{door="rest",result="failed"} 5`,
				`mxidp_password_checks_total{door="rest",result="throttled"} 95`,
				`mxidp_password_checks_total{door="rest",result="succeeded"} 1`,
			} {
				if !strings.Contains(string(metrics), want) {
					t.Errorf("/metrics lacks %s", want)
				}
			}
		})
	}
}

// The login page refuses the sixth wrong password in a row with 429 and
// a message, without checking it.
func TestLoginPageSaysWhenSignInsAreThrottled(t *testing.T) {
	e := startOpenID(t, "sqlite")
	c := e.addClient("rp")
	cfg := e.config(c, oauth2.AuthStyleInHeader)
	b := newBrowser(t)
	p := b.get(cfg.AuthCodeURL("state-" + randomAlnum(8)))
	for p.status >= 300 && p.status < 400 {
		p = b.get(p.location)
	}
	var statuses []int
	for range 6 {
		form, ok := parseLoginForm(p)
		if !ok {
			t.Fatalf("no login form: %d %s", p.status, p.body)
		}
		p = b.submitLogin(form, "alice", "wrong-"+randomAlnum(6))
		statuses = append(statuses, p.status)
	}
	want := []int{401, 401, 401, 401, 401, http.StatusTooManyRequests}
	if !slices.Equal(statuses, want) || !strings.Contains(p.body, "Too many sign-in attempts") {
		t.Errorf("six wrong passwords: statuses %v; want %v and the throttle message:\n%s", statuses, want, p.body)
	}
	events := auditJSONOf(t, &cli{t: t, env: e.d.env}, "--user", "alice", "--event", "login")
	if countDetail(events, "login page: wrong password") != 5 || countDetail(events, "login page, by account") != 1 {
		t.Errorf("audit log of the attack: %+v", events)
	}
	for _, ev := range events {
		if ev.Network != "127.0.0.1" {
			t.Errorf("event %s from network %q; want 127.0.0.1", ev.Event, ev.Network)
		}
	}
}
