package ma1sd_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mxidp/mxidp/provider"
	"github.com/mxidp/mxidp/provider/ma1sd"
	"github.com/mxidp/mxidp/provider/password"
	"github.com/mxidp/mxidp/storage"
	"github.com/mxidp/mxidp/storage/storagetest"
)

var cheap = password.Params{Time: 1, MemoryKiB: 64, Threads: 1}

const (
	cc       = ma1sd.CheckCredentialsPath
	p        = "/_ma1sd/backend/api/v1"
	aliceCC  = `{"user":{"id":"@alice:example.org","password":"Wonder-Land-42"}}`
	aliceAL  = `{"auth":{"mxid":"@alice:example.org","localpart":"alice","domain":"example.org","password":"Wonder-Land-42"}}`
	aliceDS  = `{"by":"name","search_term":"liddell"}`
	aliceIS  = `{"lookup":{"medium":"email","address":"alice@example.com"}}`
	aliceIB  = `{"lookup":[{"medium":"email","address":"alice@example.com"}]}`
	alicePR  = `{"localpart":"alice","domain":"example.org","mxid":"@alice:example.org"}`
	failBody = `{"auth":{"success":false}}`
)

func newService(t *testing.T, opts ma1sd.Options) (*ma1sd.Service, *storage.Store) {
	t.Helper()
	store := storagetest.Open(t, "sqlite", storage.Options{})
	h, err := password.Hash("Wonder-Land-42", cheap)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.CreateUser(context.Background(), storage.User{ID: "u1", Username: "alice",
		DisplayName: "Alice Liddell", Email: "alice@example.com", EmailVerified: true, PasswordHash: h}); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	login := &provider.Login{Store: store, Hash: cheap, Logger: log}
	opts.Logger = log
	return ma1sd.New(store, login, "example.org", opts), store
}

type exchange struct {
	method, path, body string
	header             map[string]string
	remote             string
}

func (e exchange) do(h http.Handler) (int, http.Header, string) {
	method := e.method
	if method == "" {
		method = http.MethodPost
	}
	r := httptest.NewRequest(method, "http://idp.internal"+e.path, strings.NewReader(e.body))
	if e.remote != "" {
		r.RemoteAddr = e.remote
	}
	for k, v := range e.header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Header(), strings.TrimSpace(w.Body.String())
}

func jsonEqual(t *testing.T, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("body %q is not JSON: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Errorf("body %s; want %s", got, want)
	}
}

func TestAccessControlChecksSourceNetworkAndBearerToken(t *testing.T) {
	s, _ := newService(t, ma1sd.Options{
		SharedSecret:    "0123456789abcdef",
		AllowedNetworks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")},
	})
	bearer := map[string]string{"Authorization": "Bearer 0123456789abcdef"}
	for _, tc := range []struct {
		name   string
		ex     exchange
		status int
	}{
		{"allowed network and right token", exchange{path: cc, body: aliceCC, remote: "10.1.2.3:5000", header: bearer}, 200},
		{"IPv6 loopback allowed", exchange{path: cc, body: aliceCC, remote: "[::1]:5000", header: bearer}, 200},
		{"IPv4-mapped address matches its IPv4 network", exchange{path: cc, body: aliceCC, remote: "[::ffff:10.0.0.1]:5000", header: bearer}, 200},
		{"other network refused", exchange{path: cc, body: aliceCC, remote: "192.0.2.1:5000", header: bearer}, 403},
		{"missing token refused", exchange{path: cc, body: aliceCC, remote: "10.1.2.3:5000"}, 401},
		{"wrong token refused", exchange{path: cc, body: aliceCC, remote: "10.1.2.3:5000", header: map[string]string{"Authorization": "Bearer 0123456789abcdeX"}}, 401},
		{"basic auth refused", exchange{path: cc, body: aliceCC, remote: "10.1.2.3:5000", header: map[string]string{"Authorization": "Basic MDEyMzQ1Njc4OWFiY2RlZg=="}}, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, h, body := tc.ex.do(s)
			if status != tc.status {
				t.Fatalf("status %d; want %d (%s)", status, tc.status, body)
			}
			if !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
				t.Errorf("Content-Type %q", h.Get("Content-Type"))
			}
		})
	}
}

func TestFailuresAnswerWhatEachCallerNeeds(t *testing.T) {
	// With the database gone, the password endpoints and lookups say 503,
	// the directory and profiles answer empty in a 200 (README, "Database
	// outages"): ma1sd turns any other status there into a 500 for the
	// Matrix client.
	s, store := newService(t, ma1sd.Options{})
	store.Close()
	for _, tc := range []struct {
		ex     exchange
		status int
		want   string
	}{
		{exchange{path: cc, body: aliceCC}, 503, ""},
		{exchange{path: p + "/auth/login", body: aliceAL}, 503, ""},
		{exchange{path: p + "/directory/user/search", body: aliceDS}, 200, `{"limited":true,"results":[]}`},
		{exchange{path: p + "/identity/single", body: aliceIS}, 503, ""},
		{exchange{path: p + "/identity/bulk", body: aliceIB}, 503, ""},
		{exchange{path: p + "/profile/displayName", body: alicePR}, 200, `{"profile":{}}`},
		{exchange{path: p + "/profile/roles", body: alicePR}, 200, `{"profile":{}}`},
	} {
		t.Run(tc.ex.path, func(t *testing.T) {
			status, _, body := tc.ex.do(s)
			if status != tc.status {
				t.Fatalf("status %d; want %d (%s)", status, tc.status, body)
			}
			if tc.want != "" {
				jsonEqual(t, body, tc.want)
			} else {
				jsonEqual(t, body, `{"errcode":"M_UNKNOWN","error":"temporarily unavailable; try again"}`)
			}
		})
	}
}

func TestEveryEndpointAnswersWithinItsDeadline(t *testing.T) {
	// A request whose deadline has passed still gets a whole answer.
	s, _ := newService(t, ma1sd.Options{Timeout: time.Nanosecond})
	for _, ex := range []exchange{
		{path: cc, body: aliceCC}, {path: p + "/auth/login", body: aliceAL},
		{path: p + "/directory/user/search", body: aliceDS}, {path: p + "/identity/single", body: aliceIS},
		{path: p + "/identity/bulk", body: aliceIB}, {path: p + "/profile/displayName", body: alicePR},
	} {
		t.Run(ex.path, func(t *testing.T) {
			start := time.Now()
			status, _, body := ex.do(s)
			if status != 200 && status != 503 {
				t.Errorf("status %d (%s); want 200 or 503", status, body)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("took %v", d)
			}
			var v map[string]any
			if err := json.Unmarshal([]byte(body), &v); err != nil {
				t.Errorf("incomplete answer %q", body)
			}
		})
	}
}

func TestProfileThreepidsAreHiddenUnlessExposed(t *testing.T) {
	for _, tc := range []struct {
		expose bool
		want   string
	}{
		{false, `{"profile":{}}`}, // off by default
		{true, `{"profile":{"threepids":[{"medium":"email","address":"alice@example.com"}]}}`},
	} {
		s, _ := newService(t, ma1sd.Options{ExposeProfileThreepids: tc.expose})
		status, _, body := exchange{path: p + "/profile/threepids", body: alicePR}.do(s)
		if status != 200 {
			t.Fatalf("status %d", status)
		}
		jsonEqual(t, body, tc.want)
	}
}

func TestMalformedRequestsGetJSONErrorsNeverAPanic(t *testing.T) {
	s, _ := newService(t, ma1sd.Options{})
	for _, tc := range []struct {
		name    string
		ex      exchange
		status  int
		errcode string
	}{
		{"null body", exchange{path: cc, body: `null`}, 400, "M_NOT_JSON"},
		{"array body", exchange{path: cc, body: `[]`}, 400, "M_NOT_JSON"},
		{"string body", exchange{path: cc, body: `"x"`}, 400, "M_NOT_JSON"},
		{"empty body", exchange{path: cc, body: ``}, 400, "M_NOT_JSON"},
		{"trailing garbage", exchange{path: cc, body: aliceCC + `x`}, 400, "M_NOT_JSON"},
		{"user null", exchange{path: cc, body: `{"user":null}`}, 400, "M_BAD_JSON"},
		{"user a string", exchange{path: cc, body: `{"user":"alice"}`}, 400, "M_BAD_JSON"},
		{"id null", exchange{path: cc, body: `{"user":{"id":null,"password":"x"}}`}, 400, "M_BAD_JSON"},
		{"directory by missing", exchange{path: p + "/directory/user/search", body: `{"search_term":"a"}`}, 400, "M_BAD_JSON"},
		{"directory term a number", exchange{path: p + "/directory/user/search", body: `{"by":"name","search_term":1}`}, 400, "M_BAD_JSON"},
		{"bulk lookup null", exchange{path: p + "/identity/bulk", body: `{"lookup":null}`}, 400, "M_BAD_JSON"},
		{"bulk entry null skipped", exchange{path: p + "/identity/bulk", body: `{"lookup":[null,{"medium":"email"}]}`}, 200, ""},
		{"profile fields missing", exchange{path: p + "/profile/roles", body: `{}`}, 400, "M_BAD_JSON"},
		{"profile mxid disagrees", exchange{path: p + "/profile/displayName", body: `{"localpart":"alice","domain":"example.org","mxid":"@bob:example.org"}`}, 200, ""},
		{"unknown path", exchange{path: p + "/auth/logout", body: `{}`}, 404, "M_UNRECOGNIZED"},
		{"wrong method on a known path", exchange{method: "PUT", path: p + "/auth/login", body: aliceAL}, 405, "M_UNRECOGNIZED"},
		{"body over 1 MiB", exchange{path: cc, body: `{"user":{"id":"` + strings.Repeat("a", 2<<20) + `"}}`}, 413, "M_TOO_LARGE"},
		{"bulk body of 2 MiB accepted", exchange{path: p + "/identity/bulk", body: `{"lookup":[],"pad":"` + strings.Repeat("a", 2<<20) + `"}`}, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := tc.ex.do(s)
			if status != tc.status {
				t.Fatalf("status %d; want %d (%s)", status, tc.status, body)
			}
			var v map[string]any
			if err := json.Unmarshal([]byte(body), &v); err != nil {
				t.Fatalf("body %q is no JSON object", body)
			}
			if tc.errcode != "" && v["errcode"] != tc.errcode {
				t.Errorf("errcode %v; want %s", v["errcode"], tc.errcode)
			}
		})
	}
}

func TestDoubledSlashesReachTheServiceWithoutRedirect(t *testing.T) {
	s, _ := newService(t, ma1sd.Options{})
	for _, path := range []string{"/" + cc, "//" + p + "//auth/login", "/_mxisd/backend/api/v1//auth/login"} {
		if !ma1sd.Handles(path) {
			t.Errorf("Handles(%q) = false", path)
		}
		body := aliceCC
		if strings.Contains(path, "auth/login") {
			body = aliceAL
		}
		status, _, got := exchange{path: path, body: body}.do(s)
		if status != 200 || !strings.Contains(got, `"success":true`) {
			t.Errorf("POST %s: %d %s", path, status, got)
		}
	}
	for _, path := range []string{"/keys", "/_matrix/client/r0/login", "/authorize"} {
		if ma1sd.Handles(path) {
			t.Errorf("Handles(%q) = true", path)
		}
	}
}

func TestRefusalsAreIndistinguishable(t *testing.T) {
	s, _ := newService(t, ma1sd.Options{})
	for _, body := range []string{
		`{"user":{"id":"@alice:example.org","password":"wrong"}}`,
		`{"user":{"id":"@zed:example.org","password":"Wonder-Land-42"}}`,
		`{"user":{"id":"@alice:EXAMPLE.org:8448","password":"Wonder-Land-42"}}`,
		`{"user":{"id":"@alice@example.com:example.org","password":"Wonder-Land-42"}}`,
		`{"user":{"id":"@alice.liddell@example.com:example.org","password":"Wonder-Land-42"}}`,
		`{"user":{"id":"@:example.org","password":"Wonder-Land-42"}}`,
		`{"user":{"id":"@alice:","password":"Wonder-Land-42"}}`,
	} {
		status, _, got := exchange{path: cc, body: body}.do(s)
		if status != 200 || got != failBody {
			t.Errorf("%s: %d %s; want 200 %s", body, status, got, failBody)
		}
	}
	// The domain is compared without regard to case, like DNS names.
	status, _, got := exchange{path: cc, body: `{"user":{"id":"@alice:EXAMPLE.org","password":"Wonder-Land-42"}}`}.do(s)
	if status != 200 || !strings.Contains(got, `"success":true`) {
		t.Errorf("upper-case domain: %d %s; want success", status, got)
	}
}

func TestLoginProfileCanOmitDisplayNameAndThreePIDs(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts ma1sd.Options
		want string
	}{
		{"everything by default", ma1sd.Options{},
			`{"auth":{"success":true,"mxid":"@alice:example.org","display_name":"Alice Liddell","profile":{"display_name":"Alice Liddell","three_pids":[{"medium":"email","address":"alice@example.com"}]}}}`},
		{"no display name", ma1sd.Options{LoginOmitsDisplayName: true},
			`{"auth":{"success":true,"mxid":"@alice:example.org","profile":{"three_pids":[{"medium":"email","address":"alice@example.com"}]}}}`},
		{"no 3PIDs", ma1sd.Options{LoginOmitsThreePIDs: true},
			`{"auth":{"success":true,"mxid":"@alice:example.org","display_name":"Alice Liddell","profile":{"display_name":"Alice Liddell"}}}`},
		{"neither, profile still present", ma1sd.Options{LoginOmitsDisplayName: true, LoginOmitsThreePIDs: true},
			`{"auth":{"success":true,"mxid":"@alice:example.org","profile":{}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newService(t, tc.opts)
			status, _, body := exchange{path: cc, body: aliceCC}.do(s)
			if status != 200 {
				t.Fatalf("status %d", status)
			}
			jsonEqual(t, body, tc.want)
		})
	}
}

// While the database is known to be down, every endpoint answers at once
// what it answers when the database fails, but only after the access
// checks: a stranger still gets 403, not a hint about the database.
func TestWhileTheDatabaseIsDownAnswersComeAtOnceAfterTheAccessChecks(t *testing.T) {
	s, _ := newService(t, ma1sd.Options{AllowedNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	down := true
	s.WhileDown(func() bool { return down })
	local, stranger := "127.0.0.1:4000", "192.0.2.9:4000"
	for _, tc := range []struct {
		path, body, remote string
		status             int
		want               string
	}{
		{cc, aliceCC, local, 503, `{"errcode":"M_UNKNOWN","error":"temporarily unavailable; try again"}`},
		{p + "/auth/login", aliceAL, local, 503, `{"errcode":"M_UNKNOWN","error":"temporarily unavailable; try again"}`},
		{p + "/identity/single", aliceIS, local, 503, `{"errcode":"M_UNKNOWN","error":"temporarily unavailable; try again"}`},
		{p + "/directory/user/search", aliceDS, local, 200, `{"limited":true,"results":[]}`},
		{p + "/profile/displayName", alicePR, local, 200, `{"profile":{}}`},
		{cc, aliceCC, stranger, 403, `{"errcode":"M_FORBIDDEN","error":"this address may not use the REST service"}`},
		{p + "/nothing", "{}", local, 404, `{"errcode":"M_UNRECOGNIZED","error":"unknown endpoint"}`},
	} {
		status, _, body := exchange{path: tc.path, body: tc.body, remote: tc.remote}.do(s)
		if status != tc.status {
			t.Errorf("%s from %s: %d %s; want %d", tc.path, tc.remote, status, body, tc.status)
		}
		jsonEqual(t, body, tc.want)
	}
	down = false
	if status, _, body := (exchange{path: cc, body: aliceCC, remote: local}).do(s); status != 200 || !strings.Contains(body, `"success":true`) {
		t.Errorf("after the database returned: %d %s", status, body)
	}
}

// Behind a trusted proxy the client the proxy names is judged, not the
// proxy: a same-host proxy must not let the internet in.
func TestAccessControlJudgesTheClientATrustedProxyNames(t *testing.T) {
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	s, _ := newService(t, ma1sd.Options{AllowedNetworks: loopback, TrustedProxies: loopback})
	for _, tc := range []struct {
		name, remote, xff, fwd string
		status                 int
	}{
		{"Synapse on loopback", "127.0.0.1:5000", "", "", 200},
		{"internet client through the proxy", "127.0.0.1:5000", "203.0.113.7", "", 403},
		{"internet client spoofing loopback in front", "127.0.0.1:5000", "127.0.0.1, 203.0.113.7", "", 403},
		{"internet client through a Forwarded proxy", "127.0.0.1:5000", "", "for=203.0.113.7", 403},
		{"IPv6 internet client, quoted with a port", "[::1]:5000", "", `for="[2001:db8::7]:4711"`, 403},
		{"loopback client through the proxy", "127.0.0.1:5000", "127.0.0.1", "", 200},
		{"loopback client through a Forwarded proxy", "127.0.0.1:5000", "", `For="[::1]:5555";proto=http`, 200},
		{"damaged header from the proxy", "127.0.0.1:5000", "nonsense", "", 403},
		{"unknown client from the proxy", "127.0.0.1:5000", "", "for=unknown", 403},
		{"headers that disagree", "127.0.0.1:5000", "203.0.113.7", "for=127.0.0.1", 403},
		{"untrusted peer claims loopback", "192.0.2.9:5000", "127.0.0.1", "for=127.0.0.1", 403},
	} {
		ex := exchange{path: cc, body: aliceCC, remote: tc.remote, header: map[string]string{}}
		if tc.xff != "" {
			ex.header["X-Forwarded-For"] = tc.xff
		}
		if tc.fwd != "" {
			ex.header["Forwarded"] = tc.fwd
		}
		status, _, body := ex.do(s)
		if status != tc.status {
			t.Errorf("%s: %d %s; want %d", tc.name, status, body, tc.status)
			continue
		}
		if status == 403 {
			jsonEqual(t, body, `{"errcode":"M_FORBIDDEN","error":"this address may not use the REST service"}`)
		}
	}

	// A peer that is not a trusted proxy is judged by its own address
	// whatever it claims, and the log says once that its header was ignored.
	logs := &syncBuffer{}
	login := &provider.Login{Store: storagetest.Open(t, "sqlite", storage.Options{}), Hash: cheap}
	s = ma1sd.New(login.Store, login, "example.org", ma1sd.Options{AllowedNetworks: loopback,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")}, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	for range 2 {
		ex := exchange{path: cc, body: aliceCC, remote: "127.0.0.1:5000", header: map[string]string{"X-Forwarded-For": "203.0.113.7"}}
		if status, _, body := ex.do(s); status != 200 {
			t.Errorf("loopback peer outside trusted_proxies with a header: %d %s; want 200", status, body)
		}
	}
	if n := strings.Count(logs.take(), "not in trusted_proxies"); n != 1 {
		t.Errorf("the log warned %d times about an untrusted peer's header; want once", n)
	}
}

// Duplicate members and members spelled in another case are refused
// before any password check: encoding/json alone would take the last
// duplicate and match names case-insensitively.
func TestDuplicateAndWrongCaseMembersAreRefused(t *testing.T) {
	s, _ := newService(t, ma1sd.Options{})
	for _, tc := range []struct {
		path, body, want string // want: the error text, or "" for success
	}{
		{cc, `{"user":{"id":"@alice:example.org","password":"wrong","password":"Wonder-Land-42"}}`, "member user.password appears twice"},
		{cc, `{"user":{"id":"@alice:example.org","password":"wrong"},"user":{"id":"@alice:example.org","password":"Wonder-Land-42"}}`, "member user appears twice"},
		{cc, `{"user":{"id":"@alice:example.org","password":"wrong","pass\u0077ord":"Wonder-Land-42"}}`, "member user.password appears twice"},
		{cc, `{"user":{"id":"@alice:example.org","Password":"Wonder-Land-42"}}`, "member user.Password must be spelled password (member names are case-sensitive)"},
		{cc, `{"USER":{"id":"@alice:example.org","password":"Wonder-Land-42"}}`, "member USER must be spelled user (member names are case-sensitive)"},
		{cc, `{"user":{"id":"@alice:example.org","password":"wrong","PASSWORD":"Wonder-Land-42"}}`, "member user.PASSWORD must be spelled password (member names are case-sensitive)"},
		{cc, `{"user":{"id":"@alice:example.org","paſſword":"Wonder-Land-42"}}`, "member user.paſſword must be spelled password (member names are case-sensitive)"},
		{cc, aliceCC[:len(aliceCC)-1] + `,"extra":{"a":1,"a":2}}`, "member extra.a appears twice"},
		{cc, aliceCC[:len(aliceCC)-1] + `,"extra":[{},{"a":[{"b":1,"b":2}]}]}`, "member extra[1].a[0].b appears twice"},
		{p + "/auth/login", `{"auth":{"mxid":"@alice:example.org","localpart":"alice","domain":"example.org","password":"x","Password":"Wonder-Land-42"}}`, "member auth.Password must be spelled password (member names are case-sensitive)"},
		{p + "/identity/bulk", `{"lookup":[{"medium":"email","address":"a@example.com"},{"medium":"email","Address":"alice@example.com"}]}`, "member lookup[1].Address must be spelled address (member names are case-sensitive)"},
		{p + "/identity/single", `{"lookup":{"medium":"email","address":"x@example.com","address":"alice@example.com"}}`, "member lookup.address appears twice"},
		{p + "/directory/user/search", `{"by":"name","by":"threepid","search_term":"alice@example.com"}`, "member by appears twice"},
		{p + "/profile/roles", `{"localpart":"alice","domain":"example.org","mxid":"@alice:example.org","MXID":"@alice:example.org"}`, "member MXID must be spelled mxid (member names are case-sensitive)"},
		// Unknown members stay ignored, even spelled like known ones elsewhere.
		{cc, aliceCC[:len(aliceCC)-1] + `,"extra":{"Password":1,"PASSWORD":2},"id":3}`, ""},
		{cc, `{"user":{"id":"@alice:example.org","pass\u0077ord":"Wonder-Land-42"}}`, ""},
	} {
		status, _, body := exchange{path: tc.path, body: tc.body}.do(s)
		if tc.want == "" {
			if status != 200 || !strings.Contains(body, `"success":true`) {
				t.Errorf("%s %s: %d %s; want success", tc.path, tc.body, status, body)
			}
			continue
		}
		if status != 400 {
			t.Errorf("%s %s: %d %s; want 400", tc.path, tc.body, status, body)
			continue
		}
		b, _ := json.Marshal(map[string]string{"errcode": "M_BAD_JSON", "error": tc.want})
		jsonEqual(t, body, string(b))
	}
}
