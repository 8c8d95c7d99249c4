package main

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/mxidp/mxidp/storage"
	"github.com/spf13/cobra"
)

// idpIDPattern is Synapse's rule for idp_id (Synapse synapse/config/oidc.py).
var idpIDPattern = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,250}$`)

func (a *app) synapseConfigCommand() *cobra.Command {
	var clientID, idpName, idpID, secretPath string
	cmd := &cobra.Command{
		Use:   "synapse-config --client CLIENT_ID [--idp-name NAME]",
		Short: "Print the oidc_providers block for Synapse's homeserver.yaml",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
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
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&clientID, "client", "", "the client registered for Synapse (required)")
	f.StringVar(&idpName, "idp-name", "Platform account", `the button text in Element: "Continue with NAME"`)
	f.StringVar(&idpID, "idp-id", "mxidp", "Synapse's idp_id; choose it once, never change it")
	f.StringVar(&secretPath, "secret-path", "/etc/matrix-synapse/mxidp-client-secret", "file that will hold the client secret on the Synapse host")
	cmd.MarkFlagRequired("client")
	return cmd
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
