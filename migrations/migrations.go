// Package migrations holds mxidp's versioned SQL schema, one folder per
// database dialect, embedded in the binary.
//
// Files are goose migrations (NNNNN_name.sql with "-- +goose Up" sections).
// A change to the schema is a new file in both folders with the same
// version number; released files are never edited.
package migrations

import (
	"embed"
	"fmt"
	"io/fs"
)

//go:embed sqlite/*.sql postgres/*.sql
var files embed.FS

// FS returns the migrations for one dialect: "sqlite" or "postgres".
func FS(dialect string) (fs.FS, error) {
	switch dialect {
	case "sqlite", "postgres":
		return fs.Sub(files, dialect)
	default:
		return nil, fmt.Errorf("no migrations for dialect %q", dialect)
	}
}
