package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// AuthRequest is an OpenID authorization request from the moment a client
// sends the browser to mxidp until its code is exchanged (and a while
// after, to recognise a replayed code).
type AuthRequest struct {
	ID                  string
	ClientID            string
	RedirectURI         string
	Scopes              []string
	State               string
	Nonce               string
	ResponseType        string
	ResponseMode        string
	CodeChallenge       string
	CodeChallengeMethod string
	Prompt              []string
	MaxAge              *int64 // seconds; nil when the client set none
	LoginHint           string
	UILocales           string
	// BrowserHash is the SHA-256 of the browser-binding cookie of the
	// browser that started the request; only that browser may log in for
	// it, consent to it and receive its code.
	BrowserHash string

	// Set when the user has logged in.
	UserID    string
	SessionID string
	AuthTime  time.Time
	AMR       []string
	Done      bool

	CodeExpiresAt time.Time
	Consumed      bool // the code was exchanged
	CreatedAt     time.Time
	ExpiresAt     time.Time
}

const authRequestColumns = `id, client_id, redirect_uri, scopes, state, nonce, response_type, response_mode,
	code_challenge, code_challenge_method, prompt, max_age, login_hint, ui_locales, browser_hash,
	user_id, session_id, auth_time, amr, done, code_expires_at, consumed, created_at, expires_at`

// authRequestColumnsOfA is authRequestColumns, each qualified by the
// table's alias a, for queries that join other tables.
var authRequestColumnsOfA = "a." + strings.Join(strings.Fields(strings.ReplaceAll(authRequestColumns, ",", "")), ", a.")

// scanAuthRequest scans authRequestColumns, then the extra columns after
// them into extra.
func scanAuthRequest(row interface{ Scan(...any) error }, extra ...any) (AuthRequest, error) {
	var a AuthRequest
	var scopes, prompt, amr string
	var maxAge sql.NullInt64
	var authTime, codeExp, created, expires int64
	err := row.Scan(append([]any{&a.ID, &a.ClientID, &a.RedirectURI, &scopes, &a.State, &a.Nonce, &a.ResponseType, &a.ResponseMode,
		&a.CodeChallenge, &a.CodeChallengeMethod, &prompt, &maxAge, &a.LoginHint, &a.UILocales, &a.BrowserHash,
		&a.UserID, &a.SessionID, &authTime, &amr, &a.Done, &codeExp, &a.Consumed, &created, &expires}, extra...)...)
	if errors.Is(err, sql.ErrNoRows) {
		return AuthRequest{}, ErrNotFound
	}
	if err != nil {
		return AuthRequest{}, fmt.Errorf("load auth request: %w", err)
	}
	a.Scopes, a.Prompt, a.AMR = splitList(scopes), splitList(prompt), splitList(amr)
	if maxAge.Valid {
		a.MaxAge = &maxAge.Int64
	}
	if authTime != 0 {
		a.AuthTime = fromUnix(authTime)
	}
	if codeExp != 0 { // 0: no code issued yet
		a.CodeExpiresAt = fromUnix(codeExp)
	}
	a.CreatedAt, a.ExpiresAt = fromUnix(created), fromUnix(expires)
	return a, nil
}

// splitList and joinList store lists of tokens without spaces (scopes,
// prompts, methods) as one space-separated column.
func splitList(s string) []string { return strings.Fields(s) }
func joinList(l []string) string  { return strings.Join(l, " ") }

// CreateAuthRequest stores a new authorization request.
func (s *Store) CreateAuthRequest(ctx context.Context, a AuthRequest) error {
	var maxAge any
	if a.MaxAge != nil {
		maxAge = *a.MaxAge
	}
	_, err := s.exec(ctx, nil, `INSERT INTO auth_requests (id, client_id, redirect_uri, scopes, state, nonce,
		response_type, response_mode, code_challenge, code_challenge_method, prompt, max_age, login_hint, ui_locales,
		browser_hash, user_id, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`,
		a.ID, a.ClientID, a.RedirectURI, joinList(a.Scopes), a.State, a.Nonce, a.ResponseType, a.ResponseMode,
		a.CodeChallenge, a.CodeChallengeMethod, joinList(a.Prompt), maxAge, a.LoginHint, a.UILocales,
		a.BrowserHash, a.UserID, unix(a.CreatedAt), unix(a.ExpiresAt))
	return s.wrapWrite(err, "create auth request")
}

// AuthRequestByID returns an unexpired authorization request, or ErrNotFound.
func (s *Store) AuthRequestByID(ctx context.Context, id string) (AuthRequest, error) {
	return scanAuthRequest(s.queryRow(ctx, nil,
		`SELECT `+authRequestColumns+` FROM auth_requests WHERE id = $1 AND expires_at > $2`, id, unix(s.now())))
}

// AuthRequestWithSession returns an unexpired authorization request and,
// read in the same statement, the live session that completed it (a zero
// Session when it has none, or that session expired or ended).
func (s *Store) AuthRequestWithSession(ctx context.Context, id string) (AuthRequest, Session, error) {
	var sess Session
	var authTime, created, expires int64
	a, err := scanAuthRequest(s.queryRow(ctx, nil, `SELECT `+authRequestColumnsOfA+`,
		COALESCE(s.id, ''), COALESCE(s.token_hash, ''), COALESCE(s.user_id, ''),
		COALESCE(s.auth_time, 0), COALESCE(s.created_at, 0), COALESCE(s.expires_at, 0)
		FROM auth_requests a LEFT JOIN sessions s ON s.id = a.session_id AND s.expires_at > $2
		WHERE a.id = $1 AND a.expires_at > $2`, id, unix(s.now())),
		&sess.ID, &sess.TokenHash, &sess.UserID, &authTime, &created, &expires)
	if err != nil || sess.ID == "" {
		return a, Session{}, err
	}
	sess.AuthTime, sess.CreatedAt, sess.ExpiresAt = fromUnix(authTime), fromUnix(created), fromUnix(expires)
	return a, sess, nil
}

// AuthRequestByCodeHash returns the request a code was issued for, consumed
// or not, while the code is unexpired; or ErrNotFound.
func (s *Store) AuthRequestByCodeHash(ctx context.Context, codeHash string) (AuthRequest, error) {
	return scanAuthRequest(s.queryRow(ctx, nil,
		`SELECT `+authRequestColumns+` FROM auth_requests WHERE code_hash = $1 AND code_expires_at > $2`, codeHash, unix(s.now())))
}

// CompleteAuthRequest records who logged in for a pending request. Once
// its code is issued, a request can no longer change hands.
func (s *Store) CompleteAuthRequest(ctx context.Context, id, userID, sessionID string, authTime time.Time, amr []string) error {
	res, err := s.exec(ctx, nil, `UPDATE auth_requests SET user_id = $2, session_id = $3, auth_time = $4, amr = $5, done = TRUE
		WHERE id = $1 AND NOT consumed AND code_hash IS NULL AND expires_at > $6`,
		id, userID, sessionID, unix(authTime), joinList(amr), unix(s.now()))
	return oneRow(res, err, "complete auth request")
}

// SaveAuthCode stores the hash of the code issued for a completed request.
// A request gets at most one code, ever: a second call finds no row
// (ErrNotFound), so a request cannot be made to mint codes for whoever
// asks again.
func (s *Store) SaveAuthCode(ctx context.Context, id, codeHash string, expires time.Time) error {
	res, err := s.exec(ctx, nil, `UPDATE auth_requests SET code_hash = $2, code_expires_at = $3
		WHERE id = $1 AND done AND NOT consumed AND code_hash IS NULL AND expires_at > $4`, id, codeHash, unix(expires), unix(s.now()))
	return oneRow(res, err, "save auth code")
}

// DeleteAuthRequest removes a request (a login the user abandoned).
func (s *Store) DeleteAuthRequest(ctx context.Context, id string) error {
	return s.deleteWhere(ctx, "auth_requests", "id", id)
}

// oneRow turns an UPDATE that matched no row into ErrNotFound.
func oneRow(res sql.Result, err error, what string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	} else if n == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}
