package web

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mxidp/mxidp/provider"
	"github.com/mxidp/mxidp/storage"
)

// The account page of next-gen auth: the account_management_uri that
// Matrix clients open in the browser (MSC4191), with the user's profile,
// their Matrix sessions (one per device) and the deep links of the
// actions mxidp announces (provider.AccountActions).
//
// The page shows nothing of an account without that browser's mxidp
// session; without one it is a sign-in form, whose password check and new
// session are the login page's own (passwordSignIn). Everything it
// changes (ending sessions, allowing a cross-signing reset) is a POST
// whose CSRF token is bound to the browser's binding cookie and to the
// session, so neither a link nor another site's form ends anything; a
// GET only ever shows a page, deep links to destructive actions a
// confirmation. A device is looked up among the signed-in user's own
// live devices, so another user's device ID is "no such session".

// The account page's views, chosen by MSC4191's action parameter.
const (
	viewMain     = ""
	viewProfile  = "profile"
	viewSessions = "sessions"
	viewSession  = "session"
	viewEnd      = "end"
	viewReset    = "reset"
	viewEndAll   = "end_all"
)

// accountActions maps the action parameter to a view: the actions of
// MSC4191 that discovery announces, and the names a later revision of it
// gives the device actions, which clients built on it send.
var accountActions = map[string]string{
	"org.matrix.profile":             viewProfile,
	"org.matrix.sessions_list":       viewSessions,
	"org.matrix.devices_list":        viewSessions,
	"org.matrix.session_view":        viewSession,
	"org.matrix.device_view":         viewSession,
	"org.matrix.session_end":         viewEnd,
	"org.matrix.device_delete":       viewEnd,
	"org.matrix.cross_signing_reset": viewReset,
}

// What the account page's forms ask for (their "do" field). Each change
// has a CSRF token of its own.
const (
	doSignIn = "sign_in"
	doEnd    = "end"
	doEndAll = "end_all"
	doReset  = "cross_signing_reset"
)

// deepLink is what a client's link asks the page for: an action of
// accountActions and, for the session actions, a device. A device ID
// that no session can have is kept as badDevice, never as text.
type deepLink struct {
	action, view, deviceID string
	badDevice              bool
}

func parseDeepLink(v url.Values) deepLink {
	var l deepLink
	if view, ok := accountActions[v.Get("action")]; ok {
		l.action, l.view = v.Get("action"), view
	} else if v.Get("confirm") == viewEndAll {
		l.view = viewEndAll
	}
	if l.view == viewSession || l.view == viewEnd {
		if id := v.Get("device_id"); provider.ValidDeviceID(id) {
			l.deviceID = id
		} else if id != "" {
			l.badDevice = true
		}
	}
	return l
}

// query is the link's query string, of its validated parts only.
func (l deepLink) query() string {
	v := url.Values{}
	if l.action != "" {
		v.Set("action", l.action)
	}
	if l.deviceID != "" {
		v.Set("device_id", l.deviceID)
	}
	if l.view == viewEndAll && l.action == "" {
		v.Set("confirm", viewEndAll)
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// account serves the account page: GET shows, POST changes.
func (h *openIDRoutes) account(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		h.accountPage(w, r)
	case http.MethodPost:
		h.accountSubmit(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		h.accountMessage(w, r, http.StatusMethodNotAllowed, "account.error.title", "error.form.text")
	}
}

// accountUser is the signed-in user as the page shows them.
type accountUser struct {
	DisplayName, Username, MatrixID, Email string
}

// accountDevice is one session (Matrix device) as the page shows it.
type accountDevice struct {
	ID, Client, ClientID string
	Created, LastSeen    shownTime
	ViewURL, EndURL      string
}

// shownTime is a moment as the page shows it: localized text and the
// machine-readable form.
type shownTime struct{ Text, ISO string }

type accountData struct {
	page
	Action    string // the page's own URL, where its forms go
	LogoutURL string
	View      string
	User      accountUser
	Devices   []accountDevice
	Device    accountDevice // the one a session view is about
	CSRF      string        // the token of the page's form
	Do        string        // what the page's form asks for
	// The confirmation pages: their text and button.
	Text, Warning, Submit string
	// The sign-in form.
	Username, Error string
	Remember        bool
	Carry           []hiddenField // the deep link, for after the sign-in
}

// accountPage shows the sign-in form without a session, else the view
// the deep link asks for.
func (h *openIDRoutes) accountPage(w http.ResponseWriter, r *http.Request) {
	link := parseDeepLink(r.URL.Query())
	binding := h.browserBinding(w, r)
	s, u, ok := h.accountSession(w, r)
	if !ok {
		return
	}
	if s == nil {
		h.showAccountSignIn(w, r, binding, http.StatusOK, link, "", "", false)
		return
	}
	devices, err := h.Storage.UserDevices(r.Context(), u.ID)
	if err != nil {
		h.internalError(w, r, "list devices", err)
		return
	}
	d := h.accountData(r, u, link.view)
	switch link.view {
	case viewSession, viewEnd:
		if link.deviceID == "" && !link.badDevice {
			// A client that names no device is shown them all.
			d.View = viewSessions
			break
		}
		dev, found := findDevice(devices, link.deviceID)
		if !found {
			h.noSuchSession(w, r)
			return
		}
		d.Device = h.showDevice(r, d.page, dev, map[string]string{})
		if link.view == viewSession {
			d.Title = d.Tf("account.session.title", dev.DeviceID)
			render(w, http.StatusOK, "account-session.html", d)
			return
		}
		d.Title = d.T("account.end.title")
		d.Text = d.Tf("account.end.text", d.Device.Client, dev.DeviceID)
		d.Warning = d.T("account.end.warning")
		d.Do, d.Submit, d.CSRF = doEnd, d.T("account.session.end"), h.accountToken(binding, s.ID, doEnd)
		render(w, http.StatusOK, "account-confirm.html", d)
		return
	case viewEndAll:
		d.Title = d.T("account.end_all.title")
		d.Text, d.Warning = d.T("account.end_all.text"), d.T("account.end.warning")
		d.Do, d.Submit, d.CSRF = doEndAll, d.T("account.sessions.end_all"), h.accountToken(binding, s.ID, doEndAll)
		render(w, http.StatusOK, "account-confirm.html", d)
		return
	case viewReset:
		d.Title = d.T("account.reset.title")
		d.Text, d.Warning = d.T("account.reset.text"), d.T("account.reset.warning")
		d.Do, d.Submit, d.CSRF = doReset, d.T("account.reset.submit"), h.accountToken(binding, s.ID, doReset)
		render(w, http.StatusOK, "account-confirm.html", d)
		return
	}
	names := map[string]string{}
	for _, dev := range devices {
		d.Devices = append(d.Devices, h.showDevice(r, d.page, dev, names))
	}
	render(w, http.StatusOK, "account.html", d)
}

// accountSession returns the browser's live session and its user, or nil
// without one; false when the answer was an error page.
func (h *openIDRoutes) accountSession(w http.ResponseWriter, r *http.Request) (*storage.Session, storage.User, bool) {
	s, err := h.Login.Session(r.Context(), h.sessionCookie(r))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, storage.User{}, true
	}
	if err != nil {
		h.internalError(w, r, "load session", err)
		return nil, storage.User{}, false
	}
	u, err := h.Login.UserByID(r.Context(), s.UserID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, storage.User{}, true
	}
	if err != nil {
		h.internalError(w, r, "load user", err)
		return nil, storage.User{}, false
	}
	return &s, u, true
}

func (h *openIDRoutes) accountData(r *http.Request, u storage.User, view string) accountData {
	p := h.page(r, "")
	p.Title = p.T("account.title")
	d := accountData{page: p, Action: h.Issuer + provider.AccountPath, LogoutURL: h.Issuer + "/end_session", View: view,
		User: accountUser{DisplayName: u.DisplayName, Username: u.Username, MatrixID: "@" + u.Username + ":" + h.ServerName}}
	if u.Email != "" && u.EmailVerified {
		d.User.Email = u.Email
	}
	switch view {
	case viewProfile:
		d.Title = p.T("account.profile")
	case viewSessions:
		d.Title = p.T("account.sessions")
	}
	return d
}

// showDevice prepares a device for the page; names caches the clients'
// names for one page.
func (h *openIDRoutes) showDevice(r *http.Request, p page, d storage.MatrixDevice, names map[string]string) accountDevice {
	name, ok := names[d.ClientID]
	if !ok {
		name = h.clientName(r, d.ClientID)
		if d.ClientID == provider.CompatClientID {
			name = p.T("account.compat.client")
		}
		names[d.ClientID] = name
	}
	if d.ClientID == provider.CompatClientID && d.DisplayName != "" {
		// A password login names its device itself
		// (initial_device_display_name).
		name = d.DisplayName + " · " + name
	}
	base := h.Issuer + provider.AccountPath + "?"
	q := func(action string) string {
		return base + url.Values{"action": {action}, "device_id": {d.DeviceID}}.Encode()
	}
	now := time.Now()
	return accountDevice{ID: d.DeviceID, Client: name, ClientID: d.ClientID,
		Created: p.when(d.CreatedAt, now), LastSeen: p.when(d.LastSeenAt, now),
		ViewURL: q("org.matrix.session_view"), EndURL: q("org.matrix.session_end")}
}

func findDevice(devices []storage.MatrixDevice, id string) (storage.MatrixDevice, bool) {
	for _, d := range devices {
		if id != "" && d.DeviceID == id {
			return d, true
		}
	}
	return storage.MatrixDevice{}, false
}

// when shows a moment: relative within a day, else its date (UTC: the
// page has no script to learn the browser's time zone).
func (l locale) when(t, now time.Time) shownTime {
	s := shownTime{ISO: t.UTC().Format(time.RFC3339)}
	switch ago := now.Sub(t); {
	case ago < time.Minute:
		s.Text = l.T("time.just_now")
	case ago < time.Hour:
		s.Text = l.Tf("time.minutes_ago", int(ago/time.Minute))
	case ago < 24*time.Hour:
		s.Text = l.Tf("time.hours_ago", int(ago/time.Hour))
	default:
		u := t.UTC()
		months := strings.Fields(l.T("time.months"))
		month := u.Month().String()
		if len(months) == 12 {
			month = months[u.Month()-1]
		}
		s.Text = l.Tf("time.date", u.Day(), month, u.Year())
	}
	return s
}

// showAccountSignIn shows the sign-in form, which carries the deep link
// through the sign-in.
func (h *openIDRoutes) showAccountSignIn(w http.ResponseWriter, r *http.Request, binding string, status int, link deepLink,
	username, problem string, remember bool) {
	p := h.page(r, "")
	p.Title = p.T("login.title")
	d := accountData{page: p, Action: h.Issuer + provider.AccountPath, Do: doSignIn, CSRF: h.accountSignInToken(binding),
		Username: username, Error: problem, Remember: remember}
	if link.action != "" {
		d.Carry = append(d.Carry, hiddenField{"action", link.action})
	}
	if link.deviceID != "" {
		d.Carry = append(d.Carry, hiddenField{"device_id", link.deviceID})
	}
	if link.view == viewEndAll && link.action == "" {
		d.Carry = append(d.Carry, hiddenField{"confirm", viewEndAll})
	}
	render(w, status, "account-signin.html", d)
}

// The CSRF tokens of the account page's forms: the sign-in form's bound to
// the browser's binding cookie (so that no other site can sign a browser
// in to an account of its choosing), every other form's also to the
// session it was shown to and to what it asks for.
func (h *openIDRoutes) accountSignInToken(binding string) string {
	return h.formMAC("account sign-in form", binding)
}

func (h *openIDRoutes) accountToken(binding, sessionID, do string) string {
	return h.formMAC("account form", do, binding, sessionID)
}

// postedBinding is the browser's binding cookie, or "" without a valid
// one. A form is never accepted without it, so a POST that carries no
// cookies (another site's, under SameSite) is refused.
func (h *openIDRoutes) postedBinding(r *http.Request) string {
	c, err := r.Cookie(h.cookieName(bindingCookie))
	if err != nil || !validSecret(c.Value) {
		return ""
	}
	return c.Value
}

// accountSubmit receives the page's forms.
func (h *openIDRoutes) accountSubmit(w http.ResponseWriter, r *http.Request) {
	if !h.readForm(w, r) {
		return
	}
	binding := h.postedBinding(r)
	do := r.PostForm.Get("do")
	if do == doSignIn {
		h.accountSignIn(w, r, binding)
		return
	}
	s, u, ok := h.accountSession(w, r)
	if !ok {
		return
	}
	if s == nil || binding == "" || (do != doEnd && do != doEndAll && do != doReset) ||
		!hmacEqual(r.PostForm.Get("csrf"), h.accountToken(binding, s.ID, do)) {
		h.Login.Logger.Info("account page form refused: no session, or not this session's and browser's",
			"request_id", w.Header().Get(requestIDHeader))
		h.accountMessage(w, r, http.StatusForbidden, "account.error.title", "account.error.csrf")
		return
	}
	switch do {
	case doEnd:
		id := r.PostForm.Get("device_id")
		devices, err := h.Storage.UserDevices(r.Context(), u.ID)
		if err != nil {
			h.internalError(w, r, "list devices", err)
			return
		}
		dev, found := findDevice(devices, id)
		if !provider.ValidDeviceID(id) || !found {
			h.noSuchSession(w, r)
			return
		}
		err = h.Storage.EndDevice(r.Context(), u.ID, dev.DeviceID)
		if errors.Is(err, storage.ErrNotFound) {
			h.noSuchSession(w, r)
			return
		}
		if err != nil {
			h.internalError(w, r, "end device", err)
			return
		}
		p := h.page(r, "")
		h.accountDone(w, p, "account.end.done.title", p.Tf("account.end.done.text", h.clientName(r, dev.ClientID), dev.DeviceID))
	case doEndAll:
		if err := h.Storage.EndAllDevices(r.Context(), u.ID); err != nil {
			h.internalError(w, r, "end devices", err)
			return
		}
		p := h.page(r, "")
		h.accountDone(w, p, "account.end_all.done.title", p.T("account.end_all.done.text"))
	case doReset:
		if err := h.Storage.AllowCrossSigningReset(r.Context(), u); err != nil {
			h.internalError(w, r, "allow cross-signing reset", err)
			return
		}
		p := h.page(r, "")
		h.accountDone(w, p, "account.reset.done.title", p.T("account.reset.done.text"))
	}
}

// accountSignIn checks the sign-in form as the login page does and, once
// signed in, sends the browser back to the page with its deep link.
func (h *openIDRoutes) accountSignIn(w http.ResponseWriter, r *http.Request, binding string) {
	link := parseDeepLink(r.PostForm)
	if binding == "" || !hmacEqual(r.PostForm.Get("csrf"), h.accountSignInToken(binding)) {
		h.accountMessage(w, r, http.StatusForbidden, "account.error.title", "account.error.csrf")
		return
	}
	username := r.PostForm.Get("username")
	remember := r.PostForm.Get("remember") != ""
	if _, ok := h.passwordSignIn(w, r, "account page", "", func(status int, problem string) {
		h.showAccountSignIn(w, r, binding, status, link, username, problem, remember)
	}); !ok {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, h.Issuer+provider.AccountPath+link.query(), http.StatusSeeOther)
}

func (h *openIDRoutes) noSuchSession(w http.ResponseWriter, r *http.Request) {
	h.accountMessage(w, r, http.StatusNotFound, "account.nosession.title", "account.nosession.text")
}

// accountMessage shows a message with the way back to the account page.
func (h *openIDRoutes) accountMessage(w http.ResponseWriter, r *http.Request, status int, titleID, textID string) {
	p := h.page(r, "")
	p.Title = p.T(titleID)
	m := message{page: p, Text: p.T(textID), Link: h.Issuer + provider.AccountPath, LinkText: p.T("account.back")}
	if status >= 400 {
		m.Alert, m.RequestID = true, w.Header().Get(requestIDHeader)
	}
	render(w, status, "message.html", m)
}

// accountDone shows that a change was made.
func (h *openIDRoutes) accountDone(w http.ResponseWriter, p page, titleID, text string) {
	p.Title = p.T(titleID)
	render(w, http.StatusOK, "message.html", message{page: p, Text: text,
		Link: h.Issuer + provider.AccountPath, LinkText: p.T("account.back")})
}
