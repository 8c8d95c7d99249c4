package provider

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/url"

	"github.com/mxidp/mxidp/keys"
	"github.com/rs/cors"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// NewOP builds the zitadel/oidc provider over o. secret (the instance
// secret) keys the sealing of access tokens, which are opaque to clients.
func NewOP(o *OpenID, secret []byte) (*op.Provider, error) {
	key, err := hkdf.Key(sha256.New, secret, nil, "mxidp access tokens", 32)
	if err != nil {
		return nil, err
	}
	// issuedClaims are the claims discovery lists (claims_supported, OpenID
	// Connect Discovery 1.0 §3): exactly those mxidp puts into ID tokens or
	// userinfo answers. The library's default list also names claims mxidp
	// never issues (given_name, phone_number, act, …).
	issuedClaims := []string{
		// Every ID token (OIDC Core §2); c_hash and at_hash from the code
		// exchange, sid naming the browser session.
		"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "amr", "azp", "client_id", "at_hash", "c_hash", "sid",
		// The scopes' claims (setClaims).
		"preferred_username", "name", "updated_at", "email", "email_verified", "groups",
	}
	cfg := &op.Config{
		CodeMethodS256:                    true,
		AuthMethodPost:                    true,
		GrantTypeRefreshToken:             true,
		SupportedScopes:                   []string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail, oidc.ScopeOfflineAccess, ScopeGroups},
		SupportedClaims:                   issuedClaims,
		BackChannelLogoutSupported:        true,
		BackChannelLogoutSessionSupported: true,
		DefaultLogoutRedirectURI:          o.Issuer + LoggedOutPath,
	}
	copy(cfg.CryptoKey[:], key)
	opts := []op.Option{
		// Clients are servers (Synapse) or single-page apps using bearer
		// tokens; no endpoint needs the browser's cookies across origins.
		op.WithCORSOptions(&cors.Options{
			AllowedOrigins: []string{"*"},
			AllowedMethods: []string{"GET", "POST"},
			AllowedHeaders: []string{"Authorization", "Content-Type", "Accept"},
		}),
	}
	// An id_token_hint may be an ID token of any client, so of any of the
	// ring's algorithms (the library's default leaves EdDSA out).
	opts = append(opts, op.WithIDTokenHintVerifierOpts(op.WithSupportedIDTokenHintSigningAlgorithms(keys.Algorithms...)))
	u, err := url.Parse(o.Issuer)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "http" {
		// Configuration admits http only for a loopback issuer (a local trial).
		opts = append(opts, op.WithAllowInsecure())
	}
	return op.NewProvider(cfg, o, op.StaticIssuer(o.Issuer), opts...)
}

// FormKey derives from the instance secret the key of the login pages'
// CSRF tokens, the same on every instance of a deployment.
func FormKey(secret []byte) ([]byte, error) {
	return hkdf.Key(sha256.New, secret, nil, "mxidp page forms", 32)
}

// Discovery returns the discovery document, built once: the issuer is
// fixed, so it never changes while the process runs.
func Discovery(p *op.Provider, o *OpenID) ([]byte, error) {
	ctx := op.ContextWithIssuer(context.Background(), o.Issuer)
	d := op.CreateDiscoveryConfig(ctx, p, o)
	// Say exactly what mxidp serves: the code flow, no device flow, no
	// session iframe.
	d.ResponseTypesSupported = []string{string(oidc.ResponseTypeCode)}
	d.ResponseModesSupported = []string{string(oidc.ResponseModeQuery), string(oidc.ResponseModeFormPost)}
	d.GrantTypesSupported = []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}
	d.DeviceAuthorizationEndpoint = ""
	d.CheckSessionIframe = ""
	d.RequestParameterSupported = false
	d.CodeChallengeMethodsSupported = []oidc.CodeChallengeMethod{oidc.CodeChallengeMethodS256}
	// Signed userinfo, for a client registered with a userinfo algorithm.
	d.UserinfoSigningAlgValuesSupported = keys.Algorithms
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("discovery document: %w", err)
	}
	if o.Matrix == nil {
		return b, nil
	}
	// Next-gen auth: Synapse hands this document to Matrix clients as its
	// auth_metadata (Matrix client-server API, "OAuth 2.0 API", server
	// metadata discovery), so it says what they need beyond OpenID: the
	// fragment response mode, dynamic registration (RFC 7591), the
	// account page with the actions it serves (MSC4191), and the prompt
	// values mxidp honours. "create" is not among them: accounts come
	// from the platform, so clients offer no sign-up.
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	m["response_modes_supported"] = []string{string(oidc.ResponseModeQuery), string(oidc.ResponseModeFragment), string(oidc.ResponseModeFormPost)}
	m["registration_endpoint"] = o.Issuer + RegistrationPath
	m["account_management_uri"] = o.Issuer + AccountPath
	m["account_management_actions_supported"] = AccountActions
	m["prompt_values_supported"] = []string{oidc.PromptNone, oidc.PromptLogin, oidc.PromptConsent}
	m["scopes_supported"] = append(d.ScopesSupported, ScopeMatrixAPI, ScopeMatrixAPIUnstable)
	return json.Marshal(m)
}

// Paths of next-gen auth, relative to the issuer.
const (
	// RegistrationPath is where clients register themselves (RFC 7591).
	RegistrationPath = "/oauth2/registration"
	// SynapseIntrospectionPath is where Synapse introspects tokens: it
	// calls {endpoint}/oauth2/introspect, a path it does not look up in
	// discovery (Synapse synapse/api/auth/mas.py).
	SynapseIntrospectionPath = "/oauth2/introspect"
	// AccountPath is the account management page (account_management_uri).
	AccountPath = "/account"
)

// AccountActions are the account-management actions of MSC4191 that the
// account page serves: the names clients send today, and the later
// device_* names of the same three actions.
var AccountActions = []string{
	"org.matrix.profile", "org.matrix.sessions_list", "org.matrix.session_view", "org.matrix.session_end",
	"org.matrix.devices_list", "org.matrix.device_view", "org.matrix.device_delete",
	"org.matrix.cross_signing_reset",
}
