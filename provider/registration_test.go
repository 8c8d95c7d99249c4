package provider_test

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/mxidp/mxidp/provider"
	"github.com/mxidp/mxidp/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// registration builds a request body from a base that registers, with
// fields replaced or (value "-") removed.
func registration(fields map[string]string) string {
	base := map[string]string{
		"client_name":                `"Example Chat"`,
		"client_uri":                 `"https://example.org/"`,
		"redirect_uris":              `["https://app.example.org/callback"]`,
		"token_endpoint_auth_method": `"none"`,
		"application_type":           `"web"`,
	}
	for k, v := range fields {
		base[k] = v
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(base)) {
		if base[k] != "-" {
			parts = append(parts, `"`+k+`":`+base[k])
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func native(redirects string) map[string]string {
	return map[string]string{"application_type": `"native"`, "redirect_uris": redirects}
}

func TestRegistrationAcceptsWhatTheMatrixProfileAllows(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fields map[string]string
		check  func(provider.Registration) bool
	}{
		{"web client on a subdomain", nil, func(r provider.Registration) bool {
			return r.ApplicationType == "web" && r.Name == "Example Chat" && r.RedirectURIs[0] == "https://app.example.org/callback"
		}},
		{"web client with a port and a query", map[string]string{"redirect_uris": `["https://example.org:5173/?query=value"]`}, nil},
		{"application_type defaults to web", map[string]string{"application_type": "-"}, func(r provider.Registration) bool { return r.ApplicationType == "web" }},
		{"token_endpoint_auth_method omitted means none", map[string]string{"token_endpoint_auth_method": "-"}, nil},
		{"native: reverse-DNS scheme", native(`["org.example:/callback"]`), func(r provider.Registration) bool { return r.ApplicationType == "native" }},
		{"native: reverse-DNS of a subdomain", native(`["org.example.app:/callback"]`), nil},
		{"native: scheme without a slash", native(`["org.example:callback"]`), nil},
		{"native: loopback 127.0.0.1", native(`["http://127.0.0.1/callback"]`), nil},
		{"native: loopback ::1", native(`["http://[::1]/callback"]`), nil},
		{"native: localhost", native(`["http://localhost/callback"]`), nil},
		{"native: loopback with a port (ignored: any port matches)", native(`["http://127.0.0.1:8080/callback"]`), nil},
		{"native: claimed https", native(`["https://app.example.org/callback"]`), nil},
		{"unknown metadata and localized names are ignored", map[string]string{"client_name#de": `"Beispiel"`, "contacts": `["a@example.org"]`,
			"software_statement": `"eyJ..."`, "jwks": `{"keys":[]}`, "id_token_signed_response_alg": `"RS256"`}, func(r provider.Registration) bool { return r.Name == "Example Chat" }},
		{"grant types beyond the code flow are dropped", map[string]string{"grant_types": `["authorization_code","refresh_token","urn:ietf:params:oauth:grant-type:device_code","implicit"]`}, nil},
		{"response types beyond code are dropped", map[string]string{"response_types": `["code","token"]`}, nil},
		{"null is absent", map[string]string{"logo_uri": "null", "client_name": "null"}, func(r provider.Registration) bool { return r.Name == "" && r.LogoURI == "" }},
		{"logo, terms and policy on client_uri's host and a subdomain", map[string]string{"logo_uri": `"https://example.org/logo.png"`,
			"tos_uri": `"https://www.example.org/tos"`, "policy_uri": `"https://example.org/privacy?lang=en"`}, func(r provider.Registration) bool {
			return r.LogoURI == "https://example.org/logo.png" && r.TOSURI == "https://www.example.org/tos" && r.PolicyURI == "https://example.org/privacy?lang=en"
		}},
		{"emoji with joiners in the name", map[string]string{"client_name": `"Family 👨‍👩‍👧 chat"`}, nil},
		{"duplicate redirect URIs are kept once", map[string]string{"redirect_uris": `["https://example.org/cb","https://example.org/cb"]`},
			func(r provider.Registration) bool { return len(r.RedirectURIs) == 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := registration(tc.fields)
			r, err := provider.ParseRegistration([]byte(body))
			if err != nil {
				t.Fatalf("%s refused: %v", body, err)
			}
			if tc.check != nil && !tc.check(r) {
				t.Errorf("%s parsed as %+v", body, r)
			}
		})
	}
}

func TestRegistrationRefusesWithTheRFC7591Error(t *testing.T) {
	const redirect, metadata = provider.ErrorInvalidRedirectURI, provider.ErrorInvalidClientMetadata
	for _, tc := range []struct {
		name string
		body string // used as it is when set
		f    map[string]string
		code string
		says string // in the description
	}{
		{"not JSON", "{", nil, metadata, "not valid JSON"},
		{"an array", `[{"client_uri":"https://example.org/"}]`, nil, metadata, "JSON object"},
		{"trailing data", registration(nil) + `{}`, nil, metadata, "nothing after"},
		{"duplicate key", `{"client_uri":"https://example.org/","client_uri":"https://evil.example/","redirect_uris":["https://example.org/cb"]}`, nil, metadata, "twice"},
		{"duplicate nested key", `{"jwks":{"a":1,"a":2},"client_uri":"https://example.org/","redirect_uris":["https://example.org/cb"]}`, nil, metadata, "twice"},
		{"too deep", `{"x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `,"client_uri":"https://example.org/"}`, nil, metadata, "nested"},
		{"not UTF-8", "{\"client_name\":\"\xff\"}", nil, metadata, "UTF-8"},
		{"client_name not a string", "", map[string]string{"client_name": "42"}, metadata, "client_name must be a string"},
		{"redirect_uris not a list", "", map[string]string{"redirect_uris": `"https://example.org/cb"`}, metadata, "redirect_uris must be an array"},
		{"confidential client", "", map[string]string{"token_endpoint_auth_method": `"client_secret_basic"`}, metadata, "public clients"},
		{"private_key_jwt", "", map[string]string{"token_endpoint_auth_method": `"private_key_jwt"`}, metadata, `"none"`},
		{"unknown application type", "", map[string]string{"application_type": `"desktop"`}, metadata, "application_type"},
		{"no authorization_code grant", "", map[string]string{"grant_types": `["refresh_token"]`}, metadata, "authorization_code"},
		{"no code response type", "", map[string]string{"response_types": `["token"]`}, metadata, "code"},
		{"name too long", "", map[string]string{"client_name": `"` + strings.Repeat("a", 257) + `"`}, metadata, "256"},
		{"control character in the name", "", map[string]string{"client_name": `"Chat\u0007"`}, metadata, "control"},
		{"bidi override in the name", "", map[string]string{"client_name": `"Chat \u202egro.elpmaxe"`}, metadata, "control"},
		{"no client_uri", "", map[string]string{"client_uri": "-"}, metadata, "client_uri is required"},
		{"http client_uri", "", map[string]string{"client_uri": `"http://example.org/"`}, metadata, "https"},
		{"client_uri without a host", "", map[string]string{"client_uri": `"https:///path"`}, metadata, "no host"},
		{"client_uri on an IP address", "", map[string]string{"client_uri": `"https://192.0.2.1/"`}, metadata, "IP address"},
		{"client_uri on localhost", "", map[string]string{"client_uri": `"https://localhost/"`}, metadata, "public host"},
		{"client_uri with a user", "", map[string]string{"client_uri": `"https://user:pw@example.org/"`}, metadata, "user"},
		{"client_uri in upper case", "", map[string]string{"client_uri": `"https://Example.org/"`}, metadata, "lower case"},
		{"client_uri with a fragment", "", map[string]string{"client_uri": `"https://example.org/#x"`}, metadata, "fragment"},
		{"client_uri with a bad port", "", map[string]string{"client_uri": `"https://example.org:99999/"`}, metadata, "port"},
		{"client_uri with an empty port", "", map[string]string{"client_uri": `"https://example.org:/"`}, metadata, "port"},
		{"percent-encoded host", "", map[string]string{"client_uri": `"https://ex%61mple.org/"`}, metadata, "DNS name"},
		{"logo on another host", "", map[string]string{"logo_uri": `"https://cdn.example.net/logo.png"`}, metadata, "logo_uri must be on example.org"},
		{"logo on a look-alike host", "", map[string]string{"logo_uri": `"https://example.org.evil.com/logo.png"`}, metadata, "logo_uri"},
		{"logo over http", "", map[string]string{"logo_uri": `"http://example.org/logo.png"`}, metadata, "https"},
		{"logo as data:", "", map[string]string{"logo_uri": `"data:image/png;base64,AAAA"`}, metadata, "https"},
		{"terms on another host", "", map[string]string{"tos_uri": `"https://evil.com/tos"`}, metadata, "tos_uri"},
		{"policy as javascript:", "", map[string]string{"policy_uri": `"javascript:alert(1)"`}, metadata, "policy_uri"},
		{"no redirect_uris", "", map[string]string{"redirect_uris": "-"}, redirect, "required"},
		{"empty redirect_uris", "", map[string]string{"redirect_uris": "[]"}, redirect, "required"},
		{"eleven redirect_uris", "", map[string]string{"redirect_uris": `["https://example.org/1","https://example.org/2","https://example.org/3","https://example.org/4",
			"https://example.org/5","https://example.org/6","https://example.org/7","https://example.org/8","https://example.org/9","https://example.org/10","https://example.org/11"]`}, redirect, "more than 10"},
		{"long redirect URI", "", map[string]string{"redirect_uris": `["https://example.org/` + strings.Repeat("a", 2048) + `"]`}, redirect, "2048"},
		{"web: http", "", map[string]string{"redirect_uris": `["http://example.org/cb"]`}, redirect, "https"},
		{"web: http loopback", "", map[string]string{"redirect_uris": `["http://127.0.0.1/cb"]`}, redirect, "https"},
		{"web: other host", "", map[string]string{"redirect_uris": `["https://evil.com/cb"]`}, redirect, "must be on example.org"},
		{"web: look-alike host", "", map[string]string{"redirect_uris": `["https://example.org.evil.com/cb"]`}, redirect, "must be on example.org"},
		{"web: suffix without a dot", "", map[string]string{"redirect_uris": `["https://badexample.org/cb"]`}, redirect, "must be on example.org"},
		{"web: javascript:", "", map[string]string{"redirect_uris": `["javascript:alert(1)"]`}, redirect, "https"},
		{"web: data:", "", map[string]string{"redirect_uris": `["data:text/html,hi"]`}, redirect, "https"},
		{"web: custom scheme", "", map[string]string{"redirect_uris": `["org.example:/cb"]`}, redirect, "https"},
		{"fragment", "", map[string]string{"redirect_uris": `["https://example.org/cb#frag"]`}, redirect, "fragment"},
		{"userinfo", "", map[string]string{"redirect_uris": `["https://example.org@evil.com/cb"]`}, redirect, "user"},
		{"userinfo on loopback", "", native(`["http://127.0.0.1:80@evil.com/cb"]`), redirect, "user"},
		{"wildcard host", "", map[string]string{"redirect_uris": `["https://*.example.org/cb"]`}, redirect, "wildcard"},
		{"wildcard path", "", map[string]string{"redirect_uris": `["https://example.org/*"]`}, redirect, "wildcard"},
		{"https without a host", "", map[string]string{"redirect_uris": `["https:///cb"]`}, redirect, "no host"},
		{"https with nothing", "", map[string]string{"redirect_uris": `["https://"]`}, redirect, "no host"},
		{"relative", "", map[string]string{"redirect_uris": `["/callback"]`}, redirect, "absolute"},
		{"space", "", map[string]string{"redirect_uris": `["https://example.org/a b"]`}, redirect, "unencoded"},
		{"backslash", "", map[string]string{"redirect_uris": `["https://example.org\\@evil.com/"]`}, redirect, "unencoded"},
		{"upper-case scheme", "", map[string]string{"redirect_uris": `["HTTPS://example.org/cb"]`}, redirect, "lower-case scheme"},
		{"not a string", "", map[string]string{"redirect_uris": `[42]`}, metadata, "array of strings"},
		{"native: http off loopback", "", native(`["http://example.org/cb"]`), redirect, "loopback"},
		{"native: loopback look-alike", "", native(`["http://127.0.0.1.nip.io/cb"]`), redirect, "loopback"},
		{"native: localhost look-alike", "", native(`["http://localhost.evil.com/cb"]`), redirect, "loopback"},
		{"native: other loopback address", "", native(`["http://127.0.0.2/cb"]`), redirect, "loopback"},
		{"native: scheme of another host", "", native(`["com.evil:/cb"]`), redirect, "org.example"},
		{"native: scheme that only starts like it", "", native(`["org.examplex:/cb"]`), redirect, "org.example"},
		{"native: host not reversed", "", native(`["example.org:/cb"]`), redirect, "org.example"},
		{"native: scheme with an authority", "", native(`["org.example.app://callback"]`), redirect, "authority"},
		{"native: javascript:", "", native(`["javascript:alert(1)"]`), redirect, "org.example"},
		{"native: data:", "", native(`["data:text/html,hi"]`), redirect, "org.example"},
		{"native: file:", "", native(`["file:///etc/passwd"]`), redirect, "authority"},
		{"native: https on another host", "", native(`["https://evil.com/cb"]`), redirect, "must be on example.org"},
		{"native: https on localhost", "", native(`["https://localhost/cb"]`), redirect, "public host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body
			if body == "" {
				body = registration(tc.f)
			}
			_, err := provider.ParseRegistration([]byte(body))
			var re *provider.RegistrationError
			if !errors.As(err, &re) {
				t.Fatalf("%s: err = %v, want a refusal %s", body, err, tc.code)
			}
			if re.Code != tc.code || !strings.Contains(re.Description, tc.says) {
				t.Errorf("%s:\n%s: %s\nwant %s saying %q", body, re.Code, re.Description, tc.code, tc.says)
			}
		})
	}
}

// The library's redirect URI check (zitadel/oidc op.ValidateAuthReqRedirectURI,
// which the authorization endpoint runs) with mxidp's client adapter: a
// dynamic native client's loopback redirect matches with any port and
// nothing else of it may differ; a dynamic client never gets DevMode's
// leniency; operator clients keep theirs.
func TestDynamicClientRedirectURIsMatchAsRegistered(t *testing.T) {
	nativeClient := &provider.Client{Client: storage.Client{ID: "n", Public: true, Dynamic: true, ApplicationType: storage.ApplicationNative,
		RedirectURIs: []string{"org.example.app:/callback", "http://127.0.0.1/callback", "http://[::1]:8080/cb?x=1", "https://app.example.org/cb"}}}
	webClient := &provider.Client{Client: storage.Client{ID: "w", Public: true, Dynamic: true, ApplicationType: storage.ApplicationWeb,
		RedirectURIs: []string{"https://app.example.org/cb"}}}
	operator := &provider.Client{Client: storage.Client{ID: "o", Public: true, RedirectURIs: []string{"http://127.0.0.1:9/cb"}}}
	for _, tc := range []struct {
		client *provider.Client
		uri    string
		ok     bool
	}{
		{nativeClient, "org.example.app:/callback", true},
		{nativeClient, "org.example.app:/callback/other", false},
		{nativeClient, "org.example.app:/callback?x=1", false},
		{nativeClient, "http://127.0.0.1/callback", true},
		{nativeClient, "http://127.0.0.1:1/callback", true},
		{nativeClient, "http://127.0.0.1:54321/callback", true},
		{nativeClient, "http://127.0.0.1:123456/callback", false},
		{nativeClient, "http://127.0.0.1:80x/callback", false},
		{nativeClient, "http://127.0.0.1:8080/callback/other", false},
		{nativeClient, "http://127.0.0.1:8080/callback?code=x", false},
		{nativeClient, "http://127.0.0.1:8080/callbac", false},
		{nativeClient, "http://localhost:8080/callback", false},  // another host
		{nativeClient, "http://127.0.0.2:8080/callback", false},  // another loopback address
		{nativeClient, "http://[::1]:8080/callback", false},      // registered with another path
		{nativeClient, "https://127.0.0.1:8080/callback", false}, // another scheme
		{nativeClient, "http://127.0.0.1:8080@evil.com/callback", false},
		{nativeClient, "http://127.0.0.1:1#/callback", false},
		{nativeClient, "http://[::1]/cb?x=1", true},
		{nativeClient, "http://[::1]:443/cb?x=1", true},
		{nativeClient, "http://[::1]:443/cb?x=2", false},
		{nativeClient, "https://app.example.org/cb", true},
		{nativeClient, "https://app.example.org/cb2", false},
		{nativeClient, "http://app.example.org/cb", false},
		{webClient, "https://app.example.org/cb", true},
		{webClient, "http://app.example.org/cb", false},
		{webClient, "https://app.example.org:444/cb", false},
		{webClient, "https://app.example.org/cb?x", false},
		{operator, "http://127.0.0.1:9/cb", true},
	} {
		err := op.ValidateAuthReqRedirectURI(tc.client, tc.uri, oidc.ResponseTypeCode)
		if (err == nil) != tc.ok {
			t.Errorf("client %s, redirect_uri %s: err = %v, want accepted %v", tc.client.ID, tc.uri, err, tc.ok)
		}
	}
	if nativeClient.ApplicationType() != op.ApplicationTypeNative || webClient.ApplicationType() != op.ApplicationTypeWeb ||
		operator.ApplicationType() != op.ApplicationTypeWeb {
		t.Error("application types: want native, web, web")
	}
	if nativeClient.DevMode() || webClient.DevMode() || !operator.DevMode() {
		t.Error("DevMode: want off for dynamic clients, on for the operator's")
	}
}
