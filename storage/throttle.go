package storage

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// Throttle counters live in the database so that every instance sees the
// same ones; each change is one transaction with the row locked, so
// parallel checks are counted one by one and none slips past a limit.
//
// A key counts wrong passwords (failures) and checks under way (inflight).
// While failures are below the burst, up to burst−failures checks may run
// at once; from the burst on, one at a time and only after the delay that
// the last failure set. A check is admitted before anyone knows whether the
// password is right, so parallel guesses wait for the earlier ones'
// results instead of all passing while the count is still low.

// Admission is the answer to a request to check one password.
type Admission struct {
	Admitted bool
	// Busy: checks under way fill the allowance; ask again shortly.
	Busy bool
	// RetryAfter: refused until the last failure's delay has passed.
	RetryAfter time.Duration
}

// inflightTimeout forgets checks under way that never finished (an
// instance that died mid-check): no check takes this long.
const inflightTimeout = time.Minute

// Admit asks to check one password under key. Counts untouched for
// longer than forgetAfter start again from zero.
func (s *Store) Admit(ctx context.Context, key string, burst int64, forgetAfter time.Duration) (Admission, error) {
	// The common case in one statement: a row touched lately, nothing
	// held off, room for one more check. Anything else takes the
	// transaction below, which decides every case.
	now := s.now().UnixMilli()
	res, err := s.exec(ctx, nil, `UPDATE throttle SET inflight = inflight + 1, updated_at = $2
		WHERE key = $1 AND next_at <= $2 AND $2 - updated_at <= $3
		AND inflight < CASE WHEN $4 - failures > 1 THEN $4 - failures ELSE 1 END`,
		key, now, min(forgetAfter, inflightTimeout).Milliseconds(), burst)
	if err != nil {
		return Admission{}, fmt.Errorf("throttle %s: %w", key, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 1 {
		return Admission{Admitted: true}, nil
	}
	var a Admission
	err = s.throttleTx(ctx, key, forgetAfter, func(t *throttleRow, now int64) bool {
		switch {
		case now < t.nextAt:
			a.RetryAfter = time.Duration(t.nextAt-now) * time.Millisecond
			return false
		case t.inflight >= max(burst-t.failures, 1):
			a.Busy = true
			return false
		}
		t.inflight++
		a.Admitted = true
		return true
	})
	return a, err
}

// ThrottleKey names a counter and the burst it allows (see Admit).
type ThrottleKey struct {
	Key   string
	Burst int64
}

// AdmitCommon admits one check under each of keys that is in the common
// case (its row touched lately, nothing held off, room for one more), all
// in one statement, and returns the ones it admitted. The caller asks for
// each of the others with Admit, which decides every case.
func (s *Store) AdmitCommon(ctx context.Context, keys []ThrottleKey, forgetAfter time.Duration) (map[string]bool, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	// Each key's room is computed from its own burst: a CASE over the
	// keys picks it. The query text depends only on len(keys) (one to
	// three in practice), so its prepared statements stay few.
	now := s.now().UnixMilli()
	args := []any{now, min(forgetAfter, inflightTimeout).Milliseconds()}
	var in, burst strings.Builder
	for i, k := range keys {
		args = append(args, k.Key, k.Burst)
		if i > 0 {
			in.WriteString(", ")
		}
		fmt.Fprintf(&in, "$%d", 3+2*i)
		fmt.Fprintf(&burst, " WHEN $%d THEN CAST($%d AS BIGINT)", 3+2*i, 4+2*i)
	}
	rows, err := s.query(ctx, nil, `UPDATE throttle SET inflight = inflight + 1, updated_at = $1
		WHERE `+s.keysLockedInOrder(in.String())+` AND next_at <= $1 AND $1 - updated_at <= $2
		AND inflight < CASE WHEN (CASE key`+burst.String()+` END) - failures > 1 THEN (CASE key`+burst.String()+` END) - failures ELSE 1 END
		RETURNING key`, args...)
	if err != nil {
		return nil, fmt.Errorf("throttle: %w", err)
	}
	defer rows.Close()
	admitted := make(map[string]bool, len(keys))
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("throttle: %w", err)
		}
		admitted[k] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("throttle: %w", markUnavailable(ctx, err))
	}
	return admitted, nil
}

// keysLockedInOrder is the condition of a statement that changes the
// counters of several keys (in, a list of placeholders): on PostgreSQL it
// locks their rows in key order first. An UPDATE locks the rows it changes
// in the order it happens to find them, which two statements over the same
// rows need not share (a row's newest version moves when it is updated):
// parallel checks of one user from one network, which share two or three
// counters, then deadlock, and PostgreSQL fails one of them after a second,
// leaving the counters of a check it was ending counted as under way.
// Locked in one order, such statements wait for each other instead.
// SQLite runs one write at a time and takes no row locks.
func (s *Store) keysLockedInOrder(in string) string {
	if s.dialect.forUpdate == "" {
		return `key IN (` + in + `)`
	}
	return `key IN (SELECT key FROM throttle WHERE key IN (` + in + `) ORDER BY key` + s.dialect.forUpdate + `)`
}

// FinishMany ends admitted checks that no wrong password decided, all in
// one statement: each key stops counting its check as under way. decided
// says the check found the right password, as Finish with wrong false: the
// keys are touched, and those in forget lose their failures; otherwise it
// decided nothing, as Abandon.
func (s *Store) FinishMany(ctx context.Context, keys, forget []string, decided bool) error {
	if len(keys) == 0 {
		return nil
	}
	var args []any
	set := `inflight = CASE WHEN inflight > 0 THEN inflight - 1 ELSE 0 END`
	if decided {
		args = append(args, s.now().UnixMilli())
		set += `, updated_at = $1`
	}
	list := func(ks []string) string {
		var b strings.Builder
		for i, k := range ks {
			args = append(args, k)
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "$%d", len(args))
		}
		return b.String()
	}
	where := list(keys)
	if decided && len(forget) > 0 {
		f := list(forget)
		set += `, failures = CASE WHEN key IN (` + f + `) THEN 0 ELSE failures END, next_at = CASE WHEN key IN (` + f + `) THEN 0 ELSE next_at END`
	}
	if _, err := s.exec(ctx, nil, `UPDATE throttle SET `+set+` WHERE `+s.keysLockedInOrder(where), args...); err != nil {
		return fmt.Errorf("throttle: %w", err)
	}
	return nil
}

// Finish ends an admitted check. A wrong password counts as a failure and
// holds off the next check by delay(failures); a right one clears the
// failures when forget is true (an account whose owner got in), and
// otherwise leaves them (a network that other accounts share).
func (s *Store) Finish(ctx context.Context, key string, wrong, forget bool, delay func(failures int64) time.Duration) error {
	if !wrong {
		// The common case, one statement: nothing is computed from the row.
		var forgotten []string
		if forget {
			forgotten = []string{key}
		}
		return s.FinishMany(ctx, []string{key}, forgotten, true)
	}
	return s.throttleTx(ctx, key, 0, func(t *throttleRow, now int64) bool {
		t.inflight = max(t.inflight-1, 0)
		t.failures++
		t.nextAt = now + delay(t.failures).Milliseconds()
		return true
	})
}

// Abandon ends an admitted check that decided nothing (the request ended
// first, or the user store failed): it only stops counting it as under way.
func (s *Store) Abandon(ctx context.Context, key string) error {
	return s.FinishMany(ctx, []string{key}, nil, false)
}

type throttleRow struct{ failures, inflight, nextAt, updatedAt int64 }

// throttleTx loads key's row locked (creating it), lets change decide, and
// stores the row when change returns true. forgetAfter > 0 resets a row
// untouched that long.
func (s *Store) throttleTx(ctx context.Context, key string, forgetAfter time.Duration, change func(t *throttleRow, nowMS int64) bool) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// One round trip makes the row if needed, locks it and reads it.
		var t throttleRow
		if err := s.queryRow(ctx, tx, `INSERT INTO throttle (key, failures, inflight, next_at, updated_at) VALUES ($1, 0, 0, 0, 0)
			ON CONFLICT (key) DO UPDATE SET key = excluded.key
			RETURNING failures, inflight, next_at, updated_at`, key).
			Scan(&t.failures, &t.inflight, &t.nextAt, &t.updatedAt); err != nil {
			return err
		}
		// The time is read with the row locked, so that changes one after
		// another see times in the same order.
		now := s.now().UnixMilli()
		if forgetAfter > 0 && now-t.updatedAt > forgetAfter.Milliseconds() {
			t.failures, t.nextAt = 0, 0
		}
		if now-t.updatedAt > inflightTimeout.Milliseconds() {
			t.inflight = 0
		}
		if !change(&t, now) {
			return nil
		}
		_, err := s.exec(ctx, tx, `UPDATE throttle SET failures = $2, inflight = $3, next_at = $4, updated_at = $5 WHERE key = $1`,
			key, t.failures, t.inflight, t.nextAt, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("throttle %s: %w", key, err)
	}
	return nil
}

// ClearThrottle forgets a key's failures (`mxidp user unlock`).
func (s *Store) ClearThrottle(ctx context.Context, key string) error {
	if _, err := s.exec(ctx, nil, `DELETE FROM throttle WHERE key = $1`, key); err != nil {
		return fmt.Errorf("throttle %s: %w", key, err)
	}
	return nil
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
