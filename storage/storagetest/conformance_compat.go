package storagetest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mxidp/mxidp/storage"
)

// testLoginTokensAreSingleUseAndExpire: a login token of m.login.sso is
// used once, by one of any number of parallel exchanges, and not at all
// from its expiry on; unknown hashes are not found, a hash is stored once,
// and the purge removes what expired (used or not) and nothing else.
func testLoginTokensAreSingleUseAndExpire(t *testing.T, open Opener) {
	clk := newClock()
	s := open(t, storage.Options{Now: clk.Now})
	ctx := context.Background()
	const lifetime = 2 * time.Minute
	create := func(hash, user string) {
		t.Helper()
		if err := s.CreateLoginToken(ctx, hash, user, "https://app.example.org/?a=1#/home", clk.Now().Add(lifetime)); err != nil {
			t.Fatalf("create login token %s: %v", hash, err)
		}
	}
	consume := func(hash string) (string, error) { return s.ConsumeLoginToken(ctx, hash) }

	create("hash-once", "u-alice")
	if err := s.CreateLoginToken(ctx, "hash-once", "u-bob", "https://evil.example/", clk.Now().Add(lifetime)); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Fatalf("the same hash stored twice: %v, want ErrAlreadyExists", err)
	}
	if user, err := consume("hash-once"); err != nil || user != "u-alice" {
		t.Fatalf("first use: %q, %v; want u-alice", user, err)
	}
	if user, err := consume("hash-once"); !errors.Is(err, storage.ErrNotFound) || user != "" {
		t.Fatalf("second use: %q, %v; want ErrNotFound", user, err)
	}
	if _, err := consume("no-such-hash"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("unknown hash: %v, want ErrNotFound", err)
	}

	// Expiry: usable a second before it, never at or after it.
	create("hash-late", "u-alice")
	create("hash-expired", "u-alice")
	clk.Advance(lifetime - time.Second)
	if user, err := consume("hash-late"); err != nil || user != "u-alice" {
		t.Fatalf("a second before expiry: %q, %v; want u-alice", user, err)
	}
	clk.Advance(time.Second)
	if _, err := consume("hash-expired"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("at expiry: %v, want ErrNotFound", err)
	}
	clk.Advance(time.Hour)
	if _, err := consume("hash-expired"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("an hour after expiry: %v, want ErrNotFound", err)
	}

	// Parallel exchanges of one token: exactly one wins.
	create("hash-race", "u-carol")
	var wins, lost atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user, err := consume("hash-race")
			switch {
			case err == nil && user == "u-carol":
				wins.Add(1)
			case errors.Is(err, storage.ErrNotFound):
				lost.Add(1)
			default:
				t.Errorf("parallel use: %q, %v", user, err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 || lost.Load() != 7 {
		t.Fatalf("parallel uses: %d won, %d not found; want 1 and 7", wins.Load(), lost.Load())
	}

	// The purge: the three expired rows go (two used, one not); the
	// fresh ones stay, used or not.
	create("hash-fresh", "u-alice")
	if n, err := s.Purge(ctx); err != nil || n != 3 {
		t.Fatalf("purge removed %d rows, %v; want the 3 expired login tokens", n, err)
	}
	if user, err := consume("hash-fresh"); err != nil || user != "u-alice" {
		t.Fatalf("a fresh token after the purge: %q, %v", user, err)
	}
	if _, err := consume("hash-race"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the used token after the purge: %v, want ErrNotFound", err)
	}
}
