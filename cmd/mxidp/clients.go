package main

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mxidp/mxidp/keys"
	"github.com/mxidp/mxidp/provider"
	"github.com/mxidp/mxidp/storage"
	"github.com/spf13/cobra"
)

func (a *app) clientCommand() *cobra.Command {
	cmd := group(&cobra.Command{Use: "client", Short: "Manage registered OpenID clients (relying parties)"})
	cmd.AddCommand(a.clientAddCommand(), a.clientListCommand(), a.clientRemoveCommand(), a.clientRotateCommand(), a.clientSetAlgCommand())
	return cmd
}

func (a *app) clientAddCommand() *cobra.Command {
	var nc provider.NewClient
	var fromStdin bool
	cmd := &cobra.Command{
		Use:   "add CLIENT_ID --redirect-uri URI [--redirect-uri URI ...]",
		Short: "Register a client; a confidential client's secret is printed once",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			nc.ID = argv[0]
			if err := checkAlgFlags(nc.IDTokenAlg, nc.UserinfoAlg); err != nil {
				return err
			}
			var err error
			if nc.Secret, err = a.secretInput(fromStdin, ""); err != nil {
				return err
			}
			return a.withStore(cmd.Context(), func(c Config, s *storage.Store) error {
				client, secret, err := a.accounts(c, s).AddClient(cmd.Context(), nc)
				if err != nil {
					return err
				}
				kind := "confidential"
				if client.Public {
					kind = "public (PKCE required)"
				}
				fmt.Fprintf(a.stdout, "registered %s client\nclient_id: %s\nid_token_signed_response_alg: %s\n", kind, client.ID, client.IDTokenAlg)
				if client.UserinfoAlg != "" {
					fmt.Fprintf(a.stdout, "userinfo_signed_response_alg: %s\n", client.UserinfoAlg)
				}
				if secret != "" && !fromStdin {
					fmt.Fprintf(a.stdout, "client_secret: %s\n(shown once: only its hash is stored)\n", secret)
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&nc.RedirectURIs, "redirect-uri", nil, "exact redirect URI (repeatable); for Synapse: https://MATRIX/_synapse/client/oidc/callback")
	f.StringArrayVar(&nc.PostLogoutRedirectURIs, "post-logout-redirect-uri", nil, "exact URI allowed after logout (repeatable)")
	f.StringVar(&nc.Name, "name", "", "the name users see on the consent page (default: the client ID)")
	f.BoolVar(&nc.Public, "public", false, "a public client: no secret, PKCE required")
	f.BoolVar(&fromStdin, "secret-stdin", false, "read the client secret from standard input instead of generating one")
	f.BoolVar(&nc.SkipConsent, "skip-consent", false, "do not ask users to consent (first-party clients such as your own Synapse)")
	f.StringVar(&nc.BackchannelLogoutURI, "backchannel-logout-uri", "", "where logout tokens are POSTed; for Synapse: https://MATRIX/_synapse/client/oidc/backchannel_logout")
	f.StringVar(&nc.IDTokenAlg, "id-token-alg", keys.DefaultAlgorithm, "algorithm of the client's ID tokens and logout tokens: "+algChoices)
	f.StringVar(&nc.UserinfoAlg, "userinfo-alg", "", "answer the client's /userinfo calls with a JWT signed with this algorithm ("+algChoices+"); default JSON")
	return cmd
}

// algChoices describes the algorithms a client may be given.
const algChoices = "RS256 (the default, every relying party), ES256 (Synapse, the Matrix Authentication Service), " +
	"EdDSA (only relying parties that verify Ed25519)"

// checkAlgFlags refuses an algorithm mxidp does not offer, as a usage
// error; "" is the default for either.
func checkAlgFlags(idToken, userinfo string) error {
	for _, f := range [][2]string{{"--id-token-alg", idToken}, {"--userinfo-alg", userinfo}} {
		if f[1] != "" {
			if err := keys.CheckAlgorithm(f[1]); err != nil {
				return usageError{fmt.Errorf("%s: %w", f[0], err)}
			}
		}
	}
	return nil
}

func (a *app) clientSetAlgCommand() *cobra.Command {
	var idToken, userinfo string
	var json bool
	cmd := &cobra.Command{
		Use:   "set-alg CLIENT_ID [--id-token-alg ALG] [--userinfo-alg ALG | --userinfo-json]",
		Short: "Change the algorithm a client's tokens are signed with; tokens issued from then on use it",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if err := checkAlgFlags(idToken, userinfo); err != nil {
				return err
			}
			if json && userinfo != "" {
				return usageError{errors.New("--userinfo-json and --userinfo-alg exclude each other")}
			}
			var u *string
			switch {
			case json:
				u = new(string)
			case userinfo != "":
				u = &userinfo
			}
			if idToken == "" && u == nil {
				return usageError{errors.New("name --id-token-alg, --userinfo-alg or --userinfo-json")}
			}
			return a.withStore(cmd.Context(), func(c Config, s *storage.Store) error {
				client, err := a.accounts(c, s).SetClientSigning(cmd.Context(), argv[0], idToken, u)
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "client %s: ID tokens and logout tokens %s, userinfo %s\n", client.ID, client.IDTokenAlg, userinfoKind(client))
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&idToken, "id-token-alg", "", "algorithm of the client's ID tokens and logout tokens: "+algChoices)
	f.StringVar(&userinfo, "userinfo-alg", "", "answer /userinfo with a JWT signed with this algorithm")
	f.BoolVar(&json, "userinfo-json", false, "answer /userinfo with JSON again")
	return cmd
}

// userinfoKind says how /userinfo answers c.
func userinfoKind(c storage.Client) string {
	if c.UserinfoAlg == "" {
		return "JSON"
	}
	return "JWT " + c.UserinfoAlg
}

// clientJSON is a client as `client list --json` prints it: never the hash.
type clientJSON struct {
	ID                     string    `json:"client_id"`
	Public                 bool      `json:"public"`
	RedirectURIs           []string  `json:"redirect_uris"`
	PostLogoutRedirectURIs []string  `json:"post_logout_redirect_uris"`
	SkipConsent            bool      `json:"skip_consent"`
	BackchannelLogoutURI   string    `json:"backchannel_logout_uri"`
	CreatedAt              time.Time `json:"created_at"`
	// Dynamic clients registered themselves (next-gen auth); their name
	// and client_uri are what they said of themselves.
	Dynamic   bool   `json:"dynamic"`
	Name      string `json:"client_name,omitempty"`
	ClientURI string `json:"client_uri,omitempty"`
	// How the client's tokens are signed (OpenID Connect Dynamic Client
	// Registration §2's names); no userinfo algorithm means JSON.
	IDTokenAlg  string `json:"id_token_signed_response_alg"`
	UserinfoAlg string `json:"userinfo_signed_response_alg,omitempty"`
}

func (a *app) clientListCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List registered clients",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withStore(cmd.Context(), func(c Config, s *storage.Store) error {
				clients, err := s.ListClients(cmd.Context())
				if err != nil {
					return err
				}
				if asJSON {
					out := make([]clientJSON, 0, len(clients))
					for _, c := range clients {
						out = append(out, clientJSON{c.ID, c.Public, c.RedirectURIs, c.PostLogoutRedirectURIs, c.SkipConsent,
							c.BackchannelLogoutURI, c.CreatedAt, c.Dynamic, c.Name, c.ClientURI, c.IDTokenAlg, c.UserinfoAlg})
					}
					return printJSON(a, out)
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "CLIENT_ID\tTYPE\tCONSENT\tALG\tUSERINFO\tREDIRECT_URIS\tBACKCHANNEL_LOGOUT")
				for _, c := range clients {
					kind, consent := "confidential", "asked"
					if c.Public {
						kind = "public"
					}
					if c.Dynamic {
						kind = "registered" // by itself, at /oauth2/registration
					}
					if c.SkipConsent {
						consent = "skipped"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, kind, consent, c.IDTokenAlg, userinfoKind(c),
						strings.Join(c.RedirectURIs, " "), dash(c.BackchannelLogoutURI))
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) clientRemoveCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "remove CLIENT_ID",
		Short: "Remove a client registration",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			return a.withStore(cmd.Context(), func(c Config, s *storage.Store) error {
				if err := a.accounts(c, s).RemoveClient(cmd.Context(), argv[0]); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "client %s removed\n", argv[0])
				return nil
			})
		},
	}
}

func (a *app) clientRotateCommand() *cobra.Command {
	var fromStdin bool
	cmd := &cobra.Command{
		Use:   "rotate-secret CLIENT_ID",
		Short: "Give a confidential client a new secret (printed once); the old one stops working",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			chosen, err := a.secretInput(fromStdin, "")
			if err != nil {
				return err
			}
			return a.withStore(cmd.Context(), func(c Config, s *storage.Store) error {
				secret, err := a.accounts(c, s).RotateClientSecret(cmd.Context(), argv[0], chosen)
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "client %s has a new secret\n", argv[0])
				if !fromStdin {
					fmt.Fprintf(a.stdout, "client_secret: %s\n(shown once: only its hash is stored)\n", secret)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&fromStdin, "secret-stdin", false, "read the new secret from standard input instead of generating one")
	return cmd
}
