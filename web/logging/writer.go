package logging

import (
	"io"
	"sync"
	"time"
)

// Writer batches log lines on their way to an io.Writer (the process's
// standard error): lines are appended to a buffer, and a goroutine of its
// own writes what has gathered, at most one batch every 5 milliseconds
// (gather): at a trickle each line leaves at once, under load hundreds
// leave in one system call instead of one each. Flush writes everything
// gathered before it returns; the Handler calls it after every warning
// and error, so that those are out before the program goes on, and the
// server calls it (through Close) when it stops.
//
// Each Write is one whole line (slog's handlers write a record at a time,
// and so does Handler's request line): lines are never interleaved, and
// leave in the order they were written. A crash loses at most the info
// lines of the last 5 milliseconds, never a warning or an error. A line
// is copied into the buffer, so the caller may reuse its slice.
type Writer struct {
	out io.Writer

	mu     sync.Mutex
	buf    []byte // lines gathered, not yet written
	closed bool

	// flushing serialises writes to out, so that batches leave in order;
	// spare is the buffer the last batch was written from, ready for reuse.
	flushing sync.Mutex
	spare    []byte

	wake chan struct{}
	done chan struct{}
}

// Beyond maxGathered bytes, the writer of a line writes the batch itself:
// if out is slow, callers wait for it instead of the buffer growing.
// A batch buffer that grew beyond maxKept (a long stack trace) is not
// kept for reuse.
const (
	maxGathered = 64 << 10
	maxKept     = 256 << 10
)

// NewWriter starts a Writer over out. Close stops it.
func NewWriter(out io.Writer) *Writer {
	w := &Writer{out: out, wake: make(chan struct{}, 1), done: make(chan struct{}),
		buf: make([]byte, 0, 4<<10), spare: make([]byte, 0, 4<<10)}
	go w.run()
	return w
}

// gather is the least time between two batches: lines that follow a batch
// closer than that wait for the rest of it, and leave together.
const gather = 5 * time.Millisecond

func (w *Writer) run() {
	var last time.Time
	pause := time.NewTimer(0)
	<-pause.C
	for {
		select {
		case <-w.wake:
		case <-w.done:
			return
		}
		if wait := gather - time.Since(last); wait > 0 {
			pause.Reset(wait)
			select {
			case <-pause.C:
			case <-w.done:
				return // Close writes what is left
			}
		}
		w.Flush()
		last = time.Now()
	}
}

// Write adds one line. After Close, it writes the line through at once.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		w.flushing.Lock()
		defer w.flushing.Unlock()
		// A copy, so that p never escapes: callers format lines in
		// buffers on their stack.
		return w.out.Write(append([]byte(nil), p...))
	}
	first := len(w.buf) == 0
	w.buf = append(w.buf, p...)
	full := len(w.buf) >= maxGathered
	w.mu.Unlock()
	switch {
	case full:
		w.Flush()
	case first:
		// The buffer was empty, so no batch is pending: ask for one.
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// Flush writes every line gathered so far, and returns when they are out.
func (w *Writer) Flush() error {
	w.flushing.Lock()
	defer w.flushing.Unlock()
	w.mu.Lock()
	batch := w.buf
	w.buf = w.spare[:0]
	w.mu.Unlock()
	if len(batch) == 0 {
		w.spare = batch
		return nil
	}
	_, err := w.out.Write(batch)
	if cap(batch) > maxKept {
		batch = make([]byte, 0, 4<<10)
	}
	w.spare = batch[:0]
	return err
}

// Close writes what is gathered and stops the goroutine; later lines are
// written through one by one, after the last batch.
func (w *Writer) Close() error {
	w.flushing.Lock()
	defer w.flushing.Unlock()
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	batch := w.buf
	w.buf = nil
	w.mu.Unlock()
	close(w.done)
	if len(batch) == 0 {
		return nil
	}
	_, err := w.out.Write(batch)
	return err
}
