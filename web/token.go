package web

import (
	"net/http"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/mxidp/mxidp/provider"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// servedGrants are the grants discovery lists in grant_types_supported
// (provider.Discovery). The library knows more (the JWT bearer grant of
// RFC 7523, token exchange, client credentials, device code); none of
// them is part of what mxidp offers, so none reaches the library.
var servedGrants = []string{string(oidc.GrantTypeCode), string(oidc.GrantTypeRefreshToken)}

// mountToken mounts zitadel/oidc's token, introspection and revocation
// endpoints, at the paths discovery names, behind clientDoor; the token
// endpoint serves only servedGrants.
func mountToken(r chi.Router, p *op.Provider) {
	r.HandleFunc(p.TokenEndpoint().Relative(), clientDoor(func(w http.ResponseWriter, r *http.Request) {
		// The library reads grant_type the same way; a missing one it
		// refuses itself (invalid_request).
		if grant := r.FormValue("grant_type"); grant != "" && !slices.Contains(servedGrants, grant) {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type",
				"error_description": "only the authorization_code and refresh_token grants are served"})
			return
		}
		// The ID token is signed with the requesting client's algorithm,
		// which the library's client lookup notes here.
		p.ServeHTTP(w, r.WithContext(provider.WithClientSigning(r.Context())))
	}))
	r.HandleFunc(p.IntrospectionEndpoint().Relative(), clientDoor(p.ServeHTTP))
	r.HandleFunc(p.RevocationEndpoint().Relative(), clientDoor(p.ServeHTTP))
}

// openAccessToken opens a bearer access token into the token's ID and
// subject, as the provider seals them (the library's Crypto, over
// "ID:subject"); ok is false for anything else.
func openAccessToken(decrypt func(string) (string, error), token string) (id, subject string, ok bool) {
	if token == "" {
		return "", "", false
	}
	plain, err := decrypt(token)
	if err != nil {
		return "", "", false
	}
	return strings.Cut(plain, ":")
}
