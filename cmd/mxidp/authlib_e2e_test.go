package main

// End-to-end test with the relying-party library Synapse itself uses:
// testdata/authlib_rp.py drives a started mxidp with Debian's
// python3-authlib, making Synapse's calls in Synapse's order (Synapse
// synapse/handlers/oidc.py: discovery, authorization, code exchange, ID
// token and userinfo), once per client authentication method, on every
// storage backend.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mxidp/mxidp/storage/storagetest"
)

// authlibPython is Debian's interpreter: python3-authlib is installed for
// it, not for whatever python3 comes first on PATH.
const authlibPython = "/usr/bin/python3"

// authlibVersion returns the authlib that authlibPython imports. Without
// one the test fails where the suite must be complete (make test and CI set
// MXIDP_TEST_POSTGRES_REQUIRED=1) and is skipped elsewhere.
func authlibVersion(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(authlibPython, "-c", "import authlib, requests; print(authlib.__version__)").CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("%s cannot import authlib and requests (%v: %s); install them with: apt-get install python3-authlib python3-requests",
			authlibPython, err, strings.TrimSpace(string(out)))
		if os.Getenv("MXIDP_TEST_POSTGRES_REQUIRED") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return strings.TrimSpace(string(out))
}

// authlibChecks are the lines the script prints when mxidp passes; two
// more name the client authentication method.
var authlibChecks = []string{
	"discovery is 200 JSON",
	"discovered issuer equals the configured issuer",
	"validate_issuer",
	"validate_authorization_endpoint",
	"validate_token_endpoint",
	"validate_token_endpoint_auth_methods_supported",
	"validate_code_challenge_methods_supported",
	"code_challenge_methods_supported has S256",
	"validate_response_types_supported",
	"response_types_supported has code",
	"validate_jwks_uri",
	"userinfo_endpoint present",
	"userinfo_endpoint secure transport",
	"JWKS has unique signing keys",
	"state/nonce/verifier like Synapse's",
	"authorization reaches the login form",
	"login redirects to the callback",
	"callback carries code and state",
	"ID token accepted by authlib CodeIDToken (user_profile_method: auto)",
	"ID token accepted with at_hash checked (user_profile_method: userinfo_endpoint)",
	"ID token iss, sub, aud, azp, exp, iat",
	"ID token auth_time, amr, nbf types",
	"ID token carries the claims Synapse maps",
	"ID token sid is a non-empty string",
	"userinfo with the Bearer token",
	"userinfo refuses a bad token with 401",
}

// authlibAlgChecks are the lines that name the ID tokens' algorithm.
func authlibAlgChecks(alg string) []string {
	return []string{"ID token header alg " + alg + " and kid in the JWKS", "id_token_signing_alg_values_supported has " + alg}
}

// authlibMethodChecks are the lines that name the client authentication
// method ("basic" or "post").
func authlibMethodChecks(method string) []string {
	name := map[string]string{"basic": "client_secret_basic", "post": "client_secret_post"}[method]
	return []string{"token_endpoint_auth_methods_supported has " + name, "token request (" + name + ")"}
}

// runAuthlibRP runs testdata/authlib_rp.py against s with the client's
// secret and the user's password in its environment, and checks that it
// passed with every line of checks; it returns the script's output.
func runAuthlibRP(t *testing.T, s *server, secret, password string, checks []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, authlibPython, append([]string{"testdata/authlib_rp.py"}, args...)...)
	for _, kv := range os.Environ() {
		// Another interpreter's settings must not leak into Debian's.
		if !strings.HasPrefix(kv, "PYTHONHOME=") && !strings.HasPrefix(kv, "PYTHONPATH=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env,
		// authlib accepts only https (and http://localhost:)
		// endpoints otherwise; the test issuer is http://127.0.0.1.
		"AUTHLIB_INSECURE_TRANSPORT=1",
		"AUTHLIB_RP_CLIENT_SECRET="+secret,
		"AUTHLIB_RP_PASSWORD="+password)
	outB, err := cmd.CombinedOutput()
	out := string(outB)
	t.Logf("authlib_rp.py %s:\n%s", strings.Join(args, " "), out)
	if err != nil {
		t.Fatalf("authlib_rp.py failed (%v); mxidp log:\n%s", err, s.stderr)
	}
	lines := strings.Split(out, "\n")
	for _, check := range checks {
		if !slices.Contains(lines, "OK "+check) {
			t.Errorf("missing %q", "OK "+check)
		}
	}
	if !strings.Contains(out, "\nPASS\n") {
		t.Error("the script did not print PASS")
	}
	return out
}

// clientSecretOf returns the secret client add printed.
func clientSecretOf(t *testing.T, out string) string {
	t.Helper()
	m := clientSecretRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("client add printed no secret: %q", out)
	}
	return m[1]
}

func TestAuthlibRelyingPartySignsInLikeSynapseWithBasicAndPost(t *testing.T) {
	version := authlibVersion(t)
	t.Logf("authlib %s", version)
	const password = "alicepassword"
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			d := newDeployment(t, backend)
			s := d.startOnFreePort()
			issuer := d.env["MXIDP_ISSUER"]
			if s.url != issuer {
				t.Fatalf("mxidp listens on %s but its issuer is %s", s.url, issuer)
			}
			c := &cli{t: t, env: d.env}
			c.must(password+"\n", "user", "add", "alice", "--password-stdin", "--email", "alice@example.org", "--name", "Alice Liddell")
			// Synapse's callback, on a port where nothing listens: the
			// script stops when the OP sends the browser there.
			redirectURI := "http://" + freeAddr(t) + "/_synapse/client/oidc/callback"
			// Registered as the README tells operators to register Synapse.
			secret := clientSecretOf(t, c.must("", "client", "add", "synapse", "--skip-consent", "--redirect-uri", redirectURI))

			for _, method := range []string{"basic", "post"} {
				t.Run(method, func(t *testing.T) {
					checks := slices.Concat(authlibChecks, authlibAlgChecks("RS256"), authlibMethodChecks(method))
					runAuthlibRP(t, s, secret, password, checks,
						"--issuer", issuer, "--client-id", "synapse", "--redirect-uri", redirectURI,
						"--username", "alice", "--auth-method", method,
						"--email", "alice@example.org", "--name", "Alice Liddell")
				})
			}
		})
	}
}
