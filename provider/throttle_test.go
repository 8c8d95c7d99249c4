package provider_test

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mxidp/mxidp/provider"
	"github.com/mxidp/mxidp/provider/password"
	"github.com/mxidp/mxidp/storage"
	"github.com/mxidp/mxidp/storage/storagetest"
)

// auditCount counts the audit events of one kind and detail (a repeated
// event as often as it happened).
func auditCount(t *testing.T, s *storage.Store, event, detail string) int {
	t.Helper()
	evs, err := s.AuditEvents(context.Background(), storage.AuditFilter{Event: event, Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if detail == "" || e.Detail == detail {
			n += int(e.Count)
		}
	}
	return n
}

// auditRows counts the audit log's rows of one kind.
func auditRows(t *testing.T, s *storage.Store, event string) int {
	t.Helper()
	evs, err := s.AuditEvents(context.Background(), storage.AuditFilter{Event: event, Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	return len(evs)
}

// The attack of the acceptance: 100 parallel wrong guesses for one
// account get no more password checks than the burst; another account is
// unaffected; after the delay the owner's right password works.
func TestParallelGuessesGetNoMoreChecksThanTheBurst(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *provider.Accounts) {
		ctx := context.Background()
		for _, name := range []string{"alice", "bob"} {
			if _, err := a.AddUser(ctx, provider.NewUser{Username: name, Password: name + " right password"}); err != nil {
				t.Fatal(err)
			}
		}
		clock := time.Now()
		var mu sync.Mutex
		now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
		l := newLogin(a)
		l.Throttle = &provider.ThrottlePolicy{AccountBurst: 5, NetworkBurst: 1000, BaseDelay: time.Minute, MaxDelay: time.Hour, ForgetAfter: 24 * time.Hour}
		l.Store = a.Store.WithClock(now)

		var wg sync.WaitGroup
		results := make(chan error, 100)
		for i := range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := l.CheckPassword(ctx, provider.Attempt{Login: "alice", Password: "guess " + string(rune('A'+i%26)), Network: "192.0.2.66", Door: "test"})
				results <- err
			}()
		}
		wg.Wait()
		close(results)
		bad, throttled := 0, 0
		for err := range results {
			var te *provider.ThrottledError
			switch {
			case errors.As(err, &te):
				throttled++
			case errors.Is(err, provider.ErrBadCredentials):
				bad++
			default:
				t.Errorf("unexpected answer: %v", err)
			}
		}
		checks := auditCount(t, l.Store, "login.failed", "test: wrong password")
		if bad != 5 || throttled != 95 || checks != 5 {
			t.Errorf("100 parallel guesses: %d wrong-password answers, %d throttled, %d password checks audited; want 5, 95, 5", bad, throttled, checks)
		}
		// The refusals are counted, not written one by one.
		if n, rows := auditCount(t, l.Store, "login.throttled", ""), auditRows(t, l.Store, "login.throttled"); n != 95 || rows != 1 {
			t.Errorf("the audit log counts %d throttled checks in %d rows; want 95 in 1", n, rows)
		}
		if _, err := l.CheckPassword(ctx, provider.Attempt{Login: "bob", Password: "bob right password", Network: "198.51.100.7"}); err != nil {
			t.Errorf("another account was affected: %v", err)
		}
		// The owner, during the delay: refused without a check.
		if _, err := l.CheckPassword(ctx, provider.Attempt{Login: "alice", Password: "alice right password", Network: "198.51.100.8"}); !errors.As(err, new(*provider.ThrottledError)) {
			t.Errorf("right password during the delay: %v; want throttled", err)
		}
		// After it: logged in, and the count is cleared.
		mu.Lock()
		clock = clock.Add(time.Minute)
		mu.Unlock()
		if _, err := l.CheckPassword(ctx, provider.Attempt{Login: "alice", Password: "alice right password", Network: "198.51.100.8"}); err != nil {
			t.Errorf("right password after the delay: %v", err)
		}
		if _, err := l.CheckPassword(ctx, provider.Attempt{Login: "alice", Password: "one more guess"}); !errors.Is(err, provider.ErrBadCredentials) {
			t.Errorf("after the owner's login the next guess: %v; want a plain refusal (the count was cleared)", err)
		}
	})
}

func TestHardLockRefusesTheRightPasswordUntilUnlocked(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *provider.Accounts) {
		ctx := context.Background()
		if _, err := a.AddUser(ctx, provider.NewUser{Username: "alice", Email: "alice@example.org", Password: "right password"}); err != nil {
			t.Fatal(err)
		}
		l := newLogin(a)
		l.Throttle = &provider.ThrottlePolicy{AccountBurst: 3, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond, ForgetAfter: time.Hour, HardLock: true}
		for range 3 {
			l.CheckPassword(ctx, provider.Attempt{Login: "alice", Password: "guess"})
		}
		time.Sleep(5 * time.Millisecond) // longer than max_delay: a soft lock would be over
		for _, login := range []string{"alice", "alice@example.org"} {
			if _, err := l.CheckPassword(ctx, provider.Attempt{Login: login, Password: "right password"}); !errors.As(err, new(*provider.ThrottledError)) {
				t.Errorf("hard-locked account, right password as %s: %v; want throttled", login, err)
			}
		}
		if err := a.Unlock(ctx, "Alice"); err != nil {
			t.Fatal(err)
		}
		if keys := storagetest.ThrottleKeys(t, a.Store); len(keys) != 0 {
			t.Errorf("after user unlock the counters are %v; want none", keys)
		}
		if _, err := l.CheckPassword(ctx, provider.Attempt{Login: "alice@example.org", Password: "right password"}); err != nil {
			t.Errorf("after user unlock: %v", err)
		}
		if n := auditCount(t, a.Store, "user.unlocked", ""); n != 1 {
			t.Errorf("%d user.unlocked events; want 1", n)
		}
	})
}

// One network guessing at many accounts is slowed as a whole; another
// network is not.
func TestNetworkBurstCoversEveryAccountFromOneAddress(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *provider.Accounts) {
		ctx := context.Background()
		l := newLogin(a)
		l.Throttle = &provider.ThrottlePolicy{AccountBurst: 5, NetworkBurst: 10, BaseDelay: time.Hour, MaxDelay: time.Hour, ForgetAfter: 24 * time.Hour}
		var throttledAt int
		for i := range 12 {
			_, err := l.CheckPassword(ctx, provider.Attempt{Login: "user" + string(rune('a'+i)), Password: "guess", Network: "2001:db8:1:2::77"})
			if errors.As(err, new(*provider.ThrottledError)) {
				throttledAt = i + 1
				break
			}
		}
		if throttledAt != 11 {
			t.Errorf("the network was throttled at attempt %d; want 11 (after a burst of 10)", throttledAt)
		}
		// The same /64 is the same network; another /64 is not.
		if _, err := l.CheckPassword(ctx, provider.Attempt{Login: "someone", Password: "guess", Network: "2001:db8:1:2::99"}); !errors.As(err, new(*provider.ThrottledError)) {
			t.Errorf("same /64: %v; want throttled", err)
		}
		if _, err := l.CheckPassword(ctx, provider.Attempt{Login: "someone", Password: "guess", Network: "2001:db8:1:3::1"}); !errors.Is(err, provider.ErrBadCredentials) {
			t.Errorf("another /64: %v; want a plain refusal", err)
		}
		// Both refusals by the network are one row, which names the
		// network and no login name (it covers any).
		evs, _ := a.Store.AuditEvents(ctx, storage.AuditFilter{Event: "login.throttled"})
		if len(evs) != 1 || evs[0].Username != "" || evs[0].Network != "2001:db8:1:2::/64" || evs[0].Count != 2 || evs[0].Detail != "by network; next check in 1h0m0s" {
			t.Errorf("throttle events = %+v", evs)
		}
		// A network held off writes no counter for the names it tries.
		if keys := storagetest.ThrottleKeys(t, a.Store); slices.Contains(keys, "account:userk") || len(keys) != 14 {
			t.Errorf("throttle counters = %v; want the 11 names checked (not userk, refused by its network), the 2 /64 networks and their /48", keys)
		}
	})
}

// A /64 is cheap to change: the /48 around many of them has sixteen
// networks' worth of checks in all, then is held off as one.
func TestNetworkBurstOfAnIPv6SiteCoversItsSlashSixtyFours(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *provider.Accounts) {
		ctx := context.Background()
		l := newLogin(a)
		l.Throttle = &provider.ThrottlePolicy{AccountBurst: 1000, NetworkBurst: 2, BaseDelay: time.Hour, MaxDelay: time.Hour, ForgetAfter: 24 * time.Hour}
		checked := 0
		for i := range 40 {
			_, err := l.CheckPassword(ctx, provider.Attempt{Login: fmt.Sprintf("user%d", i), Password: "guess", Network: fmt.Sprintf("2001:db8:7:%x::1", i)})
			if errors.Is(err, provider.ErrBadCredentials) {
				checked++
			}
		}
		if checked != 2*16 {
			t.Errorf("40 /64s of one /48: %d checks, want the /48's 32", checked)
		}
		if _, err := l.CheckPassword(ctx, provider.Attempt{Login: "someone", Password: "guess", Network: "2001:db8:8::1"}); !errors.Is(err, provider.ErrBadCredentials) {
			t.Errorf("another /48: %v; want a plain refusal", err)
		}
	})
}

// An account found by its username and by its e-mail address has one
// allowance: guesses alternating between the two get the burst in total.
func TestAccountBurstCoversEveryNameOfTheAccount(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *provider.Accounts) {
		ctx := context.Background()
		if _, err := a.AddUser(ctx, provider.NewUser{Username: "alice", Email: "alice@example.org", Password: "right password"}); err != nil {
			t.Fatal(err)
		}
		l := newLogin(a)
		l.Throttle = &provider.ThrottlePolicy{AccountBurst: 5, NetworkBurst: 1000, BaseDelay: time.Hour, MaxDelay: time.Hour, ForgetAfter: 24 * time.Hour}
		var answers []string
		for i := range 10 {
			login := []string{"alice", "Alice@Example.org"}[i%2]
			_, err := l.CheckPassword(ctx, provider.Attempt{Login: login, Password: "guess", Network: "192.0.2.9", Door: "test"})
			var te *provider.ThrottledError
			switch {
			case errors.As(err, &te) && te.Key == "account":
				answers = append(answers, "throttled")
			case errors.Is(err, provider.ErrBadCredentials):
				answers = append(answers, "wrong")
			default:
				t.Fatalf("guess %d as %s: %v", i+1, login, err)
			}
		}
		want := []string{"wrong", "wrong", "wrong", "wrong", "wrong", "throttled", "throttled", "throttled", "throttled", "throttled"}
		if !slices.Equal(answers, want) {
			t.Errorf("alternating guesses: %v; want %v", answers, want)
		}
		if n := auditCount(t, a.Store, "login.failed", "test: wrong password"); n != 5 {
			t.Errorf("%d password checks; want 5", n)
		}
		// The account's own refusals are one row that names the account.
		evs, _ := a.Store.AuditEvents(ctx, storage.AuditFilter{User: "alice", Event: "login.throttled"})
		var byAccount int64
		for _, e := range evs {
			if e.UserID != "" {
				byAccount += e.Count
				if e.Username != "alice" {
					t.Errorf("the account's throttle row names %q; want alice", e.Username)
				}
			}
		}
		if byAccount == 0 {
			t.Errorf("no throttle row for the account: %+v", evs)
		}
		// A name nobody has keeps its own allowance.
		if _, err := l.CheckPassword(ctx, provider.Attempt{Login: "bob", Password: "guess", Network: "192.0.2.9"}); !errors.Is(err, provider.ErrBadCredentials) {
			t.Errorf("an unknown name: %v; want a plain refusal", err)
		}
	})
}

// A login name or password too long to be anyone's is refused unchecked,
// and writes neither a counter nor an audit row, however often it comes.
func TestOversizedAttemptsAreRefusedWithoutAWrite(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *provider.Accounts) {
		ctx := context.Background()
		if _, err := a.AddUser(ctx, provider.NewUser{Username: "alice", Password: "right password"}); err != nil {
			t.Fatal(err)
		}
		l := newLogin(a)
		var results []string
		l.Observe = func(door, result string) { results = append(results, result) }
		long := strings.Repeat("a", provider.MaxLoginLength+1)
		for _, at := range []provider.Attempt{
			{Login: long, Password: "guess", Network: "192.0.2.1"},
			{Login: "alice", Password: strings.Repeat("p", provider.MaxPasswordLength+1), Network: "192.0.2.1"},
		} {
			for range 50 {
				if _, err := l.CheckPassword(ctx, at); !errors.Is(err, provider.ErrBadCredentials) {
					t.Fatalf("oversized attempt: %v; want ErrBadCredentials", err)
				}
			}
		}
		if keys := storagetest.ThrottleKeys(t, a.Store); len(keys) != 0 {
			t.Errorf("throttle counters = %v; want none", keys)
		}
		if n := auditRows(t, a.Store, "login"); n != 0 {
			t.Errorf("%d login audit rows; want none", n)
		}
		if len(results) != 100 || slices.IndexFunc(results, func(r string) bool { return r != "oversized" }) >= 0 {
			t.Errorf("observed %d results (%v…); want 100 oversized", len(results), results[:min(3, len(results))])
		}
		// The longest allowed are checked as usual.
		if _, err := l.CheckPassword(ctx, provider.Attempt{Login: long[1:], Password: "guess"}); !errors.Is(err, provider.ErrBadCredentials) || auditRows(t, a.Store, "login.failed") != 1 {
			t.Errorf("a %d-byte login: %v, not checked", provider.MaxLoginLength, err)
		}
		if err := a.SetPassword(ctx, "alice", strings.Repeat("p", provider.MaxPasswordLength+1)); err == nil {
			t.Error("an operator could set a password no login accepts")
		}
	})
}

// Unknown users and wrong passwords cost the same at the default hash
// cost: the median ratio of many pairs of checks is within 10 % of 1.
// So they do for a user whose imported hash is far cheaper than the
// dummy's check ({SSHA}: microseconds): the refusal waits for the rest.
func TestUnknownUsersAndWrongPasswordsTakeTheSameTime(t *testing.T) {
	for _, stored := range []string{"argon2id", "ssha"} {
		t.Run(stored, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, a *provider.Accounts) {
				ctx := context.Background()
				a.Hash = password.Default
				u, err := a.AddUser(ctx, provider.NewUser{Username: "alice", Password: "right password"})
				if err != nil {
					t.Fatal(err)
				}
				if stored == "ssha" {
					salt := []byte("salt1234")
					sum := sha1.Sum(append([]byte("right password"), salt...))
					h := "{SSHA}" + base64.StdEncoding.EncodeToString(append(sum[:], salt...))
					if _, err := a.Store.UpdateUser(ctx, u.ID, func(u *storage.User) error { u.PasswordHash = h; return nil }); err != nil {
						t.Fatal(err)
					}
				}
				l := newLogin(a)
				l.Throttle = &provider.ThrottlePolicy{AccountBurst: 100000, NetworkBurst: 100000, BaseDelay: time.Second, MaxDelay: time.Second, ForgetAfter: time.Hour}
				timed := func(login string) time.Duration {
					start := time.Now()
					if _, err := l.CheckPassword(ctx, provider.Attempt{Login: login, Password: "wrong password", Network: "192.0.2.1"}); !errors.Is(err, provider.ErrBadCredentials) {
						t.Fatalf("%s: %v", login, err)
					}
					return time.Since(start)
				}
				timed("nobody")
				timed("alice")
				// Each pair runs back to back, under the same load of a shared
				// machine; the median of the pairs' ratios is what a patient
				// attacker would measure.
				var unknown, wrongPW []time.Duration
				var ratios []float64
				for range 41 {
					u, w := timed("nobody"), timed("alice")
					unknown, wrongPW = append(unknown, u), append(wrongPW, w)
					ratios = append(ratios, float64(u)/float64(w))
				}
				slices.Sort(unknown)
				slices.Sort(wrongPW)
				slices.Sort(ratios)
				mu, mw, ratio := unknown[len(unknown)/2], wrongPW[len(wrongPW)/2], ratios[len(ratios)/2]
				t.Logf("median unknown user %v, wrong password %v; median ratio of pairs %.3f", mu, mw, ratio)
				if ratio < 0.9 || ratio > 1.1 {
					t.Errorf("unknown user %v vs wrong password %v: ratio %.3f, want within 10%%", mu, mw, ratio)
				}
			})
		})
	}
}
