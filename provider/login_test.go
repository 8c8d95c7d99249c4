package provider_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/mxidp/mxidp/provider"
	"github.com/mxidp/mxidp/provider/password"
	"github.com/mxidp/mxidp/storage"
)

func newLogin(a *provider.Accounts) *provider.Login {
	return &provider.Login{Store: a.Store, Hash: a.Hash, Lifetimes: provider.DefaultLifetimes, Logger: slog.New(slog.DiscardHandler)}
}

func TestCheckPasswordAcceptsOnlyTheRightPasswordOfAnEnabledUser(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *provider.Accounts) {
		ctx := context.Background()
		l := newLogin(a)
		if _, err := a.AddUser(ctx, provider.NewUser{Username: "alice", Email: "alice@example.org", Password: "right password"}); err != nil {
			t.Fatal(err)
		}
		for _, login := range []string{"alice", " Alice ", "alice@example.org", "ALICE@example.org"} {
			if u, err := l.CheckPassword(ctx, provider.Attempt{Login: login, Password: "right password"}); err != nil || u.Username != "alice" {
				t.Errorf("login %q: %v", login, err)
			}
		}
		for name, c := range map[string][2]string{
			"wrong password": {"alice", "wrong password"},
			"unknown user":   {"bob", "right password"},
			"unknown e-mail": {"bob@example.org", "right password"},
			"empty":          {"", ""},
		} {
			if _, err := l.CheckPassword(ctx, provider.Attempt{Login: c[0], Password: c[1]}); !errors.Is(err, provider.ErrBadCredentials) {
				t.Errorf("%s: err = %v, want ErrBadCredentials", name, err)
			}
		}
		a.SetDisabled(ctx, "alice", true)
		if _, err := l.CheckPassword(ctx, provider.Attempt{Login: "alice", Password: "right password"}); !errors.Is(err, provider.ErrBadCredentials) {
			t.Errorf("disabled user: err = %v, want ErrBadCredentials", err)
		}
	})
}

func TestCheckPasswordUpgradesAnOldHashOnSuccessOnly(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *provider.Accounts) {
		ctx := context.Background()
		old := password.Params{Time: 1, MemoryKiB: 32, Threads: 1}
		oldHash, _ := password.Hash("right password", old)
		u, err := a.Store.CreateUser(ctx, storage.User{ID: "u1", Username: "carol", PasswordHash: oldHash})
		if err != nil {
			t.Fatal(err)
		}
		l := newLogin(a)
		l.CheckPassword(ctx, provider.Attempt{Login: "carol", Password: "wrong password"})
		if got, _ := a.Store.UserByID(ctx, u.ID); got.PasswordHash != oldHash {
			t.Error("a failed login changed the hash")
		}
		if _, err := l.CheckPassword(ctx, provider.Attempt{Login: "carol", Password: "right password"}); err != nil {
			t.Fatal(err)
		}
		got, _ := a.Store.UserByID(ctx, u.ID)
		if got.PasswordHash == oldHash || password.NeedsRehash(got.PasswordHash, a.Hash) {
			t.Errorf("hash not upgraded to the current cost: %s", got.PasswordHash)
		}
		if ok, _ := password.Verify(got.PasswordHash, "right password"); !ok {
			t.Error("the upgraded hash does not verify the password")
		}
	})
}

func TestUnverifiedEmailIsNoLoginName(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *provider.Accounts) {
		ctx := context.Background()
		h, _ := password.Hash("right password", a.Hash)
		a.Store.CreateUser(ctx, storage.User{ID: "u2", Username: "dave", Email: "dave@example.org", EmailVerified: false, PasswordHash: h})
		if _, err := newLogin(a).CheckPassword(ctx, provider.Attempt{Login: "dave@example.org", Password: "right password"}); !errors.Is(err, provider.ErrBadCredentials) {
			t.Errorf("login by unverified e-mail: err = %v, want ErrBadCredentials", err)
		}
	})
}

func TestEveryLoginRotatesTheSessionAndAnotherUsersEnds(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *provider.Accounts) {
		ctx := context.Background()
		l := newLogin(a)
		l.OpenID = &provider.OpenID{Store: a.Store, Logger: l.Logger}
		alice, _ := a.AddUser(ctx, provider.NewUser{Username: "alice", Password: "right password"})
		bob, _ := a.AddUser(ctx, provider.NewUser{Username: "bob", Password: "right password"})
		s1, cookie, err := l.StartSession(ctx, nil, alice)
		if err != nil || cookie == "" {
			t.Fatal(err)
		}
		if got, err := l.Session(ctx, cookie); err != nil || got.ID != s1.ID {
			t.Fatalf("Session(cookie) = %+v, %v", got, err)
		}
		s2, cookie2, err := l.StartSession(ctx, &s1, alice)
		if err != nil || s2.ID == s1.ID || cookie2 == "" || cookie2 == cookie {
			t.Fatalf("re-login of the same user: sid %s (was %s), new cookie %q, %v; want a new sid and cookie", s2.ID, s1.ID, cookie2, err)
		}
		if _, err := l.Session(ctx, cookie); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("the cookie from before the re-login still works: %v", err)
		}
		if got, err := l.Session(ctx, cookie2); err != nil || got.ID != s2.ID {
			t.Errorf("Session(new cookie) = %+v, %v", got, err)
		}
		// Ending the new session ends the one it replaced: clients that
		// know the old sid are told too.
		ended, err := a.Store.EndSessions(ctx, s2.ID, true)
		if err != nil || len(ended) != 2 {
			t.Errorf("ending the rotated session ended %+v, %v; want it and its predecessor", ended, err)
		}
		s1, cookie, _ = l.StartSession(ctx, nil, alice)
		s3, cookie3, err := l.StartSession(ctx, &s1, bob)
		if err != nil || s3.ID == s1.ID || cookie3 == "" {
			t.Fatalf("login as another user: %+v, %v", s3, err)
		}
		if _, err := l.Session(ctx, cookie); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("alice's session survived bob's login in the same browser: %v", err)
		}
		a.SetDisabled(ctx, "bob", true)
		if _, err := l.Session(ctx, cookie3); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("a disabled user's session still works: %v", err)
		}
	})
}

func TestSatisfiedByHonoursPromptLoginAndMaxAge(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	l := &provider.Login{Now: func() time.Time { return now }}
	s := storage.Session{AuthTime: now.Add(-10 * time.Minute)}
	sixty, sixHundredOne := int64(60), int64(601)
	for name, c := range map[string]struct {
		a    storage.AuthRequest
		want bool
	}{
		"plain":               {storage.AuthRequest{}, true},
		"prompt=login":        {storage.AuthRequest{Prompt: []string{"login"}}, false},
		"max_age too short":   {storage.AuthRequest{MaxAge: &sixty}, false},
		"max_age long enough": {storage.AuthRequest{MaxAge: &sixHundredOne}, true},
	} {
		if got := l.SatisfiedBy(c.a, s); got != c.want {
			t.Errorf("%s: SatisfiedBy = %v, want %v", name, got, c.want)
		}
	}
}
