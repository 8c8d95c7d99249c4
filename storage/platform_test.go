package storage_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/mxidp/mxidp/storage"
	"github.com/mxidp/mxidp/storage/storagetest"
)

// localpart is a stand-in for provider.CanonicalLocalpart (which storage
// cannot import): lower-case, no spaces.
func localpart(username string) (string, error) {
	if username == "" || strings.ContainsAny(username, " @") {
		return "", fmt.Errorf("username %q is no Matrix localpart", username)
	}
	return strings.ToLower(username), nil
}

func djangoPlatform(t *testing.T, backend string) *storage.Platform {
	t.Helper()
	url, db := storagetest.DjangoPlatform(t, backend)
	storagetest.AddDjangoUsers(t, db,
		storagetest.DjangoUser{ID: 1, Username: "Alice", Password: "hash-1", First: "Alice", Last: "Liddell", Email: "Alice.Liddell@Example.COM", EmailVerified: true, Active: true, Groups: []string{"staff", "matrix-admins"}},
		storagetest.DjangoUser{ID: 2, Username: "bob", Password: "hash-2", First: "Bob", Last: "Builder", Email: "bob@example.net", Active: true},
		storagetest.DjangoUser{ID: 3, Username: "carol", Password: "hash-3", First: "Carol", Email: "carol@example.net", EmailVerified: true, Active: false},
		storagetest.DjangoUser{ID: 4, Username: "Max Mustermann", Password: "hash-4", Active: true},
		storagetest.DjangoUser{ID: 5, Username: "twin1", Password: "hash-5", Email: "twins@example.org", EmailVerified: true, Active: true},
		storagetest.DjangoUser{ID: 6, Username: "twin2", Password: "hash-6", Email: "twins@example.org", EmailVerified: true, Active: true},
		storagetest.DjangoUser{ID: 7, Username: "percent", Password: "hash-7", First: "100%", Last: "Sure", Active: true},
	)
	p, err := storage.OpenPlatform(context.Background(), url, storagetest.DjangoQueries(backend), storage.PlatformOptions{Localpart: localpart})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestPlatformReadsADjangoUserTable(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			p := djangoPlatform(t, backend)
			ctx := context.Background()
			checkFindsAlice(t, p, "hash-1")
			if g, err := p.UserGroups(ctx, "1"); err != nil || !reflect.DeepEqual(g, []string{"matrix-admins", "staff"}) {
				t.Errorf("UserGroups = %v, %v", g, err)
			}
			if u, err := p.UserByID(ctx, "3"); err != nil || !u.Disabled {
				t.Errorf("carol (is_active false) = %+v, %v; want disabled", u, err)
			}
			checkNotFound(t, map[string]func() (storage.User, error){
				"an unverified address":           func() (storage.User, error) { return p.UserByLogin(ctx, "bob@example.net") },
				"an address two users share":      func() (storage.User, error) { return p.UserByLogin(ctx, "twins@example.org") },
				"a username that is no localpart": func() (storage.User, error) { return p.UserByID(ctx, "4") },
				"a localpart spelled another way": func() (storage.User, error) { return p.UserByUsername(ctx, "Alice") },
				"an id that does not exist":       func() (storage.User, error) { return p.UserByID(ctx, "99") },
				"a phone number (no such query)":  func() (storage.User, error) { return p.UserByMSISDN(ctx, "447700900123") },
			})
		})
	}
}

// checkFindsAlice looks up the test platforms' alice (id 1) every way a
// user is looked up.
func checkFindsAlice(t *testing.T, p *storage.Platform, hash string) {
	t.Helper()
	ctx := context.Background()
	alice := storage.User{ID: "1", Username: "alice", Email: "alice.liddell@example.com", EmailVerified: true,
		DisplayName: "Alice Liddell", PasswordHash: hash}
	for name, get := range map[string]func() (storage.User, error){
		"by login name":       func() (storage.User, error) { return p.UserByLogin(ctx, " ALICE ") },
		"by verified address": func() (storage.User, error) { return p.UserByLogin(ctx, "alice.liddell@example.com") },
		"by id":               func() (storage.User, error) { return p.UserByID(ctx, "1") },
		"by localpart":        func() (storage.User, error) { return p.UserByUsername(ctx, "alice") },
		"by e-mail":           func() (storage.User, error) { return p.UserByEmail(ctx, "ALICE.liddell@example.com") },
		"by e-mail, in a bulk": func() (storage.User, error) {
			m, err := p.UsersByEmails(ctx, []string{"x@y", "alice.liddell@example.com"})
			return m["alice.liddell@example.com"], err
		},
	} {
		if got, err := get(); err != nil || got != alice {
			t.Errorf("%s: %+v, %v; want %+v", name, got, err, alice)
		}
	}
}

// checkNotFound requires ErrNotFound of every lookup.
func checkNotFound(t *testing.T, lookups map[string]func() (storage.User, error)) {
	t.Helper()
	for name, get := range lookups {
		if u, err := get(); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%s: %+v, %v; want ErrNotFound", name, u, err)
		}
	}
}

func TestPlatformSearchEscapesWildcardsAndSkipsDisabled(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			checkSearches(t, djangoPlatform(t, backend), []searchCase{
				{[]string{"liddell"}, []string{"alice"}},
				{[]string{"B"}, []string{"bob"}},
				{[]string{"carol"}, []string{}},      // disabled
				{[]string{"%"}, []string{"percent"}}, // only the literal %
				{[]string{"_"}, []string{}},          // matches no one literally
				{[]string{"builder", "bo"}, []string{"bob"}},
				{[]string{"builder", "alice"}, []string{}}, // every term must match
				{[]string{"twin"}, []string{"twin1", "twin2"}},
			})
		})
	}
}

// searchCase is a directory search and the usernames it must find.
type searchCase struct{ terms, want []string }

// checkSearches runs each search with a limit of 10, and "twin" with a
// limit of 1 (every test platform has twin1 and twin2).
func checkSearches(t *testing.T, p *storage.Platform, cases []searchCase) {
	t.Helper()
	ctx := context.Background()
	for _, tc := range cases {
		got, err := p.SearchUsers(ctx, tc.terms, 10)
		if err != nil {
			t.Fatal(err)
		}
		names := []string{}
		for _, u := range got {
			names = append(names, u.Username)
		}
		if !reflect.DeepEqual(names, tc.want) {
			t.Errorf("SearchUsers(%q) = %v; want %v", tc.terms, names, tc.want)
		}
	}
	if got, _ := p.SearchUsers(ctx, []string{"twin"}, 1); len(got) != 1 {
		t.Errorf("limit 1 gave %d users", len(got))
	}
}

func TestPlatformRefusesQueriesThatDoNotFitWithTheFix(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			url, _ := storagetest.DjangoPlatform(t, backend)
			q := storagetest.DjangoQueries(backend)
			q.ByLogin = strings.Replace(q.ByLogin, "u.password AS password_hash", "u.password", 1)
			q.ByID = strings.Replace(q.ByID, "SELECT u.id,", "SELECT u.id AS user_id,", 1)
			q.Search = "SELECT nonsense FROM nowhere"
			_, err := storage.OpenPlatform(context.Background(), url, q, storage.PlatformOptions{Localpart: localpart})
			if err == nil {
				t.Fatal("queries with wrong columns accepted")
			}
			msg := err.Error()
			for _, want := range []string{
				`users.platform.queries.by_login: returns no column "password_hash"`, "add AS password_hash",
				`users.platform.queries.by_id: returns no column "id"`, "user_id",
				"users.platform.queries.search: does not run",
			} {
				if !strings.Contains(msg, want) {
					t.Errorf("error lacks %q:\n%s", want, msg)
				}
			}
			if strings.Contains(msg, "by_email") {
				t.Errorf("the correct by_email query is reported:\n%s", msg)
			}
		})
	}
}

func TestPlatformConnectionRefusesWrites(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			url, db := storagetest.DjangoPlatform(t, backend)
			storagetest.AddDjangoUsers(t, db, storagetest.DjangoUser{ID: 1, Username: "alice", Password: "h", Active: true})
			q := storagetest.DjangoQueries(backend)
			// A "query" that writes: the read-only connection must refuse it.
			q.ByID = `UPDATE auth_user SET is_active = FALSE WHERE id = CAST($1 AS INTEGER) RETURNING id, username`
			p, err := storage.OpenPlatform(context.Background(), url, q, storage.PlatformOptions{Localpart: localpart})
			if err == nil {
				_, err = p.UserByID(context.Background(), "1")
				p.Close()
			}
			if err == nil || !strings.Contains(strings.ToLower(err.Error()), "read") {
				t.Errorf("a writing query ran: err = %v", err)
			}
			var active bool
			if err := db.QueryRow(`SELECT is_active FROM auth_user WHERE id = 1`).Scan(&active); err != nil || !active {
				t.Errorf("the platform row changed: active = %v, %v", active, err)
			}
		})
	}
}
