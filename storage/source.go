package storage

import (
	"context"
	"errors"
	"strings"
)

// Users is where accounts come from: mxidp's own table (*Store) or the
// platform's table read in place (*Platform). The login page, the OpenID
// claims and the REST service read accounts only through it, so both
// sources behave alike at every door.
type Users interface {
	// UserByLogin finds the account for what a user typed at a login:
	// a username, or an e-mail address only if it is verified.
	UserByLogin(ctx context.Context, login string) (User, error)
	UserByID(ctx context.Context, id string) (User, error)
	// UserByUsername finds the account whose canonical localpart this is.
	UserByUsername(ctx context.Context, localpart string) (User, error)
	UserByEmail(ctx context.Context, email string) (User, error)
	UserByMSISDN(ctx context.Context, msisdn string) (User, error)
	SearchUsers(ctx context.Context, terms []string, limit int) ([]User, error)
	UsersByEmails(ctx context.Context, emails []string) (map[string]User, error)
	UsersByMSISDNs(ctx context.Context, msisdns []string) (map[string]User, error)
	UserGroups(ctx context.Context, userID string) ([]string, error)
}

var (
	_ Users = (*Store)(nil)
	_ Users = (*Platform)(nil)
)

// UserByLogin finds a user by username or, when login looks like an
// address, by verified e-mail address, ignoring case and surrounding space.
func (s *Store) UserByLogin(ctx context.Context, login string) (User, error) {
	login = strings.ToLower(strings.TrimSpace(login))
	u, err := s.UserByUsername(ctx, login)
	if errors.Is(err, ErrNotFound) && strings.Contains(login, "@") {
		u, err = s.UserByEmail(ctx, login)
		if err == nil && !u.EmailVerified {
			return User{}, ErrNotFound
		}
	}
	return u, err
}

// ActiveUserIDs lists the users who have a live browser session or an
// unrevoked, unexpired token: those whose account changes on the
// platform's side must be checked (see Platform).
func (s *Store) ActiveUserIDs(ctx context.Context) ([]string, error) {
	now := unix(s.now())
	rows, err := s.query(ctx, nil, `SELECT user_id FROM sessions WHERE expires_at > $1
		UNION SELECT user_id FROM tokens WHERE NOT revoked AND expires_at > $1`, now)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
