package storage

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// AuditEvent is one security event: a login, a logout, or a change to a
// user, a client or the signing keys. It never holds a password, secret
// or token.
type AuditEvent struct {
	ID       string
	At       time.Time
	Event    string // e.g. login.succeeded, login.failed, login.throttled, logout, user.disabled, client.added, keys.rotated
	UserID   string
	Username string // as typed at a login, or the account's name
	ClientID string
	Network  string // the client's address, when known
	Detail   string // e.g. why a login failed
	// Count is how many times the event happened: more than 1 for a
	// repeated event (AddRepeatedAuditEvent), which At first and Last last.
	Count int64
	Last  time.Time
}

// AddAuditEvent records e. A zero At means now; the ID is made here.
func (s *Store) AddAuditEvent(ctx context.Context, e AuditEvent) error {
	if e.At.IsZero() {
		e.At = s.now()
	}
	_, err := s.exec(ctx, nil, `INSERT INTO audit_events (id, at, event, user_id, username, client_id, network, detail, last_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $2)`,
		randomID(), e.At.UnixMilli(), e.Event, e.UserID, e.Username, e.ClientID, e.Network, e.Detail)
	if err != nil {
		return fmt.Errorf("record audit event %s: %w", e.Event, err)
	}
	return nil
}

// AddRepeatedAuditEvent records e, or, when an event of the same key was
// recorded in the same window (fixed windows of that length), counts it
// there: the row's count grows, its Last and Detail become e's. So a
// flood of one event takes one row per window, however long it goes on.
// Parallel calls count every event once.
func (s *Store) AddRepeatedAuditEvent(ctx context.Context, e AuditEvent, key string, window time.Duration) error {
	if e.At.IsZero() {
		e.At = s.now()
	}
	at := e.At.UnixMilli()
	repeat := key + "@" + strconv.FormatInt(at/max(window.Milliseconds(), 1), 10)
	_, err := s.exec(ctx, nil, `INSERT INTO audit_events (id, at, event, user_id, username, client_id, network, detail, last_at, repeat_key)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $2, $9)
		ON CONFLICT (repeat_key) DO UPDATE SET count = audit_events.count + 1, detail = excluded.detail,
		last_at = CASE WHEN excluded.last_at > audit_events.last_at THEN excluded.last_at ELSE audit_events.last_at END`,
		randomID(), at, e.Event, e.UserID, e.Username, e.ClientID, e.Network, e.Detail, repeat)
	if err != nil {
		return fmt.Errorf("record audit event %s: %w", e.Event, err)
	}
	return nil
}

// AuditFilter selects audit events; zero fields select everything.
type AuditFilter struct {
	// User matches the user ID or the username; UserID, when set, the
	// user ID too (for events recorded under the ID only).
	User, UserID string
	Since        time.Time
	Event        string // a prefix: "login" matches login.succeeded and login.failed
	Limit        int    // newest first when set; default 1000
}

// AuditEvents returns the events the filter selects, oldest first.
func (s *Store) AuditEvents(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.User != "" {
		p := arg(f.User)
		id := p
		if f.UserID != "" {
			id = arg(f.UserID)
		}
		where = append(where, "(user_id = "+p+" OR username = "+p+" OR user_id = "+id+")")
	}
	if !f.Since.IsZero() {
		where = append(where, "at >= "+arg(f.Since.UnixMilli()))
	}
	if f.Event != "" {
		where = append(where, "event LIKE "+arg(escapeLike(f.Event)+"%")+` ESCAPE '\'`)
	}
	q := `SELECT id, at, event, user_id, username, client_id, network, detail, count, last_at FROM audit_events`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	// The newest Limit events, then oldest first.
	q = `SELECT * FROM (` + q + ` ORDER BY at DESC, id DESC LIMIT ` + arg(f.Limit) + `) AS newest ORDER BY at, id`
	rows, err := s.query(ctx, nil, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read audit events: %w", err)
	}
	defer rows.Close()
	out := []AuditEvent{}
	for rows.Next() {
		var e AuditEvent
		var at, last int64
		if err := rows.Scan(&e.ID, &at, &e.Event, &e.UserID, &e.Username, &e.ClientID, &e.Network, &e.Detail, &e.Count, &last); err != nil {
			return nil, fmt.Errorf("read audit events: %w", err)
		}
		e.At, e.Last = time.UnixMilli(at).UTC(), time.UnixMilli(max(last, at)).UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}

// PurgeAudit deletes events older than retention.
func (s *Store) PurgeAudit(ctx context.Context, retention time.Duration) (int64, error) {
	res, err := s.exec(ctx, nil, `DELETE FROM audit_events WHERE at < $1`, s.now().Add(-retention).UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("purge audit events: %w", err)
	}
	return res.RowsAffected()
}
