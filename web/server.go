package web

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/mxidp/mxidp/provider/ma1sd"
)

// Pinger reports whether the database answers.
type Pinger interface {
	Ping(ctx context.Context) error
}

// KeySet is what web needs of the signing-key ring.
type KeySet interface {
	JWKS() []byte
	SigningKeyReady() error
}

// Deps are the parts the HTTP surface is built from.
type Deps struct {
	DB     Pinger
	Keys   KeySet
	Logger *slog.Logger
	// OpenID, when set, mounts the OpenID provider and its login pages.
	OpenID *OpenID
	// REST, when set, serves the ma1sd-compatible REST service on the
	// paths ma1sd.Handles names.
	REST http.Handler
	// PendingLogouts, when set, counts queued back-channel logout notices
	// for /metrics.
	PendingLogouts func(context.Context) (int, error)
	// Statements, when set, counts the statements sent to mxidp's own
	// database, for /metrics.
	Statements func() uint64
	// BasePath is the issuer's path ("/idp" for https://example.org/idp;
	// "" for none): every route is served under it as well as at the root,
	// so that the issuer's URLs work with or without a proxy that strips
	// the path (README, "Behind a reverse proxy").
	BasePath string
}

// JWKSPath is where the JSON Web Key Set is served (the path zitadel/oidc
// also uses, so discovery can point at it unchanged).
const JWKSPath = "/keys"

// jwksMaxAge bounds how long relying parties may cache the key set; the
// keys' publication delay must be longer (see keys.Config).
var jwksMaxAge = []string{"public, max-age=300"}

// NewHandler returns the complete HTTP handler.
func NewHandler(d Deps) http.Handler {
	r := newRoutes()
	m := newMetrics(d.PendingLogouts, d.Statements)
	if d.OpenID != nil && d.OpenID.Login != nil {
		// The login page and the REST service share this Login.
		d.OpenID.Login.Observe = func(door, result string) { m.passwordChecks.WithLabelValues(door, result).Inc() }
	}
	// pageOf starts the page of a browser's request that mxidp refuses
	// before any handler sees it.
	var pageOf func(*http.Request) page
	if d.OpenID != nil {
		pageOf = func(r *http.Request) page {
			return page{locale: pickLocale(r.URL.Query().Get("ui_locales"), r), Static: d.OpenID.Issuer + StaticPath, Brand: d.OpenID.Branding}
		}
	}
	db := &health{db: d.DB, log: d.Logger}
	if rest, ok := d.REST.(interface{ WhileDown(func() bool) }); ok {
		rest.WhileDown(db.Down)
	}

	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "alive"})
	})
	r.Get("/readyz", func(w http.ResponseWriter, r *http.Request) {
		// While the database is known to be down, the gate's pings
		// answer for it; otherwise a failed ping closes the gate.
		if db.Down() {
			w.Header().Set("Retry-After", retryAfter)
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": "database unreachable"})
			return
		}
		if err := db.ping(r.Context()); err != nil {
			d.Logger.Warn("not ready: database unreachable", "err", err)
			db.failed(err)
			w.Header().Set("Retry-After", retryAfter)
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": "database unreachable"})
			return
		}
		if err := d.Keys.SigningKeyReady(); err != nil {
			d.Logger.Warn("not ready: no signing key", "err", err)
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": "no signing key loaded"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	r.Get(MetricsPath, m.handler().ServeHTTP)
	r.Get(JWKSPath, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = valueJSON
		h["Cache-Control"] = jwksMaxAge
		w.Write(d.Keys.JWKS())
	})
	if d.OpenID != nil {
		mountOpenID(r, *d.OpenID)
	}
	// Every request passes, outermost first: the request log (and panic
	// recovery), the security headers, the body caps, the database gate,
	// the REST service's paths, then the routes.
	var h http.Handler = r
	if d.REST != nil {
		h = restFirst(d.REST)(h)
	}
	h = db.gate(d.OpenID != nil, d.REST != nil, pageOf)(h)
	h = limitBodies(pageOf)(h)
	h = securityHeaders(h)
	return underBase(d.BasePath, logRequests(d.Logger, m)(h))
}

// underBase serves a request for base+"/…" as the request for "/…", and
// any other request as it is: the routes are the same under the issuer's
// path and at the root, where a proxy that strips the path sends them. The
// log and metrics see the route's own path.
func underBase(base string, next http.Handler) http.Handler {
	if base == "" || base == "/" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.Path, base)
		if !ok || (rest != "" && rest[0] != '/') {
			next.ServeHTTP(w, r) // "/idpx" is not under "/idp"
			return
		}
		if rest == "" {
			rest = "/"
		}
		r2 := new(http.Request)
		*r2 = *r
		u := *r.URL
		u.Path, u.RawPath = rest, ""
		if raw, ok := strings.CutPrefix(r.URL.RawPath, base); ok && raw != "" {
			u.RawPath = raw
		}
		r2.URL = &u
		next.ServeHTTP(w, r2)
	})
}

// routes is the router: chi, except that a GET of a path registered
// exactly with Get (discovery, the key set, health, metrics: the requests
// that come by the thousand) is answered from a map, without chi's
// routing context and the copy of the request it makes. Patterns with
// parameters, other methods, and paths chi routes on their escaped form
// go to chi.
type routes struct {
	chi.Router
	exact map[string]http.HandlerFunc
}

func newRoutes() *routes {
	return &routes{Router: chi.NewRouter(), exact: map[string]http.HandlerFunc{}}
}

func (rt *routes) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.RawPath == "" {
		if h, ok := rt.exact[r.URL.Path]; ok {
			h(w, r)
			return
		}
	}
	rt.Router.ServeHTTP(w, r)
}

// Get registers h for GET on pattern with chi, and in the map when the
// pattern is a plain path.
func (rt *routes) Get(pattern string, h http.HandlerFunc) {
	rt.Router.Get(pattern, h)
	if !strings.ContainsAny(pattern, "{*") {
		rt.exact[pattern] = h
	}
}

// The registrations that may take GET on a pattern over from Get leave
// it to chi.

func (rt *routes) Handle(pattern string, h http.Handler) {
	delete(rt.exact, pattern)
	rt.Router.Handle(pattern, h)
}

func (rt *routes) HandleFunc(pattern string, h http.HandlerFunc) {
	delete(rt.exact, pattern)
	rt.Router.HandleFunc(pattern, h)
}

func (rt *routes) Method(method, pattern string, h http.Handler) {
	delete(rt.exact, pattern)
	rt.Router.Method(method, pattern, h)
}

func (rt *routes) MethodFunc(method, pattern string, h http.HandlerFunc) {
	delete(rt.exact, pattern)
	rt.Router.MethodFunc(method, pattern, h)
}

func (rt *routes) Mount(pattern string, h http.Handler) {
	delete(rt.exact, pattern)
	rt.Router.Mount(pattern, h)
}

// restFirst hands the REST service its paths before routing, so that
// "//path" reaches it instead of a 404 or a redirect (docs/rest.md: the
// callers append the path to a base URL that may end in "/", and follow no
// redirect for a POST).
func restFirst(rest http.Handler) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if ma1sd.Handles(r.URL.Path) {
				rest.ServeHTTP(w, r)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header()["Cache-Control"] = valueNoStore
	w.Header()["Pragma"] = valueNoCache
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// ShutdownGrace is how long requests in flight may finish after SIGTERM.
const ShutdownGrace = 10 * time.Second

// Serve answers requests on l until ctx ends, then stops accepting, lets
// requests in flight finish for up to ShutdownGrace, and returns.
func Serve(ctx context.Context, l net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing requests in flight", "grace", ShutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-done; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}
