package web

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/mxidp/mxidp/provider/ma1sd"
	"github.com/mxidp/mxidp/web/logging"
)

// statusRecorder remembers the status and size of a response for the log.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int
	// idHeader is the value of the response's X-Request-Id, held here
	// to save the request an allocation.
	idHeader [1]string
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
// request ID (logging.LogRequest, which formats it without slog's cost
// when log is logging's). It also recovers from panics, so that none
// reaches a user: the user gets a plain 500 and the log gets the stack.
func logRequests(log *slog.Logger, m *metrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			id := newRequestID()
			rec := &statusRecorder{ResponseWriter: w, idHeader: [1]string{id}}
			w.Header()[requestIDHeader] = rec.idHeader[:]
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
				end := time.Now()
				m.observe(r.URL.Path, rec.status, end.Sub(start))
				logging.LogRequest(r.Context(), log, &logging.Request{Time: end, Method: r.Method, Path: r.URL.Path,
					Status: rec.status, Bytes: rec.bytes, Duration: end.Sub(start), ID: id})
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
	// Answers that must not be stored anywhere (RFC 6749 §5.1):
	// Cache-Control for HTTP/1.1 caches, Pragma for HTTP/1.0 ones.
	valueNoStore = []string{"no-store"}
	valueNoCache = []string{"no-cache"}
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

// Request body caps. Every form and JSON document mxidp reads fits in
// maxBody many times over; only the REST service's bulk lookup carries
// more, a contact book (docs/rest.md).
const (
	maxBody     = 64 << 10
	maxBulkBody = 8 << 20
)

// bodyLimit is the cap on the body of a request to path: the REST
// service's path as it routes it, repeated slashes merged.
func bodyLimit(path string) int64 {
	if ma1sd.IsBulk(path) {
		return maxBulkBody
	}
	return maxBody
}

// limitBodies caps every request body before any handler parses it. A
// request that says it is larger is answered 413 at once, unread; one that
// turns out larger (sent chunked) stops being read at the cap, and its
// answer becomes that 413. pageOf builds the page of a browser's request;
// nil when there are no pages.
func limitBodies(pageOf func(*http.Request) page) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength == 0 && (r.Body == nil || r.Body == http.NoBody) {
				next.ServeHTTP(w, r) // nothing to cap: most GETs
				return
			}
			limit := bodyLimit(r.URL.Path)
			if r.ContentLength > limit {
				tooLarge(w, r, limit, pageOf)
				return
			}
			if r.Body == nil || r.Body == http.NoBody {
				next.ServeHTTP(w, r)
				return
			}
			body := &cappedBody{ReadCloser: http.MaxBytesReader(w, r.Body, limit)}
			r.Body = body
			// The handler may answer as long as the body it read stayed
			// under the cap; once the cap was reached, its answer (made
			// from a cut body) is dropped and the 413 sent instead.
			before := maps.Clone(w.Header())
			tw := &holdBack{ResponseWriter: w, hold: func(int) bool { return body.over.Load() }}
			next.ServeHTTP(tw, r)
			if tw.held || (!tw.wrote && body.over.Load()) {
				// Without the headers the handler set (cookies, redirects).
				h := w.Header()
				for k := range h {
					if _, ok := before[k]; !ok {
						delete(h, k)
					}
				}
				tooLarge(w, r, limit, pageOf)
			}
		})
	}
}

// cappedBody notes whether the cap of http.MaxBytesReader was reached.
type cappedBody struct {
	io.ReadCloser
	over atomic.Bool
}

func (b *cappedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		b.over.Store(true)
	}
	return n, err
}

// tooLarge answers a request whose body is over its cap: the REST
// service's JSON error on its paths, a page on the pages a browser shows,
// an OAuth-style JSON error elsewhere.
func tooLarge(w http.ResponseWriter, r *http.Request, limit int64, pageOf func(*http.Request) page) {
	what := fmt.Sprintf("the request body is larger than %d KiB", limit>>10)
	switch {
	case ma1sd.Handles(r.URL.Path):
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"errcode": "M_TOO_LARGE", "error": "request body too large"})
	case gatedRoutes[r.URL.Path] == gatePage && pageOf != nil:
		p := pageOf(r)
		p.Title = p.T("error.request.title")
		render(w, http.StatusRequestEntityTooLarge, "message.html", message{page: p, Text: p.T("error.request.text"),
			Detail: what, RequestID: w.Header().Get(requestIDHeader), Alert: true})
	default:
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "invalid_request", "error_description": what})
	}
}
