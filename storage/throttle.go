package storage

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Throttle counters live in the database so that every instance sees the
// same ones; each change is one transaction with the row locked, so
// parallel checks are counted one by one and none slips past a limit.

// Admit decides whether one more password check under key may run now.
// It counts the check at once, as a failure until Succeeded says
// otherwise, so that checks running in parallel are all counted before
// any of them knows its result. delay(n) is how long the n-th counted
// check holds off the next one; counts older than forgetAfter start again
// from zero. A refusal reports how long until the next check is admitted.
func (s *Store) Admit(ctx context.Context, key string, delay func(failures int64) time.Duration, forgetAfter time.Duration) (admitted bool, retryAfter time.Duration, err error) {
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.exec(ctx, tx, `INSERT INTO throttle (key, failures, next_at, updated_at) VALUES ($1, 0, 0, 0)
			ON CONFLICT (key) DO NOTHING`, key); err != nil {
			return err
		}
		var failures, nextAt, updatedAt int64
		if err := s.queryRow(ctx, tx, `SELECT failures, next_at, updated_at FROM throttle WHERE key = $1`+s.dialect.forUpdate, key).
			Scan(&failures, &nextAt, &updatedAt); err != nil {
			return err
		}
		// The time is read with the row locked, so that checks admitted
		// one after another see times in the same order.
		now := s.now()
		nowMS := now.UnixMilli()
		if nowMS-updatedAt > forgetAfter.Milliseconds() {
			failures, nextAt = 0, 0
		}
		if nowMS < nextAt {
			retryAfter = time.Duration(nextAt-nowMS) * time.Millisecond
			return nil
		}
		failures++
		admitted = true
		_, err := s.exec(ctx, tx, `UPDATE throttle SET failures = $2, next_at = $3, updated_at = $4 WHERE key = $1`,
			key, failures, now.Add(delay(failures)).UnixMilli(), nowMS)
		return err
	})
	if err != nil {
		return false, 0, fmt.Errorf("throttle %s: %w", key, err)
	}
	return admitted, retryAfter, nil
}

// Succeeded takes back the count of one admitted check that turned out
// right: forget clears the key (an account whose owner got in), otherwise
// only this one check is uncounted (a network that other accounts share).
func (s *Store) Succeeded(ctx context.Context, key string, forget bool) error {
	var err error
	if forget {
		_, err = s.exec(ctx, nil, `DELETE FROM throttle WHERE key = $1`, key)
	} else {
		_, err = s.exec(ctx, nil, `UPDATE throttle SET failures = failures - 1 WHERE key = $1 AND failures > 0`, key)
	}
	if err != nil {
		return fmt.Errorf("throttle %s: %w", key, err)
	}
	return nil
}

// ThrottleState is a key's counter, for operators.
type ThrottleState struct {
	Key      string
	Failures int64
	NextAt   time.Time
}

// Throttled lists the keys that refuse checks now.
func (s *Store) Throttled(ctx context.Context) ([]ThrottleState, error) {
	rows, err := s.query(ctx, nil, `SELECT key, failures, next_at FROM throttle WHERE next_at > $1 ORDER BY key`, s.now().UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("list throttled keys: %w", err)
	}
	defer rows.Close()
	out := []ThrottleState{}
	for rows.Next() {
		var st ThrottleState
		var next int64
		if err := rows.Scan(&st.Key, &st.Failures, &next); err != nil {
			return nil, err
		}
		st.NextAt = time.UnixMilli(next).UTC()
		out = append(out, st)
	}
	return out, rows.Err()
}

// PurgeThrottle deletes counters untouched for longer than forgetAfter
// that hold nothing off any more.
func (s *Store) PurgeThrottle(ctx context.Context, forgetAfter time.Duration) (int64, error) {
	now := s.now()
	res, err := s.exec(ctx, nil, `DELETE FROM throttle WHERE updated_at < $1 AND next_at < $2`,
		now.Add(-forgetAfter).UnixMilli(), now.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("purge throttle: %w", err)
	}
	return res.RowsAffected()
}
