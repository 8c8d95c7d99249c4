package web

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/mxidp/mxidp/provider"
	"github.com/mxidp/mxidp/provider/ma1sd"
	"github.com/mxidp/mxidp/storage"
)

// The Matrix login compatibility layer (next-gen auth): Synapse delegating
// to mxidp no longer serves the client-server API's /login, /logout and
// /refresh, so the deployment's reverse proxy sends them here (Matrix
// client-server API, "Login", "Logout", "Refresh"). Answers are the
// spec's JSON, errors Matrix errors.

// compatVersions are the API versions Synapse served these paths under.
var compatVersions = []string{"r0", "v3", "unstable"}

// maxCompatBody bounds a /login, /logout or /refresh body: the largest
// real one is a password login of a few hundred bytes.
const maxCompatBody = 16 << 10

func (h *openIDRoutes) mountCompat(r chi.Router) {
	for _, v := range append([]string{"api/v1"}, compatVersions...) {
		r.HandleFunc("/_matrix/client/"+v+"/login", matrixCORS(h.compatLogin))
	}
	for _, v := range compatVersions {
		r.HandleFunc("/_matrix/client/"+v+"/logout", matrixCORS(h.compatLogout(false)))
		r.HandleFunc("/_matrix/client/"+v+"/logout/all", matrixCORS(h.compatLogout(true)))
		r.HandleFunc("/_matrix/client/"+v+"/refresh", matrixCORS(h.compatRefresh))
	}
	h.mountSSO(r)
}

// matrixCORS answers as Synapse does for its client-server API: any
// origin, no credentials (the API takes bearer tokens, never cookies),
// preflights answered (Matrix client-server API, "Web Browser Clients").
func matrixCORS(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr.Set("Access-Control-Allow-Origin", "*")
		hdr.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
		hdr.Set("Access-Control-Allow-Headers", "X-Requested-With, Content-Type, Authorization")
		if r.Method == http.MethodOptions {
			writeJSON(w, http.StatusOK, struct{}{})
			return
		}
		next(w, r)
	}
}

// matrixErr writes a Matrix error.
func matrixErr(w http.ResponseWriter, status int, errcode, message string) {
	writeJSON(w, status, map[string]any{"errcode": errcode, "error": message})
}

// unknownToken is M_UNKNOWN_TOKEN; softLogout says whether the client may
// keep its device and log in again (it may not: the session is gone).
func unknownToken(w http.ResponseWriter, message string) {
	writeJSON(w, http.StatusUnauthorized, map[string]any{"errcode": "M_UNKNOWN_TOKEN", "error": message, "soft_logout": false})
}

// readMatrixBody reads a JSON body of at most maxCompatBody bytes into v.
func readMatrixBody(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxCompatBody+1))
	if err != nil {
		matrixErr(w, http.StatusBadRequest, "M_UNKNOWN", "the body could not be read")
		return false
	}
	if len(body) > maxCompatBody {
		matrixErr(w, http.StatusRequestEntityTooLarge, "M_TOO_LARGE", "the body is larger than "+strconv.Itoa(maxCompatBody)+" bytes")
		return false
	}
	if refused, status, errcode, message := ma1sd.DecodeMatrixRequest(body, v); refused {
		matrixErr(w, status, errcode, message)
		return false
	}
	return true
}

// loginRequest is POST /login's body, with the deprecated forms of the
// identifier (user; medium and address) that older clients send.
type loginRequest struct {
	Type       string `json:"type"`
	Identifier *struct {
		Type    string `json:"type"`
		User    string `json:"user"`
		Medium  string `json:"medium"`
		Address string `json:"address"`
	} `json:"identifier"`
	User                     string `json:"user"`
	Medium                   string `json:"medium"`
	Address                  string `json:"address"`
	Password                 string `json:"password"`
	Token                    string `json:"token"`
	DeviceID                 string `json:"device_id"`
	InitialDeviceDisplayName string `json:"initial_device_display_name"`
	RefreshToken             bool   `json:"refresh_token"`
}

// maxDeviceDisplayName bounds initial_device_display_name, which Synapse
// stores and shows to the user's contacts.
const maxDeviceDisplayName = 100

func (h *openIDRoutes) compatLogin(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{"flows": h.compatFlows()})
		return
	case http.MethodPost:
	default:
		matrixErr(w, http.StatusMethodNotAllowed, "M_UNRECOGNIZED", "/login takes GET and POST")
		return
	}
	var req loginRequest
	if !readMatrixBody(w, r, &req) {
		return
	}
	if req.DeviceID != "" && !provider.ValidDeviceID(req.DeviceID) {
		matrixErr(w, http.StatusBadRequest, "M_INVALID_PARAM", "device_id must be 1 to 255 of A-Z a-z 0-9 - . _ ~")
		return
	}
	if len(req.InitialDeviceDisplayName) > maxDeviceDisplayName {
		matrixErr(w, http.StatusBadRequest, "M_INVALID_PARAM", "initial_device_display_name is longer than "+strconv.Itoa(maxDeviceDisplayName)+" bytes")
		return
	}
	var u storage.User
	switch req.Type {
	case "m.login.password":
		var ok bool
		if u, ok = h.compatPassword(w, r, req); !ok {
			return
		}
	case "m.login.token":
		var err error
		u, err = h.Storage.RedeemLoginToken(r.Context(), req.Token)
		if errors.Is(err, provider.ErrNoSuchToken) {
			matrixErr(w, http.StatusForbidden, "M_FORBIDDEN", "the login token is unknown, used or expired")
			return
		}
		if err != nil {
			h.compatInternal(w, r, "redeem login token", err)
			return
		}
	default:
		matrixErr(w, http.StatusBadRequest, "M_UNKNOWN", "unknown login type; GET /login lists the ones offered")
		return
	}
	s, err := h.Storage.StartCompatSession(r.Context(), u, req.DeviceID, req.InitialDeviceDisplayName, req.RefreshToken)
	if errors.Is(err, provider.ErrLocalpartTaken) {
		matrixErr(w, http.StatusForbidden, "M_FORBIDDEN", err.Error())
		return
	}
	if err != nil {
		h.compatInternal(w, r, "start compatibility session", err)
		return
	}
	h.writeSession(w, s, true)
}

// compatFlows are the login types offered: passwords, mxidp's browser
// login (SSO) and the token it hands back.
func (h *openIDRoutes) compatFlows() []map[string]any {
	name := h.Branding.ProductName
	if name == "" {
		name = h.ServerName
	}
	return []map[string]any{
		{"type": "m.login.password"},
		{"type": "m.login.sso", "identity_providers": []map[string]string{{"id": provider.CompatIdPID, "name": name}}},
		{"type": "m.login.token"},
	}
}

// compatPassword decides an m.login.password request with the password
// check every door uses (throttle, audit, hash upgrade, disabled users).
// A full Matrix ID must be this server's and spelled canonically: @Bob is
// not bob. Such a name is still checked, and so counts against the
// throttle, under a login no account has.
func (h *openIDRoutes) compatPassword(w http.ResponseWriter, r *http.Request, req loginRequest) (storage.User, bool) {
	login, localpart := "", ""
	id := req.Identifier
	switch {
	case id != nil && id.Type == "m.id.user":
		login = id.User
	case id != nil && id.Type == "m.id.thirdparty" && id.Medium == "email":
		login = id.Address
	case id != nil:
		matrixErr(w, http.StatusBadRequest, "M_UNKNOWN", "identifier type not supported: use m.id.user or m.id.thirdparty with medium email")
		return storage.User{}, false
	case req.User != "":
		login = req.User
	case req.Medium == "email":
		login = req.Address
	}
	if login == "" || req.Password == "" {
		matrixErr(w, http.StatusBadRequest, "M_MISSING_PARAM", "send an identifier and a password")
		return storage.User{}, false
	}
	if rest, ok := strings.CutPrefix(login, "@"); ok {
		local, domain, _ := strings.Cut(rest, ":")
		canonical, err := provider.CanonicalLocalpart(local, h.ServerName)
		if err == nil && canonical == local && strings.EqualFold(domain, h.ServerName) {
			login, localpart = local, local
		}
		// Otherwise the whole ID is checked as a login, which no account has.
	}
	u, err := h.Login.CheckPassword(r.Context(), provider.Attempt{Login: login, Password: req.Password,
		Network: clientAddr(r, h.TrustedProxies), Door: "matrix login", ClientID: provider.CompatClientID})
	var throttled *provider.ThrottledError
	switch {
	case errors.As(err, &throttled):
		ms := throttled.RetryAfter.Milliseconds()
		w.Header().Set("Retry-After", strconv.Itoa(int(throttled.RetryAfter.Seconds())+1))
		writeJSON(w, http.StatusTooManyRequests, map[string]any{"errcode": "M_LIMIT_EXCEEDED",
			"error": "too many attempts; try again later", "retry_after_ms": ms})
		return storage.User{}, false
	case errors.Is(err, provider.ErrAccountDisabled):
		matrixErr(w, http.StatusForbidden, "M_USER_DEACTIVATED", "this account is disabled")
		return storage.User{}, false
	case errors.Is(err, provider.ErrBadCredentials):
		matrixErr(w, http.StatusForbidden, "M_FORBIDDEN", "invalid username or password")
		return storage.User{}, false
	case err != nil:
		h.compatInternal(w, r, "check password", err)
		return storage.User{}, false
	}
	if localpart != "" && u.Username != localpart {
		// The check also takes e-mail addresses: only the account the
		// Matrix ID names may pass.
		matrixErr(w, http.StatusForbidden, "M_FORBIDDEN", "invalid username or password")
		return storage.User{}, false
	}
	// Asked only of the right password, so that the answer tells nothing
	// to whoever lacks it.
	allowed, err := h.Storage.PasswordLoginAllowed(r.Context(), u, clientAddr(r, h.TrustedProxies))
	if err != nil {
		h.compatInternal(w, r, "load account settings", err)
		return storage.User{}, false
	}
	if !allowed {
		matrixErr(w, http.StatusForbidden, "M_FORBIDDEN", "this account signs in through the browser (m.login.sso)")
		return storage.User{}, false
	}
	return u, true
}

// writeSession answers a login or a refresh.
func (h *openIDRoutes) writeSession(w http.ResponseWriter, s provider.CompatSession, login bool) {
	access, err := s.SealedAccessToken(h.OP.Crypto())
	if err != nil {
		matrixErr(w, http.StatusInternalServerError, "M_UNKNOWN", "the token could not be made")
		return
	}
	out := map[string]any{"access_token": access}
	if login {
		out["user_id"] = "@" + s.User.Username + ":" + h.ServerName
		out["device_id"] = s.DeviceID
		out["home_server"] = h.ServerName // deprecated, still read by older clients
	}
	if s.RefreshToken != "" {
		out["refresh_token"] = s.RefreshToken
	}
	if s.Expiring {
		out["expires_in_ms"] = time.Until(s.ExpiresAt).Milliseconds()
	}
	writeJSON(w, http.StatusOK, out)
}

// accessToken is the request's bearer token (the Authorization header,
// or the deprecated access_token query parameter).
func accessToken(r *http.Request) string {
	if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return t
	}
	return r.URL.Query().Get("access_token")
}

// tokenOf opens the request's access token into its ID and subject.
func (h *openIDRoutes) tokenOf(r *http.Request) (string, string, bool) {
	return openAccessToken(h.OP.Crypto().Decrypt, accessToken(r))
}

func (h *openIDRoutes) compatLogout(all bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			matrixErr(w, http.StatusMethodNotAllowed, "M_UNRECOGNIZED", "logout takes POST")
			return
		}
		if accessToken(r) == "" {
			matrixErr(w, http.StatusUnauthorized, "M_MISSING_TOKEN", "an access token is required")
			return
		}
		id, subject, ok := h.tokenOf(r)
		if !ok {
			unknownToken(w, "unknown access token")
			return
		}
		end := h.Storage.LogoutToken
		if all {
			end = h.Storage.LogoutAll
		}
		err := end(r.Context(), id, subject)
		if errors.Is(err, provider.ErrNoSuchToken) {
			unknownToken(w, "unknown access token")
			return
		}
		if err != nil {
			h.compatInternal(w, r, "log out", err)
			return
		}
		writeJSON(w, http.StatusOK, struct{}{})
	}
}

func (h *openIDRoutes) compatRefresh(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		matrixErr(w, http.StatusMethodNotAllowed, "M_UNRECOGNIZED", "/refresh takes POST")
		return
	}
	var req struct {
		RefreshToken string `json:"refresh_token"`
	}
	if !readMatrixBody(w, r, &req) {
		return
	}
	if req.RefreshToken == "" {
		matrixErr(w, http.StatusBadRequest, "M_MISSING_PARAM", "refresh_token is required")
		return
	}
	s, err := h.Storage.RefreshCompat(r.Context(), req.RefreshToken)
	if errors.Is(err, provider.ErrNoSuchToken) {
		unknownToken(w, "unknown, used or expired refresh token")
		return
	}
	if err != nil {
		h.compatInternal(w, r, "refresh", err)
		return
	}
	h.writeSession(w, s, false)
}

// compatInternal answers a failure that is not the client's: the
// database or Synapse could not be reached.
func (h *openIDRoutes) compatInternal(w http.ResponseWriter, r *http.Request, what string, err error) {
	h.Storage.Logger.Error("Matrix login compatibility layer: "+what+" failed", "err", err, "request_id", w.Header().Get(requestIDHeader))
	matrixErr(w, http.StatusServiceUnavailable, "M_UNKNOWN", "the service is temporarily unavailable; try again")
}
