package web

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"
	"github.com/mxidp/mxidp/provider"
)

// RegistrationConfig turns on dynamic client registration (RFC 7591, as
// the Matrix client-server API's OAuth 2.0 API profiles it) at
// provider.RegistrationPath, and bounds it: anyone may register, so every
// registration is a row an unauthenticated caller writes.
type RegistrationConfig struct {
	// Burst registrations may be made at once from one client network
	// (an IPv4 address, an IPv6 /64, with a budget for its /48),
	// PerSecond after that; 0 means no limit.
	Burst     int
	PerSecond float64
	// MaxUnused caps the dynamic clients nobody has used yet (no token,
	// no authorization request, no device): past it, registrations are
	// refused until sign-ins or the purge free room; 0 means no cap.
	MaxUnused int
}

// By default one network may register DefaultRegistrationBurst clients at
// once and one every five seconds after that: Matrix clients register at
// the start of every sign-in, so a school behind one address signing in a
// class at once needs a burst, while one network leaves at most about
// 800 unused registrations an hour (the purge deletes them after
// storage.UnusedClientGrace). DefaultRegistrationMaxUnused bounds them
// all, whatever the number of networks.
const (
	DefaultRegistrationBurst     = 60
	DefaultRegistrationPerSecond = 0.2
	DefaultRegistrationMaxUnused = 10_000
)

// registrationDoor serves provider.RegistrationPath.
type registrationDoor struct {
	*openIDRoutes
	cfg   RegistrationConfig
	limit *networkLimiter
}

func (h *openIDRoutes) mountRegistration(r chi.Router, cfg RegistrationConfig) {
	d := &registrationDoor{openIDRoutes: h, cfg: cfg, limit: newNetworkLimiter(cfg.PerSecond, float64(cfg.Burst))}
	r.HandleFunc(provider.RegistrationPath, d.serve)
}

// Header values of the registration endpoint's answers. Browser-based
// Matrix clients register from their own origin, so any origin may call
// it; no cookie or credential is ever read here, and none is allowed.
var (
	valueAnyOrigin      = []string{"*"}
	valueRegisterAllow  = []string{"POST, OPTIONS"}
	valueCORSMethods    = []string{"POST"}
	valueCORSHeaders    = []string{"Content-Type, Accept"}
	valueCORSMaxAge     = []string{"600"}
	registrationRetryIn = "300" // seconds, when the cap is reached
)

// serve answers a registration request (RFC 7591 §3): 201 with the new
// client's metadata, or a JSON error that says what to change.
func (d *registrationDoor) serve(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr["Access-Control-Allow-Origin"] = valueAnyOrigin
	switch r.Method {
	case http.MethodPost:
	case http.MethodOptions:
		// A CORS preflight (Fetch standard, CORS protocol).
		hdr["Access-Control-Allow-Methods"] = valueCORSMethods
		hdr["Access-Control-Allow-Headers"] = valueCORSHeaders
		hdr["Access-Control-Max-Age"] = valueCORSMaxAge
		hdr["Allow"] = valueRegisterAllow
		hdr["Cache-Control"] = valueNoStore
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		hdr["Allow"] = valueRegisterAllow
		registrationError(w, http.StatusMethodNotAllowed, "invalid_request", "client registration takes a POST of JSON client metadata (RFC 7591 §3.1)")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		registrationError(w, http.StatusUnsupportedMediaType, "invalid_request", "the body must be JSON, sent as Content-Type: application/json")
		return
	}
	tooLarge := "the body is larger than " + strconv.Itoa(provider.MaxRegistrationBody>>10) + " KiB"
	if r.ContentLength > provider.MaxRegistrationBody {
		registrationError(w, http.StatusRequestEntityTooLarge, "invalid_request", tooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, provider.MaxRegistrationBody))
	var maxErr *http.MaxBytesError
	switch {
	case errors.As(err, &maxErr):
		registrationError(w, http.StatusRequestEntityTooLarge, "invalid_request", tooLarge)
		return
	case err != nil:
		registrationError(w, http.StatusBadRequest, "invalid_request", "the body could not be read")
		return
	}
	reg, err := provider.ParseRegistration(body)
	var refused *provider.RegistrationError
	if errors.As(err, &refused) {
		registrationError(w, http.StatusBadRequest, refused.Code, refused.Description)
		return
	}
	if err != nil {
		registrationError(w, http.StatusBadRequest, provider.ErrorInvalidClientMetadata, "the client metadata could not be read")
		return
	}
	// Only a registration that would be stored counts against the
	// network: refusals write nothing.
	network := clientAddr(r, d.TrustedProxies)
	if ok, wait := d.limit.allow(network); !ok {
		hdr.Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		registrationError(w, http.StatusTooManyRequests, "temporarily_unavailable", "too many clients were registered from your network; try again later")
		return
	}
	client, err := d.Storage.Register(r.Context(), reg, network, d.cfg.MaxUnused)
	switch {
	case errors.Is(err, provider.ErrTooManyRegistrations):
		d.Login.Logger.Warn("client registration refused: the cap on unused registrations is reached", "max_unused", d.cfg.MaxUnused)
		hdr.Set("Retry-After", registrationRetryIn)
		registrationError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "too many clients are registered and not yet used; try again later")
		return
	case err != nil:
		d.Login.Logger.Error("client registration failed", "err", err, "request_id", hdr.Get(requestIDHeader))
		hdr.Set("Retry-After", retryAfter)
		registrationError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the registration could not be stored; try again in a moment")
		return
	}
	writeJSON(w, http.StatusCreated, client)
}

// registrationError answers with an OAuth error (RFC 7591 §3.2.2).
func registrationError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": description})
}
