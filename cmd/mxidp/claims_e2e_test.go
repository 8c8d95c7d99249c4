package main

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Discovery's claims_supported names exactly the claims mxidp issues: a
// login asking for every scope (openid profile email groups) by a user
// with every claim set gets each listed claim in its ID token or its
// userinfo answer, and no claim that is not listed.
func TestClaimsSupportedNamesExactlyWhatIsIssued(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *openIDEnv) {
		e.d.cli("user", "set-groups", "alice", "staff")
		c := e.addClient("claims")
		cfg := e.config(c, oauth2.AuthStyleInHeader, oidc.ScopeOpenID, "profile", "email", "groups")
		l := e.exchange(cfg, e.authorize(newBrowser(t), cfg))
		issued := map[string]bool{}
		var id map[string]any
		if err := l.idToken.Claims(&id); err != nil {
			t.Fatal(err)
		}
		status, _, body := e.userinfo(l.token.AccessToken)
		var info map[string]any
		if err := json.Unmarshal(body, &info); status != http.StatusOK || err != nil {
			t.Fatalf("userinfo: %d %s", status, body)
		}
		for _, claims := range []map[string]any{id, info} {
			for k := range claims {
				issued[k] = true
			}
		}
		var disc struct {
			Claims []string `json:"claims_supported"`
		}
		if err := e.provider.Claims(&disc); err != nil {
			t.Fatal(err)
		}
		for _, claim := range disc.Claims {
			if !issued[claim] {
				t.Errorf("claims_supported lists %q, which neither the ID token nor userinfo carries", claim)
			}
		}
		for claim := range issued {
			if !slices.Contains(disc.Claims, claim) {
				t.Errorf("%q is issued but not in claims_supported %v", claim, disc.Claims)
			}
		}
	})
}
