package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mxidp/mxidp/provider"
	"github.com/mxidp/mxidp/storage"
	"github.com/spf13/cobra"
)

func (a *app) userCommand() *cobra.Command {
	cmd := group(&cobra.Command{Use: "user", Short: "Manage mxidp's own users"})
	cmd.AddCommand(a.userAddCommand(), a.userPasswdCommand(), a.userListCommand(), a.userSetCommand(), a.userSetGroupsCommand(), a.userImportCommand(),
		a.userPasswordLoginCommand(), a.userTokenCommand(), a.userReleaseMatrixIDCommand(),
		a.userSimpleCommand("disable", "Stop a user from logging in", func(acc *provider.Accounts, cmd *cobra.Command, name string) error {
			return acc.SetDisabled(cmd.Context(), name, true)
		}),
		a.userSimpleCommand("enable", "Let a disabled user log in again", func(acc *provider.Accounts, cmd *cobra.Command, name string) error {
			return acc.SetDisabled(cmd.Context(), name, false)
		}),
		a.userSimpleCommand("delete", "Delete a user (the ID is never reused)", func(acc *provider.Accounts, cmd *cobra.Command, name string) error {
			return acc.DeleteUser(cmd.Context(), name)
		}),
		a.userSimpleCommand("unlock", "Clear a user's password-check throttle (after throttle.hard_lock)", func(acc *provider.Accounts, cmd *cobra.Command, name string) error {
			return acc.Unlock(cmd.Context(), name)
		}),
	)
	return cmd
}

func (a *app) userAddCommand() *cobra.Command {
	var nu provider.NewUser
	var fromStdin bool
	var groups []string
	cmd := &cobra.Command{
		Use:   "add USERNAME",
		Short: "Create a user; without --password-stdin a password is generated and printed once",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			nu.Username = argv[0]
			var err error
			if nu.Password, err = a.secretInput(fromStdin, provider.NewPassword()); err != nil {
				return err
			}
			return a.withBuiltinUsers(cmd.Context(), func(c Config, s *storage.Store) error {
				acc := a.accounts(c, s)
				u, err := acc.AddUser(cmd.Context(), nu)
				if err != nil {
					return err
				}
				if len(groups) > 0 {
					if err := acc.SetGroups(cmd.Context(), u.Username, groups); err != nil {
						return err
					}
				}
				fmt.Fprintf(a.stdout, "created user %s (@%s:%s, id %s)\n", u.Username, u.Username, c.Matrix.ServerName, u.ID)
				if !fromStdin {
					fmt.Fprintf(a.stdout, "password: %s\n(shown once)\n", nu.Password)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&nu.Email, "email", "", "e-mail address (counts as verified)")
	cmd.Flags().StringVar(&nu.DisplayName, "name", "", "display name")
	cmd.Flags().StringVar(&nu.MSISDN, "msisdn", "", "phone number, international (+44 7700 900123; counts as verified)")
	cmd.Flags().StringVar(&nu.AvatarURL, "avatar", "", "Matrix avatar as an mxc:// URI")
	cmd.Flags().StringArrayVar(&groups, "group", nil, "group membership, for the groups claim (repeatable)")
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from standard input")
	return cmd
}

func (a *app) userPasswdCommand() *cobra.Command {
	var fromStdin bool
	cmd := &cobra.Command{
		Use:   "passwd USERNAME",
		Short: "Set a user's password; without --password-stdin one is generated and printed once",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			pw, err := a.secretInput(fromStdin, provider.NewPassword())
			if err != nil {
				return err
			}
			return a.withBuiltinUsers(cmd.Context(), func(c Config, s *storage.Store) error {
				if err := a.accounts(c, s).SetPassword(cmd.Context(), argv[0], pw); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "password of %s changed\n", argv[0])
				if !fromStdin {
					fmt.Fprintf(a.stdout, "password: %s\n(shown once)\n", pw)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from standard input")
	return cmd
}

func (a *app) userSetCommand() *cobra.Command {
	var email, name, msisdn, avatar string
	cmd := &cobra.Command{
		Use:   "set USERNAME [--email ADDR] [--name NAME] [--msisdn NUMBER] [--avatar MXC]",
		Short: "Change a user's profile; only the flags given change, and an empty value clears",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			var p provider.Profile
			for flag, field := range map[string]**string{"email": &p.Email, "name": &p.DisplayName, "msisdn": &p.MSISDN, "avatar": &p.AvatarURL} {
				if cmd.Flags().Changed(flag) {
					v, _ := cmd.Flags().GetString(flag)
					*field = &v
				}
			}
			if p == (provider.Profile{}) {
				return usageError{errors.New("nothing to change: give at least one of --email, --name, --msisdn, --avatar")}
			}
			return a.withBuiltinUsers(cmd.Context(), func(c Config, s *storage.Store) error {
				u, err := a.accounts(c, s).UpdateProfile(cmd.Context(), argv[0], p)
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "user %s: e-mail %s, name %s, phone %s, avatar %s\n", u.Username, dash(u.Email), dash(u.DisplayName), dash(u.MSISDN), dash(u.AvatarURL))
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&email, "email", "", "e-mail address (counts as verified)")
	cmd.Flags().StringVar(&name, "name", "", "display name")
	cmd.Flags().StringVar(&msisdn, "msisdn", "", "phone number, international (+44 7700 900123; counts as verified)")
	cmd.Flags().StringVar(&avatar, "avatar", "", "Matrix avatar as an mxc:// URI")
	return cmd
}

func (a *app) userImportCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "import FILE",
		Short: "Create users from a platform's export: JSON lines with username, email, display_name, password_hash (any supported format)",
		Long: `Creates one user per line of FILE ("-" reads standard input), e.g.
  {"username": "alice", "email": "alice@example.org", "display_name": "Alice", "password_hash": "pbkdf2_sha256$..."}
Optional fields: msisdn, avatar_url, groups (a list), disabled, email_verified
(default true: the operator vouches for the export). The whole file is
checked first; if any line is wrong, nothing is imported. Users that exist
already are left alone, so an interrupted import can be run again. Imported
hashes keep their format until the user's next login, which replaces them
with argon2id.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			return a.withBuiltinUsers(cmd.Context(), func(c Config, s *storage.Store) error {
				in := a.stdin
				if argv[0] != "-" {
					f, err := os.Open(argv[0])
					if err != nil {
						return usageError{err}
					}
					defer f.Close()
					in = f
				}
				acc := a.accounts(c, s)
				lines, err := acc.ReadImport(in)
				if err != nil {
					return usageError{err}
				}
				res, err := acc.Import(cmd.Context(), lines)
				fmt.Fprintf(a.stdout, "imported %d user(s)\n", res.Imported)
				if len(res.Existing) > 0 {
					fmt.Fprintf(a.stdout, "skipped %d whose username, e-mail or phone number is taken: %s\n", len(res.Existing), strings.Join(res.Existing, ", "))
				}
				return err
			})
		},
	}
}

func (a *app) userSetGroupsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "set-groups USERNAME [GROUP ...]",
		Short: "Replace a user's groups (the groups claim); no GROUP clears them",
		Args:  args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			return a.withBuiltinUsers(cmd.Context(), func(c Config, s *storage.Store) error {
				if err := a.accounts(c, s).SetGroups(cmd.Context(), argv[0], argv[1:]); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "user %s: %d group(s)\n", argv[0], len(argv)-1)
				return nil
			})
		},
	}
}

func (a *app) userSimpleCommand(verb, short string, do func(*provider.Accounts, *cobra.Command, string) error) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " USERNAME",
		Short: short,
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			return a.withBuiltinUsers(cmd.Context(), func(c Config, s *storage.Store) error {
				if err := do(a.accounts(c, s), cmd, argv[0]); err != nil {
					return err
				}
				done := verb + "ed"
				if strings.HasSuffix(verb, "e") {
					done = verb + "d"
				}
				fmt.Fprintf(a.stdout, "user %s: %s\n", argv[0], done)
				return nil
			})
		},
	}
}

func (a *app) userPasswordLoginCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "password-login USERNAME allow|refuse",
		Short: "Allow or refuse the user's password at the Matrix login API (next-gen auth); refused, the user signs in through the browser",
		Long: `With refuse, a Matrix client's password login (m.login.password) of the
user is answered 403 M_FORBIDDEN, after the password was checked, so that
the user signs in through the browser (m.login.sso) instead. The login
page, the account page and the REST door still take the password. Works
for platform users too: mxidp keeps the setting in its own database.`,
		Args:      args(cobra.ExactArgs(2)),
		ValidArgs: []string{"allow", "refuse"},
		RunE: func(cmd *cobra.Command, argv []string) error {
			allowed, ok := map[string]bool{"allow": true, "refuse": false}[argv[1]]
			if !ok {
				return usageError{fmt.Errorf("%q: say allow or refuse (usage: %s)", argv[1], cmd.UseLine())}
			}
			return a.withAccounts(cmd.Context(), func(c Config, s *storage.Store, users storage.Users) error {
				u, err := (&provider.AccountSettings{Store: s, Users: users}).SetPasswordLogin(cmd.Context(), argv[0], allowed)
				if errors.Is(err, storage.ErrNotFound) {
					return usageError{err}
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "user %s: password login at the Matrix login API %s\n", u.Username, passwordLogin(allowed))
				return nil
			})
		},
	}
}

// withAccounts is withStore for the commands that act on the accounts of
// either source: mxidp's own users, or the platform's (users.source:
// platform), which it reads only.
func (a *app) withAccounts(ctx context.Context, fn func(Config, *storage.Store, storage.Users) error) error {
	return a.withStore(ctx, func(c Config, s *storage.Store) error {
		if c.Users.Source != "platform" {
			return fn(c, s, s)
		}
		p, err := openPlatform(ctx, c, slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
		if err != nil {
			return err
		}
		defer p.Close()
		return fn(c, s, p)
	})
}

func passwordLogin(allowed bool) string {
	if allowed {
		return "allowed"
	}
	return "refused"
}

// userJSON is a user as `user list --json` prints it: never the hash.
type userJSON struct {
	ID            string    `json:"id"`
	Username      string    `json:"username"`
	Email         string    `json:"email"`
	EmailVerified bool      `json:"email_verified"`
	DisplayName   string    `json:"display_name"`
	MSISDN        string    `json:"msisdn"`
	AvatarURL     string    `json:"avatar_url"`
	Disabled      bool      `json:"disabled"`
	HasPassword   bool      `json:"has_password"`
	PasswordLogin bool      `json:"password_login"` // at the Matrix login API
	CreatedAt     time.Time `json:"created_at"`
}

func (a *app) userListCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List users",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withBuiltinUsers(cmd.Context(), func(c Config, s *storage.Store) error {
				users, err := s.ListUsers(cmd.Context())
				if err != nil {
					return err
				}
				refused, err := s.PasswordLoginsRefused(cmd.Context())
				if err != nil {
					return err
				}
				if asJSON {
					out := make([]userJSON, 0, len(users))
					for _, u := range users {
						out = append(out, userJSON{u.ID, u.Username, u.Email, u.EmailVerified, u.DisplayName, u.MSISDN, u.AvatarURL, u.Disabled, u.PasswordHash != "", !refused[u.ID], u.CreatedAt})
					}
					return printJSON(a, out)
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "USERNAME\tSTATE\tPASSWORD LOGIN\tEMAIL\tNAME\tID")
				for _, u := range users {
					state := "enabled"
					if u.Disabled {
						state = "disabled"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", u.Username, state, passwordLogin(!refused[u.ID]), dash(u.Email), dash(u.DisplayName), u.ID)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printJSON(a *app, v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// userReleaseMatrixIDCommand unbinds a Matrix localpart from the account
// that first logged in with it (next-gen auth), for when the operator
// knows that a new account with that username is the same person.
func (a *app) userReleaseMatrixIDCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "release-matrix-id LOCALPART",
		Short: "Let the next account with this username take over its Matrix user (next-gen auth)",
		Long: "In next-gen auth a Matrix localpart stays with the first account that logged in with it: a\n" +
			"later account given the same username is refused, so that it cannot inherit someone else's\n" +
			"rooms and messages. When the new account is the same person (a re-created account), release\n" +
			"the localpart; the next account to log in with it gets the Matrix user.",
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			return a.withStore(cmd.Context(), func(c Config, s *storage.Store) error {
				err := s.ReleaseLocalpart(cmd.Context(), argv[0])
				if errors.Is(err, storage.ErrNotFound) {
					return fmt.Errorf("no account holds the Matrix localpart %q", argv[0])
				}
				if err != nil {
					return err
				}
				if err := s.AddAuditEvent(cmd.Context(), storage.AuditEvent{Event: "matrix.localpart_released", Username: argv[0]}); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "Matrix localpart %s released: the next account that logs in as @%s:%s gets it\n", argv[0], argv[0], c.Matrix.ServerName)
				return nil
			})
		},
	}
}
