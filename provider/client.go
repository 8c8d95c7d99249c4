package provider

import (
	"net/url"
	"time"

	"github.com/mxidp/mxidp/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// LoginPath is where the library sends the browser to log in, with the
// authorization request's ID as "id".
const LoginPath = "/login"

// Client adapts a registered client to op.Client.
type Client struct {
	storage.Client
	issuer          string
	idTokenLifetime time.Duration
	matrix          bool // next-gen auth: the Matrix scopes are granted
}

var _ op.Client = (*Client)(nil)

func (c *Client) GetID() string                    { return c.ID }
func (c *Client) RedirectURIs() []string           { return c.exactRedirectURIs() }
func (c *Client) PostLogoutRedirectURIs() []string { return c.Client.PostLogoutRedirectURIs }

// ApplicationType is native for a native application that registered
// itself, whose loopback redirects match any port (RedirectURIGlobs);
// every other client is a web application.
func (c *Client) ApplicationType() op.ApplicationType {
	if c.Dynamic && c.Client.ApplicationType == storage.ApplicationNative {
		return op.ApplicationTypeNative
	}
	return op.ApplicationTypeWeb
}

// AuthMethod is "none" for public clients. Confidential clients may send
// their secret by either client_secret_basic or client_secret_post; the
// library accepts exactly one of them per request (RFC 6749 §2.3).
func (c *Client) AuthMethod() oidc.AuthMethod {
	if c.Public {
		return oidc.AuthMethodNone
	}
	return oidc.AuthMethodBasic
}

func (c *Client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *Client) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}
}

// LoginURL is absolute, so that it holds when the issuer has a path.
func (c *Client) LoginURL(id string) string {
	return c.issuer + LoginPath + "?id=" + url.QueryEscape(id)
}

func (c *Client) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeBearer }
func (c *Client) IDTokenLifetime() time.Duration      { return c.idTokenLifetime }

// DevMode lets a registered http redirect URI be used. Registration admits
// http only on loopback hosts (CheckClientURI), so this opens nothing else.
// A client that registered itself has no DevMode: the library then holds
// it to its redirect URIs as registration checked them (ParseRegistration).
func (c *Client) DevMode() bool { return !c.Dynamic }

func (c *Client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *Client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// IsScopeAllowed admits the scopes beyond the standard ones that mxidp
// understands: "groups", and with next-gen auth the Matrix API and device
// scopes (CreateAuthRequest checks the device). Any other scope is
// dropped from the request, as the library does with unknown ones.
func (c *Client) IsScopeAllowed(scope string) bool {
	return scope == ScopeGroups || (c.matrix && IsMatrixScope(scope))
}

// IDTokenUserinfoClaimsAssertion puts profile and e-mail claims into the
// ID token, where Synapse reads them by default (Synapse
// synapse/handlers/oidc.py, user_profile_method "auto"): without it
// zitadel/oidc's CreateIDToken (pkg/op/token.go) leaves them out whenever
// it also issues an access token.
func (c *Client) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c *Client) ClockSkew() time.Duration             { return 0 }
