package provider

import (
	"context"
	"errors"
	"fmt"

	"github.com/mxidp/mxidp/storage"
)

// Per-account settings and the operator's own way to a Matrix session.
// mxidp keeps a setting in its own database by user ID, so that it holds
// for platform users too, whose table mxidp only reads.

// PasswordLoginAllowed reports whether the Matrix login API (POST /login,
// m.login.password) may let u in with the password that was just
// checked. An operator refuses it for accounts that must sign in through
// the browser (m.login.sso) instead of handing their password to a Matrix
// client. A refusal is recorded in the audit log after the check's login.succeeded.
// The login page, the account page and the REST door do not ask.
func (o *OpenID) PasswordLoginAllowed(ctx context.Context, u storage.User, network string) (bool, error) {
	allowed, err := o.Store.PasswordLoginAllowed(ctx, u.ID)
	if err != nil || allowed {
		return allowed, err
	}
	if err := o.Store.AddAuditEvent(ctx, storage.AuditEvent{Event: "login.refused", UserID: u.ID, Username: u.Username,
		ClientID: CompatClientID, Network: network, Detail: "matrix login: password logins are refused for this account"}); err != nil {
		o.Logger.Warn("recording an audit event failed", "event", "login.refused", "err", err)
	}
	return false, nil
}

// AccountSettings changes the per-account settings of mxidp's own users
// or the platform's: the operations behind `mxidp user password-login`.
type AccountSettings struct {
	Store *storage.Store
	// Users is where accounts come from; nil means Store.
	Users storage.Users
}

// User finds the account of a username, as the operator types it.
func (a *AccountSettings) User(ctx context.Context, username string) (storage.User, error) {
	return findAccount(ctx, a.Users, a.Store, username)
}

// SetPasswordLogin allows or refuses the account's password at the
// Matrix login API, and records the change in the audit log.
func (a *AccountSettings) SetPasswordLogin(ctx context.Context, username string, allowed bool) (storage.User, error) {
	u, err := a.User(ctx, username)
	if err != nil {
		return storage.User{}, err
	}
	if err := a.Store.SetPasswordLogin(ctx, u.ID, allowed); err != nil {
		return storage.User{}, err
	}
	event := "user.password_login_refused"
	if allowed {
		event = "user.password_login_allowed"
	}
	if err := a.Store.AddAuditEvent(ctx, storage.AuditEvent{Event: event, UserID: u.ID, Username: u.Username}); err != nil {
		return u, fmt.Errorf("the change was made, but not recorded in the audit log: %w", err)
	}
	return u, nil
}

// IssueServiceToken logs the account username in as a Matrix device
// without its password, for the operator: a service account of an
// integration that has no password, or must not hold one, gets a
// compatibility session as if it had logged in (StartCompatSession:
// the user and the device made in Synapse, deviceID taken over when the
// account has it). The token is the operator's to hand over; mxidp keeps
// its ID only, and the refresh token's hash. The password-login setting
// does not apply: it bounds what a password can do, and none is used. A
// disabled account gets nothing.
func (o *OpenID) IssueServiceToken(ctx context.Context, username, deviceID, displayName string, refresh bool) (CompatSession, error) {
	u, err := findAccount(ctx, o.Users, o.Store, username)
	if err != nil {
		return CompatSession{}, err
	}
	if u.Disabled {
		return CompatSession{}, fmt.Errorf("user %q is disabled (mxidp user enable, or on the platform): %w", u.Username, ErrAccountDisabled)
	}
	if deviceID != "" && !ValidDeviceID(deviceID) {
		return CompatSession{}, fmt.Errorf("invalid device ID %q: use 1 to 255 of A-Z a-z 0-9 - . _ ~", deviceID)
	}
	s, err := o.StartCompatSession(ctx, u, deviceID, displayName, refresh)
	if err != nil {
		return CompatSession{}, err
	}
	detail := "issued by the operator for device " + s.DeviceID
	if refresh {
		detail += ", with a refresh token"
	}
	if err := o.Store.AddAuditEvent(ctx, storage.AuditEvent{Event: "matrix.token_issued", UserID: u.ID, Username: u.Username,
		ClientID: CompatClientID, Detail: detail}); err != nil {
		// The session exists: withholding its token would leave a device
		// nobody can use or log out.
		o.Logger.Warn("recording an audit event failed", "event", "matrix.token_issued", "err", err)
	}
	return s, nil
}

// findAccount looks an account up by username in users (Store when nil),
// with ASCII letters folded as usernames are stored (CanonicalLocalpart),
// and an error naming it when there is none.
func findAccount(ctx context.Context, users storage.Users, store *storage.Store, username string) (storage.User, error) {
	if users == nil {
		users = store
	}
	lp, err := CanonicalLocalpart(username, "")
	if err != nil {
		return storage.User{}, fmt.Errorf("no user %q: %w", username, storage.ErrNotFound)
	}
	u, err := users.UserByUsername(ctx, lp)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.User{}, fmt.Errorf("no user %q: %w", username, err)
	}
	return u, err
}

// SealedAccessToken is the bearer token of s, sealed as mxidp seals every
// access token (the token's ID and subject, encrypted with the OpenID
// provider's key: the provider's Crypto), which introspection opens.
func (s CompatSession) SealedAccessToken(c interface{ Encrypt(string) (string, error) }) (string, error) {
	return c.Encrypt(s.AccessID + ":" + s.User.ID)
}
