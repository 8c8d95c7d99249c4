package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/mxidp/mxidp/storage/storagetest"
)

// Attacks on the REST door (check_credentials, ma1sd's backend) against a
// started mxidp with the default rest.allowed_networks and trusted_proxies
// (loopback both): the test's requests come from loopback, as they would
// through a reverse proxy on the same host.

// startRESTWith is startREST with further rest options (indented under
// the fixture's rest:).
func startRESTWith(t *testing.T, backend, restYAML string) *server {
	t.Helper()
	env := testEnv(t, backend, restFixture+restYAML)
	env["MXIDP_ISSUER"] = "http://127.0.0.1:8080"
	env["MXIDP_LISTEN"] = "127.0.0.1:0"
	(&cli{t: t, env: env}).must("", "migrate")
	seedREST(t, (&cli{t: t, env: env}).store())
	return (&deployment{t: t, env: env}).start()
}

// restPost posts body with headers and returns the status and the
// decoded JSON answer.
func restPost(t *testing.T, url, body string, headers map[string]string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("POST %s: %d answer %q is no JSON object", url, resp.StatusCode, raw)
	}
	return resp.StatusCode, got
}

// restPasswordChecks returns the REST password-check counters of /metrics.
func restPasswordChecks(t *testing.T, s *server) []string {
	t.Helper()
	_, metrics := s.get("/metrics")
	var lines []string
	for _, l := range strings.Split(string(metrics), "\n") {
		if strings.HasPrefix(l, `mxidp_password_checks_total{door="rest"`) {
			lines = append(lines, l)
		}
	}
	return lines
}

// A same-host proxy connects from loopback, which rest.allowed_networks
// allows; the client it forwards from the internet is judged instead and
// refused before any password check or lookup, by either header and
// however it is spelled. A header the proxy passes that cannot be read,
// or two that disagree (a client's forged Forwarded beside the proxy's
// X-Forwarded-For), are refused too. A loopback client the proxy names
// passes.
func TestRESTRefusesInternetClientsForwardedByATrustedProxy(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			s := startRESTWith(t, backend, "")
			endpoints := []struct{ path, body string }{
				{ccPath, cc("@alice:example.org", alicePW)},
				{restPrefixes[0] + "/auth/login", al("@alice:example.org", "alice", "example.org", alicePW)},
				{restPrefixes[0] + "/directory/user/search", `{"by":"name","search_term":"alice"}`},
				{restPrefixes[1] + "/identity/single", `{"lookup":{"medium":"email","address":"alice.liddell@example.com"}}`},
				{restPrefixes[0] + "/identity/bulk", `{"lookup":[{"medium":"email","address":"alice.liddell@example.com"}]}`},
			}
			for _, headers := range []map[string]string{
				{"X-Forwarded-For": "203.0.113.7"},
				{"X-Forwarded-For": "127.0.0.1, 203.0.113.7"}, // the client wrote the first hop
				{"Forwarded": "for=203.0.113.7"},
				{"Forwarded": `for="[2001:db8::7]:4711";proto=https`},
				{"X-Forwarded-For": "nonsense"},
				{"Forwarded": "for=unknown"},
				{"X-Forwarded-For": "203.0.113.7", "Forwarded": "for=127.0.0.1"},
			} {
				for _, e := range endpoints {
					status, got := restPost(t, s.url+e.path, e.body, headers)
					if status != http.StatusForbidden || got["errcode"] != "M_FORBIDDEN" {
						t.Errorf("%s with %v: %d %v; want 403 M_FORBIDDEN", e.path, headers, status, got)
					}
				}
			}
			if checks := restPasswordChecks(t, s); len(checks) != 0 {
				t.Errorf("refused requests checked passwords: %v", checks)
			}
			if events := auditJSONOf(t, &cli{t: t, env: s.env}, "--event", "login"); len(events) != 0 {
				t.Errorf("refused requests reached the audit log: %+v", events)
			}

			for _, headers := range []map[string]string{
				{"X-Forwarded-For": "127.0.0.1"},
				{"Forwarded": `for="[::1]:5555"`},
				{"X-Forwarded-For": "::1", "Forwarded": `for="[::1]"`},
			} {
				status, got := restPost(t, s.url+ccPath, cc("@alice:example.org", alicePW), headers)
				if status != http.StatusOK || dig(got, "auth", "success") != true {
					t.Errorf("loopback client forwarded with %v: %d %v; want success", headers, status, got)
				}
			}
		})
	}
}

// Bodies that encoding/json reads as alice's right password, by the last
// of duplicate members or a name in another case, are refused with 400
// M_BAD_JSON before any password check, at any depth of the body.
func TestRESTRefusesDuplicateAndWrongCaseMembers(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			s := startRESTWith(t, backend, "")
			pw := noteSecret(alicePW)
			for _, tc := range []struct{ path, body, says string }{
				{ccPath, `{"user":{"id":"@alice:example.org","password":"guess-1","password":"` + pw + `"}}`, "user.password appears twice"},
				{ccPath, `{"user":{"id":"@alice:example.org","password":"guess-1","pass\u0077ord":"` + pw + `"}}`, "user.password appears twice"},
				{ccPath, `{"user":{"id":"@bob:example.org","password":"x"},"user":{"id":"@alice:example.org","password":"` + pw + `"}}`, "user appears twice"},
				{ccPath, `{"user":{"id":"@alice:example.org","password":"` + pw + `"},"x":[{"a":1,"a":2}]}`, "x[0].a appears twice"},
				{ccPath, `{"user":{"id":"@alice:example.org","Password":"` + pw + `"}}`, "user.Password must be spelled password"},
				{ccPath, `{"USER":{"ID":"@alice:example.org","PASSWORD":"` + pw + `"}}`, "USER must be spelled user"},
				{ccPath, `{"user":{"id":"@alice:example.org","password":"guess-2","PASSWORD":"` + pw + `"}}`, "user.PASSWORD must be spelled password"},
				{ccPath, `{"user":{"id":"@alice:example.org","paſſword":"` + pw + `"}}`, "user.paſſword must be spelled password"},
				{restPrefixes[0] + "/auth/login", `{"auth":{"mxid":"@alice:example.org","localpart":"alice","domain":"example.org","password":"guess-3","password":"` + pw + `"}}`, "auth.password appears twice"},
				{restPrefixes[0] + "/auth/login", `{"auth":{"MXID":"@alice:example.org","localpart":"alice","domain":"example.org","password":"` + pw + `"}}`, "auth.MXID must be spelled mxid"},
			} {
				status, got := restPost(t, s.url+tc.path, tc.body, nil)
				msg, _ := got["error"].(string)
				if status != http.StatusBadRequest || got["errcode"] != "M_BAD_JSON" || !strings.Contains(msg, tc.says) {
					t.Errorf("%s %s: %d %v; want 400 M_BAD_JSON saying %q", tc.path, tc.body, status, got, tc.says)
				}
			}
			if checks := restPasswordChecks(t, s); len(checks) != 0 {
				t.Errorf("refused bodies checked passwords: %v", checks)
			}
			if got := postJSON(t, s.url+ccPath, cc("@alice:example.org", alicePW)); dig(got, "auth", "success") != true {
				t.Errorf("the exact body afterwards: %v; want success", got)
			}
		})
	}
}

// An empty rest.allowed_networks answers every address, which the log
// says at start-up; the default list says nothing.
func TestRESTWarnsAtStartUpWhenAllowedNetworksIsEmpty(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			open := startRESTWith(t, backend, "  allowed_networks: []\n")
			warned := false
			for _, l := range strings.Split(open.stderr.String(), "\n") {
				warned = warned || strings.Contains(l, "level=WARN") && strings.Contains(l, "rest.allowed_networks is empty")
			}
			if !warned {
				t.Errorf("no warning about the empty allow-list in the log:\n%s", open.stderr)
			}
			closed := startRESTWith(t, backend, "")
			if log := closed.stderr.String(); strings.Contains(log, "rest.allowed_networks is empty") {
				t.Errorf("a warning about an empty allow-list with the default one:\n%s", log)
			}
		})
	}
}

// The bulk lookup's 8 MiB cap follows the path the REST service routes,
// which merges repeated slashes (docs/rest.md: a base URL ending in "/"
// doubles one); a contact book posted to "…/identity//bulk" was cut at the
// 64 KiB of every other path and answered 413. The other REST paths keep
// theirs, however spelled.
func TestBulkLookupKeepsItsCapHoweverItsPathDoublesSlashes(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			s := startREST(t, backend)
			body := bulk5000() // about 270 KiB
			for _, path := range []string{
				restPrefixes[0] + "/identity/bulk",
				"/" + restPrefixes[0] + "/identity/bulk",
				restPrefixes[0] + "/identity//bulk",
				restPrefixes[1] + "//identity//bulk",
			} {
				if status, got := restPost(t, s.url+path, body, nil); status != 200 {
					t.Errorf("POST %s with %d bytes: %d %v, want 200", path, len(body), status, got)
				}
			}
			for _, path := range []string{
				restPrefixes[0] + "/identity/single",
				"/" + restPrefixes[1] + "//identity/single",
				ccPath,
			} {
				if status, got := restPost(t, s.url+path, body, nil); status != 413 {
					t.Errorf("POST %s with %d bytes: %d %v, want 413", path, len(body), status, got)
				}
			}
		})
	}
}
