package web

import (
	"net/http"
	"net/netip"

	"github.com/mxidp/mxidp/clientip"
)

// clientAddr is the address of the browser a request came from, for the
// throttle and the audit log: the client a trusted proxy names in
// X-Forwarded-For or Forwarded, or else the TCP peer (see clientip.Of).
// When a trusted proxy passes a header that cannot be read, or two that
// disagree, the proxy itself is the address: a guess the client chose
// would give it a fresh throttle allowance with every request.
func clientAddr(r *http.Request, trusted []netip.Prefix) string {
	a, err := clientip.Of(r, trusted)
	if err != nil {
		if a, err = clientip.Peer(r); err != nil {
			return ""
		}
	}
	return a.String()
}
