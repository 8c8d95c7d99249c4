package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"unicode"

	"github.com/mxidp/mxidp/provider"
)

// printNextGenSynapseConfig prints the matrix_authentication_service block
// for mxidp's next-gen mode, refusing when that mode is not configured:
// Synapse started with the block would then fail every request.
func (a *app) printNextGenSynapseConfig(endpoint, secretPath string) error {
	c, err := a.config()
	if err != nil {
		return err
	}
	// LoadConfig has refused a URL without a secret file and a file
	// without a URL; sharedSecret says what is wrong with the file.
	if !c.Matrix.Synapse.NextGen() {
		return usageError{errors.New("--mode next-gen needs mxidp's next-gen auth configured first:\n" +
			"  make a secret only mxidp can read:\n" +
			"    (umask 077; openssl rand -hex 32 > /etc/mxidp/synapse-secret)\n" +
			"  and set in mxidp's configuration\n" +
			"    matrix.synapse.url: Synapse's client-server listener as mxidp reaches it, like http://127.0.0.1:8008\n" +
			"    matrix.synapse.shared_secret_file: /etc/mxidp/synapse-secret\n" +
			"  then restart mxidp and run this again (docs/next-gen-auth.md)")}
	}
	if _, err := c.Matrix.Synapse.sharedSecret(); err != nil {
		return usageError{err}
	}
	if endpoint == "" {
		endpoint = c.Issuer
	} else if err := checkEndpoint(endpoint); err != nil {
		shown := endpoint
		if u, err := url.Parse(endpoint); err == nil {
			shown = u.Redacted() // a password given by mistake is not echoed
		}
		return usageError{fmt.Errorf("--endpoint %q: %w", shown, err)}
	}
	fmt.Fprint(a.stdout, nextGenSynapseBlock(nextGen{
		Issuer:           c.Issuer,
		Endpoint:         endpoint,
		SecretPath:       secretPath,
		ServerName:       c.Matrix.ServerName,
		SynapseURL:       c.Matrix.Synapse.URL,
		SharedSecretFile: c.Matrix.Synapse.SharedSecretFile,
		Listen:           c.Listen,
	}))
	return nil
}

// checkEndpoint accepts the base URL Synapse's matrix_authentication_service
// endpoint takes: http or https with a host, to which Synapse appends
// "/.well-known/openid-configuration" and "/oauth2/introspect" after
// stripping one trailing "/" (Synapse synapse/api/auth/mas.py).
func checkEndpoint(endpoint string) error {
	u, err := url.Parse(endpoint)
	switch {
	case err != nil:
		return errors.New("not a URL; write it like http://127.0.0.1:8080/")
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.Opaque != "":
		return errors.New("use an http or https URL with a host, like http://127.0.0.1:8080/")
	case u.User != nil:
		return errors.New("remove the user name and password: Synapse authenticates with the shared secret")
	case strings.ContainsAny(endpoint, "?#"):
		return errors.New("remove the ?query or #fragment: Synapse appends paths to the endpoint")
	}
	return nil
}

// nextGen is what the matrix_authentication_service block is made of.
type nextGen struct {
	Issuer           string // mxidp's public issuer
	Endpoint         string // mxidp as Synapse reaches it
	SecretPath       string // the shared secret's file on the Synapse host
	ServerName       string
	SynapseURL       string // Synapse as mxidp reaches it (matrix.synapse.url)
	SharedSecretFile string // the shared secret's file on the mxidp host
	Listen           string
}

// nextGenSynapseBlock renders the homeserver.yaml settings of next-gen auth
// (Synapse docs/usage/configuration/config_documentation.md,
// "matrix_authentication_service"; docs/next-gen-auth.md): the block, the
// settings Synapse refuses next to it (Synapse synapse/config/mas.py,
// check_config_conflicts), the reverse-proxy routes, and the move from
// oidc_providers, all but the YAML as comments. Strings are double-quoted
// YAML (%q); values in comments are quoted when they hold control
// characters, so that none can end a comment.
func nextGenSynapseBlock(g nextGen) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	issuer, _ := url.Parse(g.Issuer)
	endpoint, _ := url.Parse(g.Endpoint)
	synapseURL, _ := url.Parse(g.SynapseURL)
	internal := strings.TrimSuffix(g.Endpoint, "/") != g.Issuer

	w("# mxidp as Synapse's authentication service (next-gen auth: the Matrix OAuth 2.0\n")
	w("# API that Element X needs). Synapse 1.157 or later. Paste under the top level of\n")
	w("# homeserver.yaml; check before you restart Synapse:\n")
	w("#  - the file secret_path names must hold the same bytes as mxidp's\n")
	w("#    matrix.synapse.shared_secret_file,\n")
	w("#      %s\n", comment(g.SharedSecretFile))
	w("#    copied to the Synapse host, readable by Synapse only (mode 0600).\n")
	w("#  - Synapse reaches mxidp at endpoint: it reads\n")
	w("#    {endpoint}/.well-known/openid-configuration and posts every access\n")
	w("#    token to {endpoint}/oauth2/introspect with the secret.\n")
	if internal {
		w("#    %s must be the same mxidp as the issuer\n", comment(g.Endpoint))
		w("#    %s.\n", comment(g.Issuer))
	} else {
		w("#    This is the issuer; an internal address of the same mxidp does too:\n")
		w("#    mxidp synapse-config --mode next-gen --endpoint http://127.0.0.1:8080/\n")
	}
	if endpoint != nil && endpoint.Scheme == "http" && !provider.IsLoopback(endpoint.Hostname()) {
		w("#    endpoint is plain http: the secret and every token cross the network in clear;\n")
		w("#    keep it on a private network, or use https.\n")
	}
	w("#  - mxidp reaches Synapse at %s (matrix.synapse.url)\n", comment(g.SynapseURL))
	w("#    and calls its /_synapse/mas/ API with the secret: that listener needs the\n")
	w("#    client resource, directly, not through the public proxy below, which hides\n")
	w("#    /_synapse/mas.\n")
	if synapseURL != nil && synapseURL.Scheme == "http" && !provider.IsLoopback(synapseURL.Hostname()) {
		w("#    It is plain http: keep it on a private network, or use https.\n")
	}
	w("#  - Synapse verifies no ID token here: each Matrix client picks its own\n")
	w("#    algorithm when it registers (id_token_signed_response_alg: RS256, the\n")
	w("#    default, ES256, or EdDSA where the client verifies Ed25519).\n")
	w("#  - Synapse's server_name must be %s (mxidp's matrix.server_name):\n", comment(g.ServerName))
	w("#    mxidp names users by their localpart, @localpart:%s.\n", comment(g.ServerName))
	w("#  - Synapse refuses to start while any of these is on; remove them or turn\n")
	w("#    them off:\n")
	w("#    password_config.enabled (true or only_for_reauth), enable_registration,\n")
	w("#    enable_registration_captcha, user_consent, oidc_providers, saml2_config,\n")
	w("#    cas_config, jwt_config, password_providers, modules that check passwords\n")
	w("#    (rest_auth_provider.RestAuthProvider, ldap_auth_provider, ...),\n")
	w("#    login_via_existing_session.enabled, refresh_token_lifetime,\n")
	w("#    nonrefreshable_access_token_lifetime, session_lifetime, enable_3pid_changes,\n")
	w("#    experimental_features.msc3861 (this block's experimental predecessor).\n")
	w("#    If homeserver.yaml already sets password_config or enable_registration,\n")
	w("#    change it there instead of adding the keys below a second time.\n")
	w("matrix_authentication_service:\n")
	w("  enabled: true\n")
	w("  endpoint: %q\n", g.Endpoint)
	w("  secret_path: %q\n", g.SecretPath)
	w("password_config:\n")
	w("  enabled: false\n")
	w("enable_registration: false\n")

	w("#\n")
	w("# Reverse proxy (nginx). Clients find mxidp through Synapse's\n")
	w("# /_matrix/client/v1/auth_metadata and go to the issuer for the rest: every path\n")
	w("# below it goes to mxidp (discovery, /authorize, the login and account pages,\n")
	w("# /oauth/token, /revoke, /oauth2/registration, /keys, /userinfo, /static/).\n")
	w("# Synapse keeps /_matrix and /_synapse/client. /_synapse/mas takes the shared\n")
	w("# secret: never make it public. Synapse no longer answers the Matrix login API:\n")
	w("# mxidp does, for bots and clients that log in by password or SSO, so on\n")
	w("# Synapse's host these paths go to mxidp, ahead of the /_matrix location:\n")
	w("#   /_matrix/client/*/login             the login flows; password and token logins\n")
	w("#   /_matrix/client/*/login/sso/redirect[/mxidp]  SSO through mxidp's login page\n")
	w("#   /_matrix/client/*/logout, /logout/all  end the session, or all of the user's\n")
	w("#   /_matrix/client/*/refresh           a new access token for a refresh token\n")
	w("# (* is a version: v3, r0, unstable; /login also api/v1).\n")
	w("#\n")
	mxidp := proxyTarget(g.Listen)
	prefix := ""
	if issuer != nil {
		prefix = strings.TrimSuffix(issuer.EscapedPath(), "/")
	}
	hidden := func(indent string) {
		w("#%s# mxidp's REST service and metrics stay off the public proxy.\n", indent)
		for _, p := range []string{"/_matrix-internal/", "/_ma1sd/", "/_mxisd/"} {
			w("#%slocation ^~ %s%s { return 404; }\n", indent, prefix, p)
		}
		w("#%slocation = %s/metrics { return 404; }\n", indent, prefix)
		if internal {
			w("#%s# Synapse reaches mxidp at its endpoint, not here:\n", indent)
			w("#%slocation = %s/oauth2/introspect { return 404; }\n", indent, prefix)
		}
	}
	toMxidp := func(indent, target string) {
		w("#%s    proxy_pass %s;\n", indent, target)
		w("#%s    proxy_set_header Host $host;\n", indent)
		w("#%s    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n", indent)
		w("#%s    proxy_set_header X-Forwarded-Proto $scheme;\n", indent)
		w("#%s    proxy_set_header Forwarded \"\";\n", indent)
		w("#%s}\n", indent)
	}
	toSynapse := func() {
		w("#       location ^~ /_synapse/mas { return 404; }\n")
		w("#       # The Matrix login API, to mxidp; before the /_matrix location below,\n")
		w("#       # since nginx takes the first regular expression that matches.\n")
		w("#       location ~ %s {\n", compatPathRE)
		toMxidp("       ", mxidp)
		w("#       location ~ ^(/_matrix|/_synapse/client) {\n")
		w("#           proxy_pass %s;\n", comment(synapseOrigin(synapseURL)))
		w("#           proxy_set_header Host $host;\n")
		w("#           proxy_set_header X-Forwarded-For $remote_addr;\n")
		w("#           proxy_set_header X-Forwarded-Proto $scheme;\n")
		w("#           client_max_body_size 50M;\n")
		w("#       }\n")
	}
	host := "id.example.org"
	if issuer != nil {
		host = issuer.Hostname()
	}
	if prefix == "" {
		w("# mxidp on its own host, %s:\n", comment(host))
		w("#\n")
		w("#   server {\n")
		w("#       listen 443 ssl;\n")
		w("#       server_name %s;\n", comment(host))
		hidden("       ")
		w("#       location / {\n")
		toMxidp("       ", mxidp)
		w("#   }\n")
		w("#   server {\n")
		w("#       listen 443 ssl;\n")
		w("#       server_name matrix.example.org;   # Synapse's public_baseurl\n")
		toSynapse()
		w("#   }\n")
	} else {
		w("# mxidp under %s on Synapse's host, %s (the proxy strips the prefix):\n", comment(prefix), comment(host))
		w("#\n")
		w("#   server {\n")
		w("#       listen 443 ssl;\n")
		w("#       server_name %s;\n", comment(host))
		toSynapse()
		hidden("       ")
		w("#       location ^~ %s/ {\n", comment(prefix))
		toMxidp("       ", mxidp+"/")
		w("#   }\n")
	}

	w("#\n")
	w("# Moving from oidc_providers (mxidp as Synapse's OpenID provider before):\n")
	w("#  - Remove the oidc_providers entry for mxidp, and any REST password provider\n")
	w("#    module: Synapse refuses to start with them next to this block.\n")
	w("#  - Matrix IDs stay: mxidp's username is the Matrix localpart in both modes (the\n")
	w("#    old block's localpart_template was {{ user.preferred_username }}), so every\n")
	w("#    user keeps @localpart:%s with its rooms; nobody gets a second account.\n", comment(g.ServerName))
	w("#    If you had changed localpart_template, check it gave the username.\n")
	w("#  - Next-gen auth matches accounts by localpart alone: a Synapse account made\n")
	w("#    without mxidp (say, with a password) now belongs to the mxidp user of that\n")
	w("#    name; one whose name no mxidp user has can no longer log in.\n")
	w("#  - Everyone logs in once more: Synapse now asks mxidp about every access token\n")
	w("#    (application services' tokens aside), and mxidp knows none that Synapse\n")
	w("#    issued itself, so every old session is signed out at once. The new login is\n")
	w("#    a new device: users verify it (recovery key or another device) to read their\n")
	w("#    encrypted history. The old devices stay in Synapse, with no working token;\n")
	w("#    Synapse's delete_stale_devices_after (longer than mxidp's\n")
	w("#    tokens.refresh_token_lifetime) removes them once unused that long.\n")
	w("#  - Remove the old client once Synapse no longer uses it (mxidp client remove\n")
	w("#    CLIENT_ID): Synapse stops serving its back-channel logout URI.\n")
	return b.String()
}

// compatPathRE matches the Matrix login API's paths, which mxidp answers
// for Synapse in next-gen auth (Matrix client-server API, "Login",
// "Logout", "Refresh"; "Client login via SSO"): /login, with
// /login/sso/redirect[/{idpId}], /logout, /logout/all and /refresh under
// any one version (v3, r0, unstable; /login also under api/v1, as
// Synapse served it). The path must end there or go on with "/":
// /rooms/{id}/send/login/{txn} is Synapse's.
const compatPathRE = `^/_matrix/client/(api/v1|[^/]+)/(login|logout|refresh)(/|$)`

// proxyTarget is mxidp's listener as a proxy on the same host reaches it.
func proxyTarget(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://127.0.0.1:8080"
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// synapseOrigin is a URL's scheme and host, for a proxy_pass that keeps the path.
func synapseOrigin(u *url.URL) string {
	if u == nil || u.Host == "" {
		return "http://127.0.0.1:8008"
	}
	return u.Scheme + "://" + u.Host
}

// comment makes a value safe inside a YAML comment: one with a control
// character (a newline would end the comment) is shown quoted.
func comment(s string) string {
	if strings.ContainsFunc(s, unicode.IsControl) {
		return fmt.Sprintf("%q", s)
	}
	return s
}
