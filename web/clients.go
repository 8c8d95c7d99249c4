package web

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/mxidp/mxidp/provider"
)

// What mxidp says about a client it refuses must not tell a registered
// client ID from an unknown one: at the endpoints where clients
// authenticate, an unknown client, a missing secret and a wrong secret get
// one answer byte for byte (RFC 6749 §5.2's invalid_client), and at the
// authorization endpoint an unknown client and a redirect URI it has not
// registered get one page.

// clientRefusedBody is the one refusal of a client that failed to
// authenticate.
var clientRefusedBody = func() []byte {
	b, _ := json.Marshal(map[string]string{"error": "invalid_client", "error_description": provider.ClientRefusal})
	return append(b, '\n')
}()

// basicChallenge answers a client that authenticated with HTTP Basic
// (RFC 6749 §5.2: the challenge must match the scheme the client used).
var basicChallenge = []string{`Basic realm="mxidp"`}

// writeClientRefused sends the refusal of a client.
func writeClientRefused(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Del("Content-Length")
	h.Del("Www-Authenticate")
	h["Content-Type"] = valueJSON
	h["Cache-Control"] = valueNoStore
	h["Pragma"] = valueNoCache
	if r.Header.Get("Authorization") != "" {
		h["Www-Authenticate"] = basicChallenge
	}
	w.WriteHeader(http.StatusUnauthorized)
	w.Write(clientRefusedBody)
}

// clientDoor serves an endpoint of zitadel/oidc where clients
// authenticate (token, introspection, revocation): its answers are never
// cached (RFC 6749 §5.1), and every 401 it gives, which is a refused
// client at each of them, becomes writeClientRefused's. The library words
// those refusals differently by the path they took (an unknown client at
// the revocation endpoint has no description, a wrong secret has one;
// introspection answers in plain text with its error chain).
func clientDoor(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Cache-Control"] = valueNoStore
		h["Pragma"] = valueNoCache
		cw := &holdBack{ResponseWriter: w, hold: func(status int) bool { return status == http.StatusUnauthorized }}
		next(cw, r)
		if cw.held {
			writeClientRefused(w, r)
		}
	}
}

// unknownClientOrRedirect is the detail of the authorization error page for
// both an unknown client and a redirect URI the client has not registered.
const unknownClientOrRedirect = "unknown client_id, or a redirect_uri not registered for it exactly as sent"

// authorizeRefusalDetail returns the detail the authorization error page
// shows for the library's plain-text refusal: the same text for an
// unknown client and for an unregistered redirect URI, which the library
// words differently ("unable to retrieve client by id", "The requested
// redirect_uri is missing in the client configuration. …"); any other
// refusal as the library words it.
func authorizeRefusalDetail(libraryText string) string {
	t := strings.TrimSpace(libraryText)
	if t == "unable to retrieve client by id" || strings.HasPrefix(t, "The requested redirect_uri is missing in the client configuration") {
		return unknownClientOrRedirect
	}
	return t
}
