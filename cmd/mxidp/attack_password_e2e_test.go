package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/mxidp/mxidp/provider/password"
	"github.com/mxidp/mxidp/storage"
	"github.com/mxidp/mxidp/storage/storagetest"
)

// Attacks on the password door (the login page; check_credentials is
// attacked in attack_e2e_test.go): more guesses than the throttle allows,
// and writes that grow the database without bound.

// slowThrottle holds a login name off a minute after its burst, so that no
// delay runs out while a test is guessing.
const slowThrottle = "throttle:\n  base_delay: 1m\n  max_delay: 1h\n"

// startOpenIDWith is startOpenID with more configuration (YAML).
func startOpenIDWith(t *testing.T, backend, extraYAML string) *openIDEnv {
	t.Helper()
	d := newDeployment(t, backend)
	d.env["MXIDP_CONFIG"] = writeConfig(t, "passwords:\n  argon2id: {time: 1, memory_kib: 64, threads: 1}\nkeys:\n  refresh_interval: 100ms\n"+extraYAML)
	(&cli{t: t, env: d.env}).must(alicePassword+"\n", "user", "add", "alice", "--password-stdin",
		"--email", aliceEmail, "--name", aliceName)
	return connectOpenID(t, d)
}

// connectOpenID starts the deployment on a free port and connects to it.
func connectOpenID(t *testing.T, d *deployment) *openIDEnv {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	e := &openIDEnv{t: t, ctx: ctx, d: d}
	e.connect(d.startOnFreePort())
	return e
}

// signInPage opens the sign-in form of a new authorization in a new
// browser, for a client it registers.
func (e *openIDEnv) signInPage() (*browser, loginForm) {
	e.t.Helper()
	cfg := e.config(e.addClient("rp-"+strings.ToLower(randomAlnum(6))), oauth2.AuthStyleInHeader)
	b := newBrowser(e.t)
	p := b.get(cfg.AuthCodeURL("state-" + randomAlnum(8)))
	for p.status >= 300 && p.status < 400 {
		p = b.get(p.location)
	}
	form, ok := parseLoginForm(p)
	if !ok {
		e.t.Fatalf("no sign-in form: %d %s", p.status, p.body)
	}
	return b, form
}

// attempt submits the sign-in form and returns the status of the answer
// and the form shown again (for the next attempt); a login that gets in
// fails the test.
func attempt(t *testing.T, b *browser, form loginForm, username, pw string) (int, loginForm) {
	t.Helper()
	p := b.submitLogin(form, username, pw)
	if p.status >= 300 && p.status < 400 {
		t.Fatalf("signing in as %.40q was let in: %d to %s", username, p.status, p.location)
	}
	next, ok := parseLoginForm(p)
	if !ok {
		t.Fatalf("signing in as %.40q: %d and no form again:\n%.2000s", username, p.status, p.body)
	}
	return p.status, next
}

// dbSize is how many rows a table of mxidp's database holds and how many
// bytes their text columns take.
func dbSize(t *testing.T, s *storage.Store, table string) (rows, bytes int64) {
	t.Helper()
	text := map[string]string{
		"audit_events": "LENGTH(username) + LENGTH(detail) + LENGTH(network) + LENGTH(client_id)",
		"throttle":     "LENGTH(key)",
	}[table]
	if err := s.DB().QueryRow(`SELECT COUNT(*), COALESCE(SUM(`+text+`), 0) FROM `+table).Scan(&rows, &bytes); err != nil {
		t.Fatal(err)
	}
	return rows, bytes
}

// An attacker who knows alice's username and e-mail address guesses by
// each in turn: together they get the account's burst of checks (5), not
// one burst each; the right password during the delay gets in by neither.
func TestAccountThrottleRefusesGuessesAlternatingUsernameAndEmail(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			e := startOpenIDWith(t, backend, slowThrottle)
			b, form := e.signInPage()
			var statuses []int
			for i := range 10 {
				var status int
				status, form = attempt(t, b, form, []string{"alice", aliceEmail}[i%2], "guess-"+randomAlnum(8))
				statuses = append(statuses, status)
			}
			want := []int{401, 401, 401, 401, 401, 429, 429, 429, 429, 429}
			if !slices.Equal(statuses, want) {
				t.Errorf("ten guesses alternating username and e-mail: %v; want %v", statuses, want)
			}
			for _, login := range []string{aliceEmail, "alice"} {
				if status, _ := attempt(t, b, form, login, alicePassword); status != http.StatusTooManyRequests {
					t.Errorf("the right password as %s during the delay: %d; want 429", login, status)
				}
			}
			events := auditJSONOf(t, &cli{t: t, env: e.d.env}, "--user", "alice", "--event", "login")
			if n := countDetail(events, "wrong password"); n != 5 {
				t.Errorf("%d password checks for alice; want 5 (the account's burst)", n)
			}
		})
	}
}

// On a platform table whose collation folds accents and case (WordPress on
// MariaDB, utf8mb4_unicode_520_ci), "alicé" finds alice's row. Such a
// spelling is refused like a wrong password, even with the right password,
// and gets no allowance of its own once alice's is spent; "ALICE" (case
// aside, the canonical name) shares alice's.
func TestAccountThrottleRefusesAccentVariantsOnAFoldingPlatformTable(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			url, db := storagetest.WordPressPlatform(t)
			hash, err := password.Hash(alicePassword, password.Params{Time: 1, MemoryKiB: 64, Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			noteSecret(hash)
			storagetest.AddWordPressUsers(t, db, storagetest.WordPressUser{ID: 1, Login: "alice", Pass: hash, Email: "alice@example.com", DisplayName: "Alice Liddell"})
			env := testEnv(t, backend, platformConfig(url, storagetest.WordPressQueries())+slowThrottle)
			env["MXIDP_ISSUER"] = "http://127.0.0.1:8080"
			env["MXIDP_LISTEN"] = "127.0.0.1:0"
			e := connectOpenID(t, &deployment{t: t, env: env})
			variants := []string{"alicé", "ÀLICE", "aliçe", "Ålice", "ａｌｉｃｅ"}
			found := 0
			for _, v := range variants {
				var n int
				if err := db.QueryRow(`SELECT COUNT(*) FROM wp_users WHERE user_login = ?`, v).Scan(&n); err != nil {
					t.Fatal(err)
				}
				found += n
			}
			if found == 0 {
				t.Fatalf("the platform table folds none of %q to alice: the attack needs a folding collation", variants)
			}

			b, form := e.signInPage()
			var status int
			for _, v := range variants {
				if status, form = attempt(t, b, form, v, alicePassword); status != http.StatusUnauthorized {
					t.Errorf("%s with alice's password: %d; want 401", v, status)
				}
			}
			for i := range 5 {
				if status, form = attempt(t, b, form, "alice", "guess-"+randomAlnum(8)); status != http.StatusUnauthorized {
					t.Errorf("guess %d: %d; want 401", i+1, status)
				}
			}
			for _, v := range append([]string{"ALICE", "Alice"}, variants...) {
				if status, form = attempt(t, b, form, v, alicePassword); status != http.StatusUnauthorized && status != http.StatusTooManyRequests {
					t.Errorf("%s with alice's password after her burst: %d; want a refusal", v, status)
				}
			}
			if status, _ = attempt(t, b, form, "ALICE", alicePassword); status != http.StatusTooManyRequests {
				t.Errorf("ALICE after alice's burst: %d; want 429 (one allowance)", status)
			}
			events := auditJSONOf(t, &cli{t: t, env: env}, "--event", "login")
			if n := countDetail(events, "wrong password"); n != 5 {
				t.Errorf("%d password checks for alice; want 5", n)
			}
		})
	}
}

// 150 sign-in attempts with 60 KB login names or passwords, most of them
// throttled on the old build, grow neither the audit log nor the throttle
// table: they are refused before either is written (and counted in the
// metrics only).
func TestPasswordDoorRefusesOversizedAttemptsWithoutGrowingTheDatabase(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			e := startOpenIDWith(t, backend, "")
			s := (&cli{t: t, env: e.d.env}).store()
			b, form := e.signInPage()
			auditRows0, auditBytes0 := dbSize(t, s, "audit_events")
			throttleRows0, throttleBytes0 := dbSize(t, s, "throttle")
			big := strings.Repeat("x", 60000)
			for i := range 150 {
				login, pw := fmt.Sprintf("%s%d", big, i), "guess"
				if i%3 == 2 {
					login, pw = "alice", big+randomAlnum(4)
				}
				var status int
				if status, form = attempt(t, b, form, login, pw); status/100 != 4 {
					t.Fatalf("oversized attempt %d: %d; want a refusal", i, status)
				}
			}
			auditRows, auditBytes := dbSize(t, s, "audit_events")
			throttleRows, throttleBytes := dbSize(t, s, "throttle")
			t.Logf("audit log +%d rows, +%d bytes; throttle +%d rows, +%d bytes", auditRows-auditRows0, auditBytes-auditBytes0, throttleRows-throttleRows0, throttleBytes-throttleBytes0)
			if auditRows-auditRows0 > 2 || auditBytes-auditBytes0 > 2048 {
				t.Errorf("the audit log grew by %d rows, %d bytes; want at most 2 rows, 2 KiB", auditRows-auditRows0, auditBytes-auditBytes0)
			}
			if throttleRows-throttleRows0 > 2 || throttleBytes-throttleBytes0 > 2048 {
				t.Errorf("the throttle table grew by %d rows, %d bytes; want at most 2 rows, 2 KiB", throttleRows-throttleRows0, throttleBytes-throttleBytes0)
			}
			// Refused as a wrong password is, and counted.
			if status, _ := attempt(t, b, form, "alice", "guess"); status != http.StatusUnauthorized {
				t.Errorf("a plain wrong password afterwards: %d; want 401 (the flood spent no allowance)", status)
			}
			_, metrics := e.s.get("/metrics")
			if want := `mxidp_password_checks_total{door="login page",result="oversized"} 150`; !strings.Contains(string(metrics), want) {
				t.Errorf("/metrics lacks %s", want)
			}
		})
	}
}

// A network held off by its own counter writes no counter for each name it
// then tries (which would let it fill the throttle table), and its refusals
// are one audit event whose count grows.
func TestThrottledNetworkWritesNoCounterPerName(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			e := startOpenIDWith(t, backend, slowThrottle+"  network_burst: 3\n")
			b, form := e.signInPage()
			var status int
			for i := range 3 {
				if status, form = attempt(t, b, form, fmt.Sprintf("probe%d", i), "guess"); status != http.StatusUnauthorized {
					t.Fatalf("probe %d: %d; want 401", i, status)
				}
			}
			for i := range 20 {
				name := fmt.Sprintf("spray%d-%s", i, strings.ToLower(randomAlnum(8)))
				if status, form = attempt(t, b, form, name, "guess"); status != http.StatusTooManyRequests {
					t.Errorf("%s from the held-off network: %d; want 429", name, status)
				}
			}
			counters := storagetest.ThrottleKeys(t, (&cli{t: t, env: e.d.env}).store())
			for _, k := range counters {
				if strings.HasPrefix(k, "account:spray") {
					t.Errorf("the held-off network wrote the counter %q", k)
				}
			}
			if len(counters) != 4 {
				t.Errorf("throttle counters %v; want the 3 probes' and the network's", counters)
			}
			throttled := auditJSONOf(t, &cli{t: t, env: e.d.env}, "--event", "login.throttled")
			if n := countDetail(throttled, "login page, by network"); n != 20 || len(throttled) != 1 || throttled[0].Network != "127.0.0.1" {
				t.Errorf("%d refusals by the network in %d events (%+v); want 20 in one, for 127.0.0.1", n, len(throttled), throttled)
			}
		})
	}
}
