package main

// The whole next-gen login as Element does it, by matrix-js-sdk from npm
// (the library Element Web logs in with): testdata/matrix-js/login.mjs is
// the client, headless Chromium the user's browser, Synapse the
// homeserver delegating its tokens to mxidp. The client follows the Matrix
// client-server API's "OAuth 2.0 API": server metadata through Synapse,
// dynamic client registration, the authorization code grant with PKCE and
// the Matrix scopes, refresh, and logout by revocation (RFC 7009).

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/mxidp/mxidp/storage/storagetest"
)

// matrixJSDir holds the driver and the lock file that pins matrix-js-sdk.
const matrixJSDir = "testdata/matrix-js"

// jsClient is one run of login.mjs: the steps it prints, in order, each
// answered by the test before the driver goes on.
type jsClient struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	steps  chan jsStep
	stderr *syncBuffer
	done   chan error
	owed   bool // the last step has not been answered yet
}

// jsStep is one line of the driver: its step name and the whole object.
type jsStep struct {
	Step string `json:"step"`
	raw  []byte
}

func (s jsStep) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(s.raw, v); err != nil {
		t.Fatalf("step %s: %v: %s", s.Step, err, s.raw)
	}
}

// jsResult is how the driver reports a call that may fail: a Matrix
// error keeps its status and errcode, an OAuth 2.0 error its code.
type jsResult struct {
	OK         bool   `json:"ok"`
	UserID     string `json:"user_id"`
	DeviceID   string `json:"device_id"`
	Error      string `json:"error"`
	Status     int    `json:"status"`
	Errcode    string `json:"errcode"`
	OAuthError string `json:"oauth_error"`
}

// jsTokens is a token response as the SDK returns it.
type jsTokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	Scope        string `json:"scope"`
}

// needMatrixJS fails (make test, CI) or skips when Node.js or the
// installed SDK is missing, saying how to get them.
func needMatrixJS(t *testing.T) {
	t.Helper()
	var problem string
	if _, err := exec.LookPath("node"); err != nil {
		problem = "Node.js (node) is not on PATH: install Node.js 20 or later with npm"
	} else if _, err := os.Stat(filepath.Join(matrixJSDir, "node_modules", "matrix-js-sdk", "package.json")); err != nil {
		problem = "matrix-js-sdk is not installed: run .ci/deps (npm ci --prefix cmd/mxidp/testdata/matrix-js)"
	}
	if problem == "" {
		return
	}
	if os.Getenv(storagetest.RequiredEnv) == "1" {
		t.Fatal(problem)
	}
	t.Skip(problem)
}

// startJSClient runs the driver against a homeserver with a redirect URI.
func startJSClient(t *testing.T, homeserver, redirectURI string) *jsClient {
	t.Helper()
	cmd := exec.Command("node", "login.mjs", homeserver, redirectURI)
	cmd.Dir = matrixJSDir
	c := &jsClient{t: t, cmd: cmd, steps: make(chan jsStep, 32), stderr: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = c.stderr
	var err error
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node login.mjs: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			// The SDK's root logger may print to standard output too; the
			// protocol lines are the ones that start with {"step":.
			if !strings.HasPrefix(string(line), `{"step":`) {
				c.stderr.Write(append(append([]byte("stdout: "), line...), '\n'))
				continue
			}
			var s jsStep
			if err := json.Unmarshal(line, &s); err != nil {
				c.stderr.Write([]byte(fmt.Sprintf("unreadable line %q: %v\n", line, err)))
				continue
			}
			s.raw = slices.Clone(line)
			c.steps <- s
		}
		close(c.steps)
		c.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-c.done
		checkLogHasNoSecrets(t, "matrix-js-sdk (login.mjs)", c.stderr.String())
		if t.Failed() {
			t.Logf("login.mjs standard error:\n%s", c.stderr)
		}
	})
	return c
}

// next answers the step before with an acknowledgement unless send
// answered it (the driver goes on only then, so what that step left in
// Synapse and mxidp stays put while the test looks), and returns the next
// step, which must be want; a driver that failed fails the test with what
// it reported.
func (c *jsClient) next(want string) jsStep {
	c.t.Helper()
	if c.owed {
		c.send(map[string]bool{"ok": true})
	}
	select {
	case s, ok := <-c.steps:
		if !ok {
			c.t.Fatalf("login.mjs ended before step %s:\n%s", want, c.stderr)
		}
		if s.Step == "error" {
			c.t.Fatalf("login.mjs failed before step %s: %s", want, s.raw)
		}
		if s.Step != want {
			c.t.Fatalf("login.mjs printed step %s, want %s: %s", s.Step, want, s.raw)
		}
		c.owed = s.Step != "done"
		return s
	case <-time.After(60 * time.Second):
		c.t.Fatalf("login.mjs printed no step %s within a minute:\n%s", want, c.stderr)
		return jsStep{}
	}
}

// send answers the last step.
func (c *jsClient) send(v any) {
	c.t.Helper()
	c.owed = false
	if _, err := c.stdin.Write(append(mustJSON(v), '\n')); err != nil {
		c.t.Fatalf("write to login.mjs: %v", err)
	}
}

// wait waits for the driver to exit, which must be with status 0.
func (c *jsClient) wait() {
	c.t.Helper()
	select {
	case err := <-c.done:
		c.done <- err
		if err != nil {
			c.t.Fatalf("login.mjs: %v:\n%s", err, c.stderr)
		}
	case <-time.After(30 * time.Second):
		c.t.Fatal("login.mjs did not exit after its last step")
	}
}

// matrixError asks Synapse's whoami with a token and returns the status
// and Matrix errcode of the answer.
func matrixError(s *synapse, token string) (int, string) {
	s.t.Helper()
	status, got := s.request(http.MethodGet, "/_matrix/client/v3/account/whoami", token, nil)
	errcode, _ := got["errcode"].(string)
	return status, errcode
}

// TestElementStyleOAuthLoginWithMatrixJSSDK: matrix-js-sdk discovers mxidp
// through Synapse's auth_metadata, registers itself as a native client with
// a loopback redirect, and sends the browser to mxidp with PKCE (S256) and
// the device scope it made; the user signs in on mxidp's form and allows
// the registered client by name on the consent page; the code exchanges
// for tokens that Synapse takes as the user on that device; the refreshed
// token works too; revoking both tokens as Element Web logs out deletes the
// device in Synapse, kills the tokens (401 M_UNKNOWN_TOKEN) and spends the
// refresh token.
func TestElementStyleOAuthLoginWithMatrixJSSDK(t *testing.T) {
	needMatrixJS(t)
	c := newChrome(t)
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			began := time.Now()
			n := startNextGen(t, backend, "")
			started := time.Since(began)
			rp := newRelyingParty(t)
			redirectURI := rp.srv.URL + "/callback"
			js := startJSClient(t, n.syn.URL, redirectURI)

			var meta struct {
				Metadata struct {
					Issuer        string `json:"issuer"`
					Authorization string `json:"authorization_endpoint"`
					Registration  string `json:"registration_endpoint"`
					Revocation    string `json:"revocation_endpoint"`
					Account       string `json:"account_management_uri"`
				} `json:"metadata"`
			}
			js.next("metadata").decode(t, &meta)
			m := meta.Metadata
			if strings.TrimSuffix(m.Issuer, "/") != n.issuer || !strings.HasPrefix(m.Authorization, n.issuer+"/") ||
				!strings.HasPrefix(m.Registration, n.issuer+"/") || !strings.HasPrefix(m.Revocation, n.issuer+"/") ||
				!strings.HasPrefix(m.Account, n.issuer+"/") {
				t.Errorf("Synapse's auth_metadata does not point at mxidp (%s): %+v", n.issuer, m)
			}

			var auth struct {
				URL      string `json:"url"`
				ClientID string `json:"client_id"`
				DeviceID string `json:"device_id"`
				State    string `json:"state"`
				Scope    string `json:"scope"`
			}
			js.next("authorize").decode(t, &auth)
			u, err := url.Parse(auth.URL)
			if err != nil {
				t.Fatal(err)
			}
			q := u.Query()
			scopes := strings.Fields(auth.Scope)
			if auth.ClientID == "" || auth.DeviceID == "" || q.Get("client_id") != auth.ClientID ||
				q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43 ||
				!slices.Contains(scopes, "urn:matrix:client:api:*") ||
				!slices.Contains(scopes, "urn:matrix:client:device:"+auth.DeviceID) || len(scopes) != 2 {
				t.Fatalf("authorization request %s (client %q, device %q); want the registered client, S256 PKCE, "+
					"the API scope and the device's scope", auth.URL, auth.ClientID, auth.DeviceID)
			}
			if origin(auth.URL) != n.issuer {
				t.Fatalf("the SDK sends the browser to %s, not to mxidp (%s)", auth.URL, n.issuer)
			}

			b := c.user(t)
			b.do("open the authorization URL", chromedp.Navigate(auth.URL))
			b.signIn("alice", alicePassword)
			b.do("show the consent page", chromedp.WaitVisible(chromedp.CSS(`button[name=decision][value=allow]`)))
			if body := b.text("main"); !strings.Contains(body, "matrix-js-sdk test") {
				t.Errorf("the consent page does not name the registered client (matrix-js-sdk test):\n%s", body)
			}
			b.do("allow", chromedp.Click(chromedp.CSS(`button[name=decision][value=allow]`)))
			cb := rp.callback(t, b)
			if cb.Get("code") == "" || cb.Get("state") != auth.State {
				t.Fatalf("the loopback redirect got %v; want a code and the state %q", cb, auth.State)
			}
			noteSecret(cb.Get("code"))
			js.send(map[string]string{"code": cb.Get("code"), "state": cb.Get("state")})

			var first jsTokens
			js.next("token").decode(t, &first)
			noteSecret(first.AccessToken)
			noteSecret(first.RefreshToken)
			if first.TokenType != "Bearer" || first.AccessToken == "" || first.RefreshToken == "" {
				t.Errorf("token response %+v; want a bearer access token and a refresh token", first)
			}
			if granted := strings.Fields(first.Scope); len(granted) > 0 &&
				(!slices.Contains(granted, "urn:matrix:client:api:*") || !slices.Contains(granted, "urn:matrix:client:device:"+auth.DeviceID)) {
				t.Errorf("granted scope %q lacks the Matrix API or the device scope", first.Scope)
			}
			wantUser := "@alice:" + synapseServerName
			var me jsResult
			js.next("whoami").decode(t, &me)
			if !me.OK || me.UserID != wantUser || me.DeviceID != auth.DeviceID {
				t.Errorf("whoami through the SDK = %+v; want %s on device %s", me, wantUser, auth.DeviceID)
			}
			if devs := n.syn.devices("alice"); !slices.Contains(devs, auth.DeviceID) {
				t.Errorf("Synapse's devices of alice %v lack %s", devs, auth.DeviceID)
			}

			var second jsTokens
			js.next("refresh").decode(t, &second)
			noteSecret(second.AccessToken)
			noteSecret(second.RefreshToken)
			if second.AccessToken == "" || second.AccessToken == first.AccessToken || second.RefreshToken == first.RefreshToken {
				t.Errorf("refresh returned %+v; want a new access token and a new refresh token", second)
			}
			js.next("whoami_refreshed").decode(t, &me)
			if !me.OK || me.UserID != wantUser || me.DeviceID != auth.DeviceID {
				t.Errorf("whoami with the refreshed token = %+v; want %s on device %s", me, wantUser, auth.DeviceID)
			}
			if devs := n.syn.devices("alice"); !slices.Contains(devs, auth.DeviceID) {
				t.Errorf("after the refresh, Synapse's devices of alice %v lack %s", devs, auth.DeviceID)
			}
			var old jsResult
			js.next("old_access_token").decode(t, &old)
			_, intro := n.introspect(n.secret, first.AccessToken)
			t.Logf("the first access token after the refresh: at Synapse %+v, at mxidp's introspection active=%v", old, intro["active"])

			var revoked struct {
				AccessToken  jsResult `json:"access_token"`
				RefreshToken jsResult `json:"refresh_token"`
			}
			js.next("revoke").decode(t, &revoked)
			if !revoked.AccessToken.OK || !revoked.RefreshToken.OK {
				t.Fatalf("revocation: %+v", revoked)
			}
			revokedAt := time.Now()
			waitFor(t, 10*time.Second, "the device is gone from Synapse after logout", func() bool {
				return !slices.Contains(n.syn.devices("alice"), auth.DeviceID)
			})
			t.Logf("the device was gone from Synapse %v after the revocation answered", time.Since(revokedAt).Round(time.Millisecond))
			js.send(map[string]bool{"device_gone": true})
			var after jsResult
			js.next("whoami_after_logout").decode(t, &after)
			if after.OK || after.Status != http.StatusUnauthorized || after.Errcode != "M_UNKNOWN_TOKEN" {
				t.Errorf("whoami through the SDK after logout = %+v; want 401 M_UNKNOWN_TOKEN", after)
			}
			js.next("refresh_after_logout").decode(t, &after)
			if after.OK || after.OAuthError != "invalid_grant" {
				t.Errorf("refresh after logout = %+v; want invalid_grant (RFC 6749 §5.2)", after)
			}
			js.next("done")
			js.wait()

			for what, token := range map[string]string{"the first": first.AccessToken, "the refreshed": second.AccessToken} {
				if status, errcode := matrixError(n.syn, token); status != http.StatusUnauthorized || errcode != "M_UNKNOWN_TOKEN" {
					t.Errorf("%s access token at Synapse after logout: %d %s; want 401 M_UNKNOWN_TOKEN", what, status, errcode)
				}
			}
			t.Logf("mxidp and Synapse started in %v (Synapse %v); the login, refresh and logout took %v",
				started.Round(time.Millisecond), n.syn.StartTime.Round(time.Millisecond), (time.Since(began) - started).Round(time.Millisecond))
		})
	}
}
