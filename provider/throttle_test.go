package provider_test

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mxidp/mxidp/provider"
	"github.com/mxidp/mxidp/provider/password"
	"github.com/mxidp/mxidp/storage"
)

// auditCount counts the audit events of one kind and detail.
func auditCount(t *testing.T, s *storage.Store, event, detail string) int {
	t.Helper()
	evs, err := s.AuditEvents(context.Background(), storage.AuditFilter{Event: event, Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if detail == "" || e.Detail == detail {
			n++
		}
	}
	return n
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
		if _, err := l.CheckPassword(ctx, provider.Attempt{Login: "alice", Password: "right password"}); !errors.As(err, new(*provider.ThrottledError)) {
			t.Errorf("hard-locked account, right password: %v; want throttled", err)
		}
		if err := a.Unlock(ctx, "Alice"); err != nil {
			t.Fatal(err)
		}
		if _, err := l.CheckPassword(ctx, provider.Attempt{Login: "alice", Password: "right password"}); err != nil {
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
		evs, _ := a.Store.AuditEvents(ctx, storage.AuditFilter{Event: "login.throttled"})
		if len(evs) != 2 || !slices.ContainsFunc(evs, func(e storage.AuditEvent) bool {
			return e.Username == "someone" && e.Network == "2001:db8:1:2::99" && e.Detail == "by network; next check in 1h0m0s"
		}) {
			t.Errorf("throttle events = %+v", evs)
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
