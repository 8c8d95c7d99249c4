package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
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
	stmts   sync.Map // query text → *sql.Stmt
	// statements counts the statements sent to the database: every query
	// and every BEGIN, COMMIT and ROLLBACK (Statements).
	statements atomic.Uint64
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

// Close releases the prepared statements and the connection pool.
func (s *Store) Close() error {
	s.stmts.Range(func(_, st any) bool {
		st.(*sql.Stmt).Close()
		return true
	})
	return s.db.Close()
}

// Dialect names the database behind the store: "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.dialect.name }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return markUnavailable(ctx, s.db.PingContext(ctx)) }

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
	// The directory's word index is built from the users in Go, once.
	if need, err := s.needsSearchTerms(ctx); err != nil || need {
		if err == nil {
			var n int
			n, err = s.RebuildSearchTerms(ctx)
			s.log.Info("indexed users for the directory search", "users", n)
		}
		if err != nil {
			return len(results), err
		}
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

// Statements returns how many statements this store has sent to the
// database since it was opened: queries, and BEGIN, COMMIT and ROLLBACK of
// transactions. `/metrics` shows it, and the load generator divides it by
// the login flows it drove.
func (s *Store) Statements() uint64 { return s.statements.Load() }

// inTx runs fn in a transaction and commits when it returns nil.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	s.statements.Add(2) // BEGIN, and COMMIT or ROLLBACK
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", markUnavailable(ctx, err))
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return markUnavailable(ctx, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", markUnavailable(ctx, err))
	}
	return nil
}

// Every query goes through a prepared statement kept for the life of the
// store: SQLite otherwise compiles the SQL text again on every call, which
// was most of the database's CPU per login. The set of query texts is
// fixed by the code, so the cache stays small.
//
// Inside a transaction, a statement not prepared yet is prepared on the
// transaction's own connection: preparing it on the pool could wait for a
// connection that other transactions hold while they wait for this one's
// lock. The pool's copy is prepared beside it, for later calls.
func (s *Store) stmt(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	st, ok := s.stmts.Load(query)
	if !ok && tx != nil {
		go s.stmt(context.WithoutCancel(ctx), nil, query) //nolint:errcheck // a failure shows at the next call
		return tx.PrepareContext(ctx, query)
	}
	if !ok {
		prepared, err := s.db.PrepareContext(ctx, query)
		if err != nil {
			return nil, err
		}
		if st, ok = s.stmts.LoadOrStore(query, prepared); ok {
			prepared.Close() // another goroutine prepared it first
		}
	}
	if tx != nil {
		return tx.StmtContext(ctx, st.(*sql.Stmt)), nil
	}
	return st.(*sql.Stmt), nil
}

// queryRow, query and exec run a query through its prepared statement,
// inside tx when tx is not nil.
func (s *Store) queryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) rowScanner {
	s.statements.Add(1)
	st, err := s.stmt(ctx, tx, query)
	if err != nil {
		return errRow{markUnavailable(ctx, err)}
	}
	return checkedRow{st.QueryRowContext(ctx, args...), ctx}
}

func (s *Store) query(ctx context.Context, tx *sql.Tx, query string, args ...any) (*sql.Rows, error) {
	s.statements.Add(1)
	st, err := s.stmt(ctx, tx, query)
	if err != nil {
		return nil, markUnavailable(ctx, err)
	}
	rows, err := st.QueryContext(ctx, args...)
	return rows, markUnavailable(ctx, err)
}

func (s *Store) exec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	s.statements.Add(1)
	st, err := s.stmt(ctx, tx, query)
	if err != nil {
		return nil, markUnavailable(ctx, err)
	}
	res, err := st.ExecContext(ctx, args...)
	return res, markUnavailable(ctx, err)
}

// rowScanner is a *sql.Row, or the error of preparing one.
type rowScanner interface{ Scan(...any) error }

type errRow struct{ err error }

func (e errRow) Scan(...any) error { return e.err }

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

// ErrBackupUnsupported means the database backs itself up with its own
// tools (PostgreSQL: pg_dump).
var ErrBackupUnsupported = errors.New("this database is backed up with its own tools")

// Backup writes a consistent copy of an SQLite database to path, which
// must not exist yet, while other connections (a running serve) go on
// reading and writing: SQLite's VACUUM INTO reads one snapshot. A
// PostgreSQL database answers ErrBackupUnsupported.
func (s *Store) Backup(ctx context.Context, path string) error {
	if s.dialect.name != "sqlite" {
		return ErrBackupUnsupported
	}
	s.statements.Add(1)
	if _, err := s.db.ExecContext(ctx, `VACUUM INTO $1`, path); err != nil {
		return fmt.Errorf("back up to %s: %w", path, markUnavailable(ctx, err))
	}
	return nil
}
