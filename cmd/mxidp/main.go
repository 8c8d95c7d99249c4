// Command mxidp is an OpenID Connect provider and ma1sd-compatible REST
// auth service for Matrix, backed by a platform's user database.
//
// This package is the binary's wiring only: flags, configuration, and the
// subcommands, each a thin call into provider, keys, storage and web.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/mxidp/mxidp/keys"
	"github.com/mxidp/mxidp/provider"
	"github.com/mxidp/mxidp/storage"
	"github.com/mxidp/mxidp/web/logging"
	"github.com/spf13/cobra"
)

// Exit statuses (README, "Command line"): 0 success, 1 runtime failure,
// 2 usage or configuration error.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}

// usageError marks an error as the caller's mistake (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// app carries what every subcommand shares.
type app struct {
	configPath string
	stdin      io.Reader
	stdout     io.Writer
	stderr     io.Writer
	getenv     func(string) string
}

// run executes one command line and returns the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var cfgErr *ConfigError
	var useErr usageError
	var inErr *provider.InputError
	switch {
	case errors.As(err, &cfgErr), errors.As(err, &inErr):
		fmt.Fprintf(stderr, "mxidp: %v\n", err)
		return exitUsage
	case errors.As(err, &useErr) || isCobraUsageError(err):
		fmt.Fprintf(stderr, "mxidp: %v\nRun 'mxidp --help' for usage.\n", err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "mxidp: %s\n", oneLine(err.Error()))
		return exitFailure
	}
}

// isCobraUsageError recognises cobra's own complaints about the command line.
func isCobraUsageError(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "unknown flag") ||
		strings.HasPrefix(msg, "unknown shorthand flag") || strings.Contains(msg, "flag needs an argument") ||
		strings.HasPrefix(msg, "required flag") || strings.HasPrefix(msg, "invalid argument")
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "mxidp",
		Short:         "OpenID provider and ma1sd-compatible auth service for Matrix",
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	group(root)
	root.CompletionOptions.HiddenDefaultCmd = true
	root.PersistentFlags().StringVar(&a.configPath, "config", "", "configuration file (default: $MXIDP_CONFIG, else built-in defaults)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(a.serveCommand(), a.migrateCommand(), a.userCommand(), a.clientCommand(), a.keysCommand(), a.synapseConfigCommand(), a.auditCommand())
	root.AddCommand(a.hashCheckCommand())
	root.AddCommand(a.backupCommand())
	root.AddCommand(a.checkCommand())
	return root
}

// group makes cmd a command of subcommands: bare, it prints its help;
// with an unknown subcommand, it is a usage error (exit 2).
func group(cmd *cobra.Command) *cobra.Command {
	cmd.Args = args(cobra.NoArgs)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	return cmd
}

// args wraps a cobra argument rule so that its failure is a usage error.
func args(rule cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := rule(cmd, args); err != nil {
			return usageError{fmt.Errorf("%w (usage: %s)", err, cmd.UseLine())}
		}
		return nil
	}
}

func (a *app) config() (Config, error) { return LoadConfig(a.configPath, a.getenv) }

func (a *app) logger(c Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: logLevel(c)}
	if c.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(a.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(a.stderr, opts))
}

// serveLogger is the server's log: the same lines as logger's, batched on
// their way to standard error (warnings and errors at once), and the
// request line formatted cheaply (package logging). Close the writer
// when serving ends.
func (a *app) serveLogger(c Config) (*slog.Logger, *logging.Writer) {
	return logging.New(a.stderr, c.Log.Format, logLevel(c))
}

func logLevel(c Config) slog.Level {
	return map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}[c.Log.Level]
}

// openStore connects to the configured database and brings its schema up
// to date, so that every command works on a fresh database.
func (a *app) openStore(ctx context.Context, c Config, log *slog.Logger) (*storage.Store, error) {
	s, err := storage.Open(ctx, c.Database, storage.Options{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	if _, err := s.Migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// withStore loads the configuration, opens the store and runs fn. Commands
// other than serve log only warnings, so that their output stays clean.
func (a *app) withStore(ctx context.Context, fn func(Config, *storage.Store) error) error {
	c, err := a.config()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := a.openStore(ctx, c, log)
	if err != nil {
		return err
	}
	defer s.Close()
	return fn(c, s)
}

// withBuiltinUsers is withStore for the user commands, which manage
// mxidp's own user table only.
func (a *app) withBuiltinUsers(ctx context.Context, fn func(Config, *storage.Store) error) error {
	return a.withStore(ctx, func(c Config, s *storage.Store) error {
		if c.Users.Source == "platform" {
			return usageError{errors.New("users.source is platform: accounts live in the platform's database, which mxidp only reads; manage them there")}
		}
		return fn(c, s)
	})
}

func (a *app) accounts(c Config, s *storage.Store) *provider.Accounts {
	return &provider.Accounts{Store: s, Hash: c.Passwords.Argon2id.Params(), ServerName: c.Matrix.ServerName}
}

func ringConfig(c Config, log *slog.Logger) keys.Config {
	return keys.Config{
		PublicationDelay: c.Keys.PublicationDelay,
		// A retired key must verify every ID token it signed, with room for
		// clock skew between mxidp and relying parties.
		Retention:      c.Tokens.IDTokenLifetime + 5*time.Minute,
		RotationPeriod: c.Keys.RotationPeriod,
		Logger:         log,
	}
}

// secretInput returns the secret read from standard input when fromStdin
// is set, and otherwise fallback (a generated value, or "" to let the
// callee generate one).
func (a *app) secretInput(fromStdin bool, fallback string) (string, error) {
	if !fromStdin {
		return fallback, nil
	}
	return a.readSecretStdin()
}

// readSecretStdin reads a password or secret from standard input, less
// one trailing newline (README, "Command line").
func (a *app) readSecretStdin() (string, error) {
	b, err := io.ReadAll(io.LimitReader(a.stdin, 64<<10))
	if err != nil {
		return "", fmt.Errorf("read standard input: %w", err)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if s == "" {
		return "", usageError{errors.New("standard input is empty: pipe the secret in, e.g. printf '%s' \"$PASSWORD\" | mxidp …")}
	}
	return s, nil
}
