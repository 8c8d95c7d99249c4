// Package storagetest opens throwaway databases for tests and holds the
// storage conformance suite that every backend must pass.
package storagetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
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
	return throwawayDatabase(t, testServer{
		env: PostgresEnv, what: "PostgreSQL", starts: "make test does",
		open: func(url string) (*sql.DB, error) { return sql.Open("pgx", url) },
		// FORCE ends sessions a test left open.
		create: "CREATE DATABASE %s", drop: "DROP DATABASE IF EXISTS %s WITH (FORCE)",
	})
}

// testServer is a database server, named by an environment variable, on
// which tests make databases of their own.
type testServer struct {
	env, what, starts string // the variable, the server's name, who sets the variable
	open              func(url string) (*sql.DB, error)
	create, drop      string // statements, %s the database's name
}

// throwawayDatabase makes a database named mxidp_test_… on the server,
// dropped when the test ends, and returns its URL. Without the server the
// test is skipped, or fails where RequiredEnv asks for a complete suite.
func throwawayDatabase(t testing.TB, srv testServer) string {
	t.Helper()
	server := os.Getenv(srv.env)
	if server == "" {
		if os.Getenv(RequiredEnv) == "1" {
			t.Fatalf("%s is not set but %s=1: start %s (%s) or unset %s", srv.env, RequiredEnv, srv.what, srv.starts, RequiredEnv)
		}
		t.Skipf("%s tests skipped: %s is not set (%s)", srv.what, srv.env, srv.starts)
	}
	b := make([]byte, 6)
	rand.Read(b)
	name := "mxidp_test_" + hex.EncodeToString(b)
	run := func(stmt string) error {
		admin, err := srv.open(server)
		if err != nil {
			return err
		}
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err = admin.ExecContext(ctx, fmt.Sprintf(stmt, name))
		return err
	}
	if err := run(srv.create); err != nil {
		t.Fatalf("create test database on %s: %v", srv.env, err)
	}
	t.Cleanup(func() {
		if err := run(srv.drop); err != nil {
			t.Logf("drop test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(server)
	if err != nil {
		t.Fatalf("parse %s: %v", srv.env, err)
	}
	u.Path = "/" + name
	return u.String()
}
