package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/mxidp/mxidp/migrations"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// The errors storage reports; callers test them with errors.Is.
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict means a compare-and-swap lost: someone else changed the
	// row first. Reload and decide again.
	ErrConflict = errors.New("changed concurrently")
)

// Options tune how a database is opened.
type Options struct {
	// MaxOpenConns caps the connection pool (default 16).
	MaxOpenConns int
	// ReadOnly opens the database for reading only (the platform's user
	// table); migrations are refused.
	ReadOnly bool
	// Now is the clock; tests inject one. Default time.Now.
	Now func() time.Time
	// Logger receives migration progress. Default: discard.
	Logger *slog.Logger
}

// Store is mxidp's persistence over one SQL database.
type Store struct {
	db      *sql.DB
	dialect dialect
	now     func() time.Time
	log     *slog.Logger
}

// Open connects to the database a URL names (sqlite://PATH or
// postgres://…) and checks that it answers. It does not migrate.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	if opts.MaxOpenConns <= 0 {
		opts.MaxOpenConns = 16
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	db, d, err := openDB(url, opts)
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to %s: %w", RedactURL(url), err)
	}
	return &Store{db: db, dialect: d, now: opts.Now, log: opts.Logger}, nil
}

// Close releases the connection pool.
func (s *Store) Close() error { return s.db.Close() }

// Dialect names the database behind the store: "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.dialect.name }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// DB exposes the connection pool to tests and to the platform user source.
func (s *Store) DB() *sql.DB { return s.db }

// Migrate applies every pending migration and returns how many ran.
// Several processes may migrate one PostgreSQL database at once: an
// advisory lock lets one of them work while the others wait.
func (s *Store) Migrate(ctx context.Context) (int, error) {
	p, err := s.migrator()
	if err != nil {
		return 0, err
	}
	results, err := p.Up(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrate %s: %w", s.dialect.name, err)
	}
	for _, r := range results {
		s.log.Info("applied migration", "version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration)
	}
	return len(results), nil
}

// SchemaVersion returns the database's migration version and the newest
// version this binary knows.
func (s *Store) SchemaVersion(ctx context.Context) (current, latest int64, err error) {
	p, err := s.migrator()
	if err != nil {
		return 0, 0, err
	}
	return p.GetVersions(ctx)
}

func (s *Store) migrator() (*goose.Provider, error) {
	fsys, err := migrations.FS(s.dialect.name)
	if err != nil {
		return nil, err
	}
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	if s.dialect.name == "postgres" {
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	return goose.NewProvider(s.dialect.goose, s.db, fsys, opts...)
}

// inTx runs fn in a transaction and commits when it returns nil.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// wrapWrite turns a driver's unique-constraint error into ErrAlreadyExists.
func (s *Store) wrapWrite(err error, what string) error {
	if err == nil {
		return nil
	}
	if s.dialect.isUnique(err) {
		return fmt.Errorf("%s: %w", what, ErrAlreadyExists)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// unix and fromUnix convert times to the schema's Unix seconds.
func unix(t time.Time) int64 { return t.Unix() }

func fromUnix(sec int64) time.Time { return time.Unix(sec, 0).UTC() }
