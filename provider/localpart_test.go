package provider_test

import (
	"strings"
	"testing"

	"github.com/mxidp/mxidp/provider"
)

func TestCanonicalLocalpart(t *testing.T) {
	long := strings.Repeat("a", 255-len("@:example.org"))
	for _, tc := range []struct {
		in, want string
		problem  string // part of the error, "" when accepted
	}{
		{"alice", "alice", ""},
		{"Alice", "alice", ""},
		{"  Bob.Smith ", "bob.smith", ""},
		{"a_b=c-d/e.f", "a_b=c-d/e.f", ""},
		{"user1", "user1", ""},
		{long, long, ""},
		{long + "a", "", "too long"},
		{"", "", "empty"},
		{"al ice", "", "allows only"},
		{"alice+tag", "", "allows only"},
		{"alice@example.org", "", "allows only"},
		{"jürgen", "", "allows only"},
		{"\u212Aelvin", "", "allows only"},   // the Kelvin sign, which Unicode lower-cases to k
		{"\u0130stanbul", "", "allows only"}, // dotted capital I
		{"_bridge", "", "starts with"},
		{"12345", "", "all digits"},
	} {
		got, err := provider.CanonicalLocalpart(tc.in, "example.org")
		switch {
		case tc.problem == "" && (err != nil || got != tc.want):
			t.Errorf("CanonicalLocalpart(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		case tc.problem != "" && (err == nil || !strings.Contains(err.Error(), tc.problem)):
			t.Errorf("CanonicalLocalpart(%q) = %q, %v; want an error about %q", tc.in, got, err, tc.problem)
		}
	}
}

func TestClientSecretsAreUnreservedStrongAndHashed(t *testing.T) {
	s := provider.NewClientSecret()
	if err := provider.CheckClientSecret(s); err != nil {
		t.Fatalf("a generated secret fails the check: %v", err)
	}
	if s == provider.NewClientSecret() {
		t.Fatal("two generated secrets are equal")
	}
	h := provider.HashClientSecret(s)
	if strings.Contains(h, s) || !provider.VerifyClientSecret(h, s) {
		t.Fatalf("hash %q of %q: contains the secret or does not verify", h, s)
	}
	if provider.VerifyClientSecret(h, s+"x") || provider.VerifyClientSecret(h, "") || provider.VerifyClientSecret("", s) {
		t.Fatal("a wrong secret verified")
	}
	for _, bad := range []string{"short", strings.Repeat("a", 31), strings.Repeat("a", 31) + "%", strings.Repeat("a", 31) + "+"} {
		if provider.CheckClientSecret(bad) == nil {
			t.Errorf("secret %q accepted", bad)
		}
	}
	for id, ok := range map[string]bool{"synapse": true, "matrix.example-org_1~": true, "": false, "a b": false, "a%20b": false, strings.Repeat("x", 129): false} {
		if (provider.CheckClientID(id) == nil) != ok {
			t.Errorf("CheckClientID(%q) accepted = %v, want %v", id, !ok, ok)
		}
	}
}

func TestCheckClientURI(t *testing.T) {
	for uri, ok := range map[string]bool{
		"https://matrix.example.org/_synapse/client/oidc/callback": true,
		"http://localhost:8008/_synapse/client/oidc/callback":      true,
		"http://127.0.0.1:8008/cb":                                 true,
		"http://[::1]:8008/cb":                                     true,
		"http://matrix.example.org/cb":                             false,
		"https://matrix.example.org/cb#frag":                       false,
		"/relative":                                                false,
		"javascript:alert(1)":                                      false,
		"ftp://example.org/":                                       false,
	} {
		if err := provider.CheckClientURI(uri); (err == nil) != ok {
			t.Errorf("CheckClientURI(%q) = %v, want accepted %v", uri, err, ok)
		}
	}
}
