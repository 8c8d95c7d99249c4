package web

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/mxidp/mxidp/provider"
	"github.com/mxidp/mxidp/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// RP-initiated logout and the logout confirmation page.
//
// Ending a session revokes its tokens and logs its Matrix devices out over
// the back-channel, which loses encrypted history that is not backed up;
// so another site must not be able to make a browser do it. A logout goes
// through at once only when its id_token_hint names this browser's own
// session (its sub and sid), which only a client that received an ID
// token for that session can show; everything else asks the user first
// (OIDC RP-Initiated Logout 1.0 §2 and §6). The session cookie is cleared
// only after the session really ended.

// logoutPath receives the logout confirmation form.
const logoutPath = "/logout"

// endSessionParams are the parameters of an end_session request that are
// carried through the confirmation page to the library's redirect.
var endSessionParams = []string{"id_token_hint", "post_logout_redirect_uri", "state", "client_id", "ui_locales", "logout_hint"}

// endSession handles RP-initiated logout (GET or POST).
func (h *openIDRoutes) endSession(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		messagePage(w, h.page(r, ""), http.StatusBadRequest, "error.form.title", "error.form.text")
		return
	}
	s, err := h.Login.Session(r.Context(), h.sessionCookie(r))
	if err != nil {
		// Nothing of this browser's to end: the library checks the
		// request and sends the user where the client asked.
		if r.Form.Get("id_token_hint") == "" && r.Method == http.MethodGet && r.Form.Get("client_id") == "" {
			messagePage(w, h.page(r, r.Form.Get("ui_locales")), http.StatusOK, "logout.done.title", "logout.done.text")
			return
		}
		h.OP.ServeHTTP(w, r)
		return
	}
	if !h.hintNames(r, s) {
		h.showLogoutConfirmation(w, r, s)
		return
	}
	h.OP.ServeHTTP(&clearOnRedirect{ResponseWriter: w, h: h}, r.WithContext(provider.WithBrowserSession(r.Context(), s.ID)))
}

// hintNames reports whether the request's id_token_hint is an ID token of
// mxidp's (expired or not) for this browser's session s.
func (h *openIDRoutes) hintNames(r *http.Request, s storage.Session) bool {
	hint := r.Form.Get("id_token_hint")
	if hint == "" {
		return false
	}
	ctx := op.ContextWithIssuer(r.Context(), h.Issuer)
	claims, err := op.VerifyIDTokenHint[*oidc.IDTokenClaims](ctx, hint, h.OP.IDTokenHintVerifier(ctx))
	if err != nil && !errors.As(err, &op.IDTokenHintExpiredError{}) {
		return false
	}
	return claims != nil && claims.Subject == s.UserID && claims.SessionID == s.ID
}

// clearOnRedirect clears the session cookie when the library answers an
// end_session request with its redirect, which it sends only after the
// session ended.
type clearOnRedirect struct {
	http.ResponseWriter
	h *openIDRoutes
}

func (c *clearOnRedirect) WriteHeader(status int) {
	if status == http.StatusFound || status == http.StatusSeeOther {
		c.h.forgetSession(c.ResponseWriter)
	}
	c.ResponseWriter.WriteHeader(status)
}

type logoutForm struct {
	page
	Action, CSRF, Username string
	Carry                  []hiddenField // the end_session parameters, for after the logout
}

type hiddenField struct{ Name, Value string }

func (h *openIDRoutes) showLogoutConfirmation(w http.ResponseWriter, r *http.Request, s storage.Session) {
	u, err := h.Login.UserByID(r.Context(), s.UserID)
	if err != nil {
		h.internalError(w, r, "load user", err)
		return
	}
	p := h.page(r, r.Form.Get("ui_locales"))
	p.Title = p.T("logout.confirm.title")
	f := logoutForm{page: p, Action: h.Issuer + logoutPath, CSRF: h.logoutToken(s), Username: u.Username}
	for _, name := range endSessionParams {
		if v := r.Form.Get(name); v != "" {
			f.Carry = append(f.Carry, hiddenField{name, v})
		}
	}
	render(w, http.StatusOK, "logout.html", f)
}

// logoutToken is the CSRF token of the logout form: bound to the session
// it ends, which no other site knows.
func (h *openIDRoutes) logoutToken(s storage.Session) string {
	return h.formMAC("logout form", s.ID)
}

// logoutSubmit ends the browser's session after the user confirmed, then
// sends the user where the client asked, if the library accepts that
// redirect, or to mxidp's logged-out page.
func (h *openIDRoutes) logoutSubmit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		messagePage(w, h.page(r, ""), http.StatusBadRequest, "error.form.title", "error.form.text")
		return
	}
	s, err := h.Login.Session(r.Context(), h.sessionCookie(r))
	if err == nil && !hmacEqual(r.PostForm.Get("csrf"), h.logoutToken(s)) {
		messagePage(w, h.page(r, ""), http.StatusForbidden, "error.form.title", "error.csrf.text")
		return
	}
	if err == nil {
		if err := h.Storage.EndBrowserSession(r.Context(), s.ID); err != nil {
			h.internalError(w, r, "end session", err)
			return
		}
	}
	h.forgetSession(w)
	carried := url.Values{}
	for _, name := range endSessionParams {
		if v := r.PostForm.Get(name); v != "" {
			carried.Set(name, v)
		}
	}
	if carried.Get("post_logout_redirect_uri") == "" {
		http.Redirect(w, r, h.Issuer+provider.LoggedOutPath, http.StatusSeeOther)
		return
	}
	// The library validates the redirect against the client's list; the
	// session is gone already, so it ends nothing more.
	next, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, h.Issuer+"/end_session?"+carried.Encode(), nil)
	cw := &redirectOnly{ResponseWriter: w}
	h.OP.ServeHTTP(cw, next)
	if cw.refused {
		http.Redirect(w, r, h.Issuer+provider.LoggedOutPath, http.StatusSeeOther)
	}
}

// redirectOnly passes a redirect through and holds back anything else.
type redirectOnly struct {
	http.ResponseWriter
	refused bool
}

func (c *redirectOnly) WriteHeader(status int) {
	if status != http.StatusFound && status != http.StatusSeeOther {
		c.refused = true
		return
	}
	c.ResponseWriter.WriteHeader(status)
}

func (c *redirectOnly) Write(b []byte) (int, error) {
	if c.refused {
		return len(b), nil
	}
	return c.ResponseWriter.Write(b)
}

func (h *openIDRoutes) forgetSession(w http.ResponseWriter) {
	c := h.cookie(provider.SessionCookie, "", http.SameSiteLaxMode)
	c.MaxAge = -1
	http.SetCookie(w, c)
}

func (h *openIDRoutes) loggedOut(w http.ResponseWriter, r *http.Request) {
	messagePage(w, h.page(r, ""), http.StatusOK, "logout.done.title", "logout.done.text")
}
