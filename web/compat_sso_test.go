package web

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestSSORedirectURLsAreCheckedStrictly(t *testing.T) {
	for _, c := range []struct {
		raw string
		ok  bool
	}{
		{"https://app.element.io/", true},
		{"https://app.element.io/#/home", true},
		{"http://127.0.0.1:8080/cb?state=1", true},
		{"http://[::1]:8080/cb", true},
		{"im.fluffychat://login", true},
		{"org.example.app:/callback", true},
		{"https://app.example.org:8443/a/b?x=1&y=2#frag", true},
		{"", false},
		{"/relative/path", false},
		{"//app.example.org/", false},
		{"javascript:alert(1)", false},
		{"JavaScript:alert(1)", false},
		{"data:text/html,<script>alert(1)</script>", false},
		{"vbscript:msgbox", false},
		{"file:///etc/passwd", false},
		{"about:blank", false},
		{"element://vector/webapp/", false}, // not a reverse domain name
		{"org.example.app:callback", false}, // opaque
		{"https://user:pass@app.example.org/", false},
		{"https://user@app.example.org/", false},
		{"https:///path", false},
		{"https://app.example.org\\@evil.com/", false},
		{"https://app.example.org/\r\nSet-Cookie: x=1", false},
		{"https://app.example.org/\x00", false},
		{"https://bücher.example/", false},
		{"https://app.example.org/" + strings.Repeat("a", maxSSORedirectURL), false},
		{"https://app.example.org/\xff", false},
	} {
		_, problem := parseSSORedirect(c.raw)
		if (problem == "") != c.ok {
			t.Errorf("parseSSORedirect(%.60q): problem %q, want ok=%v", c.raw, problem, c.ok)
		}
	}
}

func TestSSOAllowListMatchesSchemeHostAndPathBoundary(t *testing.T) {
	list := []string{"https://app.example.org", "https://web.example.org/chat/", "http://127.0.0.1:9000/only", "im.fluffychat://login"}
	for _, c := range []struct {
		raw string
		ok  bool
	}{
		{"https://app.example.org/", true},
		{"https://app.example.org", true},
		{"https://APP.example.org/#/home", true},
		{"https://app.example.org/deep/path?x=1", true},
		{"https://app.example.org.evil.com/", false},
		{"https://app.example.org:444/", false},
		{"http://app.example.org/", false},
		{"https://evil.com/https://app.example.org/", false},
		{"https://evil.com/?https://app.example.org", false},
		{"https://app.example.org%2eevil.com/", false},
		{"https://web.example.org/chat/", true},
		{"https://web.example.org/chat", true},
		{"https://web.example.org/chat/room?x", true},
		{"https://web.example.org/chatevil", false},
		{"https://web.example.org/", false},
		{"https://web.example.org/chat/../admin", false},
		{"https://web.example.org/chat/%2e%2e/admin", false},
		{"https://web.example.org/chat/..%5cadmin", false},
		{"http://127.0.0.1:9000/only", true},
		{"http://127.0.0.1:9000/only/", true},
		{"http://127.0.0.1:9000/onlyone", false},
		{"http://127.0.0.1:9001/only", false},
		{"im.fluffychat://login", true},
		{"im.fluffychat://login.evil", false},
		{"im.fluffychat.evil://login", false},
	} {
		u, problem := parseSSORedirect(c.raw)
		if problem != "" {
			if c.ok {
				t.Errorf("%q refused: %s", c.raw, problem)
			}
			continue
		}
		if got := ssoAllowed(list, u); got != c.ok {
			t.Errorf("ssoAllowed(%q) = %v, want %v", c.raw, got, c.ok)
		}
	}
	if u, _ := parseSSORedirect("https://app.example.org/"); ssoAllowed(nil, u) {
		t.Error("an empty allow-list admits a client")
	}
}

func TestSSOClientPrefixesAreCheckedAtStartUp(t *testing.T) {
	for entry, ok := range map[string]bool{
		"https://app.element.io/":        true,
		"https://app.example.org":        true,
		"im.fluffychat://login":          true,
		"https://app.example.org/?x=1":   false,
		"https://app.example.org/#/home": false,
		"https://app.example.org/#":      false,
		"https://app.example.org/a/../":  false,
		"javascript:":                    false,
		"app.example.org":                false,
		"":                               false,
	} {
		if problem := CheckSSOClientPrefix(entry); (problem == "") != ok {
			t.Errorf("CheckSSOClientPrefix(%q) = %q, want ok=%v", entry, problem, ok)
		}
	}
}

func TestLoginTokenIsAddedToTheClientsQuery(t *testing.T) {
	for raw, want := range map[string]string{
		"https://app.example.org/":                      "https://app.example.org/?loginToken=TOK",
		"https://app.example.org/#/home":                "https://app.example.org/?loginToken=TOK#/home",
		"https://app.example.org/cb?a=1&b=%20x":         "https://app.example.org/cb?a=1&b=%20x&loginToken=TOK",
		"https://app.example.org/cb?loginToken=planted": "https://app.example.org/cb?loginToken=TOK",
		"https://app.example.org/cb?a=1&loginTok%65n=p": "https://app.example.org/cb?a=1&loginToken=TOK",
		"https://app.example.org/cb?":                   "https://app.example.org/cb?loginToken=TOK",
		"org.example.app:/callback":                     "org.example.app:/callback?loginToken=TOK",
		"im.fluffychat://login":                         "im.fluffychat://login?loginToken=TOK",
	} {
		u, problem := parseSSORedirect(raw)
		if problem != "" {
			t.Fatalf("%q: %s", raw, problem)
		}
		if got := withLoginToken(u, "TOK"); got != want {
			t.Errorf("withLoginToken(%q) = %q, want %q", raw, got, want)
		}
	}
}

func TestSSOStateIsBoundToTheBrowserAndExpires(t *testing.T) {
	h := &openIDRoutes{formKey: []byte("0123456789abcdef0123456789abcdef")}
	other := &openIDRoutes{formKey: []byte("another instance's key, not ours")}
	const binding, otherBinding = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
	u, _ := url.Parse("https://app.example.org/cb?x=1#/home")
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	sealed := h.sealSSOState(binding, ssoState{redirect: u, expires: now.Add(30 * time.Minute)})
	st, ok := h.openSSOState(binding, sealed, now.Add(29*time.Minute))
	if !ok || st.redirect.String() != u.String() {
		t.Fatalf("the browser's own state: %v %v", ok, st.redirect)
	}
	enc, rest, _ := strings.Cut(sealed, ".")
	exp, mac, _ := strings.Cut(rest, ".")
	evil := "https://evil.example/"
	for what, c := range map[string]struct {
		binding, sealed string
		at              time.Time
		h               *openIDRoutes
	}{
		"at its expiry":          {binding, sealed, now.Add(30 * time.Minute), h},
		"after its expiry":       {binding, sealed, now.Add(31 * time.Minute), h},
		"in another browser":     {otherBinding, sealed, now, h},
		"without a binding":      {"", sealed, now, h},
		"under another key":      {binding, sealed, now, other},
		"with a later expiry":    {binding, enc + "." + "99999999999" + "." + mac, now, h},
		"with another URL":       {binding, b64(evil) + "." + exp + "." + mac, now, h},
		"without its MAC":        {binding, enc + "." + exp, now, h},
		"empty":                  {binding, "", now, h},
		"a MAC of the wrong URL": {binding, b64(evil) + "." + exp + "." + h.formMAC("matrix sso pending login", binding, u.String(), exp), now, h},
		"oversized":              {binding, strings.Repeat("A", 9000) + "." + exp + "." + mac, now, h},
	} {
		if _, ok := c.h.openSSOState(c.binding, c.sealed, c.at); ok {
			t.Errorf("a state %s was accepted", what)
		}
	}
	// A valid MAC over a URL that is no longer admitted still fails.
	bad := "javascript:alert(1)"
	forged := b64(bad) + "." + exp + "." + h.formMAC("matrix sso pending login", binding, bad, exp)
	if _, ok := h.openSSOState(binding, forged, now); ok {
		t.Error("a signed state with a refused redirect URL was accepted")
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
