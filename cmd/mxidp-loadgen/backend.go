package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

// backend is one database mxidp is measured on.
type backend struct {
	name string // SQLite or PostgreSQL
	// create makes a fresh database (dir is the work directory) and
	// returns its MXIDP_DATABASE URL and a function that removes it.
	create func(ctx context.Context, dir string) (dbURL string, drop func(), err error)
	// cluster, for PostgreSQL, is whose CPU counts as the database's.
	cluster *pgCluster
}

func sqliteBackend() *backend {
	return &backend{name: "SQLite", create: func(_ context.Context, dir string) (string, func(), error) {
		return "sqlite://" + filepath.Join(dir, "mxidp.db"), func() {}, nil
	}}
}

// postgresBackend uses the server at admin (a URL whose user may CREATE
// DATABASE) and finds its postmaster: the parent of the backend that
// answers this program.
func postgresBackend(ctx context.Context, admin string) (*backend, error) {
	db, err := sql.Open("pgx", admin)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var backendPID int
	if err := db.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&backendPID); err != nil {
		return nil, fmt.Errorf("PostgreSQL at %s: %w", redact(admin), err)
	}
	cluster := &pgCluster{}
	if s, err := readProcStat(backendPID); err == nil {
		if p, err := readProcStat(s.ppid); err == nil && isPostgres(s.ppid, p) {
			cluster.postmaster = s.ppid
		}
	}
	return &backend{name: "PostgreSQL", cluster: cluster, create: func(ctx context.Context, _ string) (string, func(), error) {
		return createPostgresDB(ctx, admin)
	}}, nil
}

func createPostgresDB(ctx context.Context, admin string) (string, func(), error) {
	name := fmt.Sprintf("mxidp_loadgen_%d", time.Now().UnixNano())
	db, err := sql.Open("pgx", admin)
	if err != nil {
		return "", nil, err
	}
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		db.Close()
		return "", nil, fmt.Errorf("CREATE DATABASE: %w", err)
	}
	u, err := url.Parse(admin)
	if err != nil {
		db.Close()
		return "", nil, err
	}
	u.Path = "/" + name
	drop := func() {
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			fmt.Printf("  (could not drop database %s: %v)\n", name, err)
		}
	}
	return u.String(), drop, nil
}

// redact hides a URL's password.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
