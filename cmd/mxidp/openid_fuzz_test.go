package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// The clients of the fuzzed OpenID provider and their redirect URIs.
const (
	fuzzIssuer       = "https://id.example.org"
	fuzzClientSecret = "fuzz-client-secret-0123456789abcdef"
)

var fuzzClients = map[string][]string{
	"app":    {"https://app.example.net/cb", "https://app.example.net/cb2?tenant=1"},
	"native": {"http://127.0.0.1:9/cb"},
}

// lockedBuffer collects the service's log.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	l.b.Reset()
	return s
}

type fuzzOP struct {
	handler       http.Handler
	logs          *lockedBuffer
	authorizePath string
	tokenPath     string
}

// newFuzzOP builds the whole service in-process on SQLite, with a
// confidential client "app" (secret fuzzClientSecret) and a public client
// "native", and no users: nothing in the fuzzed paths hashes a password.
func newFuzzOP(f *testing.F) fuzzOP {
	f.Helper()
	// zitadel/oidc logs refused requests to the default logger.
	defaultLog := slog.Default()
	slog.SetDefault(slog.New(slog.DiscardHandler))
	f.Cleanup(func() { slog.SetDefault(defaultLog) })
	envs := testEnv(f, "sqlite", "log: {level: warn}\n")
	envs["MXIDP_ISSUER"] = fuzzIssuer
	var out bytes.Buffer
	for id, uris := range fuzzClients {
		args := []string{"client", "add", id, "--skip-consent"}
		stdin := ""
		if id == "native" {
			args = append(args, "--public")
		} else {
			args = append(args, "--secret-stdin")
			stdin = fuzzClientSecret + "\n"
		}
		for _, u := range uris {
			args = append(args, "--redirect-uri", u)
		}
		out.Reset()
		if run(args, strings.NewReader(stdin), &out, &out, env(envs)) != 0 {
			f.Fatalf("mxidp %s: %s", strings.Join(args, " "), out.String())
		}
	}
	a := &app{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, getenv: env(envs)}
	c, err := a.config()
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.Cleanup(cancel)
	logs := &lockedBuffer{}
	svc, err := a.newService(ctx, c, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { svc.store.Close() })

	// The endpoints as discovery names them.
	w := httptest.NewRecorder()
	svc.handler.ServeHTTP(w, httptest.NewRequest("GET", fuzzIssuer+"/.well-known/openid-configuration", nil))
	var d struct {
		AuthorizationEndpoint string `json:"authorization_endpoint"`
		TokenEndpoint         string `json:"token_endpoint"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &d); err != nil || d.AuthorizationEndpoint == "" || d.TokenEndpoint == "" {
		f.Fatalf("discovery: %v %s", err, w.Body)
	}
	op := fuzzOP{handler: svc.handler, logs: logs,
		authorizePath: strings.TrimPrefix(d.AuthorizationEndpoint, fuzzIssuer),
		tokenPath:     strings.TrimPrefix(d.TokenEndpoint, fuzzIssuer)}
	logs.take()
	return op
}

// serve answers r and fails on a panic or a server error.
func (o fuzzOP) serve(t *testing.T, r *http.Request, what string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	o.handler.ServeHTTP(w, r)
	if l := o.logs.take(); strings.Contains(l, "panic") {
		t.Fatalf("%s: panicked:\n%s", what, l)
	}
	if w.Code >= 500 {
		t.Fatalf("%s: status %d: %s", what, w.Code, w.Body)
	}
	return w
}

// requestTarget reports whether q can be the query (or form body) of a
// request an HTTP server accepts: no spaces or control characters.
func requestTarget(q string) bool {
	_, err := url.ParseRequestURI("/authorize?" + q)
	return err == nil && !strings.ContainsAny(q, " \t\r\n")
}

// responseParams are what a provider adds to a client's redirect URI.
var responseParams = []string{"code", "state", "error", "error_description", "error_uri", "iss", "session_state", "id_token", "access_token", "token_type", "expires_in", "scope"}

// toRegistered reports whether target is one of uris with only response
// parameters added (in the query or the fragment).
func toRegistered(target string, uris []string) bool {
	u, err := url.Parse(target)
	if err != nil {
		return false
	}
	strip := func(raw string) (url.Values, bool) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return nil, false
		}
		for _, p := range responseParams {
			v.Del(p)
		}
		return v, true
	}
	query, ok := strip(u.RawQuery)
	if !ok {
		return false
	}
	if frag, ok := strip(u.Fragment); !ok || len(frag) > 0 {
		return false
	}
	for _, raw := range uris {
		r, _ := url.Parse(raw)
		if u.Scheme == r.Scheme && u.User == nil && u.Host == r.Host && u.Path == r.Path && u.RawPath == r.RawPath &&
			query.Encode() == r.Query().Encode() {
			return true
		}
	}
	return false
}

// ownPage reports whether target stays at the provider (its login page).
func ownPage(target string) bool {
	u, err := url.Parse(target)
	if err != nil {
		return false
	}
	return u.User == nil && u.Opaque == "" &&
		(u.Scheme == "" && u.Host == "" && strings.HasPrefix(u.Path, "/") && !strings.HasPrefix(u.Path, "//") ||
			u.Scheme+"://"+u.Host == fuzzIssuer)
}

var formAction = regexp.MustCompile(`(?i)<form[^>]*\saction="([^"]*)"`)

// FuzzAuthorizeParams sends fuzzed authorization requests (GET query or
// POST form). Properties: no panic and no server error; a redirect goes
// either to the provider's own pages or to a redirect URI registered for
// a client the request names, byte for byte, with only response
// parameters added; a form_post page posts only to such a URI.
func FuzzAuthorizeParams(f *testing.F) {
	op := newFuzzOP(f)
	for _, q := range []string{
		"response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example.net%2Fcb&scope=openid+profile&state=s&nonce=n",
		"response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example.net%2Fcb2%3Ftenant%3D1&scope=openid&state=s",
		"response_type=code&client_id=native&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&scope=openid&code_challenge=E9Melhoa2OwvFrEMTJguCQuSeUfNGVCu6ZY0T8jD7RI&code_challenge_method=S256",
		"response_type=code&client_id=native&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&scope=openid",
		"response_type=token&client_id=app&redirect_uri=https%3A%2F%2Fapp.example.net%2Fcb&scope=openid",
		"response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example.net%2Fcb&scope=openid&prompt=none&state=x",
		"response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example.net%2Fcb&scope=openid&response_mode=form_post&prompt=none",
		"response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example.net%2Fcb&scope=email&response_mode=fragment",
		"response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fevil.example%2Fcb&scope=openid",
		"response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example.net%2Fcb%2F..%2Fevil&scope=openid",
		"response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example.net%2Fcb&redirect_uri=https%3A%2F%2Fevil.example&scope=openid",
		"response_type=code&client_id=nobody&redirect_uri=https%3A%2F%2Fapp.example.net%2Fcb&scope=openid",
		"response_type=code&client_id=app&scope=openid",
		"client_id=app&redirect_uri=https%3A%2F%2Fapp.example.net%2Fcb",
		"request=eyJhbGciOiJub25lIn0.eyJjbGllbnRfaWQiOiJhcHAifQ.&client_id=app&response_type=code&scope=openid",
		"response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example.net%2Fcb&scope=openid&max_age=-1&ui_locales=de&id_token_hint=x.y.z&login_hint=%00",
		"", "%", "a=%zz", "client_id=app&client_id=native",
	} {
		f.Add(q, false)
		f.Add(q, true)
	}
	f.Fuzz(func(t *testing.T, q string, post bool) {
		if !requestTarget(q) {
			t.Skip()
		}
		var r *http.Request
		if post {
			r = httptest.NewRequest("POST", fuzzIssuer+op.authorizePath, strings.NewReader(q))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else {
			r = httptest.NewRequest("GET", fuzzIssuer+op.authorizePath+"?"+q, nil)
		}
		w := op.serve(t, r, "authorize "+q)
		// The registered URIs of every client the request names (the
		// library matches parameter names regardless of case).
		var allowed []string
		if v, err := url.ParseQuery(q); err == nil {
			for name, ids := range v {
				if strings.EqualFold(name, "client_id") {
					for _, id := range ids {
						allowed = append(allowed, fuzzClients[id]...)
					}
				}
			}
		}
		switch {
		case w.Code >= 300 && w.Code < 400:
			loc := w.Header().Get("Location")
			if !ownPage(loc) && !toRegistered(loc, allowed) {
				t.Fatalf("authorize %q redirected to %q; registered: %q", q, loc, allowed)
			}
		case w.Code == 200:
			for _, m := range formAction.FindAllStringSubmatch(w.Body.String(), -1) {
				if action := html.UnescapeString(m[1]); !ownPage(action) && !toRegistered(action, allowed) {
					t.Fatalf("authorize %q posts a form to %q; registered: %q", q, action, allowed)
				}
			}
		case w.Code >= 400:
			if loc := w.Header().Get("Location"); loc != "" {
				t.Errorf("authorize %q: error %d with Location %q", q, w.Code, loc)
			}
		}
	})
}

// tokenErrors are the error codes of RFC 6749 §5.2 and RFC 6750.
var tokenErrors = []string{"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
	"unsupported_grant_type", "invalid_scope", "access_denied", "invalid_token", "server_error", "temporarily_unavailable",
	"invalid_dpop_proof", "request_not_supported", "invalid_request_object", "request_uri_not_supported"}

// FuzzTokenParams posts fuzzed token requests (form body, Authorization
// header, Content-Type). No request here carries a code the provider
// issued, so no answer may be a token. Properties: no panic; no server
// error; every answer is a 4xx JSON object with an RFC 6749 "error".
func FuzzTokenParams(f *testing.F) {
	op := newFuzzOP(f)
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("app:"+fuzzClientSecret))
	const form = "application/x-www-form-urlencoded"
	for _, s := range []struct{ body, auth, contentType string }{
		{"grant_type=authorization_code&code=abc&redirect_uri=https%3A%2F%2Fapp.example.net%2Fcb", basic, form},
		{"grant_type=authorization_code&code=abc&redirect_uri=https%3A%2F%2Fapp.example.net%2Fcb&client_id=app&client_secret=" + fuzzClientSecret, "", form},
		{"grant_type=authorization_code&code=abc&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&client_id=native&code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "", form},
		{"grant_type=refresh_token&refresh_token=eyJhbGciOiJIUzI1NiJ9.e30.x&scope=openid", basic, form},
		{"grant_type=client_credentials&scope=openid", basic, form},
		{"grant_type=password&username=alice&password=x", basic, form},
		{"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJhcHAifQ.c2ln", "", form},
		{"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=x&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token", basic, form},
		{"grant_type=authorization_code&code=abc&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=eyJhbGciOiJub25lIn0.eyJzdWIiOiJhcHAifQ.", "", form},
		{"grant_type=authorization_code&code=abc", "Basic " + base64.StdEncoding.EncodeToString([]byte("app:wrong")), form},
		{"grant_type=authorization_code&code=abc", "Basic !!!", form},
		{"grant_type=authorization_code&code=abc", "Basic " + base64.StdEncoding.EncodeToString([]byte("no-colon")), form},
		{"grant_type=authorization_code&code=abc", "Bearer x", form},
		{`{"grant_type":"authorization_code","code":"abc"}`, basic, "application/json"},
		{"grant_type=authorization_code&code=abc", basic, "multipart/form-data; boundary=x"},
		{"", "", ""}, {"%", basic, form}, {"grant_type=&grant_type=refresh_token", basic, form},
	} {
		f.Add(s.body, s.auth, s.contentType)
	}
	f.Fuzz(func(t *testing.T, body, auth, contentType string) {
		r := httptest.NewRequest("POST", fuzzIssuer+op.tokenPath, strings.NewReader(body))
		if contentType != "" {
			r.Header["Content-Type"] = []string{contentType}
		}
		if auth != "" {
			r.Header["Authorization"] = []string{auth}
		}
		what := "token " + strings.Join([]string{body, auth, contentType}, " | ")
		w := op.serve(t, r, what)
		if w.Code < 400 {
			t.Fatalf("%s: status %d without a code: %s", what, w.Code, w.Body)
		}
		var answer map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &answer); err != nil {
			t.Fatalf("%s: %d answer %q is not a JSON object: %v", what, w.Code, w.Body, err)
		}
		e, _ := answer["error"].(string)
		if !slices.Contains(tokenErrors, e) {
			t.Fatalf("%s: %d answer %s has no RFC 6749 error", what, w.Code, w.Body)
		}
		if _, ok := answer["access_token"]; ok {
			t.Fatalf("%s: an access token in an error: %s", what, w.Body)
		}
	})
}
