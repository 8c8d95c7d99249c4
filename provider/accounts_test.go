package provider_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/mxidp/mxidp/provider"
	"github.com/mxidp/mxidp/provider/password"
	"github.com/mxidp/mxidp/storage"
	"github.com/mxidp/mxidp/storage/storagetest"
)

var cheap = password.Params{Time: 1, MemoryKiB: 64, Threads: 1}

func forEachBackend(t *testing.T, test func(t *testing.T, a *provider.Accounts)) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			test(t, &provider.Accounts{Store: storagetest.Open(t, backend, storage.Options{}), Hash: cheap, ServerName: "example.org"})
		})
	}
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestAddUserNormalisesAndHashes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *provider.Accounts) {
		ctx := context.Background()
		u, err := a.AddUser(ctx, provider.NewUser{Username: "Alice", Email: " Alice@Example.ORG ", DisplayName: " Alice L. ", Password: "correct horse"})
		if err != nil {
			t.Fatal(err)
		}
		if u.Username != "alice" || u.Email != "alice@example.org" || !u.EmailVerified || u.DisplayName != "Alice L." || !uuidV4.MatchString(u.ID) {
			t.Errorf("AddUser = %+v", u)
		}
		if ok, err := password.Verify(u.PasswordHash, "correct horse"); !ok || err != nil || strings.Contains(u.PasswordHash, "correct") {
			t.Errorf("stored hash %q does not verify the password (%v) or contains it", u.PasswordHash, err)
		}
		if _, err := a.AddUser(ctx, provider.NewUser{Username: "ALICE", Password: "another pw"}); err == nil || !strings.Contains(err.Error(), "exists") {
			t.Errorf("second ALICE: err = %v, want 'exists'", err)
		}
		for name, nu := range map[string]provider.NewUser{
			"short password": {Username: "bob", Password: "short"},
			"bad username":   {Username: "bob smith", Password: "long enough"},
			"bad e-mail":     {Username: "bob", Email: "Bob <bob@example.org>", Password: "long enough"},
			"bad phone":      {Username: "bob", MSISDN: "+44 7700 CALLME", Password: "long enough"},
			"http avatar":    {Username: "bob", AvatarURL: "https://example.org/bob.png", Password: "long enough"},
		} {
			if _, err := a.AddUser(ctx, nu); err == nil {
				t.Errorf("%s accepted", name)
			}
		}
		noMail, err := a.AddUser(ctx, provider.NewUser{Username: "carol", Password: "long enough"})
		if err != nil || noMail.EmailVerified || noMail.ID == u.ID {
			t.Errorf("user without e-mail: %+v, %v", noMail, err)
		}
	})
}

func TestProfileNormalisesPhoneAndAvatarAndRefusesTakenNumbers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *provider.Accounts) {
		ctx := context.Background()
		u, err := a.AddUser(ctx, provider.NewUser{Username: "alice", MSISDN: "+44 (7700) 900-123", AvatarURL: "mxc://example.org/AvatarAlice", Password: "long enough"})
		if err != nil || u.MSISDN != "447700900123" || u.AvatarURL != "mxc://example.org/AvatarAlice" {
			t.Fatalf("AddUser = %+v, %v; want msisdn 447700900123 and the avatar", u, err)
		}
		if _, err := a.AddUser(ctx, provider.NewUser{Username: "bob", MSISDN: "447700900123", Password: "long enough"}); err == nil || !strings.Contains(err.Error(), "phone number 447700900123") {
			t.Errorf("second owner of the number: err = %v, want it named", err)
		}
		name, phone, empty := " Alice L. ", "+1 555 000 1111", ""
		u, err = a.UpdateProfile(ctx, "Alice", provider.Profile{DisplayName: &name, MSISDN: &phone, AvatarURL: &empty})
		if err != nil || u.DisplayName != "Alice L." || u.MSISDN != "15550001111" || u.AvatarURL != "" {
			t.Errorf("UpdateProfile = %+v, %v", u, err)
		}
		bad := "mxc://"
		if _, err := a.UpdateProfile(ctx, "alice", provider.Profile{AvatarURL: &bad}); err == nil {
			t.Error("mxc:// without server and media ID accepted")
		}
		if got, _ := a.User(ctx, "alice"); got.MSISDN != "15550001111" || got.DisplayName != "Alice L." {
			t.Errorf("after a refused change the user is %+v", got)
		}
	})
}

func TestPasswdDisableDeleteFindTheUserByTypedName(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *provider.Accounts) {
		ctx := context.Background()
		orig, err := a.AddUser(ctx, provider.NewUser{Username: "alice", Password: "first password"})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.SetPassword(ctx, "Alice", "second password"); err != nil {
			t.Fatal(err)
		}
		u, _ := a.User(ctx, "alice")
		if ok, _ := password.Verify(u.PasswordHash, "second password"); !ok {
			t.Error("new password does not verify")
		}
		if err := a.SetDisabled(ctx, "alice", true); err != nil {
			t.Fatal(err)
		}
		if u, _ := a.User(ctx, "alice"); !u.Disabled {
			t.Error("user not disabled")
		}
		if err := a.DeleteUser(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		if err := a.SetDisabled(ctx, "alice", false); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("enable deleted user: err = %v, want ErrNotFound", err)
		}
		again, err := a.AddUser(ctx, provider.NewUser{Username: "alice", Password: "third password"})
		if err != nil || again.ID == orig.ID {
			t.Errorf("re-created alice has ID %s (old %s), %v: IDs must never be reused", again.ID, orig.ID, err)
		}
	})
}

func TestAddClientStoresOnlyTheSecretHash(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *provider.Accounts) {
		ctx := context.Background()
		c, secret, err := a.AddClient(ctx, provider.NewClient{
			ID: "synapse", RedirectURIs: []string{"https://matrix.example.org/_synapse/client/oidc/callback"},
			BackchannelLogoutURI: "https://matrix.example.org/_synapse/client/oidc/backchannel_logout", SkipConsent: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		if provider.CheckClientSecret(secret) != nil || strings.Contains(c.SecretHash, secret) || !provider.VerifyClientSecret(c.SecretHash, secret) {
			t.Errorf("secret %q, stored %q", secret, c.SecretHash)
		}
		stored, _ := a.Store.ClientByID(ctx, "synapse")
		if stored.SecretHash != c.SecretHash || !stored.SkipConsent || stored.BackchannelLogoutURI == "" {
			t.Errorf("stored client %+v", stored)
		}

		newSecret, err := a.RotateClientSecret(ctx, "synapse", "")
		if err != nil || newSecret == secret {
			t.Fatalf("rotate: %q, %v", newSecret, err)
		}
		stored, _ = a.Store.ClientByID(ctx, "synapse")
		if provider.VerifyClientSecret(stored.SecretHash, secret) || !provider.VerifyClientSecret(stored.SecretHash, newSecret) {
			t.Error("after rotation the old secret still works or the new one does not")
		}

		pub, pubSecret, err := a.AddClient(ctx, provider.NewClient{ID: "element", Public: true, RedirectURIs: []string{"https://app.example.org/"}})
		if err != nil || pubSecret != "" || pub.SecretHash != "" {
			t.Errorf("public client: %+v, secret %q, %v", pub, pubSecret, err)
		}
		if _, err := a.RotateClientSecret(ctx, "element", ""); err == nil {
			t.Error("rotated the secret of a public client")
		}
		chosen := strings.Repeat("Ab3-", 8)
		if _, got, err := a.AddClient(ctx, provider.NewClient{ID: "chosen", Secret: chosen, RedirectURIs: []string{"https://x.example/cb"}}); err != nil || got != chosen {
			t.Errorf("chosen secret: %q, %v", got, err)
		}
		for name, nc := range map[string]provider.NewClient{
			"duplicate":        {ID: "synapse", RedirectURIs: []string{"https://x.example/cb"}},
			"no redirect":      {ID: "c1"},
			"http redirect":    {ID: "c2", RedirectURIs: []string{"http://x.example/cb"}},
			"weak secret":      {ID: "c3", Secret: "hunter2", RedirectURIs: []string{"https://x.example/cb"}},
			"public w/ secret": {ID: "c4", Public: true, Secret: chosen, RedirectURIs: []string{"https://x.example/cb"}},
			"bad backchannel":  {ID: "c5", RedirectURIs: []string{"https://x.example/cb"}, BackchannelLogoutURI: "x"},
			"bad id":           {ID: "a b", RedirectURIs: []string{"https://x.example/cb"}},
		} {
			if _, _, err := a.AddClient(ctx, nc); err == nil {
				t.Errorf("%s accepted", name)
			}
		}
		if err := a.RemoveClient(ctx, "synapse"); err != nil {
			t.Fatal(err)
		}
		if err := a.RemoveClient(ctx, "synapse"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("second remove: %v", err)
		}
	})
}
