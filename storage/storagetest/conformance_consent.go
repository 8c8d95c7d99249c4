package storagetest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mxidp/mxidp/storage"
)

func testConsentIsRememberedReplacedAndDeletedWithTheUser(t *testing.T, open Opener) {
	s := open(t, storage.Options{})
	ctx := context.Background()
	if _, err := s.CreateUser(ctx, alice()); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ConsentedScopes(ctx, "u-alice", "synapse"); err != nil || got != nil {
		t.Fatalf("no decision yet: %v, %v", got, err)
	}
	if err := s.SaveConsent(ctx, "u-alice", "synapse", []string{"openid", "profile"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveConsent(ctx, "u-alice", "synapse", []string{"openid", "profile", "email"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ConsentedScopes(ctx, "u-alice", "synapse"); strings.Join(got, " ") != "openid profile email" {
		t.Errorf("after the second decision: %v", got)
	}
	if got, _ := s.ConsentedScopes(ctx, "u-alice", "other"); got != nil {
		t.Errorf("a decision for one client applies to another: %v", got)
	}
	if err := s.DeleteUser(ctx, "u-alice"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ConsentedScopes(ctx, "u-alice", "synapse"); got != nil {
		t.Errorf("consent outlived its user: %v", got)
	}
}

func testClientNameRoundTrips(t *testing.T, open Opener) {
	s := open(t, storage.Options{})
	ctx := context.Background()
	c := synapse()
	c.Name = "Example Chat"
	if _, err := s.CreateClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ClientByID(ctx, "synapse"); got.Name != "Example Chat" {
		t.Errorf("name %q after create", got.Name)
	}
	if _, err := s.UpdateClient(ctx, "synapse", func(c *storage.Client) error { c.Name = "Renamed"; return nil }); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ClientByID(ctx, "synapse"); got.Name != "Renamed" || got.RedirectURIs[0] != c.RedirectURIs[0] {
		t.Errorf("after update: %+v", got)
	}
	if _, err := s.ClientByID(ctx, "nobody"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("missing client: %v", err)
	}
}
