package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mxidp/mxidp/storage/storagetest"
)

// tokenOutput is what `mxidp user token` printed.
type tokenOutput struct{ userID, deviceID, access, refresh string }

var tokenLineRE = regexp.MustCompile(`(?m)^(user_id|device_id|access_token|refresh_token): (\S+)$`)

func parseTokenOutput(t *testing.T, out string) tokenOutput {
	t.Helper()
	var o tokenOutput
	for _, m := range tokenLineRE.FindAllStringSubmatch(out, -1) {
		switch m[1] {
		case "user_id":
			o.userID = m[2]
		case "device_id":
			o.deviceID = m[2]
		case "access_token":
			o.access = noteSecret(m[2])
		case "refresh_token":
			o.refresh = noteSecret(m[2])
		}
	}
	if o.access == "" || o.deviceID == "" || o.userID == "" {
		t.Fatalf("user token printed no user, device or token:\n%s", out)
	}
	return o
}

// usersJSON is `mxidp user list --json`, by username.
func usersJSON(t *testing.T, c *cli) map[string]map[string]any {
	t.Helper()
	var list []map[string]any
	if err := json.Unmarshal([]byte(c.must("", "user", "list", "--json")), &list); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for _, u := range list {
		out[u["username"].(string)] = u
	}
	return out
}

// TestRefusedPasswordLoginSendsTheAccountToTheBrowser: `user
// password-login alice refuse` makes the Matrix login API answer alice's
// right password 403 M_FORBIDDEN naming m.login.sso, with no device made
// in Synapse, audited as login.refused; the login page still signs her
// in, and a Matrix client logs in through it; `allow` undoes it.
func TestRefusedPasswordLoginSendsTheAccountToTheBrowser(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			n := startNextGen(t, backend, "")
			cl := &cli{t: t, env: n.d.env}
			if out := cl.must("", "user", "password-login", "Alice", "refuse"); !strings.Contains(out, "user alice: password login at the Matrix login API refused") {
				t.Errorf("password-login refuse printed %q", out)
			}
			if u := usersJSON(t, cl)["alice"]; u["password_login"] != false {
				t.Errorf("user list --json: %v", u)
			}
			if list := cl.must("", "user", "list"); !regexp.MustCompile(`(?m)^alice\s+enabled\s+refused\s`).MatchString(list) {
				t.Errorf("user list does not show the refusal:\n%s", list)
			}

			status, got := n.compatCall(http.MethodPost, "/_matrix/client/v3/login", "", passwordLoginBody("alice", alicePassword, map[string]any{"device_id": "REFUSEDDEV"}))
			if msg, _ := got["error"].(string); status != http.StatusForbidden || got["errcode"] != "M_FORBIDDEN" || !strings.Contains(msg, "m.login.sso") || got["access_token"] != nil {
				t.Fatalf("right password of a refused account: %d %v; want 403 M_FORBIDDEN naming m.login.sso", status, got)
			}
			status, got = n.compatCall(http.MethodPost, "/_matrix/client/v3/login", "", passwordLoginBody("@alice:"+n.syn.ServerName, alicePassword, nil))
			if status != http.StatusForbidden || !strings.Contains(fmt.Sprint(got["error"]), "m.login.sso") {
				t.Errorf("the same by Matrix ID: %d %v", status, got)
			}
			status, got = n.compatCall(http.MethodPost, "/_matrix/client/v3/login", "", map[string]any{"type": "m.login.password",
				"identifier": map[string]any{"type": "m.id.thirdparty", "medium": "email", "address": aliceEmail}, "password": alicePassword})
			if status != http.StatusForbidden || !strings.Contains(fmt.Sprint(got["error"]), "m.login.sso") {
				t.Errorf("the same by e-mail address: %d %v", status, got)
			}
			if got := n.syn.devices("alice"); len(got) != 0 {
				t.Errorf("a refused login made devices in Synapse: %v", got)
			}
			refusals := auditJSONOf(t, cl, "--event", "login.refused")
			if len(refusals) == 0 || refusals[0].Username != "alice" || !strings.Contains(refusals[0].Detail, "refused for this account") {
				t.Errorf("audit login.refused: %+v", refusals)
			}
			if ev := auditJSONOf(t, cl, "--event", "user.password_login"); len(ev) != 1 || ev[0].Event != "user.password_login_refused" || ev[0].Username != "alice" {
				t.Errorf("audit of the setting: %+v", ev)
			}

			// The browser login is the way in: the login page takes the password.
			tok := n.matrixLogin(n.addClient("element"), "BROWSERDEV")
			if status, user, device := n.syn.whoami(tok.AccessToken); status != http.StatusOK || user != "@alice:"+n.syn.ServerName || device != "BROWSERDEV" {
				t.Errorf("whoami after the browser login: %d %q %q", status, user, device)
			}

			cl.must("", "user", "password-login", "alice", "allow")
			if u := usersJSON(t, cl)["alice"]; u["password_login"] != true {
				t.Errorf("user list --json after allow: %v", u)
			}
			status, got = n.compatCall(http.MethodPost, "/_matrix/client/v3/login", "", passwordLoginBody("alice", alicePassword, map[string]any{"device_id": "ALLOWEDDEV"}))
			token, _ := got["access_token"].(string)
			noteSecret(token)
			if status != http.StatusOK || token == "" {
				t.Fatalf("password login after allow: %d %v", status, got)
			}
			if status, _, device := n.syn.whoami(token); status != http.StatusOK || device != "ALLOWEDDEV" {
				t.Errorf("whoami after allow: %d %q", status, device)
			}
		})
	}
}

// TestRefusedPasswordLoginTellsNothingWithoutThePassword: only the right
// password learns of the refusal. A wrong one for a refused account is
// answered as for an allowed account and for none, counts against the
// throttle, and past the burst the right password gets 429, not the
// refusal.
func TestRefusedPasswordLoginTellsNothingWithoutThePassword(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			n := startNextGen(t, backend, "throttle:\n  account_burst: 3\n  network_burst: 100\n  base_delay: 1m\n  max_delay: 10m\n")
			cl := &cli{t: t, env: n.d.env}
			cl.must(noteSecret("bobs-right-password")+"\n", "user", "add", "bob", "--password-stdin")
			cl.must("", "user", "password-login", "alice", "refuse")
			answer := func(user, password string) string {
				t.Helper()
				status, got := n.compatCall(http.MethodPost, "/_matrix/client/v3/login", "", passwordLoginBody(user, password, nil))
				return fmt.Sprint(status, " ", got["errcode"], " ", got["error"])
			}
			refused := answer("alice", "wrong-"+randomAlnum(12))
			if allowed, nobody := answer("bob", "wrong-"+randomAlnum(12)), answer("nobody", "wrong-"+randomAlnum(12)); refused != allowed || refused != nobody ||
				!strings.HasPrefix(refused, "403 M_FORBIDDEN") {
				t.Errorf("wrong passwords: refused account %q, allowed %q, unknown %q; want one 403 M_FORBIDDEN for all", refused, allowed, nobody)
			}
			for range 2 {
				answer("alice", "wrong-"+randomAlnum(12))
			}
			status, got := n.compatCall(http.MethodPost, "/_matrix/client/v3/login", "", passwordLoginBody("alice", alicePassword, nil))
			if status != http.StatusTooManyRequests || got["errcode"] != "M_LIMIT_EXCEEDED" || strings.Contains(fmt.Sprint(got["error"]), "sso") {
				t.Errorf("the right password past the burst: %d %v; want 429 M_LIMIT_EXCEEDED, not the refusal", status, got)
			}
			if ev := auditJSONOf(t, cl, "--event", "login.refused"); len(ev) != 0 {
				t.Errorf("refusals recorded without the right password: %+v", ev)
			}
			if got := answer("bob", "bobs-right-password"); !strings.HasPrefix(got, "200") {
				t.Errorf("bob's right password: %s", got)
			}
		})
	}
}

// TestUserTokenIssuesAServiceAccountATokenSynapseTakes: `mxidp user
// token` logs a service account in without its password (even one whose
// password login is refused): the printed token is whoami's user and
// device at Synapse, never expires, is stored by ID only and logged
// nowhere; the same --device-id replaces it (the old one inactive); --refreshable gives a
// refresh token that /refresh rotates; logout deletes the device.
func TestUserTokenIssuesAServiceAccountATokenSynapseTakes(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			n := startNextGen(t, backend, "")
			cl := &cli{t: t, env: n.d.env}
			cl.must("", "user", "add", "exo-bot", "--name", "eXo")
			cl.must("", "user", "password-login", "exo-bot", "refuse")
			mxid := "@exo-bot:" + n.syn.ServerName

			out := cl.must("", "user", "token", "exo-bot", "--device-id", "EXOBOT", "--device-name", "eXo integration")
			first := parseTokenOutput(t, out)
			if first.userID != mxid || first.deviceID != "EXOBOT" || first.refresh != "" || !strings.Contains(out, "shown once") || strings.Contains(out, "expires_in") {
				t.Errorf("user token printed:\n%s", out)
			}
			if status, user, device := n.syn.whoami(first.access); status != http.StatusOK || user != mxid || device != "EXOBOT" {
				t.Fatalf("whoami with the printed token: %d %q %q", status, user, device)
			}
			if got := n.syn.devices("exo-bot"); !slices.Equal(got, []string{"EXOBOT"}) {
				t.Errorf("devices in Synapse: %v", got)
			}
			if _, intro := n.introspect(n.secret, first.access); intro["active"] != true || intro["expires_in"] != nil || intro["device_id"] != "EXOBOT" {
				t.Errorf("introspection of the printed token: %v; want active, no expires_in", intro)
			}
			if ev := auditJSONOf(t, cl, "--event", "matrix.token_issued"); len(ev) != 1 || ev[0].Username != "exo-bot" || !strings.Contains(ev[0].Detail, "EXOBOT") {
				t.Errorf("audit: %+v", ev)
			}

			// The same device again: the new token replaces the old one.
			second := parseTokenOutput(t, cl.must("", "user", "token", "EXO-BOT", "--device-id", "EXOBOT", "--refreshable"))
			if second.refresh == "" || second.access == first.access {
				t.Fatalf("a refreshable token: %+v", second)
			}
			// Synapse keeps an introspection answer for a while, and the
			// device stays: mxidp's answer is what changes at once.
			if _, intro := n.introspect(n.secret, first.access); intro["active"] != false {
				t.Errorf("the replaced token is still active: %v", intro)
			}
			if status, _, device := n.syn.whoami(second.access); status != http.StatusOK || device != "EXOBOT" {
				t.Errorf("whoami with the second token: %d %q", status, device)
			}
			if _, intro := n.introspect(n.secret, second.access); intro["expires_in"] == nil {
				t.Errorf("a refreshable token has no expiry: %v", intro)
			}
			status, rot := n.compatCall(http.MethodPost, "/_matrix/client/v3/refresh", "", map[string]any{"refresh_token": second.refresh})
			third, _ := rot["access_token"].(string)
			noteSecret(third)
			if r, _ := rot["refresh_token"].(string); r != "" {
				noteSecret(r)
			}
			if status != http.StatusOK || third == "" {
				t.Fatalf("refresh with the printed refresh token: %d %v", status, rot)
			}
			if status, _, _ := n.syn.whoami(third); status != http.StatusOK {
				t.Errorf("whoami after refresh: %d", status)
			}

			// Stored by ID and hash only.
			refreshHash := sha256.Sum256([]byte(second.refresh))
			var copies, hashes int
			for _, secret := range []string{first.access, second.access, second.refresh} {
				var c int
				if err := cl.store().DB().QueryRow(`SELECT COUNT(*) FROM tokens WHERE id = $1 OR hash = $1`, secret).Scan(&c); err != nil {
					t.Fatal(err)
				}
				copies += c
			}
			if err := cl.store().DB().QueryRow(`SELECT COUNT(*) FROM tokens WHERE hash = $1`,
				base64.RawURLEncoding.EncodeToString(refreshHash[:])).Scan(&hashes); err != nil {
				t.Fatal(err)
			}
			if copies != 0 || hashes != 1 {
				t.Errorf("tokens table: %d rows hold a printed token, %d the refresh token's hash; want 0 and 1", copies, hashes)
			}

			if status, _ := n.compatCall(http.MethodPost, "/_matrix/client/v3/logout", third, nil); status != http.StatusOK {
				t.Fatalf("logout: %d", status)
			}
			waitFor(t, 10*time.Second, "the service account's device deleted", func() bool { return len(n.syn.devices("exo-bot")) == 0 })
			checkLogHasNoSecrets(t, "mxidp serve", n.s.stderr.String())
			checkLogHasNoSecrets(t, "Synapse", n.syn.log())
		})
	}
}

// TestUserTokenRefusesWhatCannotWork: without next-gen auth, for an
// unknown or disabled user, or a bad device, `user token` exits 2 saying
// why, and nothing reaches Synapse or the database; a Synapse that does
// not answer is exit 1, and no device stays reserved.
func TestUserTokenRefusesWhatCannotWork(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			plain := newCLI(t, backend)
			plain.must("", "user", "add", "svc")
			if status, out, errOut := plain.run("", "user", "token", "svc"); status != 2 || out != "" || !strings.Contains(errOut, "next-gen auth") || !strings.Contains(errOut, "matrix.synapse.url") {
				t.Errorf("without next-gen auth: exit %d, %q, %q", status, out, errOut)
			}

			n := startNextGen(t, backend, "")
			cl := &cli{t: t, env: n.d.env}
			cl.must("", "user", "add", "svc")
			cl.must("", "user", "add", "gone")
			cl.must("", "user", "disable", "gone")
			for name, tc := range map[string]struct {
				args []string
				want string
			}{
				"unknown user":         {[]string{"nobody"}, `no user "nobody"`},
				"not a localpart":      {[]string{"@svc:" + n.syn.ServerName}, "no user"},
				"disabled user":        {[]string{"gone"}, "disabled"},
				"bad device ID":        {[]string{"svc", "--device-id", "A B"}, "--device-id"},
				"device ID too long":   {[]string{"svc", "--device-id", strings.Repeat("D", 256)}, "--device-id"},
				"device name too long": {[]string{"svc", "--device-name", strings.Repeat("é", 101)}, "--device-name"},
				"no user":              {nil, "accepts 1 arg"},
			} {
				if status, out, errOut := cl.run("", append([]string{"user", "token"}, tc.args...)...); status != 2 || out != "" || !strings.Contains(errOut, tc.want) {
					t.Errorf("%s: exit %d, stdout %q, stderr %q; want 2 saying %q", name, status, out, errOut, tc.want)
				}
			}
			for _, lp := range []string{"svc", "gone"} {
				if got := n.syn.devices(lp); len(got) != 0 {
					t.Errorf("refusals made devices for %s: %v", lp, got)
				}
			}
			var rows int
			if err := cl.store().DB().QueryRow(`SELECT (SELECT COUNT(*) FROM tokens) + (SELECT COUNT(*) FROM matrix_devices)`).Scan(&rows); err != nil {
				t.Fatal(err)
			}
			if rows != 0 {
				t.Errorf("refusals stored %d tokens or devices", rows)
			}

			// Synapse down: a runtime failure, and the reservation goes.
			n.syn.stop()
			status, out, errOut := cl.run("", "user", "token", "svc", "--device-id", "DOWNDEV")
			if status != 1 || out != "" || !strings.Contains(errOut, "homeserver could not be reached") {
				t.Errorf("Synapse down: exit %d, stdout %q, stderr %q; want 1 saying Synapse could not be reached", status, out, errOut)
			}
			t.Logf("Synapse down: %s", errOut)
			if err := cl.store().DB().QueryRow(`SELECT (SELECT COUNT(*) FROM tokens) + (SELECT COUNT(*) FROM matrix_devices)`).Scan(&rows); err != nil {
				t.Fatal(err)
			}
			if rows != 0 {
				t.Errorf("a failed issue left %d tokens or devices", rows)
			}
		})
	}
}

// TestPasswordLoginCommandRefusals: a verb other than allow or refuse, or
// an unknown user, is exit 2 and changes nothing.
func TestPasswordLoginCommandRefusals(t *testing.T) {
	c := newCLI(t, "sqlite")
	c.must("", "user", "add", "alice")
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"unknown verb": {[]string{"alice", "deny"}, "allow or refuse"},
		"unknown user": {[]string{"nobody", "refuse"}, `no user "nobody"`},
		"no verb":      {[]string{"alice"}, "accepts 2 arg"},
	} {
		if status, out, errOut := c.run("", append([]string{"user", "password-login"}, tc.args...)...); status != 2 || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want 2 saying %q", name, status, out, errOut, tc.want)
		}
	}
	if u := usersJSON(t, c)["alice"]; u["password_login"] != true {
		t.Errorf("after refusals: %v", u)
	}
	if ev := auditJSONOf(t, c, "--event", "user.password_login"); len(ev) != 0 {
		t.Errorf("refused commands were audited: %+v", ev)
	}
}

// TestPlatformUsersPasswordLoginSettingAndToken: with the platform's
// table as the user source (read only), `user password-login` keeps the
// setting in mxidp's database and the Matrix login API refuses the
// platform user's right password; `user token` issues the platform user
// a token Synapse takes; `user list` stays for mxidp's own users.
func TestPlatformUsersPasswordLoginSettingAndToken(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			users := platformUsers(t)[:2]
			n, db := startNextGenOnDjango(t, backend, users, "", "")
			cl := &cli{t: t, env: n.d.env}
			var before int
			if err := db.QueryRow(`SELECT COUNT(*) FROM auth_user`).Scan(&before); err != nil {
				t.Fatal(err)
			}

			cl.must("", "user", "password-login", "ALICE", "refuse")
			status, got := n.compatCall(http.MethodPost, "/_matrix/client/v3/login", "", passwordLoginBody("alice", users[0].password, nil))
			if status != http.StatusForbidden || !strings.Contains(fmt.Sprint(got["error"]), "m.login.sso") {
				t.Errorf("platform alice's right password, refused: %d %v", status, got)
			}
			status, got = n.compatCall(http.MethodPost, "/_matrix/client/v3/login", "", passwordLoginBody("bob", users[1].password, nil))
			token, _ := got["access_token"].(string)
			noteSecret(token)
			if status != http.StatusOK || token == "" {
				t.Errorf("platform bob, not refused: %d %v", status, got)
			}
			if status, _, errOut := cl.run("", "user", "password-login", "nobody", "refuse"); status != 2 || !strings.Contains(errOut, `no user "nobody"`) {
				t.Errorf("an unknown platform user: exit %d, %q", status, errOut)
			}

			tok := parseTokenOutput(t, cl.must("", "user", "token", "alice", "--device-id", "PLATFORMBOT"))
			if status, user, device := n.syn.whoami(tok.access); status != http.StatusOK || user != "@alice:"+n.syn.ServerName || device != "PLATFORMBOT" {
				t.Errorf("whoami with the platform user's printed token: %d %q %q", status, user, device)
			}
			if _, err := db.Exec(`UPDATE auth_user SET is_active = FALSE WHERE id = 1`); err != nil {
				t.Fatal(err)
			}
			if status, out, errOut := cl.run("", "user", "token", "alice"); status != 2 || out != "" || !strings.Contains(errOut, "disabled") {
				t.Errorf("a platform user disabled: exit %d, %q, %q", status, out, errOut)
			}
			var after int
			if err := db.QueryRow(`SELECT COUNT(*) FROM auth_user`).Scan(&after); err != nil || after != before {
				t.Errorf("the platform's table changed: %d rows, then %d (%v)", before, after, err)
			}
		})
	}
}
