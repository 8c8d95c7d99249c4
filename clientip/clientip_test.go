package clientip_test

import (
	"errors"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/mxidp/mxidp/clientip"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

func TestOfReadsForwardingHeadersOnlyFromTrustedProxies(t *testing.T) {
	twoProxies := append([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, loopback...)
	for _, tc := range []struct {
		name    string
		remote  string
		headers []string // name, value, name, value …
		trusted []netip.Prefix
		want    string // the client, or "error"
	}{
		{"direct client", "192.0.2.7:5555", nil, loopback, "192.0.2.7"},
		{"direct client claims loopback", "192.0.2.7:5555", []string{"X-Forwarded-For", "127.0.0.1"}, loopback, "192.0.2.7"},
		{"direct client claims loopback by Forwarded", "192.0.2.7:5555", []string{"Forwarded", "for=127.0.0.1"}, loopback, "192.0.2.7"},
		{"direct client sends garbage", "192.0.2.7:5555", []string{"X-Forwarded-For", "nonsense"}, loopback, "192.0.2.7"},
		{"no proxies trusted", "127.0.0.1:40000", []string{"X-Forwarded-For", "198.51.100.4"}, nil, "127.0.0.1"},
		{"local proxy, no header", "127.0.0.1:40000", nil, loopback, "127.0.0.1"},
		{"IPv4-mapped peer", "[::ffff:192.0.2.7]:5555", nil, loopback, "192.0.2.7"},
		{"IPv4-mapped proxy", "[::ffff:127.0.0.1]:5555", []string{"X-Forwarded-For", "198.51.100.4"}, loopback, "198.51.100.4"},

		// X-Forwarded-For
		{"behind a local proxy", "127.0.0.1:40000", []string{"X-Forwarded-For", "198.51.100.4"}, loopback, "198.51.100.4"},
		{"client spoofs loopback in front", "127.0.0.1:40000", []string{"X-Forwarded-For", "127.0.0.1, 198.51.100.4"}, loopback, "198.51.100.4"},
		{"client spoofs garbage in front", "127.0.0.1:40000", []string{"X-Forwarded-For", "nonsense,198.51.100.4"}, loopback, "198.51.100.4"},
		{"two trusted proxies", "127.0.0.1:40000", []string{"X-Forwarded-For", "198.51.100.4, 10.1.2.3"}, twoProxies, "198.51.100.4"},
		{"second proxy not trusted", "127.0.0.1:40000", []string{"X-Forwarded-For", "198.51.100.4, 10.1.2.3"}, loopback, "10.1.2.3"},
		{"forwarded loopback", "127.0.0.1:40000", []string{"X-Forwarded-For", "127.0.0.1"}, loopback, "127.0.0.1"},
		{"a chain of trusted proxies", "127.0.0.1:40000", []string{"X-Forwarded-For", "127.0.0.5, ::1"}, loopback, "127.0.0.5"},
		{"two header lines", "127.0.0.1:40000", []string{"X-Forwarded-For", "198.51.100.4", "X-Forwarded-For", "10.1.2.3"}, twoProxies, "198.51.100.4"},
		{"IPv6 client", "[::1]:40000", []string{"X-Forwarded-For", "2001:db8::1"}, loopback, "2001:db8::1"},
		{"IPv4-mapped client", "[::1]:40000", []string{"X-Forwarded-For", "::ffff:203.0.113.7"}, loopback, "203.0.113.7"},
		{"damaged header", "127.0.0.1:40000", []string{"X-Forwarded-For", "nonsense"}, loopback, "error"},
		{"damaged after the client", "127.0.0.1:40000", []string{"X-Forwarded-For", "198.51.100.4, nonsense"}, loopback, "error"},
		{"empty header", "127.0.0.1:40000", []string{"X-Forwarded-For", ""}, loopback, "error"},
		{"empty entry", "127.0.0.1:40000", []string{"X-Forwarded-For", "198.51.100.4,"}, loopback, "error"},
		{"address with a port", "127.0.0.1:40000", []string{"X-Forwarded-For", "198.51.100.4:80"}, loopback, "error"},
		{"address with a zone", "127.0.0.1:40000", []string{"X-Forwarded-For", "fe80::1%eth0"}, loopback, "error"},

		// Forwarded (RFC 7239)
		{"Forwarded", "127.0.0.1:40000", []string{"Forwarded", "for=203.0.113.7"}, loopback, "203.0.113.7"},
		{"Forwarded, case and spaces", "127.0.0.1:40000", []string{"Forwarded", "proto=https; For=203.0.113.7 ;by=127.0.0.1"}, loopback, "203.0.113.7"},
		{"Forwarded, quoted with a port", "127.0.0.1:40000", []string{"Forwarded", `for="203.0.113.7:4711"`}, loopback, "203.0.113.7"},
		{"Forwarded, IPv6", "127.0.0.1:40000", []string{"Forwarded", `for="[2001:db8:cafe::17]"`}, loopback, "2001:db8:cafe::17"},
		{"Forwarded, IPv6 with a port", "127.0.0.1:40000", []string{"Forwarded", `for="[2001:db8:cafe::17]:4711"`}, loopback, "2001:db8:cafe::17"},
		{"Forwarded, obfuscated port", "127.0.0.1:40000", []string{"Forwarded", `for="198.51.100.4:_p1"`}, loopback, "198.51.100.4"},
		{"Forwarded, quoted pair", "127.0.0.1:40000", []string{"Forwarded", `for=198.51.100.4, for="\[::1\]";proto=http`}, loopback, "198.51.100.4"},
		{"Forwarded, chain read from the right", "127.0.0.1:40000", []string{"Forwarded", `for=127.0.0.1, for=198.51.100.4;proto=https, for="[::1]"`}, loopback, "198.51.100.4"},
		{"Forwarded, loopback", "127.0.0.1:40000", []string{"Forwarded", `for="[::1]:5555"`}, loopback, "::1"},
		{"Forwarded, empty elements", "127.0.0.1:40000", []string{"Forwarded", `, for=198.51.100.4 ,,`}, loopback, "198.51.100.4"},
		{"Forwarded, a comma in quotes", "127.0.0.1:40000", []string{"Forwarded", `for=198.51.100.4;ext="a, for=127.0.0.1"`}, loopback, "198.51.100.4"},
		{"Forwarded, unknown", "127.0.0.1:40000", []string{"Forwarded", "for=unknown"}, loopback, "error"},
		{"Forwarded, obfuscated node", "127.0.0.1:40000", []string{"Forwarded", "for=_hidden"}, loopback, "error"},
		{"Forwarded, IPv6 unbracketed", "127.0.0.1:40000", []string{"Forwarded", `for="2001:db8::1"`}, loopback, "error"},
		{"Forwarded, IPv6 unquoted", "127.0.0.1:40000", []string{"Forwarded", `for=[2001:db8::1]`}, loopback, "error"},
		{"Forwarded, IPv4 in brackets", "127.0.0.1:40000", []string{"Forwarded", `for="[203.0.113.7]"`}, loopback, "error"},
		{"Forwarded, bad port", "127.0.0.1:40000", []string{"Forwarded", `for="203.0.113.7:http"`}, loopback, "error"},
		{"Forwarded, no for", "127.0.0.1:40000", []string{"Forwarded", "proto=https;by=127.0.0.1"}, loopback, "error"},
		{"Forwarded, two fors", "127.0.0.1:40000", []string{"Forwarded", "for=127.0.0.1;for=203.0.113.7"}, loopback, "error"},
		{"Forwarded, unterminated quote", "127.0.0.1:40000", []string{"Forwarded", `for="203.0.113.7`}, loopback, "error"},
		{"Forwarded, garbage", "127.0.0.1:40000", []string{"Forwarded", "203.0.113.7"}, loopback, "error"},
		{"Forwarded, missing value", "127.0.0.1:40000", []string{"Forwarded", "for="}, loopback, "error"},
		{"Forwarded, garbage after a value", "127.0.0.1:40000", []string{"Forwarded", "for=203.0.113.7 x"}, loopback, "error"},

		// Both headers
		{"both agree", "127.0.0.1:40000", []string{"X-Forwarded-For", "203.0.113.7", "Forwarded", "for=203.0.113.7"}, loopback, "203.0.113.7"},
		{"a forged Forwarded beside X-Forwarded-For", "127.0.0.1:40000", []string{"X-Forwarded-For", "203.0.113.7", "Forwarded", "for=127.0.0.1"}, loopback, "error"},
		{"a forged X-Forwarded-For beside Forwarded", "127.0.0.1:40000", []string{"X-Forwarded-For", "127.0.0.1", "Forwarded", "for=203.0.113.7"}, loopback, "error"},
	} {
		r := httptest.NewRequest("POST", "/", nil)
		r.RemoteAddr = tc.remote
		for i := 0; i+1 < len(tc.headers); i += 2 {
			r.Header.Add(tc.headers[i], tc.headers[i+1])
		}
		got, err := clientip.Of(r, tc.trusted)
		var herr *clientip.HeaderError
		switch {
		case tc.want == "error" && !errors.As(err, &herr):
			t.Errorf("%s: Of = %v, %v; want a HeaderError", tc.name, got, err)
		case tc.want != "error" && (err != nil || got != netip.MustParseAddr(tc.want)):
			t.Errorf("%s: Of = %v, %v; want %s", tc.name, got, err, tc.want)
		}
	}
}

func TestOfWithoutAnIPPeerIsAnError(t *testing.T) {
	r := httptest.NewRequest("POST", "/", nil)
	r.RemoteAddr = "@"
	if _, err := clientip.Of(r, loopback); !errors.Is(err, clientip.ErrNoPeer) {
		t.Errorf("Of from a Unix socket: %v; want ErrNoPeer", err)
	}
}

// FuzzOf: no panic; an address comes with no error, and it is the peer
// or one the headers spelled.
func FuzzOf(f *testing.F) {
	for _, s := range []string{"198.51.100.4", "127.0.0.1, 198.51.100.4", "nonsense", "",
		`for="[2001:db8:cafe::17]:4711";proto=https, for=127.0.0.1`, `for="\"`, "for=a;for=b", ",,;;"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, xff, fwd string) {
		r := httptest.NewRequest("POST", "/", nil)
		r.RemoteAddr = "127.0.0.1:1"
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		if fwd != "" {
			r.Header.Set("Forwarded", fwd)
		}
		a, err := clientip.Of(r, loopback)
		if err != nil {
			if a.IsValid() {
				t.Errorf("error %v with address %v", err, a)
			}
			return
		}
		if !a.IsValid() {
			t.Fatalf("no address and no error for %q, %q", xff, fwd)
		}
		if a != netip.MustParseAddr("127.0.0.1") && !spells(xff+fwd, a) {
			t.Errorf("client %v appears in neither %q nor %q", a, xff, fwd)
		}
	})
}

// spells reports whether some run of s parses as a.
func spells(s string, a netip.Addr) bool {
	isAddrByte := func(c byte) bool {
		return c == '.' || c == ':' || '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
	}
	for i := 0; i < len(s); i++ {
		for j := i + 1; j <= len(s) && isAddrByte(s[j-1]); j++ {
			if b, err := netip.ParseAddr(s[i:j]); err == nil && b.Unmap() == a {
				return true
			}
		}
	}
	return false
}

func TestNetworksAreTheAddressOrTheSlashSixtyFourAndItsSite(t *testing.T) {
	for addr, want := range map[string][2]string{
		"192.0.2.7":            {"192.0.2.7", ""},
		"::ffff:192.0.2.7":     {"192.0.2.7", ""},
		"2001:db8:1:2:3:4:5:6": {"2001:db8:1:2::/64", "2001:db8:1::/48"},
		"fe80::1%eth0":         {"fe80::/64", "fe80::/48"},
		"not an address":       {"", ""},
		"":                     {"", ""},
	} {
		if n, s := clientip.Networks(addr); n != want[0] || s != want[1] {
			t.Errorf("Networks(%q) = %q, %q; want %q, %q", addr, n, s, want[0], want[1])
		}
	}
}
