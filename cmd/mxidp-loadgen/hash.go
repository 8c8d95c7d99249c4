package main

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
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

// hashAlone computes argon2id keys (as a verification does: same salt
// length, 32-byte key) on GOMAXPROCS goroutines for d; hashes under way
// at the end finish and count.
func hashAlone(ctx context.Context, c cost, d time.Duration, workers int) hashResult {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	salt := make([]byte, 16)
	pw := []byte("pw-of-load-000")
	var n atomic.Int64
	cpu0, busy0 := selfCPU(), machineBusy()
	start := time.Now()
	stop := start.Add(d)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(stop) {
				argon2.IDKey(pw, salt, c.time, c.memoryKiB, c.threads, 32)
				n.Add(1)
			}
		})
	}
	wg.Wait()
	h := hashResult{cost: c, n: n.Load(), elapsed: time.Since(start), workers: workers, cpu: selfCPU() - cpu0}
	h.others = max(0, machineBusy()-busy0-h.cpu)
	return h
}
