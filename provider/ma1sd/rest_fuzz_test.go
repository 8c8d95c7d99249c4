package ma1sd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mxidp/mxidp/provider"
	"github.com/mxidp/mxidp/provider/ma1sd"
	"github.com/mxidp/mxidp/provider/password"
	"github.com/mxidp/mxidp/storage"
	"github.com/mxidp/mxidp/storage/storagetest"
)

// fuzzUser is an account of the fuzzed service and its password in the clear.
type fuzzUser struct {
	user     storage.User
	password string
	groups   []string
}

var fuzzUsers = []fuzzUser{
	{storage.User{ID: "u1", Username: "alice", DisplayName: "Alice Liddell", Email: "alice@example.com", EmailVerified: true},
		"Wonder-Land-42", []string{"staff", "matrix-admins"}},
	// An unverified e-mail address: never found by a lookup.
	{storage.User{ID: "u2", Username: "bob.smith", DisplayName: "Bob", Email: "bob@example.com", MSISDN: "447700900123"},
		"builder-bob-7", nil},
	// Disabled: never logged in, never revealed.
	{storage.User{ID: "u3", Username: "carol", DisplayName: "Carol Hidden-Disabled", Email: "carol.hidden@example.com",
		EmailVerified: true, MSISDN: "15550001111", Disabled: true}, "carols-secret-1", nil},
}

// fuzzRoutes are the method and path of a fuzzed request, picked by index.
var fuzzRoutes = []struct{ method, path string }{
	{"POST", cc},
	{"POST", p + "/auth/login"},
	{"POST", p + "/directory/user/search"},
	{"POST", p + "/identity/single"},
	{"POST", p + "/identity/bulk"},
	{"POST", p + "/profile/displayName"},
	{"POST", p + "/profile/threepids"},
	{"POST", p + "/profile/roles"},
	{"POST", "/_mxisd/backend/api/v1/auth/login"},
	{"POST", "//_mxisd/backend/api/v1//identity/bulk"},
	{"POST", "/" + cc},
	{"POST", p + "/auth/logout"},
	{"POST", "/_matrix-internal/identity/v1/nothing"},
	{"GET", cc},
	{"PUT", p + "/auth/login"},
	{"DELETE", p + "/identity/single"},
}

// syncBuffer is a log sink shared by the service's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) take() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.b.String()
	s.b.Reset()
	return out
}

// newFuzzService is the REST service on SQLite with fuzzUsers, cheap
// hashes and the throttle off (so that a right password always succeeds
// and the success property is not vacuous).
func newFuzzService(f *testing.F) (*ma1sd.Service, *syncBuffer) {
	f.Helper()
	store := storagetest.Open(f, "sqlite", storage.Options{})
	ctx := context.Background()
	for _, fu := range fuzzUsers {
		h, err := password.Hash(fu.password, cheap)
		if err != nil {
			f.Fatal(err)
		}
		u := fu.user
		u.PasswordHash = h
		if _, err := store.CreateUser(ctx, u); err != nil {
			f.Fatal(err)
		}
		if len(fu.groups) > 0 {
			if err := store.SetUserGroups(ctx, u.ID, fu.groups); err != nil {
				f.Fatal(err)
			}
		}
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	login := &provider.Login{Store: store, Hash: cheap, Logger: log,
		Throttle: &provider.ThrottlePolicy{BaseDelay: time.Second, MaxDelay: time.Second, ForgetAfter: time.Hour}}
	return ma1sd.New(store, login, "example.org", ma1sd.Options{Logger: log, ExposeProfileThreepids: true}), logs
}

// FuzzRESTRequest sends fuzzed bodies to every REST endpoint. Properties:
// no panic (the service would recover it into a 503 and log it); a status
// from the documented set; a JSON body; no null in a 200 answer; a boolean
// auth.success in login answers that is true only for the right password
// of an enabled account under its canonical Matrix ID; a disabled account
// and an unverified e-mail address are never revealed.
func FuzzRESTRequest(f *testing.F) {
	s, logs := newFuzzService(f)
	// The oracle must be able to say yes: the right password succeeds.
	for i, body := range []string{aliceCC, aliceAL} {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest("POST", fuzzRoutes[i].path, strings.NewReader(body)))
		if w.Code != 200 || !strings.Contains(w.Body.String(), `"success":true`) {
			f.Fatalf("setup: %s %s: %d %s", fuzzRoutes[i].path, body, w.Code, w.Body)
		}
	}
	for i, body := range []string{
		aliceCC, aliceAL, aliceDS, aliceIS, aliceIB, alicePR, alicePR, alicePR,
		`{"auth":{"mxid":"@bob.smith:example.org","localpart":"bob.smith","domain":"example.org","password":"builder-bob-7"}}`,
		`{"lookup":[{"medium":"msisdn","address":"+44 7700 900123"},{"medium":"email","address":"BOB@example.com"},null,{"medium":"email","address":"carol.hidden@example.com"}]}`,
		`{"user":{"id":"@Alice:example.org","password":"Wonder-Land-42"}}`,
		`{}`, `null`, `[]`, ``, `{"user":{"id":"@alice:example.org"}}`,
	} {
		f.Add(uint8(i), []byte(body), "application/json")
	}
	for _, body := range []string{
		`{"user":{"id":"@carol:example.org","password":"carols-secret-1"}}`,
		`{"user":{"id":"@alice:example.org:8448","password":"Wonder-Land-42"}}`,
		`{"user":{"id":"@alice@example.com:example.org","password":"Wonder-Land-42"}}`,
		`{"user":{"id":"@alice:example.org","password":"Wonder-Land-42"},"user":{"id":"@bob.smith:example.org"}}`,
		`{"USER":{"Id":"@alice:EXAMPLE.ORG","PASSWORD":"Wonder-Land-42"}}`,
		`{"user":{"id":"@alice:example.org","password":"Wonder-Land-42\u0000"}}`,
		`{"user":{"id":1,"password":true}}`,
		`{"user":{"id":"@alice:example.org","password":"Wonder-Land-42"}} x`,
		`{"user":{"id":"@alice:example.org","password":"wrong","password":"Wonder-Land-42"}}`,
		`{"user":{"id":"@alice:example.org","password":"wrong","pass\u0077ord":"Wonder-Land-42"}}`,
		`{"user":{"id":"@alice:example.org","paſſword":"Wonder-Land-42"}}`,
		`{"user":{"id":"@alice:example.org","password":"Wonder-Land-42"},"x":{"a":1,"a":2}}`,
		"{\"user\":{\"id\":\"@alice:example.org\",\"password\":\"\xff\"}}",
	} {
		f.Add(uint8(0), []byte(body), "text/plain")
	}
	f.Add(uint8(2), []byte(`{"by":"threepid","search_term":"+1 (555) 000-1111"}`), "")
	f.Add(uint8(2), []byte(`{"by":"name","search_term":"@carol:example.org"}`), "application/json; charset=utf-8")
	f.Add(uint8(3), []byte(`{"lookup":{"medium":"email","address":"bob@example.com"}}`), "application/json")
	f.Add(uint8(7), []byte(`{"localpart":"carol","domain":"example.org","mxid":"@carol:example.org"}`), "application/json")
	f.Add(uint8(14), []byte(aliceAL), "application/x-www-form-urlencoded")

	f.Fuzz(func(t *testing.T, route uint8, body []byte, contentType string) {
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		r := httptest.NewRequest(rt.method, "http://idp.internal"+rt.path, bytes.NewReader(body))
		if contentType != "" {
			r.Header["Content-Type"] = []string{contentType}
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if l := logs.take(); strings.Contains(l, "panic") {
			t.Fatalf("%s %s %q: panicked: %s", rt.method, rt.path, body, l)
		}
		switch w.Code {
		case 200, 400, 401, 403, 404, 405, 413, 415, 503:
		default:
			t.Fatalf("%s %s %q: status %d", rt.method, rt.path, body, w.Code)
		}
		if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("Content-Type %q", ct)
		}
		var answer any
		dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
		dec.UseNumber()
		if err := dec.Decode(&answer); err != nil {
			t.Fatalf("%s %q: answer %q is not JSON: %v", rt.path, body, w.Body, err)
		}
		if _, err := dec.Token(); err != io.EOF {
			t.Fatalf("%s %q: answer %q has more than one JSON value", rt.path, body, w.Body)
		}
		obj, ok := answer.(map[string]any)
		if !ok {
			t.Fatalf("%s %q: answer %q is not a JSON object", rt.path, body, w.Body)
		}
		if w.Code != 200 {
			if e, _ := obj["errcode"].(string); !strings.HasPrefix(e, "M_") {
				t.Errorf("%s %q: %d answer %q has no M_ errcode", rt.path, body, w.Code, w.Body)
			}
			return
		}
		if rt.method != "POST" {
			t.Fatalf("%s %s answered 200", rt.method, rt.path)
		}
		if path := nullAt(answer, "$"); path != "" {
			t.Errorf("%s %q: 200 answer %q has null at %s", rt.path, body, w.Body, path)
		}
		carol := fuzzUsers[2].user
		for _, secret := range []string{carol.DisplayName, carol.Email, carol.MSISDN, `"carol"`} {
			if strings.Contains(w.Body.String(), secret) {
				t.Errorf("%s %q: answer %q reveals the disabled account (%s)", rt.path, body, w.Body, secret)
			}
		}
		switch {
		case strings.HasSuffix(rt.path, "check_credentials"):
			checkCredentialsOracle(t, body, obj, w.Body.String())
		case strings.HasSuffix(rt.path, "/auth/login"):
			authLoginOracle(t, body, obj, w.Body.String())
		case strings.Contains(rt.path, "/identity/"):
			entries, _ := obj["lookup"].([]any)
			if single, ok := obj["lookup"].(map[string]any); ok {
				entries = []any{single}
			}
			for _, e := range entries {
				e, _ := e.(map[string]any)
				id, _ := e["id"].(map[string]any)
				if e["medium"] == "email" && id["value"] == "bob.smith" {
					t.Errorf("%s %q: answer %q reveals an unverified e-mail address", rt.path, body, w.Body)
				}
			}
		}
	})
}

// nullAt returns the path of a null inside v, or "".
func nullAt(v any, path string) string {
	switch v := v.(type) {
	case nil:
		return path
	case map[string]any:
		for k, e := range v {
			if p := nullAt(e, path+"."+k); p != "" {
				return p
			}
		}
	case []any:
		for i, e := range v {
			if p := nullAt(e, path+"["+strconv.Itoa(i)+"]"); p != "" {
				return p
			}
		}
	}
	return ""
}

// success returns auth.success, which must be a boolean.
func success(t *testing.T, obj map[string]any, answer string) bool {
	t.Helper()
	auth, ok := obj["auth"].(map[string]any)
	if !ok {
		t.Fatalf("login answer %q has no auth object", answer)
	}
	b, ok := auth["success"].(bool)
	if !ok {
		t.Fatalf("login answer %q has no boolean auth.success", answer)
	}
	return b
}

// rightPassword reports whether localpart@domain names an enabled account
// in its canonical spelling and pw is its password.
func rightPassword(localpart, domain, pw string) bool {
	if !strings.EqualFold(domain, "example.org") {
		return false
	}
	for _, fu := range fuzzUsers {
		if fu.user.Username == localpart && !fu.user.Disabled && fu.password == pw {
			return true
		}
	}
	return false
}

// members are the member names of the login requests, by their place.
var members = map[string][]string{
	"":      {"user", "auth"},
	".user": {"id", "password"},
	".auth": {"mxid", "localpart", "domain", "password"},
}

// ambiguous describes what in body encoding/json would read otherwise
// than by exact member names: a member name twice in one object (at any
// depth), or a login member spelled in another case; "" when nothing.
func ambiguous(t *testing.T, body []byte) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	var walk func(path string) string
	walk = func(path string) string {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("success for a request that does not decode: %q (%v)", body, err)
		}
		switch tok {
		case json.Delim('['):
			for dec.More() {
				if d := walk(path + "[]"); d != "" {
					return d
				}
			}
			dec.Token()
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, _ := dec.Token()
				name := k.(string)
				if seen[name] {
					return path + "." + name + " twice"
				}
				seen[name] = true
				for _, m := range members[path] {
					if name != m && strings.EqualFold(name, m) {
						return path + "." + name + " for " + m
					}
				}
				if d := walk(path + "." + name); d != "" {
					return d
				}
			}
			dec.Token()
		}
		return ""
	}
	return walk("")
}

func checkCredentialsOracle(t *testing.T, body []byte, obj map[string]any, answer string) {
	if !success(t, obj, answer) {
		return
	}
	if d := ambiguous(t, body); d != "" {
		t.Fatalf("check_credentials succeeded for %q, which has %s", body, d)
	}
	// Read the request as encoding/json does (case-insensitive members,
	// the last duplicate wins: the same, as it is not ambiguous), then
	// judge it independently.
	var req struct {
		User struct{ ID, Password string }
	}
	if err := json.Unmarshal(body, &req); err != nil {
		t.Fatalf("success for a request that does not decode: %q (%v)", body, err)
	}
	rest, _ := strings.CutPrefix(req.User.ID, "@")
	local, domain, _ := strings.Cut(rest, ":")
	if !strings.HasPrefix(req.User.ID, "@") || !rightPassword(local, domain, req.User.Password) {
		t.Fatalf("check_credentials succeeded for %q: %s", body, answer)
	}
	if auth := obj["auth"].(map[string]any); auth["mxid"] != req.User.ID {
		t.Errorf("check_credentials answered mxid %v for %q", auth["mxid"], req.User.ID)
	}
}

func authLoginOracle(t *testing.T, body []byte, obj map[string]any, answer string) {
	if !success(t, obj, answer) {
		return
	}
	if d := ambiguous(t, body); d != "" {
		t.Fatalf("auth/login succeeded for %q, which has %s", body, d)
	}
	var req struct {
		Auth struct{ MXID, Localpart, Domain, Password string }
	}
	if err := json.Unmarshal(body, &req); err != nil {
		t.Fatalf("success for a request that does not decode: %q (%v)", body, err)
	}
	a := req.Auth
	if a.MXID != "@"+a.Localpart+":"+a.Domain || !rightPassword(a.Localpart, a.Domain, a.Password) {
		t.Fatalf("auth/login succeeded for %q: %s", body, answer)
	}
	id, _ := obj["auth"].(map[string]any)["id"].(map[string]any)
	if id["type"] != "localpart" || id["value"] != a.Localpart {
		t.Errorf("auth/login answered id %v for %q", id, a.Localpart)
	}
}
