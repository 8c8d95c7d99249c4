package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ConsentedScopes returns the scopes a user allowed a client and asked mxidp
// to remember; nil when there is no such decision.
func (s *Store) ConsentedScopes(ctx context.Context, userID, clientID string) ([]string, error) {
	var scopes string
	err := s.queryRow(ctx, nil, `SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2`, userID, clientID).Scan(&scopes)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load consent: %w", err)
	}
	return splitList(scopes), nil
}

// SaveConsent remembers that a user allowed a client these scopes,
// replacing an earlier decision.
func (s *Store) SaveConsent(ctx context.Context, userID, clientID string, scopes []string) error {
	_, err := s.exec(ctx, nil, `INSERT INTO consents (user_id, client_id, scopes, created_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, created_at = excluded.created_at`,
		userID, clientID, joinList(scopes), unix(s.now()))
	if err != nil {
		return fmt.Errorf("save consent: %w", err)
	}
	return nil
}
