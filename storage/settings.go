package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// PasswordLoginAllowed reports whether the account userID may log in with
// its password at the Matrix login API: true unless an operator refused
// it (SetPasswordLogin).
func (s *Store) PasswordLoginAllowed(ctx context.Context, userID string) (bool, error) {
	var allowed bool
	err := s.queryRow(ctx, nil, `SELECT password_login FROM account_settings WHERE user_id = $1`, userID).Scan(&allowed)
	if errors.Is(err, sql.ErrNoRows) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("load account settings: %w", err)
	}
	return allowed, nil
}

// SetPasswordLogin allows or refuses the account userID's password at the
// Matrix login API. userID may be a platform user's, which mxidp's user
// table does not hold.
func (s *Store) SetPasswordLogin(ctx context.Context, userID string, allowed bool) error {
	_, err := s.exec(ctx, nil, `INSERT INTO account_settings (user_id, password_login, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (user_id) DO UPDATE SET password_login = excluded.password_login, updated_at = excluded.updated_at`,
		userID, allowed, unix(s.now()))
	if err != nil {
		return fmt.Errorf("save account settings: %w", err)
	}
	return nil
}

// PasswordLoginsRefused returns the user IDs whose password the Matrix
// login API refuses.
func (s *Store) PasswordLoginsRefused(ctx context.Context) (map[string]bool, error) {
	rows, err := s.query(ctx, nil, `SELECT user_id FROM account_settings WHERE NOT password_login`)
	if err != nil {
		return nil, fmt.Errorf("list account settings: %w", err)
	}
	defer rows.Close()
	refused := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("list account settings: %w", err)
		}
		refused[id] = true
	}
	return refused, rows.Err()
}
