// Package password hashes new passwords with argon2id and verifies stored
// hashes in constant time. It knows hash formats, not users or policy.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

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

// ErrUnknownFormat means a stored hash is in no format this package reads.
var ErrUnknownFormat = errors.New("unknown password hash format")

// Verify reports whether pw matches the stored hash. The comparison takes
// the same time wherever the two differ. An error means the hash itself is
// unusable (unknown or damaged format), never a wrong password.
func Verify(hash, pw string) (bool, error) {
	if len(pw) > MaxLength {
		return false, nil
	}
	a, err := parseArgon2(hash)
	if err != nil {
		return false, err
	}
	var got []byte
	switch a.variant {
	case "argon2id":
		got = argon2.IDKey([]byte(pw), a.salt, a.params.Time, a.params.MemoryKiB, a.params.Threads, uint32(len(a.key)))
	case "argon2i":
		got = argon2.Key([]byte(pw), a.salt, a.params.Time, a.params.MemoryKiB, a.params.Threads, uint32(len(a.key)))
	}
	return subtle.ConstantTimeCompare(got, a.key) == 1, nil
}

// NeedsRehash reports whether a stored hash should be replaced by a new
// argon2id hash of cost p after the next successful login: another format,
// or a different cost.
func NeedsRehash(hash string, p Params) bool {
	a, err := parseArgon2(hash)
	return err != nil || a.variant != "argon2id" || a.params != p || len(a.key) != keyLen
}

// Format names the format of a stored hash, or "unknown".
func Format(hash string) string {
	if a, err := parseArgon2(hash); err == nil {
		return a.variant
	}
	return "unknown"
}

type argon2Hash struct {
	variant   string
	params    Params
	salt, key []byte
}

// parseArgon2 reads $argon2id$v=19$m=M,t=T,p=P$SALT$KEY (and argon2i).
func parseArgon2(s string) (argon2Hash, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || (parts[1] != "argon2id" && parts[1] != "argon2i") {
		return argon2Hash{}, ErrUnknownFormat
	}
	h := argon2Hash{variant: parts[1]}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return argon2Hash{}, fmt.Errorf("%w: argon2 version %q", ErrUnknownFormat, parts[2])
	}
	var m, t, p uint64
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return argon2Hash{}, fmt.Errorf("%w: argon2 parameter %q", ErrUnknownFormat, kv)
		}
		switch k {
		case "m":
			m = n
		case "t":
			t = n
		case "p":
			p = n
		default:
			return argon2Hash{}, fmt.Errorf("%w: argon2 parameter %q", ErrUnknownFormat, kv)
		}
	}
	// Bounds keep a damaged or hostile hash from costing unbounded memory.
	if t < 1 || t > 100 || p < 1 || p > 255 || m < 8*p || m > 4<<20 {
		return argon2Hash{}, fmt.Errorf("%w: argon2 parameters out of range", ErrUnknownFormat)
	}
	h.params = Params{Time: uint32(t), MemoryKiB: uint32(m), Threads: uint8(p)}
	var err error
	if h.salt, err = b64.DecodeString(parts[4]); err != nil || len(h.salt) < 8 {
		return argon2Hash{}, fmt.Errorf("%w: argon2 salt", ErrUnknownFormat)
	}
	if h.key, err = b64.DecodeString(parts[5]); err != nil || len(h.key) < 16 || len(h.key) > 128 {
		return argon2Hash{}, fmt.Errorf("%w: argon2 hash", ErrUnknownFormat)
	}
	return h, nil
}
