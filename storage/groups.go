package storage

import (
	"context"
	"database/sql"
	"fmt"
)

// UserGroups returns the groups a builtin user belongs to, sorted.
func (s *Store) UserGroups(ctx context.Context, userID string) ([]string, error) {
	rows, err := s.query(ctx, nil, `SELECT group_name FROM user_groups WHERE user_id = $1 ORDER BY group_name`, userID)
	if err != nil {
		return nil, fmt.Errorf("load groups: %w", err)
	}
	defer rows.Close()
	groups := []string{}
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			return nil, fmt.Errorf("load groups: %w", err)
		}
		groups = append(groups, g)
	}
	return groups, rows.Err()
}

// SetUserGroups replaces a user's group memberships.
func (s *Store) SetUserGroups(ctx context.Context, userID string, groups []string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.exec(ctx, tx, `DELETE FROM user_groups WHERE user_id = $1`, userID); err != nil {
			return err
		}
		for _, g := range groups {
			if _, err := s.exec(ctx, tx, `INSERT INTO user_groups (user_id, group_name) VALUES ($1, $2)
				ON CONFLICT (user_id, group_name) DO NOTHING`, userID, g); err != nil {
				return fmt.Errorf("set groups: %w", err)
			}
		}
		return nil
	})
}
