package web

import (
	"net/http"
	"net/netip"
	"net/url"
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
}

// openIDRoutes mounts the OpenID provider: discovery and userinfo served
// here from prepared bytes and mxidp's own checks, the login pages, and
// everything else by zitadel/oidc.
type openIDRoutes struct {
	OpenID
	secureCookies bool
	cookiePath    string
}

func mountOpenID(r chi.Router, o OpenID) {
	u, _ := url.Parse(o.Issuer) // validated at start-up
	path := u.Path
	if path == "" {
		path = "/"
	}
	h := &openIDRoutes{OpenID: o, secureCookies: u.Scheme == "https", cookiePath: path}
	r.Get(oidc.DiscoveryEndpoint, h.discovery)
	r.Get("/userinfo", h.userinfo)
	r.Post("/userinfo", h.userinfo)
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
	r.HandleFunc("/authorize", h.authorize)
	// Its callback, token, introspection and revocation.
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

// userinfo answers OIDC Core §5.3 for a bearer access token. A missing,
// invalid, expired or revoked token gets 401 with WWW-Authenticate, never
// a 200 (synapse-oidc.md U2).
func (h *openIDRoutes) userinfo(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mxidp"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_request", "error_description": "a bearer access token is required"})
		return
	}
	info := new(oidc.UserInfo)
	plain, err := h.OP.Crypto().Decrypt(token)
	if err == nil {
		id, subject, found := strings.Cut(plain, ":")
		if !found {
			err = provider.ErrInvalidToken
		} else {
			err = h.Storage.SetUserinfoFromToken(r.Context(), info, id, subject, "")
		}
	}
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mxidp", error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token", "error_description": "the access token is invalid, expired or revoked"})
		return
	}
	writeJSON(w, http.StatusOK, info)
}

// page starts the data of a page in the language the request asks for.
func (h *openIDRoutes) page(r *http.Request, uiLocales string) page {
	return page{locale: pickLocale(uiLocales, r), Static: h.Issuer + StaticPath, Brand: h.Branding}
}

// authorize passes the request to the library. When the library cannot
// send the browser back to the client (unknown client, unregistered
// redirect URI: never redirected, synapse-oidc.md A3), it answers with a
// bare text; the user gets mxidp's error page instead, with that text as
// the detail for the administrators.
func (h *openIDRoutes) authorize(w http.ResponseWriter, r *http.Request) {
	cw := &plainErrorCatcher{ResponseWriter: w}
	h.OP.ServeHTTP(cw, r)
	if cw.caught {
		p := h.page(r, r.FormValue("ui_locales"))
		p.Title = p.T("error.request.title")
		render(w, http.StatusBadRequest, "message.html", message{page: p, Text: p.T("error.request.text"),
			Detail: strings.TrimSpace(cw.body.String()), RequestID: w.Header().Get(requestIDHeader), Alert: true})
	}
}

// plainErrorCatcher holds back a plain-text 4xx answer so that a page can
// replace it; anything else passes through untouched.
type plainErrorCatcher struct {
	http.ResponseWriter
	caught bool
	body   strings.Builder
}

func (c *plainErrorCatcher) WriteHeader(status int) {
	if status >= 400 && status < 500 && strings.HasPrefix(c.Header().Get("Content-Type"), "text/plain") {
		c.caught = true
		c.Header().Del("Content-Type")
		return
	}
	c.ResponseWriter.WriteHeader(status)
}

func (c *plainErrorCatcher) Write(b []byte) (int, error) {
	if c.caught {
		if c.body.Len() < 1024 {
			c.body.Write(b)
		}
		return len(b), nil
	}
	return c.ResponseWriter.Write(b)
}
