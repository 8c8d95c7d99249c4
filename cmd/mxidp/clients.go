package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mxidp/mxidp/provider"
	"github.com/mxidp/mxidp/storage"
	"github.com/spf13/cobra"
)

func (a *app) clientCommand() *cobra.Command {
	cmd := group(&cobra.Command{Use: "client", Short: "Manage registered OpenID clients (relying parties)"})
	cmd.AddCommand(a.clientAddCommand(), a.clientListCommand(), a.clientRemoveCommand(), a.clientRotateCommand())
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
				fmt.Fprintf(a.stdout, "registered %s client\nclient_id: %s\n", kind, client.ID)
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
	return cmd
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
							c.BackchannelLogoutURI, c.CreatedAt, c.Dynamic, c.Name, c.ClientURI})
					}
					return printJSON(a, out)
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "CLIENT_ID\tTYPE\tCONSENT\tREDIRECT_URIS\tBACKCHANNEL_LOGOUT")
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
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.ID, kind, consent, strings.Join(c.RedirectURIs, " "), dash(c.BackchannelLogoutURI))
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
