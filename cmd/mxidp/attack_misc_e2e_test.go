package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mxidp/mxidp/storage/storagetest"
)

// Attacks that need no account and no client: oversized bodies, a logo
// opened as a document, probing which client IDs exist at the
// authorization endpoint; and operator mistakes that used to go unnoticed
// (a password in the issuer, a lost secret key file).

// staticCSP is what the static files must be served with.
const staticCSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"

// A platform's SVG logo is a document that can carry script. Opened on its
// own (a link in a phishing mail pointing at the identity provider's
// origin), it must run nothing: every static file is served sandboxed,
// with nosniff.
func TestStaticFilesAreServedSandboxedWithoutScript(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			logo := filepath.Join(t.TempDir(), "logo.svg")
			svg := `<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(document.domain)</script>` +
				`<rect width="10" height="10" style="fill:#2a5db0"/></svg>`
			if err := os.WriteFile(logo, []byte(svg), 0o600); err != nil {
				t.Fatal(err)
			}
			d := newDeployment(t, backend)
			d.env["MXIDP_CONFIG"] = writeConfig(t, "branding:\n  logo_file: "+logo+"\n")
			s := d.startOnFreePort()
			for path, ctype := range map[string]string{
				"/static/logo":      "image/svg+xml",
				"/static/mxidp.css": "text/css; charset=utf-8",
				"/static/theme.css": "text/css; charset=utf-8",
			} {
				resp, err := http.Get(s.url + path)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				h := resp.Header
				if resp.StatusCode != http.StatusOK || h.Get("Content-Type") != ctype {
					t.Errorf("GET %s: %d %q; want 200 %q", path, resp.StatusCode, h.Get("Content-Type"), ctype)
				}
				if path == "/static/logo" && string(body) != svg {
					t.Errorf("GET %s: not the configured logo: %.60q", path, body)
				}
				if got := h.Values("Content-Security-Policy"); len(got) != 1 || got[0] != staticCSP {
					t.Errorf("GET %s: Content-Security-Policy %q; want %q", path, got, staticCSP)
				}
				if h.Get("X-Content-Type-Options") != "nosniff" {
					t.Errorf("GET %s: X-Content-Type-Options %q; want nosniff", path, h.Get("X-Content-Type-Options"))
				}
			}
		})
	}
}

// announceBody sends the headers of a POST announcing a body of n bytes,
// sends no body, and returns the answer the server gives within 5 s. A
// server that waits to read the body gives none.
func announceBody(t *testing.T, base, path string, n int64) (*http.Response, error) {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n", path, u.Host, n)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

// letters is an endless body of one letter: a form's key, growing.
type letters struct{}

func (letters) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	return len(p), nil
}

// An unauthenticated flood of oversized bodies: 40 parallel POSTs of 10 MB
// to /authorize used to be read whole and held, pushing the server's
// memory to 850 MB. Every body is capped at 64 KiB before anything parses
// it: a body announced larger is answered 413 at once, unread (the
// server does not even wait for it), with a page for the pages a browser
// shows and JSON for the API; one sent chunked is cut at the cap and
// answered 413; and the flood leaves the server's peak memory within
// 100 MiB of what it was.
func TestOversizedBodiesAreRefusedUnreadWithMemoryBounded(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/PID/status")
	}
	const tenMB = 10_000_000
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			e := startOpenID(t, backend)
			token, _ := url.Parse(e.meta.Token)
			introspect, _ := url.Parse(e.meta.Introspection)
			for _, tc := range []struct{ path, ctype string }{
				{"/authorize", "text/html; charset=utf-8"},
				{"/login", "text/html; charset=utf-8"},
				{"/end_session", "text/html; charset=utf-8"},
				{token.Path, "application/json"},
				{introspect.Path, "application/json"},
			} {
				resp, err := announceBody(t, e.issuer, tc.path, tenMB)
				if err != nil {
					t.Errorf("POST %s announcing %d bytes, none sent: no answer (%v); want 413 at once", tc.path, tenMB, err)
					continue
				}
				if resp.StatusCode != http.StatusRequestEntityTooLarge || resp.Header.Get("Content-Type") != tc.ctype {
					t.Errorf("POST %s announcing %d bytes: %d %q; want 413 %q", tc.path, tenMB, resp.StatusCode, resp.Header.Get("Content-Type"), tc.ctype)
				}
			}

			// Chunked: no length announced, so the cap cuts the reading.
			req, _ := http.NewRequest(http.MethodPost, e.meta.Token, io.LimitReader(letters{}, 200<<10))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if resp, err := http.DefaultClient.Do(req); err != nil {
				t.Errorf("chunked 200 KiB to the token endpoint: %v", err)
			} else {
				resp.Body.Close()
				if resp.StatusCode != http.StatusRequestEntityTooLarge || !isJSON(resp.Header) {
					t.Errorf("chunked 200 KiB to the token endpoint: %d %q; want 413 JSON", resp.StatusCode, resp.Header.Get("Content-Type"))
				}
			}

			pid := e.s.pid()
			before, err := procStatusKiB(pid, "VmRSS")
			if err != nil {
				t.Fatal(err)
			}
			client := &http.Client{Timeout: time.Minute}
			var (
				mu       sync.Mutex
				statuses = map[int]int{}
				dropped  int
				wg       sync.WaitGroup
			)
			for range 40 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					req, _ := http.NewRequest(http.MethodPost, e.issuer+"/authorize", io.LimitReader(letters{}, tenMB))
					req.ContentLength = tenMB
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					resp, err := client.Do(req)
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						// The server answered and closed while the body
						// was still being sent.
						dropped++
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					statuses[resp.StatusCode]++
				}()
			}
			wg.Wait()
			peak, err := procStatusKiB(pid, "VmHWM")
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("40 parallel 10 MB posts: answers %v, %d cut off while sending; RSS %d MiB before, peak %d MiB", statuses, dropped, before>>10, peak>>10)
			if statuses[http.StatusRequestEntityTooLarge] == 0 || statuses[http.StatusRequestEntityTooLarge]+dropped != 40 {
				t.Errorf("40 parallel 10 MB posts to /authorize: answers %v (%d cut off); want every one 413", statuses, dropped)
			}
			if grown := (peak - before) << 10; grown > 100*mib {
				t.Errorf("the flood grew the server's peak memory by %d MiB; want under 100 MiB", grown/mib)
			}
			if status, _ := e.s.get("/readyz"); status != http.StatusOK {
				t.Errorf("/readyz after the flood: %d", status)
			}
		})
	}
}

// Probing for client IDs at the authorization endpoint: an unknown client
// and a redirect URI a registered client has not registered both get the
// error page (never a redirect), and the same one, word for word.
func TestAuthorizeTellsNoUnknownClientFromAnUnregisteredRedirectURI(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		c := e.addClient("synapse")
		pageFor := func(clientID string) page {
			q := url.Values{"client_id": {clientID}, "redirect_uri": {"https://attacker.example/cb"}, "response_type": {"code"},
				"scope": {"openid"}, "state": {"probe-state"}}
			p := newBrowser(t).get(e.issuer + "/authorize?" + q.Encode())
			if p.status != http.StatusBadRequest || p.location != "" {
				t.Errorf("authorize for client %q with a foreign redirect_uri: %d Location %q; want 400 and no redirect", clientID, p.status, p.location)
			}
			p.body = requestIDRE.ReplaceAllString(p.body, "REQUEST-ID")
			return p
		}
		unknown, registered := pageFor("no-such-client"), pageFor(c.id)
		if unknown.status != registered.status || unknown.body != registered.body {
			t.Errorf("an unknown client and an unregistered redirect URI are told apart:\n%d %s\n---\n%d %s",
				unknown.status, unknown.body, registered.status, registered.body)
		}
	})
}

// requestIDRE matches the request IDs mxidp's pages show.
var requestIDRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]+`)

// runServe runs `mxidp serve` with env until it exits, for at most 20 s,
// and returns its exit status (-1 if it had to be stopped) and output.
func runServe(t *testing.T, env map[string]string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), "serve")
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, _ := cmd.CombinedOutput()
	checkLogHasNoSecrets(t, "mxidp serve", string(out))
	return cmd.ProcessState.ExitCode(), string(out)
}

// An issuer with a user name and password (a copy-and-paste from a
// proxy's URL) would be published in discovery and in every token; serve
// refuses it as a configuration error, naming the fix, without repeating
// the password.
func TestServeRefusesAnIssuerWithUserinfo(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			d := newDeployment(t, backend)
			pw := noteSecret("pw-" + randomAlnum(12))
			d.env["MXIDP_ISSUER"] = "https://mxidp:" + pw + "@id.example.org"
			status, out := runServe(t, d.env)
			if status != exitUsage || !strings.Contains(out, `remove the "user:password@" part`) {
				t.Errorf("serve with issuer user:password@: exit %d, output %q; want exit 2 naming the fix", status, out)
			}
		})
	}
}

// The secret key file seals the signing keys in the database. When it is
// lost (a new volume, a typo in the path) on an installation that has
// served before, serve used to write a new one first and only then fail
// on keys it could not open, leaving a wrong file behind. Now it refuses
// at once, says to restore the file, and writes nothing; a fresh
// installation still gets its file.
func TestServeRefusesToReplaceALostSecretKeyFile(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			d := newDeployment(t, backend)
			keyFile := d.env["MXIDP_SECRET_KEY_FILE"]
			if _, err := os.Stat(keyFile); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the secret key file exists before the first start: %v", err)
			}
			s := d.start()
			if _, err := os.Stat(keyFile); err != nil {
				t.Fatalf("a fresh installation got no secret key file: %v", err)
			}
			if status := s.signal(syscall.SIGTERM); status != 0 {
				t.Fatalf("SIGTERM: exit %d", status)
			}
			if err := os.Remove(keyFile); err != nil {
				t.Fatal(err)
			}
			status, out := runServe(t, d.env)
			if (status != exitUsage && status != exitFailure) || !strings.Contains(out, "secret_key_file") || !strings.Contains(out, "restore") {
				t.Errorf("serve without its secret key file: exit %d, output %q; want exit 1 or 2 saying to restore secret_key_file", status, out)
			}
			if _, err := os.Stat(keyFile); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("serve wrote a new secret key file beside keys it cannot open (%v)", err)
			}
		})
	}
}
