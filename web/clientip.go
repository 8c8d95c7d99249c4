package web

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// clientAddr is the address of the browser a request came from, for the
// throttle and the audit log. Behind a reverse proxy the connection comes
// from the proxy: when it is one of trusted, the X-Forwarded-For entries
// are read from the right, skipping trusted proxies, and the first other
// address is the client's. Entries from untrusted peers are ignored, since
// anyone can send the header.
func clientAddr(r *http.Request, trusted []netip.Prefix) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return ""
	}
	peer = peer.Unmap()
	if !isTrusted(peer, trusted) {
		return peer.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a damaged header: trust nothing further left
		}
		hop = hop.Unmap()
		if !isTrusted(hop, trusted) {
			return hop.String()
		}
		peer = hop
	}
	return peer.String()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
