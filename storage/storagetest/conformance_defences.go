package storagetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mxidp/mxidp/storage"
)

// burstThenHour admits five checks at once, then one per hour.
func burstThenHour(n int64) time.Duration {
	if n < 5 {
		return 0
	}
	return time.Hour << (n - 5)
}

func testThrottleAdmitsNoMoreThanTheBurstUnderConcurrency(t *testing.T, open Opener) {
	s := open(t, storage.Options{MaxOpenConns: 32})
	ctx := context.Background()
	var admitted, refused atomic.Int64
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, retry, err := s.Admit(ctx, "account:alice", burstThenHour, 24*time.Hour)
			switch {
			case err != nil:
				t.Error(err)
			case ok:
				admitted.Add(1)
			case retry <= 0 || retry > time.Hour:
				t.Errorf("refused with retry after %v; want up to an hour", retry)
			default:
				refused.Add(1)
			}
		}()
	}
	wg.Wait()
	if admitted.Load() != 5 || refused.Load() != 95 {
		t.Errorf("100 parallel checks: %d admitted, %d refused; want 5 and 95", admitted.Load(), refused.Load())
	}
	if ok, _, err := s.Admit(ctx, "account:bob", burstThenHour, 24*time.Hour); !ok || err != nil {
		t.Errorf("another key was refused: %v, %v", ok, err)
	}
}

func testThrottleDelaysGrowAndSuccessOrTimeForgets(t *testing.T, open Opener) {
	clk := newClock()
	s := open(t, storage.Options{Now: clk.Now})
	ctx := context.Background()
	admit := func() (bool, time.Duration) {
		t.Helper()
		ok, retry, err := s.Admit(ctx, "k", burstThenHour, 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return ok, retry
	}
	for i := range 5 {
		if ok, _ := admit(); !ok {
			t.Fatalf("check %d of the burst refused", i+1)
		}
	}
	if ok, retry := admit(); ok || retry != time.Hour {
		t.Errorf("sixth check: admitted %v, retry %v; want refused for an hour", ok, retry)
	}
	clk.Advance(time.Hour)
	if ok, _ := admit(); !ok {
		t.Error("after the delay the next check was refused")
	}
	if ok, retry := admit(); ok || retry != 2*time.Hour {
		t.Errorf("after the sixth check: admitted %v, retry %v; want two hours", ok, retry)
	}
	if st, err := s.Throttled(ctx); err != nil || len(st) != 1 || st[0].Key != "k" || st[0].Failures != 6 {
		t.Errorf("Throttled = %+v, %v", st, err)
	}
	// One success of a shared key takes back only its own count.
	if err := s.Succeeded(ctx, "k", false); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Throttled(ctx); len(st) != 1 || st[0].Failures != 5 {
		t.Errorf("after one success (not forgetting): %+v; want 5 failures", st)
	}
	// Forgetting clears the key: the owner got in.
	if err := s.Succeeded(ctx, "k", true); err != nil {
		t.Fatal(err)
	}
	if ok, _ := admit(); !ok {
		t.Error("after a forgetting success the next check was refused")
	}
	// Counts older than forgetAfter start again.
	for range 5 {
		admit()
	}
	clk.Advance(25 * time.Hour)
	if ok, _ := admit(); !ok {
		t.Error("a day later the count was not forgotten")
	}
	if n, err := s.PurgeThrottle(ctx, 24*time.Hour); err != nil || n != 0 {
		t.Errorf("PurgeThrottle of a fresh key = %d, %v; want 0", n, err)
	}
	clk.Advance(25 * time.Hour)
	if n, err := s.PurgeThrottle(ctx, 24*time.Hour); err != nil || n != 1 {
		t.Errorf("PurgeThrottle of a stale key = %d, %v; want 1", n, err)
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
	evs, _ := s.AuditEvents(ctx, storage.AuditFilter{User: "u-alice"})
	if len(evs) != 1 || !evs[0].At.Equal(start.Add(time.Hour)) || evs[0].ClientID != "synapse" || evs[0].ID == "" {
		t.Errorf("event round trip: %+v", evs)
	}
	if n, err := s.PurgeAudit(ctx, 150*time.Minute); err != nil || n != 2 {
		t.Errorf("PurgeAudit = %d, %v; want the 2 events older than 2.5 hours", n, err)
	}
}
