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
	// finished holds when each successful unit ended.
	finished []time.Time
	// after, when set, is called when a step (or the whole flow) has
	// succeeded, after its latency is recorded.
	after func(step string)
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
	if r.after != nil {
		r.after(step)
	}
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
	r.finished = append(r.finished, o.finished...)
	for k, c := range o.failures {
		if mine, ok := r.failures[k]; ok {
			mine.count += c.count
		} else {
			r.failures[k] = &failureCount{first: c.first, count: c.count}
		}
	}
}

func (r *recorder) failed() int {
	if r == nil {
		return 0
	}
	n := 0
	for _, c := range r.failures {
		n += c.count
	}
	return n
}

// outcome is one measured run: every unit's latencies and failures, and
// the units that succeeded inside the measured window (counted) of length
// elapsed, with the CPU used meanwhile.
type outcome struct {
	*recorder
	counted int
	elapsed time.Duration
	cpu     cpuUse
}

func (o outcome) rate() float64 {
	if o.elapsed <= 0 {
		return 0
	}
	return float64(o.counted) / o.elapsed.Seconds()
}

// answered is how many units ran to an answer, failed or not.
func (o outcome) answered() int {
	if o.recorder == nil {
		return 0
	}
	return o.ok + o.failed()
}

// merge adds a slice of an interleaved measurement to o.
func (o *outcome) merge(p outcome) {
	if o.recorder == nil {
		o.recorder = newRecorder()
	}
	if p.recorder != nil {
		o.add(p.recorder)
	}
	o.counted += p.counted
	o.elapsed += p.elapsed
	o.cpu = o.cpu.plus(p.cpu)
}

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

// lead is how long units run before a measured window opens, so that the
// window sees the steady state: the flows in flight already queued at the
// hash slots, the connections open.
const lead = 150 * time.Millisecond

// drive keeps workers units in flight. With count > 0 it starts count
// units and measures from the first to the last. Otherwise it measures a
// window of length d that opens lead after the units start; no unit
// starts after the window closes, those under way then finish, and only
// units that finished inside the window count for the rate and the
// per-unit CPU (outcome.counted): neither the ramp-up nor the tail, in
// which fewer units are in flight, lowers them. meter, when set, reads the
// CPU (and the statements) when the window opens and when it closes.
func drive(ctx context.Context, workers int, d time.Duration, count int, meter *cpuMeter, unit func(context.Context, *recorder) *failure, seen *reporter, phase string) (outcome, error) {
	recs := make([]*recorder, workers)
	for i := range recs {
		recs[i] = newRecorder()
	}
	var before, after cpuSample
	var err error
	sample := func(end bool) time.Time {
		if meter == nil {
			return time.Now()
		}
		s, e := meter.sample(ctx, end)
		if e != nil && err == nil {
			err = e
		}
		if end {
			after = s
		} else {
			before = s
		}
		return s.at
	}
	var from, to time.Time
	windowed := count <= 0
	if !windowed {
		from = sample(false)
	}
	var started atomic.Int64
	start := time.Now()
	stop := start.Add(lead + d)
	var wg sync.WaitGroup
	for _, rec := range recs {
		wg.Go(func() {
			for ctx.Err() == nil {
				if !windowed {
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
					rec.finished = append(rec.finished, time.Now())
				}
			}
		})
	}
	if windowed {
		sleepUntil(ctx, start.Add(lead))
		from = sample(false)
		sleepUntil(ctx, stop)
		to = sample(true)
	}
	wg.Wait()
	if !windowed {
		to = sample(true)
	}
	out := outcome{recorder: newRecorder(), elapsed: to.Sub(from)}
	for _, r := range recs {
		out.add(r)
	}
	for _, t := range out.finished {
		if !t.Before(from) && !t.After(to) {
			out.counted++
		}
	}
	if meter != nil && err == nil {
		out.cpu = before.to(after, *meter)
	}
	if err != nil {
		return out, err
	}
	return out, ctx.Err()
}

// sleepUntil waits until t or until ctx ends.
func sleepUntil(ctx context.Context, t time.Time) {
	select {
	case <-ctx.Done():
	case <-time.After(time.Until(t)):
	}
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
