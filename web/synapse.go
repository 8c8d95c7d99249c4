package web

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mxidp/mxidp/provider"
)

// synapseIntrospection answers Synapse's token introspection in next-gen
// auth: POST {endpoint}/oauth2/introspect, form token=…, authenticated by
// the secret shared with Synapse as a bearer token (Synapse
// synapse/api/auth/mas.py). It is a door for Synapse only: any other
// caller gets 401, whatever the token. The answer follows RFC 7662 with
// the fields and strict types Synapse reads (provider.SynapseIntrospection);
// a token that is not live for the Matrix API is {"active": false} and
// nothing else.
type synapseIntrospection struct {
	storage    *provider.OpenID
	decrypt    func(string) (string, error)
	secretHash [sha256.Size]byte

	mu          sync.Mutex
	lastWarning time.Time // refusals are logged once a minute, not per request
}

func newSynapseIntrospection(o OpenID) *synapseIntrospection {
	return &synapseIntrospection{storage: o.Storage, decrypt: o.OP.Crypto().Decrypt,
		secretHash: sha256.Sum256([]byte(o.SynapseSecret))}
}

// fromSynapse compares the bearer token with the shared secret in constant
// time (their hashes, so that the length is not compared either).
func (s *synapseIntrospection) fromSynapse(r *http.Request) bool {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	got := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(got[:], s.secretHash[:]) == 1 && ok
}

func (s *synapseIntrospection) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "invalid_request",
			"error_description": "introspection takes POST"})
		return
	}
	if !s.fromSynapse(r) {
		s.warnRefused(r)
		w.Header().Set("WWW-Authenticate", `Bearer realm="mxidp"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client",
			"error_description": "this introspection endpoint answers Synapse only, with the shared secret as bearer token"})
		return
	}
	if err := r.ParseForm(); err != nil || len(r.PostForm["token"]) != 1 || r.PostForm.Get("token") == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request",
			"error_description": "send one token parameter in a form body"})
		return
	}
	inactive := provider.SynapseIntrospection{}
	id, subject, found := openAccessToken(s.decrypt, r.PostForm.Get("token"))
	if !found {
		writeJSON(w, http.StatusOK, inactive)
		return
	}
	answer, err := s.storage.IntrospectForSynapse(r.Context(), id, subject)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, unavailableJSON)
		return
	}
	writeJSON(w, http.StatusOK, answer)
}

// warnRefused tells the operator, at most once a minute, that a caller
// without the shared secret knocked: Synapse with another secret (its
// clients then get 503 "Unable to introspect the access token"), or
// someone probing.
func (s *synapseIntrospection) warnRefused(r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.lastWarning) < time.Minute {
		return
	}
	s.lastWarning = time.Now()
	s.storage.Logger.Warn("token introspection for Synapse refused: missing or wrong shared secret "+
		"(Synapse's matrix_authentication_service.secret must be matrix.synapse.shared_secret_file's)",
		"remote", r.RemoteAddr, "has_bearer", strings.HasPrefix(r.Header.Get("Authorization"), "Bearer "))
}
