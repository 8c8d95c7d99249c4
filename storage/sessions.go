package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Session is a browser's login at mxidp (single sign-on). The browser holds
// a random cookie; only its hash is stored. ID is public: it is the "sid"
// claim that back-channel logout refers to.
type Session struct {
	ID        string
	TokenHash string
	UserID    string
	AuthTime  time.Time
	CreatedAt time.Time
	ExpiresAt time.Time
}

// CreateSession stores a new browser session.
func (s *Store) CreateSession(ctx context.Context, sess Session) error {
	_, err := s.exec(ctx, nil, `INSERT INTO sessions (id, token_hash, user_id, auth_time, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6)`,
		sess.ID, sess.TokenHash, sess.UserID, unix(sess.AuthTime), unix(sess.CreatedAt), unix(sess.ExpiresAt))
	return s.wrapWrite(err, "create session")
}

// SessionByTokenHash returns the unexpired session a cookie refers to.
func (s *Store) SessionByTokenHash(ctx context.Context, tokenHash string) (Session, error) {
	return s.sessionWhere(ctx, "token_hash = $1", tokenHash)
}

// SessionByID returns the unexpired session with this sid.
func (s *Store) SessionByID(ctx context.Context, id string) (Session, error) {
	return s.sessionWhere(ctx, "id = $1", id)
}

func (s *Store) sessionWhere(ctx context.Context, cond, arg string) (Session, error) {
	var sess Session
	var authTime, created, expires int64
	err := s.queryRow(ctx, nil, `SELECT id, token_hash, user_id, auth_time, created_at, expires_at
		FROM sessions WHERE `+cond+` AND expires_at > $2`, arg, unix(s.now())).
		Scan(&sess.ID, &sess.TokenHash, &sess.UserID, &authTime, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, ErrNotFound
	}
	if err != nil {
		return Session{}, fmt.Errorf("load session: %w", err)
	}
	sess.AuthTime, sess.CreatedAt, sess.ExpiresAt = fromUnix(authTime), fromUnix(created), fromUnix(expires)
	return sess, nil
}

// EndedSession is a session that EndSessions ended.
type EndedSession struct {
	ID     string
	UserID string
}

// EndSessions ends the sessions with this ID (bySession) or of this user
// (not bySession), in one transaction: it revokes every token issued in
// them (for a user: every token of the user), queues a back-channel logout
// notice for each client of those sessions that registered a back-channel
// URI, and deletes the sessions. The queue survives restarts; a delivery
// worker sends the notices.
func (s *Store) EndSessions(ctx context.Context, key string, bySession bool) ([]EndedSession, error) {
	column := "user_id"
	if bySession {
		column = "id"
	}
	var ended []EndedSession
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		found, err := s.sessionsWhere(ctx, tx, column+" = $1", key)
		if err != nil {
			return err
		}
		ended = found
		// A session's predecessors (replaced by later logins in the same
		// browser) end with it: their clients know them by their own sid.
		for i := 0; bySession && i < len(ended); i++ {
			found, err := s.sessionsWhere(ctx, tx, "successor_id = $1", ended[i].ID)
			if err != nil {
				return err
			}
			ended = append(ended, found...)
		}
		now := unix(s.now())
		for _, e := range ended {
			// One notice per client of the session with a back-channel URI.
			if _, err := s.exec(ctx, tx, `INSERT INTO backchannel_queue (id, client_id, uri, subject, session_id, next_attempt_at, created_at)
				SELECT $1 || '-' || c.id, c.id, c.backchannel_logout_uri, sc.user_id, sc.session_id, $2, $2
				FROM session_clients sc JOIN clients c ON c.id = sc.client_id
				WHERE sc.session_id = $3 AND c.backchannel_logout_uri <> ''`, randomID(), now, e.ID); err != nil {
				return fmt.Errorf("queue back-channel logout: %w", err)
			}
			for _, stmt := range []string{
				`UPDATE tokens SET revoked = TRUE WHERE session_id = $1`,
				`DELETE FROM session_clients WHERE session_id = $1`,
				`DELETE FROM sessions WHERE id = $1`,
			} {
				if _, err := s.exec(ctx, tx, stmt, e.ID); err != nil {
					return err
				}
			}
		}
		if !bySession {
			_, err := s.exec(ctx, tx, `UPDATE tokens SET revoked = TRUE WHERE user_id = $1`, key)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("end sessions: %w", err)
	}
	return ended, nil
}

func (s *Store) sessionsWhere(ctx context.Context, tx *sql.Tx, cond, arg string) ([]EndedSession, error) {
	rows, err := s.query(ctx, tx, `SELECT id, user_id FROM sessions WHERE `+cond+s.dialect.forUpdate, arg)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []EndedSession
	for rows.Next() {
		var e EndedSession
		if err := rows.Scan(&e.ID, &e.UserID); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// ReplaceSession stores next, a new login in the browser that held the
// session old, and retires old in the same transaction: old's cookie stops
// working at once (so a cookie planted or stolen before the login is
// worth nothing after it), and old is ended together with next, so that
// the clients that know old's sid still hear of the logout.
func (s *Store) ReplaceSession(ctx context.Context, old string, next Session) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.exec(ctx, tx, `INSERT INTO sessions (id, token_hash, user_id, auth_time, created_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6)`,
			next.ID, next.TokenHash, next.UserID, unix(next.AuthTime), unix(next.CreatedAt), unix(next.ExpiresAt)); err != nil {
			return s.wrapWrite(err, "create session")
		}
		// "replaced:" cannot be the SHA-256 (base64url) of any cookie.
		// It lives as long as its successor, which ends it.
		res, err := s.exec(ctx, tx, `UPDATE sessions SET successor_id = $2, token_hash = 'replaced:' || id, expires_at = $3
			WHERE id = $1 AND successor_id = ''`, old, next.ID, unix(next.ExpiresAt))
		return oneRow(res, err, "retire session")
	})
}

// TouchSession records a new authentication time for a session.
func (s *Store) TouchSession(ctx context.Context, id string, authTime time.Time) error {
	res, err := s.exec(ctx, nil, `UPDATE sessions SET auth_time = $2 WHERE id = $1`, id, unix(authTime))
	return oneRow(res, err, "touch session")
}
