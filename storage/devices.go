package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// MatrixDevice is a device mxidp created in Synapse for one authorization
// (next-gen auth): the tokens of FamilyID act as DeviceID of the user. The
// device lives while the family has a live token; once it has none
// (revoked, rotated away, expired), it is dead, and the device is deleted
// in Synapse and here.
type MatrixDevice struct {
	FamilyID    string
	UserID      string
	Localpart   string
	DeviceID    string
	ClientID    string
	SessionID   string
	DisplayName string
	CreatedAt   time.Time
	LastSeenAt  time.Time
}

const deviceColumns = `family_id, user_id, localpart, device_id, client_id, session_id, display_name, created_at, last_seen_at`

func scanDevice(row interface{ Scan(...any) error }) (MatrixDevice, error) {
	var d MatrixDevice
	var created, seen int64
	err := row.Scan(&d.FamilyID, &d.UserID, &d.Localpart, &d.DeviceID, &d.ClientID, &d.SessionID, &d.DisplayName, &created, &seen)
	if errors.Is(err, sql.ErrNoRows) {
		return MatrixDevice{}, ErrNotFound
	}
	if err != nil {
		return MatrixDevice{}, fmt.Errorf("load matrix device: %w", err)
	}
	d.CreatedAt, d.LastSeenAt = fromUnix(created), fromUnix(seen)
	return d, nil
}

// liveFamily is the condition that a device's family (aliased d) still
// has a token that can be used: an access token before its expiry, or a
// refresh token that is neither rotated nor expired, none revoked.
const liveFamily = `EXISTS (SELECT 1 FROM tokens t WHERE t.family_id = d.family_id
	AND NOT t.revoked AND NOT t.rotated AND t.expires_at > $1)`

// ReserveMatrixDevice records a device before it is created in Synapse,
// so that every instance counts it as the user's while the token that
// will use it is being issued. The same device ID of the same user held
// by another authorization gives ErrAlreadyExists: one device, one login.
func (s *Store) ReserveMatrixDevice(ctx context.Context, d MatrixDevice) error {
	now := s.now()
	d.CreatedAt, d.LastSeenAt = now, now
	_, err := s.exec(ctx, nil, `INSERT INTO matrix_devices (`+deviceColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		d.FamilyID, d.UserID, d.Localpart, d.DeviceID, d.ClientID, d.SessionID, d.DisplayName, unix(d.CreatedAt), unix(d.LastSeenAt))
	return s.wrapWrite(err, fmt.Sprintf("reserve matrix device %q", d.DeviceID))
}

// MatrixDeviceByFamily returns the device of an authorization, live or
// dead, or ErrNotFound.
func (s *Store) MatrixDeviceByFamily(ctx context.Context, familyID string) (MatrixDevice, error) {
	return scanDevice(s.queryRow(ctx, nil, `SELECT `+deviceColumns+` FROM matrix_devices WHERE family_id = $1`, familyID))
}

// MatrixDevices returns a user's live devices, the most recently seen
// first.
func (s *Store) MatrixDevices(ctx context.Context, userID string) ([]MatrixDevice, error) {
	return s.devicesWhere(ctx, `d.user_id = $2 AND `+liveFamily+` ORDER BY d.last_seen_at DESC, d.device_id`, unix(s.now()), userID)
}

// DeadMatrixDevices returns up to limit devices whose family has no live
// token: it had tokens, or it was reserved before notBefore (a younger
// reservation without any token may still be getting its first).
func (s *Store) DeadMatrixDevices(ctx context.Context, notBefore time.Time, limit int) ([]MatrixDevice, error) {
	return s.devicesWhere(ctx, `NOT `+liveFamily+` AND (d.created_at < $2 OR EXISTS (SELECT 1 FROM tokens t WHERE t.family_id = d.family_id))
		ORDER BY d.created_at LIMIT $3`, unix(s.now()), unix(notBefore), limit)
}

func (s *Store) devicesWhere(ctx context.Context, cond string, args ...any) ([]MatrixDevice, error) {
	rows, err := s.query(ctx, nil, `SELECT `+prefixed("d.", deviceColumns)+` FROM matrix_devices d WHERE `+cond, args...)
	if err != nil {
		return nil, fmt.Errorf("list matrix devices: %w", err)
	}
	defer rows.Close()
	out := []MatrixDevice{}
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// prefixed qualifies every column of a comma-separated list.
func prefixed(alias, columns string) string {
	return alias + strings.ReplaceAll(columns, ", ", ", "+alias)
}

// CountMatrixDevices counts a user's devices, live or dead.
func (s *Store) CountMatrixDevices(ctx context.Context, userID string) (int, error) {
	var n int
	if err := s.queryRow(ctx, nil, `SELECT COUNT(*) FROM matrix_devices WHERE user_id = $1`, userID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count matrix devices: %w", err)
	}
	return n, nil
}

// DeleteMatrixDevice forgets a device once Synapse no longer has it.
func (s *Store) DeleteMatrixDevice(ctx context.Context, familyID string) error {
	_, err := s.exec(ctx, nil, `DELETE FROM matrix_devices WHERE family_id = $1`, familyID)
	if err != nil {
		return fmt.Errorf("delete matrix device: %w", err)
	}
	return nil
}

// SeeMatrixDevice records that a device's token was used at at, at most
// once per interval (Synapse introspects on every request it does not
// answer from its cache; one write a minute tells "last seen" well enough).
func (s *Store) SeeMatrixDevice(ctx context.Context, familyID string, at time.Time, interval time.Duration) error {
	_, err := s.exec(ctx, nil, `UPDATE matrix_devices SET last_seen_at = $2 WHERE family_id = $1 AND last_seen_at <= $3`,
		familyID, unix(at), unix(at.Add(-interval)))
	if err != nil {
		return fmt.Errorf("record matrix device use: %w", err)
	}
	return nil
}

// ClaimLocalpart binds a Matrix localpart to the account userID, unless
// it is bound already, and returns the account it is bound to.
func (s *Store) ClaimLocalpart(ctx context.Context, localpart, userID string) (string, error) {
	if _, err := s.exec(ctx, nil, `INSERT INTO matrix_localparts (localpart, user_id, created_at) VALUES ($1, $2, $3)
		ON CONFLICT (localpart) DO NOTHING`, localpart, userID, unix(s.now())); err != nil {
		return "", fmt.Errorf("claim matrix localpart: %w", err)
	}
	var owner string
	if err := s.queryRow(ctx, nil, `SELECT user_id FROM matrix_localparts WHERE localpart = $1`, localpart).Scan(&owner); err != nil {
		return "", fmt.Errorf("claim matrix localpart: %w", err)
	}
	return owner, nil
}

// ReleaseLocalpart unbinds a localpart, so that the next account to log
// in with it gets the Matrix user (the operator's decision).
func (s *Store) ReleaseLocalpart(ctx context.Context, localpart string) error {
	return s.deleteWhere(ctx, "matrix_localparts", "localpart", localpart)
}
