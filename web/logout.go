package web

import (
	"errors"
	"net/http"
	"net/url"
	"slices"

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
// carried through the confirmation page to the redirect after it.
var endSessionParams = []string{"id_token_hint", "post_logout_redirect_uri", "state", "client_id", "ui_locales", "logout_hint"}

// endSession handles RP-initiated logout (GET or POST). mxidp answers it
// itself rather than through the library, so that every answer is one of
// three: the confirmation page, a redirect to a post_logout_redirect_uri
// the client registered, or mxidp's logged-out page. An unknown client, a
// bad hint and an unregistered redirect thus look alike and tell nobody
// which client IDs exist.
func (h *openIDRoutes) endSession(w http.ResponseWriter, r *http.Request) {
	if !h.readForm(w, r) {
		return
	}
	s, err := h.Login.Session(r.Context(), h.sessionCookie(r))
	if err != nil {
		// Nothing of this browser's to end.
		if r.Form.Get("post_logout_redirect_uri") == "" {
			messagePage(w, h.page(r, r.Form.Get("ui_locales")), http.StatusOK, "logout.done.title", "logout.done.text")
			return
		}
		h.afterLogout(w, r, r.Form, h.hint(r, r.Form))
		return
	}
	claims := h.hint(r, r.Form)
	if claims == nil || claims.Subject != s.UserID || claims.SessionID != s.ID {
		h.showLogoutConfirmation(w, r, s)
		return
	}
	h.endAndLeave(w, r, s, r.Form, claims)
}

// hint returns the claims of the request's id_token_hint when it is an ID
// token of mxidp's, expired or not; else nil.
func (h *openIDRoutes) hint(r *http.Request, form url.Values) *oidc.IDTokenClaims {
	raw := form.Get("id_token_hint")
	if raw == "" {
		return nil
	}
	ctx := op.ContextWithIssuer(r.Context(), h.Issuer)
	claims, err := op.VerifyIDTokenHint[*oidc.IDTokenClaims](ctx, raw, h.OP.IDTokenHintVerifier(ctx))
	if err != nil && !errors.As(err, &op.IDTokenHintExpiredError{}) {
		return nil
	}
	return claims
}

// endAndLeave ends the browser's session s (revoking its tokens and
// notifying its clients), clears the cookie once that succeeded, and sends
// the browser on; claims are the form's verified hint, or nil.
func (h *openIDRoutes) endAndLeave(w http.ResponseWriter, r *http.Request, s storage.Session, form url.Values, claims *oidc.IDTokenClaims) {
	if err := h.Storage.EndBrowserSession(r.Context(), s.ID); err != nil {
		h.internalError(w, r, "end session", err)
		return
	}
	h.forgetSession(w)
	h.afterLogout(w, r, form, claims)
}

// afterLogout redirects to the post_logout_redirect_uri when the client
// named by the hint (its azp) or by client_id registered it exactly, with
// the state (OIDC RP-Initiated Logout 1.0 §2, §3); anything else, whatever
// was wrong with it, goes to the logged-out page. claims are the form's
// hint as h.hint verified it (nil when there is none or it is not valid).
func (h *openIDRoutes) afterLogout(w http.ResponseWriter, r *http.Request, form url.Values, claims *oidc.IDTokenClaims) {
	target := h.Issuer + provider.LoggedOutPath
	if uri := form.Get("post_logout_redirect_uri"); uri != "" {
		clientID := form.Get("client_id")
		if claims != nil {
			if clientID != "" && clientID != claims.AuthorizedParty {
				clientID = "" // the hint and client_id disagree: trust neither
			} else {
				clientID = claims.AuthorizedParty
			}
		} else if form.Get("id_token_hint") != "" {
			clientID = ""
		}
		if c, err := h.Storage.Client(r.Context(), clientID); clientID != "" && err == nil && slices.Contains(c.PostLogoutRedirectURIs, uri) {
			target = uri
			if state := form.Get("state"); state != "" {
				if u, err := url.Parse(uri); err == nil {
					q := u.Query()
					q.Set("state", state)
					u.RawQuery = q.Encode()
					target = u.String()
				}
			}
		}
	}
	http.Redirect(w, r, target, http.StatusFound)
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
	renderWithCSP(w, http.StatusOK, "logout.html", f, clientBoundCSP)
}

// logoutToken is the CSRF token of the logout form: bound to the session
// it ends, which no other site knows.
func (h *openIDRoutes) logoutToken(s storage.Session) string {
	return h.formMAC("logout form", s.ID)
}

// logoutSubmit ends the browser's session after the user confirmed, then
// sends the user where the client asked, if it registered that address,
// or to mxidp's logged-out page.
func (h *openIDRoutes) logoutSubmit(w http.ResponseWriter, r *http.Request) {
	if !h.readForm(w, r) {
		return
	}
	s, err := h.Login.Session(r.Context(), h.sessionCookie(r))
	if err != nil {
		h.forgetSession(w)
		h.afterLogout(w, r, r.PostForm, h.hint(r, r.PostForm))
		return
	}
	if !hmacEqual(r.PostForm.Get("csrf"), h.logoutToken(s)) {
		messagePage(w, h.page(r, ""), http.StatusForbidden, "error.form.title", "error.csrf.text")
		return
	}
	h.endAndLeave(w, r, s, r.PostForm, h.hint(r, r.PostForm))
}

func (h *openIDRoutes) forgetSession(w http.ResponseWriter) {
	c := h.cookie(provider.SessionCookie, "", http.SameSiteLaxMode)
	c.MaxAge = -1
	http.SetCookie(w, c)
}

func (h *openIDRoutes) loggedOut(w http.ResponseWriter, r *http.Request) {
	messagePage(w, h.page(r, ""), http.StatusOK, "logout.done.title", "logout.done.text")
}
