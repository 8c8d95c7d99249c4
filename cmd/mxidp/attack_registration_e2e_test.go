package main

// Attacks on dynamic client registration (RFC 7591, as the Matrix
// client-server API's OAuth 2.0 API profiles it; docs/registration.md),
// the one door where anyone may write a client: what it refuses, how many
// rows one network or everyone together can leave, what a registered
// client can and cannot do at the authorization endpoint, and what the
// consent page shows of what it said about itself. Every refusal is
// checked to have stored nothing.

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/mxidp/mxidp/storage/storagetest"
	"golang.org/x/oauth2"
)

const registrationPath = "/oauth2/registration"

// nextGenYAML turns next-gen auth on, which serves registration. Synapse's
// URL leads nowhere: registering, authorizing and consenting need no
// Synapse (only issuing a Matrix device's token does).
func nextGenYAML(t *testing.T) string {
	t.Helper()
	secretFile := filepath.Join(t.TempDir(), "synapse-secret")
	secret := randomAlnum(48)
	noteSecret(secret)
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("matrix:\n  server_name: mx.test\n  synapse:\n    url: http://127.0.0.1:9\n    shared_secret_file: %s\n", secretFile)
}

// eachRegistrationBackend runs test against mxidp in next-gen auth on
// every backend, with more configuration (YAML).
func eachRegistrationBackend(t *testing.T, extraYAML string, test func(t *testing.T, e *openIDEnv)) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			test(t, startOpenIDWith(t, backend, nextGenYAML(t)+extraYAML))
		})
	}
}

// registered is an answer of the registration endpoint.
type registered struct {
	status int
	header http.Header
	body   []byte
	json   map[string]any
}

func (r registered) String() string { return fmt.Sprintf("%d %s", r.status, r.body) }

// register posts body to the registration endpoint with the content type
// and headers given.
func (e *openIDEnv) register(body, contentType string, headers ...string) registered {
	e.t.Helper()
	return e.registerRequest(http.MethodPost, strings.NewReader(body), int64(len(body)), contentType, headers...)
}

func (e *openIDEnv) registerRequest(method string, body interface{ Read([]byte) (int, error) }, length int64, contentType string, headers ...string) registered {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.ctx, method, e.issuer+registrationPath, body)
	if err != nil {
		e.t.Fatal(err)
	}
	req.ContentLength = length
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	status, h, b := e.send(req)
	r := registered{status: status, header: h, body: b}
	json.Unmarshal(b, &r.json)
	return r
}

// metadata is a registration request body: a native client of
// example.org unless fields replace (or, with nil, remove) its members.
func metadata(fields map[string]any) string {
	m := map[string]any{
		"client_name":                "Example Chat",
		"client_uri":                 "https://example.org/",
		"redirect_uris":              []string{"org.example.chat:/callback", "http://127.0.0.1/callback"},
		"application_type":           "native",
		"token_endpoint_auth_method": "none",
		"grant_types":                []string{"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"},
		"response_types":             []string{"code"},
	}
	for k, v := range fields {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return string(mustJSON(m))
}

// dynamicClients counts the clients that registered themselves, and the
// audit events of registrations.
func (e *openIDEnv) dynamicClients() (clients, audited int) {
	e.t.Helper()
	c := &cli{t: e.t, env: e.d.env}
	if err := c.store().DB().QueryRowContext(e.ctx, `SELECT COUNT(*) FROM clients WHERE dynamic`).Scan(&clients); err != nil {
		e.t.Fatal(err)
	}
	return clients, len(auditJSONOf(e.t, c, "--event", "client.registered"))
}

// wantRegistered checks a 201 of RFC 7591 §3.2.1 and returns the client ID.
func wantRegistered(t *testing.T, r registered) string {
	t.Helper()
	id, _ := r.json["client_id"].(string)
	if r.status != http.StatusCreated || !isJSON(r.header) || id == "" || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("registration: %s (Content-Type %q, Cache-Control %q); want 201 JSON with a client_id, not stored by caches",
			r, r.header.Get("Content-Type"), r.header.Get("Cache-Control"))
	}
	return id
}

// A refused registration answers with the documented error as JSON and
// stores nothing: no client, no audit event.
func TestRegistrationRefusalsStoreNothing(t *testing.T) {
	big := metadata(map[string]any{"contacts": []string{strings.Repeat("a", 17<<10)}})
	deep := `{"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `,"client_uri":"https://example.org/","redirect_uris":["org.example:/cb"],"application_type":"native"}`
	cases := []struct {
		name, method, contentType, body string
		chunked                         bool
		status                          int
		code                            string // the "error" member
		says                            string // in error_description
	}{
		{"GET", http.MethodGet, "", "", false, 405, "invalid_request", "POST"},
		{"PUT", http.MethodPut, "application/json", metadata(nil), false, 405, "invalid_request", "POST"},
		{"DELETE", http.MethodDelete, "", "", false, 405, "invalid_request", "POST"},
		{"no content type", "", "", metadata(nil), false, 415, "invalid_request", "application/json"},
		{"a form", "", "application/x-www-form-urlencoded", "client_uri=https://example.org/", false, 415, "invalid_request", "application/json"},
		{"text/plain (a CORS simple request)", "", "text/plain", metadata(nil), false, 415, "invalid_request", "application/json"},
		{"announced over 16 KiB", "", "application/json", big, false, 413, "invalid_request", "16 KiB"},
		{"chunked over 16 KiB", "", "application/json", big, true, 413, "invalid_request", "16 KiB"},
		{"over the server's 64 KiB cap", "", "application/json", strings.Repeat(" ", 70<<10) + metadata(nil), false, 413, "invalid_request", "64 KiB"},
		{"malformed JSON", "", "application/json", `{"client_uri": "https://example.org/",`, false, 400, "invalid_client_metadata", "not valid JSON"},
		{"a JSON array", "", "application/json", `[` + metadata(nil) + `]`, false, 400, "invalid_client_metadata", "JSON object"},
		{"two objects", "", "application/json", metadata(nil) + metadata(nil), false, 400, "invalid_client_metadata", "nothing after"},
		{"duplicate keys", "", "application/json", `{"client_uri":"https://example.org/","redirect_uris":["org.example:/cb"],"application_type":"native","redirect_uris":["com.evil:/cb"]}`, false, 400, "invalid_client_metadata", "twice"},
		{"nested too deep", "", "application/json", deep, false, 400, "invalid_client_metadata", "nested"},
		{"not UTF-8", "", "application/json", "{\"client_name\":\"\xc3\x28\"}", false, 400, "invalid_client_metadata", "UTF-8"},
		{"confidential client (client_secret_basic)", "", "application/json", metadata(map[string]any{"token_endpoint_auth_method": "client_secret_basic"}), false, 400, "invalid_client_metadata", "public clients"},
		{"confidential client (client_secret_post)", "", "application/json", metadata(map[string]any{"token_endpoint_auth_method": "client_secret_post"}), false, 400, "invalid_client_metadata", "public clients"},
		{"private_key_jwt", "", "application/json", metadata(map[string]any{"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://example.org/jwks"}), false, 400, "invalid_client_metadata", "public clients"},
		{"no client_uri", "", "application/json", metadata(map[string]any{"client_uri": nil}), false, 400, "invalid_client_metadata", "client_uri is required"},
		{"logo on another host", "", "application/json", metadata(map[string]any{"logo_uri": "https://tracker.example.net/pixel.png"}), false, 400, "invalid_client_metadata", "logo_uri must be on example.org"},
		{"logo on a look-alike host", "", "application/json", metadata(map[string]any{"logo_uri": "https://example.org.evil.com/logo.png"}), false, 400, "invalid_client_metadata", "logo_uri must be on example.org"},
		{"logo over http", "", "application/json", metadata(map[string]any{"logo_uri": "http://example.org/logo.png"}), false, 400, "invalid_client_metadata", "https"},
		{"terms as javascript:", "", "application/json", metadata(map[string]any{"tos_uri": "javascript:alert(document.cookie)"}), false, 400, "invalid_client_metadata", "https"},
		{"a name with control characters", "", "application/json", metadata(map[string]any{"client_name": "Chat\r\nSet-Cookie: x"}), false, 400, "invalid_client_metadata", "control"},
		{"a name reversed by a bidi override", "", "application/json", metadata(map[string]any{"client_name": "Element \u202eoi.tnemele"}), false, 400, "invalid_client_metadata", "control"},
		{"no authorization_code grant", "", "application/json", metadata(map[string]any{"grant_types": []string{"client_credentials"}}), false, 400, "invalid_client_metadata", "authorization_code"},
	}
	for _, uri := range []struct{ name, appType, uri, says string }{
		{"web: http off loopback", "web", "http://example.org/callback", "https"},
		{"native: http off loopback", "native", "http://example.org/callback", "loopback"},
		{"native: http on a LAN address", "native", "http://192.168.1.10/callback", "loopback"},
		{"web: another host", "web", "https://evil.com/callback", "must be on example.org"},
		{"web: a look-alike host", "web", "https://example.org.evil.com/callback", "must be on example.org"},
		{"web: a host that ends like it", "web", "https://evilexample.org/callback", "must be on example.org"},
		{"native: javascript:", "native", "javascript:alert(1)", "org.example"},
		{"web: javascript:", "web", "javascript:alert(1)", "https"},
		{"native: data:", "native", "data:text/html,<script>alert(1)</script>", "unencoded"},
		{"native: data: without markup", "native", "data:text/html,hello", "org.example"},
		{"a fragment", "web", "https://app.example.org/callback#token", "fragment"},
		{"userinfo", "web", "https://example.org@evil.com/callback", "user"},
		{"userinfo before loopback", "native", "http://127.0.0.1:80@evil.com/callback", "user"},
		{"a wildcard host", "web", "https://*.example.org/callback", "wildcard"},
		{"a wildcard path", "native", "http://127.0.0.1/*", "wildcard"},
		{"a scheme not the reverse-DNS of client_uri", "native", "com.evil.app:/callback", "org.example"},
		{"a scheme that merely starts like it", "native", "org.examplex:/callback", "org.example"},
		{"a scheme with an authority", "native", "org.example.app://callback", "authority"},
		{"https with no host", "web", "https:///callback", "no host"},
		{"https with nothing after", "native", "https://", "no host"},
		{"native: https on loopback", "native", "https://localhost/callback", "public host"},
		{"a relative URI", "web", "/callback", "absolute"},
	} {
		cases = append(cases, struct {
			name, method, contentType, body string
			chunked                         bool
			status                          int
			code                            string
			says                            string
		}{"redirect_uri " + uri.name, "", "application/json",
			metadata(map[string]any{"application_type": uri.appType, "redirect_uris": []string{"https://app.example.org/ok", uri.uri}}),
			false, 400, "invalid_redirect_uri", uri.says})
	}
	eachRegistrationBackend(t, "", func(t *testing.T, e *openIDEnv) {
		for _, tc := range cases {
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			length := int64(len(tc.body))
			var body interface{ Read([]byte) (int, error) } = strings.NewReader(tc.body)
			if tc.chunked {
				length, body = -1, struct{ *strings.Reader }{strings.NewReader(tc.body)}
			}
			r := e.registerRequest(method, body, length, tc.contentType)
			desc, _ := r.json["error_description"].(string)
			if r.status != tc.status || r.json["error"] != tc.code || !strings.Contains(desc, tc.says) || !isJSON(r.header) {
				t.Errorf("%s: %s (Content-Type %q); want %d %s saying %q", tc.name, r, r.header.Get("Content-Type"), tc.status, tc.code, tc.says)
			}
			if tc.status == 405 && r.header.Get("Allow") != "POST, OPTIONS" {
				t.Errorf("%s: Allow %q, want POST, OPTIONS", tc.name, r.header.Get("Allow"))
			}
			if r.header.Get("Cache-Control") != "no-store" {
				t.Errorf("%s: Cache-Control %q, want no-store", tc.name, r.header.Get("Cache-Control"))
			}
		}
		if clients, audited := e.dynamicClients(); clients != 0 || audited != 0 {
			t.Errorf("after %d refused registrations: %d clients, %d audit events stored; want none", len(cases), clients, audited)
		}
		// The door is still open for a good registration afterwards.
		wantRegistered(t, e.register(metadata(nil), "application/json; charset=utf-8"))
	})
}

// A registration answers as RFC 7591 §3.2.1 says, to any origin (browser
// clients register from their own) but without credentials, and is
// audited with the client's network.
func TestRegistrationAnswersWithTheRegisteredMetadata(t *testing.T) {
	eachRegistrationBackend(t, "", func(t *testing.T, e *openIDEnv) {
		before := time.Now().Unix()
		r := e.register(metadata(map[string]any{
			"client_name#de": "Beispiel-Chat", "logo_uri": "https://example.org/logo.png",
			"tos_uri": "https://example.org/tos", "policy_uri": "https://www.example.org/privacy",
			"software_statement": "eyJhbGciOiJub25lIn0.e30.", "contacts": []string{"ops@example.org"},
		}), "application/json", "Origin", "https://app.example.org")
		id := wantRegistered(t, r)
		if !regexp.MustCompile(`^[A-Za-z0-9_-]{22,}$`).MatchString(id) {
			t.Errorf("client_id %q: want a random URL-safe ID", id)
		}
		issued, _ := r.json["client_id_issued_at"].(float64)
		if int64(issued) < before-1 || int64(issued) > time.Now().Unix()+1 {
			t.Errorf("client_id_issued_at %v; want now (%d)", r.json["client_id_issued_at"], before)
		}
		want := map[string]any{
			"client_name": "Example Chat", "client_uri": "https://example.org/", "logo_uri": "https://example.org/logo.png",
			"tos_uri": "https://example.org/tos", "policy_uri": "https://www.example.org/privacy",
			"redirect_uris":              []any{"org.example.chat:/callback", "http://127.0.0.1/callback"},
			"token_endpoint_auth_method": "none", "application_type": "native",
			"grant_types": []any{"authorization_code", "refresh_token"}, "response_types": []any{"code"},
		}
		for k, v := range want {
			if fmt.Sprint(r.json[k]) != fmt.Sprint(v) {
				t.Errorf("%s = %v, want %v", k, r.json[k], v)
			}
		}
		for _, k := range []string{"client_secret", "client_name#de", "software_statement", "contacts", "registration_access_token"} {
			if _, ok := r.json[k]; ok {
				t.Errorf("the answer has %s; want it left out (not registered)", k)
			}
		}
		if r.header.Get("Access-Control-Allow-Origin") != "*" || r.header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("CORS: Allow-Origin %q, Allow-Credentials %q; want * and none",
				r.header.Get("Access-Control-Allow-Origin"), r.header.Get("Access-Control-Allow-Credentials"))
		}
		// The preflight a browser sends first, for the JSON content type.
		pre := e.registerRequest(http.MethodOptions, strings.NewReader(""), 0, "", "Origin", "https://app.example.org",
			"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type")
		if pre.status != http.StatusNoContent || pre.header.Get("Access-Control-Allow-Origin") != "*" ||
			!strings.Contains(pre.header.Get("Access-Control-Allow-Methods"), "POST") ||
			!strings.Contains(strings.ToLower(pre.header.Get("Access-Control-Allow-Headers")), "content-type") ||
			pre.header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("preflight: %d %v", pre.status, pre.header)
		}
		// A second registration of the same metadata is a client of its own.
		if other := wantRegistered(t, e.register(metadata(nil), "application/json")); other == id {
			t.Errorf("two registrations got one client_id %q", id)
		}
		events := auditJSONOf(t, &cli{t: t, env: e.d.env}, "--event", "client.registered")
		found := 0
		for _, ev := range events {
			if ev.ClientID == id && ev.Network == "127.0.0.1" && strings.Contains(ev.Detail, `native application "Example Chat" from https://example.org/`) {
				found++
			}
		}
		if len(events) != 2 || found != 1 {
			t.Errorf("audit events of the registrations: %+v; want two, one of them %s's, with its network and metadata", events, id)
		}
	})
}

// Registration is routed only in next-gen auth.
func TestRegistrationIsNotServedWithoutNextGenAuth(t *testing.T) {
	e := startOpenID(t, "sqlite")
	if r := e.register(metadata(nil), "application/json"); r.status != http.StatusNotFound {
		t.Errorf("registration without next-gen auth: %s; want 404", r)
	}
	var meta map[string]any
	if err := e.provider.Claims(&meta); err != nil || meta["registration_endpoint"] != nil {
		t.Errorf("discovery names registration_endpoint %v without next-gen auth", meta["registration_endpoint"])
	}
}

// A flood from one network gets its burst and then 429, whatever
// X-Forwarded-For it claims (its peer is no trusted proxy), and leaves
// that many rows.
func TestRegistrationFloodFromOneNetworkGetsItsBurst(t *testing.T) {
	eachRegistrationBackend(t, "trusted_proxies: []\nthrottle:\n  registration_burst: 5\n  registration_per_second: 0.001\n", func(t *testing.T, e *openIDEnv) {
		var mu sync.Mutex
		statuses := map[int]int{}
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := e.register(metadata(nil), "application/json", "X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i))
				if r.status == http.StatusTooManyRequests && (r.json["error"] != "temporarily_unavailable" || r.header.Get("Retry-After") == "") {
					t.Errorf("refused registration: %s, Retry-After %q", r, r.header.Get("Retry-After"))
				}
				mu.Lock()
				statuses[r.status]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		if statuses[201] != 5 || statuses[429] != 35 {
			t.Errorf("40 registrations from one network: %v; want 5 created, 35 refused with 429", statuses)
		}
		if clients, audited := e.dynamicClients(); clients != 5 || audited != 5 {
			t.Errorf("after the flood: %d clients, %d audit events; want 5 each", clients, audited)
		}
		// Refusals cost the network nothing: it is refused for the
		// registration it tries, not for the junk before.
		if r := e.register("{", "application/json"); r.status != http.StatusBadRequest {
			t.Errorf("malformed registration during the limit: %s; want 400 (checked before the limit)", r)
		}
	})
}

// However many networks register, no more than the cap of registrations
// nobody used are stored: past it, 503 until sign-ins or the purge free
// room.
func TestRegistrationsPastTheUnusedCapAreRefused(t *testing.T) {
	eachRegistrationBackend(t, "throttle:\n  registration_max_unused: 3\n", func(t *testing.T, e *openIDEnv) {
		var created, full int
		for i := range 6 {
			// Each from a network of its own, named by the trusted proxy (loopback).
			switch r := e.register(metadata(nil), "application/json", "X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i+1)); r.status {
			case http.StatusCreated:
				created++
			case http.StatusServiceUnavailable:
				full++
				if r.json["error"] != "temporarily_unavailable" || r.header.Get("Retry-After") == "" {
					t.Errorf("registration past the cap: %s, Retry-After %q", r, r.header.Get("Retry-After"))
				}
			default:
				t.Errorf("registration: %s", r)
			}
		}
		if created != 3 || full != 3 {
			t.Errorf("6 registrations with a cap of 3 unused: %d created, %d refused; want 3 and 3", created, full)
		}
		if clients, _ := e.dynamicClients(); clients != 3 {
			t.Errorf("%d dynamic clients stored; want 3", clients)
		}
	})
}

// The purge deletes registrations nobody used within an hour of
// registering, and keeps one with a sign-in under way and the operator's
// clients.
func TestUnusedRegistrationsArePurged(t *testing.T) {
	eachRegistrationBackend(t, "", func(t *testing.T, e *openIDEnv) {
		unused := wantRegistered(t, e.register(metadata(nil), "application/json"))
		used := wantRegistered(t, e.register(metadata(nil), "application/json"))
		operator := e.addClient("operator-app")
		// used has an authorization request under way.
		b := newBrowser(t)
		p := b.get(nativeAuthURL(e, used, "http://127.0.0.1:40123/callback", oidc.ScopeOpenID))
		p = b.until(p, "http://127.0.0.1:40123/")
		if _, ok := parseLoginForm(p); !ok {
			t.Fatalf("no login form for the used client: %d %s", p.status, p.body)
		}
		// Both registered two hours ago, as far as the database knows.
		db := (&cli{t: t, env: e.d.env}).store().DB()
		if _, err := db.ExecContext(e.ctx, `UPDATE clients SET created_at = created_at - 7200 WHERE dynamic`); err != nil {
			t.Fatal(err)
		}
		// The purge runs when mxidp starts (and every 10 minutes).
		e.s.signal(syscall.SIGTERM)
		e.connect(e.d.startOnFreePort())
		deadline := time.Now().Add(10 * time.Second)
		for {
			ids := clientIDs(t, db)
			if !strings.Contains(ids, unused) {
				if !strings.Contains(ids, used) || !strings.Contains(ids, operator.id) {
					t.Errorf("after the purge: clients %s; want %s (signing in) and %s (the operator's) kept", ids, used, operator.id)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the unused registration %s was not purged: clients %s", unused, ids)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if r := e.register(metadata(nil), "application/json"); r.status != http.StatusCreated {
			t.Errorf("registration after the purge: %s", r)
		}
	})
}

// clientIDs lists the IDs of every client, space-separated.
func clientIDs(t *testing.T, db *sql.DB) string {
	t.Helper()
	rows, err := db.Query(`SELECT id FROM clients ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return strings.Join(ids, " ")
}

// nativeAuthURL is an authorization request of a registered public client
// with S256 PKCE.
func nativeAuthURL(e *openIDEnv, clientID, redirectURI string, scopes ...string) string {
	cfg := &oauth2.Config{ClientID: clientID, RedirectURL: redirectURI, Endpoint: e.provider.Endpoint(), Scopes: scopes}
	return cfg.AuthCodeURL("state-"+randomAlnum(8), oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
}

// A native client's loopback redirect works with any port, as RFC 8252
// §7.3 requires, and with nothing else changed: not another path, query,
// host or scheme. Its private-use scheme matches exactly. No dynamic
// client may use another client's redirect URI, nor skip PKCE.
func TestDynamicClientRedirectsMatchOnlyAsRegistered(t *testing.T) {
	eachRegistrationBackend(t, "", func(t *testing.T, e *openIDEnv) {
		native := wantRegistered(t, e.register(metadata(nil), "application/json"))
		web := wantRegistered(t, e.register(metadata(map[string]any{"application_type": "web",
			"redirect_uris": []string{"https://app.example.org/callback"}}), "application/json"))
		operator := e.addClient("operator-app") // redirect http://127.0.0.1:9/operator-app/callback
		for _, tc := range []struct {
			client, redirect string
			ok               bool
		}{
			{native, "http://127.0.0.1/callback", true},
			{native, "http://127.0.0.1:40123/callback", true},
			{native, "http://127.0.0.1:9/callback", true},
			{native, "org.example.chat:/callback", true},
			{native, "http://127.0.0.1:40123/callback/other", false},
			{native, "http://127.0.0.1:40123/other", false},
			{native, "http://127.0.0.1:40123/callback?next=x", false},
			{native, "http://localhost:40123/callback", false},
			{native, "http://[::1]:40123/callback", false},
			{native, "http://127.0.0.2:40123/callback", false},
			{native, "https://127.0.0.1:40123/callback", false},
			{native, "http://127.0.0.1:40123@evil.com/callback", false},
			{native, "http://evil.com:40123/callback", false},
			{native, "org.example.chat:/callback2", false},
			{native, "org.example.chat://callback", false},
			{native, operator.redirectURI, false},
			{web, "https://app.example.org/callback", true},
			{web, "https://app.example.org:8443/callback", false},
			{web, "http://app.example.org/callback", false},
			{web, "https://app.example.org/callback/", false},
			{web, operator.redirectURI, false},
			{operator.id, "https://app.example.org/callback", false},
		} {
			b := newBrowser(t)
			p := b.until(b.get(nativeAuthURL(e, tc.client, tc.redirect, oidc.ScopeOpenID)), tc.redirect)
			_, isLogin := parseLoginForm(p)
			if isLogin != tc.ok {
				t.Errorf("client %s, redirect_uri %s: %d (login form %v); want accepted %v\n%.300s", tc.client, tc.redirect, p.status, isLogin, tc.ok, p.body)
			}
			if !tc.ok && (p.status != http.StatusBadRequest || p.location != "") {
				t.Errorf("client %s, redirect_uri %s: %d, Location %q; want the error page, no redirect", tc.client, tc.redirect, p.status, p.location)
			}
		}
		// PKCE is required of every dynamic client.
		cfg := &oauth2.Config{ClientID: native, RedirectURL: "http://127.0.0.1:40123/callback", Endpoint: e.provider.Endpoint(), Scopes: []string{"openid"}}
		b := newBrowser(t)
		p := b.until(b.get(cfg.AuthCodeURL("state-nopkce")), "http://127.0.0.1:40123/")
		if u, _ := url.Parse(p.location); u == nil || u.Query().Get("error") != "invalid_request" || !strings.Contains(u.Query().Get("error_description"), "PKCE") {
			t.Errorf("authorization without PKCE: %d Location %q; want invalid_request about PKCE", p.status, p.location)
		}
	})
}

// The consent page shows a registered client's name, its web address
// prominently, its logo (from its host only, no referrer), its terms and
// policy, a note that it registered itself and what the Matrix scopes
// mean; every value it sent is escaped. It is asked every time: "remember"
// is neither offered nor honoured.
func TestConsentShowsARegisteredClientEscaped(t *testing.T) {
	const name = `Chat</p><script>alert(1)</script><img src=x onerror=alert(2)>`
	eachRegistrationBackend(t, "", func(t *testing.T, e *openIDEnv) {
		id := wantRegistered(t, e.register(metadata(map[string]any{
			"client_name": name, "client_uri": "https://example.org/",
			"logo_uri":   "https://cdn.example.org/logo.png?a='onerror='alert(3)",
			"tos_uri":    "https://example.org/tos?x='onmouseover='alert(4)",
			"policy_uri": "https://example.org/privacy",
		}), "application/json"))
		redirect := "http://127.0.0.1:40123/callback"
		b := newBrowser(t)
		auth := nativeAuthURL(e, id, redirect, oidc.ScopeOpenID, "urn:matrix:client:api:*", "urn:matrix:client:device:DEVICE1234")
		p := b.until(b.get(auth), redirect)
		login, ok := parseLoginForm(p)
		if !ok {
			t.Fatalf("no login form: %d %s", p.status, p.body)
		}
		if !strings.Contains(p.body, html.EscapeString(name)) || strings.Contains(p.body, "<script>") {
			t.Errorf("the login page does not show the client's name escaped:\n%s", p.body)
		}
		p = b.until(b.submitLogin(login, "alice", alicePassword), redirect)
		consent, ok := consentPage(p)
		if !ok {
			t.Fatalf("no consent page: %d %s", p.status, p.body)
		}
		for _, want := range []string{
			html.EscapeString(name),
			"Web address: <strong>example.org</strong>",
			`<img src="https://cdn.example.org/logo.png?a=%27onerror=%27alert%283%29" alt="" width="48" height="48" referrerpolicy="no-referrer">`,
			`rel="noopener noreferrer"`, ">Terms of service</a>", ">Privacy policy</a>",
			"This application registered itself",
			"Use your Matrix account: read and send messages, join rooms",
			"Sign in as a new device (DEVICE1234)",
		} {
			if !strings.Contains(p.body, want) {
				t.Errorf("the consent page lacks %q", want)
			}
		}
		for _, bad := range []string{"<script>", "<img src=x", "'onerror='", "'onmouseover='", `name="remember"`} {
			if strings.Contains(p.body, bad) {
				t.Errorf("the consent page contains %q:\n%s", bad, p.body)
			}
		}
		// Allowed, with "remember" forced into the form: a code, but the
		// next sign-in asks again.
		p = b.until(b.decide(consent, "allow", true), redirect)
		if u, _ := url.Parse(p.location); u == nil || u.Query().Get("code") == "" {
			t.Fatalf("allow: %d Location %q", p.status, p.location)
		} else {
			noteSecret(u.Query().Get("code"))
		}
		p = b.get(auth) // to the login page, which asks for consent at once (single sign-on)
		p, hdr := getWithHeader(b, p.location)
		if _, ok := consentPage(p); !ok {
			t.Errorf("a registered client's second sign-in skipped consent: %d Location %q", p.status, p.location)
		}
		if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "img-src 'self' https://cdn.example.org;") || strings.Contains(csp, "script-src") {
			t.Errorf("consent page CSP %q; want img-src 'self' https://cdn.example.org and still no script", csp)
		}
		// An operator's client keeps its own page: no registered-client note, remember offered.
		e.d.cli("client", "add", "plain-app", "--redirect-uri", "http://127.0.0.1:9/plain/callback")
		p = b.get(nativeAuthURL(e, "plain-app", "http://127.0.0.1:9/plain/callback", oidc.ScopeOpenID))
		p, hdr = getWithHeader(b, p.location)
		if _, ok := consentPage(p); !ok || strings.Contains(p.body, "registered itself") || !strings.Contains(p.body, `name="remember"`) ||
			!strings.Contains(hdr.Get("Content-Security-Policy"), "img-src 'self';") {
			t.Errorf("an operator's client's consent page: %d\n%s", p.status, p.body)
		}
	})
}

// getWithHeader is browser.get that also returns the response's header.
func getWithHeader(b *browser, u string) (page, http.Header) {
	b.t.Helper()
	var hdr http.Header
	c := *b.c
	c.Transport = headerTap{&hdr}
	saved := b.c
	b.c = &c
	defer func() { b.c = saved }()
	return b.get(u), hdr
}

// headerTap keeps the header of the responses it carries.
type headerTap struct{ h *http.Header }

func (t headerTap) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil {
		*t.h = resp.Header
	}
	return resp, err
}

// The whole path of a Matrix client that registers itself, against the
// Synapse that delegates its tokens to mxidp: register as a native app
// with a loopback redirect, authorize with S256 PKCE and the Matrix
// scopes on a port of its choosing, see the consent page name the client
// and its host, get the code, redeem it as a public client, and act as
// the device in Synapse.
func TestRegisteredClientSignsInWithPKCEAndActsInSynapse(t *testing.T) {
	for _, backend := range storagetest.Backends {
		t.Run(backend, func(t *testing.T) {
			n := startNextGen(t, backend, "")
			id := wantRegistered(t, n.register(metadata(map[string]any{"client_name": "Registered Chat",
				"redirect_uris": []string{"http://127.0.0.1/callback"}}), "application/json"))
			redirect := "http://127.0.0.1:40123/callback"
			cfg := &oauth2.Config{ClientID: id, RedirectURL: redirect, Endpoint: n.provider.Endpoint(),
				Scopes: matrixScopes("REGDEVICE1")}
			cfg.Endpoint.AuthStyle = oauth2.AuthStyleInParams
			verifier := oauth2.GenerateVerifier()
			b := newBrowser(t)
			p := b.until(b.get(cfg.AuthCodeURL("state-reg", oauth2.S256ChallengeOption(verifier))), redirect)
			login, ok := parseLoginForm(p)
			if !ok {
				t.Fatalf("no login form: %d %s", p.status, p.body)
			}
			p = b.until(b.submitLogin(login, "alice", alicePassword), redirect)
			consent, ok := consentPage(p)
			if !ok || !strings.Contains(p.body, "Registered Chat") || !strings.Contains(p.body, "<strong>example.org</strong>") ||
				!strings.Contains(p.body, "Sign in as a new device (REGDEVICE1)") {
				t.Fatalf("consent page: %d %s", p.status, p.body)
			}
			p = b.until(b.decide(consent, "allow", false), redirect)
			u, _ := url.Parse(p.location)
			if u == nil || !strings.HasPrefix(p.location, redirect+"?") || u.Query().Get("state") != "state-reg" || u.Query().Get("code") == "" {
				t.Fatalf("after consent: %d Location %q", p.status, p.location)
			}
			code := noteSecret(u.Query().Get("code"))
			if _, err := cfg.Exchange(n.ctx, code); err == nil {
				t.Error("the code was redeemed without the PKCE verifier")
			}
			code = n.authorizeAgain(t, b, cfg, verifier, redirect)
			tok, err := cfg.Exchange(n.ctx, code, oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatalf("exchange as the registered public client: %v", err)
			}
			noteSecret(tok.AccessToken)
			noteSecret(tok.RefreshToken)
			if status, user, device := n.syn.whoami(tok.AccessToken); status != http.StatusOK || user != "@alice:"+synapseServerName || device != "REGDEVICE1" {
				t.Errorf("whoami in Synapse: %d %s %s; want @alice:%s on REGDEVICE1", status, user, device, synapseServerName)
			}
		})
	}
}

// authorizeAgain signs in once more in b (single sign-on, consent asked
// again) and returns the new code: the first one was spent on the refused
// exchange without a verifier.
func (e *openIDEnv) authorizeAgain(t *testing.T, b *browser, cfg *oauth2.Config, verifier, redirect string) string {
	t.Helper()
	p := b.until(b.get(cfg.AuthCodeURL("state-again", oauth2.S256ChallengeOption(verifier))), redirect)
	consent, ok := consentPage(p)
	if !ok {
		t.Fatalf("no consent page on the second sign-in: %d %s", p.status, p.body)
	}
	p = b.until(b.decide(consent, "allow", false), redirect)
	u, _ := url.Parse(p.location)
	if u == nil || u.Query().Get("code") == "" {
		t.Fatalf("second sign-in: %d Location %q", p.status, p.location)
	}
	return noteSecret(u.Query().Get("code"))
}

// Redirect URIs that look like loopback or like the client's own host but
// are not, in every spelling a URL parser or a resolver might read as
// one, are refused at registration; and at the authorization endpoint, a
// registered loopback or private-use redirect matches in no other
// spelling (case, dot segments, percent-encoding, an empty or six-digit
// port, a trailing dot).
func TestRegistrationRefusesRedirectURILookalikes(t *testing.T) {
	refused := []struct{ appType, uri, says string }{
		{"native", "http://127.0.0.1.evil.com/callback", "loopback"},
		{"native", "http://localhost.evil.com/callback", "loopback"},
		{"native", "http://localhost./callback", "loopback"},
		{"native", "http://LOCALHOST/callback", "loopback"},
		{"native", "http://[0:0:0:0:0:0:0:1]/callback", "loopback"},
		{"native", "http://[::ffff:127.0.0.1]/callback", "loopback"},
		{"native", "http://2130706433/callback", "loopback"},
		{"native", "http://0x7f.0.0.1/callback", "loopback"},
		{"native", "http://127.1/callback", "loopback"},
		{"native", "http://%6c%6fcalhost/callback", "loopback"},
		{"native", "HTTP://127.0.0.1/callback", "lower-case scheme"},
		{"native", "http:127.0.0.1/callback", "no host"},
		{"native", "http:/127.0.0.1/callback", "no host"},
		{"native", "http://127.0.0.1:0/callback", "port"},
		{"native", "http://127.0.0.1:65536/callback", "port"},
		{"native", "http://127.0.0.1:+80/callback", "port"},
		{"native", `http://127.0.0.1\@evil.com/callback`, "unencoded"},
		{"native", "http://127.0.0.1%2f@evil.com/callback", "user"},
		{"native", "ORG.example.chat:/callback", "lower-case scheme"},
		{"native", "org.exampl:/callback", "org.example"},
		{"native", "org.example@evil:/callback", "lower-case scheme"},
		{"web", "https://example.org./callback", "DNS name"},
		{"web", "https://EXAMPLE.org/callback", "lower case"},
		{"web", "https://ex%61mple.org/callback", "DNS name"},
		{"web", "https://example.org%2f.evil.com/callback", "DNS name"},
		{"web", "https://example.org:443@evil.com/callback", "user"},
		{"web", "https://xn--exmple-cua.org/callback", "must be on example.org"},
		{"web", `https://evil.com\.example.org/callback`, "unencoded"},
		{"web", "https://evil.com/.example.org/callback", "must be on example.org"},
		{"web", "https://[::1]/callback", "IP address"},
		{"web", "https://93.184.215.14/callback", "IP address"},
	}
	eachRegistrationBackend(t, "", func(t *testing.T, e *openIDEnv) {
		for _, tc := range refused {
			r := e.register(metadata(map[string]any{"application_type": tc.appType, "redirect_uris": []string{tc.uri}}), "application/json")
			desc, _ := r.json["error_description"].(string)
			if r.status != http.StatusBadRequest || r.json["error"] != "invalid_redirect_uri" || !strings.Contains(desc, tc.says) {
				t.Errorf("%s redirect_uri %s: %s; want 400 invalid_redirect_uri saying %q", tc.appType, tc.uri, r, tc.says)
			}
		}
		if clients, audited := e.dynamicClients(); clients != 0 || audited != 0 {
			t.Errorf("after the refused look-alikes: %d clients, %d audit events; want none", clients, audited)
		}

		native := wantRegistered(t, e.register(metadata(nil), "application/json"))
		for _, redirect := range []string{
			"http://127.0.0.1:40123/callback%2F..%2Fother", "http://127.0.0.1:40123/Callback", "http://127.0.0.1:40123//callback",
			"http://127.0.0.1:40123/callback/.", "http://127.0.0.1:40123/./callback", "http://127.0.0.1:40123/callback?",
			"http://127.0.0.1:/callback", "http://127.0.0.1:123456/callback", "http://127.0.0.1.:40123/callback",
			"http://0127.0.0.1:40123/callback", "http://127.0.0.1:40123/%63allback", "http://127.0.0.1:40123/callback%00",
			"org.example.chat:/callback/../other", "org.example.chat:/Callback", "ORG.example.chat:/callback", "org.example.chat:callback",
		} {
			b := newBrowser(t)
			p := b.until(b.get(nativeAuthURL(e, native, redirect, oidc.ScopeOpenID)), redirect)
			if _, isLogin := parseLoginForm(p); isLogin || p.status != http.StatusBadRequest || p.location != "" {
				t.Errorf("redirect_uri %s for the registered native client: %d (login form %v), Location %q; want the error page, no redirect",
					redirect, p.status, isLogin, p.location)
			}
		}
	})
}

// Changing /64 within one IPv6 /48 buys no more registrations than the
// site's budget (clientip.SiteNetworks networks' bursts), and another site
// keeps its own.
func TestRegistrationFloodFromManyIPv6NetworksOfOneSiteIsBounded(t *testing.T) {
	eachRegistrationBackend(t, "throttle:\n  registration_burst: 2\n  registration_per_second: 0.001\n", func(t *testing.T, e *openIDEnv) {
		created := 0
		for i := range 40 {
			for range 2 {
				// Each /64 of 2001:db8:1::/48, named by the trusted proxy (loopback).
				r := e.register(metadata(nil), "application/json", "X-Forwarded-For", fmt.Sprintf("2001:db8:1:%x::1", i))
				switch r.status {
				case http.StatusCreated:
					created++
				case http.StatusTooManyRequests:
				default:
					t.Fatalf("registration from /64 %d: %s", i, r)
				}
			}
		}
		if created != 2*16 {
			t.Errorf("80 registrations from 40 /64s of one /48: %d created; want the site's budget, 32", created)
		}
		if r := e.register(metadata(nil), "application/json", "X-Forwarded-For", "2001:db8:2::1"); r.status != http.StatusCreated {
			t.Errorf("a registration from another /48 after the flood: %s; want 201", r)
		}
		if clients, _ := e.dynamicClients(); clients != 33 {
			t.Errorf("%d dynamic clients stored; want 33", clients)
		}
	})
}
