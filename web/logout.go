package web

import (
	"net/http"

	"github.com/mxidp/mxidp/provider"
	"github.com/mxidp/mxidp/storage"
)

// RP-initiated logout and the logout confirmation page.

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
