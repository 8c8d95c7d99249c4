package storage_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/mxidp/mxidp/storage"
	"github.com/mxidp/mxidp/storage/storagetest"
)

// A client's signing algorithms are stored and read back on both
// backends; a client that names none is RS256 with JSON userinfo, and so
// is every client stored before migration 00014 (the columns' defaults).
func TestClientSigningAlgorithmsAreStoredAndDefaultToRS256(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			url := storagetest.URL(t, backend)
			s, err := storage.Open(ctx, url, storage.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			if _, err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := s.CreateClient(ctx, storage.Client{ID: "es", RedirectURIs: []string{"https://a.example/cb"},
				IDTokenAlg: "ES256", UserinfoAlg: "EdDSA"}); err != nil {
				t.Fatal(err)
			}
			made, err := s.CreateClient(ctx, storage.Client{ID: "plain", RedirectURIs: []string{"https://b.example/cb"}})
			if err != nil || made.IDTokenAlg != "RS256" || made.UserinfoAlg != "" {
				t.Fatalf("CreateClient without algorithms = %q %q, %v; want RS256 and none", made.IDTokenAlg, made.UserinfoAlg, err)
			}
			// A row written as an older mxidp wrote it, without the columns.
			raw := rawDB(t, backend, url)
			if _, err := raw.ExecContext(ctx, `INSERT INTO clients (id, secret_hash, public, redirect_uris, created_at, updated_at)
				VALUES ('old', '', TRUE, '["https://c.example/cb"]', 1, 1)`); err != nil {
				t.Fatal(err)
			}
			want := map[string][2]string{"es": {"ES256", "EdDSA"}, "plain": {"RS256", ""}, "old": {"RS256", ""}}
			for id, algs := range want {
				c, err := s.ClientByID(ctx, id)
				if err != nil || c.IDTokenAlg != algs[0] || c.UserinfoAlg != algs[1] {
					t.Errorf("client %s: %q %q, %v; want %q %q", id, c.IDTokenAlg, c.UserinfoAlg, err, algs[0], algs[1])
				}
			}
			list, err := s.ListClients(ctx)
			if err != nil || len(list) != 3 {
				t.Fatalf("ListClients = %d, %v", len(list), err)
			}
			for _, c := range list {
				if algs := want[c.ID]; c.IDTokenAlg != algs[0] || c.UserinfoAlg != algs[1] {
					t.Errorf("listed client %s: %q %q", c.ID, c.IDTokenAlg, c.UserinfoAlg)
				}
			}
			up, err := s.UpdateClient(ctx, "old", func(c *storage.Client) error {
				c.IDTokenAlg, c.UserinfoAlg = "EdDSA", "ES256"
				return nil
			})
			if err != nil || up.IDTokenAlg != "EdDSA" {
				t.Fatalf("UpdateClient = %+v, %v", up, err)
			}
			if c, _ := s.ClientByID(ctx, "old"); c.IDTokenAlg != "EdDSA" || c.UserinfoAlg != "ES256" {
				t.Errorf("after the update: %q %q, want EdDSA ES256", c.IDTokenAlg, c.UserinfoAlg)
			}
			// Clearing the ID token algorithm stores the default again.
			if _, err := s.UpdateClient(ctx, "old", func(c *storage.Client) error { c.IDTokenAlg = ""; return nil }); err != nil {
				t.Fatal(err)
			}
			if c, _ := s.ClientByID(ctx, "old"); c.IDTokenAlg != "RS256" {
				t.Errorf("a cleared ID token algorithm reads %q, want RS256", c.IDTokenAlg)
			}
		})
	}
}

// rawDB opens the test database with database/sql alone.
func rawDB(t *testing.T, backend, url string) *sql.DB {
	t.Helper()
	driver, dsn := "pgx", url
	if backend == "sqlite" {
		driver, dsn = "sqlite", strings.TrimPrefix(url, "sqlite://")
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
