package ma1sd

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mxidp/mxidp/clientip"
	"github.com/mxidp/mxidp/provider"
	"github.com/mxidp/mxidp/storage"
)

// Prefixes are the default ma1sd (first) and mxisd REST-backend path
// prefixes (ma1sd's and mxisd's RestBackendConfig.java); both are served,
// since an installation migrated from mxisd may keep the old default.
var Prefixes = []string{"/_ma1sd/backend/api/v1", "/_mxisd/backend/api/v1"}

// CheckCredentialsPath is the fixed path of the Synapse REST password
// provider, which appends it to its configured endpoint
// (rest_auth_provider.py).
const CheckCredentialsPath = "/_matrix-internal/identity/v1/check_credentials"

// Defaults for Options left zero.
const (
	DefaultTimeout    = 5 * time.Second
	DefaultMaxResults = 50
)

// Request body caps: bulk lookups carry contact books, which ma1sd passes
// on in one request (ma1sd RestThreePidProvider.java).
const (
	maxBody     = 1 << 20
	maxBulkBody = 8 << 20
)

// Options tune the service; the zero value is usable.
type Options struct {
	// SharedSecret, when set, must arrive as "Authorization: Bearer …".
	// Neither ma1sd nor the Synapse provider can send it (docs/rest.md): use it
	// only behind a proxy that adds the header.
	SharedSecret string
	// AllowedNetworks, when not empty, are the only client addresses
	// served: the TCP peer (the callers connect directly), or the client
	// a proxy in TrustedProxies names (see clientip.Of), which that proxy
	// must not hand on from the internet.
	AllowedNetworks []netip.Prefix
	// TrustedProxies are the reverse proxies whose X-Forwarded-For or
	// Forwarded header names the client.
	TrustedProxies []netip.Prefix
	// Timeout bounds every request, since neither caller has a timeout of
	// its own (docs/rest.md, rest.timeout); DefaultTimeout when zero.
	Timeout time.Duration
	// MaxResults caps directory results; DefaultMaxResults when zero.
	MaxResults int
	// ExposeProfileThreepids lets profile/threepids answer with data,
	// which ma1sd may show to unauthenticated clients (docs/rest.md,
	// rest.expose_profile_threepids).
	ExposeProfileThreepids bool
	// LoginOmitsDisplayName and LoginOmitsThreePIDs leave these out of
	// login answers, for provider versions that fail writing them into
	// newer Synapse (docs/rest.md, rest.login_display_name).
	LoginOmitsDisplayName bool
	LoginOmitsThreePIDs   bool
	Logger                *slog.Logger
}

// Service is the http.Handler of both protocols.
type Service struct {
	users      storage.Users
	login      *provider.Login
	serverName string
	opts       Options
	routes     map[string]route
	// databaseDown, when set and true, answers at once what each
	// endpoint answers when the database fails (see WhileDown).
	databaseDown func() bool
	// warnedUntrusted is set once the log has said that forwarding
	// headers came from a peer outside TrustedProxies.
	warnedUntrusted atomic.Bool
}

type route struct {
	maxBody int64
	serve   func(ctx context.Context, body []byte) (int, any)
	// down is the answer while the database is down: the one serve gives
	// when the database fails (README, "Database outages").
	down func() (int, any)
}

// WhileDown lets the service know when the database is known to be down,
// so that it answers at once (after its access checks) instead of waiting
// for the database.
func (s *Service) WhileDown(down func() bool) { s.databaseDown = down }

// emptyDirectory and noProfileAnswer are the answers of the directory and
// profile endpoints when the database fails: any other status would break
// the caller's own results: ma1sd drops the homeserver's directory results
// too (ma1sd DirectoryManager.java), and answers a profile fetch with 500
// for anything but 200 or 404 (ma1sd RestProfileProvider.java).
func emptyDirectory() (int, any) {
	return http.StatusOK, directoryAnswer{Limited: true, Results: []directoryResult{}}
}
func noProfileAnswer() (int, any) { return http.StatusOK, noProfile }

// New returns the service for the Matrix server serverName.
func New(users storage.Users, login *provider.Login, serverName string, opts Options) *Service {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxResults <= 0 {
		opts.MaxResults = DefaultMaxResults
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Service{users: users, login: login, serverName: serverName, opts: opts, routes: map[string]route{}}
	s.routes[CheckCredentialsPath] = route{maxBody, s.checkCredentials, unavailable}
	for _, p := range Prefixes {
		s.routes[p+"/auth/login"] = route{maxBody, s.authLogin, unavailable}
		s.routes[p+"/directory/user/search"] = route{maxBody, s.directorySearch, emptyDirectory}
		s.routes[p+"/identity/single"] = route{maxBody, s.identitySingle, unavailable}
		s.routes[p+"/identity/bulk"] = route{maxBulkBody, s.identityBulk, unavailable}
		s.routes[p+"/profile/displayName"] = route{maxBody, s.profileDisplayName, noProfileAnswer}
		s.routes[p+"/profile/threepids"] = route{maxBody, s.profileThreepids, noProfileAnswer}
		s.routes[p+"/profile/roles"] = route{maxBody, s.profileRoles, noProfileAnswer}
	}
	return s
}

// Handles reports whether path (with repeated slashes) belongs to this
// service, so a router can send it here before its own path cleaning.
func Handles(path string) bool {
	path = collapseSlashes(path)
	if atOrBelow(path, "/_matrix-internal") {
		return true
	}
	for _, p := range Prefixes {
		if atOrBelow(path, p) {
			return true
		}
	}
	return false
}

// atOrBelow reports whether path is prefix or a path under it. It
// allocates nothing: every request to mxidp asks.
func atOrBelow(path, prefix string) bool {
	rest, ok := strings.CutPrefix(path, prefix)
	return ok && (rest == "" || rest[0] == '/')
}

// IsBulk reports whether path (with repeated slashes) is a bulk lookup,
// the one path whose body may be larger than the others' (a contact book).
func IsBulk(path string) bool {
	path = collapseSlashes(path)
	for _, p := range Prefixes {
		if rest, ok := strings.CutPrefix(path, p); ok && rest == "/identity/bulk" {
			return true
		}
	}
	return false
}

// collapseSlashes treats "//x" as "/x" (docs/rest.md: an operator's trailing
// slash in the caller's base URL doubles it; a redirect would break POST).
func collapseSlashes(p string) string {
	for strings.Contains(p, "//") {
		p = strings.ReplaceAll(p, "//", "/")
	}
	return p
}

// matrixError is the Matrix-style error body of 4xx and 5xx answers
// (docs/rest.md, "What answers look like"); no caller reads it, it is for
// the operator.
type matrixError struct {
	Errcode string `json:"errcode"`
	Error   string `json:"error"`
}

func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		// Never a dropped connection, whatever happens: a bug answers 503.
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.opts.Logger.Error("REST handler panicked", "path", r.URL.Path, "panic", v)
			writeJSON(w, http.StatusServiceUnavailable, matrixError{"M_UNKNOWN", "internal error"})
		}
	}()
	if !s.allowed(r) {
		writeJSON(w, http.StatusForbidden, matrixError{"M_FORBIDDEN", "this address may not use the REST service"})
		return
	}
	if s.opts.SharedSecret != "" && !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mxidp-rest"`)
		writeJSON(w, http.StatusUnauthorized, matrixError{"M_UNKNOWN_TOKEN", "missing or wrong bearer token"})
		return
	}
	rt, ok := s.routes[collapseSlashes(r.URL.Path)]
	if !ok {
		writeJSON(w, http.StatusNotFound, matrixError{"M_UNRECOGNIZED", "unknown endpoint"})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, matrixError{"M_UNRECOGNIZED", "only POST is allowed"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, rt.maxBody))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		writeJSON(w, http.StatusRequestEntityTooLarge, matrixError{"M_TOO_LARGE", "request body too large"})
		return
	case err != nil:
		writeJSON(w, http.StatusBadRequest, matrixError{"M_NOT_JSON", "cannot read the request body"})
		return
	}
	if s.databaseDown != nil && s.databaseDown() {
		status, v := rt.down()
		writeJSON(w, status, v)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.Timeout)
	defer cancel()
	status, v := rt.serve(ctx, body)
	writeJSON(w, status, v)
}

// allowed reports whether the client may use the service. Behind a
// trusted proxy the client is the address the proxy names: the proxy's
// own address would let the whole internet in through a same-host proxy.
// Forwarding headers that cannot be read are refused, as the client
// could be anyone.
func (s *Service) allowed(r *http.Request) bool {
	if len(s.opts.AllowedNetworks) == 0 {
		return true
	}
	client, err := clientip.Of(r, s.opts.TrustedProxies)
	if err != nil {
		s.opts.Logger.Info("REST request refused: its client address is unknown", "err", err)
		return false
	}
	if peer, _ := clientip.Peer(r); clientip.Forwarded(r) && !clientip.Within(s.opts.TrustedProxies, peer) &&
		s.warnedUntrusted.CompareAndSwap(false, true) {
		s.opts.Logger.Warn("a REST request came with X-Forwarded-For or Forwarded from a peer not in trusted_proxies, "+
			"and was judged by the peer's address; if a proxy forwards the REST paths, list it in trusted_proxies, "+
			"or better, let Synapse and ma1sd reach mxidp directly", "peer", peer.String())
	}
	if clientip.Within(s.opts.AllowedNetworks, client) {
		return true
	}
	s.opts.Logger.Info("REST request refused: the client is not in rest.allowed_networks", "client", client.String())
	return false
}

func (s *Service) authorized(r *http.Request) bool {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(token)), []byte(s.opts.SharedSecret)) == 1
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// errBody is a 4xx answer to a malformed request.
type errBody struct {
	status int
	err    matrixError
}

func badJSON(msg string) *errBody {
	return &errBody{http.StatusBadRequest, matrixError{"M_BAD_JSON", msg}}
}

func (e *errBody) answer() (int, any) { return e.status, e.err }

// unavailable is the answer to an internal failure where the caller must
// see one: Synapse then logs an error instead of a wrong password, and
// ma1sd treats it as a failed login or a lookup without a match.
func unavailable() (int, any) {
	return http.StatusServiceUnavailable, matrixError{"M_UNKNOWN", "temporarily unavailable; try again"}
}
