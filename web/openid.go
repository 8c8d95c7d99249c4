package web

import (
	"crypto/rand"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/mxidp/mxidp/provider"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// OpenID is what the OpenID surface is built from.
type OpenID struct {
	Issuer    string
	OP        *op.Provider
	Storage   *provider.OpenID
	Login     *provider.Login
	Discovery []byte // the discovery document, prepared once
	Branding  Branding
	// TrustedProxies may name the client in X-Forwarded-For (see clientAddr).
	TrustedProxies []netip.Prefix
	// AuthorizeBurst authorization requests may be opened at once from one
	// client network, AuthorizePerSecond after that; 0 means no limit.
	AuthorizeBurst     int
	AuthorizePerSecond float64
	// FormKey keys the CSRF tokens of the pages' forms; every instance of
	// a deployment needs the same one. Empty means a random key for this
	// process alone.
	FormKey []byte
	// SynapseSecret, set in next-gen auth, is the secret Synapse shares
	// with mxidp: it serves provider.SynapseIntrospectionPath with it.
	SynapseSecret string
	// Registration, set in next-gen auth, serves dynamic client
	// registration at provider.RegistrationPath; nil leaves it unrouted.
	Registration *RegistrationConfig
	// ServerName is the Matrix server name, for the Matrix IDs the
	// account page shows.
	ServerName string
	// SSOClientAllowlist lists the URL prefixes of the Matrix clients
	// whose m.login.sso needs no confirmation (see ssoAllowed).
	SSOClientAllowlist []string
}

// openIDRoutes mounts the OpenID provider: discovery and userinfo served
// here from prepared bytes and mxidp's own checks, the login pages, and
// everything else by zitadel/oidc.
type openIDRoutes struct {
	OpenID
	secureCookies bool
	cookiePath    string
	formKey       []byte
	// authorizeLimit bounds the authorization requests one network may
	// open (each is stored until it expires).
	authorizeLimit *networkLimiter
}

func mountOpenID(r chi.Router, o OpenID) {
	u, _ := url.Parse(o.Issuer) // validated at start-up
	path := u.Path
	if path == "" {
		path = "/"
	}
	h := &openIDRoutes{OpenID: o, secureCookies: u.Scheme == "https", cookiePath: path, formKey: o.FormKey,
		authorizeLimit: newNetworkLimiter(o.AuthorizePerSecond, float64(o.AuthorizeBurst))}
	if len(h.formKey) == 0 {
		h.formKey = make([]byte, 32)
		rand.Read(h.formKey)
	}
	r.Get(oidc.DiscoveryEndpoint, h.discovery)
	r.Get("/userinfo", h.userinfo)
	r.Post("/userinfo", h.userinfo)
	mountToken(r, o.OP)
	r.Get(provider.LoginPath, h.loginPage)
	r.Post(provider.LoginPath, h.loginSubmit)
	r.Post(consentPath, h.consentSubmit)
	r.Get(provider.LoggedOutPath, h.loggedOut)
	r.Get(StaticPath+"/mxidp.css", staticFile("text/css; charset=utf-8", stylesheet))
	r.Get(StaticPath+"/theme.css", staticFile("text/css; charset=utf-8", o.Branding.themeCSS()))
	if o.Branding.HasLogo() {
		r.Get(StaticPath+"/logo", staticFile(o.Branding.LogoType, o.Branding.Logo))
	}
	r.HandleFunc("/end_session", h.endSession)
	r.Post(logoutPath, h.logoutSubmit)
	if o.SynapseSecret != "" {
		r.Handle(provider.SynapseIntrospectionPath, newSynapseIntrospection(o))
		h.mountCompat(r)
	}
	if o.Registration != nil {
		h.mountRegistration(r, *o.Registration)
	}
	if o.Storage != nil && o.Storage.Matrix != nil {
		r.HandleFunc(provider.AccountPath, h.account)
	}
	r.HandleFunc("/authorize", h.authorize)
	// Every method: the library would otherwise answer the ones not
	// routed here itself, unguarded.
	r.HandleFunc("/authorize/callback", h.callback)
	// Everything else the library serves itself: introspection,
	// revocation, and the token endpoint through mountToken's checks.
	r.NotFound(o.OP.ServeHTTP)
	r.MethodNotAllowed(o.OP.ServeHTTP)
}

var discoveryMaxAge = []string{"public, max-age=3600"}

func (h *openIDRoutes) discovery(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr["Content-Type"] = valueJSON
	hdr["Cache-Control"] = discoveryMaxAge
	w.Write(h.Discovery)
}

// userinfo answers OIDC Core §5.3 for a bearer access token: JSON, or a
// JWT for a client that asked for signed userinfo. A missing,
// invalid, expired or revoked token gets 401 with WWW-Authenticate, never
// a 200 (RFC 6750 §3.1): Synapse synapse/handlers/oidc.py does not look at
// the status and would take any 200 body for the user's claims.
func (h *openIDRoutes) userinfo(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mxidp"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_request", "error_description": "a bearer access token is required"})
		return
	}
	info := new(oidc.UserInfo)
	err := provider.ErrInvalidToken
	var jwt string
	if id, subject, found := openAccessToken(h.OP.Crypto().Decrypt, token); found {
		jwt, err = h.Storage.Userinfo(r.Context(), info, id, subject)
	}
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mxidp", error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token", "error_description": "the access token is invalid, expired or revoked"})
		return
	}
	if jwt != "" {
		// A client registered with userinfo_signed_response_alg gets the
		// claims as a signed JWT (OIDC Core §5.3.2).
		hdr := w.Header()
		hdr["Content-Type"] = valueJWT
		hdr["Cache-Control"] = valueNoStore
		hdr["Pragma"] = valueNoCache
		w.WriteHeader(http.StatusOK)
		w.Write([]byte(jwt))
		return
	}
	writeJSON(w, http.StatusOK, info)
}

var valueJWT = []string{"application/jwt"}

// page starts the data of a page in the language the request asks for.
func (h *openIDRoutes) page(r *http.Request, uiLocales string) page {
	return page{locale: pickLocale(uiLocales, r), Static: h.Issuer + StaticPath, Brand: h.Branding}
}

// authorize passes the request to the library. When the library cannot
// send the browser back to the client (unknown client, unregistered
// redirect URI: never redirected, RFC 6749 §4.1.2.1), it answers with a
// bare text; the user gets mxidp's error page instead, with that text as
// the detail for the administrators.
//
// Before the library sees it, a request is bounded (its body by
// limitBodies, every parameter it stores by a cap, so an unauthenticated
// caller cannot fill the database) and bound to the browser: the
// request's row holds the hash of the browser-binding cookie set here.
func (h *openIDRoutes) authorize(w http.ResponseWriter, r *http.Request) {
	problem := "the request could not be read"
	if err := r.ParseForm(); err == nil {
		problem = oversizedParameter(r.Form)
	}
	if problem != "" {
		p := h.page(r, "")
		p.Title = p.T("error.request.title")
		render(w, http.StatusBadRequest, "message.html", message{page: p, Text: p.T("error.request.text"),
			Detail: problem, RequestID: w.Header().Get(requestIDHeader), Alert: true})
		return
	}
	if ok, wait := h.authorizeLimit.allow(clientAddr(r, h.TrustedProxies)); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		messagePage(w, h.page(r, r.Form.Get("ui_locales")), http.StatusTooManyRequests, "error.busy.title", "error.busy.text")
		return
	}
	binding := h.browserBinding(w, r)
	r = r.WithContext(provider.WithBrowserBinding(r.Context(), provider.HashBrowserBinding(binding)))
	// A plain-text 4xx is the library's answer when it cannot send the
	// browser back to the client; a page replaces it.
	cw := &holdBack{ResponseWriter: w, keep: 1024, hold: func(status int) bool {
		plain := status >= 400 && status < 500 && strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain")
		if plain {
			w.Header().Del("Content-Type")
		}
		return plain
	}}
	h.OP.ServeHTTP(cw, r)
	if cw.held {
		p := h.page(r, r.FormValue("ui_locales"))
		p.Title = p.T("error.request.title")
		render(w, http.StatusBadRequest, "message.html", message{page: p, Text: p.T("error.request.text"),
			Detail: authorizeRefusalDetail(cw.kept.String()), RequestID: w.Header().Get(requestIDHeader), Alert: true})
	}
}

// By default one network may open DefaultAuthorizeBurst authorization
// requests at once and DefaultAuthorizePerSecond after that: a school
// behind one address signs in a few hundred people in a morning rush,
// while rows stay bounded at about 10,000 per network and request lifetime.
const (
	DefaultAuthorizeBurst     = 300
	DefaultAuthorizePerSecond = 5
)

// authorizeParamCaps bounds, in bytes, the authorization request's
// parameters that are stored or shown; any other parameter is bounded by
// maxAuthorizeParam. The caps leave room for every real client: state and
// nonce are opaque values of a few dozen bytes in practice.
var authorizeParamCaps = map[string]int{
	"state": 2048, "nonce": 2048, "login_hint": 256, "ui_locales": 64, "scope": 1024,
	"redirect_uri": 2048, "client_id": 256, "code_challenge": 128, "code_challenge_method": 16,
	"response_type": 64, "response_mode": 32, "prompt": 64, "max_age": 16, "id_token_hint": 8192,
}

const maxAuthorizeParam = 2048

// oversizedParameter names the first parameter over its cap, or "".
func oversizedParameter(form url.Values) string {
	for name, values := range form {
		limit, known := authorizeParamCaps[name]
		if !known {
			limit = maxAuthorizeParam
		}
		if len(values) > 1 && known {
			return "the parameter " + name + " is given more than once"
		}
		for _, v := range values {
			if len(v) > limit {
				if !known {
					return "a parameter is longer than " + strconv.Itoa(limit) + " bytes"
				}
				return "the parameter " + name + " is longer than " + strconv.Itoa(limit) + " bytes"
			}
		}
	}
	return ""
}
