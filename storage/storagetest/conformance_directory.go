package storagetest

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/mxidp/mxidp/storage"
)

func directoryUsers(t *testing.T, s *storage.Store) {
	t.Helper()
	ctx := context.Background()
	for _, u := range []storage.User{
		{ID: "u1", Username: "alice", DisplayName: "Alice Liddell", Email: "alice@example.com", EmailVerified: true, MSISDN: "447700900123"},
		{ID: "u2", Username: "alicia", DisplayName: "Alicia Keys", Email: "alicia@example.com"},
		{ID: "u3", Username: "bob", DisplayName: "Bob 100% Builder", Email: "bob@example.net", EmailVerified: true, MSISDN: "15550001111"},
		{ID: "u4", Username: "carol", DisplayName: "Carol Liddell", Disabled: true},
		{ID: "u5", Username: "dave_x", DisplayName: `Dave \ Back`},
		{ID: "u6", Username: "malice", DisplayName: "Mallory"},
		{ID: "u7", Username: "zoe", DisplayName: "Zoë Ärger"},
	} {
		if _, err := s.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
}

func usernames(users []storage.User) []string {
	out := []string{}
	for _, u := range users {
		out = append(out, u.Username)
	}
	return out
}

func testSearchUsersMatchesUsernamePrefixOrDisplayNameIgnoringCase(t *testing.T, open Opener) {
	s := open(t, storage.Options{})
	directoryUsers(t, s)
	for _, tc := range []struct {
		terms []string
		limit int
		want  []string
	}{
		{[]string{"ALI"}, 10, []string{"alice", "alicia"}},                              // beginning of the username, not "malice"
		{[]string{"alice"}, 10, []string{"alice"}},                                      // username and word
		{[]string{"liddell"}, 10, []string{"alice"}},                                    // disabled carol is never found
		{[]string{"LIDD"}, 10, []string{"alice"}},                                       // a word's beginning, any case
		{[]string{"iddell"}, 10, []string{}},                                            // not the middle of a word
		{[]string{"ali", "keys"}, 10, []string{"alicia"}},                               // every term must match
		{[]string{"keys", "ali"}, 10, []string{"alicia"}},                               // in any order
		{[]string{"ali"}, 1, []string{"alice"}},                                         // the limit holds
		{[]string{"100%"}, 10, []string{"bob"}},                                         // % is an ordinary character
		{[]string{"%"}, 10, []string{}},                                                 // ... and no wildcard
		{[]string{"_"}, 10, []string{}},                                                 // _ likewise
		{[]string{"dave_"}, 10, []string{"dave_x"}},                                     // ... but is found where it is
		{[]string{`\`}, 10, []string{"dave_x"}},                                         // a backslash matches itself
		{[]string{"ÄRGER"}, 10, []string{"zoe"}},                                        // Unicode case folding
		{[]string{}, 10, []string{}},                                                    // no terms, no results
		{[]string{"Mal", "Mall", "Mallo", "Mallor", "ignored"}, 10, []string{"malice"}}, // terms beyond MaxSearchTerms are ignored
	} {
		t.Run(fmt.Sprint(tc.terms, tc.limit), func(t *testing.T) {
			got, err := s.SearchUsers(context.Background(), tc.terms, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(usernames(got), tc.want) {
				t.Errorf("SearchUsers(%q, %d) = %v; want %v", tc.terms, tc.limit, usernames(got), tc.want)
			}
		})
	}
}

// The word index follows renames and deletions, and a rebuild (after
// users were loaded around the Store) finds what was loaded.
func testSearchIndexFollowsChangesAndRebuilds(t *testing.T, open Opener) {
	s := open(t, storage.Options{})
	ctx := context.Background()
	directoryUsers(t, s)
	find := func(term string) []string {
		t.Helper()
		got, err := s.SearchUsers(ctx, []string{term}, 10)
		if err != nil {
			t.Fatal(err)
		}
		return usernames(got)
	}
	if _, err := s.UpdateUser(ctx, "u1", func(u *storage.User) error { u.DisplayName = "Alice Hargreaves"; return nil }); err != nil {
		t.Fatal(err)
	}
	if got := find("liddell"); len(got) != 0 {
		t.Errorf("after the rename, liddell finds %v", got)
	}
	if got := find("hargr"); !reflect.DeepEqual(got, []string{"alice"}) {
		t.Errorf("after the rename, hargr finds %v", got)
	}
	if err := s.DeleteUser(ctx, "u2"); err != nil {
		t.Fatal(err)
	}
	if got := find("keys"); len(got) != 0 {
		t.Errorf("a deleted user is still found: %v", got)
	}
	if _, err := s.DB().ExecContext(ctx, `INSERT INTO users (id, username, display_name, created_at, updated_at) VALUES ('u9', 'zed', 'Zed Loaded', 0, 0)`); err != nil {
		t.Fatal(err)
	}
	if got := find("loaded"); len(got) != 0 {
		t.Errorf("a user written around the Store is found before a rebuild: %v", got)
	}
	if n, err := s.RebuildSearchTerms(ctx); err != nil || n != 7 {
		t.Errorf("RebuildSearchTerms = %d, %v; want the 7 users", n, err)
	}
	if got := find("loaded"); !reflect.DeepEqual(got, []string{"zed"}) {
		t.Errorf("after the rebuild, loaded finds %v", got)
	}
}

func testUsersByThreePIDsFindsEveryAddressInBatches(t *testing.T, open Opener) {
	s := open(t, storage.Options{})
	directoryUsers(t, s)
	emails := []string{"bob@example.net", "alicia@example.com", ""}
	for i := range 1200 { // more than one batch
		emails = append(emails, fmt.Sprintf("nobody%d@example.org", i))
	}
	emails = append(emails, "alice@example.com", "bob@example.net")
	got, err := s.UsersByEmails(context.Background(), emails)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]string{}
	for e, u := range got {
		found[e] = u.Username
	}
	want := map[string]string{"alice@example.com": "alice", "alicia@example.com": "alicia", "bob@example.net": "bob"}
	if !reflect.DeepEqual(found, want) {
		t.Errorf("UsersByEmails = %v; want %v", found, want)
	}
	if !got["alice@example.com"].EmailVerified || got["alicia@example.com"].EmailVerified {
		t.Error("UsersByEmails lost the verified flags")
	}
	phones, err := s.UsersByMSISDNs(context.Background(), []string{"15550001111", "", "447700900123", "999", "15550001111"})
	if err != nil {
		t.Fatal(err)
	}
	if len(phones) != 2 || phones["447700900123"].Username != "alice" || phones["15550001111"].Username != "bob" {
		t.Errorf("UsersByMSISDNs = %v; want alice and bob by number", phones)
	}
}
