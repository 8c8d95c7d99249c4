package web

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"
)

// statusRecorder remembers the status and size of a response for the log.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the real writer (flushes,
// deadlines).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// requestIDHeader carries the ID of a request in its response, so that a
// user's report can be matched with the log line.
const requestIDHeader = "X-Request-Id"

// logRequests writes one log line per request: method, path (never the
// query, which can hold codes and tokens), status, size, duration and
// request ID. It also recovers from panics, so that none reaches a user: the
// user gets a plain 500 and the log gets the stack.
func logRequests(log *slog.Logger, m *metrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			id := newRequestID()
			w.Header()[requestIDHeader] = []string{id}
			rec := &statusRecorder{ResponseWriter: w}
			defer func() {
				if p := recover(); p != nil {
					if p == http.ErrAbortHandler {
						panic(p) // the server's way to abort a response; let it through
					}
					log.Error("panic serving request", "request_id", id, "method", r.Method, "path", r.URL.Path,
						"panic", p, "stack", string(debug.Stack()))
					if rec.status == 0 {
						http.Error(rec, "internal error; the request ID is "+id, http.StatusInternalServerError)
					}
				}
				m.observe(r.URL.Path, rec.status, time.Since(start))
				// Attributes are built only when the line is written: the
				// hot paths (discovery, keys) pay nothing at warn level.
				if log.Enabled(r.Context(), slog.LevelInfo) {
					log.LogAttrs(r.Context(), slog.LevelInfo, "request",
						slog.String("method", r.Method), slog.String("path", r.URL.Path),
						slog.Int("status", rec.status), slog.Int("bytes", rec.bytes),
						slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
						slog.String("request_id", id))
				}
			}()
			next.ServeHTTP(rec, r)
		})
	}
}

// Request IDs are a random per-process prefix and a counter: unique across
// instances and restarts, and cheap on every request.
var (
	requestIDPrefix = func() string {
		b := make([]byte, 4)
		rand.Read(b)
		return hex.EncodeToString(b)
	}()
	requestCounter atomic.Uint64
)

func newRequestID() string {
	buf := make([]byte, 0, 24)
	buf = append(buf, requestIDPrefix...)
	buf = append(buf, '-')
	buf = strconv.AppendUint(buf, requestCounter.Add(1), 16)
	return string(buf)
}

// Header values shared by every response; net/http never modifies them.
var (
	valueNosniff    = []string{"nosniff"}
	valueNoReferrer = []string{"no-referrer"}
	valueDeny       = []string{"DENY"}
	valueJSON       = []string{"application/json"}
)

// securityHeaders sets the headers every response carries. Pages add their
// own Content-Security-Policy.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["X-Content-Type-Options"] = valueNosniff
		h["Referrer-Policy"] = valueNoReferrer
		h["X-Frame-Options"] = valueDeny
		next.ServeHTTP(w, r)
	})
}
