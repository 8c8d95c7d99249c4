package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/mxidp/mxidp/provider/password"
	"github.com/mxidp/mxidp/storage"
	"github.com/mxidp/mxidp/storage/storagetest"
)

// What Synapse's REST password provider and ma1sd send, and the answers
// they need (docs/rest.md), against a started mxidp, on every backend:
// one case per behaviour, each ma1sd case under both path prefixes.

const (
	ccPath      = "/_matrix-internal/identity/v1/check_credentials"
	alicePW     = "Wonder-Land-42"
	restFixture = "matrix:\n  server_name: example.org\nrest:\n  enabled: true\n  expose_profile_threepids: true\n  directory_max_results: 50\n"
)

var restPrefixes = []string{"/_ma1sd/backend/api/v1", "/_mxisd/backend/api/v1"}

// seedREST creates the accounts the cases below sign in as and look up:
// alice with two verified 3PIDs, an avatar and roles, bob, carol
// (disabled), dave (unverified e-mail), erin (no profile data), zoe
// (non-ASCII password) and 60 testers for the directory's cap.
func seedREST(t *testing.T, s *storage.Store) {
	t.Helper()
	ctx := context.Background()
	cheap := password.Params{Time: 1, MemoryKiB: 64, Threads: 1} // the cost testEnv configures
	type acct struct {
		username, pw, name, email string
		verified, disabled        bool
		groups                    []string
	}
	accts := []acct{
		{"alice", alicePW, "Alice Liddell", "alice.liddell@example.com", true, false, []string{"staff", "matrix-admins"}},
		{"bob", "builder-99", "Bob Builder", "bob@example.net", true, false, nil},
		{"carol", "carol-pass-1", "Carol Disabled", "carol@example.net", true, true, nil},
		{"dave", "dave-pass-1", "Dave Unverified", "dave@example.net", false, false, nil},
		{"erin", "erin-pass-1", "", "", false, false, nil},
		{"zoe", "pässwörd-Ω", "Zoë", "", false, false, nil},
	}
	for i := 1; i <= 60; i++ {
		accts = append(accts, acct{username: fmt.Sprintf("t%03d", i), pw: "x", name: fmt.Sprintf("Tester %03d", i)})
	}
	for _, a := range accts {
		h, err := password.Hash(noteSecret(a.pw), cheap)
		noteSecret(h)
		if err != nil {
			t.Fatal(err)
		}
		u := storage.User{ID: "id-" + a.username, Username: a.username, Email: a.email,
			EmailVerified: a.verified, DisplayName: a.name, PasswordHash: h, Disabled: a.disabled}
		if a.username == "alice" {
			u.MSISDN, u.AvatarURL = "447700900123", "mxc://example.org/AvatarAlice"
		}
		u, err = s.CreateUser(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		if a.groups != nil {
			if err := s.SetUserGroups(ctx, u.ID, a.groups); err != nil {
				t.Fatal(err)
			}
		}
	}
}

type restCase struct {
	id      string
	path    string // under each of restPrefixes when it starts with "{P}"
	method  string // POST when ""
	body    string
	noCT    bool   // send no Content-Type
	ct      string // Content-Type when not the default
	status  int
	want    string // JSON the body must equal, when not ""
	errcode string
	check   func(t *testing.T, got map[string]any, h http.Header)
}

func cc(id, pw string) string {
	noteSecret(pw)
	b, _ := json.Marshal(map[string]any{"user": map[string]string{"id": id, "password": pw}})
	return string(b)
}

func al(mxid, local, domain, pw string) string {
	noteSecret(pw)
	b, _ := json.Marshal(map[string]any{"auth": map[string]string{"mxid": mxid, "localpart": local, "domain": domain, "password": pw}})
	return string(b)
}

func pr(local string) string {
	return fmt.Sprintf(`{"localpart":%q,"domain":"example.org","mxid":"@%s:example.org"}`, local, local)
}

const failure = `{"auth":{"success":false}}`

// dig follows a path of keys through decoded JSON.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func wantAt(t *testing.T, got map[string]any, want any, keys ...string) {
	t.Helper()
	if g := dig(got, keys...); !reflect.DeepEqual(g, want) {
		t.Errorf("%s = %#v; want %#v", strings.Join(keys, "."), g, want)
	}
}

func wantAbsent(t *testing.T, got map[string]any, keys ...string) {
	t.Helper()
	parent := dig(got, keys[:len(keys)-1]...)
	if m, ok := parent.(map[string]any); ok {
		if _, has := m[keys[len(keys)-1]]; has {
			t.Errorf("%s present; want it absent", strings.Join(keys, "."))
		}
	}
}

// aliceThreePIDs are alice's verified 3PIDs in login answers, in the order
// mxidp gives them.
var aliceThreePIDs = []any{
	map[string]any{"medium": "email", "address": "alice.liddell@example.com"},
	map[string]any{"medium": "msisdn", "address": "447700900123"},
}

func userIDs(got map[string]any) []string {
	var ids []string
	for _, r := range dig(got, "results").([]any) {
		ids = append(ids, r.(map[string]any)["user_id"].(string))
	}
	return ids
}

func restCases() []restCase {
	aliceCC := func(t *testing.T, got map[string]any, h http.Header) {
		wantAt(t, got, true, "auth", "success")
		wantAt(t, got, "@alice:example.org", "auth", "mxid")
		wantAt(t, got, "Alice Liddell", "auth", "display_name")
		wantAt(t, got, "Alice Liddell", "auth", "profile", "display_name")
		wantAt(t, got, aliceThreePIDs, "auth", "profile", "three_pids")
	}
	zoe := func(t *testing.T, got map[string]any, h http.Header) {
		wantAt(t, got, true, "auth", "success")
		wantAt(t, got, "Zoë", "auth", "profile", "display_name")
	}
	results := func(ids ...string) func(t *testing.T, got map[string]any, h http.Header) {
		return func(t *testing.T, got map[string]any, h http.Header) {
			if g := userIDs(got); !reflect.DeepEqual(g, ids) {
				t.Errorf("results = %v; want %v", g, ids)
			}
		}
	}
	contains := func(id string) func(t *testing.T, got map[string]any, h http.Header) {
		return func(t *testing.T, got map[string]any, h http.Header) {
			for _, g := range userIDs(got) {
				if g == id {
					return
				}
			}
			t.Errorf("results %v lack %s", userIDs(got), id)
		}
	}
	noResults := `{"limited":false,"results":[]}`
	aliceDS := `{"limited":false,"results":[{"user_id":"alice","display_name":"Alice Liddell","avatar_url":"mxc://example.org/AvatarAlice"}]}`
	return []restCase{
		// check_credentials
		{id: "check_credentials/alice signs in", path: ccPath, body: cc("@alice:example.org", alicePW), status: 200, check: aliceCC},
		{id: "check_credentials/wrong password", path: ccPath, body: cc("@alice:example.org", "wonder-land-42"), status: 200, want: failure},
		{id: "check_credentials/unknown user", path: ccPath, body: cc("@zed:example.org", alicePW), status: 200, want: failure},
		{id: "check_credentials/foreign domain", path: ccPath, body: cc("@alice:evil.example", alicePW), status: 200, want: failure},
		{id: "check_credentials/upper-case localpart", path: ccPath, body: cc("@Alice:example.org", alicePW), status: 200, want: failure},
		{id: "check_credentials/bob signs in", path: ccPath, body: cc("@bob:example.org", "builder-99"), status: 200, check: func(t *testing.T, got map[string]any, h http.Header) {
			wantAt(t, got, true, "auth", "success")
			wantAt(t, got, "@bob:example.org", "auth", "mxid")
			wantAt(t, got, []any{map[string]any{"medium": "email", "address": "bob@example.net"}}, "auth", "profile", "three_pids")
		}},
		{id: "check_credentials/upper-case Bob", path: ccPath, body: cc("@Bob:example.org", "builder-99"), status: 200, want: failure},
		{id: "check_credentials/unqualified ID", path: ccPath, body: cc("alice", alicePW), status: 200, want: failure},
		{id: "check_credentials/disabled user", path: ccPath, body: cc("@carol:example.org", "carol-pass-1"), status: 200, want: failure},
		{id: "check_credentials/empty password", path: ccPath, body: cc("@alice:example.org", ""), status: 200, want: failure},
		{id: "check_credentials/user without profile data", path: ccPath, body: cc("@erin:example.org", "erin-pass-1"), status: 200,
			want: `{"auth":{"success":true,"mxid":"@erin:example.org","profile":{}}}`},
		{id: "check_credentials/unverified e-mail withheld", path: ccPath, body: cc("@dave:example.org", "dave-pass-1"), status: 200, check: func(t *testing.T, got map[string]any, h http.Header) {
			wantAt(t, got, true, "auth", "success")
			wantAbsent(t, got, "auth", "profile", "three_pids")
		}},
		{id: "check_credentials/escaped UTF-8 password", path: ccPath, body: `{"user":{"id":"@zoe:example.org","password":"p\u00e4ssw\u00f6rd-\u03a9"}}`, status: 200, check: zoe},
		{id: "check_credentials/raw UTF-8 password", path: ccPath, body: `{"user":{"id":"@zoe:example.org","password":"pässwörd-Ω"}}`, status: 200, check: zoe},
		{id: "check_credentials/not JSON", path: ccPath, body: `{"user":`, status: 400, errcode: "M_NOT_JSON"},
		{id: "check_credentials/password missing", path: ccPath, body: `{"user":{"id":"@alice:example.org"}}`, status: 400, errcode: "M_BAD_JSON"},
		{id: "check_credentials/password not a string", path: ccPath, body: `{"user":{"id":"@alice:example.org","password":42}}`, status: 400, errcode: "M_BAD_JSON"},
		{id: "check_credentials/no user wrapper", path: ccPath, body: `{"id":"@alice:example.org","password":"Wonder-Land-42"}`, status: 400, errcode: "M_BAD_JSON"},
		{id: "check_credentials/unknown members ignored", path: ccPath, body: `{"user":{"id":"@alice:example.org","password":"Wonder-Land-42","device_id":"X"},"foo":1}`, status: 200, check: aliceCC},
		{id: "check_credentials/doubled slash", path: "/" + ccPath, body: cc("@alice:example.org", alicePW), status: 200, check: aliceCC},
		{id: "check_credentials/content type with charset", path: ccPath, ct: "application/json; charset=UTF-8", body: cc("@alice:example.org", alicePW), status: 200, check: aliceCC},
		{id: "check_credentials/no content type", path: ccPath, noCT: true, body: cc("@alice:example.org", alicePW), status: 200, check: aliceCC},
		{id: "check_credentials/GET", path: ccPath, method: "GET", status: 405, errcode: "M_UNRECOGNIZED", check: func(t *testing.T, got map[string]any, h http.Header) {
			if h.Get("Allow") != "POST" {
				t.Errorf("Allow = %q; want POST", h.Get("Allow"))
			}
		}},
		{id: "check_credentials/e-mail-shaped ID", path: ccPath, body: cc("@alice@example.com:example.org", alicePW), status: 200, want: failure},
		// run checks every 200 for a JSON content type and a boolean success.

		// auth/login
		{id: "auth/login/alice signs in", path: "{P}/auth/login", body: al("@alice:example.org", "alice", "example.org", alicePW), status: 200, check: func(t *testing.T, got map[string]any, h http.Header) {
			wantAt(t, got, true, "auth", "success")
			wantAt(t, got, map[string]any{"type": "localpart", "value": "alice"}, "auth", "id")
			wantAt(t, got, "Alice Liddell", "auth", "profile", "display_name")
			wantAt(t, got, aliceThreePIDs, "auth", "profile", "three_pids")
		}},
		{id: "auth/login/wrong password", path: "{P}/auth/login", body: al("@alice:example.org", "alice", "example.org", "nope"), status: 200, want: failure},
		{id: "auth/login/foreign domain", path: "{P}/auth/login", body: al("@alice:evil.example", "alice", "evil.example", alicePW), status: 200, want: failure},
		{id: "auth/login/mxid and localpart disagree", path: "{P}/auth/login", body: al("@bob:example.org", "alice", "example.org", alicePW), status: 200, want: failure},
		{id: "auth/login/upper-case localpart", path: "{P}/auth/login", body: al("@Alice:example.org", "Alice", "example.org", alicePW), status: 200, want: failure},
		{id: "auth/login/bob signs in", path: "{P}/auth/login", body: al("@bob:example.org", "bob", "example.org", "builder-99"), status: 200, check: func(t *testing.T, got map[string]any, h http.Header) {
			wantAt(t, got, true, "auth", "success")
			wantAt(t, got, "bob", "auth", "id", "value")
		}},
		{id: "auth/login/user without 3PIDs", path: "{P}/auth/login", body: al("@erin:example.org", "erin", "example.org", "erin-pass-1"), status: 200, check: func(t *testing.T, got map[string]any, h http.Header) {
			wantAt(t, got, true, "auth", "success")
			wantAt(t, got, "erin", "auth", "id", "value")
			wantAbsent(t, got, "auth", "profile", "three_pids")
		}},
		{id: "auth/login/no auth wrapper", path: "{P}/auth/login", body: `{"mxid":"@alice:example.org","localpart":"alice","domain":"example.org","password":"Wonder-Land-42"}`, status: 400, errcode: "M_BAD_JSON"},
		{id: "auth/login/unknown user", path: "{P}/auth/login", body: al("@zed:example.org", "zed", "example.org", alicePW), status: 200, want: failure},

		// directory/user/search
		{id: "directory/by name", path: "{P}/directory/user/search", body: `{"by":"name","search_term":"liddell"}`, status: 200, want: aliceDS},
		{id: "directory/upper-case term", path: "{P}/directory/user/search", body: `{"by":"name","search_term":"ALI"}`, status: 200, check: contains("alice")},
		{id: "directory/no avatar", path: "{P}/directory/user/search", body: `{"by":"name","search_term":"bob"}`, status: 200,
			want: `{"limited":false,"results":[{"user_id":"bob","display_name":"Bob Builder"}]}`},
		{id: "directory/e-mail in another case", path: "{P}/directory/user/search", body: `{"by":"threepid","search_term":"BOB@example.net"}`, status: 200, check: results("bob")},
		{id: "directory/e-mail prefix finds nobody", path: "{P}/directory/user/search", body: `{"by":"threepid","search_term":"bob@"}`, status: 200, want: noResults},
		{id: "directory/unverified e-mail", path: "{P}/directory/user/search", body: `{"by":"threepid","search_term":"dave@example.net"}`, status: 200, want: noResults},
		{id: "directory/phone number spelled with spaces", path: "{P}/directory/user/search", body: `{"by":"threepid","search_term":"+44 7700 900123"}`, status: 200, want: aliceDS},
		{id: "directory/empty term", path: "{P}/directory/user/search", body: `{"by":"name","search_term":""}`, status: 200, want: noResults},
		{id: "directory/blank term", path: "{P}/directory/user/search", body: `{"by":"name","search_term":"   "}`, status: 200, want: noResults},
		{id: "directory/no term", path: "{P}/directory/user/search", body: `{"by":"name"}`, status: 200, want: noResults},
		{id: "directory/disabled user", path: "{P}/directory/user/search", body: `{"by":"name","search_term":"carol"}`, status: 200, want: noResults},
		{id: "directory/term with our domain", path: "{P}/directory/user/search", body: `{"by":"name","search_term":"alice:example.org"}`, status: 200, check: results("alice")},
		{id: "directory/term with another domain", path: "{P}/directory/user/search", body: `{"by":"name","search_term":"alice:matrix.org"}`, status: 200, want: noResults},
		{id: "directory/capped at 50", path: "{P}/directory/user/search", body: `{"by":"name","search_term":"tester"}`, status: 200, check: func(t *testing.T, got map[string]any, h http.Header) {
			wantAt(t, got, true, "limited")
			ids := userIDs(got)
			seen := map[string]bool{}
			for _, id := range ids {
				seen[id] = true
			}
			if len(ids) != 50 || len(seen) != 50 {
				t.Errorf("%d results, %d distinct; want 50 distinct", len(ids), len(seen))
			}
		}},
		{id: "directory/unknown by", path: "{P}/directory/user/search", body: `{"by":"nickname","search_term":"alice"}`, status: 400, errcode: "M_INVALID_PARAM"},
		{id: "directory/by e-mail answers like by name", path: "{P}/directory/user/search", body: `{"by":"threepid","search_term":"alice.liddell@example.com"}`, status: 200, want: aliceDS},
		// LIKE wildcards in a term match only themselves.
		{id: "directory/percent is no wildcard", path: "{P}/directory/user/search", body: `{"by":"name","search_term":"%"}`, status: 200, want: noResults},
		{id: "directory/underscore is no wildcard", path: "{P}/directory/user/search", body: `{"by":"name","search_term":"t_01"}`, status: 200, want: noResults},

		// identity/single
		{id: "identity/single/e-mail echoed as sent", path: "{P}/identity/single", body: `{"lookup":{"medium":"email","address":"ALICE.LIDDELL@example.com"}}`, status: 200,
			want: `{"lookup":{"medium":"email","address":"ALICE.LIDDELL@example.com","id":{"type":"localpart","value":"alice"}}}`},
		{id: "identity/single/phone number", path: "{P}/identity/single", body: `{"lookup":{"medium":"msisdn","address":"447700900123"}}`, status: 200,
			want: `{"lookup":{"medium":"msisdn","address":"447700900123","id":{"type":"localpart","value":"alice"}}}`},
		{id: "identity/single/phone number spelled with signs", path: "{P}/identity/single", body: `{"lookup":{"medium":"msisdn","address":"+44 (7700) 900-123"}}`, status: 200,
			want: `{"lookup":{"medium":"msisdn","address":"+44 (7700) 900-123","id":{"type":"localpart","value":"alice"}}}`},
		{id: "identity/single/unknown address", path: "{P}/identity/single", body: `{"lookup":{"medium":"email","address":"zed@example.org"}}`, status: 200, want: `{}`},
		{id: "identity/single/unverified e-mail", path: "{P}/identity/single", body: `{"lookup":{"medium":"email","address":"dave@example.net"}}`, status: 200, want: `{}`},
		{id: "identity/single/disabled user", path: "{P}/identity/single", body: `{"lookup":{"medium":"email","address":"carol@example.net"}}`, status: 200, want: `{}`},
		{id: "identity/single/unknown medium", path: "{P}/identity/single", body: `{"lookup":{"medium":"fax","address":"123"}}`, status: 200, want: `{}`},
		{id: "identity/single/lookup not an object", path: "{P}/identity/single", body: `{"lookup":[{"medium":"email","address":"bob@example.net"}]}`, status: 400, errcode: "M_BAD_JSON"},

		// identity/bulk
		{id: "identity/bulk/hits in request order", path: "{P}/identity/bulk", body: `{"lookup":[{"medium":"email","address":"Alice.Liddell@example.com"},{"medium":"email","address":"nobody@example.org"},{"medium":"msisdn","address":"447700900123"},{"medium":"email","address":"bob@example.net"}]}`, status: 200,
			want: `{"lookup":[{"medium":"email","address":"Alice.Liddell@example.com","id":{"type":"localpart","value":"alice"}},{"medium":"msisdn","address":"447700900123","id":{"type":"localpart","value":"alice"}},{"medium":"email","address":"bob@example.net","id":{"type":"localpart","value":"bob"}}]}`},
		{id: "identity/bulk/empty", path: "{P}/identity/bulk", body: `{"lookup":[]}`, status: 200, want: `{"lookup":[]}`},
		{id: "identity/bulk/misses only", path: "{P}/identity/bulk", body: `{"lookup":[{"medium":"email","address":"zed@example.org"},{"medium":"email","address":"dave@example.net"},{"medium":"email","address":"carol@example.net"}]}`, status: 200, want: `{"lookup":[]}`},
		{id: "identity/bulk/duplicate entry", path: "{P}/identity/bulk", body: `{"lookup":[{"medium":"email","address":"bob@example.net"},{"medium":"email","address":"bob@example.net"}]}`, status: 200,
			want: `{"lookup":[{"medium":"email","address":"bob@example.net","id":{"type":"localpart","value":"bob"}}]}`},
		{id: "identity/bulk/5000 entries", path: "{P}/identity/bulk", body: bulk5000(), status: 200,
			want: `{"lookup":[{"medium":"email","address":"bob@example.net","id":{"type":"localpart","value":"bob"}}]}`},
		{id: "identity/bulk/lookup not an array", path: "{P}/identity/bulk", body: `{"lookup":{"medium":"email","address":"bob@example.net"}}`, status: 400, errcode: "M_BAD_JSON"},

		// profile/* (profile/threepids switched off: provider/ma1sd's unit tests)
		{id: "profile/displayName", path: "{P}/profile/displayName", body: pr("alice"), status: 200, want: `{"profile":{"display_name":"Alice Liddell"}}`},
		{id: "profile/threepids", path: "{P}/profile/threepids", body: pr("alice"), status: 200, check: func(t *testing.T, got map[string]any, h http.Header) {
			wantAt(t, got, aliceThreePIDs, "profile", "threepids")
		}},
		{id: "profile/roles", path: "{P}/profile/roles", body: pr("alice"), status: 200, check: func(t *testing.T, got map[string]any, h http.Header) {
			roles, _ := dig(got, "profile", "roles").([]any)
			var names []string
			for _, r := range roles {
				names = append(names, r.(string))
			}
			sort.Strings(names)
			if !reflect.DeepEqual(names, []string{"matrix-admins", "staff"}) {
				t.Errorf("roles = %v; want staff, matrix-admins", names)
			}
		}},
		{id: "profile/no roles", path: "{P}/profile/roles", body: pr("bob"), status: 200, want: `{"profile":{"roles":[]}}`},
		{id: "profile/unknown user", path: "{P}/profile/displayName", body: pr("zed"), status: 200, want: `{"profile":{}}`},
		{id: "profile/foreign domain", path: "{P}/profile/threepids", body: `{"localpart":"alice","domain":"matrix.org","mxid":"@alice:matrix.org"}`, status: 200, want: `{"profile":{}}`},
		{id: "profile/no display name", path: "{P}/profile/displayName", body: pr("erin"), status: 200, want: `{"profile":{}}`},
		{id: "profile/disabled user", path: "{P}/profile/displayName", body: pr("carol"), status: 200, want: `{"profile":{}}`},
		{id: "profile/upper-case localpart", path: "{P}/profile/displayName", body: `{"localpart":"Alice","domain":"example.org","mxid":"@Alice:example.org"}`, status: 200, want: `{"profile":{}}`},

		// transport
		{id: "unknown endpoint", path: "{P}/no/such/endpoint", body: `{}`, status: 404, errcode: "M_UNRECOGNIZED"},
		{id: "doubled slash after the prefix", path: "/{P}//profile/displayName", body: pr("alice"), status: 200, want: `{"profile":{"display_name":"Alice Liddell"}}`},
	}
}

func bulk5000() string {
	var b strings.Builder
	b.WriteString(`{"lookup":[`)
	for i := range 4999 {
		fmt.Fprintf(&b, `{"medium":"email","address":"nobody%d@example.org"},`, i)
	}
	b.WriteString(`{"medium":"email","address":"bob@example.net"}]}`)
	return b.String()
}

// noNulls reports where decoded JSON holds a null.
func noNulls(t *testing.T, v any, at string) {
	t.Helper()
	switch v := v.(type) {
	case nil:
		t.Errorf("null at %s", at)
	case map[string]any:
		for k, e := range v {
			noNulls(t, e, at+"."+k)
		}
	case []any:
		for i, e := range v {
			noNulls(t, e, fmt.Sprintf("%s[%d]", at, i))
		}
	}
}

// noRedirects never follows a redirect, so a 3xx is seen as one.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func (c restCase) run(t *testing.T, base, path string) {
	method := c.method
	if method == "" {
		method = http.MethodPost
	}
	req, err := http.NewRequest(method, base+path, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case c.noCT:
	case c.ct != "":
		req.Header.Set("Content-Type", c.ct)
	default:
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != c.status {
		t.Fatalf("%s %s: status %d; want %d\n%s", method, path, resp.StatusCode, c.status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q; want application/json", ct)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("body is no JSON object: %v\n%s", err, body)
	}
	noNulls(t, got, "body")
	if s, ok := dig(got, "auth").(map[string]any); ok {
		if _, isBool := s["success"].(bool); !isBool {
			t.Errorf("auth.success = %#v; want a JSON boolean", s["success"])
		}
	}
	if c.want != "" {
		var want map[string]any
		if err := json.Unmarshal([]byte(c.want), &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("body %s; want %s", body, c.want)
		}
	}
	if c.errcode != "" && got["errcode"] != c.errcode {
		t.Errorf("errcode %v; want %s (%s)", got["errcode"], c.errcode, body)
	}
	if c.check != nil {
		c.check(t, got, resp.Header)
	}
}

func startREST(t *testing.T, backend string) *server {
	t.Helper()
	env := testEnv(t, backend, restFixture)
	env["MXIDP_ISSUER"] = "http://127.0.0.1:8080"
	env["MXIDP_LISTEN"] = "127.0.0.1:0"
	d := &deployment{t: t, env: env}
	(&cli{t: t, env: env}).must("", "migrate")
	seedREST(t, (&cli{t: t, env: env}).store())
	return d.start()
}

func TestRESTServiceMeetsTheMa1sdConformanceCases(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			s := startREST(t, backend)
			for _, c := range restCases() {
				if !strings.Contains(c.path, "{P}") {
					t.Run(c.id, func(t *testing.T) { c.run(t, s.url, c.path) })
					continue
				}
				for _, p := range restPrefixes {
					t.Run(c.id+p, func(t *testing.T) { c.run(t, s.url, strings.ReplaceAll(c.path, "{P}", p)) })
				}
			}

			// An unknown user's answer is byte-identical to a wrong password's.
			t.Run("check_credentials/unknown user answers like a wrong password", func(t *testing.T) {
				wrong := postRaw(t, s.url+ccPath, cc("@alice:example.org", "wonder-land-42"))
				unknown := postRaw(t, s.url+ccPath, cc("@zed:example.org", "whatever"))
				if !bytes.Equal(wrong, unknown) {
					t.Errorf("unknown user %q differs from wrong password %q", unknown, wrong)
				}
			})

			// A login and a search on one keep-alive connection.
			t.Run("keep-alive connection", func(t *testing.T) {
				client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
				reused := false
				for i, step := range []struct{ path, body string }{
					{restPrefixes[0] + "/auth/login", al("@alice:example.org", "alice", "example.org", alicePW)},
					{restPrefixes[0] + "/directory/user/search", `{"by":"name","search_term":"liddell"}`},
				} {
					req, _ := http.NewRequest(http.MethodPost, s.url+step.path, strings.NewReader(step.body))
					req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
						GotConn: func(info httptrace.GotConnInfo) { reused = reused || (i == 1 && info.Reused) },
					}))
					resp, err := client.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"alice"`)) {
						t.Fatalf("%s: %d %s", step.path, resp.StatusCode, body)
					}
				}
				if !reused {
					t.Error("the second request did not reuse the connection")
				}
			})

			// 20 concurrent password checks for alice all succeed.
			t.Run("20 concurrent checks", func(t *testing.T) {
				var wg sync.WaitGroup
				for range 20 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						body := postRaw(t, s.url+ccPath, cc("@alice:example.org", alicePW))
						if !bytes.Contains(body, []byte(`"success":true`)) {
							t.Errorf("concurrent check: %s", body)
						}
					}()
				}
				wg.Wait()
			})
		})
	}
}

func postRaw(t *testing.T, url, body string) []byte {
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Errorf("POST %s: %d %s", url, resp.StatusCode, b)
	}
	return b
}

func TestRESTServiceIsOffUnlessEnabled(t *testing.T) {
	d := newDeployment(t, "sqlite")
	s := d.start()
	resp, err := http.Post(s.url+ccPath, "application/json", strings.NewReader(cc("@alice:example.org", alicePW)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("check_credentials with rest.enabled false: %d; want 404 or 405", resp.StatusCode)
	}
}

// postJSON posts body and decodes the JSON answer.
func postJSON(t *testing.T, url, body string) map[string]any {
	t.Helper()
	var got map[string]any
	if err := json.Unmarshal(postRaw(t, url, body), &got); err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	return got
}
