package main

// The Matrix login compatibility layer against the real Synapse in
// next-gen auth: clients that log in by password (bots, integrations,
// older clients) reach mxidp's /login, /logout and /refresh through the
// deployment's reverse proxy (startMatrixProxy) and use the tokens at
// Synapse, which asks mxidp about them. matrix-nio (Debian's
// python3-matrix-nio, testdata/nio_login.py) is the bot; the eXo
// integration's service-account login is a plain POST /login. Every rule
// checked is the Matrix client-server API's: "Login" (POST /login and its
// 403 and 429 answers), "Logout" (/logout, /logout/all), "Refresh"
// (POST /refresh), "Standard error response" (M_LIMIT_EXCEEDED with
// retry_after_ms, M_UNKNOWN_TOKEN with soft_logout).

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mxidp/mxidp/storage/storagetest"
	"golang.org/x/oauth2"
)

// compatThrottleYAML makes the throttle's bursts small and its first
// delay long, so that a test reaches the refusals in a few attempts and
// they last while it looks at them.
const compatThrottleYAML = "throttle:\n  account_burst: 3\n  network_burst: 3\n  base_delay: 1m\n  max_delay: 10m\n"

// compatBurst is the bursts compatThrottleYAML sets.
const compatBurst = 3

// compatLocalparts are the accounts of a compatibility test, one or two
// per case so that one case's throttling or disabling spoils no other:
// alice (matrix-nio, logout/all with her OAuth session), bob (his own
// Matrix ID, and @Bob spelled for him), carol (logout; the right password
// that the throttled networks try), dave (disabled), erin (wrong
// passwords), frank (the eXo login, device IDs, refresh), grace
// (matrix-nio by localpart, nio's logout).
var compatLocalparts = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace"}

// compatEnv is next-gen auth behind the reverse proxy, with the accounts
// of compatLocalparts in mxidp's own table or the platform's.
type compatEnv struct {
	*nextGenEnv
	base    string            // the proxy: the homeserver URL clients are given
	pw      map[string]string // localpart → password
	disable func(localpart string)
}

// startCompat starts the deployment with users from source: "builtin"
// (mxidp's table) or "platform" (a Django-shaped table read in place).
func startCompat(t *testing.T, backend, source string) *compatEnv {
	t.Helper()
	c := &compatEnv{pw: map[string]string{}}
	switch source {
	case "builtin":
		c.nextGenEnv = startNextGen(t, backend, compatThrottleYAML)
		c.pw["alice"] = alicePassword
		for _, lp := range compatLocalparts[1:] {
			c.pw[lp] = lp + "-compat-" + randomAlnum(12)
			(&cli{t: t, env: c.d.env}).must(c.pw[lp]+"\n", "user", "add", lp, "--password-stdin", "--email", lp+"@example.org")
		}
		c.disable = func(lp string) { c.d.cli("user", "disable", lp) }
	case "platform":
		users := platformUsers(t)
		for _, u := range users {
			c.pw[u.localpart] = u.password
		}
		var db *sql.DB
		c.nextGenEnv, db = startNextGenOnDjango(t, backend, users, "1s", compatThrottleYAML)
		c.disable = func(lp string) {
			if _, err := db.Exec(`UPDATE auth_user SET is_active = FALSE WHERE lower(username) = $1`, lp); err != nil {
				t.Fatal(err)
			}
		}
	default:
		t.Fatalf("unknown user source %q", source)
	}
	for _, lp := range compatLocalparts {
		if c.pw[lp] == "" {
			t.Fatalf("no password for %s in the %s source", lp, source)
		}
	}
	c.base = startMatrixProxy(t, c.syn.URL, c.issuer)
	return c
}

// mxid is localpart's Matrix ID.
func mxid(localpart string) string { return "@" + localpart + ":" + synapseServerName }

// matrixAnswer is a client-server API response.
type matrixAnswer struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (a matrixAnswer) str(key string) string { s, _ := a.body[key].(string); return s }

func (a matrixAnswer) String() string { return fmt.Sprintf("%d %s", a.status, a.raw) }

// call sends a client-server API request to the proxy from client hc (nil:
// the default client, from 127.0.0.1), with a bearer token when token is
// set and body as JSON when not nil. Tokens in the answer are noted as
// secrets.
func (c *compatEnv) call(hc *http.Client, method, path, token string, body any) matrixAnswer {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(mustJSON(body))
	}
	req, err := http.NewRequest(method, c.base+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	a := matrixAnswer{status: resp.StatusCode, header: resp.Header}
	a.raw, _ = io.ReadAll(resp.Body)
	if err := json.Unmarshal(a.raw, &a.body); err != nil {
		c.t.Errorf("%s %s answered %d with no JSON object: %q", method, path, resp.StatusCode, a.raw)
	}
	for _, k := range []string{"access_token", "refresh_token"} {
		noteSecret(a.str(k))
	}
	return a
}

// passwordLogin is the eXo integration's login: m.login.password with an
// m.id.user identifier, plus extra fields of the request.
func (c *compatEnv) passwordLogin(hc *http.Client, user, password string, extra map[string]any) matrixAnswer {
	c.t.Helper()
	body := map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": user}, "password": password}
	for k, v := range extra {
		body[k] = v
	}
	return c.call(hc, http.MethodPost, "/_matrix/client/v3/login", "", body)
}

// mustLogin logs localpart in by password and checks the answer's shape.
func (c *compatEnv) mustLogin(user, localpart string, extra map[string]any) matrixAnswer {
	c.t.Helper()
	a := c.passwordLogin(nil, user, c.pw[localpart], extra)
	if a.status != http.StatusOK || a.str("access_token") == "" || a.str("device_id") == "" || a.str("user_id") != mxid(localpart) {
		c.t.Fatalf("password login as %q: %v; want 200 with access_token, device_id and user_id %s", user, a, mxid(localpart))
	}
	return a
}

// wantMatrixError checks a refusal's status and errcode, and that it
// carries a message (clients such as matrix-nio need both).
func wantMatrixError(t *testing.T, what string, a matrixAnswer, status int, errcode string) {
	t.Helper()
	if a.status != status || a.str("errcode") != errcode || a.str("error") == "" {
		t.Errorf("%s: %v; want %d %s with an error message", what, a, status, errcode)
	}
	if a.str("access_token") != "" || a.str("refresh_token") != "" {
		t.Errorf("%s: the refusal holds a token: %v", what, a)
	}
}

// wantLimitExceeded checks a throttle refusal: 429 M_LIMIT_EXCEEDED with
// retry_after_ms, a whole number of milliseconds up to the longest delay.
func wantLimitExceeded(t *testing.T, what string, a matrixAnswer) {
	t.Helper()
	wantMatrixError(t, what, a, http.StatusTooManyRequests, "M_LIMIT_EXCEEDED")
	ms, ok := a.body["retry_after_ms"].(float64)
	if !ok || ms <= 0 || ms > float64((10*time.Minute).Milliseconds()) || ms != float64(int64(ms)) {
		t.Errorf("%s: retry_after_ms = %v; want a whole number of milliseconds in (0, 10 min]", what, a.body["retry_after_ms"])
	}
}

// wantDeadToken checks that Synapse refuses token as unknown.
func (c *compatEnv) wantDeadToken(t *testing.T, what, token string) {
	t.Helper()
	if status, got := c.syn.request(http.MethodGet, "/_matrix/client/v3/account/whoami", token, nil); status != http.StatusUnauthorized || got["errcode"] != "M_UNKNOWN_TOKEN" {
		t.Errorf("%s: whoami = %d %v; want 401 M_UNKNOWN_TOKEN", what, status, got)
	}
}

// wantWhoami checks that Synapse takes token as localpart on device.
func (c *compatEnv) wantWhoami(t *testing.T, what, token, localpart, device string) {
	t.Helper()
	if status, user, dev := c.syn.whoami(token); status != http.StatusOK || user != mxid(localpart) || dev != device {
		t.Errorf("%s: whoami = %d %q %q; want 200 %s %s", what, status, user, dev, mxid(localpart), device)
	}
}

// deviceName is the display name Synapse has for a device.
func (c *compatEnv) deviceName(token, device string) string {
	c.t.Helper()
	status, got := c.syn.request(http.MethodGet, "/_matrix/client/v3/devices/"+url.PathEscape(device), token, nil)
	if status != http.StatusOK {
		c.t.Errorf("GET /devices/%s at Synapse: %d %v", device, status, got)
	}
	name, _ := got["display_name"].(string)
	return name
}

// nioResult is what testdata/nio_login.py prints.
type nioResult struct {
	OK           bool     `json:"ok"`
	Step         string   `json:"step"`
	Error        string   `json:"error"`
	Errcode      string   `json:"errcode"`
	UserID       string   `json:"user_id"`
	DeviceID     string   `json:"device_id"`
	AccessToken  string   `json:"access_token"`
	RoomID       string   `json:"room_id"`
	EventID      string   `json:"event_id"`
	SyncedBodies []string `json:"synced_bodies"`
}

// nioMessage is the message nio_login.py sends.
const nioMessage = "hello from matrix-nio"

// runNio runs nio_login.py with secret on standard input.
func runNio(t *testing.T, secret string, args ...string) nioResult {
	t.Helper()
	requirePython(t, "nio", "python3-matrix-nio")
	cmd := exec.Command(authlibPython, append([]string{"testdata/nio_login.py"}, args...)...)
	cmd.Stdin = strings.NewReader(secret + "\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	checkLogHasNoSecrets(t, "nio_login.py", stderr.String())
	var r nioResult
	if jerr := json.Unmarshal(out, &r); jerr != nil {
		t.Fatalf("nio_login.py %s: %v, printed %q (%v); standard error:\n%s", args[0], err, out, jerr, stderr.String())
	}
	noteSecret(r.AccessToken)
	if err != nil && r.OK {
		t.Fatalf("nio_login.py %s: %v though it printed success", args[0], err)
	}
	return r
}

// TestCompatPasswordLoginsThroughTheProxyWorkAtSynapse: against Synapse
// 1.160 delegating to mxidp, with the login, logout and refresh paths
// routed to mxidp, clients that log in by password work as on a legacy
// homeserver: matrix-nio logs in, syncs and sends a message; the eXo
// integration's plain m.login.password gives a token Synapse takes;
// logout and logout/all delete the devices in Synapse and kill the
// tokens; a refreshable login rotates its refresh token; wrong
// passwords, unknown users, @Bob for bob and a disabled account get the
// spec's errors and count against the throttle, whose 429 carries
// retry_after_ms. With mxidp's own users and with the platform's table.
func TestCompatPasswordLoginsThroughTheProxyWorkAtSynapse(t *testing.T) {
	for _, source := range []string{"builtin", "platform"} {
		t.Run(source, func(t *testing.T) {
			for _, backend := range storagetest.Backends {
				t.Run(backend, func(t *testing.T) { compatPasswordCases(t, startCompat(t, backend, source)) })
			}
		})
	}
}

// compatPasswordCases runs the cases in order on one deployment; each
// uses its own accounts (compatLocalparts) and, where it fails
// passwords, its own client addresses.
func compatPasswordCases(t *testing.T, c *compatEnv) {
	t.Run("GET /login offers m.login.password under v3 and r0", func(t *testing.T) {
		for _, v := range []string{"v3", "r0"} {
			a := c.call(nil, http.MethodGet, "/_matrix/client/"+v+"/login", "", nil)
			flows, _ := a.body["flows"].([]any)
			var types []string
			for _, f := range flows {
				if m, ok := f.(map[string]any); ok {
					typ, _ := m["type"].(string)
					types = append(types, typ)
				}
			}
			if a.status != http.StatusOK || !slices.Contains(types, "m.login.password") {
				t.Errorf("GET /_matrix/client/%s/login: %v; want 200 with an m.login.password flow", v, a)
			}
		}
	})

	t.Run("matrix-nio logs in by password, syncs and sends a message", func(t *testing.T) {
		r := runNio(t, c.pw["alice"], "login", c.base, mxid("alice"), "nio bot")
		if !r.OK {
			t.Fatalf("matrix-nio failed at %s: %s (errcode %q)", r.Step, r.Error, r.Errcode)
		}
		if r.UserID != mxid("alice") || r.DeviceID == "" || r.RoomID == "" || r.EventID == "" {
			t.Fatalf("matrix-nio: %+v", r)
		}
		if !slices.Contains(r.SyncedBodies, nioMessage) {
			t.Errorf("matrix-nio's second sync showed %q in its room; want its message", r.SyncedBodies)
		}
		c.wantWhoami(t, "nio's token", r.AccessToken, "alice", r.DeviceID)
		if got := c.syn.devices("alice"); !slices.Equal(got, []string{r.DeviceID}) {
			t.Errorf("Synapse's devices of alice: %v; want nio's %s", got, r.DeviceID)
		}
		if name := c.deviceName(r.AccessToken, r.DeviceID); name != "nio bot" {
			t.Errorf("the device's display name at Synapse: %q; want nio's initial_device_display_name", name)
		}
		// The message is in the room, as Synapse sends it to anyone.
		status, got := c.syn.request(http.MethodGet, "/_matrix/client/v3/rooms/"+url.PathEscape(r.RoomID)+"/messages?dir=b&limit=20", r.AccessToken, nil)
		found := false
		chunk, _ := got["chunk"].([]any)
		for _, e := range chunk {
			ev, _ := e.(map[string]any)
			content, _ := ev["content"].(map[string]any)
			if ev["event_id"] == r.EventID && ev["type"] == "m.room.message" && ev["sender"] == mxid("alice") && content["body"] == nioMessage {
				found = true
			}
		}
		if status != http.StatusOK || !found {
			t.Errorf("GET /rooms/%s/messages at Synapse: %d, %d events; want nio's message %s from alice", r.RoomID, status, len(chunk), r.EventID)
		}

		// By localpart too, and nio's logout (with the token in the query
		// string, as nio 0.20 sends it) ends the device.
		g := runNio(t, c.pw["grace"], "login", c.base, "grace", "grace's bot")
		if !g.OK || g.UserID != mxid("grace") {
			t.Fatalf("matrix-nio as grace: %+v", g)
		}
		c.wantWhoami(t, "nio's token for grace", g.AccessToken, "grace", g.DeviceID)
		if out := runNio(t, g.AccessToken, "logout", c.base, g.UserID, g.DeviceID); !out.OK {
			t.Fatalf("matrix-nio's logout failed: %s (errcode %q)", out.Error, out.Errcode)
		}
		c.wantDeadToken(t, "grace's token after nio's logout", g.AccessToken)
		waitFor(t, 10*time.Second, "grace's device deleted in Synapse", func() bool { return len(c.syn.devices("grace")) == 0 })
	})

	t.Run("the eXo integration's m.login.password gives a token Synapse takes", func(t *testing.T) {
		a := c.mustLogin("frank", "frank", nil)
		c.wantWhoami(t, "the service account's token", a.str("access_token"), "frank", a.str("device_id"))
		// A client that did not offer refresh_token: true gets a token
		// that lasts: no refresh token, no expiry (Matrix client-server
		// API, "Login": without expires_in_ms the token does not expire).
		if a.body["refresh_token"] != nil || a.body["expires_in_ms"] != nil {
			t.Errorf("a login without refresh_token: true answered refresh_token %v, expires_in_ms %v; want neither",
				a.body["refresh_token"], a.body["expires_in_ms"])
		}
		// The full Matrix ID, and the deprecated user field under r0.
		b := c.mustLogin(mxid("frank"), "frank", nil)
		c.wantWhoami(t, "by Matrix ID", b.str("access_token"), "frank", b.str("device_id"))
		legacy := c.call(nil, http.MethodPost, "/_matrix/client/r0/login", "", map[string]any{"type": "m.login.password", "user": "frank", "password": c.pw["frank"]})
		if legacy.status != http.StatusOK || legacy.str("user_id") != mxid("frank") {
			t.Fatalf("r0 login with the user field: %v", legacy)
		}
		c.wantWhoami(t, "by the user field", legacy.str("access_token"), "frank", legacy.str("device_id"))
		if ids := []string{a.str("device_id"), b.str("device_id"), legacy.str("device_id")}; ids[0] == ids[1] || ids[1] == ids[2] || ids[0] == ids[2] {
			t.Errorf("three logins without device_id got device IDs %v; want three new devices", ids)
		}
		if got := c.syn.devices("frank"); len(got) != 3 {
			t.Errorf("Synapse's devices of frank: %v; want the three logins'", got)
		}

		// bob signs in as his own Matrix ID, the canonical localpart of
		// his platform username (Bob).
		bob := c.mustLogin(mxid("bob"), "bob", nil)
		c.wantWhoami(t, "bob's token", bob.str("access_token"), "bob", bob.str("device_id"))

		// device_id and initial_device_display_name are honoured; logging
		// in again as that device replaces its token.
		first := c.mustLogin("frank", "frank", map[string]any{"device_id": "EXOSERVICE", "initial_device_display_name": "eXo"})
		if first.str("device_id") != "EXOSERVICE" {
			t.Fatalf("device_id EXOSERVICE came back as %q", first.str("device_id"))
		}
		c.wantWhoami(t, "the chosen device", first.str("access_token"), "frank", "EXOSERVICE")
		if name := c.deviceName(first.str("access_token"), "EXOSERVICE"); name != "eXo" {
			t.Errorf("EXOSERVICE's display name at Synapse: %q; want eXo", name)
		}
		again := c.mustLogin("frank", "frank", map[string]any{"device_id": "EXOSERVICE"})
		if again.str("device_id") != "EXOSERVICE" || again.str("access_token") == first.str("access_token") {
			t.Fatalf("the second login as EXOSERVICE: %v", again)
		}
		c.wantWhoami(t, "the device's new token", again.str("access_token"), "frank", "EXOSERVICE")
		// mxidp no longer vouches for the replaced token; Synapse, which
		// caches introspection answers for two minutes and checks only
		// that the device exists (Synapse synapse/api/auth/mas.py), may
		// take it until then.
		if _, got := c.introspect(c.secret, first.str("access_token")); got["active"] != false {
			t.Errorf("introspection of the device's replaced token: %v; want inactive", got)
		}
		if got := c.syn.devices("frank"); len(got) != 4 || !slices.Contains(got, "EXOSERVICE") {
			t.Errorf("Synapse's devices of frank: %v; want the three and EXOSERVICE once", got)
		}
	})

	t.Run("with refresh_token: true the login refreshes, the refresh token rotates, and its reuse ends the session", func(t *testing.T) {
		a := c.mustLogin("frank", "frank", map[string]any{"refresh_token": true})
		access, refresh, device := a.str("access_token"), a.str("refresh_token"), a.str("device_id")
		ms, _ := a.body["expires_in_ms"].(float64)
		if refresh == "" || ms <= 0 || ms != float64(int64(ms)) {
			t.Fatalf("login with refresh_token: true: refresh_token %t, expires_in_ms %v; want both", refresh != "", a.body["expires_in_ms"])
		}
		c.wantWhoami(t, "the refreshable token", access, "frank", device)
		c.wantDeadToken(t, "the refresh token used as an access token", refresh)

		refreshed := func(what, version, token string) (string, string) {
			t.Helper()
			r := c.call(nil, http.MethodPost, "/_matrix/client/"+version+"/refresh", "", map[string]any{"refresh_token": token})
			newAccess, newRefresh := r.str("access_token"), r.str("refresh_token")
			ms, _ := r.body["expires_in_ms"].(float64)
			if r.status != http.StatusOK || newAccess == "" || newRefresh == "" || newRefresh == token || ms <= 0 || ms != float64(int64(ms)) {
				t.Fatalf("%s: %d, access token %t, new refresh token %t, expires_in_ms %v", what,
					r.status, newAccess != "", newRefresh != "" && newRefresh != token, r.body["expires_in_ms"])
			}
			c.wantWhoami(t, what+": the new token, on the same device", newAccess, "frank", device)
			return newAccess, newRefresh
		}
		access2, refresh2 := refreshed("POST /v3/refresh", "v3", refresh)
		if access2 == access {
			t.Error("the refresh gave the same access token")
		}
		access3, refresh3 := refreshed("POST /r0/refresh with the rotated refresh token", "r0", refresh2)

		for what, body := range map[string]any{
			"a made-up refresh token":          map[string]any{"refresh_token": "mxr_" + randomAlnum(40)},
			"an access token as refresh token": map[string]any{"refresh_token": access3},
		} {
			wantMatrixError(t, what, c.call(nil, http.MethodPost, "/_matrix/client/v3/refresh", "", body), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
		}
		wantMatrixError(t, "a refresh without refresh_token", c.call(nil, http.MethodPost, "/_matrix/client/v3/refresh", "", map[string]any{}),
			http.StatusBadRequest, "M_MISSING_PARAM")
		c.wantWhoami(t, "the session after refusals of other tokens", access3, "frank", device)

		// Once the new access token is used the old refresh token is
		// revoked (Matrix client-server API, "Refresh"); mxidp takes a
		// revoked one coming back for a stolen copy and ends the session.
		old := c.call(nil, http.MethodPost, "/_matrix/client/v3/refresh", "", map[string]any{"refresh_token": refresh})
		wantMatrixError(t, "the first refresh token again", old, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
		if sl, ok := old.body["soft_logout"]; ok && sl != false {
			t.Errorf("the first refresh token again: soft_logout %v; want false (the session ends)", sl)
		}
		waitFor(t, 10*time.Second, "the device of a reused refresh token deleted in Synapse", func() bool { return !slices.Contains(c.syn.devices("frank"), device) })
		c.wantDeadToken(t, "the latest access token after the reuse", access3)
		wantMatrixError(t, "the latest refresh token after the reuse",
			c.call(nil, http.MethodPost, "/_matrix/client/v3/refresh", "", map[string]any{"refresh_token": refresh3}), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
		if got := c.syn.devices("frank"); len(got) != 4 {
			t.Errorf("Synapse's devices of frank: %v; want the other four", got)
		}
	})

	t.Run("logout deletes the device in Synapse and kills its token", func(t *testing.T) {
		franks := c.syn.devices("frank")
		one := c.mustLogin("carol", "carol", map[string]any{"device_id": "CAROLONE"})
		two := c.mustLogin(mxid("carol"), "carol", map[string]any{"device_id": "CAROLTWO"})
		three := c.mustLogin("carol", "carol", map[string]any{"device_id": "CAROLTHREE", "refresh_token": true})
		if got := c.syn.devices("carol"); !slices.Equal(got, []string{"CAROLONE", "CAROLTHREE", "CAROLTWO"}) {
			t.Fatalf("Synapse's devices of carol: %v", got)
		}
		out := c.call(nil, http.MethodPost, "/_matrix/client/v3/logout", one.str("access_token"), map[string]any{})
		if out.status != http.StatusOK || len(out.body) != 0 {
			t.Fatalf("POST /logout: %v; want 200 {}", out)
		}
		c.wantDeadToken(t, "the logged-out token", one.str("access_token"))
		waitFor(t, 10*time.Second, "CAROLONE deleted in Synapse", func() bool { return !slices.Contains(c.syn.devices("carol"), "CAROLONE") })
		c.wantWhoami(t, "carol's other device", two.str("access_token"), "carol", "CAROLTWO")
		again := c.call(nil, http.MethodPost, "/_matrix/client/v3/logout", one.str("access_token"), map[string]any{})
		wantMatrixError(t, "logging out a dead token again", again, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
		if sl, ok := again.body["soft_logout"]; ok && sl != false {
			t.Errorf("a logged-out token: soft_logout %v; want false (the device is gone)", sl)
		}
		wantMatrixError(t, "logout without a token", c.call(nil, http.MethodPost, "/_matrix/client/v3/logout", "", map[string]any{}),
			http.StatusUnauthorized, "M_MISSING_TOKEN")

		all := c.call(nil, http.MethodPost, "/_matrix/client/r0/logout/all", two.str("access_token"), map[string]any{})
		if all.status != http.StatusOK || len(all.body) != 0 {
			t.Fatalf("POST /logout/all: %v; want 200 {}", all)
		}
		waitFor(t, 10*time.Second, "every device of carol deleted in Synapse", func() bool { return len(c.syn.devices("carol")) == 0 })
		for _, tok := range []string{two.str("access_token"), three.str("access_token")} {
			c.wantDeadToken(t, "after logout/all", tok)
		}
		wantMatrixError(t, "the refresh token after logout/all",
			c.call(nil, http.MethodPost, "/_matrix/client/v3/refresh", "", map[string]any{"refresh_token": three.str("refresh_token")}),
			http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
		// Nobody else's devices went.
		if got := c.syn.devices("frank"); !slices.Equal(got, franks) || len(got) == 0 {
			t.Errorf("frank's devices after carol's logout/all: %v; want his %v", got, franks)
		}
	})

	t.Run("logout/all ends the user's OAuth sessions too", func(t *testing.T) {
		// alice has nio's device and an OAuth login (Element X's way);
		// "Invalidates all access tokens for a user ... All devices for
		// the user are also deleted" (Matrix client-server API, "Logout").
		rp := c.addClient("element")
		cfg := c.config(rp, oauth2.AuthStyleInHeader, matrixScopes("ALICEOAUTH")...)
		oauthTok := c.exchange(cfg, c.authorizeWith(newBrowser(t), cfg, randomAlnum(30), []string{c.pw["alice"]})).token
		c.wantWhoami(t, "alice's OAuth token", oauthTok.AccessToken, "alice", "ALICEOAUTH")
		compat := c.mustLogin("alice", "alice", nil)
		if got := c.syn.devices("alice"); len(got) != 3 {
			t.Fatalf("Synapse's devices of alice: %v; want nio's, ALICEOAUTH and the new login's", got)
		}
		if all := c.call(nil, http.MethodPost, "/_matrix/client/v3/logout/all", compat.str("access_token"), map[string]any{}); all.status != http.StatusOK {
			t.Fatalf("POST /logout/all: %v", all)
		}
		waitFor(t, 10*time.Second, "every device of alice deleted in Synapse", func() bool { return len(c.syn.devices("alice")) == 0 })
		c.wantDeadToken(t, "the OAuth token after logout/all", oauthTok.AccessToken)
		c.wantDeadToken(t, "the compatibility token after logout/all", compat.str("access_token"))
	})

	t.Run("refusals get the spec's errors and count against the throttle", func(t *testing.T) {
		// dave is logged in, then disabled: his device goes from Synapse.
		d := c.mustLogin("dave", "dave", nil)
		c.disable("dave")
		waitFor(t, 15*time.Second, "the disabled user's device deleted in Synapse", func() bool { return len(c.syn.devices("dave")) == 0 })
		c.wantDeadToken(t, "the disabled user's token", d.str("access_token"))

		// Each kind of refusal from a client network of its own: the
		// burst's worth of them holds the network off, so that even the
		// right password of another account is refused from there next.
		type try struct {
			user, password, errcode string
		}
		cases := []struct {
			name  string
			addr  string
			tries []try
		}{
			{"a wrong password", "127.0.0.11", []try{{"erin", "not-" + c.pw["erin"], "M_FORBIDDEN"}}},
			{"an unknown user", "127.0.0.12", []try{{"zed", "zed-" + randomAlnum(10), "M_FORBIDDEN"}, {mxid("zed"), "zed-" + randomAlnum(10), "M_FORBIDDEN"}}},
			{"@Bob for bob", "127.0.0.13", []try{{"@Bob:" + synapseServerName, c.pw["bob"], "M_FORBIDDEN"}}},
			// A disabled account is M_USER_DEACTIVATED to whoever knows its
			// password (the spec's code for it), and M_FORBIDDEN to a guess,
			// which learns nothing about the account.
			{"a disabled account", "127.0.0.14", []try{{"dave", "not-" + c.pw["dave"], "M_FORBIDDEN"}, {"dave", c.pw["dave"], "M_USER_DEACTIVATED"}}},
		}
		for _, k := range cases {
			hc := clientFrom(k.addr)
			for i := range compatBurst {
				tr := k.tries[min(i, len(k.tries)-1)]
				wantMatrixError(t, fmt.Sprintf("%s, attempt %d (%s)", k.name, i+1, tr.user), c.passwordLogin(hc, tr.user, tr.password, nil),
					http.StatusForbidden, tr.errcode)
			}
			wantLimitExceeded(t, k.name+": the next attempt", c.passwordLogin(hc, k.tries[0].user, k.tries[0].password, nil))
			wantLimitExceeded(t, k.name+": carol's right password from the same network", c.passwordLogin(hc, "carol", c.pw["carol"], nil))
		}
		if got := c.syn.devices("carol"); len(got) != 0 {
			t.Errorf("carol got devices from throttled networks: %v", got)
		}

		// The accounts are held off from any network: their own burst is
		// spent too.
		fresh := clientFrom("127.0.0.21")
		wantLimitExceeded(t, "erin's right password after the wrong ones, from another network", c.passwordLogin(fresh, "erin", c.pw["erin"], nil))
		wantLimitExceeded(t, "the unknown name again, from another network", c.passwordLogin(clientFrom("127.0.0.22"), "zed", "zed-"+randomAlnum(10), nil))
		if len(c.syn.devices("erin")) != 0 {
			t.Errorf("erin has devices in Synapse: %v", c.syn.devices("erin"))
		}

		// Networks that guessed nothing are not held off: the proxy passes
		// each client's own address, and the throttle counts it.
		other := clientFrom("127.0.0.31")
		if a := c.passwordLogin(other, "carol", c.pw["carol"], nil); a.status != http.StatusOK || a.str("user_id") != mxid("carol") {
			t.Errorf("carol from a network that guessed nothing: %v", a)
		}
		// @Bob spent no allowance of bob's.
		if a := c.passwordLogin(other, mxid("bob"), c.pw["bob"], nil); a.status != http.StatusOK || a.str("user_id") != mxid("bob") {
			t.Errorf("bob as himself after @Bob was refused: %v", a)
		}
		// What a client claims in X-Forwarded-For does not pass the proxy:
		// the held network stays held.
		req, _ := http.NewRequest(http.MethodPost, c.base+"/_matrix/client/v3/login", strings.NewReader(string(mustJSON(map[string]any{
			"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "carol"}, "password": c.pw["carol"]}))))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", "198.51.100.7")
		resp, err := clientFrom("127.0.0.11").Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Errorf("a held network claiming another address: %d %s; want 429", resp.StatusCode, body)
		}

		cl := &cli{t: t, env: c.d.env}
		if n := countDetail(auditJSONOf(t, cl, "--user", "erin", "--event", "login.failed"), "wrong password"); n != compatBurst {
			t.Errorf("audit: %d wrong passwords of erin; want %d", n, compatBurst)
		}
		if n := countDetail(auditJSONOf(t, cl, "--user", "dave", "--event", "login.failed"), ""); n != compatBurst {
			t.Errorf("audit: %d failed logins of dave; want %d", n, compatBurst)
		}
		if n := len(auditJSONOf(t, cl, "--event", "login.throttled")); n == 0 {
			t.Error("audit: no login.throttled event")
		}
	})
}
