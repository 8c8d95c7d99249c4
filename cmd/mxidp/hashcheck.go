package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/mxidp/mxidp/provider/password"
	"github.com/spf13/cobra"
)

// hashCheckCommand checks one password against one stored hash, to try
// out a platform's hashes before importing its users. It needs neither
// configuration nor database.
func (a *app) hashCheckCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "hash-check",
		Short: "Check a password against a stored hash of any supported format",
		Long: `Reads two lines from standard input, the stored hash and then the password,
and prints the format of the hash and "match" or "no match". Neither the
hash nor the password is ever printed.

Exit status: 0 match, 1 no match, 2 unusable input (not two lines, or a
hash in no supported format or damaged).

Example:
  printf '%s\n%s\n' "$HASH" "$PW" | mxidp hash-check

Supported formats: ` + strings.Join(password.Formats(), ", ") + `.`,
		Args: args(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			hash, pw, err := a.readHashAndPassword()
			if err != nil {
				return err
			}
			format := password.Format(hash)
			ok, err := password.Verify(hash, pw)
			if err != nil {
				// The error names the format's problem, never the hash itself.
				return usageError{fmt.Errorf("%w (supported formats: %s)", err, strings.Join(password.Formats(), ", "))}
			}
			if !ok {
				fmt.Fprintf(a.stdout, "%s: no match\n", format)
				if len(pw) > password.MaxLength {
					return fmt.Errorf("no match: the password is longer than %d bytes", password.MaxLength)
				}
				return errors.New("no match: the password does not match the hash")
			}
			fmt.Fprintf(a.stdout, "%s: match\n", format)
			return nil
		},
	}
}

// readHashAndPassword reads exactly two lines from standard input, each
// without its line ending.
func (a *app) readHashAndPassword() (hash, pw string, err error) {
	b, err := io.ReadAll(io.LimitReader(a.stdin, 64<<10))
	if err != nil {
		return "", "", fmt.Errorf("read standard input: %w", err)
	}
	var lines []string
	if len(b) > 0 {
		lines = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	}
	if len(lines) != 2 {
		return "", "", usageError{fmt.Errorf("standard input has %d lines, not 2: pipe in the hash and the password, e.g. printf '%%s\\n%%s\\n' \"$HASH\" \"$PW\" | mxidp hash-check", len(lines))}
	}
	return strings.TrimSuffix(lines[0], "\r"), strings.TrimSuffix(lines[1], "\r"), nil
}
