package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/mxidp/mxidp/provider"
	"github.com/mxidp/mxidp/storage"
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

// csrfCookie holds the double-submit token of the login form.
const csrfCookie = "mxidp_csrf"

type loginForm struct {
	page
	Action, ID, CSRF, Username, ClientName string
	Error                                  string // a message ID
	Remember                               bool
}

// loginPage shows the login form, or answers at once from the browser's
// session (single sign-on), or tells the client login_required for
// prompt=none without a usable session.
func (h *openIDRoutes) loginPage(w http.ResponseWriter, r *http.Request) {
	a, ok := h.authRequest(w, r, r.URL.Query().Get("id"))
	if !ok {
		return
	}
	if sess, err := h.Login.Session(r.Context(), h.sessionCookie(r)); err == nil && h.Login.SatisfiedBy(a, sess) {
		h.complete(w, r, a, sess)
		return
	}
	for _, p := range a.Prompt {
		if p == oidc.PromptNone {
			op.AuthRequestError(w, r, provider.AuthRequest(a), oidc.ErrLoginRequired(), h.OP)
			return
		}
	}
	h.showForm(w, r, a, http.StatusOK, a.LoginHint, "", false)
}

func (h *openIDRoutes) showForm(w http.ResponseWriter, r *http.Request, a storage.AuthRequest, status int, username, problem string, remember bool) {
	p := h.page(r, a.UILocales)
	p.Title = p.T("login.title")
	form := loginForm{page: p, Action: h.Issuer + provider.LoginPath, ID: a.ID, CSRF: h.csrfToken(w, r),
		Username: username, ClientName: h.clientName(r, a.ClientID), Error: problem, Remember: remember}
	renderWithFormTarget(w, status, "login.html", form, origin(a.RedirectURI))
}

// clientName is what users are shown for a client: its name, else its ID.
func (h *openIDRoutes) clientName(r *http.Request, id string) string {
	c, err := h.Storage.Client(r.Context(), id)
	if err != nil {
		return id
	}
	return displayName(c)
}

func displayName(c storage.Client) string {
	if c.Name != "" {
		return c.Name
	}
	return c.ID
}

func origin(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// postedForm reads a form about a pending authorization request (the
// login and consent forms): size-capped, its request still pending, its
// CSRF token matching the browser's. Otherwise the user gets a page saying
// what went wrong and false.
func (h *openIDRoutes) postedForm(w http.ResponseWriter, r *http.Request) (storage.AuthRequest, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		messagePage(w, h.page(r, ""), http.StatusBadRequest, "error.form.title", "error.form.text")
		return storage.AuthRequest{}, false
	}
	a, ok := h.authRequest(w, r, r.PostForm.Get("id"))
	if !ok {
		return a, false
	}
	if !h.csrfValid(r) {
		messagePage(w, h.page(r, a.UILocales), http.StatusForbidden, "error.form.title", "error.csrf.text")
		return storage.AuthRequest{}, false
	}
	return a, true
}

// loginSubmit checks the password and completes the request.
func (h *openIDRoutes) loginSubmit(w http.ResponseWriter, r *http.Request) {
	a, ok := h.postedForm(w, r)
	if !ok {
		return
	}
	username := r.PostForm.Get("username")
	remember := r.PostForm.Get("remember") != ""
	u, err := h.Login.CheckPassword(r.Context(), provider.Attempt{Login: username, Password: r.PostForm.Get("password"),
		Network: clientAddr(r, h.TrustedProxies), Door: "login page", ClientID: a.ClientID})
	var throttled *provider.ThrottledError
	if errors.As(err, &throttled) {
		w.Header().Set("Retry-After", strconv.Itoa(int(throttled.RetryAfter.Seconds())+1))
		h.showForm(w, r, a, http.StatusTooManyRequests, username, "login.throttled", remember)
		return
	}
	if errors.Is(err, provider.ErrBadCredentials) {
		// One message for unknown users and wrong passwords; the username
		// stays, the password does not.
		h.showForm(w, r, a, http.StatusUnauthorized, username, "login.failed", remember)
		return
	}
	if err != nil {
		h.internalError(w, r, "check password", err)
		return
	}
	var current *storage.Session
	if s, err := h.Login.Session(r.Context(), h.sessionCookie(r)); err == nil {
		current = &s
	}
	sess, cookie, err := h.Login.StartSession(r.Context(), current, u)
	if err != nil {
		h.internalError(w, r, "start session", err)
		return
	}
	if cookie != "" {
		c := &http.Cookie{Name: provider.SessionCookie, Value: cookie, Path: h.cookiePath,
			HttpOnly: true, Secure: h.secureCookies, SameSite: http.SameSiteLaxMode}
		if remember {
			// "Keep me signed in": the cookie outlives the browser, as long
			// as the session; otherwise it ends when the browser closes.
			c.Expires = sess.ExpiresAt
		}
		http.SetCookie(w, c)
	}
	h.complete(w, r, a, sess)
}

// consentPath receives the consent form.
const consentPath = "/consent"

// complete finishes a login: it asks for consent where needed, then marks
// the request authenticated and sends the browser to the library's
// callback, which issues the code.
func (h *openIDRoutes) complete(w http.ResponseWriter, r *http.Request, a storage.AuthRequest, s storage.Session) {
	client, err := h.Storage.Client(r.Context(), a.ClientID)
	if err != nil {
		h.internalError(w, r, "load client", err)
		return
	}
	need, err := h.Login.NeedsConsent(r.Context(), a, client, s.UserID)
	if err != nil {
		h.internalError(w, r, "check consent", err)
		return
	}
	if need {
		if slices.Contains(a.Prompt, oidc.PromptNone) {
			// OIDC Core §3.1.2.6; the library has no constructor for it.
			op.AuthRequestError(w, r, provider.AuthRequest(a), &oidc.Error{ErrorType: "consent_required"}, h.OP)
			return
		}
		h.showConsent(w, r, a, client, s)
		return
	}
	h.finish(w, r, a, s)
}

func (h *openIDRoutes) finish(w http.ResponseWriter, r *http.Request, a storage.AuthRequest, s storage.Session) {
	if err := h.Login.Complete(r.Context(), a.ID, s); err != nil {
		h.internalError(w, r, "complete auth request", err)
		return
	}
	http.Redirect(w, r, h.Issuer+"/authorize/callback?id="+url.QueryEscape(a.ID), http.StatusFound)
}

type consentForm struct {
	page
	Action, ID, CSRF, ClientName, Username string
	Scopes                                 []string // message IDs
}

// showConsent asks the user whether the client may have what it asks for.
func (h *openIDRoutes) showConsent(w http.ResponseWriter, r *http.Request, a storage.AuthRequest, c storage.Client, s storage.Session) {
	u, err := h.Login.UserByID(r.Context(), s.UserID)
	if err != nil {
		h.internalError(w, r, "load user", err)
		return
	}
	p := h.page(r, a.UILocales)
	p.Title = p.T("consent.title")
	form := consentForm{page: p, Action: h.Issuer + consentPath, ID: a.ID, CSRF: h.csrfToken(w, r), ClientName: displayName(c), Username: u.Username}
	for _, scope := range a.Scopes {
		if _, known := catalogues["en"]["consent.scope."+scope]; known {
			form.Scopes = append(form.Scopes, "consent.scope."+scope)
		}
	}
	renderWithFormTarget(w, http.StatusOK, "consent.html", form, origin(a.RedirectURI))
}

// consentSubmit records the user's decision: allow (remembered when asked)
// completes the login, deny sends access_denied to the client.
func (h *openIDRoutes) consentSubmit(w http.ResponseWriter, r *http.Request) {
	a, ok := h.postedForm(w, r)
	if !ok {
		return
	}
	// Only the browser that logged in may decide, through its session.
	s, err := h.Login.Session(r.Context(), h.sessionCookie(r))
	if err != nil {
		messagePage(w, h.page(r, a.UILocales), http.StatusNotFound, "error.expired.title", "error.expired.text")
		return
	}
	if r.PostForm.Get("decision") != "allow" {
		op.AuthRequestError(w, r, provider.AuthRequest(a), oidc.ErrAccessDenied().WithDescription("the user did not allow access"), h.OP)
		return
	}
	if r.PostForm.Get("remember") != "" {
		if err := h.Login.Store.SaveConsent(r.Context(), s.UserID, a.ClientID, a.Scopes); err != nil {
			h.internalError(w, r, "save consent", err)
			return
		}
	}
	h.finish(w, r, a, s)
}

// authRequest loads a pending request or shows the user why it is gone.
func (h *openIDRoutes) authRequest(w http.ResponseWriter, r *http.Request, id string) (storage.AuthRequest, bool) {
	a, err := h.Login.Store.AuthRequestByID(r.Context(), id)
	if err == nil && a.Consumed {
		err = storage.ErrNotFound
	}
	switch {
	case errors.Is(err, storage.ErrNotFound) || id == "":
		messagePage(w, h.page(r, ""), http.StatusNotFound, "error.expired.title", "error.expired.text")
		return storage.AuthRequest{}, false
	case err != nil:
		h.internalError(w, r, "load auth request", err)
		return storage.AuthRequest{}, false
	}
	return a, true
}

func (h *openIDRoutes) internalError(w http.ResponseWriter, r *http.Request, what string, err error) {
	h.Login.Logger.Error(what, "err", err, "request_id", w.Header().Get(requestIDHeader))
	messagePage(w, h.page(r, ""), http.StatusServiceUnavailable, "error.unavailable.title", "error.unavailable.text")
}

func (h *openIDRoutes) sessionCookie(r *http.Request) string {
	c, err := r.Cookie(provider.SessionCookie)
	if err != nil {
		return ""
	}
	return c.Value
}

// csrfToken returns the browser's double-submit token, setting it first
// when the browser has none.
func (h *openIDRoutes) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) >= 32 {
		return c.Value
	}
	b := make([]byte, 32)
	rand.Read(b)
	token := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: token, Path: h.cookiePath,
		HttpOnly: true, Secure: h.secureCookies, SameSite: http.SameSiteStrictMode})
	return token
}

// csrfValid requires the form's token to equal the cookie's: another site
// can make a browser send the cookie but cannot read it to fill the form.
func (h *openIDRoutes) csrfValid(r *http.Request) bool {
	c, err := r.Cookie(csrfCookie)
	form := r.PostForm.Get("csrf")
	return err == nil && len(c.Value) >= 32 && subtle.ConstantTimeCompare([]byte(c.Value), []byte(form)) == 1
}

// logoutPath receives the logout confirmation form.
const logoutPath = "/logout"

// endSession handles RP-initiated logout. With an id_token_hint the
// library checks the request and the post-logout redirect, and the
// browser's session ends at once. Without one, nothing says which client
// asked, so the user confirms on a page of mxidp's own (OIDC RP-Initiated
// Logout §2: the OP should ask the user).
func (h *openIDRoutes) endSession(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	s, err := h.Login.Session(ctx, h.sessionCookie(r))
	hasSession := err == nil
	if r.URL.Query().Get("id_token_hint") == "" && r.Method == http.MethodGet {
		if !hasSession {
			messagePage(w, h.page(r, r.URL.Query().Get("ui_locales")), http.StatusOK, "logout.done.title", "logout.done.text")
			return
		}
		h.showLogoutConfirmation(w, r, s)
		return
	}
	if hasSession {
		ctx = provider.WithBrowserSession(ctx, s.ID)
	}
	h.forgetSession(w)
	h.OP.ServeHTTP(w, r.WithContext(ctx))
}

type logoutForm struct {
	page
	Action, CSRF, Username string
}

func (h *openIDRoutes) showLogoutConfirmation(w http.ResponseWriter, r *http.Request, s storage.Session) {
	u, err := h.Login.UserByID(r.Context(), s.UserID)
	if err != nil {
		h.internalError(w, r, "load user", err)
		return
	}
	p := h.page(r, r.URL.Query().Get("ui_locales"))
	p.Title = p.T("logout.confirm.title")
	render(w, http.StatusOK, "logout.html", logoutForm{page: p, Action: h.Issuer + logoutPath, CSRF: h.csrfToken(w, r), Username: u.Username})
}

// logoutSubmit ends the browser's session after the user confirmed.
func (h *openIDRoutes) logoutSubmit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil || !h.csrfValid(r) {
		messagePage(w, h.page(r, ""), http.StatusForbidden, "error.form.title", "error.csrf.text")
		return
	}
	if s, err := h.Login.Session(r.Context(), h.sessionCookie(r)); err == nil {
		if err := h.Storage.EndBrowserSession(r.Context(), s.ID); err != nil {
			h.internalError(w, r, "end session", err)
			return
		}
	}
	h.forgetSession(w)
	http.Redirect(w, r, h.Issuer+provider.LoggedOutPath, http.StatusSeeOther)
}

func (h *openIDRoutes) forgetSession(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: provider.SessionCookie, Value: "", Path: h.cookiePath, MaxAge: -1,
		HttpOnly: true, Secure: h.secureCookies, SameSite: http.SameSiteLaxMode})
}

func (h *openIDRoutes) loggedOut(w http.ResponseWriter, r *http.Request) {
	messagePage(w, h.page(r, ""), http.StatusOK, "logout.done.title", "logout.done.text")
}
