package storagetest

import (
	"context"
	"maps"
	"slices"
	"testing"

	"github.com/mxidp/mxidp/storage"
)

// testPasswordLoginIsAllowedUntilRefusedPerAccount: an account without a
// setting may log in by password; refusing and allowing again change that
// account alone, for IDs of mxidp's users and of platform users (which
// the user table does not hold) alike.
func testPasswordLoginIsAllowedUntilRefusedPerAccount(t *testing.T, open Opener) {
	s := open(t, storage.Options{})
	ctx := context.Background()
	if _, err := s.CreateUser(ctx, alice()); err != nil {
		t.Fatal(err)
	}
	const platformUser = "42" // a platform's user ID: no row in users
	allowed := func(id string) bool {
		t.Helper()
		ok, err := s.PasswordLoginAllowed(ctx, id)
		if err != nil {
			t.Fatalf("PasswordLoginAllowed(%q): %v", id, err)
		}
		return ok
	}
	refused := func() []string {
		t.Helper()
		m, err := s.PasswordLoginsRefused(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return slices.Sorted(maps.Keys(m))
	}
	for _, id := range []string{"u-alice", platformUser, "nobody"} {
		if !allowed(id) {
			t.Errorf("%s without a setting is refused", id)
		}
	}
	if got := refused(); len(got) != 0 {
		t.Errorf("refused before any setting: %v", got)
	}
	for _, id := range []string{"u-alice", platformUser} {
		for range 2 { // setting the same value again changes nothing
			if err := s.SetPasswordLogin(ctx, id, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	if allowed("u-alice") || allowed(platformUser) || !allowed("nobody") {
		t.Errorf("after refusing alice and %s: alice %v, %s %v, nobody %v", platformUser, allowed("u-alice"), platformUser, allowed(platformUser), allowed("nobody"))
	}
	if got := refused(); !slices.Equal(got, []string{platformUser, "u-alice"}) {
		t.Errorf("refused = %v", got)
	}
	if err := s.SetPasswordLogin(ctx, "u-alice", true); err != nil {
		t.Fatal(err)
	}
	if !allowed("u-alice") || allowed(platformUser) {
		t.Errorf("after allowing alice again: alice %v, %s %v", allowed("u-alice"), platformUser, allowed(platformUser))
	}
	if got := refused(); !slices.Equal(got, []string{platformUser}) {
		t.Errorf("refused after allowing alice = %v", got)
	}
}
