package storage_test

import (
	"testing"
	"time"

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

// TestStatementsCountsQueriesAndTransactions: a read is one statement; a
// write in a transaction is its queries plus BEGIN and COMMIT.
func TestStatementsCountsQueriesAndTransactions(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			s := storagetest.Open(t, backend, storage.Options{})
			ctx := t.Context()
			before := s.Statements()
			if _, err := s.KeyRingVersion(ctx); err != nil {
				t.Fatal(err)
			}
			if got := s.Statements() - before; got != 1 {
				t.Errorf("one read counted as %d statements, want 1", got)
			}
			before = s.Statements()
			if _, err := s.ChangeKeyRing(ctx, 0, []storage.SigningKey{{ID: "k1", Algorithm: "RS256", PublicJWK: "{}",
				PrivateSealed: []byte{1}, CreatedAt: time.Now(), SignFrom: time.Now()}}, nil); err != nil {
				t.Fatal(err)
			}
			if got := s.Statements() - before; got < 3 {
				t.Errorf("a write in a transaction counted as %d statements, want its queries plus BEGIN and COMMIT", got)
			}
		})
	}
}
