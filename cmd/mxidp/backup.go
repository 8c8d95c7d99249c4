package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/mxidp/mxidp/storage"
	"github.com/spf13/cobra"
)

// backupCommand copies an SQLite database online. The copy is useless
// without the secret key file, which seals the signing keys: it is named,
// not copied, so that the two can be kept apart.
func (a *app) backupCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "backup FILE",
		Short: "Write a consistent copy of the SQLite database to FILE, while serve runs (PostgreSQL: use pg_dump)",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			return a.withStore(cmd.Context(), func(c Config, s *storage.Store) error {
				// The copy holds password hashes and sealed keys: made
				// empty, new and for the owner only, before SQLite fills
				// it (VACUUM INTO writes into an empty file).
				f, err := os.OpenFile(argv[0], os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
				if errors.Is(err, os.ErrExist) {
					return usageError{fmt.Errorf("%s exists already: name a new file", argv[0])}
				}
				if err != nil {
					return err
				}
				f.Close()
				err = s.Backup(cmd.Context(), argv[0])
				if err != nil {
					os.Remove(argv[0])
				}
				if errors.Is(err, storage.ErrBackupUnsupported) {
					return usageError{errors.New("the database is PostgreSQL: back it up with pg_dump (README, \"Backup and restore\")")}
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "backed up %s to %s\nkeep a copy of %s as well: without it the copy's signing keys cannot be unsealed\n",
					storage.RedactURL(c.Database), argv[0], c.SecretKeyFile)
				return nil
			})
		},
	}
}
