package web

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mxidp/mxidp/provider"
	"github.com/mxidp/mxidp/provider/ma1sd"
	"github.com/mxidp/mxidp/storage"
)

// While the database is unreachable, mxidp answers what needs it at once
// with 503 and Retry-After, instead of letting every request wait for a
// connection attempt and fail with whatever error its code path makes of
// that (a library's "invalid_grant" would make a client drop a good
// refresh token). Discovery, the key set, the static files, /healthz and
// /metrics need no database and keep working.
//
// The gate learns of an outage from a request whose storage call failed
// with storage.ErrUnavailable, or from a failed /readyz ping; it then
// pings until the database answers, and opens again by itself.

// Timings of the gate.
const (
	// healthRecheck is how often a database known to be down is pinged.
	healthRecheck = 500 * time.Millisecond
	// pingTimeout bounds every health ping, /readyz's included.
	pingTimeout = 2 * time.Second
	// retryAfter is the Retry-After of the gate's 503s, in seconds.
	retryAfter = "5"
)

// health is whether the database is known to be down.
type health struct {
	db       Pinger
	log      *slog.Logger
	down     atomic.Bool
	watching atomic.Bool // a goroutine is pinging
	since    atomic.Int64
}

// Down reports whether requests that need the database are refused.
func (h *health) Down() bool { return h.down.Load() }

// ping checks the database once, within pingTimeout.
func (h *health) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	return h.db.Ping(ctx)
}

// suspect checks the database in the background, and keeps checking
// every healthRecheck while it does not answer.
func (h *health) suspect() {
	if !h.watching.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer h.watching.Store(false)
		for {
			err := h.ping(context.Background())
			if err == nil {
				if h.down.Swap(false) {
					h.log.Info("database reachable again: serving requests",
						"down_for", time.Since(time.Unix(0, h.since.Load())).Round(time.Millisecond))
				}
				return
			}
			h.failed(err)
			time.Sleep(healthRecheck)
		}
	}()
}

// failed records a failed ping.
func (h *health) failed(err error) {
	if !h.down.Swap(true) {
		h.since.Store(time.Now().UnixNano())
		h.log.Error("database unreachable: answering 503 until it returns", "err", err)
	}
	h.suspect()
}

// What a route needs from the gate.
type gateKind int

const (
	gateNone   gateKind = iota // no database: always served
	gateAPI                    // OAuth/OpenID JSON endpoints
	gatePage                   // pages a browser shows
	gateREST                   // the ma1sd-compatible REST service
	gateMatrix                 // the Matrix login compatibility layer: Matrix errors
)

// Routes served by zitadel/oidc at its default endpoints, and mxidp's own.
var gatedRoutes = map[string]gateKind{
	"/oauth/token":                    gateAPI,
	"/oauth/introspect":               gateAPI,
	"/revoke":                         gateAPI,
	"/userinfo":                       gateAPI,
	provider.SynapseIntrospectionPath: gateAPI,
	provider.RegistrationPath:         gateAPI,
	"/authorize":                      gatePage,
	"/authorize/callback":             gatePage,
	"/end_session":                    gatePage,
	provider.LoginPath:                gatePage,
	consentPath:                       gatePage,
	logoutPath:                        gatePage,
	provider.AccountPath:              gatePage,
}

func init() {
	// The compatibility layer's paths answer an outage as a Matrix API.
	for _, v := range append([]string{"api/v1"}, compatVersions...) {
		gatedRoutes["/_matrix/client/"+v+"/login"] = gateMatrix
	}
	for _, v := range compatVersions {
		for _, p := range []string{"/logout", "/logout/all", "/refresh"} {
			gatedRoutes["/_matrix/client/"+v+p] = gateMatrix
		}
	}
}

// unavailableJSON is OAuth's own error for an outage (RFC 6749 §4.1.2.1).
var unavailableJSON = map[string]string{
	"error":             "temporarily_unavailable",
	"error_description": "the database is unreachable; try again in a few seconds",
}

// gate answers for the database while it is down, and turns a request
// that found it down into a 503. page builds the page of a request; nil
// when there are no pages.
func (h *health) gate(hasOpenID, hasREST bool, page func(*http.Request) page) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			kind := gatedRoutes[r.URL.Path]
			if !hasOpenID {
				kind = gateNone
			}
			if hasREST && ma1sd.Handles(r.URL.Path) {
				kind = gateREST
			}
			if kind == gateNone {
				next.ServeHTTP(w, r)
				return
			}
			if kind == gateREST {
				h.rest(next, w, r)
				return
			}
			if h.Down() {
				h.refuse(w, r, kind, page)
				return
			}
			ctx, saw := storage.WatchUnavailable(r.Context())
			hw := &holdErrors{ResponseWriter: w}
			next.ServeHTTP(hw, r.WithContext(ctx))
			if saw() {
				h.suspect()
				if hw.held || hw.status == 0 {
					for _, k := range []string{"Location", "Www-Authenticate", "Content-Length"} {
						w.Header().Del(k)
					}
					h.refuse(w, r, kind, page)
					return
				}
			}
			hw.release()
		})
	}
}

// refuse answers a request that needs the database while it is down.
func (h *health) refuse(w http.ResponseWriter, r *http.Request, kind gateKind, page func(*http.Request) page) {
	w.Header().Set("Retry-After", retryAfter)
	switch kind {
	case gatePage:
		messagePage(w, page(r), http.StatusServiceUnavailable, "error.dbdown.title", "error.dbdown.text")
	case gateMatrix:
		matrixErr(w, http.StatusServiceUnavailable, "M_UNKNOWN", "the database is unreachable; try again in a few seconds")
	default:
		writeJSON(w, http.StatusServiceUnavailable, unavailableJSON)
	}
}

// rest serves the REST service, which answers for itself while the
// database is down (after its own access checks; see ma1sd.WhileDown);
// here its 503s get a Retry-After and a failure it meets is noticed.
func (h *health) rest(next http.Handler, w http.ResponseWriter, r *http.Request) {
	ctx, saw := storage.WatchUnavailable(r.Context())
	next.ServeHTTP(&retryAfter503{ResponseWriter: w}, r.WithContext(ctx))
	if saw() {
		h.suspect()
	}
}

// retryAfter503 adds Retry-After to a 503.
type retryAfter503 struct{ http.ResponseWriter }

func (w *retryAfter503) WriteHeader(status int) {
	if status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *retryAfter503) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// holdErrors holds back an error answer (4xx, 5xx, or a redirect carrying
// error=server_error) until the handler returns, so that the gate can
// replace it when the database turned out to be unreachable. Anything
// else passes through at once.
type holdErrors struct {
	http.ResponseWriter
	status int
	held   bool
	body   bytes.Buffer
}

func (h *holdErrors) WriteHeader(status int) {
	if h.status != 0 {
		return
	}
	h.status = status
	if status >= 400 || (status >= 300 && strings.Contains(h.Header().Get("Location"), "error=server_error")) {
		h.held = true
		return
	}
	h.ResponseWriter.WriteHeader(status)
}

func (h *holdErrors) Write(b []byte) (int, error) {
	if h.status == 0 {
		h.WriteHeader(http.StatusOK)
	}
	if h.held {
		return h.body.Write(b)
	}
	return h.ResponseWriter.Write(b)
}

func (h *holdErrors) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// release sends a held answer unchanged.
func (h *holdErrors) release() {
	if h.held {
		h.ResponseWriter.WriteHeader(h.status)
		h.ResponseWriter.Write(h.body.Bytes())
	}
}
