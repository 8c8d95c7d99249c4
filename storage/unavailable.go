package storage

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrUnavailable means the database could not be reached: the connection
// failed, was dropped, or the server is shutting down or starting up. It
// says nothing about the request, which may succeed when retried later.
// Errors the store returns for such failures match it with errors.Is and
// keep the driver's error in their chain and text.
var ErrUnavailable = errors.New("database unavailable")

// unavailableError marks a driver error as ErrUnavailable without
// changing its text or hiding it from errors.Is and errors.As.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string        { return e.err.Error() }
func (e *unavailableError) Unwrap() error        { return e.err }
func (e *unavailableError) Is(target error) bool { return target == ErrUnavailable }

// IsUnavailable reports whether err is a connection-level failure: the
// database cannot be reached, rather than refusing this one request.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrUnavailable) {
		return true
	}
	// PostgreSQL (pgx): a failed connection attempt, whatever the cause,
	// including its own connect_timeout.
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), // connection exception
			pgErr.Code == "57P01", // admin_shutdown
			pgErr.Code == "57P02", // crash_shutdown
			pgErr.Code == "57P03": // cannot_connect_now
			return true
		}
		return false
	}
	// A request's own deadline or cancellation is not an outage (context
	// errors also satisfy net.Error, so this comes first).
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, mysql.ErrInvalidConn) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	if pgconn.SafeToRetry(err) {
		return true // failed before anything reached the server
	}
	// SQLite: the file cannot be opened or read.
	var sqliteErr *sqlite.Error
	if errors.As(err, &sqliteErr) {
		switch sqliteErr.Code() & 0xff { // the primary code of an extended one
		case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR:
			return true
		}
	}
	return false
}

// markUnavailable wraps err as ErrUnavailable when it is a connection-level
// failure, and tells whoever watches ctx (see WatchUnavailable). Other
// errors pass unchanged.
func markUnavailable(ctx context.Context, err error) error {
	if err == nil || !IsUnavailable(err) {
		return err
	}
	if seen, ok := ctx.Value(unavailableKey{}).(*atomic.Bool); ok {
		seen.Store(true)
	}
	if errors.Is(err, ErrUnavailable) {
		return err
	}
	return &unavailableError{err}
}

type unavailableKey struct{}

// WatchUnavailable returns a context that records whether any store
// operation run with it (or a context derived from it) failed because the
// database was unreachable, and a function that reports it. The HTTP layer
// uses it to answer "try again later" for a request that libraries would
// otherwise turn into "invalid grant" or "internal error".
func WatchUnavailable(ctx context.Context) (context.Context, func() bool) {
	seen := new(atomic.Bool)
	return context.WithValue(ctx, unavailableKey{}, seen), seen.Load
}

// checkedRow classifies the error of a *sql.Row when it is scanned.
type checkedRow struct {
	row *sql.Row
	ctx context.Context
}

func (r checkedRow) Scan(dest ...any) error { return markUnavailable(r.ctx, r.row.Scan(dest...)) }
