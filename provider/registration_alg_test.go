package provider_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/mxidp/mxidp/provider"
)

// A dynamic client may ask for its ID tokens and its userinfo to be signed
// with any of the ring's algorithms (OpenID Connect Dynamic Client
// Registration §2); without asking it gets RS256 ID tokens and JSON.
func TestRegistrationTakesTheSigningAlgorithmsTheRingOffers(t *testing.T) {
	for _, tc := range []struct {
		name              string
		fields            map[string]string
		idToken, userinfo string
	}{
		{"none asked", nil, "RS256", ""},
		{"null is absent", map[string]string{"id_token_signed_response_alg": "null", "userinfo_signed_response_alg": "null"}, "RS256", ""},
		{"RS256", map[string]string{"id_token_signed_response_alg": `"RS256"`}, "RS256", ""},
		{"ES256", map[string]string{"id_token_signed_response_alg": `"ES256"`}, "ES256", ""},
		{"EdDSA", map[string]string{"id_token_signed_response_alg": `"EdDSA"`}, "EdDSA", ""},
		{"signed userinfo", map[string]string{"id_token_signed_response_alg": `"ES256"`, "userinfo_signed_response_alg": `"EdDSA"`}, "ES256", "EdDSA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := provider.ParseRegistration([]byte(registration(tc.fields)))
			if err != nil {
				t.Fatal(err)
			}
			if r.IDTokenAlg != tc.idToken || r.UserinfoAlg != tc.userinfo {
				t.Errorf("parsed %q %q, want %q %q", r.IDTokenAlg, r.UserinfoAlg, tc.idToken, tc.userinfo)
			}
		})
	}
}

// Attack: a client that asks for unsigned tokens, a MAC keyed with a
// secret (a public client has none; one that had could forge what it
// verifies), an algorithm of another spelling or strength, or sends
// something that is not a string, is refused with invalid_client_metadata
// naming the field: never registered with a default in its place.
func TestRegistrationRefusesSigningAlgorithmsThatAreNotOffered(t *testing.T) {
	for _, field := range []string{"id_token_signed_response_alg", "userinfo_signed_response_alg"} {
		for value, says := range map[string]string{
			`"none"`:                              "not offered",
			`"None"`:                              "not offered",
			`"HS256"`:                             "not offered",
			`"HS512"`:                             "not offered",
			`"rs256"`:                             "not offered",
			`"es256"`:                             "not offered",
			`"Ed25519"`:                           "not offered",
			`"RS512"`:                             "not offered",
			`"PS256"`:                             "not offered",
			`"ES256K"`:                            "not offered",
			`" ES256"`:                            "not offered",
			`"ES256\u0000"`:                       "not offered",
			`"ES256,RS256"`:                       "not offered",
			`""`:                                  "", // empty: the default, see below
			`256`:                                 "must be a string",
			`true`:                                "must be a string",
			`["ES256"]`:                           "must be a string",
			`{"alg":"ES256"}`:                     "must be a string",
			`"` + strings.Repeat("A", 5000) + `"`: "not offered",
		} {
			t.Run(field+"="+value[:min(len(value), 20)], func(t *testing.T) {
				r, err := provider.ParseRegistration([]byte(registration(map[string]string{field: value})))
				if says == "" {
					// An empty string is no request: RFC 7591 §2 lets a
					// client omit the field; it is answered with the default.
					if err != nil || (field == "id_token_signed_response_alg" && r.IDTokenAlg != "RS256") || r.UserinfoAlg != "" {
						t.Errorf("empty %s: %+v, %v", field, r, err)
					}
					return
				}
				var re *provider.RegistrationError
				if !errors.As(err, &re) || re.Code != provider.ErrorInvalidClientMetadata {
					t.Fatalf("%s = %s: err %v, want invalid_client_metadata (parsed %q %q)", field, value, err, r.IDTokenAlg, r.UserinfoAlg)
				}
				if !strings.Contains(re.Description, field) || !strings.Contains(re.Description, says) {
					t.Errorf("%s = %s: description %q, want it to name the field and say %q", field, value, re.Description, says)
				}
				if len(re.Description) > 300 {
					t.Errorf("the description quotes the whole value back: %d bytes", len(re.Description))
				}
			})
		}
	}
}
