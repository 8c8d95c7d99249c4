package provider

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"testing"
	"time"
)

// With every hash slot taken, a password check waits, and gives up when its
// request's deadline passes instead of piling up another 19 MiB hash.
func TestPasswordChecksWaitForAFreeHashSlot(t *testing.T) {
	l := &Login{Logger: slog.New(slog.DiscardHandler), Throttle: &ThrottlePolicy{}} // no throttle, no store
	var releases []func()
	for range runtime.GOMAXPROCS(0) {
		release, err := l.hashSlot(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, release)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := l.CheckPassword(ctx, Attempt{Login: "alice", Password: "pw"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("check with all slots busy: err = %v, want the deadline", err)
	}
	releases[0]()
	release, err := l.hashSlot(context.Background())
	if err != nil {
		t.Fatalf("a released slot is not free again: %v", err)
	}
	release()
}
