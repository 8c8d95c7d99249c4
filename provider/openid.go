package provider

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/mxidp/mxidp/keys"
	"github.com/mxidp/mxidp/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Lifetimes of what the provider issues.
type Lifetimes struct {
	AuthRequest  time.Duration // time to log in after the client sent the browser
	Code         time.Duration // ≤ 10 min (RFC 6749 §4.1.2)
	AccessToken  time.Duration
	RefreshToken time.Duration
	IDToken      time.Duration
	Session      time.Duration // browser session ("keep me signed in")
}

// DefaultLifetimes are the lifetimes used unless configured.
var DefaultLifetimes = Lifetimes{
	AuthRequest:  30 * time.Minute,
	Code:         5 * time.Minute,
	AccessToken:  time.Hour,
	RefreshToken: 30 * 24 * time.Hour,
	IDToken:      time.Hour,
	Session:      24 * time.Hour,
}

// ScopeGroups asks for the "groups" claim.
const ScopeGroups = "groups"

// OpenID is mxidp's op.Storage for zitadel/oidc: it answers the library's
// questions from mxidp's database, key ring and users, and makes the
// decisions the library leaves to storage (single-use codes, refresh
// rotation and reuse detection, claims for Synapse, session ends).
type OpenID struct {
	Store *storage.Store
	// Users is where accounts come from; nil means Store.
	Users     storage.Users
	Ring      *keys.Ring
	Issuer    string
	Lifetimes Lifetimes
	Logger    *slog.Logger
	// LoggedOut is called after sessions end, to wake the back-channel
	// delivery worker; may be nil.
	LoggedOut func()
	Now       func() time.Time
	// Matrix, when set, turns next-gen auth on: mxidp is the
	// authentication service Synapse delegates its tokens to.
	Matrix *Matrix

	clients clientCache
}

// clientCache keeps client rows for a second: one login reads its client
// at the authorize and twice at the token endpoint. A change to a client
// (secret rotation, removal, registration) takes effect within that second.
type clientCache struct {
	mu      sync.Mutex
	entries map[string]cachedClient
}

type cachedClient struct {
	client  storage.Client
	unknown bool // no client has this ID
	fetched time.Time
}

const clientCacheTTL = time.Second

// Client returns a registered client, from the one-second cache.
func (o *OpenID) Client(ctx context.Context, id string) (storage.Client, error) {
	return o.client(ctx, id)
}

func (o *OpenID) client(ctx context.Context, id string) (storage.Client, error) {
	now := o.now()
	o.clients.mu.Lock()
	e, ok := o.clients.entries[id]
	o.clients.mu.Unlock()
	if ok && now.Sub(e.fetched) < clientCacheTTL && !now.Before(e.fetched) {
		if e.unknown {
			return storage.Client{}, storage.ErrNotFound
		}
		return e.client, nil
	}
	c, err := o.Store.ClientByID(ctx, id)
	// An unknown ID is remembered as well: answered from the cache like a
	// registered one, it is not told apart by how fast it is refused.
	unknown := errors.Is(err, storage.ErrNotFound)
	if err != nil && !unknown {
		return storage.Client{}, err
	}
	o.clients.mu.Lock()
	if o.clients.entries == nil || len(o.clients.entries) > 1000 {
		o.clients.entries = map[string]cachedClient{}
	}
	o.clients.entries[id] = cachedClient{client: c, unknown: unknown, fetched: now}
	o.clients.mu.Unlock()
	return c, err
}

var (
	_ op.Storage                   = (*OpenID)(nil)
	_ op.CanSetUserinfoFromRequest = (*OpenID)(nil)
)

func (o *OpenID) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// hashSecret is how codes, refresh tokens and session cookies are stored:
// they carry 256 random bits, so one SHA-256 suffices.
func hashSecret(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// newSecret returns 256 random bits, URL-safe.
func newSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// newID returns 128 random bits, URL-safe, for public identifiers.
func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// authRequest adapts storage.AuthRequest to op.AuthRequest.
type authRequest struct{ storage.AuthRequest }

func (a *authRequest) GetID() string          { return a.ID }
func (a *authRequest) GetACR() string         { return "" }
func (a *authRequest) GetAMR() []string       { return a.AMR }
func (a *authRequest) GetAudience() []string  { return []string{a.ClientID} }
func (a *authRequest) GetAuthTime() time.Time { return a.AuthTime }
func (a *authRequest) GetClientID() string    { return a.ClientID }
func (a *authRequest) GetNonce() string       { return a.Nonce }
func (a *authRequest) GetRedirectURI() string { return a.RedirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType {
	return oidc.ResponseType(a.ResponseType)
}
func (a *authRequest) GetResponseMode() oidc.ResponseMode {
	return oidc.ResponseMode(a.ResponseMode)
}
func (a *authRequest) GetScopes() []string { return a.Scopes }
func (a *authRequest) GetState() string    { return a.State }
func (a *authRequest) GetSubject() string  { return a.UserID }
func (a *authRequest) Done() bool          { return a.AuthRequest.Done }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	if a.CodeChallenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{Challenge: a.CodeChallenge, Method: oidc.CodeChallengeMethod(a.CodeChallengeMethod)}
}

// AuthRequest adapts a stored request for the library's functions.
func AuthRequest(a storage.AuthRequest) op.AuthRequest { return &authRequest{a} }

// sessionID lets claims find the "sid" of whatever request a token is for.
func (a *authRequest) sessionID() string { return a.SessionID }

// browserBindingKey carries the hash of the browser-binding cookie from
// the web layer into CreateAuthRequest.
type browserBindingKey struct{}

// WithBrowserBinding returns ctx carrying the SHA-256 of the cookie that
// binds an authorization request to the browser that sent it.
func WithBrowserBinding(ctx context.Context, hash string) context.Context {
	return context.WithValue(ctx, browserBindingKey{}, hash)
}

// NewBrowserBinding returns a new browser-binding cookie value: 256
// random bits, like every secret mxidp hands out.
func NewBrowserBinding() string { return newSecret() }

// HashBrowserBinding is how a browser-binding cookie is stored.
func HashBrowserBinding(cookie string) string { return hashSecret(cookie) }

// CreateAuthRequest stores a validated authorization request, bound to
// the browser that sent it. PKCE is S256 only (plain would let whoever
// sees the authorization request redeem its code, RFC 7636 §7.2), and a
// public client must use it, so that its missing PKCE is refused here,
// before the user logs in, rather than at the token endpoint.
func (o *OpenID) CreateAuthRequest(ctx context.Context, r *oidc.AuthRequest, userID string) (op.AuthRequest, error) {
	if r.CodeChallenge != "" && r.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge_method must be S256")
	}
	if r.CodeChallenge == "" {
		if c, err := o.client(ctx, r.ClientID); err == nil && c.Public {
			return nil, oidc.ErrInvalidRequest().WithDescription("a public client must use PKCE with code_challenge_method S256")
		}
	}
	scopes, err := o.matrixRequestScopes(r.Scopes)
	if err != nil {
		return nil, err
	}
	binding, _ := ctx.Value(browserBindingKey{}).(string)
	now := o.now()
	a := storage.AuthRequest{
		ID: newID(), ClientID: r.ClientID, RedirectURI: r.RedirectURI, Scopes: scopes, State: r.State,
		Nonce: r.Nonce, ResponseType: string(r.ResponseType), ResponseMode: string(r.ResponseMode),
		CodeChallenge: r.CodeChallenge, CodeChallengeMethod: string(r.CodeChallengeMethod),
		Prompt: r.Prompt, LoginHint: r.LoginHint, UILocales: r.UILocales.String(), UserID: userID,
		BrowserHash: binding, CreatedAt: now, ExpiresAt: now.Add(o.Lifetimes.AuthRequest),
	}
	if r.MaxAge != nil {
		m := int64(*r.MaxAge)
		a.MaxAge = &m
	}
	if err := o.Store.CreateAuthRequest(ctx, a); err != nil {
		return nil, err
	}
	return &authRequest{a}, nil
}

// AuthRequestByID returns a pending or completed request.
// A request the web layer loaded and checked for this HTTP request
// (WithCheckedAuthRequest) is used as it is, not read again.
func (o *OpenID) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	a, ok := ctx.Value(checkedAuthRequestKey{}).(storage.AuthRequest)
	if !ok || a.ID != id {
		var err error
		if a, err = o.Store.AuthRequestByID(ctx, id); err != nil {
			return nil, err
		}
	}
	if a.Consumed {
		return nil, fmt.Errorf("auth request %s: code already exchanged", id)
	}
	return &authRequest{a}, nil
}

// checkedAuthRequestKey carries a request the web layer loaded.
type checkedAuthRequestKey struct{}

// WithCheckedAuthRequest returns ctx carrying a, which the web layer has
// just loaded and checked (its browser, its session), for the library's
// callback to use instead of reading it again.
func WithCheckedAuthRequest(ctx context.Context, a storage.AuthRequest) context.Context {
	return context.WithValue(ctx, checkedAuthRequestKey{}, a)
}

// AuthRequestByCode returns the request a code was issued for, exchanged
// already or not. The library looks the code up before it authenticates
// the client, so a replay is not decided here: an exchanged code reaches
// issue only after the client authenticated (secret, or PKCE verifier),
// its consumption conflicts there, and only then is every token issued
// from it revoked (RFC 6749 §4.1.2). Whoever merely holds a used code
// cannot make anyone's tokens go.
func (o *OpenID) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	a, err := o.Store.AuthRequestByCodeHash(ctx, hashSecret(code))
	if err != nil {
		return nil, err
	}
	return &authRequest{a}, nil
}

func (o *OpenID) revokeReplay(ctx context.Context, family, why string) {
	if err := o.Store.RevokeFamily(ctx, family); err != nil {
		o.Logger.Error("revoking tokens after replay failed", "family", family, "err", err)
		return
	}
	o.Logger.Warn(why+"; tokens issued from it revoked", "family", family)
}

// SaveAuthCode stores the hash of a code; the code itself is never stored.
func (o *OpenID) SaveAuthCode(ctx context.Context, id, code string) error {
	return o.Store.SaveAuthCode(ctx, id, hashSecret(code), o.now().Add(o.Lifetimes.Code))
}

// DeleteAuthRequest is called by the library after tokens were minted. The
// request is kept (marked consumed) so that a replayed code is recognised;
// the purge removes it when the code expires.
func (o *OpenID) DeleteAuthRequest(context.Context, string) error { return nil }

// CreateAccessToken issues an access token without a refresh token.
func (o *OpenID) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	access, _, err := o.issue(ctx, req, "", false)
	return access.ID, access.ExpiresAt, err
}

// CreateAccessAndRefreshTokens issues an access token and a refresh token,
// rotating currentRefreshToken when the request is a refresh.
func (o *OpenID) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, currentRefreshToken string) (string, string, time.Time, error) {
	access, refresh, err := o.issue(ctx, req, currentRefreshToken, true)
	return access.ID, refresh, access.ExpiresAt, err
}

// issue stores the tokens of one grant atomically with its consumption of
// a code or a refresh token.
func (o *OpenID) issue(ctx context.Context, req op.TokenRequest, currentRefresh string, withRefresh bool) (storage.Token, string, error) {
	now := o.now()
	base := storage.Token{
		UserID: req.GetSubject(), Scopes: req.GetScopes(), Audience: req.GetAudience(), CreatedAt: now,
	}
	var is storage.Issue
	switch r := req.(type) {
	case *authRequest:
		base.FamilyID, base.ClientID, base.SessionID, base.AuthTime, base.AMR = r.ID, r.ClientID, r.SessionID, r.AuthTime, r.AMR
		is.ConsumeAuthRequest = r.ID
		// Synapse must know the user and the device before the token
		// reaches the client. A Matrix device's login outlives the
		// browser session it began in, as a device does: it ends on its
		// own (logout, the account page, revocation, expiry) or when the
		// user is disabled, not when the browser signs out of mxidp.
		device, err := o.prepareDevice(ctx, r)
		if err != nil {
			return storage.Token{}, "", err
		}
		if device {
			base.SessionID = ""
		}
	case *refreshRequest:
		base.FamilyID, base.ClientID, base.SessionID, base.AuthTime, base.AMR = r.FamilyID, r.ClientID, r.SessionID, r.AuthTime, r.AMR
		base.Scopes = r.scopes
		is.RotateRefreshHash = hashSecret(currentRefresh)
	default:
		return storage.Token{}, "", oidc.ErrUnsupportedGrantType()
	}
	access := base
	access.ID, access.Kind, access.ExpiresAt = newID(), storage.AccessToken, now.Add(o.Lifetimes.AccessToken)
	is.Tokens = []storage.Token{access}
	var refreshValue string
	if withRefresh {
		refreshValue = newSecret()
		refresh := base
		refresh.ID, refresh.Kind, refresh.Hash = newID(), storage.RefreshToken, hashSecret(refreshValue)
		refresh.ExpiresAt = now.Add(o.Lifetimes.RefreshToken)
		is.Tokens = append(is.Tokens, refresh)
	}
	err := o.Store.IssueTokens(ctx, is)
	if errors.Is(err, storage.ErrConflict) {
		// Lost a race for the code or the refresh token: someone else
		// used it. Treat it as the replay it may be.
		o.revokeReplay(ctx, base.FamilyID, "grant used twice")
		return storage.Token{}, "", oidc.ErrInvalidGrant().WithDescription("the code or refresh token was already used")
	}
	if err != nil {
		return storage.Token{}, "", err
	}
	return access, refreshValue, nil
}

// refreshRequest adapts a stored refresh token to op.RefreshTokenRequest.
type refreshRequest struct {
	storage.Token
	scopes []string
}

func (r *refreshRequest) GetAMR() []string                 { return r.AMR }
func (r *refreshRequest) GetAudience() []string            { return r.Audience }
func (r *refreshRequest) GetAuthTime() time.Time           { return r.AuthTime }
func (r *refreshRequest) GetClientID() string              { return r.ClientID }
func (r *refreshRequest) GetScopes() []string              { return r.scopes }
func (r *refreshRequest) GetSubject() string               { return r.UserID }
func (r *refreshRequest) SetCurrentScopes(scopes []string) { r.scopes = scopes }
func (r *refreshRequest) sessionID() string                { return r.SessionID }

// TokenRequestByRefreshToken finds a refresh token that may still be
// used, or was rotated already. A rotated one is being reused: the whole
// family is revoked, as the stolen copy and the real one are
// indistinguishable; but only once the library has checked that the
// token is the requesting client's and that client authenticated, when
// issue finds the rotation taken (as for codes, see AuthRequestByCode).
// Whoever merely holds an old refresh token cannot revoke another
// client's login with it. There is no grace window: Synapse never
// refreshes, and other clients retry with a new login.
func (o *OpenID) TokenRequestByRefreshToken(ctx context.Context, token string) (op.RefreshTokenRequest, error) {
	t, err := o.Store.TokenByHash(ctx, hashSecret(token))
	if err != nil || t.Kind != storage.RefreshToken {
		return nil, op.ErrInvalidRefreshToken
	}
	if t.Revoked || !o.now().Before(t.ExpiresAt) {
		return nil, op.ErrInvalidRefreshToken
	}
	if _, err := o.activeUser(ctx, t.UserID); err != nil {
		return nil, op.ErrInvalidRefreshToken
	}
	return &refreshRequest{Token: t, scopes: t.Scopes}, nil
}

// GetRefreshTokenInfo identifies a refresh token for revocation.
func (o *OpenID) GetRefreshTokenInfo(ctx context.Context, clientID, token string) (string, string, error) {
	t, err := o.Store.TokenByHash(ctx, hashSecret(token))
	if err != nil || t.Kind != storage.RefreshToken || t.ClientID != clientID {
		return "", "", op.ErrInvalidRefreshToken
	}
	return t.UserID, t.ID, nil
}

// RevokeToken revokes an access token (by ID) or a refresh token (by
// value) of the requesting client. Revoking a refresh token revokes its
// family, as RFC 7009 §2.1 allows, so the access tokens go with it.
func (o *OpenID) RevokeToken(ctx context.Context, tokenOrID, userID, clientID string) *oidc.Error {
	t, err := o.Store.TokenByID(ctx, tokenOrID)
	if errors.Is(err, storage.ErrNotFound) {
		t, err = o.Store.TokenByHash(ctx, hashSecret(tokenOrID))
	}
	if errors.Is(err, storage.ErrNotFound) {
		return nil // RFC 7009 §2.2: unknown tokens are not an error
	}
	if err != nil {
		return oidc.ErrServerError().WithParent(err)
	}
	if t.ClientID != clientID {
		return oidc.ErrInvalidClient().WithDescription("token was issued to another client")
	}
	// An access token of a Matrix device is its login: revoking it ends
	// the device, as logging out does in Matrix.
	device := false
	if t.Kind == storage.AccessToken && o.Matrix != nil {
		_, err := o.Store.MatrixDeviceByFamily(ctx, t.FamilyID)
		device = err == nil
	}
	if t.Kind == storage.RefreshToken || device {
		err = o.Store.RevokeFamily(ctx, t.FamilyID)
	} else {
		err = o.Store.RevokeToken(ctx, t.ID)
	}
	if err != nil {
		return oidc.ErrServerError().WithParent(err)
	}
	o.devicesEnded()
	return nil
}

// TerminateSession would end sessions for the library's own end_session
// handler, which mxidp never lets answer: the web layer serves
// end_session itself, ending only the browser's own session once the
// hint named it or the user confirmed (see web/logout.go). Should the
// library ever be reached, it ends nothing: an ID token is no proof of
// who sends it.
func (o *OpenID) TerminateSession(context.Context, string, string) error {
	return errors.New("end_session is served by mxidp's logout pages")
}

// LoggedOutPath is the page shown after a logout without a redirect.
const LoggedOutPath = "/logged-out"

// EndBrowserSession ends one browser's session (a logout the user
// confirmed at mxidp), with back-channel logout to its clients.
func (o *OpenID) EndBrowserSession(ctx context.Context, sid string) error {
	return o.endSessions(ctx, sid, true)
}

// endSessions ends sessions (one by sid, or all of a user), revoking their
// tokens and queueing back-channel logout notices.
func (o *OpenID) endSessions(ctx context.Context, key string, bySession bool) error {
	ended, err := o.Store.EndSessions(ctx, key, bySession)
	if err != nil {
		return err
	}
	if len(ended) > 0 {
		o.Logger.Info("sessions ended", "count", len(ended))
		if o.LoggedOut != nil {
			o.LoggedOut()
		}
	}
	o.devicesEnded()
	for _, e := range ended {
		detail := "every session of the user"
		if bySession {
			detail = "session " + e.ID
		}
		if err := o.Store.AddAuditEvent(ctx, storage.AuditEvent{Event: "logout", UserID: e.UserID, Detail: detail}); err != nil {
			o.Logger.Warn("recording an audit event failed", "event", "logout", "err", err)
		}
	}
	return nil
}

// signingKey adapts keys.Key to op.SigningKey.
type signingKey struct{ k keys.Key }

// SignatureAlgorithm is the key's algorithm: the library signs with it
// and derives at_hash and c_hash from it (OIDC Core §3.1.3.6, §3.3.2.11).
func (s signingKey) SignatureAlgorithm() jose.SignatureAlgorithm {
	return jose.SignatureAlgorithm(s.k.Algorithm)
}
func (s signingKey) Key() any   { return s.k.Signer() }
func (s signingKey) ID() string { return s.k.ID }

// SigningKey returns the key that signs now with the algorithm of the
// client the request is for (see WithClientSigning).
func (o *OpenID) SigningKey(ctx context.Context) (op.SigningKey, error) {
	k, err := o.Ring.SigningKeyFor(signingAlg(ctx))
	if err != nil {
		return nil, err
	}
	return signingKey{k}, nil
}

// SignatureAlgorithms lists every algorithm of the ring, RS256 first, for
// discovery's id_token_signing_alg_values_supported: relying parties such
// as Synapse accept only what it lists.
func (o *OpenID) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	out := make([]jose.SignatureAlgorithm, len(keys.Algorithms))
	for i, alg := range keys.Algorithms {
		out[i] = jose.SignatureAlgorithm(alg)
	}
	return out, nil
}

// publicKey adapts a published key to op.Key.
type publicKey struct{ k jose.JSONWebKey }

func (p publicKey) ID() string                         { return p.k.KeyID }
func (p publicKey) Algorithm() jose.SignatureAlgorithm { return jose.SignatureAlgorithm(p.k.Algorithm) }
func (p publicKey) Use() string                        { return "sig" }
func (p publicKey) Key() any                           { return p.k.Key }

// KeySet returns the published keys of every algorithm, each with its
// own, to verify id_token_hint.
func (o *OpenID) KeySet(context.Context) ([]op.Key, error) {
	var out []op.Key
	for _, k := range o.Ring.Published() {
		out = append(out, publicKey{k.Public()})
	}
	return out, nil
}

// ClientRefusal describes every refused client: unknown, public where a
// secret is needed, or with a wrong secret. It is zitadel/oidc's own text
// for a wrong secret, so that the library's answers to an unknown client
// read the same, and client IDs cannot be probed (RFC 6749 §5.2 names
// them all invalid_client).
const ClientRefusal = "invalid client_id / client_secret"

// errClientRefused is AuthorizeClientIDSecret's one error: the library
// shows its text in some answers (introspection), so it must not say which
// check failed.
var errClientRefused = errors.New("client authentication failed")

// GetClientByClientID returns a registered client.
func (o *OpenID) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := o.client(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		// Some of the library's grants pass this error on as it is: an
		// unknown client must be invalid_client there too, not a 500, and
		// read like a wrong secret.
		return nil, oidc.ErrInvalidClient().WithDescription(ClientRefusal).WithParent(errClientRefused)
	}
	if err != nil {
		return nil, err
	}
	noteClientSigning(ctx, c)
	return &Client{Client: c, issuer: o.Issuer, idTokenLifetime: o.Lifetimes.IDToken, matrix: o.Matrix != nil}, nil
}

// AuthorizeClientIDSecret checks a confidential client's secret in
// constant time. An unknown or public client is compared against a dummy
// hash, so that it costs what a wrong secret costs, and every refusal is
// the same error.
func (o *OpenID) AuthorizeClientIDSecret(ctx context.Context, id, secret string) error {
	c, err := o.client(ctx, id)
	stored := c.SecretHash
	if err != nil || c.Public {
		stored = dummySecretHash
	}
	right := VerifyClientSecret(stored, secret)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("look up client: %w", err)
	}
	if err != nil || c.Public || !right {
		return errClientRefused
	}
	return nil
}

// SetUserinfoFromScopes is deprecated in the library; claims come from
// SetUserinfoFromRequest.
func (o *OpenID) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest fills the ID token's claims: the profile and
// e-mail claims go into the ID token itself, where Synapse reads them
// (Synapse synapse/handlers/oidc.py), and "sid" names the browser session.
// A user who may no longer log in gets no ID token, and so no token
// answer: invalid_grant (RFC 6749 §5.2). The callback does not read the
// user, and a platform disables its users without ending their sessions
// (EndDepartedSessions ends them later), so a code may be issued for a
// user disabled since the sign-in; it is refused here.
func (o *OpenID) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	u, err := o.users().UserByID(ctx, req.GetSubject())
	if errors.Is(err, storage.ErrNotFound) || (err == nil && u.Disabled) {
		return oidc.ErrInvalidGrant().WithDescription("the user may no longer log in")
	}
	if err != nil {
		return fmt.Errorf("user %s: %w", req.GetSubject(), err)
	}
	if err := o.setClaims(ctx, info, u, scopes); err != nil {
		return err
	}
	if s, ok := req.(interface{ sessionID() string }); ok && s.sessionID() != "" {
		info.AppendClaims("sid", s.sessionID())
	}
	return nil
}

// SetUserinfoFromToken fills the userinfo response for an access token.
func (o *OpenID) SetUserinfoFromToken(ctx context.Context, info *oidc.UserInfo, tokenID, subject, _ string) error {
	_, err := o.tokenClaims(ctx, info, tokenID, subject)
	return err
}

// tokenClaims fills info with the claims of a live access token's user, for
// the scopes the token was granted, and returns the token.
func (o *OpenID) tokenClaims(ctx context.Context, info *oidc.UserInfo, tokenID, subject string) (storage.Token, error) {
	t, err := o.liveAccessToken(ctx, tokenID, subject)
	if err != nil {
		return storage.Token{}, err
	}
	u, err := o.activeUser(ctx, t.UserID)
	if err != nil {
		return storage.Token{}, err
	}
	return t, o.setClaims(ctx, info, u, t.Scopes)
}

// ErrInvalidToken means an access token is unknown, expired, revoked, or
// belongs to a disabled user.
var ErrInvalidToken = errors.New("invalid access token")

func (o *OpenID) liveAccessToken(ctx context.Context, tokenID, subject string) (storage.Token, error) {
	t, err := o.Store.TokenByID(ctx, tokenID)
	if err != nil || t.Kind != storage.AccessToken || t.Revoked || t.UserID != subject || !o.now().Before(t.ExpiresAt) {
		return storage.Token{}, ErrInvalidToken
	}
	return t, nil
}

// errNotTheCallersToken refuses to introspect another client's token.
var errNotTheCallersToken = errors.New("the token was issued to another client")

// SetIntrospectionFromToken answers introspection (RFC 7662) for a live
// access token, to the client it was issued to or one in its audience:
// clientID is the caller the library authenticated. To any other client
// the token is inactive and nothing else is said: a client holding a token
// it was not given learns neither that it is live nor whose it is (RFC 7662
// §4: the server decides whether the caller may use the token). Refresh
// tokens never get here: they are not sealed access tokens, so the library
// finds no token ID in them and answers inactive to every caller.
func (o *OpenID) SetIntrospectionFromToken(ctx context.Context, resp *oidc.IntrospectionResponse, tokenID, subject, clientID string) error {
	t, err := o.liveAccessToken(ctx, tokenID, subject)
	if err != nil {
		return err
	}
	if clientID == "" || (t.ClientID != clientID && !slices.Contains(t.Audience, clientID)) {
		return errNotTheCallersToken
	}
	u, err := o.activeUser(ctx, t.UserID)
	if err != nil {
		return err
	}
	info := new(oidc.UserInfo)
	if err := o.setClaims(ctx, info, u, t.Scopes); err != nil {
		return err
	}
	resp.SetUserInfo(info)
	resp.Scope = t.Scopes
	resp.ClientID = t.ClientID
	resp.Audience = t.Audience
	resp.Expiration = oidc.FromTime(t.ExpiresAt)
	resp.IssuedAt = oidc.FromTime(t.CreatedAt)
	resp.Active = true
	return nil
}

// GetPrivateClaimsFromScopes adds nothing to JWT access tokens (mxidp
// issues opaque ones).
func (o *OpenID) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

// GetKeyByIDAndClientID serves the JWT profile grant, which mxidp does not offer.
func (o *OpenID) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("JWT client authentication is not supported")
}

// ValidateJWTProfileScopes serves the JWT profile grant, which mxidp does not offer.
func (o *OpenID) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("the JWT profile grant is not supported")
}

func (o *OpenID) users() storage.Users {
	if o.Users != nil {
		return o.Users
	}
	return o.Store
}

// Health reports whether the database answers.
func (o *OpenID) Health(ctx context.Context) error { return o.Store.Ping(ctx) }

// activeUser loads a user who may still receive tokens.
func (o *OpenID) activeUser(ctx context.Context, id string) (storage.User, error) {
	u, err := o.users().UserByID(ctx, id)
	if err != nil {
		return storage.User{}, fmt.Errorf("user %s: %w", id, err)
	}
	if u.Disabled {
		return storage.User{}, fmt.Errorf("user %s is disabled", id)
	}
	return u, nil
}

// setClaims puts a user's claims for the granted scopes into info (OIDC
// Core §5.4), as Synapse's default mapping provider reads them (Synapse
// synapse/handlers/oidc.py, docs/openid.md): preferred_username is the
// Matrix localpart, and email appears only when verified, since Synapse
// binds it without looking at email_verified.
func (o *OpenID) setClaims(ctx context.Context, info *oidc.UserInfo, u storage.User, scopes []string) error {
	info.Subject = u.ID
	if slices.Contains(scopes, oidc.ScopeProfile) {
		info.PreferredUsername = u.Username
		info.Name = u.DisplayName
		if info.Name == "" {
			info.Name = u.Username
		}
		info.UpdatedAt = oidc.FromTime(u.UpdatedAt)
	}
	if slices.Contains(scopes, oidc.ScopeEmail) && u.Email != "" && u.EmailVerified {
		info.Email = u.Email
		info.EmailVerified = oidc.Bool(true)
	}
	if slices.Contains(scopes, ScopeGroups) {
		groups, err := o.users().UserGroups(ctx, u.ID)
		if err != nil {
			return err
		}
		if len(groups) > 0 {
			info.AppendClaims("groups", groups)
		}
	}
	return nil
}

// EndDepartedSessions ends the sessions and tokens of every user with a
// live session or token whom the account source no longer lets in: gone,
// or disabled. A platform does not tell mxidp when it disables someone, so
// serve runs this every users.platform.check_interval; each ended session
// sends back-channel logout notices. It returns how many users it ended.
func (o *OpenID) EndDepartedSessions(ctx context.Context) (int, error) {
	ids, err := o.Store.ActiveUserIDs(ctx)
	if err != nil {
		return 0, fmt.Errorf("list active users: %w", err)
	}
	ended := 0
	for _, id := range ids {
		u, err := o.users().UserByID(ctx, id)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return ended, err // the source is unreachable: decide nothing
		}
		if err == nil && !u.Disabled {
			continue
		}
		if err := o.endSessions(ctx, id, false); err != nil {
			return ended, err
		}
		o.Logger.Info("ended the sessions of a user the platform disabled or removed", "user_id", id)
		ended++
	}
	return ended, nil
}
