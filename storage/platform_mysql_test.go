package storage_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/mxidp/mxidp/storage"
	"github.com/mxidp/mxidp/storage/storagetest"
)

// The platform on MySQL/MariaDB, with a WordPress database (MXIDP_TEST_MYSQL;
// skipped without it). The hashes are phpass-looking text: checking them
// is not this package's job.

func wordpressPlatform(t *testing.T) *storage.Platform {
	t.Helper()
	url, db := storagetest.WordPressPlatform(t)
	storagetest.AddWordPressUsers(t, db,
		storagetest.WordPressUser{ID: 1, Login: "Alice", Pass: "$P$Bhash1", Email: "Alice.Liddell@Example.COM", DisplayName: "Alice Liddell", Roles: []string{"administrator", "editor"}},
		storagetest.WordPressUser{ID: 2, Login: "bob", Pass: "$P$Bhash2", Email: "bob@example.net", DisplayName: "Bob Builder", Roles: []string{"subscriber"}},
		storagetest.WordPressUser{ID: 3, Login: "Max Mustermann", Pass: "$P$Bhash3", Email: "max@example.net", DisplayName: "Max"},
		storagetest.WordPressUser{ID: 4, Login: "twin1", Pass: "$P$Bhash4", Email: "twins@example.org", DisplayName: "twin1"},
		storagetest.WordPressUser{ID: 5, Login: "twin2", Pass: "$P$Bhash5", Email: "twins@example.org", DisplayName: "twin2"},
		storagetest.WordPressUser{ID: 6, Login: "percent", Pass: "$P$Bhash6", Email: "percent@example.org", DisplayName: "100% Sure", Roles: []string{"shop_manager"}},
		storagetest.WordPressUser{ID: 7, Login: "under", Pass: "$P$Bhash7", Email: "under@example.org", DisplayName: "x_y"},
	)
	p, err := storage.OpenPlatform(context.Background(), url, storagetest.WordPressQueries(), storage.PlatformOptions{Localpart: localpart})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestPlatformReadsAWordPressUserTableOnMySQL(t *testing.T) {
	p := wordpressPlatform(t)
	ctx := context.Background()
	checkFindsAlice(t, p, "$P$Bhash1")
	for id, want := range map[string][]string{
		"1": {"administrator", "editor"},
		"2": {"subscriber"},
		"6": {}, // a role WordPress does not ship
		"5": {},
	} {
		if g, err := p.UserGroups(ctx, id); err != nil || !reflect.DeepEqual(g, want) {
			t.Errorf("UserGroups(%s) = %#v, %v; want %v", id, g, err, want)
		}
	}
	checkNotFound(t, map[string]func() (storage.User, error){
		"an address two users share":      func() (storage.User, error) { return p.UserByLogin(ctx, "twins@example.org") },
		"a login that is no localpart":    func() (storage.User, error) { return p.UserByID(ctx, "3") },
		"a localpart spelled another way": func() (storage.User, error) { return p.UserByUsername(ctx, "Alice") },
		"an id that does not exist":       func() (storage.User, error) { return p.UserByID(ctx, "99") },
		"an id with trailing text":        func() (storage.User, error) { return p.UserByID(ctx, "1abc") },
		"an id that is no number":         func() (storage.User, error) { return p.UserByID(ctx, "alice") },
	})
}

func TestPlatformSearchEscapesWildcardsOnMySQL(t *testing.T) {
	checkSearches(t, wordpressPlatform(t), []searchCase{
		{[]string{"liddell"}, []string{"alice"}},
		{[]string{"B"}, []string{"bob"}},
		{[]string{"%"}, []string{"percent"}}, // only the literal %
		{[]string{"_"}, []string{"under"}},   // only the literal _
		{[]string{"x_"}, []string{"under"}},
		{[]string{"builder", "bo"}, []string{"bob"}},
		{[]string{"builder", "alice"}, []string{}}, // every term must match
		{[]string{"twin"}, []string{"twin1", "twin2"}},
		{[]string{`\`}, []string{}},
	})
}

func TestPlatformRefusesQueriesThatDoNotFitWithTheFixOnMySQL(t *testing.T) {
	url, _ := storagetest.WordPressPlatform(t)
	q := storagetest.WordPressQueries()
	q.ByLogin = strings.Replace(q.ByLogin, "u.user_pass AS password_hash", "u.user_pass", 1)
	q.ByID = strings.Replace(q.ByID, "SELECT u.ID AS id,", "SELECT u.ID,", 1)
	q.ByEmail += " AND u.ID = $2" // no $2: by_email takes one parameter
	q.Search = "SELECT nonsense FROM nowhere"
	_, err := storage.OpenPlatform(context.Background(), url, q, storage.PlatformOptions{Localpart: localpart})
	if err == nil {
		t.Fatal("queries with wrong columns accepted")
	}
	msg := err.Error()
	for _, want := range []string{
		`users.platform.queries.by_login: returns no column "password_hash"`, "add AS password_hash",
		`users.platform.queries.by_id: returns no column "id"`, "it returns ID,",
		"users.platform.queries.by_email: does not run", "$2",
		"users.platform.queries.search: does not run",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
}

func TestPlatformConnectionRefusesWritesOnMySQL(t *testing.T) {
	url, db := storagetest.WordPressPlatform(t)
	storagetest.AddWordPressUsers(t, db, storagetest.WordPressUser{ID: 1, Login: "alice", Pass: "$P$Bhash1"})
	for name, write := range map[string]string{
		"an update": `UPDATE wp_users SET user_pass = 'changed' WHERE ID = 1 OR ID = $1`,
		"a delete":  `DELETE FROM wp_users WHERE ID = 1 OR ID = $1`,
	} {
		t.Run(name, func(t *testing.T) {
			q := storagetest.WordPressQueries()
			// A "query" that writes: the read-only connection must refuse it
			// (the check at opening runs it).
			q.ByID = write
			p, err := storage.OpenPlatform(context.Background(), url, q, storage.PlatformOptions{Localpart: localpart})
			if err == nil {
				_, err = p.UserByID(context.Background(), "1")
				p.Close()
			}
			if err == nil || !strings.Contains(strings.ToLower(err.Error()), "read only") {
				t.Errorf("a writing query ran: err = %v", err)
			}
			var pass string
			if err := db.QueryRow(`SELECT user_pass FROM wp_users WHERE ID = 1`).Scan(&pass); err != nil || pass != "$P$Bhash1" {
				t.Errorf("the platform row changed: user_pass = %q, %v", pass, err)
			}
		})
	}
}
