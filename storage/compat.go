package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// TakeOverMatrixDevice makes the device deviceID of the user belong to a
// new authorization (family), revoking every token of the one that held
// it, in one transaction: a Matrix login that names an existing device
// replaces that device's tokens (Matrix client-server API, "POST
// /login", device_id). A device the user does not have is reserved as
// ReserveMatrixDevice does. It reports whether a device was taken over.
func (s *Store) TakeOverMatrixDevice(ctx context.Context, d MatrixDevice) (bool, error) {
	now := s.now()
	var taken bool
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		old, err := scanDevice(s.queryRow(ctx, tx, `SELECT `+deviceColumns+` FROM matrix_devices
			WHERE user_id = $1 AND device_id = $2`+s.dialect.forUpdate, d.UserID, d.DeviceID))
		if errors.Is(err, ErrNotFound) {
			_, err := s.exec(ctx, tx, `INSERT INTO matrix_devices (`+deviceColumns+`)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
				d.FamilyID, d.UserID, d.Localpart, d.DeviceID, d.ClientID, d.SessionID, d.DisplayName, unix(now), unix(now))
			return s.wrapWrite(err, fmt.Sprintf("reserve matrix device %q", d.DeviceID))
		}
		if err != nil {
			return err
		}
		taken = true
		if _, err := s.exec(ctx, tx, `UPDATE tokens SET revoked = TRUE WHERE family_id = $1`, old.FamilyID); err != nil {
			return fmt.Errorf("revoke the device's tokens: %w", err)
		}
		name := d.DisplayName
		if name == "" {
			name = old.DisplayName
		}
		_, err = s.exec(ctx, tx, `UPDATE matrix_devices SET family_id = $3, client_id = $4, session_id = $5, display_name = $6,
			created_at = $7, last_seen_at = $7 WHERE user_id = $1 AND device_id = $2`,
			d.UserID, d.DeviceID, d.FamilyID, d.ClientID, d.SessionID, name, unix(now))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("take over matrix device: %w", err)
	}
	return taken, nil
}

// CreateLoginToken stores a one-time Matrix login token (its hash) for
// the user, issued to the client at redirectURL.
func (s *Store) CreateLoginToken(ctx context.Context, hash, userID, redirectURL string, expires time.Time) error {
	_, err := s.exec(ctx, nil, `INSERT INTO matrix_login_tokens (hash, user_id, redirect_url, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5)`, hash, userID, redirectURL, unix(s.now()), unix(expires))
	return s.wrapWrite(err, "store login token")
}

// ConsumeLoginToken uses a login token once: it returns the user it was
// issued for, or ErrNotFound when it is unknown, used or expired. Two
// exchanges of one token cannot both succeed.
func (s *Store) ConsumeLoginToken(ctx context.Context, hash string) (string, error) {
	var userID string
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := s.exec(ctx, tx, `UPDATE matrix_login_tokens SET used = TRUE
			WHERE hash = $1 AND NOT used AND expires_at > $2`, hash, unix(s.now()))
		if err := casResult(res, err); errors.Is(err, ErrConflict) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		return s.queryRow(ctx, tx, `SELECT user_id FROM matrix_login_tokens WHERE hash = $1`, hash).Scan(&userID)
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return "", fmt.Errorf("use login token: %w", err)
	}
	return userID, err
}
