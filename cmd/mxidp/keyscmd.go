package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mxidp/mxidp/keys"
	"github.com/mxidp/mxidp/storage"
	"github.com/spf13/cobra"
)

func (a *app) keysCommand() *cobra.Command {
	cmd := group(&cobra.Command{Use: "keys", Short: "Inspect and rotate the signing keys"})
	cmd.AddCommand(a.keysListCommand(), a.keysRotateCommand())
	return cmd
}

type keyJSON struct {
	ID             string     `json:"kid"`
	Algorithm      string     `json:"alg"`
	State          keys.State `json:"state"`
	CreatedAt      time.Time  `json:"created_at"`
	SignFrom       time.Time  `json:"sign_from"`
	PublishedUntil *time.Time `json:"published_until,omitempty"`
}

func (a *app) keysListCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List signing keys, their algorithms and states (pending, active, retired, expired)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withStore(cmd.Context(), func(c Config, s *storage.Store) error {
				// Listing needs no private key, so no secret key file.
				ring := keys.NewRing(s, nil, ringConfig(c, nil))
				if err := ring.Load(cmd.Context()); err != nil {
					return err
				}
				list := ring.Keys()
				if asJSON {
					out := make([]keyJSON, 0, len(list))
					for _, k := range list {
						j := keyJSON{k.ID, k.Algorithm, k.State, k.CreatedAt, k.SignFrom, nil}
						if !k.PublishedUntil.IsZero() {
							j.PublishedUntil = &k.PublishedUntil
						}
						out = append(out, j)
					}
					return printJSON(a, out)
				}
				if len(list) == 0 {
					fmt.Fprintln(a.stdout, "no signing keys yet: mxidp serve makes the first one")
					return nil
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "KID\tALG\tSTATE\tSIGNS_FROM\tPUBLISHED_UNTIL")
				for _, k := range list {
					until := "-"
					if !k.PublishedUntil.IsZero() {
						until = k.PublishedUntil.UTC().Format(time.RFC3339)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.Algorithm, k.State, k.SignFrom.UTC().Format(time.RFC3339), until)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) keysRotateCommand() *cobra.Command {
	var now bool
	var alg string
	cmd := &cobra.Command{
		Use:   "rotate [--alg ALG] [--now]",
		Short: "Publish new signing keys now (one per algorithm, or for --alg only); they sign after keys.publication_delay",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var algs []string
			if alg != "" {
				if err := keys.CheckAlgorithm(alg); err != nil {
					return usageError{fmt.Errorf("--alg: %w", err)}
				}
				algs = []string{alg}
			}
			return a.withStore(cmd.Context(), func(c Config, s *storage.Store) error {
				// The secret must exist already: a new one here would seal a
				// key that the running instances cannot open.
				secret, err := keys.LoadSecret(c.SecretKeyFile)
				if err != nil {
					return fmt.Errorf("%w (use the same configuration as mxidp serve)", err)
				}
				sealer, err := keys.NewSealer(secret, "signing keys")
				if err != nil {
					return err
				}
				added, err := keys.NewRing(s, sealer, ringConfig(c, nil)).Rotate(cmd.Context(), now, algs...)
				if err != nil {
					return err
				}
				var names []string
				for _, k := range added {
					names = append(names, k.ID+" ("+k.Algorithm+")")
				}
				detail := "new keys " + strings.Join(names, ", ")
				if now {
					detail += ", signing at once"
				}
				if err := s.AddAuditEvent(cmd.Context(), storage.AuditEvent{Event: "keys.rotated", Detail: detail}); err != nil {
					return fmt.Errorf("the keys were added, but not recorded in the audit log: %w", err)
				}
				for _, k := range added {
					fmt.Fprintf(a.stdout, "added %s signing key %s (%s): published now, signs from %s\n",
						k.Algorithm, k.ID, k.State, k.SignFrom.UTC().Format(time.RFC3339))
				}
				fmt.Fprintf(a.stdout, "running instances pick them up within keys.refresh_interval (%s)\n", c.Keys.RefreshInterval)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&now, "now", false, "sign with the new keys at once (after a compromise); relying parties must refetch the JWKS")
	cmd.Flags().StringVar(&alg, "alg", "", "rotate only this algorithm's key: "+strings.Join(keys.Algorithms, ", ")+" (default: every algorithm)")
	return cmd
}
