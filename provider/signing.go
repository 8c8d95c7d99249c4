package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/mxidp/mxidp/keys"
	"github.com/mxidp/mxidp/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// Every token mxidp signs is signed with the algorithm of the client it
// is for (storage.Client.IDTokenAlg, RS256 unless the client asked for
// ES256 or EdDSA): ID tokens (the library's CreateIDToken, through
// SigningKey), logout tokens (Backchannel.LogoutToken) and, for a client
// that asked for it, signed userinfo (Userinfo). Nothing else signs with
// the ring: access and refresh tokens are opaque, sealed or random
// (NewOP, issue), and the Matrix login API hands out such tokens too.

// signingChoiceKey carries a request's *signingChoice.
type signingChoiceKey struct{}

// signingChoice is where, during one token request, the storage method
// that loads the client for the library (GetClientByClientID) notes the
// client's algorithm, for SigningKey, which the library calls without
// saying which client it signs for (zitadel/oidc pkg/op/token.go,
// CreateIDToken). It costs no query: the client is loaded anyway.
type signingChoice struct{ alg string }

// WithClientSigning returns ctx ready to carry the algorithm of the client
// a token request is for. The web layer wraps the token endpoint with it;
// without it the library's tokens are signed with keys.DefaultAlgorithm.
func WithClientSigning(ctx context.Context) context.Context {
	return context.WithValue(ctx, signingChoiceKey{}, &signingChoice{})
}

// noteClientSigning records c's algorithm for the request of ctx.
func noteClientSigning(ctx context.Context, c storage.Client) {
	if s, ok := ctx.Value(signingChoiceKey{}).(*signingChoice); ok {
		s.alg = idTokenAlg(c)
	}
}

// signingAlg is the algorithm noted for the request of ctx.
func signingAlg(ctx context.Context) string {
	if s, ok := ctx.Value(signingChoiceKey{}).(*signingChoice); ok && s.alg != "" {
		return s.alg
	}
	return keys.DefaultAlgorithm
}

// idTokenAlg is the algorithm of c's ID tokens and logout tokens.
func idTokenAlg(c storage.Client) string {
	if c.IDTokenAlg == "" {
		return keys.DefaultAlgorithm
	}
	return c.IDTokenAlg
}

// Userinfo fills info with the claims of a live access token, as
// SetUserinfoFromToken does, and returns the answer's body when the
// token's client asked for signed userinfo (userinfo_signed_response_alg):
// a JWT over the claims with iss and aud added (OIDC Core §5.3.2), signed
// with the client's userinfo algorithm. jwt is "" for a client that takes
// JSON. The client comes from the one-second cache the token endpoint
// filled a moment before.
func (o *OpenID) Userinfo(ctx context.Context, info *oidc.UserInfo, tokenID, subject string) (jwt string, err error) {
	t, err := o.tokenClaims(ctx, info, tokenID, subject)
	if err != nil {
		return "", err
	}
	c, err := o.client(ctx, t.ClientID)
	if errors.Is(err, storage.ErrNotFound) {
		// Removing a client revokes its tokens; one still live is not
		// answered for a client that is gone.
		return "", ErrInvalidToken
	}
	if err != nil || c.UserinfoAlg == "" {
		return "", err
	}
	// UserInfo has no iss or aud field, so these extra claims are kept as
	// given when it merges them into its JSON.
	info.AppendClaims("iss", o.Issuer)
	info.AppendClaims("aud", c.ID)
	body, err := json.Marshal(info)
	if err != nil {
		return "", err
	}
	return o.Ring.Sign(c.UserinfoAlg, "", body)
}

// checkClientAlgs checks an operator's choice of a client's algorithms:
// "" is the default for either.
func checkClientAlgs(idToken, userinfo string) error {
	if idToken != "" {
		if err := keys.CheckAlgorithm(idToken); err != nil {
			return fmt.Errorf("ID token algorithm: %w", err)
		}
	}
	if userinfo != "" {
		if err := keys.CheckAlgorithm(userinfo); err != nil {
			return fmt.Errorf("userinfo algorithm: %w", err)
		}
	}
	return nil
}

// signingDetail says, for the audit log, how c's tokens are signed.
func signingDetail(c storage.Client) string {
	d := "; ID tokens " + idTokenAlg(c)
	if c.UserinfoAlg != "" {
		d += ", userinfo " + c.UserinfoAlg
	}
	return d
}

// SetClientSigning changes how an existing client's tokens are signed:
// idToken ("" leaves it, keys.DefaultAlgorithm restores the default) and
// userinfo (nil leaves it, "" answers JSON again). Tokens issued from then
// on follow it, within the one-second client cache.
func (a *Accounts) SetClientSigning(ctx context.Context, id, idToken string, userinfo *string) (storage.Client, error) {
	u := ""
	if userinfo != nil {
		u = *userinfo
	}
	if err := checkClientAlgs(idToken, u); err != nil {
		return storage.Client{}, err
	}
	c, err := a.Store.UpdateClient(ctx, id, func(c *storage.Client) error {
		if idToken != "" {
			c.IDTokenAlg = idToken
		}
		if userinfo != nil {
			c.UserinfoAlg = *userinfo
		}
		return nil
	})
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Client{}, fmt.Errorf("no client %q: %w", id, err)
	}
	return c, a.audit(ctx, err, storage.AuditEvent{Event: "client.signing_changed", ClientID: id, Detail: strings.TrimPrefix(signingDetail(c), "; ")})
}
