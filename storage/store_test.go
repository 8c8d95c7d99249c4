package storage_test

import (
	"testing"

	"github.com/mxidp/mxidp/storage"
	"github.com/mxidp/mxidp/storage/storagetest"
)

// TestConformance runs the one storage suite on every backend; the
// subtest names (sqlite, postgres) show which backend passed.
func TestConformance(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			storagetest.Conformance(t, func(t *testing.T, opts storage.Options) *storage.Store {
				return storagetest.Open(t, backend, opts)
			})
		})
	}
}

func TestRedactURLHidesThePassword(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://mxidp:s3cret@db.example.org/mxidp": "postgres://mxidp:xxxxx@db.example.org/mxidp",
		"postgres://mxidp@db/mxidp":                    "postgres://mxidp@db/mxidp",
		"sqlite://./data/mxidp.db":                     "sqlite://./data/mxidp.db",
		"mysql://u:p@ss-word@h/db":                     "mysql://u:xxxxx@h/db", // the last @ ends the password
		"postgres://host/db?x=a@b":                     "postgres://host/db?x=a@b",
	} {
		if got := storage.RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
