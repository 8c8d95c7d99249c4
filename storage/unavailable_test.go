package storage

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestIsUnavailableRecognisesConnectionFailuresOnly(t *testing.T) {
	ctx := context.Background()
	_, connectErr := pgconn.Connect(ctx, "host=/nonexistent-mxidp-socket-dir user=x connect_timeout=2")
	if connectErr == nil {
		t.Fatal("connected to nothing")
	}
	_, sqliteErr := Open(ctx, "sqlite:///proc/nonexistent-mxidp/x.db", Options{ReadOnly: true})
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"pgconn connect error", connectErr, true},
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{"dropped connection", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{"EOF", io.EOF, true},
		{"bad conn", driver.ErrBadConn, true},
		{"conn done", sql.ErrConnDone, true},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"cannot connect now", &pgconn.PgError{Code: "57P03"}, true},
		{"connection exception", &pgconn.PgError{Code: "08006"}, true},
		{"sqlite cannot open", sqliteErr, true},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"syntax error", &pgconn.PgError{Code: "42601"}, false},
		{"request deadline", context.DeadlineExceeded, false},
		{"request cancelled", fmt.Errorf("query: %w", context.Canceled), false},
		{"no rows", sql.ErrNoRows, false},
		{"not found", ErrNotFound, false},
		{"nil", nil, false},
	} {
		if got := IsUnavailable(c.err); got != c.want {
			t.Errorf("%s (%v): IsUnavailable = %t, want %t", c.name, c.err, got, c.want)
		}
	}
}

func TestMarkUnavailableWrapsKeepsTheTextAndTellsTheWatcher(t *testing.T) {
	ctx, saw := WatchUnavailable(context.Background())
	if err := markUnavailable(ctx, ErrNotFound); err != ErrNotFound || saw() {
		t.Errorf("ErrNotFound became %v (watcher told: %t)", err, saw())
	}
	err := markUnavailable(ctx, io.ErrUnexpectedEOF)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, io.ErrUnexpectedEOF) || err.Error() != io.ErrUnexpectedEOF.Error() {
		t.Errorf("wrapped %v: Is(ErrUnavailable) %t, Is(cause) %t", err, errors.Is(err, ErrUnavailable), errors.Is(err, io.ErrUnexpectedEOF))
	}
	if !saw() {
		t.Error("the watcher was not told")
	}
	if again := markUnavailable(ctx, fmt.Errorf("begin: %w", err)); !errors.Is(again, ErrUnavailable) {
		t.Errorf("re-marking lost the mark: %v", again)
	}
	if err := markUnavailable(context.Background(), io.EOF); !errors.Is(err, ErrUnavailable) {
		t.Errorf("without a watcher: %v", err)
	}
}
