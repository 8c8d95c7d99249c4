package web

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

// The parsing itself is tested in package clientip; these are the
// answers the throttle and the audit log get.
func TestClientAddrTrustsForwardedForOnlyFromTrustedProxies(t *testing.T) {
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, tc := range []struct {
		name, remote, xff, fwd string
		trusted                []netip.Prefix
		want                   string
	}{
		{"direct client", "192.0.2.7:5555", "", "", loopback, "192.0.2.7"},
		{"direct client sends a header", "192.0.2.7:5555", "10.9.9.9", "for=10.9.9.9", loopback, "192.0.2.7"},
		{"behind a local proxy", "127.0.0.1:40000", "198.51.100.4", "", loopback, "198.51.100.4"},
		{"behind a local proxy that sets Forwarded", "127.0.0.1:40000", "", `for="[2001:db8::4]:443"`, loopback, "2001:db8::4"},
		{"client spoofs a hop in front", "127.0.0.1:40000", "10.9.9.9, 198.51.100.4", "", loopback, "198.51.100.4"},
		{"two trusted proxies", "127.0.0.1:40000", "198.51.100.4, 127.0.0.2", "", loopback, "198.51.100.4"},
		{"local proxy, no header", "127.0.0.1:40000", "", "", loopback, "127.0.0.1"},
		{"damaged header", "127.0.0.1:40000", "nonsense", "", loopback, "127.0.0.1"},
		{"client forges Forwarded beside the proxy's X-Forwarded-For", "127.0.0.1:40000", "198.51.100.4", "for=10.9.9.9", loopback, "127.0.0.1"},
		{"no proxies trusted", "127.0.0.1:40000", "198.51.100.4", "", nil, "127.0.0.1"},
		{"IPv6 client", "[::1]:40000", "2001:db8::1", "", loopback, "2001:db8::1"},
		{"IPv4-mapped peer", "[::ffff:192.0.2.7]:5555", "", "", loopback, "192.0.2.7"},
		{"no IP peer", "@", "198.51.100.4", "", loopback, ""},
	} {
		r := httptest.NewRequest("POST", "/login", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if tc.fwd != "" {
			r.Header.Set("Forwarded", tc.fwd)
		}
		if got := clientAddr(r, tc.trusted); got != tc.want {
			t.Errorf("%s: clientAddr = %q; want %q", tc.name, got, tc.want)
		}
	}
}
