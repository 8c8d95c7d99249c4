package password

import (
	"crypto/subtle"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Limits on the argon2 hashes Verify agrees to compute: 1 GiB of memory,
// and 4 GiB in all over the passes.
const (
	argon2MaxMemoryKiB = 1 << 20
	argon2MaxWorkKiB   = 4 << 20
)

// argon2Hash is a PHC string: $argon2id$v=19$m=M,t=T,p=P$SALT$KEY, or
// argon2i. Only version 19 (0x13) exists in golang.org/x/crypto/argon2;
// strings without v= are version 16 and unusable here.
type argon2Hash struct {
	variant   string
	params    Params
	salt, key []byte
}

func (a *argon2Hash) format() string { return a.variant }

func (a *argon2Hash) verify(pw []byte) bool {
	var got []byte
	switch a.variant {
	case "argon2id":
		got = argon2.IDKey(pw, a.salt, a.params.Time, a.params.MemoryKiB, a.params.Threads, uint32(len(a.key)))
	case "argon2i":
		got = argon2.Key(pw, a.salt, a.params.Time, a.params.MemoryKiB, a.params.Threads, uint32(len(a.key)))
	default:
		return false
	}
	return subtle.ConstantTimeCompare(got, a.key) == 1
}

func parseArgon2(s string) (stored, error) { return readArgon2(s) }

// readArgon2 reads a PHC argon2id or argon2i string.
func readArgon2(s string) (*argon2Hash, error) {
	parts := strings.Split(s, "$")
	if len(parts) < 2 || parts[0] != "" || (parts[1] != "argon2id" && parts[1] != "argon2i") {
		return nil, ErrUnknownFormat
	}
	name := parts[1]
	if len(parts) == 5 && strings.HasPrefix(parts[2], "m=") {
		return nil, damaged(name, "no v=: argon2 version 16 is not supported, only 19")
	}
	if len(parts) != 6 {
		return nil, damaged(name, "not $"+name+"$v=19$m=…,t=…,p=…$SALT$HASH")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return nil, damaged(name, "version "+strconv.Quote(parts[2])+": only v=19 is supported")
	}
	var m, t, p int
	seen := map[string]bool{}
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, ok := atoi(v)
		if !ok || seen[k] {
			return nil, damaged(name, "parameter "+strconv.Quote(kv))
		}
		seen[k] = true
		switch k {
		case "m":
			m = n
		case "t":
			t = n
		case "p":
			p = n
		default:
			return nil, damaged(name, "parameter "+strconv.Quote(kv))
		}
	}
	if len(seen) != 3 || t < 1 || p < 1 || p > 255 || m < 8*p {
		return nil, damaged(name, "parameters out of range")
	}
	// Bounds keep a damaged or hostile hash from costing unbounded memory or time.
	if m > limits.argon2MemoryKiB {
		return nil, tooCostly(name+" memory (KiB)", m, limits.argon2MemoryKiB)
	}
	if t > limits.argon2WorkKiB/m { // m × t, without overflow
		return nil, tooCostly(name+" passes at this memory", t, limits.argon2WorkKiB/m)
	}
	h := &argon2Hash{variant: name, params: Params{Time: uint32(t), MemoryKiB: uint32(m), Threads: uint8(p)}}
	var err error
	if h.salt, err = b64.DecodeString(parts[4]); err != nil || len(h.salt) < 8 {
		return nil, damaged(name, "salt")
	}
	if h.key, err = b64.DecodeString(parts[5]); err != nil || len(h.key) < 16 || len(h.key) > 128 {
		return nil, damaged(name, "hash")
	}
	return h, nil
}
