package web

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/mxidp/mxidp/provider"
	"github.com/mxidp/mxidp/storage"
)

// m.login.sso of the Matrix login compatibility layer (Matrix
// client-server API, "Client login via SSO"): a client sends the browser
// to /login/sso/redirect?redirectUrl=…, the user signs in at mxidp, and
// the browser goes back to redirectUrl with a one-time loginToken that the
// client exchanges with m.login.token.
//
// The attack this file is built against is the one-click takeover: a
// loginToken is an account, so it must only ever go to the browser that
// started the flow, for the user signed in in that browser, and only to an
// address the user agreed to. So:
//
//   - /login/sso/redirect checks redirectUrl and sends the browser on to
//     mxidp's own page (ssoPath), where its cookies live.
//   - That page binds the pending login to the browser: its state (the
//     redirect URL and an expiry) is a value signed with the form key over
//     the browser-binding cookie, carried in the page's forms. Nothing is
//     stored before the user has signed in, and a state is worth nothing
//     in another browser.
//   - Without a session the page is the sign-in form, whose password step
//     is the login page's own (passwordSignIn). With one, a redirect URL
//     on the operator's allow-list (matrix.sso_client_allowlist) gets its
//     token at once; any other needs the user's confirmation, a POST whose
//     CSRF token is bound to the browser, the session and the state. A GET
//     never issues a token for an address that is not allow-listed.
//   - Each token is issued through provider.IssueLoginToken (hashed at
//     rest, single use, two minutes) and appears only in the Location of
//     the answer, never in a log.

// ssoPath is mxidp's page of m.login.sso, under the issuer.
const ssoPath = "/matrix/sso"

func init() {
	gatedRoutes[ssoPath] = gatePage
}

// maxSSORedirectURL bounds redirectUrl: it travels in the page's forms and
// in the login token's row.
const maxSSORedirectURL = 2048

// The forms of the SSO page (their "do" field), each with its own CSRF
// token.
const (
	ssoSignIn  = "sign_in"
	ssoConfirm = "confirm"
)

// mountSSO routes /login/sso/redirect[/{idpId}] of every API version
// Synapse served it under, and mxidp's page.
func (h *openIDRoutes) mountSSO(r chi.Router) {
	for _, v := range append([]string{"api/v1"}, compatVersions...) {
		r.HandleFunc("/_matrix/client/"+v+"/login/sso/redirect", h.ssoRedirect)
		r.HandleFunc("/_matrix/client/"+v+"/login/sso/redirect/{idpId}", h.ssoRedirect)
	}
	r.HandleFunc(ssoPath, h.ssoPage)
}

// ssoRedirect answers a Matrix client's /login/sso/redirect: a bad
// request gets a Matrix error, a good one goes on to mxidp's page.
func (h *openIDRoutes) ssoRedirect(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		matrixErr(w, http.StatusMethodNotAllowed, "M_UNRECOGNIZED", "/login/sso/redirect takes GET")
		return
	}
	if id := chi.URLParam(r, "idpId"); id != "" && id != provider.CompatIdPID {
		matrixErr(w, http.StatusNotFound, "M_NOT_FOUND", "unknown identity provider; GET /login lists the one offered ("+provider.CompatIdPID+")")
		return
	}
	u, status, errcode, problem := ssoRedirectParam(r.URL.Query())
	if problem != "" {
		matrixErr(w, status, errcode, problem)
		return
	}
	w.Header()["Cache-Control"] = valueNoStore
	http.Redirect(w, r, h.ssoPageURL(u), http.StatusFound)
}

// ssoPageURL is mxidp's page for a redirect URL.
func (h *openIDRoutes) ssoPageURL(u *url.URL) string {
	return h.Issuer + ssoPath + "?" + url.Values{"redirectUrl": {u.String()}}.Encode()
}

// ssoRedirectParam reads the one redirectUrl of a query; otherwise it
// returns the Matrix error to answer.
func ssoRedirectParam(q url.Values) (u *url.URL, status int, errcode, problem string) {
	values := q["redirectUrl"]
	switch {
	case len(values) == 0 || values[0] == "":
		return nil, http.StatusBadRequest, "M_MISSING_PARAM", "redirectUrl is required: the address of the client that receives the loginToken"
	case len(values) > 1:
		return nil, http.StatusBadRequest, "M_INVALID_PARAM", "redirectUrl is given more than once"
	}
	u, problem = parseSSORedirect(values[0])
	if problem != "" {
		return nil, http.StatusBadRequest, "M_INVALID_PARAM", problem
	}
	return u, 0, "", ""
}

// parseSSORedirect checks a client's redirectUrl: at most
// maxSSORedirectURL bytes, absolute, http(s) with a host, or a native
// app's private-use scheme (a reverse domain name, RFC 8252 §7.1), never a
// user name or password in it. Schemes a browser would run or read
// (javascript:, data:, file:, ...) have no dot and so are refused. It
// returns the problem, or "".
func parseSSORedirect(raw string) (*url.URL, string) {
	if len(raw) > maxSSORedirectURL {
		return nil, "redirectUrl is longer than " + strconv.Itoa(maxSSORedirectURL) + " bytes"
	}
	if !utf8.ValidString(raw) {
		return nil, "redirectUrl is not UTF-8"
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() {
		return nil, "redirectUrl must be an absolute URL, like https://app.example.org/"
	}
	switch {
	case u.Scheme == "http" || u.Scheme == "https":
		if u.Hostname() == "" {
			return nil, "redirectUrl must name a host"
		}
	case privateUseScheme(u.Scheme):
	default:
		return nil, "redirectUrl must be an http(s) URL or a native app's private-use scheme (a reverse domain name, like org.example.app:/callback)"
	}
	if u.Opaque != "" {
		return nil, "redirectUrl must be hierarchical: write " + u.Scheme + ":/path"
	}
	if u.User != nil {
		return nil, "redirectUrl must not hold a user name or password"
	}
	for _, c := range u.Host {
		if c >= utf8.RuneSelf {
			return nil, "redirectUrl's host must be ASCII: write an internationalized name in its xn-- form"
		}
	}
	return u, ""
}

// privateUseScheme reports whether scheme is a reverse domain name (at
// least two labels), as RFC 8252 §7.1 asks of a native app's scheme.
func privateUseScheme(scheme string) bool {
	labels := strings.Split(scheme, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" {
			return false
		}
	}
	return true
}

// CheckSSOClientPrefix checks an entry of matrix.sso_client_allowlist: a
// redirect URL as parseSSORedirect admits it, without query or fragment.
// It returns the problem, or "".
func CheckSSOClientPrefix(entry string) string {
	u, problem := parseSSORedirect(entry)
	switch {
	case problem != "":
		return strings.Replace(problem, "redirectUrl", "the entry", 1)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(entry, "#"):
		return "the entry must not have a ?query or #fragment"
	case unsafePath(u.Path):
		return "the entry's path must not have . or .. segments or backslashes"
	}
	return ""
}

// ssoAllowed reports whether a redirect URL is on the allow-list: an entry
// matches a URL of the same scheme and host (port included, case aside)
// whose path is the entry's path or lies below it at a "/" boundary. So
// https://app.example.org admits https://app.example.org/#/home but not
// https://app.example.org.evil.com/, and https://app.example.org/web not
// /webevil. A path with dot segments or backslashes, which browsers
// resolve elsewhere, is never on it.
func ssoAllowed(allowlist []string, u *url.URL) bool {
	if unsafePath(u.Path) {
		return false
	}
	for _, entry := range allowlist {
		e, err := url.Parse(entry)
		if err != nil || e.Scheme != u.Scheme || !strings.EqualFold(e.Host, u.Host) {
			continue
		}
		prefix := strings.TrimSuffix(e.Path, "/")
		if u.Path == prefix || strings.HasPrefix(u.Path, prefix+"/") {
			return true
		}
	}
	return false
}

// unsafePath reports whether a (decoded) path has segments a browser
// resolves against others: ".", "..", or a backslash, which browsers read
// as "/" in http(s) URLs.
func unsafePath(p string) bool {
	if strings.Contains(p, `\`) {
		return true
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// withLoginToken is the redirect URL with loginToken added to its query:
// the client's own parameters and fragment kept as they are, any
// loginToken it already had dropped.
func withLoginToken(u *url.URL, token string) string {
	v := *u
	var parts []string
	if v.RawQuery != "" {
		for _, p := range strings.Split(v.RawQuery, "&") {
			k, _, _ := strings.Cut(p, "=")
			if key, err := url.QueryUnescape(k); err == nil && key == "loginToken" {
				continue
			}
			parts = append(parts, p)
		}
	}
	v.RawQuery = strings.Join(append(parts, "loginToken="+url.QueryEscape(token)), "&")
	v.ForceQuery = false
	return v.String()
}

// ssoState is a pending SSO login: where the token goes, and until when
// the login may be finished.
type ssoState struct {
	redirect *url.URL
	expires  time.Time
}

// sealSSOState signs a pending login for the browser holding binding:
// base64url(redirect URL) "." expiry (Unix seconds) "." MAC.
func (h *openIDRoutes) sealSSOState(binding string, s ssoState) string {
	raw, exp := s.redirect.String(), strconv.FormatInt(s.expires.Unix(), 10)
	return base64.RawURLEncoding.EncodeToString([]byte(raw)) + "." + exp + "." + h.formMAC("matrix sso pending login", binding, raw, exp)
}

// openSSOState verifies a sealed pending login for the browser holding
// binding at now: its MAC, its expiry and its redirect URL again.
func (h *openIDRoutes) openSSOState(binding, sealed string, now time.Time) (ssoState, bool) {
	if binding == "" || len(sealed) > 4*maxSSORedirectURL {
		return ssoState{}, false
	}
	enc, rest, ok := strings.Cut(sealed, ".")
	exp, mac, ok2 := strings.Cut(rest, ".")
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	if !ok || !ok2 || err != nil || !hmacEqual(mac, h.formMAC("matrix sso pending login", binding, string(raw), exp)) {
		return ssoState{}, false
	}
	unix, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || !now.Before(time.Unix(unix, 0)) {
		return ssoState{}, false
	}
	u, problem := parseSSORedirect(string(raw))
	if problem != "" {
		return ssoState{}, false
	}
	return ssoState{redirect: u, expires: time.Unix(unix, 0)}, true
}

// ssoLifetime is how long a pending SSO login may wait for its sign-in
// and confirmation: as long as an authorization request.
func (h *openIDRoutes) ssoLifetime() time.Duration {
	if h.Storage != nil && h.Storage.Lifetimes.AuthRequest > 0 {
		return h.Storage.Lifetimes.AuthRequest
	}
	return provider.DefaultLifetimes.AuthRequest
}

// The CSRF tokens of the SSO page's forms: the sign-in form's bound to the
// browser and the pending login, the confirmation's also to the session
// it was shown to.
func (h *openIDRoutes) ssoToken(do, binding, sessionID, sealed string) string {
	return h.formMAC("matrix sso form", do, binding, sessionID, sealed)
}

type ssoData struct {
	page
	Action, Do, State, CSRF string
	// Target is the client as the user is shown it (its host, or a
	// native app's scheme), Address the redirect URL without its query.
	Target, Address string
	MatrixID        string
	// The sign-in form.
	Username, Error string
	Remember        bool
}

// ssoTarget is how the page names the client at u.
func ssoTarget(p page, u *url.URL) string {
	if u.Scheme == "http" || u.Scheme == "https" {
		return u.Host
	}
	return p.Tf("sso.native", u.Scheme)
}

// ssoPage serves mxidp's page of m.login.sso: GET starts or goes on with
// a pending login, POST receives its forms.
func (h *openIDRoutes) ssoPage(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		h.ssoStart(w, r)
	case http.MethodPost:
		h.ssoSubmit(w, r)
	default:
		// HEAD too: a GET may issue a token (allow-listed clients).
		w.Header().Set("Allow", "GET, POST")
		h.ssoMessage(w, r, http.StatusMethodNotAllowed, "error.form.text", "")
	}
}

// ssoStart binds a new pending login to the browser and shows the sign-in
// form, or, with a session, goes on.
func (h *openIDRoutes) ssoStart(w http.ResponseWriter, r *http.Request) {
	u, _, _, problem := ssoRedirectParam(r.URL.Query())
	if problem != "" {
		h.ssoMessage(w, r, http.StatusBadRequest, "sso.error.redirect", problem)
		return
	}
	binding := h.browserBinding(w, r)
	st := ssoState{redirect: u, expires: time.Now().Add(h.ssoLifetime())}
	s, user, ok := h.accountSession(w, r)
	if !ok {
		return
	}
	if s == nil {
		h.showSSOSignIn(w, r, binding, st, http.StatusOK, "", "", false)
		return
	}
	h.ssoOnward(w, r, binding, st, *s, user, http.StatusFound)
}

// ssoOnward goes on with a pending login in a signed-in browser: the token
// at once for an allow-listed client, else the confirmation.
func (h *openIDRoutes) ssoOnward(w http.ResponseWriter, r *http.Request, binding string, st ssoState, s storage.Session, u storage.User, redirect int) {
	if ssoAllowed(h.SSOClientAllowlist, st.redirect) {
		h.ssoIssue(w, r, st, u, redirect)
		return
	}
	sealed := h.sealSSOState(binding, st)
	p := h.page(r, "")
	target := ssoTarget(p, st.redirect)
	p.Title = p.Tf("sso.confirm.title", target)
	address := *st.redirect
	address.RawQuery, address.ForceQuery, address.Fragment, address.RawFragment = "", false, "", ""
	renderWithCSP(w, http.StatusOK, "sso-confirm.html", ssoData{page: p, Action: h.Issuer + ssoPath, Do: ssoConfirm,
		State: sealed, CSRF: h.ssoToken(ssoConfirm, binding, s.ID, sealed), Target: target, Address: address.String(),
		MatrixID: "@" + u.Username + ":" + h.ServerName}, clientBoundCSP)
}

// showSSOSignIn shows the sign-in form of a pending login.
func (h *openIDRoutes) showSSOSignIn(w http.ResponseWriter, r *http.Request, binding string, st ssoState, status int,
	username, problem string, remember bool) {
	sealed := h.sealSSOState(binding, st)
	p := h.page(r, "")
	p.Title = p.T("login.title")
	renderWithCSP(w, status, "sso-signin.html", ssoData{page: p, Action: h.Issuer + ssoPath, Do: ssoSignIn, State: sealed,
		CSRF: h.ssoToken(ssoSignIn, binding, "", sealed), Target: ssoTarget(p, st.redirect),
		Username: username, Error: problem, Remember: remember}, clientBoundCSP)
}

// ssoSubmit receives the sign-in form and the confirmation. Either must
// come from the browser its pending login is bound to, with the token made
// for it; the confirmation also from the session it was shown to.
func (h *openIDRoutes) ssoSubmit(w http.ResponseWriter, r *http.Request) {
	if !h.readForm(w, r) {
		return
	}
	binding := h.postedBinding(r)
	sealed, do := r.PostForm.Get("state"), r.PostForm.Get("do")
	st, ok := h.openSSOState(binding, sealed, time.Now())
	if !ok || (do != ssoSignIn && do != ssoConfirm) {
		h.ssoRefused(w, r, "pending login not this browser's, or expired")
		return
	}
	switch do {
	case ssoSignIn:
		if !hmacEqual(r.PostForm.Get("csrf"), h.ssoToken(ssoSignIn, binding, "", sealed)) {
			h.ssoRefused(w, r, "sign-in form not this browser's")
			return
		}
		username := r.PostForm.Get("username")
		remember := r.PostForm.Get("remember") != ""
		if _, ok := h.passwordSignIn(w, r, "matrix sso", provider.CompatClientID, func(status int, problem string) {
			h.showSSOSignIn(w, r, binding, st, status, username, problem, remember)
		}); !ok {
			return
		}
		// On through the page itself, now with the session: the
		// allow-list or the confirmation decides.
		w.Header()["Cache-Control"] = valueNoStore
		http.Redirect(w, r, h.ssoPageURL(st.redirect), http.StatusSeeOther)
	case ssoConfirm:
		s, u, ok := h.accountSession(w, r)
		if !ok {
			return
		}
		if s == nil {
			// The session ended since the confirmation was shown.
			h.showSSOSignIn(w, r, binding, st, http.StatusOK, "", "", false)
			return
		}
		if !hmacEqual(r.PostForm.Get("csrf"), h.ssoToken(ssoConfirm, binding, s.ID, sealed)) {
			h.ssoRefused(w, r, "confirmation not this browser's and session's")
			return
		}
		h.ssoIssue(w, r, st, u, http.StatusSeeOther)
	}
}

// ssoIssue makes the login token of a finished SSO login and sends the
// browser with it to the client. Each token is a row: one network may
// have them made only as fast as it may open authorization requests.
func (h *openIDRoutes) ssoIssue(w http.ResponseWriter, r *http.Request, st ssoState, u storage.User, redirect int) {
	if ok, wait := h.authorizeLimit.allow(clientAddr(r, h.TrustedProxies)); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		messagePage(w, h.page(r, ""), http.StatusTooManyRequests, "error.busy.title", "error.busy.text")
		return
	}
	token, err := h.Storage.IssueLoginToken(r.Context(), u, st.redirect.String())
	if err != nil {
		h.internalError(w, r, "issue login token", err)
		return
	}
	h.Login.Logger.Info("m.login.sso: login token issued", "user_id", u.ID, "client_host", st.redirect.Host,
		"client_scheme", st.redirect.Scheme, "request_id", w.Header().Get(requestIDHeader))
	w.Header()["Cache-Control"] = valueNoStore
	http.Redirect(w, r, withLoginToken(st.redirect, token), redirect)
}

// ssoRefused answers a form that is not the browser's, the session's or
// still pending: the user starts again at the Matrix client.
func (h *openIDRoutes) ssoRefused(w http.ResponseWriter, r *http.Request, why string) {
	h.Login.Logger.Info("m.login.sso form refused: "+why, "request_id", w.Header().Get(requestIDHeader))
	h.ssoMessage(w, r, http.StatusForbidden, "sso.error.csrf", "")
}

// ssoMessage shows an error of the SSO page; detail says what was wrong
// with the client's request, for its developers.
func (h *openIDRoutes) ssoMessage(w http.ResponseWriter, r *http.Request, status int, textID, detail string) {
	p := h.page(r, "")
	p.Title = p.T("sso.error.title")
	render(w, status, "message.html", message{page: p, Text: p.T(textID), Detail: detail,
		RequestID: w.Header().Get(requestIDHeader), Alert: true})
}
