package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

// slogLine is the line slog's own handler writes for the request.
func slogLine(t *testing.T, format string, q *Request) string {
	t.Helper()
	var buf bytes.Buffer
	var h slog.Handler = slog.NewTextHandler(&buf, nil)
	if format == "json" {
		h = slog.NewJSONHandler(&buf, nil)
	}
	r := slog.NewRecord(q.Time, slog.LevelInfo, "request", 0)
	a := q.attrs()
	r.AddAttrs(a[:]...)
	if err := h.Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// ourLine is the line LogRequest writes through New's logger.
func ourLine(t *testing.T, format string, q *Request) string {
	t.Helper()
	var buf bytes.Buffer
	log, w := New(&buf, format, slog.LevelInfo)
	LogRequest(context.Background(), log, q)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestRequestLineIsSlogs(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	kolkata := time.FixedZone("IST", 5*3600+30*60)
	west := time.FixedZone("", -(9*3600 + 30*60))
	base := time.Date(2026, 12, 7, 23, 7, 0, 567_891_234, time.UTC)
	times := []time.Time{base, base.Truncate(time.Second), base.Truncate(time.Millisecond), base.Add(-567 * time.Millisecond),
		time.Date(2026, 1, 2, 3, 4, 5, 6, berlin), time.Date(2026, 7, 2, 3, 4, 5, 60_000_000, berlin), base.In(kolkata), base.In(west),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Now(), time.Now().In(berlin)}
	durations := []time.Duration{0, 999 * time.Nanosecond, time.Microsecond, 1500 * time.Nanosecond, 10 * time.Microsecond,
		123456 * time.Microsecond, time.Second, 17*time.Minute + 3*time.Millisecond, 1000 * time.Second, 26 * time.Hour}
	paths := []string{"/keys", "/.well-known/openid-configuration", "/", "/authorize/callback", "/static/app.css",
		"/_matrix/client/v3/login/sso/redirect/mxidp", "/a~b_c-d.e!$&'()*+,;:@%z/ZZ09", "*",
		// Quoted or escaped by slog: these take slog's own path.
		"", "/a b", "/a=b", `/a"b`, `/a\b`, "/a\nb", "/a\tb", "/ä", "/\u2028", "/\xff", "/<script>", "/a#b", "/a?b", "/\x00"}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, format := range []string{"text", "json"} {
		n := 0
		for _, tm := range times {
			for _, d := range durations {
				for _, p := range paths {
					q := &Request{Time: tm, Method: []string{"GET", "POST", "HEAD", "M-SEARCH", "GET x"}[rng.IntN(5)], Path: p,
						Status: []int{200, 302, 404, 500, 0}[rng.IntN(5)], Bytes: rng.IntN(1 << 20),
						Duration: d, ID: fmt.Sprintf("%08x-%x", rng.Uint32(), rng.Uint64())}
					want, got := slogLine(t, format, q), ourLine(t, format, q)
					if got != want {
						t.Fatalf("%s line for %+v:\n got %q\nwant %q", format, q, got, want)
					}
					n++
				}
			}
		}
		if n < 2000 {
			t.Fatalf("only %d lines compared", n)
		}
	}
}

// Every byte bare lets through is written unquoted and unescaped by
// both of slog's handlers.
func TestBareBytesNeedNoQuoting(t *testing.T) {
	count := 0
	for c := range 256 {
		if !bareByte[c] {
			continue
		}
		count++
		s := "/x" + string(rune(c)) + "y"
		for _, format := range []string{"text", "json"} {
			q := &Request{Time: time.Unix(0, 0).UTC(), Method: "GET", Path: s, ID: "i"}
			line := slogLine(t, format, q)
			if !strings.Contains(line, "path="+s+" ") && !strings.Contains(line, `"path":"`+s+`"`) {
				t.Errorf("%s: slog writes %q as %q", format, s, line)
			}
		}
	}
	if count != 62+18 {
		t.Errorf("%d bare bytes", count)
	}
}

// The JSON line is a JSON object with the fields and types slog gives.
func TestJSONRequestLineParses(t *testing.T) {
	q := &Request{Time: time.Now(), Method: "GET", Path: "/keys", Status: 200, Bytes: 462, Duration: 1234 * time.Microsecond, ID: "0a1b2c3d-1f"}
	var got map[string]any
	if err := json.Unmarshal([]byte(ourLine(t, "json", q)), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"level": "INFO", "msg": "request", "method": "GET", "path": "/keys", "status": 200.0, "bytes": 462.0,
		"duration_ms": 1.234, "request_id": "0a1b2c3d-1f"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if ts, err := time.Parse(time.RFC3339Nano, got["time"].(string)); err != nil || !ts.Equal(q.Time) {
		t.Errorf("time %v (%v), want %v", got["time"], err, q.Time)
	}
}

// Below info level, or from a logger with attributes of its own, the
// request line is what slog makes of it.
func TestRequestLineLevelsAndDerivedLoggers(t *testing.T) {
	q := &Request{Time: time.Now(), Method: "GET", Path: "/keys", Status: 200, ID: "a-1"}
	var buf bytes.Buffer
	log, w := New(&buf, "text", slog.LevelWarn)
	LogRequest(context.Background(), log, q)
	w.Close()
	if buf.Len() != 0 {
		t.Errorf("at warn level: %q", buf.String())
	}

	buf.Reset()
	log, w = New(&buf, "json", slog.LevelInfo)
	LogRequest(context.Background(), log.With("service", "rest"), q)
	LogRequest(context.Background(), log.WithGroup("g"), q)
	w.Close()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"service":"rest","method":"GET"`) ||
		!strings.Contains(lines[1], `"g":{"method":"GET"`) {
		t.Errorf("derived loggers wrote %q", lines)
	}

	// Another handler altogether gets the same attributes.
	buf.Reset()
	LogRequest(context.Background(), slog.New(slog.NewTextHandler(&buf, nil)), q)
	if !strings.Contains(buf.String(), "msg=request method=GET path=/keys status=200 bytes=0 duration_ms=0 request_id=a-1\n") {
		t.Errorf("plain slog logger wrote %q", buf.String())
	}
}

// gate is an io.Writer that records each write and can hold writes up.
type gate struct {
	mu     sync.Mutex
	writes []string
	hold   chan struct{} // while open, writes wait
}

func (g *gate) Write(p []byte) (int, error) {
	if g.hold != nil {
		<-g.hold
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.writes = append(g.writes, string(p))
	return len(p), nil
}

func (g *gate) text() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return strings.Join(g.writes, "")
}

// A lone line leaves without anyone flushing; many lines from many
// goroutines leave whole, each goroutine's in its order, in fewer writes.
func TestWriterBatchesWholeLinesInOrder(t *testing.T) {
	g := &gate{}
	w := NewWriter(g)
	w.Write([]byte("first\n"))
	deadline := time.Now().Add(5 * time.Second)
	for g.text() != "first\n" {
		if time.Now().After(deadline) {
			t.Fatalf("a lone line was not written: %q", g.text())
		}
		time.Sleep(time.Millisecond)
	}

	const writers, lines = 8, 2000
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			var b []byte
			for j := range lines {
				b = fmt.Appendf(b[:0], "w%d line %d %s\n", i, j, strings.Repeat("x", j%97))
				w.Write(b)
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("after close\n"))
	out := strings.Split(strings.TrimSuffix(g.text(), "\n"), "\n")
	if len(out) != 1+writers*lines+1 || out[0] != "first" || out[len(out)-1] != "after close" {
		t.Fatalf("%d lines, first %q, last %q", len(out), out[0], out[len(out)-1])
	}
	next := make([]int, writers)
	for _, l := range out[1 : len(out)-1] {
		var i, j int
		var x string
		if _, err := fmt.Sscanf(l, "w%d line %d %s", &i, &j, &x); err != nil && j%97 != 0 {
			t.Fatalf("mangled line %q: %v", l, err)
		}
		if j != next[i] || len(x) != j%97 {
			t.Fatalf("line %q out of order or cut (want line %d of w%d)", l, next[i], i)
		}
		next[i]++
	}
	g.mu.Lock()
	batches := len(g.writes)
	g.mu.Unlock()
	if batches >= writers*lines/2 {
		t.Errorf("%d writes for %d lines: no batching", batches, writers*lines)
	}
	t.Logf("%d lines in %d writes", writers*lines+2, batches)
}

// A warning is out when Handle returns, with the lines gathered before it.
func TestWarningsFlushAtOnce(t *testing.T) {
	g := &gate{hold: make(chan struct{})}
	log, w := New(g, "text", slog.LevelInfo)
	defer w.Close()
	// The writer's goroutine is held up in its first batch ...
	log.Info("one")
	time.Sleep(10 * time.Millisecond)
	log.Info("two")
	done := make(chan struct{})
	go func() {
		log.Warn("careful")
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("Warn returned before its line was written")
	case <-time.After(50 * time.Millisecond):
	}
	close(g.hold) // ... until the output takes it.
	<-done
	out := g.text()
	if !strings.Contains(out, "msg=one") || !strings.Contains(out, "msg=two") || !strings.HasSuffix(out, "msg=careful\n") {
		t.Errorf("after Warn: %q", out)
	}
}

// A slow output holds its callers up instead of the buffer growing.
func TestWriterBoundsWhatItGathers(t *testing.T) {
	g := &gate{hold: make(chan struct{})}
	w := NewWriter(g)
	line := []byte(strings.Repeat("y", 1023) + "\n")
	wrote := make(chan int, 1)
	go func() {
		n := 0
		for range 4 * maxGathered / len(line) {
			w.Write(line)
			n++
		}
		wrote <- n
	}()
	time.Sleep(100 * time.Millisecond)
	w.mu.Lock()
	gathered := len(w.buf)
	w.mu.Unlock()
	if gathered > maxGathered+len(line) {
		t.Errorf("%d bytes gathered while the output was stuck", gathered)
	}
	select {
	case n := <-wrote:
		t.Fatalf("all %d lines accepted while the output was stuck", n)
	default:
	}
	close(g.hold)
	<-wrote
	w.Close()
	if got := len(g.text()); got != 4*maxGathered/len(line)*len(line) {
		t.Errorf("%d bytes written", got)
	}
}

func BenchmarkRequestLine(b *testing.B) {
	for _, format := range []string{"text", "json"} {
		b.Run(format, func(b *testing.B) {
			log, w := New(discard{}, format, slog.LevelInfo)
			defer w.Close()
			q := &Request{Time: time.Now(), Method: "GET", Path: "/.well-known/openid-configuration", Status: 200, Bytes: 1811,
				Duration: 42 * time.Microsecond, ID: "0a1b2c3d-1f2e3"}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					LogRequest(context.Background(), log, q)
				}
			})
		})
	}
	// slog's own handler over the same Writer, for comparison.
	b.Run("slog-text", func(b *testing.B) {
		w := NewWriter(discard{})
		defer w.Close()
		log := slog.New(slog.NewTextHandler(w, nil))
		q := &Request{Time: time.Now(), Method: "GET", Path: "/.well-known/openid-configuration", Status: 200, Bytes: 1811,
			Duration: 42 * time.Microsecond, ID: "0a1b2c3d-1f2e3"}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				LogRequest(context.Background(), log, q)
			}
		})
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// A request line of bare fields takes the cheap path, which allocates
// nothing; one slog would quote takes slog's, which does. Without this,
// the comparisons with slog above would pass even if every line went
// through slog.
func TestBareRequestLineSkipsSlog(t *testing.T) {
	log, w := New(discard{}, "text", slog.LevelInfo)
	defer w.Close()
	ctx := context.Background()
	q := &Request{Time: time.Now(), Method: "GET", Path: "/keys", Status: 200, Bytes: 462, Duration: time.Millisecond, ID: "0a1b2c3d-1f"}
	if n := testing.AllocsPerRun(1000, func() { LogRequest(ctx, log, q) }); n != 0 {
		t.Errorf("a bare request line allocates %v times, want 0 (the cheap path)", n)
	}
	quoted := *q
	quoted.Path = "/a b"
	if n := testing.AllocsPerRun(1000, func() { LogRequest(ctx, log, &quoted) }); n == 0 {
		t.Error("a quoted request line allocates nothing: the check above cannot tell the paths apart")
	}
}
