// Package clientip finds the address an HTTP request came from, behind
// the reverse proxies an operator trusts: the TCP peer, or the client a
// trusted proxy names in X-Forwarded-For or Forwarded (RFC 7239).
//
// It only reads requests; what the address is used for (throttling, an
// allow-list) is its callers' business. It imports nothing of mxidp, so
// that every door can share it.
package clientip

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ErrNoPeer means the request's RemoteAddr is not an IP address (a test
// request, a Unix socket).
var ErrNoPeer = errors.New("the connection has no IP address")

// HeaderError is a forwarding header from a trusted proxy that cannot be
// read, or two that name different clients.
type HeaderError struct {
	Header string // "X-Forwarded-For", "Forwarded" or both
	Reason string
}

func (e *HeaderError) Error() string { return e.Header + ": " + e.Reason }

// Peer returns the address of the TCP peer, IPv4-mapped addresses as IPv4.
func Peer(r *http.Request) (netip.Addr, error) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, ErrNoPeer
	}
	return a.Unmap().WithZone(""), nil
}

// Forwarded reports whether r carries a forwarding header, from whichever
// peer.
func Forwarded(r *http.Request) bool {
	return len(r.Header.Values("X-Forwarded-For")) > 0 || len(r.Header.Values("Forwarded")) > 0
}

// Of returns the client's address. From a peer outside trusted, that is
// the peer, whatever headers it sent, since anyone can send them. From a
// trusted proxy, the hops of X-Forwarded-For and Forwarded are read from
// the right (each proxy appends the address it received the request
// from), skipping trusted proxies, and the first other address is the
// client's; a chain of trusted proxies only names the leftmost one. What
// lies left of the client was written by the client and is not read.
//
// A hop a trusted proxy wrote that is not an IP address (garbage, an
// empty entry, "unknown" or an obfuscated identifier of RFC 7239 §6.3)
// is a *HeaderError, and so are the two headers naming different
// clients: a proxy that sets one header passes the other on from the
// client untouched, so a disagreement means one of them is forged.
func Of(r *http.Request, trusted []netip.Prefix) (netip.Addr, error) {
	peer, err := Peer(r)
	if err != nil || !Within(trusted, peer) {
		return peer, err
	}
	client, from := peer, ""
	for _, h := range []struct {
		name string
		hops func(string) ([]string, error)
		node func(string) (netip.Addr, error)
	}{
		{"X-Forwarded-For", xffHops, plainAddr},
		{"Forwarded", forwardedHops, forwardedNode},
	} {
		values := r.Header.Values(h.name)
		if len(values) == 0 {
			continue
		}
		// Several lines of one header are one comma-separated list (RFC 9110 §5.3).
		hops, err := h.hops(strings.Join(values, ","))
		if err != nil {
			return netip.Addr{}, &HeaderError{h.name, err.Error()}
		}
		c := peer
		for i := len(hops) - 1; i >= 0; i-- {
			if c, err = h.node(hops[i]); err != nil {
				return netip.Addr{}, &HeaderError{h.name, err.Error()}
			}
			if !Within(trusted, c) {
				break
			}
		}
		if from != "" && c != client {
			return netip.Addr{}, &HeaderError{from + " and " + h.name,
				fmt.Sprintf("name different clients (%s and %s)", client, c)}
		}
		client, from = c, h.name
	}
	return client, nil
}

// xffHops splits an X-Forwarded-For list: addresses separated by commas
// and optional white space.
func xffHops(v string) ([]string, error) {
	hops := strings.Split(v, ",")
	for i := range hops {
		hops[i] = strings.Trim(hops[i], " \t")
	}
	return hops, nil
}

// plainAddr is an X-Forwarded-For entry: a bare IPv4 or IPv6 address.
func plainAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		if s == "" {
			return netip.Addr{}, errors.New("an empty entry")
		}
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", clip(s))
	}
	return a.Unmap(), nil
}

// forwardedHops returns the for= value of each element of a Forwarded
// list (RFC 7239 §4): elements separated by commas, each of name=value
// pairs separated by semicolons, a value a token or a quoted string,
// names case-insensitive. Empty elements and pairs are skipped (RFC 9110
// §5.6.1). An element without for= is an error: it does not say whom
// the proxy heard from.
func forwardedHops(v string) ([]string, error) {
	var hops []string
	node, seen, empty := "", false, true
	for i := 0; ; {
		i = skipOWS(v, i)
		if i < len(v) && v[i] != ',' && v[i] != ';' {
			start := i
			for i < len(v) && isTchar(v[i]) {
				i++
			}
			name := v[start:i]
			if name == "" || i == len(v) || v[i] != '=' {
				return nil, fmt.Errorf("malformed element near %q", clip(v[start:]))
			}
			value, next, err := forwardedValue(v, i+1)
			if err != nil {
				return nil, err
			}
			if strings.EqualFold(name, "for") {
				if seen {
					return nil, errors.New(`an element with two "for" parameters`)
				}
				node, seen = value, true
			}
			empty = false
			i = skipOWS(v, next)
		}
		switch {
		case i < len(v) && v[i] == ';':
			i++
			continue
		case i < len(v) && v[i] != ',':
			return nil, fmt.Errorf("malformed element near %q", clip(v[i:]))
		}
		// The end of an element.
		if !empty && !seen {
			return nil, errors.New(`an element without "for"`)
		}
		if seen {
			hops = append(hops, node)
		}
		node, seen, empty = "", false, true
		if i == len(v) {
			return hops, nil
		}
		i++ // the comma
	}
}

// forwardedValue reads a token or a quoted string at v[i:].
func forwardedValue(v string, i int) (value string, next int, err error) {
	if i < len(v) && v[i] == '"' {
		var b strings.Builder
		for i++; i < len(v); i++ {
			switch c := v[i]; {
			case c == '"':
				return b.String(), i + 1, nil
			case c == '\\' && i+1 < len(v):
				i++
				b.WriteByte(v[i])
			case c == '\t' || c >= ' ' && c != 0x7f:
				b.WriteByte(c)
			default:
				return "", 0, errors.New("a control character in a quoted value")
			}
		}
		return "", 0, errors.New("an unterminated quoted value")
	}
	start := i
	for i < len(v) && isTchar(v[i]) {
		i++
	}
	if i == start {
		return "", 0, fmt.Errorf("a missing value near %q", clip(v[start:]))
	}
	return v[start:i], i, nil
}

// forwardedNode is the address of a for= node (RFC 7239 §6): IPv4, or
// IPv6 in brackets, either with an optional port.
func forwardedNode(node string) (netip.Addr, error) {
	bad := fmt.Errorf("for=%q is not an IP address", clip(node))
	host, port, hasPort := node, "", false
	bracketed := strings.HasPrefix(node, "[")
	if bracketed {
		h, after, ok := strings.Cut(node[1:], "]")
		if !ok {
			return netip.Addr{}, bad
		}
		host = h
		if after != "" {
			if port, hasPort = strings.CutPrefix(after, ":"); !hasPort {
				return netip.Addr{}, bad
			}
		}
	} else {
		host, port, hasPort = strings.Cut(node, ":")
	}
	a, err := netip.ParseAddr(host)
	// An IPv6 address must be in brackets, an IPv4 one must not; anything
	// else is "unknown" or an obfuscated identifier.
	if err != nil || a.Is6() != bracketed || a.Zone() != "" || hasPort && !validPort(port) {
		return netip.Addr{}, bad
	}
	return a.Unmap(), nil
}

// validPort reports whether port is a node-port of RFC 7239 §6: up to
// five digits, or an obfuscated identifier "_…".
func validPort(port string) bool {
	if rest, ok := strings.CutPrefix(port, "_"); ok {
		return rest != "" && strings.Trim(rest, "._-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") == ""
	}
	return port != "" && len(port) <= 5 && strings.Trim(port, "0123456789") == ""
}

func skipOWS(v string, i int) int {
	for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
		i++
	}
	return i
}

// isTchar reports whether c may appear in a token (RFC 9110 §5.6.2).
func isTchar(c byte) bool {
	switch {
	case '0' <= c && c <= '9', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// Within reports whether a lies in one of prefixes (a trusted proxy, an
// allow-list).
func Within(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clip shortens what an error quotes from a header.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// SiteNetworks is how many networks' allowance the site around an IPv6
// network has, wherever a limit counts per network: a /64 costs an
// attacker nothing to change, a /48 is a site.
const SiteNetworks = 16

// Networks returns the parts of a client address one party controls, as
// limits count them: network is the whole IPv4 address or the /64 of an
// IPv6 one, site the /48 around an IPv6 network ("" for IPv4). Both are ""
// for a string that is not an address.
func Networks(addr string) (network, site string) {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return "", ""
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String(), ""
	}
	return netip.PrefixFrom(a, 64).Masked().String(), netip.PrefixFrom(a, 48).Masked().String()
}
