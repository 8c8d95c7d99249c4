package main

import (
	"context"
	"runtime"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"
)

// hashResult is the password hash alone: argon2id at one cost, computed
// in this process on every core while the server idles.
type hashResult struct {
	cost    cost
	n       int64
	elapsed time.Duration
	workers int
	cpu     time.Duration // this process's CPU meanwhile
	others  time.Duration // other processes' CPU meanwhile
}

func (h hashResult) rate() float64 { return float64(h.n) / h.elapsed.Seconds() }

// cpuPerHash is the CPU one hash took, all costs of computing it in a Go
// process (garbage collection, page faults) included.
func (h hashResult) cpuPerHash() time.Duration { return h.cpu / time.Duration(max(h.n, 1)) }

func (h hashResult) plus(o hashResult) hashResult {
	return hashResult{cost: h.cost, n: h.n + o.n, elapsed: h.elapsed + o.elapsed, workers: h.workers,
		cpu: h.cpu + o.cpu, others: h.others + o.others}
}

// verifiersPerCore is how many verifiers hashAlone runs by default: one
// per core the machine has (NumCPU), each on a goroutine of its own, which
// the Go runtime spreads over the cores as long as GOMAXPROCS is at least
// NumCPU.
func verifiersPerCore() int { return runtime.NumCPU() }

// hashAlone computes argon2id keys (as a verification does: same salt
// length, 32-byte key) on workers goroutines (0: one per core). Like
// drive, it measures a window of length d that opens lead after the
// verifiers start and counts the hashes that ended inside it; no hash
// starts after the window closes.
func hashAlone(ctx context.Context, c cost, d time.Duration, workers int) hashResult {
	if workers <= 0 {
		workers = verifiersPerCore()
	}
	salt := make([]byte, 16)
	pw := []byte("pw-of-load-000")
	var mu sync.Mutex
	var finished []time.Time
	start := time.Now()
	stop := start.Add(lead + d)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			var mine []time.Time
			for ctx.Err() == nil && time.Now().Before(stop) {
				argon2.IDKey(pw, salt, c.time, c.memoryKiB, c.threads, 32)
				mine = append(mine, time.Now())
			}
			mu.Lock()
			finished = append(finished, mine...)
			mu.Unlock()
		})
	}
	sleepUntil(ctx, start.Add(lead))
	from, cpu0, busy0 := time.Now(), selfCPU(), machineBusy()
	sleepUntil(ctx, stop)
	to, cpu1, busy1 := time.Now(), selfCPU(), machineBusy()
	wg.Wait()
	h := hashResult{cost: c, elapsed: to.Sub(from), workers: workers, cpu: cpu1 - cpu0}
	for _, t := range finished {
		if !t.Before(from) && !t.After(to) {
			h.n++
		}
	}
	h.others = max(0, busy1-busy0-h.cpu)
	return h
}
