package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/mxidp/mxidp/provider"
	"github.com/mxidp/mxidp/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// The login and consent pages of an authorization request, and the
// binding that keeps a request to the browser that started it.
//
// The attack this file is built against: someone who starts a login at a
// client (Synapse's SSO, say) in their own browser and gets a signed-in
// victim to open the login link must not receive a code for the victim.
// So /authorize sets a browser-binding cookie and stores its hash with the
// request; the login page, the consent page and the callback serve only
// the browser that holds it; the callback also wants the session that
// completed the request; and a request yields one code, ever. The forms'
// CSRF tokens are an HMAC over the request and that cookie, so a value an
// attacker plants in a cookie cannot be paired with a form of their own.

// bindingCookie names the browser-binding cookie (see cookieName).
const bindingCookie = "mxidp_browser"

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
	if !ok || !h.sameBrowser(w, r, a) {
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
	form := loginForm{page: p, Action: h.Issuer + provider.LoginPath, ID: a.ID, CSRF: h.requestToken(r, a, loginFormName, ""),
		Username: username, ClientName: h.clientName(r, a.ClientID), Error: problem, Remember: remember}
	renderWithCSP(w, status, "login.html", form, clientBoundCSP)
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
	if host := provider.ClientHost(c); host != "" {
		return host
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
// login and consent forms): size-capped, its request still pending and
// started in this browser, its CSRF token the one made for this form, this
// request, this browser and (consent) the session it was shown to.
// Otherwise the user gets a page saying what went wrong and false.
func (h *openIDRoutes) postedForm(w http.ResponseWriter, r *http.Request, form, sessionID string) (storage.AuthRequest, bool) {
	if !h.readForm(w, r) {
		return storage.AuthRequest{}, false
	}
	a, ok := h.authRequest(w, r, r.PostForm.Get("id"))
	if !ok || !h.sameBrowser(w, r, a) {
		return storage.AuthRequest{}, false
	}
	if !h.requestTokenValid(r, a, form, sessionID) {
		messagePage(w, h.page(r, a.UILocales), http.StatusForbidden, "error.form.title", "error.csrf.text")
		return storage.AuthRequest{}, false
	}
	return a, true
}

// loginSubmit checks the password and completes the request.
func (h *openIDRoutes) loginSubmit(w http.ResponseWriter, r *http.Request) {
	a, ok := h.postedForm(w, r, loginFormName, "")
	if !ok {
		return
	}
	username := r.PostForm.Get("username")
	remember := r.PostForm.Get("remember") != ""
	sess, ok := h.passwordSignIn(w, r, "login page", a.ClientID, func(status int, problem string) {
		h.showForm(w, r, a, status, username, problem, remember)
	})
	if ok {
		h.complete(w, r, a, sess)
	}
}

// passwordSignIn is every sign-in form's password step: it checks the
// posted username and password through provider.Login.CheckPassword
// (throttled and audited, as at every door) and, when they are right,
// starts a new session for this browser with a new cookie (kept past the
// browser's end with "remember"). A refusal shows the form again through
// again, with its status and message ID; an error shows the error page.
// door and clientID are for the audit log.
func (h *openIDRoutes) passwordSignIn(w http.ResponseWriter, r *http.Request, door, clientID string,
	again func(status int, problem string)) (storage.Session, bool) {
	u, err := h.Login.CheckPassword(r.Context(), provider.Attempt{Login: r.PostForm.Get("username"), Password: r.PostForm.Get("password"),
		Network: clientAddr(r, h.TrustedProxies), Door: door, ClientID: clientID})
	var throttled *provider.ThrottledError
	if errors.As(err, &throttled) {
		w.Header().Set("Retry-After", strconv.Itoa(int(throttled.RetryAfter.Seconds())+1))
		again(http.StatusTooManyRequests, "login.throttled")
		return storage.Session{}, false
	}
	if errors.Is(err, provider.ErrBadCredentials) {
		// One message for unknown users and wrong passwords; the username
		// stays, the password does not.
		again(http.StatusUnauthorized, "login.failed")
		return storage.Session{}, false
	}
	if err != nil {
		h.internalError(w, r, "check password", err)
		return storage.Session{}, false
	}
	var current *storage.Session
	if s, err := h.Login.Session(r.Context(), h.sessionCookie(r)); err == nil {
		current = &s
	}
	sess, cookie, err := h.Login.StartSession(r.Context(), current, u)
	if err != nil {
		h.internalError(w, r, "start session", err)
		return storage.Session{}, false
	}
	c := h.cookie(provider.SessionCookie, cookie, http.SameSiteLaxMode)
	if r.PostForm.Get("remember") != "" {
		// "Keep me signed in": the cookie outlives the browser, as long
		// as the session; otherwise it ends when the browser closes.
		c.Expires = sess.ExpiresAt
	}
	http.SetCookie(w, c)
	return sess, true
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
	// A client that registered itself is asked about every time: anyone
	// can register one under any name, and any app on the device can
	// answer a native client's loopback redirect (RFC 8252 §8.6: no
	// authorization without the user where the client's identity cannot
	// be assured).
	need = need || client.Dynamic
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
	Scopes                                 []consentScope
	// Remember offers to remember the decision; never for a client that
	// registered itself.
	Remember bool
	// What a client that registered itself said about itself: the host
	// of its client_uri, shown beside the name so that a look-alike name
	// cannot hide where the client comes from, and its logo, terms and
	// policy (https, checked at registration).
	Dynamic                             bool
	ClientHost, LogoURI, TOSURI, Policy string
}

// consentScope is one line of what the client asks for: a message ID and,
// for the Matrix device scope, the device ID it names.
type consentScope struct{ ID, Arg string }

// scopeLine returns the line the consent page shows for a scope, or false
// for a scope it says nothing about.
func scopeLine(scope string) (consentScope, bool) {
	switch {
	case scope == provider.ScopeMatrixAPI || scope == provider.ScopeMatrixAPIUnstable:
		return consentScope{ID: "consent.matrix.api"}, true
	case strings.HasPrefix(scope, provider.ScopeMatrixDevice):
		return consentScope{ID: "consent.matrix.device", Arg: strings.TrimPrefix(scope, provider.ScopeMatrixDevice)}, true
	case strings.HasPrefix(scope, provider.ScopeMatrixDeviceUnstable):
		return consentScope{ID: "consent.matrix.device", Arg: strings.TrimPrefix(scope, provider.ScopeMatrixDeviceUnstable)}, true
	}
	if _, known := catalogues["en"]["consent.scope."+scope]; known {
		return consentScope{ID: "consent.scope." + scope}, true
	}
	return consentScope{}, false
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
	form := consentForm{page: p, Action: h.Issuer + consentPath, ID: a.ID, CSRF: h.requestToken(r, a, consentFormName, s.ID),
		ClientName: displayName(c), Username: u.Username, Remember: !c.Dynamic}
	for _, scope := range a.Scopes {
		if line, ok := scopeLine(scope); ok && !slices.Contains(form.Scopes, line) {
			form.Scopes = append(form.Scopes, line)
		}
	}
	csp := clientBoundCSP
	if c.Dynamic {
		form.Dynamic, form.ClientHost = true, provider.ClientHost(c)
		form.TOSURI, form.Policy = c.TOSURI, c.PolicyURI
		if logo := httpsOrigin(c.LogoURI); logo != "" {
			// The logo is the client's, on its own host: this page
			// alone may load an image from there.
			form.LogoURI = c.LogoURI
			csp = strings.Replace(csp, "img-src 'self'", "img-src 'self' "+logo, 1)
		}
	}
	renderWithCSP(w, http.StatusOK, "consent.html", form, csp)
}

// httpsOrigin is the origin of an https URL whose host is a plain DNS name
// (as registration admits for logos), for a CSP source; "" otherwise.
func httpsOrigin(uri string) string {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return ""
	}
	for _, c := range u.Host {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == ':') {
			return ""
		}
	}
	return "https://" + u.Host
}

// consentSubmit records the user's decision: allow (remembered when asked)
// completes the login, deny sends access_denied to the client.
func (h *openIDRoutes) consentSubmit(w http.ResponseWriter, r *http.Request) {
	// Only the browser that logged in may decide, through the session
	// the consent page was shown to: the form's token names it, so the
	// login form's token (a request demanding a fresh login, prompt=login
	// or max_age) does not complete the request here with an older
	// session, and neither does a session that changed meanwhile.
	s, err := h.Login.Session(r.Context(), h.sessionCookie(r))
	a, ok := h.postedForm(w, r, consentFormName, s.ID)
	if !ok {
		return
	}
	if err != nil {
		messagePage(w, h.page(r, a.UILocales), http.StatusNotFound, "error.expired.title", "error.expired.text")
		return
	}
	if r.PostForm.Get("decision") != "allow" {
		op.AuthRequestError(w, r, provider.AuthRequest(a), oidc.ErrAccessDenied().WithDescription("the user did not allow access"), h.OP)
		return
	}
	if r.PostForm.Get("remember") != "" && !h.registeredItself(r, a.ClientID) {
		if err := h.Login.Store.SaveConsent(r.Context(), s.UserID, a.ClientID, a.Scopes); err != nil {
			h.internalError(w, r, "save consent", err)
			return
		}
	}
	h.finish(w, r, a, s)
}

// registeredItself reports whether a client registered itself (whose
// consent is never remembered, see complete); a client that cannot be
// loaded counts as one.
func (h *openIDRoutes) registeredItself(r *http.Request, id string) bool {
	c, err := h.Storage.Client(r.Context(), id)
	return err != nil || c.Dynamic
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
	c, err := r.Cookie(h.cookieName(provider.SessionCookie))
	if err != nil {
		return ""
	}
	return c.Value
}

// cookieName gives mxidp's cookies the __Host- prefix under https: the
// browser then keeps them to this exact host and path "/", and no sibling
// subdomain can set or overwrite them (RFC 6265bis §4.1.3.2).
func (h *openIDRoutes) cookieName(base string) string {
	if h.secureCookies {
		return "__Host-" + base
	}
	return base
}

// cookie is one of mxidp's cookies: HttpOnly, Secure under https, and
// scoped to the issuer's path (to "/" with the __Host- prefix).
func (h *openIDRoutes) cookie(base, value string, sameSite http.SameSite) *http.Cookie {
	path := h.cookiePath
	if h.secureCookies {
		path = "/"
	}
	return &http.Cookie{Name: h.cookieName(base), Value: value, Path: path,
		HttpOnly: true, Secure: h.secureCookies, SameSite: sameSite}
}

// browserBinding returns the browser's binding cookie, setting a new one
// first when the browser has none. It is SameSite=Lax: a client's
// redirect to /authorize is a top-level navigation from another site.
func (h *openIDRoutes) browserBinding(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(h.cookieName(bindingCookie)); err == nil && validSecret(c.Value) {
		return c.Value
	}
	value := provider.NewBrowserBinding()
	http.SetCookie(w, h.cookie(bindingCookie, value, http.SameSiteLaxMode))
	return value
}

// validSecret accepts what provider.NewBrowserBinding makes: 43 base64url
// characters (256 bits).
func validSecret(v string) bool {
	if len(v) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(v)
	return err == nil
}

// boundTo reports whether r comes from the browser that started a.
func (h *openIDRoutes) boundTo(r *http.Request, a storage.AuthRequest) (string, bool) {
	c, err := r.Cookie(h.cookieName(bindingCookie))
	if err != nil || !validSecret(c.Value) || a.BrowserHash == "" {
		return "", false
	}
	got := provider.HashBrowserBinding(c.Value)
	return c.Value, subtle.ConstantTimeCompare([]byte(got), []byte(a.BrowserHash)) == 1
}

// sameBrowser lets a request through only in the browser that started it.
// Anyone else (a victim sent the link of someone else's login) learns what
// happened and is offered to start again at the client; the request stays
// as it was, so it can never be completed for another browser.
func (h *openIDRoutes) sameBrowser(w http.ResponseWriter, r *http.Request, a storage.AuthRequest) bool {
	if _, ok := h.boundTo(r, a); ok {
		return true
	}
	h.Login.Logger.Info("authorization request opened in a browser that did not start it",
		"client_id", a.ClientID, "request_id", w.Header().Get(requestIDHeader))
	p := h.page(r, a.UILocales)
	name := h.clientName(r, a.ClientID)
	p.Title = p.T("error.otherbrowser.title")
	render(w, http.StatusForbidden, "message.html", message{page: p, Text: p.Tf("error.otherbrowser.text", name),
		Link: origin(a.RedirectURI), LinkText: p.Tf("error.otherbrowser.link", name),
		RequestID: w.Header().Get(requestIDHeader), Alert: true})
	return false
}

// formMAC is the HMAC of the instance's form key over a purpose and its
// parts, base64url: the CSRF token of a form.
func (h *openIDRoutes) formMAC(purpose string, parts ...string) string {
	m := hmac.New(sha256.New, h.formKey)
	m.Write([]byte(purpose))
	for _, p := range parts {
		m.Write([]byte{0})
		m.Write([]byte(p))
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// The forms of an authorization request, each with its own CSRF token.
const (
	loginFormName   = "login"
	consentFormName = "consent"
)

// requestToken is the CSRF token of a form of a (loginFormName or
// consentFormName): bound to the request, to this browser's binding cookie
// and, for the consent form, to the session it is shown to (sessionID).
func (h *openIDRoutes) requestToken(r *http.Request, a storage.AuthRequest, form, sessionID string) string {
	binding, _ := h.boundTo(r, a)
	return h.formMAC("authorization request form", a.ID, binding, form, sessionID)
}

func (h *openIDRoutes) requestTokenValid(r *http.Request, a storage.AuthRequest, form, sessionID string) bool {
	binding, ok := h.boundTo(r, a)
	return ok && hmacEqual(r.PostForm.Get("csrf"), h.formMAC("authorization request form", a.ID, binding, form, sessionID))
}

// hmacEqual compares a posted token with the expected one in constant time.
func hmacEqual(posted, want string) bool { return hmac.Equal([]byte(posted), []byte(want)) }

// callback guards the library's callback, which issues the code: only the
// browser that started the request, holding the session that completed
// it, gets a code, and only once. Everything else gets a page, and a
// request that is not completed yet goes back to its login page.
func (h *openIDRoutes) callback(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		// Only redirects lead here; a body could also name another id
		// than the one checked below.
		w.Header().Set("Allow", "GET, HEAD")
		messagePage(w, h.page(r, ""), http.StatusMethodNotAllowed, "error.form.title", "error.form.text")
		return
	}
	id := r.URL.Query().Get("id")
	// The request and the session that completed it, in one statement.
	a, ours, err := h.Login.RequestAndSession(r.Context(), id, h.sessionCookie(r))
	if err == nil && a.Consumed {
		err = storage.ErrNotFound
	}
	switch {
	case errors.Is(err, storage.ErrNotFound) || id == "":
		// Unauthenticated noise as often as a real user's stale tab.
		h.Login.Logger.Info("callback for an unknown or finished authorization request", "request_id", w.Header().Get(requestIDHeader))
		messagePage(w, h.page(r, ""), http.StatusNotFound, "error.expired.title", "error.expired.text")
		return
	case err != nil:
		h.internalError(w, r, "load auth request", err)
		return
	}
	if !h.sameBrowser(w, r, a) {
		return
	}
	if !a.Done {
		http.Redirect(w, r, h.Issuer+provider.LoginPath+"?id="+url.QueryEscape(a.ID), http.StatusFound)
		return
	}
	if !ours {
		h.Login.Logger.Info("callback without the session that completed the request", "client_id", a.ClientID,
			"request_id", w.Header().Get(requestIDHeader))
		messagePage(w, h.page(r, a.UILocales), http.StatusForbidden, "error.expired.title", "error.expired.text")
		return
	}
	if !a.CodeExpiresAt.IsZero() {
		messagePage(w, h.page(r, a.UILocales), http.StatusNotFound, "error.expired.title", "error.expired.text")
		return
	}
	h.OP.ServeHTTP(w, r.WithContext(provider.WithCheckedAuthRequest(r.Context(), a)))
}

// readForm parses a page's form (its size capped by limitBodies, in front
// of every route), or tells the user it could not be read and returns
// false.
func (h *openIDRoutes) readForm(w http.ResponseWriter, r *http.Request) bool {
	if err := r.ParseForm(); err != nil {
		messagePage(w, h.page(r, ""), http.StatusBadRequest, "error.form.title", "error.form.text")
		return false
	}
	return true
}
