package provider

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"strings"

	"github.com/mxidp/mxidp/provider/password"
	"github.com/mxidp/mxidp/storage"
)

// MinPasswordLength is the shortest password an operator may set.
const MinPasswordLength = 8

// Accounts manages mxidp's own users and registered clients: the
// operations behind `mxidp user …` and `mxidp client …`.
type Accounts struct {
	Store      *storage.Store
	Hash       password.Params // cost of new password hashes
	ServerName string          // the Matrix server name localparts must fit
}

// NewUser is what an operator gives to create an account.
type NewUser struct {
	Username    string
	Email       string // set by the operator, so counted as verified
	DisplayName string
	MSISDN      string // phone number in any common spelling; set by the operator, so verified
	AvatarURL   string // mxc:// URI
	Password    string
}

// AddUser creates an account with a canonical localpart and a fresh,
// never reused ID.
func (a *Accounts) AddUser(ctx context.Context, nu NewUser) (storage.User, error) {
	lp, err := CanonicalLocalpart(nu.Username, a.ServerName)
	if err != nil {
		return storage.User{}, err
	}
	u := storage.User{ID: newUserID(), Username: lp}
	if err := applyProfile(&u, Profile{Email: &nu.Email, DisplayName: &nu.DisplayName, MSISDN: &nu.MSISDN, AvatarURL: &nu.AvatarURL}); err != nil {
		return storage.User{}, err
	}
	if u.PasswordHash, err = a.hashPassword(nu.Password); err != nil {
		return storage.User{}, err
	}
	created, err := a.Store.CreateUser(ctx, u)
	if errors.Is(err, storage.ErrAlreadyExists) {
		return storage.User{}, taken(u)
	}
	return created, a.audit(ctx, err, storage.AuditEvent{Event: "user.added", UserID: created.ID, Username: created.Username})
}

// audit records an operator's change once it succeeded (err nil) and
// passes err on. A change that happened but could not be recorded is
// reported, since the audit log is the operator's evidence.
func (a *Accounts) audit(ctx context.Context, err error, e storage.AuditEvent) error {
	if err != nil {
		return err
	}
	if err := a.Store.AddAuditEvent(ctx, e); err != nil {
		return fmt.Errorf("the change was made, but not recorded in the audit log: %w", err)
	}
	return nil
}

// taken explains an ErrAlreadyExists for u: one of its unique fields is
// someone else's.
func taken(u storage.User) error {
	what := []string{fmt.Sprintf("named %q", u.Username)}
	if u.Email != "" {
		what = append(what, fmt.Sprintf("with e-mail %q", u.Email))
	}
	if u.MSISDN != "" {
		what = append(what, fmt.Sprintf("with phone number %s", u.MSISDN))
	}
	return fmt.Errorf("a user %s exists already", strings.Join(what, " or "))
}

// Profile is a change to a user's profile: nil fields stay as they are,
// and "" clears a field.
type Profile struct {
	Email, DisplayName, MSISDN, AvatarURL *string
}

// applyProfile checks and normalises the fields p sets and writes them to u.
func applyProfile(u *storage.User, p Profile) error {
	if p.Email != nil {
		email, err := normaliseEmail(*p.Email)
		if err != nil {
			return err
		}
		u.Email, u.EmailVerified = email, email != ""
	}
	if p.DisplayName != nil {
		u.DisplayName = strings.TrimSpace(*p.DisplayName)
	}
	if p.MSISDN != nil {
		m, err := normaliseMSISDN(*p.MSISDN)
		if err != nil {
			return err
		}
		u.MSISDN = m
	}
	if p.AvatarURL != nil {
		avatar, err := checkAvatarURL(*p.AvatarURL)
		if err != nil {
			return err
		}
		u.AvatarURL = avatar
	}
	return nil
}

// UpdateProfile changes the profile fields p sets.
func (a *Accounts) UpdateProfile(ctx context.Context, username string, p Profile) (storage.User, error) {
	var changed storage.User
	u, err := a.updateUser(ctx, username, func(u *storage.User) error {
		err := applyProfile(u, p)
		changed = *u
		return err
	})
	if errors.Is(err, storage.ErrAlreadyExists) {
		return storage.User{}, taken(changed)
	}
	return u, a.audit(ctx, err, storage.AuditEvent{Event: "user.changed", UserID: u.ID, Username: u.Username, Detail: "profile"})
}

func (a *Accounts) hashPassword(pw string) (string, error) {
	if len(pw) < MinPasswordLength {
		return "", fmt.Errorf("password has %d characters, fewer than %d", len(pw), MinPasswordLength)
	}
	if len(pw) > MaxPasswordLength {
		return "", fmt.Errorf("password has %d bytes, more than the %d a login accepts", len(pw), MaxPasswordLength)
	}
	return password.Hash(pw, a.Hash)
}

func normaliseEmail(email string) (string, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if email == "" {
		return "", nil
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email {
		return "", fmt.Errorf("e-mail address %q is not a plain address like name@example.org", email)
	}
	return email, nil
}

// newUserID returns a random version-4 UUID: the account's "sub", stable
// and never given to another account.
func newUserID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// User finds an account by the username an operator typed, which is
// normalised the same way as when it was created.
func (a *Accounts) User(ctx context.Context, username string) (storage.User, error) {
	u, err := a.Store.UserByUsername(ctx, strings.ToLower(strings.TrimSpace(username)))
	if errors.Is(err, storage.ErrNotFound) {
		return storage.User{}, fmt.Errorf("no user %q: %w", username, err)
	}
	return u, err
}

func (a *Accounts) updateUser(ctx context.Context, username string, change func(*storage.User) error) (storage.User, error) {
	u, err := a.User(ctx, username)
	if err != nil {
		return storage.User{}, err
	}
	return a.Store.UpdateUser(ctx, u.ID, change)
}

// SetPassword replaces a user's password and ends the user's sessions
// everywhere (with back-channel logout), as a changed password should.
func (a *Accounts) SetPassword(ctx context.Context, username, pw string) error {
	hash, err := a.hashPassword(pw)
	if err != nil {
		return err
	}
	u, err := a.updateUser(ctx, username, func(u *storage.User) error {
		u.PasswordHash = hash
		return nil
	})
	if err != nil {
		return err
	}
	return a.audit(ctx, a.endSessions(ctx, u.ID), storage.AuditEvent{Event: "user.password_changed", UserID: u.ID, Username: u.Username})
}

// SetDisabled disables or enables a user's logins. Disabling ends the
// user's sessions and revokes their tokens.
func (a *Accounts) SetDisabled(ctx context.Context, username string, disabled bool) error {
	u, err := a.updateUser(ctx, username, func(u *storage.User) error {
		u.Disabled = disabled
		return nil
	})
	event := storage.AuditEvent{Event: "user.enabled", UserID: u.ID, Username: u.Username}
	if err == nil && disabled {
		event.Event = "user.disabled"
		err = a.endSessions(ctx, u.ID)
	}
	return a.audit(ctx, err, event)
}

// DeleteUser ends an account's sessions and removes it. Its ID is never
// given out again.
func (a *Accounts) DeleteUser(ctx context.Context, username string) error {
	u, err := a.User(ctx, username)
	if err != nil {
		return err
	}
	if err := a.endSessions(ctx, u.ID); err != nil {
		return err
	}
	return a.audit(ctx, a.Store.DeleteUser(ctx, u.ID), storage.AuditEvent{Event: "user.deleted", UserID: u.ID, Username: u.Username})
}

// endSessions ends every session of a user and queues the back-channel
// logout notices, which a running mxidp serve delivers.
func (a *Accounts) endSessions(ctx context.Context, userID string) error {
	_, err := a.Store.EndSessions(ctx, userID, false)
	return err
}

// SetGroups replaces a user's group memberships (the "groups" claim).
func (a *Accounts) SetGroups(ctx context.Context, username string, groups []string) error {
	u, err := a.User(ctx, username)
	if err != nil {
		return err
	}
	if err := checkGroups(groups); err != nil {
		return err
	}
	return a.audit(ctx, a.Store.SetUserGroups(ctx, u.ID, groups), storage.AuditEvent{Event: "user.changed", UserID: u.ID, Username: u.Username,
		Detail: "groups: " + strings.Join(groups, ", ")})
}

func checkGroups(groups []string) error {
	for _, g := range groups {
		if strings.TrimSpace(g) == "" || len(g) > 255 {
			return fmt.Errorf("group name %q must have 1 to 255 characters", g)
		}
	}
	return nil
}

// NewClient is what an operator gives to register a relying party.
type NewClient struct {
	ID                     string
	Name                   string // shown on the consent page
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
	Public                 bool
	// Secret is the operator's chosen secret; "" generates one (confidential
	// clients only).
	Secret               string
	SkipConsent          bool
	BackchannelLogoutURI string
	// IDTokenAlg signs the client's ID tokens and logout tokens (one of
	// keys.Algorithms; "" is RS256). UserinfoAlg, when set, makes
	// /userinfo answer the client with a JWT signed with it.
	IDTokenAlg  string
	UserinfoAlg string
}

// AddClient registers a client and returns it with its secret in the
// clear, the only time the secret is known: only its hash is stored.
func (a *Accounts) AddClient(ctx context.Context, nc NewClient) (storage.Client, string, error) {
	if err := checkNewClient(nc); err != nil {
		return storage.Client{}, "", &InputError{err}
	}
	c := storage.Client{
		ID: nc.ID, Name: strings.TrimSpace(nc.Name), Public: nc.Public, RedirectURIs: nc.RedirectURIs, PostLogoutRedirectURIs: nc.PostLogoutRedirectURIs,
		SkipConsent: nc.SkipConsent, BackchannelLogoutURI: nc.BackchannelLogoutURI,
		IDTokenAlg: nc.IDTokenAlg, UserinfoAlg: nc.UserinfoAlg,
	}
	secret, err := chooseSecret(nc.Public, nc.Secret)
	if err != nil {
		return storage.Client{}, "", &InputError{err}
	}
	if secret != "" {
		c.SecretHash = HashClientSecret(secret)
	}
	c, err = a.Store.CreateClient(ctx, c)
	if errors.Is(err, storage.ErrAlreadyExists) {
		return storage.Client{}, "", fmt.Errorf("a client %q exists already", nc.ID)
	}
	return c, secret, a.audit(ctx, err, storage.AuditEvent{Event: "client.added", ClientID: c.ID,
		Detail: "redirect URIs: " + strings.Join(c.RedirectURIs, " ") + signingDetail(c)})
}

// InputError is a refusal of what the operator asked for: a client ID,
// URI, secret or algorithm the rules do not admit. The command line exits
// 2 (usage) for it, as for a malformed flag.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// checkNewClient says why a client may not be registered as asked.
func checkNewClient(nc NewClient) error {
	if err := CheckClientID(nc.ID); err != nil {
		return err
	}
	if len(nc.RedirectURIs) == 0 {
		return errors.New("a client needs at least one --redirect-uri")
	}
	for _, u := range append(append([]string{}, nc.RedirectURIs...), nc.PostLogoutRedirectURIs...) {
		if err := CheckClientURI(u); err != nil {
			return err
		}
	}
	if nc.BackchannelLogoutURI != "" {
		if err := CheckClientURI(nc.BackchannelLogoutURI); err != nil {
			return err
		}
	}
	return checkClientAlgs(nc.IDTokenAlg, nc.UserinfoAlg)
}

func chooseSecret(public bool, chosen string) (string, error) {
	switch {
	case public && chosen != "":
		return "", errors.New("a public client has no secret: drop --secret-stdin or --public")
	case public:
		return "", nil
	case chosen != "":
		return chosen, CheckClientSecret(chosen)
	default:
		return NewClientSecret(), nil
	}
}

// RotateClientSecret gives a confidential client a new secret (chosen, or
// generated when "") and returns it; the old one stops working at once.
func (a *Accounts) RotateClientSecret(ctx context.Context, id, chosen string) (string, error) {
	var secret string
	_, err := a.Store.UpdateClient(ctx, id, func(c *storage.Client) error {
		if c.Public {
			return &InputError{fmt.Errorf("client %q is public and has no secret", id)}
		}
		var err error
		if secret, err = chooseSecret(false, chosen); err != nil {
			return &InputError{err}
		}
		c.SecretHash = HashClientSecret(secret)
		return nil
	})
	if errors.Is(err, storage.ErrNotFound) {
		return "", fmt.Errorf("no client %q: %w", id, err)
	}
	return secret, a.audit(ctx, err, storage.AuditEvent{Event: "client.secret_rotated", ClientID: id})
}

// RemoveClient deletes a client registration and revokes every token it
// was issued: an operator removes a client to end what it holds (its
// Matrix devices then go from Synapse with the device cleanup), and the
// tokens would otherwise stay usable until they expire.
func (a *Accounts) RemoveClient(ctx context.Context, id string) error {
	if err := a.Store.RevokeClientTokens(ctx, id); err != nil {
		return err
	}
	err := a.Store.DeleteClient(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("no client %q: %w", id, err)
	}
	return a.audit(ctx, err, storage.AuditEvent{Event: "client.removed", ClientID: id})
}

// CheckClientURI reports why a redirect, post-logout or back-channel URI is
// refused. URIs are matched exactly later, so they must be absolute: https,
// or http on a loopback host for local trials.
func CheckClientURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("URI %q is not absolute: give it like https://matrix.example.org/_synapse/client/oidc/callback", raw)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return fmt.Errorf("URI %q has a #fragment, which OAuth forbids in redirect URIs", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if IsLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("URI %q uses http on a host other than localhost: use https", raw)
	default:
		return fmt.Errorf("URI %q has scheme %q: use https", raw, u.Scheme)
	}
}

// IsLoopback reports whether host names this machine (localhost, 127.0.0.0/8, ::1).
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
