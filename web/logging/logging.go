// Package logging is mxidp's log: slog's text or JSON handler (the
// log.format option) over a Writer that batches lines, and a cheap way to
// write the one line every HTTP request gets.
//
// The request line is the log's busiest: at thousands of requests a
// second, building slog attributes, capturing the caller and one write
// per line cost more than serving discovery or the key set does. Here the
// line is formatted straight into a stack buffer, in exactly the bytes
// slog's handler would write, and handed to the Writer, which batches it
// with its neighbours. A line whose strings slog would quote or escape
// (an unusual path) goes through slog itself.
//
// It imports nothing of mxidp.
package logging

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"time"
)

// Handler is a slog.Handler: slog's text or JSON handler writing to a
// Writer, which it flushes after every warning and error.
type Handler struct {
	inner slog.Handler
	w     *Writer
	json  bool
	// plain is set on the handler New returns and cleared on those
	// WithAttrs and WithGroup derive: only without added attributes is
	// the request line slog's bare record.
	plain bool
}

// New returns a logger writing format ("text" or "json") lines of level
// and above to out through a Writer, and that Writer: Close it when the
// program stops.
func New(out io.Writer, format string, level slog.Leveler) (*slog.Logger, *Writer) {
	w := NewWriter(out)
	opts := &slog.HandlerOptions{Level: level}
	h := &Handler{w: w, json: format == "json", plain: true}
	if h.json {
		h.inner = slog.NewJSONHandler(w, opts)
	} else {
		h.inner = slog.NewTextHandler(w, opts)
	}
	return slog.New(h), w
}

// Enabled reports whether records of level are written.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

// Handle writes a record; a warning or an error is out when it returns.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	err := h.inner.Handle(ctx, r)
	if r.Level >= slog.LevelWarn {
		if ferr := h.w.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

// WithAttrs returns a handler that adds attrs to every record.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &Handler{inner: h.inner.WithAttrs(attrs), w: h.w, json: h.json}
}

// WithGroup returns a handler that puts later attributes in a group.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{inner: h.inner.WithGroup(name), w: h.w, json: h.json}
}

// Request is an answered HTTP request, as its log line shows it.
type Request struct {
	Time     time.Time // when the answer was complete: the line's time
	Method   string
	Path     string // never the query, which can hold codes and tokens
	Status   int
	Bytes    int
	Duration time.Duration
	ID       string // the request ID
}

// The line's message and keys.
const requestMsg = "request"

func (q *Request) durationMS() float64 { return float64(q.Duration.Microseconds()) / 1000 }

func (q *Request) attrs() [6]slog.Attr {
	return [6]slog.Attr{slog.String("method", q.Method), slog.String("path", q.Path),
		slog.Int("status", q.Status), slog.Int("bytes", q.Bytes),
		slog.Float64("duration_ms", q.durationMS()), slog.String("request_id", q.ID)}
}

// LogRequest writes the info line of an answered request to log: through
// the cheap path when log is New's, through slog otherwise.
func LogRequest(ctx context.Context, log *slog.Logger, q *Request) {
	if h, ok := log.Handler().(*Handler); ok && h.plain {
		h.request(ctx, q)
		return
	}
	if log.Enabled(ctx, slog.LevelInfo) {
		a := q.attrs()
		log.LogAttrs(ctx, slog.LevelInfo, requestMsg, a[:]...)
	}
}

func (h *Handler) request(ctx context.Context, q *Request) {
	if !h.inner.Enabled(ctx, slog.LevelInfo) {
		return
	}
	if !bare(q.Method) || !bare(q.Path) || !bare(q.ID) || !plainTime(q.Time) {
		// slog quotes or escapes these, or writes the time its own way;
		// let it.
		r := slog.NewRecord(q.Time, slog.LevelInfo, requestMsg, 0)
		a := q.attrs()
		r.AddAttrs(a[:]...)
		h.Handle(ctx, r)
		return
	}
	var stack [256]byte
	var b []byte
	if h.json {
		b = q.appendJSON(stack[:0])
	} else {
		b = q.appendText(stack[:0])
	}
	h.w.Write(b)
}

// appendText is slog.TextHandler's line for the request.
func (q *Request) appendText(b []byte) []byte {
	b = append(b, "time="...)
	b = appendMillis(b, q.Time)
	b = append(b, " level=INFO msg="+requestMsg+" method="...)
	b = append(b, q.Method...)
	b = append(b, " path="...)
	b = append(b, q.Path...)
	b = append(b, " status="...)
	b = strconv.AppendInt(b, int64(q.Status), 10)
	b = append(b, " bytes="...)
	b = strconv.AppendInt(b, int64(q.Bytes), 10)
	b = append(b, " duration_ms="...)
	// slog writes a float with strconv's shortest 'g' form.
	b = strconv.AppendFloat(b, q.durationMS(), 'g', -1, 64)
	b = append(b, " request_id="...)
	b = append(b, q.ID...)
	return append(b, '\n')
}

// appendJSON is slog.JSONHandler's line for the request.
func (q *Request) appendJSON(b []byte) []byte {
	b = append(b, `{"time":"`...)
	b = q.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"`+requestMsg+`","method":"`...)
	b = append(b, q.Method...)
	b = append(b, `","path":"`...)
	b = append(b, q.Path...)
	b = append(b, `","status":`...)
	b = strconv.AppendInt(b, int64(q.Status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, int64(q.Bytes), 10)
	b = append(b, `,"duration_ms":`...)
	// encoding/json, which slog uses for floats, writes a duration's
	// milliseconds (0, or at least 0.001 and far below 1e21) in the
	// shortest 'f' form.
	b = strconv.AppendFloat(b, q.durationMS(), 'f', -1, 64)
	b = append(b, `,"request_id":"`...)
	b = append(b, q.ID...)
	return append(b, "\"}\n"...)
}

// appendMillis writes t as the text handler does: RFC 3339 with exactly
// three digits of milliseconds (truncated, not rounded) and the zone as
// Z or ±hh:mm.
func appendMillis(b []byte, t time.Time) []byte {
	year, month, day := t.Date()
	hour, min, sec := t.Clock()
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, min, 2)
	b = append(b, ':')
	b = appendDigits(b, sec, 2)
	b = append(b, '.')
	b = appendDigits(b, t.Nanosecond()/int(time.Millisecond), 3)
	_, offset := t.Zone()
	if offset == 0 {
		return append(b, 'Z')
	}
	sign := byte('+')
	if offset < 0 {
		sign, offset = '-', -offset
	}
	b = append(b, sign)
	b = appendDigits(b, offset/3600, 2)
	b = append(b, ':')
	return appendDigits(b, offset/60%60, 2)
}

// appendDigits writes n (0 ≤ n < 10^width, width ≤ 4) in exactly width
// digits.
func appendDigits(b []byte, n, width int) []byte {
	var d [4]byte
	for i := width - 1; i >= 0; i-- {
		d[i] = byte('0' + n%10)
		n /= 10
	}
	return append(b, d[:width]...)
}

// plainTime reports whether appendMillis and RFC 3339 write t the way
// slog does: a four-digit year, a zone offset in whole minutes, and not
// the zero time, which slog leaves out.
func plainTime(t time.Time) bool {
	_, offset := t.Zone()
	return !t.IsZero() && t.Year() >= 0 && t.Year() <= 9999 && offset%60 == 0
}

// bare reports whether s is written as it is, unquoted and unescaped,
// by both of slog's handlers: not empty, and only letters, digits and the
// punctuation of URL paths. Anything else takes slog's own path.
func bare(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !bareByte[s[i]] {
			return false
		}
	}
	return true
}

var bareByte = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "-._~/!$&'()*+,;:@%" {
		t[c] = true
	}
	return t
}()
