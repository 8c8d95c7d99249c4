// Package storagetest opens throwaway databases for tests and holds the
// storage conformance suite that every backend must pass.
package storagetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mxidp/mxidp/storage"
)

// PostgresEnv names the variable holding the URL of a PostgreSQL server
// that tests may create databases on (make test sets it).
const PostgresEnv = "MXIDP_TEST_POSTGRES"

// RequiredEnv, when "1", turns a missing PostgreSQL into a test failure
// instead of a skip; CI sets it so that nothing is skipped silently.
const RequiredEnv = "MXIDP_TEST_POSTGRES_REQUIRED"

// Backends lists the database kinds tests run against.
var Backends = []string{"sqlite", "postgres"}

// URL returns the URL of a new, empty database of the given kind, removed
// when the test ends.
func URL(t testing.TB, backend string) string {
	t.Helper()
	switch backend {
	case "sqlite":
		return "sqlite://" + filepath.Join(t.TempDir(), "mxidp.db")
	case "postgres":
		return postgresURL(t)
	}
	t.Fatalf("unknown backend %q", backend)
	return ""
}

// Open returns a migrated store on a new, empty database of the given kind,
// closed when the test ends.
func Open(t testing.TB, backend string, opts storage.Options) *storage.Store {
	t.Helper()
	ctx := context.Background()
	s, err := storage.Open(ctx, URL(t, backend), opts)
	if err != nil {
		t.Fatalf("open %s: %v", backend, err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrate %s: %v", backend, err)
	}
	return s
}

func postgresURL(t testing.TB) string {
	t.Helper()
	server := os.Getenv(PostgresEnv)
	if server == "" {
		if os.Getenv(RequiredEnv) == "1" {
			t.Fatalf("%s is not set but %s=1: start PostgreSQL (make test does) or unset %s", PostgresEnv, RequiredEnv, RequiredEnv)
		}
		t.Skipf("PostgreSQL tests skipped: %s is not set (make test sets it)", PostgresEnv)
	}
	admin, err := sql.Open("pgx", server)
	if err != nil {
		t.Fatalf("open %s: %v", PostgresEnv, err)
	}
	defer admin.Close()

	b := make([]byte, 6)
	rand.Read(b)
	name := "mxidp_test_" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		admin, err := sql.Open("pgx", server)
		if err != nil {
			return
		}
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("drop test database %s: %v", name, err)
		}
	})

	u, err := url.Parse(server)
	if err != nil {
		t.Fatalf("parse %s: %v", PostgresEnv, err)
	}
	u.Path = "/" + name
	return u.String()
}
