package storage

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib" // also registers the "pgx" database/sql driver
	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// dialect is everything that differs between SQLite and PostgreSQL.
type dialect struct {
	name      string // "sqlite" or "postgres"; also the migrations folder
	goose     goose.Dialect
	forUpdate string // suffix that locks the rows a SELECT reads inside a transaction
	// skipLocked is forUpdate for work queues: rows another transaction
	// holds are passed over instead of waited for.
	skipLocked string
	isUnique   func(error) bool
}

var (
	sqliteDialect = dialect{
		name:  "sqlite",
		goose: goose.DialectSQLite3,
		// SQLite transactions are opened IMMEDIATE (see openSQLite), so a
		// writer already holds the database lock when it reads.
		forUpdate:  "",
		skipLocked: "",
		isUnique: func(err error) bool {
			var e *sqlite.Error
			if !errors.As(err, &e) {
				return false
			}
			return e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
		},
	}
	postgresDialect = dialect{
		name:       "postgres",
		goose:      goose.DialectPostgres,
		forUpdate:  " FOR UPDATE",
		skipLocked: " FOR UPDATE SKIP LOCKED",
		isUnique: func(err error) bool {
			var e *pgconn.PgError
			return errors.As(err, &e) && e.Code == "23505" // unique_violation
		},
	}
)

// SQLitePath returns the file path of a sqlite:// database URL, or false
// when the URL is not one.
func SQLitePath(url string) (string, bool) {
	path, ok := strings.CutPrefix(url, "sqlite://")
	return path, ok
}

// IsPostgresURL reports whether url names a PostgreSQL database.
func IsPostgresURL(url string) bool {
	return strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://")
}

// openDB opens the database a URL names, with the pool and connection
// settings its dialect wants.
func openDB(url string, opts Options) (*sql.DB, dialect, error) {
	if path, ok := SQLitePath(url); ok {
		db, err := openSQLite(path, opts)
		return db, sqliteDialect, err
	}
	if IsPostgresURL(url) {
		cfg, err := pgx.ParseConfig(url)
		if err != nil {
			return nil, dialect{}, fmt.Errorf("open postgres: %w", err)
		}
		if cfg.ConnectTimeout == 0 {
			// Notice a server that does not answer (a host that is down
			// drops packets rather than refusing them) within seconds,
			// not the operating system's minutes; connect_timeout in the
			// URL overrides this.
			cfg.ConnectTimeout = 5 * time.Second
		}
		if opts.ReadOnly {
			// The server itself refuses every write in every transaction.
			cfg.RuntimeParams["default_transaction_read_only"] = "on"
		}
		db := stdlib.OpenDB(*cfg)
		db.SetMaxOpenConns(opts.MaxOpenConns)
		db.SetMaxIdleConns(opts.MaxOpenConns)
		db.SetConnMaxIdleTime(5 * time.Minute)
		return db, postgresDialect, nil
	}
	if IsMySQLURL(url) {
		db, err := openMySQL(url, opts)
		return db, mysqlDialect, err
	}
	return nil, dialect{}, fmt.Errorf("unsupported database URL %q: use sqlite://PATH or postgres://…", RedactURL(url))
}

func openSQLite(path string, opts Options) (*sql.DB, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite path %q must be a plain file path", path)
	}
	if opts.ReadOnly {
		// Someone else's database: open it as it is, change nothing (not
		// even the journal mode), and refuse writes on the connection.
		db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=query_only(1)&_pragma=busy_timeout(10000)")
		if err != nil {
			return nil, fmt.Errorf("open sqlite %s: %w", path, err)
		}
		db.SetMaxOpenConns(opts.MaxOpenConns)
		return db, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create database directory: %w", err)
	}
	// The file holds password hashes: create it private. SQLite gives
	// its -wal and -shm files the same mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create sqlite database: %w", err)
	}
	f.Close()
	// WAL lets readers run beside the one writer; busy_timeout makes a
	// writer wait for the lock instead of failing at once; IMMEDIATE
	// transactions take the write lock at BEGIN, so two writers never
	// deadlock upgrading read locks.
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	db.SetMaxOpenConns(opts.MaxOpenConns)
	db.SetMaxIdleConns(opts.MaxOpenConns)
	return db, nil
}

// RedactURL hides the password of a database URL for messages and logs.
func RedactURL(url string) string {
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok {
		return url
	}
	// URL parsers end the user information at the last "@", so a password
	// may hold an "@" of its own.
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return url
	}
	userinfo, host := rest[:at], rest[at+1:]
	if user, _, hasPassword := strings.Cut(userinfo, ":"); hasPassword {
		return scheme + "://" + user + ":xxxxx@" + host
	}
	return url
}
