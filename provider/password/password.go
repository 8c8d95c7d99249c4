// Package password hashes new passwords with argon2id and verifies stored
// hashes in constant time. It knows hash formats, not users or policy.
//
// Verify also reads the formats other systems store, so that their users
// can be imported with their hashes and upgraded to argon2id at their next
// login (see formats.go for the list and how each is recognised).
package password

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"

	"golang.org/x/crypto/argon2"
)

// Params is the cost of an argon2id hash.
type Params struct {
	Time      uint32 // passes over memory
	MemoryKiB uint32
	Threads   uint8
}

// Default is OWASP's smallest recommended argon2id cost: 19 MiB, 2 passes.
var Default = Params{Time: 2, MemoryKiB: 19456, Threads: 1}

// Validate reports a cost argon2 cannot run with.
func (p Params) Validate() error {
	switch {
	case p.Time < 1:
		return errors.New("time must be at least 1")
	case p.Threads < 1:
		return errors.New("threads must be at least 1")
	case p.MemoryKiB < 8*uint32(p.Threads):
		return fmt.Errorf("memory_kib must be at least 8 × threads (%d)", 8*uint32(p.Threads))
	// Verify refuses hashes above these limits (argon2.go).
	case p.MemoryKiB > argon2MaxMemoryKiB:
		return fmt.Errorf("memory_kib must be at most %d (1 GiB)", argon2MaxMemoryKiB)
	case uint64(p.Time)*uint64(p.MemoryKiB) > argon2MaxWorkKiB:
		return fmt.Errorf("time × memory_kib must be at most %d (4 GiB)", argon2MaxWorkKiB)
	}
	return nil
}

const (
	saltLen = 16
	keyLen  = 32
)

// MaxLength bounds what is hashed, so that a huge "password" cannot be
// used to burn CPU.
const MaxLength = 1024

// ErrTooLong means a password is longer than MaxLength bytes.
var ErrTooLong = fmt.Errorf("password longer than %d bytes", MaxLength)

// Hash returns a PHC string ($argon2id$v=19$m=…,t=…,p=…$salt$hash) for pw.
func Hash(pw string, p Params) (string, error) {
	if len(pw) > MaxLength {
		return "", ErrTooLong
	}
	if err := p.Validate(); err != nil {
		return "", err
	}
	salt := make([]byte, saltLen)
	rand.Read(salt)
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.MemoryKiB, p.Threads, keyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// PHC strings use standard base64 without padding.
var b64 = base64.RawStdEncoding

// ErrUnknownFormat means a stored hash is in no format this package reads,
// or is damaged. Every error of Verify wraps it.
var ErrUnknownFormat = errors.New("unknown or unusable password hash format")

// Verify reports whether pw matches the stored hash, in any format of
// Formats, told apart by the stored string itself. The final comparison
// takes the same time wherever the two differ. An error means the hash
// itself is unusable (unknown or damaged format, or a cost above what this
// package agrees to compute), never a wrong password.
func Verify(hash, pw string) (bool, error) {
	h, err := parse(hash)
	if err != nil {
		return false, err
	}
	if len(pw) > MaxLength {
		return false, nil
	}
	return h.verify([]byte(pw)), nil
}

// NeedsRehash reports whether a stored hash should be replaced by a new
// argon2id hash of cost p after the next successful login: another format
// (every format but this package's own argon2id PHC string), or a
// different cost.
func NeedsRehash(hash string, p Params) bool {
	h, err := parse(hash)
	if err != nil {
		return true
	}
	a, ok := h.(*argon2Hash)
	return !ok || a.variant != "argon2id" || a.params != p || len(a.key) != keyLen
}

// Format names the format of a stored hash (one of Formats), or "unknown"
// for a hash Verify cannot use.
func Format(hash string) string {
	h, err := parse(hash)
	if err != nil {
		return "unknown"
	}
	return h.format()
}
