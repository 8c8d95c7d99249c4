package main

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"unicode"

	"github.com/mxidp/mxidp/keys"
	"github.com/mxidp/mxidp/storage"
	"github.com/spf13/cobra"
)

// idpIDPattern is Synapse's rule for idp_id (Synapse synapse/config/oidc.py).
var idpIDPattern = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,250}$`)

// Defaults of --secret-path, by mode: the file on the Synapse host that
// holds the OpenID client secret (legacy) or the secret shared with mxidp
// (next-gen).
const (
	legacySecretPath  = "/etc/matrix-synapse/mxidp-client-secret"
	nextGenSecretPath = "/etc/matrix-synapse/mxidp-shared-secret"
)

func (a *app) synapseConfigCommand() *cobra.Command {
	var mode, clientID, idpName, idpID, secretPath, endpoint string
	cmd := &cobra.Command{
		Use:   "synapse-config [--mode legacy] --client CLIENT_ID | --mode next-gen [--endpoint URL]",
		Short: "Print the homeserver.yaml settings that connect Synapse to mxidp",
		Long: "--mode legacy (the default) prints the oidc_providers block: mxidp as an OpenID\n" +
			"provider behind Element's \"Continue with ...\" button.\n" +
			"--mode next-gen prints the matrix_authentication_service block: Synapse hands\n" +
			"every access token to mxidp (the Matrix OAuth 2.0 API, which Element X needs),\n" +
			"with the settings Synapse requires alongside, the reverse-proxy routes, and how\n" +
			"to move from oidc_providers (docs/next-gen-auth.md).",
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			flags := cmd.Flags()
			if strings.ContainsFunc(secretPath, unicode.IsControl) {
				return usageError{fmt.Errorf("--secret-path %q: a file path may not contain control characters", secretPath)}
			}
			switch mode {
			case "legacy":
				if flags.Changed("endpoint") {
					return usageError{errors.New("--endpoint belongs to --mode next-gen; the oidc_providers block names mxidp by its issuer")}
				}
				if clientID == "" {
					return usageError{errors.New("--client is required with --mode legacy: name the client registered for Synapse (mxidp client add synapse ...), or ask for --mode next-gen")}
				}
				if !flags.Changed("secret-path") {
					secretPath = legacySecretPath
				}
				return a.printLegacySynapseConfig(cmd, clientID, idpID, idpName, secretPath)
			case "next-gen":
				for _, name := range []string{"client", "idp-name", "idp-id"} {
					if flags.Changed(name) {
						return usageError{fmt.Errorf("--%s belongs to --mode legacy: in next-gen auth Synapse has no OpenID client and no login button; drop it", name)}
					}
				}
				if !flags.Changed("secret-path") {
					secretPath = nextGenSecretPath
				}
				return a.printNextGenSynapseConfig(endpoint, secretPath)
			default:
				return usageError{fmt.Errorf("--mode %q: use legacy (oidc_providers) or next-gen (matrix_authentication_service)", mode)}
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&mode, "mode", "legacy", "legacy: the oidc_providers block; next-gen: the matrix_authentication_service block")
	f.StringVar(&clientID, "client", "", "legacy: the client registered for Synapse (required)")
	f.StringVar(&idpName, "idp-name", "Platform account", `legacy: the button text in Element: "Continue with NAME"`)
	f.StringVar(&idpID, "idp-id", "mxidp", "legacy: Synapse's idp_id; choose it once, never change it")
	f.StringVar(&secretPath, "secret-path", "", "file on the Synapse host that will hold the client secret (legacy; default "+
		legacySecretPath+") or the shared secret (next-gen; default "+nextGenSecretPath+")")
	f.StringVar(&endpoint, "endpoint", "", "next-gen: mxidp's base URL as Synapse reaches it, e.g. http://127.0.0.1:8080/ (default: the issuer)")
	return cmd
}

// printLegacySynapseConfig prints the oidc_providers block for a client
// registered in mxidp's database.
func (a *app) printLegacySynapseConfig(cmd *cobra.Command, clientID, idpID, idpName, secretPath string) error {
	if !idpIDPattern.MatchString(idpID) {
		return usageError{fmt.Errorf("--idp-id %q: use 1 to 250 of A-Z a-z 0-9 . _ ~ -", idpID)}
	}
	return a.withStore(cmd.Context(), func(c Config, s *storage.Store) error {
		client, err := s.ClientByID(cmd.Context(), clientID)
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("no client %q: register it first with mxidp client add", clientID)
		}
		if err != nil {
			return err
		}
		fmt.Fprint(a.stdout, synapseBlock(c.Issuer, client, idpID, idpName, secretPath))
		fmt.Fprint(a.stdout, restModuleHint(c))
		return nil
	})
}

// synapseAlgs are the algorithms Synapse must accept from mxidp for c:
// its ID tokens' first (logout tokens share it), then its userinfo's
// when that differs (Synapse verifies a JWT userinfo answer with the same
// list, Synapse synapse/handlers/oidc.py _fetch_userinfo).
func synapseAlgs(c storage.Client) []string {
	algs := []string{c.IDTokenAlg}
	if algs[0] == "" {
		algs[0] = keys.DefaultAlgorithm
	}
	if c.UserinfoAlg != "" && c.UserinfoAlg != algs[0] {
		algs = append(algs, c.UserinfoAlg)
	}
	return algs
}

// synapseBlock renders the oidc_providers entry for one client (Synapse
// docs/usage/configuration/config_documentation.md, "oidc_providers"; the
// README's "Connecting Synapse"). Strings are written as double-quoted YAML,
// which JSON-style escaping (%q) produces safely.
func synapseBlock(issuer string, c storage.Client, idpID, idpName, secretPath string) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# mxidp as an OpenID provider for Synapse: paste under the top level of homeserver.yaml.\n")
	w("# Check before you restart Synapse:\n")
	w("#  - issuer must be byte for byte the issuer mxidp publishes (it is, as printed here).\n")
	redirect := "(none registered!)"
	for _, u := range c.RedirectURIs {
		if strings.HasSuffix(u, "/_synapse/client/oidc/callback") {
			redirect = u
		}
	}
	w("#  - Synapse's public_baseurl must make the redirect URI %s.\n", redirect)
	if !c.Public {
		w("#  - write the client secret that `mxidp client add` printed into %s\n", secretPath)
		w("#    (readable by Synapse only); `mxidp client rotate-secret %s` makes a new one.\n", c.ID)
	}
	if c.BackchannelLogoutURI == "" {
		w("#  - no back-channel logout URI is registered: register\n")
		w("#    https://MATRIX/_synapse/client/oidc/backchannel_logout so that logouts reach Synapse.\n")
	}
	algs := synapseAlgs(c)
	if algs[0] == keys.RS256 {
		w("#  - ID tokens are signed with RS256, which every Synapse accepts. ES256 costs a\n")
		w("#    fraction of its CPU and Synapse (authlib) verifies it, as does the Matrix\n")
		w("#    Authentication Service with mxidp as its upstream: `mxidp client set-alg %s\n", c.ID)
		w("#    --id-token-alg ES256`, then print this again. EdDSA only for relying parties\n")
		w("#    that verify Ed25519 (the Matrix Authentication Service does not).\n")
	} else {
		w("#  - ID tokens and logout tokens are signed with %s (mxidp client set-alg): Synapse\n", algs[0])
		w("#    1.126 and later accept only the algorithms listed below, older ones those of\n")
		w("#    mxidp's discovery, %s among them. For Synapse and the Matrix Authentication\n", algs[0])
		w("#    Service pick ES256; EdDSA only where the relying party verifies Ed25519.\n")
	}
	w("oidc_providers:\n")
	w("  - idp_id: %q\n", idpID)
	w("    idp_name: %q\n", idpName)
	w("    idp_brand: \"mxidp\"\n")
	w("    issuer: %q\n", issuer)
	w("    client_id: %q\n", c.ID)
	if c.Public {
		w("    client_auth_method: \"none\"\n")
		w("    pkce_method: \"always\"\n")
	} else {
		w("    client_secret_path: %q\n", secretPath)
		w("    client_auth_method: \"client_secret_basic\"\n")
	}
	if algs[0] != keys.RS256 {
		quoted := make([]string, len(algs))
		for i, a := range algs {
			quoted[i] = fmt.Sprintf("%q", a)
		}
		w("    id_token_signing_alg_values_supported: [%s]\n", strings.Join(quoted, ", "))
	}
	w("    scopes: [\"openid\", \"profile\", \"email\"]\n")
	w("    backchannel_logout_enabled: true\n")
	w("    user_mapping_provider:\n")
	w("      config:\n")
	w("        subject_template: \"{{ user.sub }}\"\n")
	w("        localpart_template: \"{{ user.preferred_username }}\"\n")
	w("        display_name_template: \"{{ user.name }}\"\n")
	w("        email_template: \"{{ user.email }}\"\n")
	return b.String()
}

// restModuleHint is, when the REST service is on, the commented modules
// entry for the Synapse module mxidp ships for the password door
// (contrib/synapse/mxidp_rest_auth.py, docs/rest.md); "" otherwise.
func restModuleHint(c Config) string {
	if !c.REST.Enabled {
		return ""
	}
	endpoint := "http://MXIDP-INTERNAL-ADDRESS:PORT"
	if host, port, err := net.SplitHostPort(c.Listen); err == nil {
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			host = "127.0.0.1" // reachable there if Synapse runs on the same host
		}
		endpoint = "http://" + net.JoinHostPort(host, port)
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# The REST service is on (rest.enabled): for password logins through mxidp, copy\n")
	w("# contrib/synapse/mxidp_rest_auth.py onto Synapse's Python path and add (docs/rest.md;\n")
	w("# Synapse's REST password provider works with older Synapse versions only):\n")
	w("# modules:\n")
	w("#   - module: mxidp_rest_auth.RestAuthProvider\n")
	w("#     config:\n")
	w("#       endpoint: %q  # mxidp as Synapse reaches it, inside rest.allowed_networks\n", endpoint)
	return b.String()
}
