package provider

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Client secrets and IDs use only URL-unreserved characters (RFC 3986
// §2.3): Basic credentials then decode the same whether or not the sender
// percent-encoded them (RFC 6749 §2.3.1 asks for it, most authlib versions
// Synapse runs on do not, element-hq/synapse#16916).
const unreserved = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"

// minClientSecretLength keeps operator-chosen secrets as strong as
// generated ones, which is what makes a fast hash at rest safe.
const minClientSecretLength = 32

// NewClientSecret returns a random secret of 256 bits in unreserved
// characters (base64url without padding: 43 characters).
func NewClientSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// CheckClientSecret reports why an operator-chosen secret is refused.
func CheckClientSecret(secret string) error {
	if len(secret) < minClientSecretLength {
		return fmt.Errorf("client secret has %d characters, fewer than %d: omit --secret-stdin to have one generated", len(secret), minClientSecretLength)
	}
	if i := strings.IndexFunc(secret, func(r rune) bool { return !strings.ContainsRune(unreserved, r) }); i >= 0 {
		return fmt.Errorf("client secret contains %q: use only A-Z a-z 0-9 - . _ ~ (Synapse's client authentication mangles others)", secret[i])
	}
	return nil
}

// CheckClientID reports why a client ID is refused.
func CheckClientID(id string) error {
	if id == "" || len(id) > 128 {
		return errors.New("client ID must have 1 to 128 characters")
	}
	if i := strings.IndexFunc(id, func(r rune) bool { return !strings.ContainsRune(unreserved, r) }); i >= 0 {
		return fmt.Errorf("client ID %q contains %q: use only A-Z a-z 0-9 - . _ ~", id, id[i])
	}
	return nil
}

const secretHashPrefix = "sha256$"

// HashClientSecret returns what is stored for a client secret. A secret has
// at least 256 bits of entropy (generated, or checked by CheckClientSecret),
// so one SHA-256 is as safe at rest as a slow password hash and keeps the
// token endpoint fast.
func HashClientSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return secretHashPrefix + base64.RawURLEncoding.EncodeToString(sum[:])
}

// VerifyClientSecret compares a presented secret with the stored hash in
// constant time.
func VerifyClientSecret(stored, presented string) bool {
	if !strings.HasPrefix(stored, secretHashPrefix) {
		return false
	}
	want := HashClientSecret(presented)
	return subtle.ConstantTimeCompare([]byte(stored), []byte(want)) == 1
}

// NewPassword returns a generated password for a new account (128 bits in
// base32: 26 characters, easy to type).
func NewPassword() string { return rand.Text() }

// dummySecretHash stands in for the stored hash of a client that has none
// (unknown, or public), so that refusing it costs what a wrong secret costs.
var dummySecretHash = HashClientSecret(NewClientSecret())
