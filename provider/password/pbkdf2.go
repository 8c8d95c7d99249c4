package password

import (
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"hash"
	"strings"
)

// pbkdf2MaxIterations is the highest PBKDF2 iteration count Verify
// computes (Django 5 uses about a million for SHA-256).
const pbkdf2MaxIterations = 10_000_000

// pbkdf2Hash is PBKDF2 with HMAC and some hash, in any of the notations.
type pbkdf2Hash struct {
	name      string
	newHash   func() hash.Hash
	iter      int
	salt, key []byte
}

func (p *pbkdf2Hash) format() string { return p.name }

func (p *pbkdf2Hash) verify(pw []byte) bool {
	got, err := pbkdf2.Key(p.newHash, string(pw), p.salt, p.iter, len(p.key))
	return err == nil && subtle.ConstantTimeCompare(got, p.key) == 1
}

// newPBKDF2 checks the parts every notation shares.
func newPBKDF2(name string, newHash func() hash.Hash, iter int, salt, key []byte) (*pbkdf2Hash, error) {
	if iter > limits.pbkdf2Iterations {
		return nil, tooCostly(name, iter, limits.pbkdf2Iterations)
	}
	// Derived keys longer than the hash cost a full run of iterations per
	// block; no system stores more than one or two blocks.
	if len(key) < 16 || len(key) > 2*newHash().Size() {
		return nil, damaged(name, "hash length")
	}
	return &pbkdf2Hash{name: name, newHash: newHash, iter: iter, salt: salt, key: key}, nil
}

// ab64 is passlib's "adapted base64": standard base64 with . for +, no
// padding.
var ab64 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789./").WithPadding(base64.NoPadding)

// passlibPBKDF2 are passlib's PBKDF2 handlers by the name in their prefix:
// pbkdf2_sha1 ($pbkdf2$), pbkdf2_sha256, pbkdf2_sha512. Each stores a hash
// of exactly the digest's size.
var passlibPBKDF2 = map[string]struct {
	suffix  string
	newHash func() hash.Hash
}{
	"pbkdf2":        {"sha1", sha1.New},
	"pbkdf2-sha256": {"sha256", sha256.New},
	"pbkdf2-sha512": {"sha512", sha512.New},
}

// parsePasslibPBKDF2 reads $pbkdf2-sha256$ROUNDS$SALT$CHECKSUM, SALT and
// CHECKSUM in ab64, SALT decoded to bytes.
func parsePasslibPBKDF2(s string) (stored, error) {
	parts := strings.Split(s, "$")
	if len(parts) < 2 {
		return nil, ErrUnknownFormat
	}
	return readPasslibPBKDF2("passlib-", parts[1], parts[2:])
}

// parseLDAPPBKDF2 reads passlib's ldap_pbkdf2_* notation:
// {PBKDF2-SHA256}ROUNDS$SALT$CHECKSUM, otherwise the same.
func parseLDAPPBKDF2(s string) (stored, error) {
	scheme, rest, _ := strings.Cut(s[1:], "}")
	return readPasslibPBKDF2("ldap-", strings.ToLower(scheme), strings.Split(rest, "$"))
}

func readPasslibPBKDF2(namePrefix, ident string, parts []string) (stored, error) {
	v, ok := passlibPBKDF2[ident]
	if !ok {
		return nil, ErrUnknownFormat
	}
	name := namePrefix + "pbkdf2-" + v.suffix
	if len(parts) != 3 {
		return nil, damaged(name, "not ROUNDS$SALT$CHECKSUM")
	}
	iter, ok := atoi(parts[0])
	if !ok || iter < 1 {
		return nil, damaged(name, "rounds")
	}
	salt, err := ab64.DecodeString(parts[1])
	if err != nil {
		return nil, damaged(name, "salt is not base64")
	}
	key, err := ab64.DecodeString(parts[2])
	if err != nil || len(key) != v.newHash().Size() {
		return nil, damaged(name, "checksum")
	}
	return newPBKDF2(name, v.newHash, iter, salt, key)
}
