package main

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// recorder belongs to one worker: latencies per step, successes and
// failures. Workers' recorders are added up when the run ends.
type recorder struct {
	latency  map[string][]time.Duration
	ok       int
	failures map[string]*failureCount
}

type failureCount struct {
	first *failure
	count int
}

func newRecorder() *recorder {
	return &recorder{latency: map[string][]time.Duration{}, failures: map[string]*failureCount{}}
}

func (r *recorder) observe(step string, d time.Duration) {
	r.latency[step] = append(r.latency[step], d)
}

func (r *recorder) fault(f *failure) {
	k := f.key()
	if c, ok := r.failures[k]; ok {
		c.count++
		return
	}
	r.failures[k] = &failureCount{first: f, count: 1}
}

func (r *recorder) add(o *recorder) {
	for k, v := range o.latency {
		r.latency[k] = append(r.latency[k], v...)
	}
	r.ok += o.ok
	for k, c := range o.failures {
		if mine, ok := r.failures[k]; ok {
			mine.count += c.count
		} else {
			r.failures[k] = &failureCount{first: c.first, count: c.count}
		}
	}
}

func (r *recorder) failed() int {
	n := 0
	for _, c := range r.failures {
		n += c.count
	}
	return n
}

// outcome is one measured run.
type outcome struct {
	*recorder
	elapsed time.Duration
	cpu     cpuUse
}

func (o outcome) rate() float64 { return float64(o.ok) / o.elapsed.Seconds() }

// reporter prints a kind of failure the first time it is seen, with -v.
type reporter struct {
	on   bool
	mu   sync.Mutex
	seen map[string]bool
}

func (p *reporter) first(phase string, f *failure) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	if k := phase + f.key(); !p.seen[k] {
		p.seen[k] = true
		fmt.Printf("    ! %s: %s: %s\n", phase, f.key(), f.detail)
	}
}

// drive keeps workers units in flight until the duration is over (units
// under way then finish and count), or, when count > 0, until count units
// have been started. meter, when set, reads the CPU just before the first
// unit and just after the last.
func drive(ctx context.Context, workers int, d time.Duration, count int, meter *cpuMeter, unit func(context.Context, *recorder) *failure, seen *reporter, phase string) (outcome, error) {
	recs := make([]*recorder, workers)
	for i := range recs {
		recs[i] = newRecorder()
	}
	var before cpuSample
	var err error
	if meter != nil {
		if before, err = meter.sample(); err != nil {
			return outcome{}, err
		}
	}
	var started atomic.Int64
	start := time.Now()
	stop := start.Add(d)
	var wg sync.WaitGroup
	for _, rec := range recs {
		wg.Go(func() {
			for ctx.Err() == nil {
				if count > 0 {
					if started.Add(1) > int64(count) {
						return
					}
				} else if !time.Now().Before(stop) {
					return
				}
				if f := unit(ctx, rec); f != nil {
					rec.fault(f)
					seen.first(phase, f)
				} else {
					rec.ok++
				}
			}
		})
	}
	wg.Wait()
	out := outcome{recorder: newRecorder(), elapsed: time.Since(start)}
	for _, r := range recs {
		out.add(r)
	}
	if meter != nil {
		after, err := meter.sample()
		if err != nil {
			return out, err
		}
		out.cpu = before.to(after)
	}
	return out, ctx.Err()
}

// quantile is the nearest-rank quantile of sorted durations.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

type latencySummary struct {
	n             int
	p50, p99, max time.Duration
}

func summarize(d []time.Duration) latencySummary {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s) == 0 {
		return latencySummary{}
	}
	return latencySummary{n: len(s), p50: quantile(s, 0.50), p99: quantile(s, 0.99), max: s[len(s)-1]}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// sortedFailures orders failure kinds, the most frequent first.
func sortedFailures(m map[string]*failureCount) []*failureCount {
	var out []*failureCount
	for _, c := range m {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].count != out[j].count {
			return out[i].count > out[j].count
		}
		return out[i].first.key() < out[j].first.key()
	})
	return out
}
