package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// User is an account in mxidp's own user table.
type User struct {
	ID            string // stable and never reused: the OpenID "sub"
	Username      string // canonical Matrix localpart
	Email         string // lower-cased; "" when none
	EmailVerified bool
	DisplayName   string
	MSISDN        string // phone number, E.164 digits without "+"; "" when none; set by the operator, so verified
	AvatarURL     string // mxc:// URI of the Matrix avatar; "" when none
	PasswordHash  string // PHC string; "" means the user cannot log in with a password
	Disabled      bool
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

const userColumns = `id, username, email, email_verified, display_name, msisdn, avatar_url, password_hash, disabled, created_at, updated_at`

func scanUser(row interface{ Scan(...any) error }) (User, error) {
	var u User
	var created, updated int64
	err := row.Scan(&u.ID, &u.Username, &u.Email, &u.EmailVerified, &u.DisplayName, &u.MSISDN, &u.AvatarURL,
		&u.PasswordHash, &u.Disabled, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, err
	}
	u.CreatedAt, u.UpdatedAt = fromUnix(created), fromUnix(updated)
	return u, nil
}

// CreateUser inserts a user. CreatedAt and UpdatedAt are set to now.
// A taken ID, username or e-mail address gives ErrAlreadyExists.
func (s *Store) CreateUser(ctx context.Context, u User) (User, error) {
	now := s.now()
	u.CreatedAt, u.UpdatedAt = now.UTC().Truncate(time.Second), now.UTC().Truncate(time.Second)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.exec(ctx, tx, `INSERT INTO users (`+userColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
			u.ID, u.Username, u.Email, u.EmailVerified, u.DisplayName, u.MSISDN, u.AvatarURL, u.PasswordHash, u.Disabled,
			unix(now), unix(now)); err != nil {
			return s.wrapWrite(err, fmt.Sprintf("create user %q", u.Username))
		}
		return s.indexSearchTerms(ctx, tx, u)
	})
	if err != nil {
		return User{}, err
	}
	return u, nil
}

// UserByID returns the user with this ID, or ErrNotFound.
func (s *Store) UserByID(ctx context.Context, id string) (User, error) {
	return s.userWhere(ctx, "id = $1", id)
}

// UserByUsername returns the user with this canonical username, or ErrNotFound.
func (s *Store) UserByUsername(ctx context.Context, username string) (User, error) {
	return s.userWhere(ctx, "username = $1", username)
}

// UserByEmail returns the user with this (lower-cased) e-mail address, or
// ErrNotFound.
func (s *Store) UserByEmail(ctx context.Context, email string) (User, error) {
	if email == "" {
		return User{}, ErrNotFound
	}
	// "<> ''" lets SQLite use the partial unique index.
	return s.userWhere(ctx, "email = $1 AND email <> ''", email)
}

// UserByMSISDN returns the user with this phone number (E.164 digits
// without "+"), or ErrNotFound.
func (s *Store) UserByMSISDN(ctx context.Context, msisdn string) (User, error) {
	if msisdn == "" {
		return User{}, ErrNotFound
	}
	return s.userWhere(ctx, "msisdn = $1 AND msisdn <> ''", msisdn)
}

func (s *Store) userWhere(ctx context.Context, cond string, arg any) (User, error) {
	u, err := scanUser(s.queryRow(ctx, nil, `SELECT `+userColumns+` FROM users WHERE `+cond, arg))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return User{}, fmt.Errorf("load user: %w", err)
	}
	return u, err
}

// ListUsers returns every user, ordered by username.
func (s *Store) ListUsers(ctx context.Context) ([]User, error) {
	rows, err := s.query(ctx, nil, `SELECT `+userColumns+` FROM users ORDER BY username`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	users := []User{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		users = append(users, u)
	}
	return users, rows.Err()
}

// CountUsers returns how many users exist.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	err := s.queryRow(ctx, nil, `SELECT COUNT(*) FROM users`).Scan(&n)
	return n, err
}

// UpdateUser loads the user with this ID, lets update change it, and stores
// the result, all in one transaction with the row locked, so concurrent
// updates never lose each other's changes. The ID cannot change.
func (s *Store) UpdateUser(ctx context.Context, id string, update func(*User) error) (User, error) {
	var out User
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		u, err := scanUser(s.queryRow(ctx, tx, `SELECT `+userColumns+` FROM users WHERE id = $1`+s.dialect.forUpdate, id))
		if err != nil {
			return err
		}
		before := u
		if err := update(&u); err != nil {
			return err
		}
		u.ID = id
		u.UpdatedAt = s.now().UTC().Truncate(time.Second)
		_, err = s.exec(ctx, tx, `UPDATE users SET username = $2, email = $3, email_verified = $4,
			display_name = $5, msisdn = $6, avatar_url = $7, password_hash = $8, disabled = $9, updated_at = $10 WHERE id = $1`,
			u.ID, u.Username, u.Email, u.EmailVerified, u.DisplayName, u.MSISDN, u.AvatarURL, u.PasswordHash, u.Disabled, unix(u.UpdatedAt))
		if err != nil {
			return s.wrapWrite(err, fmt.Sprintf("update user %q", u.Username))
		}
		if u.Username != before.Username || u.DisplayName != before.DisplayName {
			if err := s.indexSearchTerms(ctx, tx, u); err != nil {
				return err
			}
		}
		out = u
		return nil
	})
	return out, err
}

// DeleteUser removes the user with this ID, their group memberships and
// consents, or reports ErrNotFound.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	for _, table := range []string{"user_groups", "consents", "user_search_terms", "account_settings"} {
		if _, err := s.exec(ctx, nil, `DELETE FROM `+table+` WHERE user_id = $1`, id); err != nil {
			return fmt.Errorf("delete user's %s: %w", table, err)
		}
	}
	return s.deleteWhere(ctx, "users", "id", id)
}

func (s *Store) deleteWhere(ctx context.Context, table, column, value string) error {
	res, err := s.exec(ctx, nil, `DELETE FROM `+table+` WHERE `+column+` = $1`, value)
	if err != nil {
		return fmt.Errorf("delete from %s: %w", table, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return ErrNotFound
	}
	return nil
}
