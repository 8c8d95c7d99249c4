package storage

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Delivery is one queued back-channel logout notice: tell client (at URI)
// that session SessionID of Subject has ended.
type Delivery struct {
	ID        string
	ClientID  string
	URI       string
	Subject   string
	SessionID string
	Attempts  int
	CreatedAt time.Time
}

// ClaimDeliveries takes up to limit notices that are due and leases them
// for lease: they are not due again until then, so that another instance
// does not send them at the same time. A worker that dies mid-delivery
// leaves its claims to be retried after the lease.
func (s *Store) ClaimDeliveries(ctx context.Context, limit int, lease time.Duration) ([]Delivery, error) {
	now := s.now()
	var out []Delivery
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := s.query(ctx, tx, `SELECT id, client_id, uri, subject, session_id, attempts, created_at
			FROM backchannel_queue WHERE next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $2`+s.dialect.skipLocked,
			unix(now), limit)
		if err != nil {
			return err
		}
		for rows.Next() {
			var d Delivery
			var created int64
			if err := rows.Scan(&d.ID, &d.ClientID, &d.URI, &d.Subject, &d.SessionID, &d.Attempts, &created); err != nil {
				rows.Close()
				return err
			}
			d.CreatedAt = fromUnix(created)
			out = append(out, d)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, d := range out {
			if _, err := s.exec(ctx, tx, `UPDATE backchannel_queue SET next_attempt_at = $2 WHERE id = $1`,
				d.ID, unix(now.Add(lease))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim back-channel deliveries: %w", err)
	}
	return out, nil
}

// DeliveryDone removes a delivered (or abandoned) notice.
func (s *Store) DeliveryDone(ctx context.Context, id string) error {
	_, err := s.exec(ctx, nil, `DELETE FROM backchannel_queue WHERE id = $1`, id)
	return err
}

// DeliveryFailed records a failed attempt and when to try again.
func (s *Store) DeliveryFailed(ctx context.Context, id string, next time.Time, reason string) error {
	_, err := s.exec(ctx, nil, `UPDATE backchannel_queue SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3
		WHERE id = $1`, id, unix(next), reason)
	return err
}

// PendingDeliveries counts queued notices (for tests and metrics).
func (s *Store) PendingDeliveries(ctx context.Context) (int, error) {
	var n int
	err := s.queryRow(ctx, nil, `SELECT COUNT(*) FROM backchannel_queue`).Scan(&n)
	return n, err
}
