package provider

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/mxidp/mxidp/provider/password"
)

// Refusals must take as long for unknown users as for known ones, or the
// time of an answer tells who has an account. An unknown user costs one
// check of a dummy hash at the configured cost; a known user costs their
// stored hash, which may be cheaper (an imported {SSHA}) or dearer (a
// platform's PBKDF2 with 600,000 iterations), and their account's throttle
// counter (admitting and finishing the check under it). So every refusal
// is padded to the larger of the two usual costs: the dummy's, and a
// moving average of the known users' checks.

// costAverage is a moving average of durations, safe for concurrent use.
type costAverage struct{ nanos atomic.Int64 }

// add folds d in, with weight 1/8.
func (c *costAverage) add(d time.Duration) {
	for {
		old := c.nanos.Load()
		next := int64(d)
		if old != 0 {
			next = old + (int64(d)-old)/8
		}
		if c.nanos.CompareAndSwap(old, next) {
			return
		}
	}
}

func (c *costAverage) get() time.Duration { return time.Duration(c.nanos.Load()) }

// checkDummy verifies pw against the dummy hash, timed for the averages.
func (l *Login) checkDummy(pw string) time.Duration {
	start := time.Now()
	password.Verify(l.dummyHash(), pw)
	took := time.Since(start)
	l.dummyCost.add(took)
	return took
}

// padding is how much longer a refusal whose hash work took took must
// wait to look like any other.
func (l *Login) padding(took time.Duration) time.Duration {
	return max(l.dummyCost.get(), l.storedCost.get()) - took
}

// pad waits d (if positive), or until ctx ends.
func pad(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
