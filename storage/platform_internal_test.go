package storage

import (
	"context"
	"database/sql"
	"errors"
	"testing"
)

// An unreachable platform database is reported like mxidp's own, so that
// the health gate answers 503 at once.
func TestPlatformOutageIsReportedAsUnavailable(t *testing.T) {
	db, err := sql.Open("pgx", "postgres://mxidp@127.0.0.1:1/platform?connect_timeout=2") // nothing listens on port 1
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p := &Platform{db: db, byID: platformQuery{name: "by_id", sql: "SELECT 1 AS id, 'x' AS username WHERE $1::text IS NOT NULL"},
		opts: PlatformOptions{Localpart: func(s string) (string, error) { return s, nil }}}
	ctx, saw := WatchUnavailable(context.Background())
	if _, err := p.UserByID(ctx, "1"); !errors.Is(err, ErrUnavailable) || !saw() {
		t.Errorf("UserByID with the platform database unreachable: %v (noticed %v); want ErrUnavailable, noticed", err, saw())
	}
}
