package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/mxidp/mxidp/provider"
	"github.com/mxidp/mxidp/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// The login and consent pages of an authorization request, and the CSRF
// protection of their forms.

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
