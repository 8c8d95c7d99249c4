package storagetest

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mxidp/mxidp/storage"
)

// hourly holds off the next check an hour after the fifth failure, two
// after the sixth, and so on.
func hourly(n int64) time.Duration {
	if n < 5 {
		return 0
	}
	return time.Hour << (n - 5)
}

// A flood of parallel wrong guesses gets no more checks than the burst:
// the checks beyond it wait for the earlier results, which then refuse
// them. Another key is unaffected.
func testThrottleAdmitsNoMoreThanTheBurstUnderConcurrency(t *testing.T, open Opener) {
	s := open(t, storage.Options{MaxOpenConns: 32})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var checked, refused atomic.Int64
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				a, err := s.Admit(ctx, "account:alice", 5, 24*time.Hour)
				switch {
				case err != nil:
					t.Error(err)
					return
				case a.Busy:
					time.Sleep(5 * time.Millisecond)
					continue
				case !a.Admitted:
					if a.RetryAfter <= 0 || a.RetryAfter > time.Hour {
						t.Errorf("refused with retry after %v; want up to an hour", a.RetryAfter)
					}
					refused.Add(1)
					return
				}
				checked.Add(1)
				time.Sleep(2 * time.Millisecond) // the hash
				if err := s.Finish(ctx, "account:alice", true, false, hourly); err != nil {
					t.Error(err)
				}
				return
			}
		}()
	}
	wg.Wait()
	if checked.Load() != 5 || refused.Load() != 95 {
		t.Errorf("100 parallel wrong guesses: %d checked, %d refused; want 5 and 95", checked.Load(), refused.Load())
	}
	if a, err := s.Admit(ctx, "account:bob", 5, 24*time.Hour); !a.Admitted || err != nil {
		t.Errorf("another key was refused: %+v, %v", a, err)
	}
}

// Parallel right passwords all get checked: each success frees its place.
func testThrottleLetsParallelRightPasswordsThrough(t *testing.T, open Opener) {
	s := open(t, storage.Options{MaxOpenConns: 32})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var checked atomic.Int64
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				a, err := s.Admit(ctx, "account:alice", 5, 24*time.Hour)
				if err != nil || (!a.Admitted && !a.Busy) {
					t.Errorf("a right password was refused: %+v, %v", a, err)
					return
				}
				if a.Busy {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				checked.Add(1)
				if err := s.Finish(ctx, "account:alice", false, true, hourly); err != nil {
					t.Error(err)
				}
				return
			}
		}()
	}
	wg.Wait()
	if checked.Load() != 20 {
		t.Errorf("%d of 20 parallel right passwords checked", checked.Load())
	}
}

// heldOff lists the keys that refuse checks now, each with its failures.
func heldOff(t *testing.T, s *storage.Store, clk *clock) []string {
	t.Helper()
	return column(t, s, `SELECT key || ' ' || CAST(failures AS TEXT) FROM throttle WHERE next_at > $1 ORDER BY key`, clk.Now().UnixMilli())
}

func testThrottleDelaysGrowAndSuccessOrTimeForgets(t *testing.T, open Opener) {
	clk := newClock()
	s := open(t, storage.Options{Now: clk.Now})
	ctx := context.Background()
	// check runs one check to its end and returns whether it was admitted
	// and the wait when it was not.
	check := func(wrong, forget bool) (bool, time.Duration) {
		t.Helper()
		a, err := s.Admit(ctx, "k", 5, 24*time.Hour)
		if err != nil || a.Busy {
			t.Fatalf("Admit = %+v, %v", a, err)
		}
		if a.Admitted {
			if err := s.Finish(ctx, "k", wrong, forget, hourly); err != nil {
				t.Fatal(err)
			}
		}
		return a.Admitted, a.RetryAfter
	}
	for i := range 5 {
		if ok, _ := check(true, false); !ok {
			t.Fatalf("check %d of the burst refused", i+1)
		}
	}
	if ok, retry := check(true, false); ok || retry != time.Hour {
		t.Errorf("sixth check: admitted %v, retry %v; want refused for an hour", ok, retry)
	}
	clk.Advance(time.Hour)
	if ok, _ := check(true, false); !ok {
		t.Error("after the delay the next check was refused")
	}
	if ok, retry := check(true, false); ok || retry != 2*time.Hour {
		t.Errorf("after the sixth failure: admitted %v, retry %v; want two hours", ok, retry)
	}
	if st := heldOff(t, s, clk); !reflect.DeepEqual(st, []string{"k 6"}) {
		t.Errorf("keys held off = %v; want k with 6 failures", st)
	}
	// A right password of a shared key (a network) leaves the failures.
	clk.Advance(2 * time.Hour)
	check(false, false)
	if st := heldOff(t, s, clk); len(st) != 0 {
		t.Errorf("after the delay nothing should hold off: %v", st)
	}
	if ok, retry := check(true, false); !ok {
		t.Errorf("after a right password of a shared key: refused (%v)", retry)
	} else if _, retry := check(true, false); retry != 4*time.Hour {
		t.Errorf("the failures were not kept: next delay %v, want 4h", retry)
	}
	// Forgetting (an account whose owner got in) clears them.
	clk.Advance(4 * time.Hour)
	check(false, true)
	for i := range 5 {
		if ok, _ := check(true, false); !ok {
			t.Fatalf("after a forgetting success, check %d refused", i+1)
		}
	}
	// Counts older than forgetAfter start again; so do operators.
	clk.Advance(25 * time.Hour)
	if ok, _ := check(true, false); !ok {
		t.Error("a day later the count was not forgotten")
	}
	if err := s.ClearThrottle(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if rows := column(t, s, `SELECT key FROM throttle`); len(rows) != 0 {
		t.Errorf("after ClearThrottle the counters are %v; want none", rows)
	}
	check(true, false)
	if n, err := s.PurgeThrottle(ctx, 24*time.Hour); err != nil || n != 0 {
		t.Errorf("PurgeThrottle of a fresh key = %d, %v; want 0", n, err)
	}
	clk.Advance(25 * time.Hour)
	if n, err := s.PurgeThrottle(ctx, 24*time.Hour); err != nil || n != 1 {
		t.Errorf("PurgeThrottle of a stale key = %d, %v; want 1", n, err)
	}
}

// A check whose instance died mid-way stops counting after a minute.
func testThrottleForgetsAbandonedChecks(t *testing.T, open Opener) {
	clk := newClock()
	s := open(t, storage.Options{Now: clk.Now})
	ctx := context.Background()
	for range 5 {
		if a, err := s.Admit(ctx, "k", 5, 24*time.Hour); !a.Admitted || err != nil {
			t.Fatalf("Admit = %+v, %v", a, err)
		}
	}
	if a, _ := s.Admit(ctx, "k", 5, 24*time.Hour); !a.Busy {
		t.Errorf("with five checks under way: %+v; want busy", a)
	}
	if err := s.Abandon(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if a, _ := s.Admit(ctx, "k", 5, 24*time.Hour); !a.Admitted {
		t.Errorf("after one was abandoned: %+v; want admitted", a)
	}
	clk.Advance(2 * time.Minute)
	if a, _ := s.Admit(ctx, "k", 5, 24*time.Hour); !a.Admitted {
		t.Errorf("two minutes after checks that never finished: %+v; want admitted", a)
	}
}

// AdmitCommon admits, in one statement, exactly the keys with room under
// their own bursts, and FinishMany ends them in one: a right password
// clears the failures of the keys it forgets and only theirs; a check
// that decided nothing frees its place and clears nothing.
func testThrottleManyKeys(t *testing.T, open Opener) {
	s := open(t, storage.Options{})
	ctx := context.Background()
	// Rows exist only once a key was seen: new keys take the slow path.
	if got, err := s.AdmitCommon(ctx, []storage.ThrottleKey{{Key: "a", Burst: 5}}, time.Hour); err != nil || len(got) != 0 {
		t.Fatalf("AdmitCommon of an unseen key = %v, %v; want nothing admitted", got, err)
	}
	for _, k := range []string{"a", "b", "c"} {
		if a, err := s.Admit(ctx, k, 5, time.Hour); !a.Admitted || err != nil {
			t.Fatalf("Admit(%s) = %+v, %v", k, a, err)
		}
	}
	// Now: a, b, c each one check under way. Two failures on c.
	for range 2 {
		if err := s.Finish(ctx, "c", true, false, hourly); err != nil {
			t.Fatal(err)
		}
		if a, err := s.Admit(ctx, "c", 5, time.Hour); !a.Admitted || err != nil {
			t.Fatalf("Admit(c) = %+v, %v", a, err)
		}
	}
	// b allows one check at a time and has one under way: not admitted.
	keys := []storage.ThrottleKey{{Key: "a", Burst: 5}, {Key: "b", Burst: 1}, {Key: "c", Burst: 5}, {Key: "unseen", Burst: 5}}
	before := s.Statements()
	got, err := s.AdmitCommon(ctx, keys, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.Statements() - before; n != 1 {
		t.Errorf("AdmitCommon of four keys took %d statements, want 1", n)
	}
	if want := map[string]bool{"a": true, "c": true}; !reflect.DeepEqual(got, want) {
		t.Errorf("AdmitCommon = %v, want %v", got, want)
	}
	// c: two under way, two failures; burst 5 leaves room for three.
	if got, _ := s.AdmitCommon(ctx, []storage.ThrottleKey{{Key: "c", Burst: 5}}, time.Hour); !got["c"] {
		t.Errorf("c refused with room for one more")
	}
	if got, _ := s.AdmitCommon(ctx, []storage.ThrottleKey{{Key: "c", Burst: 5}}, time.Hour); got["c"] {
		t.Errorf("c admitted beyond burst − failures")
	}
	before = s.Statements()
	if err := s.FinishMany(ctx, []string{"a", "c"}, []string{"c"}, true); err != nil {
		t.Fatal(err)
	}
	if n := s.Statements() - before; n != 1 {
		t.Errorf("FinishMany of two keys took %d statements, want 1", n)
	}
	// c's failures are gone: all of its burst is free but the two checks
	// still under way (three, less the one finished).
	for i := range 3 {
		if a, err := s.Admit(ctx, "c", 5, time.Hour); !a.Admitted || err != nil {
			t.Fatalf("Admit(c) #%d after its failures were forgotten = %+v, %v", i, a, err)
		}
	}
	if a, _ := s.Admit(ctx, "c", 5, time.Hour); !a.Busy {
		t.Errorf("c with five under way: %+v, want busy", a)
	}
	// An undecided end frees b's one place and keeps failures elsewhere.
	if err := s.Finish(ctx, "a", true, false, hourly); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishMany(ctx, []string{"a", "b"}, []string{"a"}, false); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.AdmitCommon(ctx, []storage.ThrottleKey{{Key: "b", Burst: 1}}, time.Hour); !got["b"] {
		t.Errorf("b not admitted after its check was abandoned")
	}
	// a: one failure kept (undecided forgets nothing), burst 2 → 1 place,
	// and none under way: admitted once, then busy.
	if got, _ := s.AdmitCommon(ctx, []storage.ThrottleKey{{Key: "a", Burst: 2}}, time.Hour); !got["a"] {
		t.Errorf("a not admitted")
	}
	if got, _ := s.AdmitCommon(ctx, []storage.ThrottleKey{{Key: "a", Burst: 2}}, time.Hour); got["a"] {
		t.Errorf("a admitted twice with burst 2 and a failure it should have kept")
	}
}

// Checks that share counters (one user's parallel logins from one
// network share the network's, the login name's and the account's) admit
// and end them in statements over several rows at once, in whatever order
// each request names them. None of those statements may fail: on
// PostgreSQL, rows locked in different orders would deadlock, and a
// failed end leaves its check counted as under way.
func testThrottleStatementsOverSharedKeysNeverFail(t *testing.T, open Opener) {
	s := open(t, storage.Options{MaxOpenConns: 32})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	keys := []string{"network:a", "network:b", "account:x", "account:y", "user:1", "user:2"}
	for _, k := range keys {
		if a, err := s.Admit(ctx, k, 1000, time.Hour); err != nil || !a.Admitted {
			t.Fatalf("Admit(%s) = %+v, %v", k, a, err)
		}
	}
	var ops, failed atomic.Int64
	var first sync.Once
	var wg sync.WaitGroup
	deadline := time.Now().Add(3 * time.Second)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				n, a, u := keys[(g+i)%2], keys[2+(g/2+i)%2], keys[4+(g/4+i)%2]
				admit := []storage.ThrottleKey{{Key: n, Burst: 1000}, {Key: a, Burst: 1000}}
				if g%2 == 1 {
					admit[0], admit[1] = admit[1], admit[0]
				}
				_, err := s.AdmitCommon(ctx, admit, time.Hour)
				if err == nil {
					err = s.FinishMany(ctx, []string{u, a, n}[g%3:], []string{a, u}, i%3 == 0)
				}
				ops.Add(1)
				if err != nil {
					failed.Add(1)
					first.Do(func() { t.Errorf("a throttle statement failed: %v", err) })
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Errorf("%d of %d admissions and ends over shared counters failed; want none", failed.Load(), ops.Load())
	}
}

func testAuditEventsFilterAndPurge(t *testing.T, open Opener) {
	clk := newClock()
	s := open(t, storage.Options{Now: clk.Now})
	ctx := context.Background()
	for i, e := range []storage.AuditEvent{
		{Event: "login.failed", Username: "alice", Network: "192.0.2.1", Detail: "wrong password"},
		{Event: "login.succeeded", UserID: "u-alice", Username: "alice", ClientID: "synapse"},
		{Event: "user.disabled", UserID: "u-bob", Username: "bob"},
		{Event: "login.throttled", Username: "bob", Detail: "account"},
	} {
		if err := s.AddAuditEvent(ctx, e); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		clk.Advance(time.Hour)
	}
	names := func(f storage.AuditFilter) string {
		t.Helper()
		evs, err := s.AuditEvents(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		out := ""
		for _, e := range evs {
			out += fmt.Sprintf("%s/%s ", e.Event, e.Username)
		}
		return out
	}
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for f, want := range map[storage.AuditFilter]string{
		{}:                                   "login.failed/alice login.succeeded/alice user.disabled/bob login.throttled/bob ",
		{User: "alice"}:                      "login.failed/alice login.succeeded/alice ",
		{User: "u-bob"}:                      "user.disabled/bob ",
		{Since: start.Add(90 * time.Minute)}: "user.disabled/bob login.throttled/bob ",
		{Event: "login"}:                     "login.failed/alice login.succeeded/alice login.throttled/bob ",
		{Limit: 1}:                           "login.throttled/bob ",
		{Event: "%"}:                         "",
	} {
		if got := names(f); got != want {
			t.Errorf("AuditEvents(%+v) = %q; want %q", f, got, want)
		}
	}
	// An event recorded under the ID only is found by name with the ID.
	if err := s.AddAuditEvent(ctx, storage.AuditEvent{Event: "logout", UserID: "u-alice"}); err != nil {
		t.Fatal(err)
	}
	if got := names(storage.AuditFilter{User: "alice", UserID: "u-alice"}); got != "login.failed/alice login.succeeded/alice logout/ " {
		t.Errorf("alice's events with her ID = %q", got)
	}
	if got := names(storage.AuditFilter{User: "alice"}); got != "login.failed/alice login.succeeded/alice " {
		t.Errorf("alice's events by name = %q", got)
	}
	evs, _ := s.AuditEvents(ctx, storage.AuditFilter{User: "u-alice", Event: "login"})
	if len(evs) != 1 || !evs[0].At.Equal(start.Add(time.Hour)) || evs[0].ClientID != "synapse" || evs[0].ID == "" {
		t.Errorf("event round trip: %+v", evs)
	}
	if n, err := s.PurgeAudit(ctx, 150*time.Minute); err != nil || n != 2 {
		t.Errorf("PurgeAudit = %d, %v; want the 2 events older than 2.5 hours", n, err)
	}
}

// A flood of one repeated event is one row per key and window, whose count
// is every event, even when they come in parallel; another key or the next
// window starts a row of its own.
func testRepeatedAuditEventsAreCountedInOneRowPerWindow(t *testing.T, open Opener) {
	clk := newClock()
	s := open(t, storage.Options{Now: clk.Now, MaxOpenConns: 16})
	ctx := context.Background()
	flood := storage.AuditEvent{Event: "login.throttled", Username: "alice", Network: "192.0.2.1", Detail: "by account"}
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.AddRepeatedAuditEvent(ctx, flood, "account:alice", time.Hour); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := s.AddRepeatedAuditEvent(ctx, storage.AuditEvent{Event: "login.throttled", Network: "192.0.2.1"}, "network:192.0.2.1", time.Hour); err != nil {
		t.Fatal(err)
	}
	clk.Advance(30 * time.Minute)
	flood.Detail = "by account, later"
	if err := s.AddRepeatedAuditEvent(ctx, flood, "account:alice", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.AddAuditEvent(ctx, storage.AuditEvent{Event: "login.failed", Username: "alice"}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	if err := s.AddRepeatedAuditEvent(ctx, flood, "account:alice", time.Hour); err != nil {
		t.Fatal(err)
	}
	evs, err := s.AuditEvents(ctx, storage.AuditFilter{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var got []string
	for _, e := range evs {
		got = append(got, fmt.Sprintf("%s %d %s-%s %s", e.Event, e.Count, e.At.Sub(start), e.Last.Sub(start), e.Detail))
	}
	want := []string{
		"login.throttled 51 0s-30m0s by account, later",
		"login.failed 1 30m0s-30m0s ",
		"login.throttled 1 1h30m0s-1h30m0s by account, later",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("alice's events:\n%q\nwant\n%q", got, want)
	}
	if evs, _ := s.AuditEvents(ctx, storage.AuditFilter{Event: "login.throttled"}); len(evs) != 3 {
		t.Errorf("%d throttle rows; want 3 (alice's two windows, the network)", len(evs))
	}
}
