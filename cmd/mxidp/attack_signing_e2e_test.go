package main

// Attacks on issue 14's changes, against a started mxidp on SQLite and
// PostgreSQL: per-client signing algorithms (tokens in an algorithm the
// client did not register, signed userinfo passed off as something else),
// the batched throttle statements (parallel checks that share counters),
// and the callback that no longer reads the user.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/mxidp/mxidp/storage"
	"github.com/mxidp/mxidp/storage/storagetest"
)

// signIn is one browser's sign-in, safe to run in a goroutine: it opens
// authURL in a new browser, follows the redirects to the sign-in form,
// submits it, and returns the status of the answer to the form.
func signIn(ctx context.Context, authURL, username, pw string) (int, error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	fetch := func(req *http.Request) (page, error) {
		resp, err := c.Do(req.WithContext(ctx))
		if err != nil {
			return page{}, err
		}
		defer resp.Body.Close()
		noteCookies(resp)
		body, err := io.ReadAll(resp.Body)
		p := page{url: req.URL, status: resp.StatusCode, body: string(body)}
		if loc, err := resp.Location(); err == nil {
			p.location = loc.String()
		}
		return p, err
	}
	req, _ := http.NewRequest(http.MethodGet, authURL, nil)
	p, err := fetch(req)
	for hops := 0; err == nil && p.status >= 300 && p.status < 400 && hops < 5; hops++ {
		req, _ = http.NewRequest(http.MethodGet, p.location, nil)
		p, err = fetch(req)
	}
	if err != nil {
		return 0, err
	}
	f, ok := parseLoginForm(p)
	if !ok {
		return 0, fmt.Errorf("no sign-in form: %d %.300s", p.status, p.body)
	}
	form := url.Values{"id": {f.fields["id"]}, "csrf": {f.fields["csrf"]}, "username": {username}, "password": {pw}}
	req, _ = http.NewRequest(http.MethodPost, f.action, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if p, err = fetch(req); err != nil {
		return 0, err
	}
	return p.status, nil
}

// inflightCounters lists the throttle counters that still count a check
// as under way.
func inflightCounters(t *testing.T, s *storage.Store) []string {
	t.Helper()
	rows, err := s.DB().Query(`SELECT key, inflight FROM throttle WHERE inflight <> 0 ORDER BY key`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var k string
		var n int64
		if err := rows.Scan(&k, &n); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s=%d", k, n))
	}
	return out
}

// Parallel sign-ins of one user from one address share their counters
// (the network's, the login name's, the account's), which a password
// check now admits and ends in one statement each, several rows at a
// time. On PostgreSQL two such statements that lock the same rows in
// different orders deadlock: one check fails with an error, and when the
// failing statement was the one ending a check, its counters count it as
// under way for good, so that a user's own parallel logins (or an
// attacker's, against the user) could leave the account busy. Every
// sign-in must get in, nothing may fail, and nothing may stay counted.
func TestParallelSignInsSharingThrottleCountersNeitherFailNorLeak(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			e := startOpenIDWith(t, backend, "")
			cfg := e.config(e.addClient("rp-parallel"), oauth2.AuthStyleInHeader)
			const workers, each = 8, 12
			var mu sync.Mutex
			statuses := map[int]int{}
			var errs []error
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						login := "alice"
						if (w+i)%3 == 0 {
							login = aliceEmail // the same account by its other name
						}
						status, err := signIn(e.ctx, cfg.AuthCodeURL(randomAlnum(16)), login, alicePassword)
						mu.Lock()
						statuses[status]++
						if err != nil {
							errs = append(errs, err)
						}
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if len(errs) > 0 || statuses[http.StatusFound] != workers*each {
				t.Errorf("%d parallel sign-ins with the right password: answers %v, errors %v; want every one a 302", workers*each, statuses, errors.Join(errs...))
			}
			for _, bad := range []string{"deadlock", "updating a throttle counter failed", "level=ERROR"} {
				if strings.Contains(e.s.stderr.String(), bad) {
					t.Errorf("the log has %q:\n%s", bad, grepLines(e.s.stderr.String(), bad))
				}
			}
			if left := inflightCounters(t, (&cli{t: t, env: e.d.env}).store()); len(left) > 0 {
				t.Errorf("after every check ended, counters still count checks under way: %v", left)
			}
		})
	}
}

// grepLines returns the lines of log that contain s.
func grepLines(log, s string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
