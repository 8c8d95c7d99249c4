package provider

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/mxidp/mxidp/provider/synapse"
	"github.com/mxidp/mxidp/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// The Matrix scopes of the Matrix spec's OAuth 2.0 API (client-server
// API, "OAuth 2.0 API", scope "urn:matrix:client:api:*" and
// "urn:matrix:client:device:<device ID>"), with the unstable forms of
// MSC2967 that older clients and Synapse still read.
const (
	ScopeMatrixAPI             = "urn:matrix:client:api:*"
	ScopeMatrixAPIUnstable     = "urn:matrix:org.matrix.msc2967.client:api:*"
	ScopeMatrixDevice          = "urn:matrix:client:device:"
	ScopeMatrixDeviceUnstable  = "urn:matrix:org.matrix.msc2967.client:device:"
	scopeSynapseAdmin          = "urn:synapse:admin:*"
	maxDeviceIDLength          = 255 // Synapse refuses longer device IDs
	maxDeviceNameLength        = 100 // characters; Synapse refuses longer device names
	generatedDeviceIDLength    = 10  // as Synapse generates them
	deviceReservationGrace     = time.Minute
	deviceSeenInterval         = time.Minute
	generatedDeviceIDAlphabet  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	deviceCleanupBatch         = 100
	defaultDeviceCleanupPeriod = 2 * time.Second
)

// Matrix is next-gen auth: mxidp as the authentication service that
// Synapse delegates every access token to (Synapse's
// matrix_authentication_service section). Tokens carrying the Matrix API
// scope act as one Matrix device each, which mxidp creates in Synapse
// before the token is handed out and deletes when the login ends.
type Matrix struct {
	Synapse *synapse.Client
	// Cleanup, when set, is woken after logins end, so that their devices
	// are deleted in Synapse at once instead of at its next round.
	Cleanup *DeviceCleanup
}

// matrixScopes is what a list of scopes says in Matrix terms.
type matrixScopes struct {
	api     bool
	devices []string // distinct device IDs asked for
}

func parseMatrixScopes(scopes []string) matrixScopes {
	var m matrixScopes
	for _, s := range scopes {
		switch {
		case s == ScopeMatrixAPI || s == ScopeMatrixAPIUnstable:
			m.api = true
		case strings.HasPrefix(s, ScopeMatrixDevice):
			m.addDevice(strings.TrimPrefix(s, ScopeMatrixDevice))
		case strings.HasPrefix(s, ScopeMatrixDeviceUnstable):
			m.addDevice(strings.TrimPrefix(s, ScopeMatrixDeviceUnstable))
		}
	}
	return m
}

func (m *matrixScopes) addDevice(id string) {
	if !slices.Contains(m.devices, id) {
		m.devices = append(m.devices, id)
	}
}

// IsMatrixScope reports whether a scope is one of the Matrix scopes that
// next-gen auth grants. The Synapse admin scope is not among them: no
// client is given server-admin rights through mxidp.
func IsMatrixScope(s string) bool {
	return s == ScopeMatrixAPI || s == ScopeMatrixAPIUnstable ||
		strings.HasPrefix(s, ScopeMatrixDevice) || strings.HasPrefix(s, ScopeMatrixDeviceUnstable)
}

// ValidDeviceID admits what the Matrix spec lets clients put in a device
// scope (unreserved URI characters, RFC 3986 §2.3), up to Synapse's
// limit.
func ValidDeviceID(id string) bool {
	if id == "" || len(id) > maxDeviceIDLength {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-._~", c)) {
			return false
		}
	}
	return true
}

func generateDeviceID() string {
	b := make([]byte, generatedDeviceIDLength)
	rand.Read(b)
	for i := range b {
		b[i] = generatedDeviceIDAlphabet[int(b[i])%len(generatedDeviceIDAlphabet)]
	}
	return string(b)
}

// matrixRequestScopes checks the Matrix scopes of an authorization request
// and completes them: at most one device, with a valid ID; a request for
// the API without a device gets a generated one, as the client must act as
// some device; and offline_access, for the refresh token. Requests without
// the API scope are left alone.
func (o *OpenID) matrixRequestScopes(scopes []string) ([]string, error) {
	m := parseMatrixScopes(scopes)
	if o.Matrix == nil || (!m.api && len(m.devices) == 0) {
		return scopes, nil
	}
	if !m.api {
		return nil, oidc.ErrInvalidScope().WithDescription("a Matrix device scope needs the scope " + ScopeMatrixAPI)
	}
	// A Matrix client keeps its device logged in by refreshing, without
	// asking for offline_access (the Matrix OAuth API issues refresh
	// tokens to every login); the library issues one only for that scope.
	if !slices.Contains(scopes, oidc.ScopeOfflineAccess) {
		scopes = append(slices.Clone(scopes), oidc.ScopeOfflineAccess)
	}
	switch len(m.devices) {
	case 0:
		scopes = append(scopes, ScopeMatrixDevice+generateDeviceID())
	case 1:
		if !ValidDeviceID(m.devices[0]) {
			return nil, oidc.ErrInvalidScope().WithDescription("the device ID must be 1 to 255 of A-Z a-z 0-9 - . _ ~")
		}
	default:
		return nil, oidc.ErrInvalidScope().WithDescription("ask for one Matrix device only")
	}
	return scopes, nil
}

// grantedMatrixScope is the scope Synapse is told a token has: the API
// and the device, each in its stable and its unstable form, since Synapse
// and clients of different ages read either; other scopes as granted.
func grantedMatrixScope(scopes []string, deviceID string) []string {
	out := []string{}
	for _, s := range scopes {
		if !IsMatrixScope(s) && s != scopeSynapseAdmin {
			out = append(out, s)
		}
	}
	return append(out, ScopeMatrixAPI, ScopeMatrixAPIUnstable, ScopeMatrixDevice+deviceID, ScopeMatrixDeviceUnstable+deviceID)
}

// errDeviceInUse refuses a login for a device ID that another live login
// of the user holds: whoever could take it over would receive what is
// sent to that device.
var errDeviceInUse = oidc.ErrInvalidGrant().WithDescription(
	"this Matrix device ID is in use by another login of the user; log in with a new device ID")

// errSynapseUnavailable is the token endpoint's answer when Synapse could
// not create the user or the device: the code stays unused, so the client
// may try again.
var errSynapseUnavailable = oidc.ErrServerError().WithDescription(
	"the Matrix homeserver could not be reached to set up the device; try again")

// prepareDevice makes sure Synapse has the user and the device before a
// token for it is issued (Synapse refuses tokens whose user or device it
// does not know): it reserves the device in mxidp's database, provisions
// the user (created with the platform's display name; verified e-mail
// addresses and the unlocked state synced every time), and creates the
// device. It returns whether the grant carries a Matrix device at all.
func (o *OpenID) prepareDevice(ctx context.Context, r *authRequest) (bool, error) {
	m := parseMatrixScopes(r.Scopes)
	if o.Matrix == nil || !m.api || len(m.devices) != 1 {
		return false, nil
	}
	u, err := o.activeUser(ctx, r.UserID)
	if err != nil {
		return false, oidc.ErrInvalidGrant().WithDescription("the user may no longer log in").WithParent(err)
	}
	if err := o.claimLocalpart(ctx, u); err != nil {
		if errors.Is(err, ErrLocalpartTaken) {
			return false, oidc.ErrAccessDenied().WithDescription("%s", err.Error())
		}
		return false, err
	}
	client, _ := o.client(ctx, r.ClientID)
	name := deviceName(client)
	d := storage.MatrixDevice{FamilyID: r.ID, UserID: u.ID, Localpart: u.Username, DeviceID: m.devices[0],
		ClientID: r.ClientID, SessionID: r.SessionID, DisplayName: name}
	if err := o.Store.ReserveMatrixDevice(ctx, d); errors.Is(err, storage.ErrAlreadyExists) {
		if held, err := o.Store.MatrixDeviceByFamily(ctx, r.ID); err == nil && held.DeviceID == d.DeviceID {
			// The code is being used again: issue's consumption of it
			// conflicts and treats it as the replay it is.
			return true, nil
		}
		return false, errDeviceInUse
	} else if err != nil {
		return false, err
	}
	if err := o.provision(ctx, u); err != nil {
		o.Logger.Error("provisioning the user in Synapse failed", "user_id", u.ID, "err", err)
		o.dropReservation(ctx, r.ID)
		return false, errSynapseUnavailable.WithParent(err)
	}
	o.clearDevicesFromBefore(ctx, u, d.DeviceID)
	if err := o.Matrix.Synapse.UpsertDevice(ctx, u.Username, d.DeviceID, name); err != nil {
		o.Logger.Error("creating the device in Synapse failed", "user_id", u.ID, "device_id", d.DeviceID, "err", err)
		o.dropReservation(ctx, r.ID)
		return false, errSynapseUnavailable.WithParent(err)
	}
	return true, nil
}

// clearDevicesFromBefore runs at the user's first device here: any device
// Synapse has for them is from before next-gen auth (logins through
// oidc_providers or a password provider), whose tokens Synapse no longer
// accepts. They go, so that the user's device list holds only what can
// be used.
func (o *OpenID) clearDevicesFromBefore(ctx context.Context, u storage.User, deviceID string) {
	if n, err := o.Store.CountMatrixDevices(ctx, u.ID); err != nil || n != 1 {
		return
	}
	if err := o.Matrix.Synapse.SyncDevices(ctx, u.Username, []string{deviceID}); err != nil {
		o.Logger.Warn("removing the user's devices from before next-gen auth failed", "user_id", u.ID, "err", err)
	}
}

// deviceName is what a client's devices are called in Synapse: its name,
// else its ID, cut to the characters Synapse takes (Synapse
// synapse/handlers/device.py, MAX_DEVICE_DISPLAY_NAME_LEN), since a
// client that registered itself may have a longer name and Synapse
// refuses the whole device for it.
func deviceName(c storage.Client) string {
	name := c.Name
	if name == "" {
		name = c.ID
	}
	if utf8.RuneCountInString(name) > maxDeviceNameLength {
		name = string([]rune(name)[:maxDeviceNameLength])
	}
	return name
}

// ErrLocalpartTaken refuses a Matrix login of an account whose username
// an earlier account had in Matrix.
var ErrLocalpartTaken = errors.New("this account's Matrix ID belongs to an earlier account with the same username; " +
	"the operator can release it with mxidp user release-matrix-id")

// claimLocalpart binds the user's Matrix localpart to the account at its
// first Matrix login, and refuses any later account with that username:
// Synapse knows users by localpart alone in next-gen auth, so a platform
// that gave a departed user's name to someone new would otherwise hand
// them the departed user's rooms and messages.
func (o *OpenID) claimLocalpart(ctx context.Context, u storage.User) error {
	owner, err := o.Store.ClaimLocalpart(ctx, u.Username, u.ID)
	if err != nil {
		return err
	}
	if owner != u.ID {
		o.Logger.Warn("Matrix login refused: the localpart belongs to an earlier account", "user_id", u.ID, "owner", owner)
		if err := o.Store.AddAuditEvent(ctx, storage.AuditEvent{Event: "matrix.localpart_taken", UserID: u.ID,
			Username: u.Username, Detail: "bound to user " + owner}); err != nil {
			o.Logger.Warn("recording an audit event failed", "event", "matrix.localpart_taken", "err", err)
		}
		return ErrLocalpartTaken
	}
	return nil
}

func (o *OpenID) dropReservation(ctx context.Context, familyID string) {
	if err := o.Store.DeleteMatrixDevice(ctx, familyID); err != nil {
		o.Logger.Warn("dropping a device reservation failed; the cleanup removes it", "err", err)
	}
}

// provision creates or updates the user in Synapse. The display name is
// set when Synapse creates the user only, so that a name the user chose
// in their Matrix client later stays; e-mail addresses (verified ones,
// as Synapse binds them without asking) and the lock follow the platform
// on every login.
func (o *OpenID) provision(ctx context.Context, u storage.User) error {
	unlocked := false
	p := synapse.Provision{Localpart: u.Username, Locked: &unlocked, Emails: []string{}}
	if u.Email != "" && u.EmailVerified {
		p.Emails = []string{u.Email}
	}
	_, err := o.Matrix.Synapse.QueryUser(ctx, u.Username)
	if synapse.IsNotFound(err) {
		name := u.DisplayName
		if name == "" {
			name = u.Username
		}
		p.DisplayName = &name
		if u.AvatarURL != "" {
			p.AvatarURL = &u.AvatarURL
		}
	} else if err != nil {
		return err
	}
	return o.Matrix.Synapse.ProvisionUser(ctx, p)
}

// SynapseIntrospection is the answer Synapse reads from its introspection
// call (Synapse synapse/api/auth/mas.py, IntrospectionResponse): strict
// JSON types, the localpart as username, the device as device_id.
type SynapseIntrospection struct {
	Active    bool   `json:"active"`
	Scope     string `json:"scope,omitempty"`
	Username  string `json:"username,omitempty"`
	DeviceID  string `json:"device_id,omitempty"`
	Subject   string `json:"sub,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	TokenType string `json:"token_type,omitempty"`
	ExpiresIn int64  `json:"expires_in,omitempty"`
	Expiry    int64  `json:"exp,omitempty"`
	IssuedAt  int64  `json:"iat,omitempty"`
}

// IntrospectForSynapse answers Synapse's question about an access token
// (its sealed ID and subject): active only while the token is live, its
// user may log in, it carries the Matrix API scope and its device exists.
// Anything else is inactive, and nothing more is said.
func (o *OpenID) IntrospectForSynapse(ctx context.Context, tokenID, subject string) (SynapseIntrospection, error) {
	t, err := o.liveAccessToken(ctx, tokenID, subject)
	if errors.Is(err, ErrInvalidToken) {
		return SynapseIntrospection{}, nil
	}
	if err != nil {
		return SynapseIntrospection{}, err
	}
	if !parseMatrixScopes(t.Scopes).api {
		return SynapseIntrospection{}, nil
	}
	d, err := o.Store.MatrixDeviceByFamily(ctx, t.FamilyID)
	if errors.Is(err, storage.ErrNotFound) {
		return SynapseIntrospection{}, nil
	}
	if err != nil {
		return SynapseIntrospection{}, err
	}
	u, err := o.users().UserByID(ctx, t.UserID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && u.Disabled) {
		return SynapseIntrospection{}, nil
	}
	if err != nil {
		return SynapseIntrospection{}, err
	}
	now := o.now()
	if err := o.Store.SeeMatrixDevice(ctx, d.FamilyID, now, deviceSeenInterval); err != nil {
		o.Logger.Warn("recording a device's use failed", "err", err)
	}
	answer := SynapseIntrospection{
		Active: true, Scope: strings.Join(grantedMatrixScope(t.Scopes, d.DeviceID), " "), Username: d.Localpart,
		DeviceID: d.DeviceID, Subject: t.UserID, ClientID: t.ClientID, TokenType: "access_token", IssuedAt: t.CreatedAt.Unix(),
	}
	// A compatibility token issued without a refresh token lasts until
	// logout: no expires_in, which Synapse reads as "never expires".
	if !t.ExpiresAt.Equal(neverExpires) {
		answer.ExpiresIn = int64(t.ExpiresAt.Sub(now) / time.Second)
		if answer.ExpiresIn < 1 {
			answer.ExpiresIn = 1 // 0 would read as expired; the token is live for under a second more
		}
		answer.Expiry = t.ExpiresAt.Unix()
	}
	return answer, nil
}

// UserDevices returns the user's live Matrix devices, most recently used
// first.
func (o *OpenID) UserDevices(ctx context.Context, userID string) ([]storage.MatrixDevice, error) {
	return o.Store.MatrixDevices(ctx, userID)
}

// EndDevice ends the login of one of the user's live Matrix devices: its
// tokens are revoked, and the cleanup deletes the device in Synapse. An
// unknown device, one that ended already, or another user's, is
// ErrNotFound.
func (o *OpenID) EndDevice(ctx context.Context, userID, deviceID string) error {
	live, err := o.Store.MatrixDevices(ctx, userID)
	if err != nil {
		return err
	}
	for _, d := range live {
		if d.DeviceID == deviceID {
			return o.endDevices(ctx, userID, []storage.MatrixDevice{d})
		}
	}
	return storage.ErrNotFound
}

// EndAllDevices ends the logins of every Matrix device of the user.
func (o *OpenID) EndAllDevices(ctx context.Context, userID string) error {
	devices, err := o.Store.MatrixDevices(ctx, userID)
	if err != nil {
		return err
	}
	return o.endDevices(ctx, userID, devices)
}

func (o *OpenID) endDevices(ctx context.Context, userID string, devices []storage.MatrixDevice) error {
	for _, d := range devices {
		if err := o.Store.RevokeFamily(ctx, d.FamilyID); err != nil {
			return err
		}
		if err := o.Store.AddAuditEvent(ctx, storage.AuditEvent{Event: "device.end", UserID: userID,
			Detail: "device " + d.DeviceID}); err != nil {
			o.Logger.Warn("recording an audit event failed", "event", "device.end", "err", err)
		}
	}
	o.devicesEnded()
	return nil
}

// devicesEnded wakes the cleanup after tokens were revoked.
func (o *OpenID) devicesEnded() {
	if o.Matrix != nil && o.Matrix.Cleanup != nil {
		o.Matrix.Cleanup.Wake()
	}
}

// AllowCrossSigningReset lets the user replace their cross-signing keys
// in Synapse for a short while, after they confirmed it at mxidp.
func (o *OpenID) AllowCrossSigningReset(ctx context.Context, u storage.User) error {
	if o.Matrix == nil {
		return errors.New("next-gen auth is off")
	}
	if err := o.Matrix.Synapse.AllowCrossSigningReset(ctx, u.Username); err != nil {
		return err
	}
	if err := o.Store.AddAuditEvent(ctx, storage.AuditEvent{Event: "matrix.cross_signing_reset", UserID: u.ID,
		Username: u.Username}); err != nil {
		o.Logger.Warn("recording an audit event failed", "event", "matrix.cross_signing_reset", "err", err)
	}
	return nil
}

// DeviceCleanup deletes in Synapse the devices whose logins ended: revoked
// (logout, revocation, the account page, a disabled user), or expired. It
// runs on every instance; what it does is safe to repeat. A user the
// account source no longer lets in is also locked in Synapse, and every
// device of theirs there goes (sync_devices to none), including devices
// mxidp did not create.
type DeviceCleanup struct {
	Store   *storage.Store
	Users   storage.Users
	Synapse *synapse.Client
	Logger  *slog.Logger
	Now     func() time.Time

	once sync.Once
	wake chan struct{}
}

func (c *DeviceCleanup) init() { c.once.Do(func() { c.wake = make(chan struct{}, 1) }) }

// Wake asks for a round now.
func (c *DeviceCleanup) Wake() {
	c.init()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Run cleans up every interval, and when woken, until ctx ends.
func (c *DeviceCleanup) Run(ctx context.Context, interval time.Duration) {
	c.init()
	if interval <= 0 {
		interval = defaultDeviceCleanupPeriod
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := c.Round(ctx); err != nil && ctx.Err() == nil {
			c.Logger.Warn("deleting ended Matrix devices in Synapse failed; trying again", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.wake:
		}
	}
}

func (c *DeviceCleanup) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Round deletes the dead devices it finds, up to a batch, and returns how
// many went. A device Synapse refuses to delete (it answered, with an
// error) is left for a later round, and the round goes on with the
// others: one device Synapse keeps refusing must not keep every later one
// alive in Synapse. When Synapse cannot be reached, the round stops.
func (c *DeviceCleanup) Round(ctx context.Context) (int, error) {
	dead, err := c.Store.DeadMatrixDevices(ctx, c.now().Add(-deviceReservationGrace), deviceCleanupBatch)
	if err != nil {
		return 0, err
	}
	done := 0
	var refused error             // the first device Synapse refused this round
	departed := map[string]bool{} // user ID → locked and synced this round
	for _, d := range dead {
		gone, err := c.departed(ctx, d.UserID)
		if err != nil {
			return done, err
		}
		if gone && !departed[d.UserID] {
			var all bool
			all, err = c.lockOut(ctx, d)
			departed[d.UserID] = err == nil && all
		} else if !gone {
			if err = c.Synapse.DeleteDevice(ctx, d.Localpart, d.DeviceID); err != nil {
				err = fmt.Errorf("delete device %s: %w", d.DeviceID, err)
			}
		}
		var answered *synapse.Error
		if errors.As(err, &answered) {
			if refused == nil {
				refused = err
			}
			continue
		}
		if err != nil {
			return done, err
		}
		if err := c.Store.DeleteMatrixDevice(ctx, d.FamilyID); err != nil {
			return done, err
		}
		c.Logger.Info("Matrix device deleted in Synapse", "user_id", d.UserID, "device_id", d.DeviceID)
		done++
	}
	return done, refused
}

// departed reports whether the account source no longer lets the user in.
func (c *DeviceCleanup) departed(ctx context.Context, userID string) (bool, error) {
	u, err := c.Users.UserByID(ctx, userID)
	if errors.Is(err, storage.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err // the source is unreachable: decide nothing
	}
	return u.Disabled, nil
}

// lockOut locks a departed user in Synapse and removes all their devices
// there, and reports that it did. Their live logins were all revoked when
// they were disabled, so none of the devices is still in use. A Matrix ID
// that another account holds now (the platform gave the username to
// someone else) is that account's: it is not locked, and only the
// departed user's device d goes.
func (c *DeviceCleanup) lockOut(ctx context.Context, d storage.MatrixDevice) (bool, error) {
	holder, err := c.Users.UserByUsername(ctx, d.Localpart)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return false, err // the source is unreachable: decide nothing
	}
	if err == nil && holder.ID != d.UserID && !holder.Disabled {
		if err := c.Synapse.DeleteDevice(ctx, d.Localpart, d.DeviceID); err != nil {
			return false, fmt.Errorf("delete device %s: %w", d.DeviceID, err)
		}
		return false, nil
	}
	locked := true
	if err := c.Synapse.ProvisionUser(ctx, synapse.Provision{Localpart: d.Localpart, Locked: &locked}); err != nil {
		return false, fmt.Errorf("lock user: %w", err)
	}
	if err := c.Synapse.SyncDevices(ctx, d.Localpart, nil); err != nil {
		return false, fmt.Errorf("remove the devices of a departed user: %w", err)
	}
	c.Logger.Info("user locked in Synapse and every device removed", "user_id", d.UserID)
	return true, nil
}
