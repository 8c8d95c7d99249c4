package main

// Synapse's two legacy ways in, against a real Synapse (Debian's
// matrix-synapse from the sid chroot, synapse_harness_test.go) and a
// started mxidp, on every backend:
//
//   - oidc_providers: Synapse configured with the block `mxidp
//     synapse-config` prints, a real browser (headless Chromium) through
//     Synapse's SSO redirect, mxidp's login form, Synapse's callback and
//     straight on (the client is whitelisted) to the Matrix client's page with a loginToken;
//     m.login.token gives a Matrix access token. Logging out at mxidp, or disabling the user,
//     ends that Matrix session over back-channel logout (Synapse
//     synapse/handlers/oidc.py, handle_backchannel_logout).
//   - the REST password door: Synapse runs the module mxidp ships,
//     contrib/synapse/mxidp_rest_auth.py (docs/rest.md), which makes the
//     REST password provider's call, POST
//     {endpoint}/_matrix-internal/identity/v1/check_credentials. Before it
//     in Synapse's list come instances of the same module pointed at
//     answers that must not log anyone in (nothing listening, a 500, not
//     JSON, a success naming another user, no answer in time): each has
//     to say "not authenticated" and let Synapse go on to the next.
//
// One Synapse per backend serves every case, configured with both.

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/mxidp/mxidp/storage/storagetest"
)

// restAuthModule is the shipped Synapse module, read where the
// repository keeps it (tests run in cmd/mxidp).
const restAuthModule = "../../contrib/synapse/mxidp_rest_auth.py"

// legacyUsers are the platform's accounts the cases sign in as, one per
// case so that a disabled or throttled account spoils no other case.
var legacyUsers = map[string]string{
	"alice": "alice-sso-" + randomAlnum(12),  // SSO, logout at mxidp
	"bob":   "bob-sso-" + randomAlnum(12),    // SSO, disabled by the operator
	"carol": "carol-rest-" + randomAlnum(12), // REST password
	"dave":  "dave-rest-" + randomAlnum(12),  // REST password, throttled
	"erin":  "erin-rest-" + randomAlnum(12),  // REST password, a wrong one first
}

// badRESTAnswers serves, under each path, an answer to check_credentials
// that must not log anyone in; "/slow" answers only after the module's
// timeout, and only for erin (so that other logins are not slowed down).
func badRESTAnswers(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			User struct{ ID string } `json:"user"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		switch prefix, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/"); prefix {
		case "status500":
			http.Error(w, `{"auth":{"success":true}}`, http.StatusInternalServerError)
		case "notjson":
			_, _ = w.Write([]byte(`{"auth":{"success":true`))
		case "other":
			_, _ = w.Write([]byte(`{"auth":{"success":true,"mxid":"@mallory:` + synapseServerName + `","profile":{}}}`))
		case "slow":
			if strings.HasPrefix(req.User.ID, "@erin:") {
				select {
				case <-r.Context().Done():
				case <-time.After(5 * time.Second):
				}
			}
			_, _ = w.Write([]byte(`{"auth":{"success":false}}`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// legacyEnv is a started mxidp (OpenID provider and REST service) and the
// Synapse configured against both.
type legacyEnv struct {
	e      *openIDEnv
	syn    *synapse
	client *relyingParty // the Matrix client's page Synapse sends the loginToken to
	block  string        // what synapse-config printed, in homeserver.yaml
}

// startLegacy starts mxidp and a Synapse configured as synapse-config
// says, the client registered with clientFlags added to client add.
func startLegacy(t *testing.T, backend string, clientFlags ...string) *legacyEnv {
	t.Helper()
	env := testEnv(t, backend, "keys:\n  refresh_interval: 100ms\nmatrix:\n  server_name: "+synapseServerName+"\nrest:\n  enabled: true\n")
	env["MXIDP_LISTEN"] = "127.0.0.1:0"
	d := &deployment{t: t, env: env}
	c := &cli{t: t, env: env}
	for name, pw := range legacyUsers {
		c.must(pw+"\n", "user", "add", name, "--password-stdin", "--email", name+"@example.org", "--name", strings.ToUpper(name[:1])+name[1:]+" Legacy")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	e := &openIDEnv{t: t, ctx: ctx, d: d}
	e.connect(d.startOnFreePort())

	// Synapse's URLs are registered before it starts: pick its port now.
	port := freePort(t)
	synURL := "http://127.0.0.1:" + strconv.Itoa(port)
	out := d.cli(append([]string{"client", "add", "synapse", "--skip-consent",
		"--redirect-uri", synURL + "/_synapse/client/oidc/callback",
		"--backchannel-logout-uri", synURL + "/_synapse/client/oidc/backchannel_logout"}, clientFlags...)...)
	secret := clientSecretRE.FindStringSubmatch(out)
	if secret == nil {
		t.Fatalf("client add printed no secret: %q", out)
	}
	dir := t.TempDir()
	secretPath := filepath.Join(dir, "mxidp-client-secret")
	block := d.cli("synapse-config", "--client", "synapse", "--idp-name", "Our Platform", "--secret-path", secretPath)

	module, err := os.ReadFile(restAuthModule)
	if err != nil {
		t.Fatal(err)
	}
	bad := badRESTAnswers(t)
	var modules string
	for _, endpoint := range []string{
		"http://127.0.0.1:" + strconv.Itoa(freePort(t)), // nothing listens
		bad.URL + "/status500", bad.URL + "/notjson", bad.URL + "/other",
		bad.URL + "/slow",
		e.issuer, // mxidp
	} {
		modules += "  - module: mxidp_rest_auth.RestAuthProvider\n    config:\n      endpoint: " + yamlString(endpoint) + "\n"
		if strings.HasSuffix(endpoint, "/slow") {
			modules += "      timeout: 0.5\n"
		}
	}

	l := &legacyEnv{e: e, client: newRelyingParty(t), block: block}
	// The Matrix client is in sso.client_whitelist, as Element Web usually
	// is: Synapse's callback sends the browser straight on to it, so the
	// redirect chain that follows mxidp's login form reaches an origin
	// mxidp never heard of (no form-action may stop it).
	l.syn = startSynapse(t, synapseOptions{Port: port, Dir: dir,
		Files: map[string]string{"mxidp-client-secret": secret[1], "mxidp_rest_auth.py": string(module)},
		YAML: block + `sso:
  client_whitelist: [` + yamlString(l.client.srv.URL+"/") + `]
password_config:
  localdb_enabled: false
modules:
` + modules})
	return l
}

// yamlString quotes s for YAML (a JSON string is a YAML one).
func yamlString(s string) string { return string(mustJSON(s)) }

// ssoLogin signs username in through Synapse's SSO redirect in a browser
// of its own and redeems the loginToken; it returns the browser, the
// Matrix access token and device.
func (l *legacyEnv) ssoLogin(t *testing.T, c *chrome, username string) (b *tab, token, device string) {
	t.Helper()
	b = c.user(t)
	redirect := l.syn.URL + "/_matrix/client/v3/login/sso/redirect?" +
		url.Values{"redirectUrl": {l.client.srv.URL + "/element/callback"}}.Encode()
	b.do("open Synapse's SSO redirect", chromedp.Navigate(redirect))
	b.signIn(username, legacyUsers[username])
	back := l.client.callback(t, b)
	loginToken := back.Get("loginToken")
	if loginToken == "" {
		t.Fatalf("Synapse sent the Matrix client back without a loginToken: %v", back)
	}
	noteSecret(loginToken)
	status, got := l.syn.request(http.MethodPost, "/_matrix/client/v3/login", "",
		map[string]any{"type": "m.login.token", "token": loginToken})
	token, _ = got["access_token"].(string)
	device, _ = got["device_id"].(string)
	if status != http.StatusOK || token == "" || device == "" {
		t.Fatalf("POST /login m.login.token: %d %v", status, got)
	}
	noteSecret(token)
	l.wantWhoami(t, token, username, device)
	return b, token, device
}

// wantWhoami asserts that token is username's on device.
func (l *legacyEnv) wantWhoami(t *testing.T, token, username, device string) {
	t.Helper()
	want := "@" + username + ":" + synapseServerName
	if status, user, dev := l.syn.whoami(token); status != http.StatusOK || user != want || dev != device {
		t.Errorf("whoami: %d %q %q; want 200 %s on device %s", status, user, dev, want, device)
	}
}

// waitLoggedOut waits up to 10 s for Synapse to refuse token.
func (l *legacyEnv) waitLoggedOut(t *testing.T, token, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, _, _ := l.syn.whoami(token)
		if status == http.StatusUnauthorized {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: whoami still answers %d after 10 s; want 401", what, status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// passwordLogin is Matrix's m.login.password with a user identifier.
func (l *legacyEnv) passwordLogin(user, password string) (int, map[string]any) {
	return l.syn.request(http.MethodPost, "/_matrix/client/v3/login", "", map[string]any{
		"type":       "m.login.password",
		"identifier": map[string]any{"type": "m.id.user", "user": user},
		"password":   noteSecret(password),
	})
}

func wantForbidden(t *testing.T, what string, status int, got map[string]any) {
	t.Helper()
	if status != http.StatusForbidden || got["errcode"] != "M_FORBIDDEN" || got["access_token"] != nil {
		t.Errorf("%s: %d %v; want 403 M_FORBIDDEN", what, status, got)
	}
}

var oidcErrorRE = regexp.MustCompile(`(?m)^.*synapse\.handlers\.(oidc|sso) (ERROR|CRITICAL).*$`)

func TestSynapseLegacyLoginsThroughOIDCAndTheRESTPasswordDoor(t *testing.T) {
	c := newChrome(t)
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			l := startLegacy(t, backend)

			// Synapse accepted the printed block and mxidp's discovery:
			// it offers the provider's button, tokens and passwords.
			t.Run("login flows offer mxidp and passwords", func(t *testing.T) {
				status, got := l.syn.request(http.MethodGet, "/_matrix/client/v3/login", "", nil)
				var types []string
				var idp []any
				flows, _ := got["flows"].([]any)
				for _, f := range flows {
					flow, _ := f.(map[string]any)
					kind, _ := flow["type"].(string)
					types = append(types, kind)
					if kind == "m.login.sso" {
						idp, _ = flow["identity_providers"].([]any)
					}
				}
				if status != http.StatusOK || !slices.Contains(types, "m.login.token") || !slices.Contains(types, "m.login.password") || len(idp) != 1 {
					t.Fatalf("GET /login: %d %v", status, got)
				}
				if first, _ := idp[0].(map[string]any); first["id"] != "oidc-mxidp" || first["name"] != "Our Platform" {
					t.Errorf("identity provider %v; want id oidc-mxidp, name Our Platform", idp[0])
				}
				if bad := oidcErrorRE.FindAllString(l.syn.log(), -1); len(bad) > 0 {
					t.Errorf("Synapse logged errors about the provider:\n%s", strings.Join(bad, "\n"))
				}
			})

			// SSO twice for alice, in two browsers (two mxidp sessions):
			// the Matrix user is @alice with mxidp's profile; logging out
			// at mxidp in one browser (confirmed on the page) ends that
			// browser's Matrix device only.
			t.Run("sso login, then logout at mxidp ends that Matrix session", func(t *testing.T) {
				first, token, device := l.ssoLogin(t, c, "alice")
				_, otherToken, otherDevice := l.ssoLogin(t, c, "alice")
				if device == otherDevice {
					t.Fatalf("two logins share the device %s", device)
				}
				if got := l.syn.devices("alice"); !slices.Contains(got, device) || !slices.Contains(got, otherDevice) {
					t.Errorf("Synapse's devices for alice: %v; want %s and %s", got, device, otherDevice)
				}
				status, profile := l.syn.request(http.MethodGet, "/_matrix/client/v3/profile/@alice:"+synapseServerName, token, nil)
				if status != http.StatusOK || profile["displayname"] != "Alice Legacy" {
					t.Errorf("alice's Matrix profile: %d %v; want the display name Alice Legacy", status, profile)
				}
				status, pids := l.syn.request(http.MethodGet, "/_matrix/client/v3/account/3pid", token, nil)
				if list, _ := pids["threepids"].([]any); status != http.StatusOK || len(list) != 1 || dig(list[0].(map[string]any), "address") != "alice@example.org" {
					t.Errorf("alice's Matrix 3PIDs: %d %v; want alice@example.org", status, pids)
				}

				first.do("log out at mxidp", chromedp.Navigate(l.e.meta.EndSession),
					chromedp.WaitVisible(chromedp.CSS(`form button[type=submit]`)))
				if h1 := first.text("h1"); h1 != "Sign out?" {
					t.Errorf("end_session without a hint showed %q; want the confirmation", h1)
				}
				first.do("confirm", chromedp.Click(chromedp.CSS(`form button[type=submit]`)),
					chromedp.WaitVisible(chromedp.CSS("h1")))
				l.waitLoggedOut(t, token, "the logged-out browser's Matrix token")
				l.wantWhoami(t, otherToken, "alice", otherDevice)
				if got := l.syn.devices("alice"); !slices.Equal(got, []string{otherDevice}) {
					t.Errorf("Synapse's devices for alice after the logout: %v; want only %s", got, otherDevice)
				}
			})

			// Disabling a user at mxidp ends their Matrix session, and
			// Synapse's password door refuses them too.
			t.Run("sso login, then user disable ends the Matrix session", func(t *testing.T) {
				_, token, _ := l.ssoLogin(t, c, "bob")
				l.e.d.cli("user", "disable", "bob")
				l.waitLoggedOut(t, token, "a disabled user's Matrix token")
				if got := l.syn.devices("bob"); len(got) != 0 {
					t.Errorf("Synapse's devices for disabled bob: %v; want none", got)
				}
				status, got := l.passwordLogin("bob", legacyUsers["bob"])
				wantForbidden(t, "a disabled user's right password", status, got)
			})

			t.Run("rest password: the right password logs in", func(t *testing.T) {
				for _, typed := range []string{"carol", "@carol:" + synapseServerName} {
					status, got := l.passwordLogin(typed, legacyUsers["carol"])
					token, _ := got["access_token"].(string)
					device, _ := got["device_id"].(string)
					if status != http.StatusOK || token == "" {
						t.Fatalf("password login as %q: %d %v", typed, status, got)
					}
					noteSecret(token)
					l.wantWhoami(t, token, "carol", device)
				}
				status, profile := l.syn.request(http.MethodGet, "/_matrix/client/v3/profile/@carol:"+synapseServerName, "", nil)
				if status != http.StatusOK || profile["displayname"] != "Carol Legacy" {
					t.Errorf("carol's Matrix profile: %d %v; want the display name from mxidp", status, profile)
				}
				if got := l.syn.devices("carol"); len(got) != 2 {
					t.Errorf("Synapse's devices for carol: %v; want the two logins'", got)
				}
			})

			// The shipped module on the first login of a user with a display
			// name and a verified e-mail (the third-party provider's fork
			// fails exactly this one on current Synapse, docs/rest.md). The
			// broken endpoints before mxidp in Synapse's list each logged
			// why they refused, and let mxidp decide.
			t.Run("rest password: the first login creates the account with mxidp's profile, a wrong password none", func(t *testing.T) {
				erin := "@erin:" + synapseServerName
				if !strings.Contains(l.block, "#   - module: mxidp_rest_auth.RestAuthProvider\n") {
					t.Errorf("synapse-config with rest.enabled does not name the shipped module:\n%s", l.block)
				}
				status, got := l.passwordLogin("erin", "not-"+legacyUsers["erin"])
				wantForbidden(t, "erin's wrong password", status, got)
				if status, profile := l.syn.request(http.MethodGet, "/_matrix/client/v3/profile/"+erin, "", nil); status != http.StatusNotFound {
					t.Errorf("erin's Matrix profile after a wrong password: %d %v; want 404, no account", status, profile)
				}
				status, got = l.passwordLogin("erin", legacyUsers["erin"])
				token, _ := got["access_token"].(string)
				device, _ := got["device_id"].(string)
				if status != http.StatusOK || token == "" {
					t.Fatalf("erin's first login with the right password: %d %v", status, got)
				}
				noteSecret(token)
				l.wantWhoami(t, token, "erin", device)
				status, profile := l.syn.request(http.MethodGet, "/_matrix/client/v3/profile/"+erin, token, nil)
				if status != http.StatusOK || profile["displayname"] != "Erin Legacy" {
					t.Errorf("erin's Matrix profile: %d %v; want the display name Erin Legacy", status, profile)
				}
				status, pids := l.syn.request(http.MethodGet, "/_matrix/client/v3/account/3pid", token, nil)
				list, _ := pids["threepids"].([]any)
				if status != http.StatusOK || len(list) != 1 {
					t.Fatalf("erin's Matrix 3PIDs: %d %v; want erin@example.org", status, pids)
				}
				pid, _ := list[0].(map[string]any)
				if pid["medium"] != "email" || pid["address"] != "erin@example.org" || pid["validated_at"] == nil {
					t.Errorf("erin's Matrix 3PID %v; want the validated e-mail erin@example.org", pid)
				}
				log := l.syn.log()
				for _, want := range []string{
					"mxidp_rest_auth: " + erin + " not authenticated: mxidp unreachable at http://127.0.0.1:",
					"mxidp_rest_auth: " + erin + " not authenticated: mxidp answered HTTP 500",
					"mxidp_rest_auth: " + erin + " not authenticated: mxidp's answer is not JSON",
					"mxidp_rest_auth: mxidp accepted " + erin + " as '@mallory:" + synapseServerName + "': not authenticated",
					"mxidp_rest_auth: " + erin + " not authenticated: mxidp did not answer within 0.5 s",
					"mxidp_rest_auth: mxidp refused " + erin,
					"mxidp_rest_auth: registered " + erin + " with 1 e-mail address(es) from mxidp",
					"mxidp_rest_auth: mxidp accepted " + erin,
				} {
					if !strings.Contains(log, want) {
						t.Errorf("Synapse's log lacks %q", want)
					}
				}
				for name, pw := range legacyUsers {
					if strings.Contains(log, pw) {
						t.Errorf("Synapse's log shows %s's password", name)
					}
				}
				if got := l.syn.devices("mallory"); len(got) != 0 {
					t.Errorf("Synapse's devices for mallory: %v; want none", got)
				}
			})

			t.Run("rest password: a wrong password, another spelling or an unknown user is 403 M_FORBIDDEN", func(t *testing.T) {
				status, got := l.passwordLogin("carol", "not-"+legacyUsers["carol"])
				wantForbidden(t, "wrong password", status, got)
				status, got = l.passwordLogin("Carol", legacyUsers["carol"])
				wantForbidden(t, "the right password under an upper-case spelling", status, got)
				status, got = l.passwordLogin("@carol:elsewhere.example", legacyUsers["carol"])
				wantForbidden(t, "the right password under a foreign server name", status, got)
				status, got = l.passwordLogin("zed", "whatever-"+randomAlnum(8))
				wantForbidden(t, "unknown user", status, got)
			})

			// mxidp's throttle holds behind Synapse (whose own rate limits
			// are out of the way here): after the burst of wrong passwords
			// even the right one is refused, without a password check.
			t.Run("rest password: the throttle refuses the right password after the burst", func(t *testing.T) {
				for i := range 5 {
					status, got := l.passwordLogin("dave", "guess-"+randomAlnum(8))
					wantForbidden(t, "wrong guess "+strconv.Itoa(i+1), status, got)
				}
				status, got := l.passwordLogin("dave", legacyUsers["dave"])
				wantForbidden(t, "the right password after five wrong ones", status, got)
				cl := &cli{t: t, env: l.e.d.env}
				failed := auditJSONOf(t, cl, "--user", "dave", "--event", "login.failed")
				throttled := auditJSONOf(t, cl, "--user", "dave", "--event", "login.throttled")
				if n, m := countDetail(failed, "rest: wrong password"), countDetail(throttled, "rest, by account"); n != 5 || m != 1 {
					t.Errorf("audit: %d wrong passwords checked, %d refused by the throttle; want 5 and 1", n, m)
				}
				if got := l.syn.devices("dave"); len(got) != 0 {
					t.Errorf("Synapse's devices for dave: %v; want none", got)
				}
			})
		})
	}
}
