package storage

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Token kinds.
const (
	AccessToken  = "access"
	RefreshToken = "refresh"
)

// Token is an issued access or refresh token. Access tokens are found by
// ID (the bearer value is the ID sealed by the provider); refresh tokens by
// the SHA-256 of their value. Every token descended from one authorization
// code shares a FamilyID, so that a replayed code or a reused refresh token
// revokes the whole family.
type Token struct {
	ID        string
	Kind      string
	Hash      string // refresh tokens only
	FamilyID  string
	ClientID  string
	UserID    string
	SessionID string
	Scopes    []string
	Audience  []string
	AuthTime  time.Time
	AMR       []string
	Rotated   bool
	Revoked   bool
	CreatedAt time.Time
	ExpiresAt time.Time
}

const tokenColumns = `id, kind, COALESCE(hash, ''), family_id, client_id, user_id, session_id, scopes, audience,
	auth_time, amr, rotated, revoked, created_at, expires_at`

func scanToken(row interface{ Scan(...any) error }) (Token, error) {
	var t Token
	var scopes, audience, amr string
	var authTime, created, expires int64
	err := row.Scan(&t.ID, &t.Kind, &t.Hash, &t.FamilyID, &t.ClientID, &t.UserID, &t.SessionID, &scopes, &audience,
		&authTime, &amr, &t.Rotated, &t.Revoked, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return Token{}, ErrNotFound
	}
	if err != nil {
		return Token{}, fmt.Errorf("load token: %w", err)
	}
	t.Scopes, t.Audience, t.AMR = splitList(scopes), splitList(audience), splitList(amr)
	t.AuthTime, t.CreatedAt, t.ExpiresAt = fromUnix(authTime), fromUnix(created), fromUnix(expires)
	return t, nil
}

// TokenByID returns a token by its ID, whatever its state.
func (s *Store) TokenByID(ctx context.Context, id string) (Token, error) {
	return scanToken(s.queryRow(ctx, nil, `SELECT `+tokenColumns+` FROM tokens WHERE id = $1`, id))
}

// TokenByHash returns a refresh token by the hash of its value, whatever
// its state.
func (s *Store) TokenByHash(ctx context.Context, hash string) (Token, error) {
	return scanToken(s.queryRow(ctx, nil, `SELECT `+tokenColumns+` FROM tokens WHERE hash = $1`, hash))
}

// Issue is one issuance of tokens, stored atomically.
type Issue struct {
	// ConsumeAuthRequest, when set, marks that request's code exchanged.
	// If it was exchanged already, nothing is stored and ErrConflict is
	// returned: two exchanges of one code cannot both succeed.
	ConsumeAuthRequest string
	// RotateRefreshHash, when set, marks that refresh token used. If it was
	// used, revoked or expired already, nothing is stored (ErrConflict).
	RotateRefreshHash string
	Tokens            []Token
}

// IssueTokens stores new tokens, consuming a code or rotating a refresh
// token in the same transaction, and records the client in the session
// (for back-channel logout).
func (s *Store) IssueTokens(ctx context.Context, is Issue) error {
	now := unix(s.now())
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if is.ConsumeAuthRequest != "" {
			res, err := s.exec(ctx, tx, `UPDATE auth_requests SET consumed = TRUE
				WHERE id = $1 AND done AND NOT consumed AND code_expires_at > $2`, is.ConsumeAuthRequest, now)
			if err := casResult(res, err); err != nil {
				return err
			}
		}
		if is.RotateRefreshHash != "" {
			res, err := s.exec(ctx, tx, `UPDATE tokens SET rotated = TRUE
				WHERE hash = $1 AND kind = 'refresh' AND NOT rotated AND NOT revoked AND expires_at > $2`, is.RotateRefreshHash, now)
			if err := casResult(res, err); err != nil {
				return err
			}
		}
		for _, t := range is.Tokens {
			var hash any
			if t.Hash != "" {
				hash = t.Hash
			}
			if _, err := s.exec(ctx, tx, `INSERT INTO tokens (id, kind, hash, family_id, client_id, user_id, session_id,
				scopes, audience, auth_time, amr, created_at, expires_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
				t.ID, t.Kind, hash, t.FamilyID, t.ClientID, t.UserID, t.SessionID, joinList(t.Scopes), joinList(t.Audience),
				unix(t.AuthTime), joinList(t.AMR), unix(t.CreatedAt), unix(t.ExpiresAt)); err != nil {
				return s.wrapWrite(err, "store token")
			}
			if t.SessionID != "" {
				if _, err := s.exec(ctx, tx, `INSERT INTO session_clients (session_id, client_id, user_id)
					VALUES ($1, $2, $3) ON CONFLICT (session_id, client_id) DO NOTHING`, t.SessionID, t.ClientID, t.UserID); err != nil {
					return fmt.Errorf("record session client: %w", err)
				}
			}
		}
		return nil
	})
}

// casResult turns a compare-and-swap UPDATE that matched no row into
// ErrConflict.
func casResult(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return ErrConflict
	}
	return nil
}

// RevokeFamily revokes every token descended from one code.
func (s *Store) RevokeFamily(ctx context.Context, familyID string) error {
	_, err := s.exec(ctx, nil, `UPDATE tokens SET revoked = TRUE WHERE family_id = $1`, familyID)
	if err != nil {
		return fmt.Errorf("revoke token family: %w", err)
	}
	return nil
}

// RevokeClientTokens revokes every token issued to a client.
func (s *Store) RevokeClientTokens(ctx context.Context, clientID string) error {
	_, err := s.exec(ctx, nil, `UPDATE tokens SET revoked = TRUE WHERE client_id = $1`, clientID)
	if err != nil {
		return fmt.Errorf("revoke the tokens of client %q: %w", clientID, err)
	}
	return nil
}

// RevokeToken revokes one token by ID.
func (s *Store) RevokeToken(ctx context.Context, id string) error {
	_, err := s.exec(ctx, nil, `UPDATE tokens SET revoked = TRUE WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	return nil
}

// randomID returns 128 random bits in hex, for row IDs nobody types.
func randomID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Purge deletes what has expired: authorization requests, tokens,
// sessions and their client lists, and dynamic clients nobody uses (see
// UnusedClientGrace). It returns how many rows went.
func (s *Store) Purge(ctx context.Context) (int64, error) {
	now := unix(s.now())
	var total int64
	for _, q := range []struct {
		stmt string
		args []any
	}{
		// A consumed request stays while its code could be replayed.
		{`DELETE FROM auth_requests WHERE expires_at <= $1 AND code_expires_at <= $1`, []any{now}},
		{`DELETE FROM tokens WHERE expires_at <= $1`, []any{now}},
		{`DELETE FROM sessions WHERE expires_at <= $1`, []any{now}},
		{`DELETE FROM matrix_login_tokens WHERE expires_at <= $1`, []any{now}},
		{`DELETE FROM session_clients WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = session_clients.session_id)`, nil},
		// After the requests and tokens: a client whose last one just went is unused now.
		{purgeUnusedClients[0], []any{now - int64(UnusedClientGrace/time.Second)}},
		{purgeUnusedClients[1], []any{now - int64(UnusedClientGrace/time.Second)}},
	} {
		res, err := s.exec(ctx, nil, q.stmt, q.args...)
		if err != nil {
			return total, fmt.Errorf("purge: %w", err)
		}
		n, _ := res.RowsAffected()
		total += n
	}
	return total, nil
}
