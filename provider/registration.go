package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mxidp/mxidp/keys"
	"github.com/mxidp/mxidp/storage"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Dynamic client registration (RFC 7591) as the Matrix client-server API
// profiles it ("OAuth 2.0 API", client registration): a Matrix client
// registers itself at the start of every sign-in, as a public client
// that proves itself with PKCE. What it says about itself is checked
// here, strictly, because its redirect URIs are all that stands between
// a user's code and someone else: docs/registration.md lists every rule.

// Limits of a registration request.
const (
	MaxRegistrationBody = 16 << 10 // bytes of JSON
	maxRedirectURIs     = 10
	maxURILength        = 2048 // bytes, each URI
	maxClientName       = 256  // bytes
	maxListEntries      = 10   // grant_types, response_types
)

// The refusals of RFC 7591 §3.2.2 that mxidp gives.
const (
	ErrorInvalidRedirectURI    = "invalid_redirect_uri"
	ErrorInvalidClientMetadata = "invalid_client_metadata"
)

// RegistrationError refuses a registration request: Code is one of RFC
// 7591 §3.2.2's, Description says what to change.
type RegistrationError struct {
	Code        string
	Description string
}

func (e *RegistrationError) Error() string { return e.Code + ": " + e.Description }

func metadataError(format string, args ...any) error {
	return &RegistrationError{Code: ErrorInvalidClientMetadata, Description: fmt.Sprintf(format, args...)}
}

func redirectError(i int, format string, args ...any) error {
	return &RegistrationError{Code: ErrorInvalidRedirectURI,
		Description: fmt.Sprintf("redirect_uris[%d]: ", i) + fmt.Sprintf(format, args...)}
}

// ErrTooManyRegistrations means the cap on unused dynamic clients is
// reached: no registration is taken until the purge or sign-ins free room.
var ErrTooManyRegistrations = errors.New("too many unused client registrations")

// Registration is a registration request that passed every check.
type Registration struct {
	Name            string // "" when the client gave none
	ApplicationType string // storage.ApplicationWeb or storage.ApplicationNative
	ClientURI       string
	LogoURI         string
	TOSURI          string
	PolicyURI       string
	RedirectURIs    []string
	// IDTokenAlg is the id_token_signed_response_alg asked for, RS256 when
	// none; UserinfoAlg the userinfo_signed_response_alg, "" for JSON
	// (OpenID Connect Dynamic Client Registration §2).
	IDTokenAlg  string
	UserinfoAlg string
}

// The grant and response types every dynamic client gets: the
// authorization code flow and refresh (the Matrix spec's OAuth 2.0 API
// needs nothing else).
var (
	registeredGrantTypes    = []string{"authorization_code", "refresh_token"}
	registeredResponseTypes = []string{"code"}
)

// ParseRegistration reads a registration request (RFC 7591 §3.1): one
// JSON object in UTF-8, no key twice at any depth. Metadata mxidp does not
// use is ignored, as RFC 7591 §2 requires: localized values
// ("client_name#de"), contacts, software statements, and grant and
// response types beyond the code flow. What it uses must be valid, or the
// whole request is refused with a *RegistrationError.
func ParseRegistration(body []byte) (Registration, error) {
	if !utf8.Valid(body) {
		return Registration{}, metadataError("the body is not UTF-8 JSON")
	}
	fields, err := strictObject(body)
	if err != nil {
		return Registration{}, err
	}
	var reg Registration
	var name, clientURI, logo, tos, policy, authMethod, appType, idTokenAlg, userinfoAlg string
	var redirects, grants, responses []string
	var hasGrants, hasResponses, hasRedirects bool
	for _, f := range []struct {
		key  string
		into any
		set  *bool
	}{
		{"client_name", &name, nil}, {"client_uri", &clientURI, nil}, {"logo_uri", &logo, nil},
		{"tos_uri", &tos, nil}, {"policy_uri", &policy, nil},
		{"token_endpoint_auth_method", &authMethod, nil}, {"application_type", &appType, nil},
		{"redirect_uris", &redirects, &hasRedirects}, {"grant_types", &grants, &hasGrants},
		{"response_types", &responses, &hasResponses},
		{"id_token_signed_response_alg", &idTokenAlg, nil}, {"userinfo_signed_response_alg", &userinfoAlg, nil},
	} {
		raw, ok := fields[f.key]
		if !ok || string(raw) == "null" {
			continue
		}
		if f.set != nil {
			*f.set = true
		}
		if err := json.Unmarshal(raw, f.into); err != nil {
			what := "a string"
			if _, list := f.into.(*[]string); list {
				what = "an array of strings"
			}
			return Registration{}, metadataError("%s must be %s", f.key, what)
		}
	}

	switch authMethod {
	case "", "none":
		// Public clients only (omitted, RFC 7591 §2 would mean
		// client_secret_basic; a Matrix client means none).
	default:
		return Registration{}, metadataError("token_endpoint_auth_method must be \"none\": only public clients may register, "+
			"and they prove themselves with PKCE; %q is not offered", clip(authMethod))
	}
	switch appType {
	case "", storage.ApplicationWeb:
		reg.ApplicationType = storage.ApplicationWeb
	case storage.ApplicationNative:
		reg.ApplicationType = storage.ApplicationNative
	default:
		return Registration{}, metadataError("application_type must be \"web\" or \"native\"")
	}
	// The algorithms a client asks its tokens to be signed with: one of
	// the ring's, exactly so spelled. "none" (unsigned ID tokens, which
	// the Registration spec lets a code-flow client ask for, and mxidp
	// never issues) and HS256 (a MAC keyed with the client's secret: public
	// clients have none, and whoever holds it could make tokens that
	// verify) are refused, as is any other value.
	if reg.IDTokenAlg, err = registeredAlg("id_token_signed_response_alg", idTokenAlg, keys.DefaultAlgorithm); err != nil {
		return Registration{}, err
	}
	if reg.UserinfoAlg, err = registeredAlg("userinfo_signed_response_alg", userinfoAlg, ""); err != nil {
		return Registration{}, err
	}
	if hasGrants {
		if len(grants) > maxListEntries {
			return Registration{}, metadataError("grant_types has more than %d entries", maxListEntries)
		}
		if !slices.Contains(grants, "authorization_code") {
			return Registration{}, metadataError("grant_types must include \"authorization_code\": it is the only way to sign in here")
		}
	}
	if hasResponses {
		if len(responses) > maxListEntries {
			return Registration{}, metadataError("response_types has more than %d entries", maxListEntries)
		}
		if !slices.Contains(responses, "code") {
			return Registration{}, metadataError("response_types must include \"code\": it is the only response type offered")
		}
	}

	if reg.Name, err = clientName(name); err != nil {
		return Registration{}, err
	}
	if clientURI == "" {
		return Registration{}, metadataError("client_uri is required: the https address of the application's web page, shown to users")
	}
	base, _, err := httpsURI(clientURI)
	if err != nil {
		return Registration{}, metadataError("client_uri: %v", err)
	}
	reg.ClientURI = clientURI
	for _, u := range []struct {
		key, value string
		into       *string
	}{{"logo_uri", logo, &reg.LogoURI}, {"tos_uri", tos, &reg.TOSURI}, {"policy_uri", policy, &reg.PolicyURI}} {
		if u.value == "" {
			continue
		}
		host, _, err := httpsURI(u.value)
		if err != nil {
			return Registration{}, metadataError("%s: %v", u.key, err)
		}
		if !sameOrSubdomain(host, base) {
			return Registration{}, metadataError("%s must be on %s (client_uri's host) or a subdomain of it", u.key, base)
		}
		*u.into = u.value
	}

	if !hasRedirects || len(redirects) == 0 {
		return Registration{}, &RegistrationError{Code: ErrorInvalidRedirectURI, Description: "redirect_uris is required: the authorization code flow needs at least one"}
	}
	if len(redirects) > maxRedirectURIs {
		return Registration{}, &RegistrationError{Code: ErrorInvalidRedirectURI, Description: fmt.Sprintf("redirect_uris has more than %d entries", maxRedirectURIs)}
	}
	for i, uri := range redirects {
		if err := checkRedirectURI(i, uri, reg.ApplicationType, base); err != nil {
			return Registration{}, err
		}
		if !slices.Contains(reg.RedirectURIs, uri) {
			reg.RedirectURIs = append(reg.RedirectURIs, uri)
		}
	}
	return reg, nil
}

// registeredAlg checks a requested signing algorithm; an omitted one is
// def.
func registeredAlg(key, alg, def string) (string, error) {
	if alg == "" {
		return def, nil
	}
	if err := keys.CheckAlgorithm(alg); err != nil {
		return "", metadataError("%s: %v", key, err)
	}
	return alg, nil
}

// strictObject parses body as one JSON object whose keys, at every depth,
// appear once each (RFC 8259 §4 leaves duplicates to the parser: two
// parsers could read two different registrations from one body), and
// returns its members.
func strictObject(body []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, metadataError("the body must be a JSON object")
	}
	if err := skipMembers(dec, 1); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, metadataError("the body must be one JSON object and nothing after it")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, metadataError("the body is not valid JSON")
	}
	return fields, nil
}

// skipMembers reads the rest of an object whose '{' was read, refusing a
// key given twice, and of the values in it.
func skipMembers(dec *json.Decoder, depth int) error {
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return metadataError("the body is not valid JSON")
		}
		key, _ := t.(string)
		if seen[key] {
			return metadataError("the key %q appears twice", clip(key))
		}
		seen[key] = true
		if err := skipValue(dec, depth); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return metadataError("the body is not valid JSON")
	}
	return nil
}

// maxDepth bounds the nesting of what the body holds (16 KiB of brackets
// would otherwise be thousands of levels).
const maxDepth = 32

func skipValue(dec *json.Decoder, depth int) error {
	t, err := dec.Token()
	if err != nil {
		return metadataError("the body is not valid JSON")
	}
	d, ok := t.(json.Delim)
	if !ok {
		return nil
	}
	if depth >= maxDepth {
		return metadataError("the body is nested more than %d levels deep", maxDepth)
	}
	switch d {
	case '{':
		return skipMembers(dec, depth+1)
	case '[':
		for dec.More() {
			if err := skipValue(dec, depth+1); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return metadataError("the body is not valid JSON")
		}
	}
	return nil
}

// clip shortens a value the client sent before it is quoted back.
func clip(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strings.ToValidUTF8(s, "")
}

// clientName checks a client_name: it is shown to users, so it may not
// carry control characters or reorder text around it (Unicode bidi
// controls), which could make one name look like another.
func clientName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if len(name) > maxClientName {
		return "", metadataError("client_name is longer than %d bytes", maxClientName)
	}
	for _, r := range name {
		if unicode.IsControl(r) || unicode.In(r, unicode.Zl, unicode.Zp) || unicode.Is(unicode.Bidi_Control, r) {
			return "", metadataError("client_name contains a control character (%U)", r)
		}
	}
	return name, nil
}

// httpsURI checks an https URI the client gave (client_uri, logo_uri,
// tos_uri, policy_uri, web redirect URIs) and returns its host: a
// lower-case DNS name of at least two labels, no IP address, no user or
// password, no fragment, no wildcard, any port.
func httpsURI(raw string) (host, port string, err error) {
	if err := uriChars(raw); err != nil {
		return "", "", err
	}
	rest, ok := strings.CutPrefix(raw, "https://")
	if !ok {
		return "", "", errors.New("must be an https:// URL")
	}
	host, port, err = authority(rest)
	if err != nil {
		return "", "", err
	}
	if err := dnsName(host); err != nil {
		return "", "", err
	}
	return host, port, nil
}

// uriChars admits what RFC 3986 allows in a URI, as ASCII, except the
// fragment (RFC 6749 §3.1.2: a redirect URI has none; no URI here needs
// one), a wildcard and the brackets of IP literals (only http://[::1] has
// them, see loopbackHosts).
func uriChars(raw string) error {
	if len(raw) > maxURILength {
		return fmt.Errorf("is longer than %d bytes", maxURILength)
	}
	if raw == "" {
		return errors.New("is empty")
	}
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '#':
			return errors.New("must not have a fragment (#)")
		case c == '*':
			return errors.New("must not contain a wildcard (*): URIs are matched exactly")
		case c == '%':
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return errors.New("has a % that is not a percent-encoding")
			}
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.IndexByte("-._~:/?[]@!$&'()+,;=", c) >= 0:
		default:
			return fmt.Errorf("contains %q, which a URI cannot hold unencoded", rune(c))
		}
	}
	return nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// authority splits what follows "scheme://" into host and port, and checks
// that the path or query comes next.
func authority(rest string) (host, port string, err error) {
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	auth := rest[:end]
	if strings.Contains(auth, "@") {
		return "", "", errors.New("must not have a user or password (user@host)")
	}
	host = auth
	hasPort := false
	if strings.HasPrefix(auth, "[") {
		close := strings.Index(auth, "]")
		if close < 0 {
			return "", "", errors.New("has an unclosed [ in its host")
		}
		host, port = auth[:close+1], auth[close+1:]
		if port != "" {
			if port, hasPort = strings.CutPrefix(port, ":"); !hasPort {
				return "", "", errors.New("has something after its IP literal that is not a port")
			}
		}
	} else if i := strings.LastIndexByte(auth, ':'); i >= 0 {
		host, port, hasPort = auth[:i], auth[i+1:], true
	}
	if host == "" {
		return "", "", errors.New("has no host")
	}
	if hasPort {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || len(port) > 5 || port[0] == '+' || port[0] == '-' {
			return "", "", errors.New("has a port that is not a number from 1 to 65535")
		}
	}
	if strings.ContainsAny(rest[end:], "[]") {
		return "", "", errors.New("has [ or ] outside its host")
	}
	return host, port, nil
}

// dnsName admits a lower-case DNS name of two labels or more (so no
// "localhost", no IPv4 address, whose last label is digits).
func dnsName(host string) error {
	if strings.HasPrefix(host, "[") {
		return errors.New("must name its host, not an IP address")
	}
	if len(host) > 253 {
		return errors.New("has a host name longer than 253 bytes")
	}
	if host != strings.ToLower(host) {
		return errors.New("must write its host in lower case")
	}
	labels := strings.Split(host, ".")
	if len(labels) < 2 {
		return fmt.Errorf("must name a public host, not %q", host)
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return errors.New("has a host name that is not a DNS name")
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return errors.New("has a host name that is not a DNS name")
			}
		}
	}
	if last := labels[len(labels)-1]; strings.Trim(last, "0123456789") == "" {
		return errors.New("must name its host, not an IP address")
	}
	return nil
}

// sameOrSubdomain reports whether host is base or a name under it, label
// by label: app.example.org is under example.org, example.org.evil.com
// and badexample.org are not.
func sameOrSubdomain(host, base string) bool {
	return host == base || strings.HasSuffix(host, "."+base)
}

// loopbackHosts are the hosts of a native application's loopback redirect
// (the Matrix spec's OAuth 2.0 API, redirect URI validation; RFC 8252
// §7.3, which prefers the IP literals).
var loopbackHosts = []string{"127.0.0.1", "[::1]", "localhost"}

// checkRedirectURI applies the Matrix spec's redirect URI rules ("OAuth
// 2.0 API", redirect URI validation): a web application's are https on
// client_uri's host or a subdomain; a native application's are that too
// (claimed https URIs), or http on the loopback interface (any port at
// authorization time, RFC 8252 §7.3), or a private-use scheme that is the
// reverse-DNS name of client_uri's host or of a subdomain, with no
// authority (RFC 8252 §7.1: "com.example.app:/callback").
func checkRedirectURI(i int, uri, appType, base string) error {
	if err := uriChars(uri); err != nil {
		return redirectError(i, "%v", err)
	}
	scheme, rest, ok := strings.Cut(uri, ":")
	if !ok || !validScheme(scheme) {
		return redirectError(i, "must be an absolute URI with a lower-case scheme")
	}
	if appType == storage.ApplicationWeb && scheme != "https" {
		return redirectError(i, "a web application's redirect URIs must be https on %s or a subdomain of it", base)
	}
	switch scheme {
	case "https":
		host, _, err := httpsURI(uri)
		if err != nil {
			return redirectError(i, "%v", err)
		}
		if !sameOrSubdomain(host, base) {
			return redirectError(i, "must be on %s (client_uri's host) or a subdomain of it", base)
		}
	case "http":
		r, _ := strings.CutPrefix(rest, "//")
		host, _, err := authority(r)
		if err != nil || !strings.HasPrefix(rest, "//") {
			if err == nil {
				err = errors.New("has no host")
			}
			return redirectError(i, "%v", err)
		}
		if !slices.Contains(loopbackHosts, host) {
			return redirectError(i, "http is allowed only on the loopback interface: http://127.0.0.1/…, http://[::1]/… or http://localhost/…")
		}
	default:
		if strings.HasPrefix(rest, "//") {
			return redirectError(i, "a private-use scheme URI must not have an authority (//): write %s:/path", scheme)
		}
		if !reverseDNSOf(scheme, base) {
			return redirectError(i, "a private-use scheme must be %s (client_uri's host in reverse order) or start with it, like %s.app",
				reverseDNS(base), reverseDNS(base))
		}
	}
	if _, err := url.Parse(uri); err != nil {
		return redirectError(i, "is not a valid URI")
	}
	return nil
}

// validScheme admits an RFC 3986 §3.1 scheme in lower case.
func validScheme(s string) bool {
	if s == "" || !(s[0] >= 'a' && s[0] <= 'z') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

func reverseDNS(host string) string {
	labels := strings.Split(host, ".")
	slices.Reverse(labels)
	return strings.Join(labels, ".")
}

// reverseDNSOf reports whether scheme is host's reverse-DNS name or one
// under it, label by label (org.example.app for example.org).
func reverseDNSOf(scheme, host string) bool {
	r := reverseDNS(host)
	return scheme == r || strings.HasPrefix(scheme, r+".")
}

// RegisteredClient is the answer to a registration (RFC 7591 §3.2.1):
// the client's ID and the metadata it was registered with.
type RegisteredClient struct {
	ClientID                string   `json:"client_id"`
	ClientIDIssuedAt        int64    `json:"client_id_issued_at"`
	ClientName              string   `json:"client_name,omitempty"`
	ClientURI               string   `json:"client_uri"`
	LogoURI                 string   `json:"logo_uri,omitempty"`
	TOSURI                  string   `json:"tos_uri,omitempty"`
	PolicyURI               string   `json:"policy_uri,omitempty"`
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	ApplicationType         string   `json:"application_type"`
	// The signing algorithms registered (OpenID Connect Dynamic Client
	// Registration §3.2: the answer holds every registered value).
	IDTokenSignedResponseAlg  string `json:"id_token_signed_response_alg"`
	UserinfoSignedResponseAlg string `json:"userinfo_signed_response_alg,omitempty"`
}

// Register stores a registration as a new public client with a random
// ID, unless maxUnused (when above 0) dynamic clients nobody uses exist
// already (ErrTooManyRegistrations); network is the registering client's
// address, for the audit log. Registrations in flight when the cap is
// reached may each still pass it: the cap is a bound, not an exact count.
func (o *OpenID) Register(ctx context.Context, reg Registration, network string, maxUnused int) (RegisteredClient, error) {
	if maxUnused > 0 {
		n, err := o.Store.CountUnusedDynamicClients(ctx)
		if err != nil {
			return RegisteredClient{}, err
		}
		if n >= maxUnused {
			return RegisteredClient{}, ErrTooManyRegistrations
		}
	}
	c, err := o.Store.CreateClient(ctx, storage.Client{
		ID: newID(), Name: reg.Name, Public: true, Dynamic: true, ApplicationType: reg.ApplicationType,
		RedirectURIs: reg.RedirectURIs, ClientURI: reg.ClientURI, LogoURI: reg.LogoURI, TOSURI: reg.TOSURI, PolicyURI: reg.PolicyURI,
		IDTokenAlg: reg.IDTokenAlg, UserinfoAlg: reg.UserinfoAlg,
	})
	if err != nil {
		return RegisteredClient{}, err
	}
	detail := fmt.Sprintf("%s application %q from %s, %d redirect URI(s)", reg.ApplicationType, clip(reg.Name), reg.ClientURI, len(reg.RedirectURIs)) +
		signingDetail(c)
	if err := o.Store.AddAuditEvent(ctx, storage.AuditEvent{Event: "client.registered", ClientID: c.ID, Network: network, Detail: detail}); err != nil {
		o.Logger.Warn("recording an audit event failed", "event", "client.registered", "err", err)
	}
	return RegisteredClient{
		ClientID: c.ID, ClientIDIssuedAt: c.CreatedAt.Unix(), ClientName: c.Name, ClientURI: c.ClientURI,
		LogoURI: c.LogoURI, TOSURI: c.TOSURI, PolicyURI: c.PolicyURI, RedirectURIs: c.RedirectURIs,
		TokenEndpointAuthMethod: "none", GrantTypes: registeredGrantTypes, ResponseTypes: registeredResponseTypes,
		ApplicationType: c.ApplicationType, IDTokenSignedResponseAlg: c.IDTokenAlg, UserinfoSignedResponseAlg: c.UserinfoAlg,
	}, nil
}

// ClientHost is the host of a dynamic client's client_uri, which the
// consent page shows beside its name; "" for other clients.
func ClientHost(c storage.Client) string {
	if !c.Dynamic {
		return ""
	}
	u, err := url.Parse(c.ClientURI)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// exactRedirectURIs are the redirect URIs the library matches byte for
// byte: all of them, except a native dynamic client's loopback ones, which
// RedirectURIGlobs matches with any port. Left in this list, they would
// also meet the library's own loopback rule for native clients, which
// compares only path and query (zitadel/oidc pkg/op/auth_request.go,
// validateAuthReqRedirectURINative): http://localhost/cb would then
// stand for a registered http://127.0.0.1/cb, and https for http.
func (c *Client) exactRedirectURIs() []string {
	if c.ApplicationType() != op.ApplicationTypeNative {
		return c.Client.RedirectURIs
	}
	var out []string
	for _, u := range c.Client.RedirectURIs {
		if !strings.HasPrefix(u, "http://") {
			out = append(out, u)
		}
	}
	return out
}

// RedirectURIGlobs matches a native dynamic client's loopback redirect
// URIs with any port or none, as RFC 8252 §7.3 requires, and nothing else
// of them: the same scheme, host, path and query. The patterns
// (doublestar syntax, as the library reads them) escape everything of the
// registered URI and allow only one to five digits for the port.
func (c *Client) RedirectURIGlobs() []string {
	if c.ApplicationType() != op.ApplicationTypeNative {
		return nil
	}
	var globs []string
	for _, u := range c.Client.RedirectURIs {
		rest, ok := strings.CutPrefix(u, "http://")
		if !ok {
			continue
		}
		end := strings.IndexAny(rest, "/?")
		if end < 0 {
			end = len(rest)
		}
		host, _, _ := authority(rest)
		after := globEscape(rest[end:])
		base := "http://" + globEscape(host)
		globs = append(globs, base+after)
		for digits := 1; digits <= 5; digits++ {
			globs = append(globs, base+":"+strings.Repeat("[0-9]", digits)+after)
		}
	}
	return globs
}

// PostLogoutRedirectURIGlobs: logout redirects are matched exactly.
func (c *Client) PostLogoutRedirectURIGlobs() []string { return nil }

// globEscape quotes every character doublestar gives a meaning.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\*?[]{}`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

var _ op.HasRedirectGlobs = (*Client)(nil)
