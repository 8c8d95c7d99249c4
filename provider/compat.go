package provider

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/mxidp/mxidp/storage"
)

// The compatibility layer of next-gen auth: Synapse no longer answers
// Matrix's own /login, /logout and /refresh (Matrix client-server API,
// "Login", "Refresh", "Logout"), so mxidp does, for bots and clients that
// do not speak OAuth. Its sessions are Matrix devices like the OAuth ones:
// a token family with a device row, introspected the same way.

// CompatClientID is the client of the compatibility sessions' tokens. It
// has a colon, which no registered client ID may have, so no client can
// authenticate as it at the OAuth endpoints.
const CompatClientID = "matrix:login"

// CompatIdPID names mxidp as the one identity provider of m.login.sso
// (/login/sso/redirect/{idpId}).
const CompatIdPID = "mxidp"

// neverExpires is the expiry of a compatibility access token issued
// without a refresh token: Matrix clients that did not ask to refresh
// expect one that lasts until logout (Synapse: "compatibility tokens
// don't expire"), so introspection gives it no expires_in.
var neverExpires = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// CompatLoginTokenLifetime is how long a login token of m.login.sso may
// wait for its exchange (m.login.token).
const CompatLoginTokenLifetime = 2 * time.Minute

// ErrNoSuchToken answers /logout and /refresh for a token that is unknown,
// revoked, expired, or not a Matrix session's.
var ErrNoSuchToken = errors.New("unknown or expired token")

// CompatSession is what a compatibility login hands the client.
type CompatSession struct {
	User         storage.User
	DeviceID     string
	AccessID     string // sealed by the web layer into the access token
	RefreshToken string // "" unless asked for
	ExpiresAt    time.Time
	Expiring     bool // false: the access token lasts until logout
}

// StartCompatSession logs user u in as a Matrix device for the
// compatibility layer: deviceID (generated when empty) is created in
// Synapse, or, when the user has it already, taken over, its previous
// tokens revoked (Matrix client-server API, POST /login: "any previous
// access token associated with the device will be invalidated"). With
// refresh the access token expires and a refresh token comes with it.
func (o *OpenID) StartCompatSession(ctx context.Context, u storage.User, deviceID, displayName string, refresh bool) (CompatSession, error) {
	if o.Matrix == nil {
		return CompatSession{}, errors.New("next-gen auth is off")
	}
	if deviceID == "" {
		deviceID = generateDeviceID()
	}
	if !ValidDeviceID(deviceID) {
		return CompatSession{}, fmt.Errorf("invalid device ID")
	}
	if err := o.claimLocalpart(ctx, u); err != nil {
		return CompatSession{}, err
	}
	family := newID()
	d := storage.MatrixDevice{FamilyID: family, UserID: u.ID, Localpart: u.Username, DeviceID: deviceID,
		ClientID: CompatClientID, DisplayName: displayName}
	taken, err := o.Store.TakeOverMatrixDevice(ctx, d)
	if err != nil {
		return CompatSession{}, err
	}
	if err := o.provision(ctx, u); err != nil {
		o.Logger.Error("provisioning the user in Synapse failed", "user_id", u.ID, "err", err)
		o.dropReservation(ctx, family)
		return CompatSession{}, errSynapseUnavailable.WithParent(err)
	}
	if !taken {
		o.clearDevicesFromBefore(ctx, u, deviceID)
	}
	if err := o.Matrix.Synapse.UpsertDevice(ctx, u.Username, deviceID, displayName); err != nil {
		o.Logger.Error("creating the device in Synapse failed", "user_id", u.ID, "device_id", deviceID, "err", err)
		if !taken {
			o.dropReservation(ctx, family)
		}
		return CompatSession{}, errSynapseUnavailable.WithParent(err)
	}
	s, err := o.issueCompat(ctx, u, family, deviceID, refresh, "")
	if err != nil {
		return CompatSession{}, err
	}
	o.devicesEnded() // a taken-over device's old tokens went
	return s, nil
}

// issueCompat stores the tokens of a compatibility session, rotating
// currentRefresh when set.
func (o *OpenID) issueCompat(ctx context.Context, u storage.User, family, deviceID string, refresh bool, currentRefresh string) (CompatSession, error) {
	now := o.now()
	scopes := []string{ScopeMatrixAPI, ScopeMatrixDevice + deviceID}
	access := storage.Token{ID: newID(), Kind: storage.AccessToken, FamilyID: family, ClientID: CompatClientID,
		UserID: u.ID, Scopes: scopes, AuthTime: now, AMR: []string{"pwd"}, CreatedAt: now, ExpiresAt: neverExpires}
	s := CompatSession{User: u, DeviceID: deviceID, AccessID: access.ID}
	is := storage.Issue{}
	if refresh {
		access.ExpiresAt = now.Add(o.Lifetimes.AccessToken)
		s.RefreshToken = newSecret()
		is.Tokens = append(is.Tokens, storage.Token{ID: newID(), Kind: storage.RefreshToken, Hash: hashSecret(s.RefreshToken),
			FamilyID: family, ClientID: CompatClientID, UserID: u.ID, Scopes: scopes, AuthTime: now, AMR: access.AMR,
			CreatedAt: now, ExpiresAt: now.Add(o.Lifetimes.RefreshToken)})
		s.Expiring = true
	}
	s.ExpiresAt = access.ExpiresAt
	is.Tokens = append(is.Tokens, access)
	if currentRefresh != "" {
		is.RotateRefreshHash = hashSecret(currentRefresh)
	}
	err := o.Store.IssueTokens(ctx, is)
	if errors.Is(err, storage.ErrConflict) {
		o.revokeReplay(ctx, family, "compatibility refresh token used twice")
		o.devicesEnded()
		return CompatSession{}, ErrNoSuchToken
	}
	if err != nil {
		return CompatSession{}, err
	}
	return s, nil
}

// RefreshCompat rotates a compatibility session's refresh token (Matrix
// client-server API, POST /refresh). A refresh token used a second time
// ends the session, as at the token endpoint: the thief's copy and the
// client's cannot be told apart.
func (o *OpenID) RefreshCompat(ctx context.Context, refreshToken string) (CompatSession, error) {
	t, err := o.Store.TokenByHash(ctx, hashSecret(refreshToken))
	if errors.Is(err, storage.ErrNotFound) || (err == nil && (t.Kind != storage.RefreshToken || t.ClientID != CompatClientID)) {
		return CompatSession{}, ErrNoSuchToken
	}
	if err != nil {
		return CompatSession{}, err
	}
	if t.Revoked || !o.now().Before(t.ExpiresAt) {
		return CompatSession{}, ErrNoSuchToken
	}
	if t.Rotated {
		o.revokeReplay(ctx, t.FamilyID, "compatibility refresh token used twice")
		o.devicesEnded()
		return CompatSession{}, ErrNoSuchToken
	}
	u, err := o.activeUser(ctx, t.UserID)
	if err != nil {
		return CompatSession{}, ErrNoSuchToken
	}
	d, err := o.Store.MatrixDeviceByFamily(ctx, t.FamilyID)
	if err != nil {
		return CompatSession{}, ErrNoSuchToken
	}
	return o.issueCompat(ctx, u, t.FamilyID, d.DeviceID, true, refreshToken)
}

// MatrixTokenOwner returns the live access token (by its sealed ID and
// subject) of a Matrix session, OAuth or compatibility, with its device.
func (o *OpenID) MatrixTokenOwner(ctx context.Context, tokenID, subject string) (storage.Token, storage.MatrixDevice, error) {
	t, err := o.liveAccessToken(ctx, tokenID, subject)
	if err != nil {
		return storage.Token{}, storage.MatrixDevice{}, ErrNoSuchToken
	}
	d, err := o.Store.MatrixDeviceByFamily(ctx, t.FamilyID)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Token{}, storage.MatrixDevice{}, ErrNoSuchToken
	}
	if err != nil {
		return storage.Token{}, storage.MatrixDevice{}, err
	}
	return t, d, nil
}

// LogoutToken ends the Matrix session of a live access token (POST
// /logout): its device is deleted in Synapse.
func (o *OpenID) LogoutToken(ctx context.Context, tokenID, subject string) error {
	t, d, err := o.MatrixTokenOwner(ctx, tokenID, subject)
	if err != nil {
		return err
	}
	return o.endDevices(ctx, t.UserID, []storage.MatrixDevice{d})
}

// LogoutAll ends every Matrix session of the owner of a live access token
// (POST /logout/all).
func (o *OpenID) LogoutAll(ctx context.Context, tokenID, subject string) error {
	t, _, err := o.MatrixTokenOwner(ctx, tokenID, subject)
	if err != nil {
		return err
	}
	return o.EndAllDevices(ctx, t.UserID)
}

// IssueLoginToken makes a one-time login token of m.login.sso for user u,
// to be handed to the Matrix client at redirectURL.
func (o *OpenID) IssueLoginToken(ctx context.Context, u storage.User, redirectURL string) (string, error) {
	token := newSecret()
	if err := o.Store.CreateLoginToken(ctx, hashSecret(token), u.ID, redirectURL, o.now().Add(CompatLoginTokenLifetime)); err != nil {
		return "", err
	}
	host := redirectURL
	if parsed, err := url.Parse(redirectURL); err == nil {
		host = parsed.Scheme + "://" + parsed.Host
	}
	if err := o.Store.AddAuditEvent(ctx, storage.AuditEvent{Event: "matrix.login_token_issued", UserID: u.ID,
		Username: u.Username, Detail: "for " + host}); err != nil {
		o.Logger.Warn("recording an audit event failed", "event", "matrix.login_token_issued", "err", err)
	}
	return token, nil
}

// RedeemLoginToken uses a login token once (m.login.token) and returns its
// user, who must still be let in.
func (o *OpenID) RedeemLoginToken(ctx context.Context, token string) (storage.User, error) {
	id, err := o.Store.ConsumeLoginToken(ctx, hashSecret(token))
	if errors.Is(err, storage.ErrNotFound) {
		return storage.User{}, ErrNoSuchToken
	}
	if err != nil {
		return storage.User{}, err
	}
	u, err := o.activeUser(ctx, id)
	if err != nil {
		return storage.User{}, ErrNoSuchToken
	}
	return u, nil
}
