package password

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"hash"
	"strings"
)

// SHA-crypt, as specified by Ulrich Drepper in "Unix crypt using SHA-256
// and SHA-512" (https://www.akkadia.org/drepper/SHA-crypt.txt), which
// glibc's crypt(3) implements:
//
//	$5$[rounds=N$]SALT$CHECKSUM  SHA-256, 43 characters of checksum
//	$6$[rounds=N$]SALT$CHECKSUM  SHA-512, 86 characters
//
// SALT is at most 16 characters (longer ones are cut), N defaults to 5000
// and is raised to 1000 if lower. The spec allows up to 999,999,999 rounds;
// Verify refuses more than shaCryptMaxRounds.
const (
	shaCryptDefaultRounds = 5000
	shaCryptMinRounds     = 1000
	shaCryptMaxRounds     = 10_000_000
	shaCryptMaxSalt       = 16
)

type shaCryptVariant struct {
	name    string
	newHash func() hash.Hash
	// order lists the digest bytes in the groups of three the checksum
	// encodes, the last group shorter, as the spec's step 22 prescribes.
	order [][]int
}

var (
	sha256Crypt = shaCryptVariant{"sha256-crypt", sha256.New, [][]int{
		{0, 10, 20}, {21, 1, 11}, {12, 22, 2}, {3, 13, 23}, {24, 4, 14},
		{15, 25, 5}, {6, 16, 26}, {27, 7, 17}, {18, 28, 8}, {9, 19, 29}, {31, 30},
	}}
	sha512Crypt = shaCryptVariant{"sha512-crypt", sha512.New, [][]int{
		{0, 21, 42}, {22, 43, 1}, {44, 2, 23}, {3, 24, 45}, {25, 46, 4},
		{47, 5, 26}, {6, 27, 48}, {28, 49, 7}, {50, 8, 29}, {9, 30, 51},
		{31, 52, 10}, {53, 11, 32}, {12, 33, 54}, {34, 55, 13}, {56, 14, 35},
		{15, 36, 57}, {37, 58, 16}, {59, 17, 38}, {18, 39, 60}, {40, 61, 19},
		{62, 20, 41}, {63},
	}}
)

type shaCryptHash struct {
	v      shaCryptVariant
	rounds int
	salt   []byte
	sum    []byte // the checksum as stored, in itoa64
}

func (h *shaCryptHash) format() string { return h.v.name }

func (h *shaCryptHash) verify(pw []byte) bool {
	return subtle.ConstantTimeCompare(h.v.checksum(pw, h.salt, h.rounds), h.sum) == 1
}

func parseSHACrypt(s string) (stored, error) {
	v := sha256Crypt
	if s[1] == '6' {
		v = sha512Crypt
	}
	rest := s[3:]
	rounds := shaCryptDefaultRounds
	if r, ok := strings.CutPrefix(rest, "rounds="); ok {
		num, after, found := strings.Cut(r, "$")
		n, ok := atoi(num)
		if !found || !ok {
			return nil, damaged(v.name, "rounds")
		}
		if n > limits.shaCryptRounds {
			return nil, tooCostly(v.name, n, limits.shaCryptRounds)
		}
		rounds, rest = max(n, shaCryptMinRounds), after
	}
	salt, sum, found := strings.Cut(rest, "$")
	if !found {
		return nil, damaged(v.name, "no checksum")
	}
	if len(salt) > shaCryptMaxSalt {
		salt = salt[:shaCryptMaxSalt]
	}
	if want := (v.newHash().Size()*8 + 5) / 6; len(sum) != want || !inItoa64(sum) {
		return nil, damaged(v.name, "checksum")
	}
	return &shaCryptHash{v: v, rounds: rounds, salt: []byte(salt), sum: []byte(sum)}, nil
}

// checksum computes the encoded checksum of pw: the spec's steps 1 to 22.
func (v shaCryptVariant) checksum(pw, salt []byte, rounds int) []byte {
	d := v.newHash()
	size := d.Size()

	// Digest B: password, salt, password.
	d.Write(pw)
	d.Write(salt)
	d.Write(pw)
	b := d.Sum(nil)

	// Digest A: password, salt, B stretched to the password's length,
	// then for each bit of that length from the lowest, B for a 1 and the
	// password for a 0.
	d.Reset()
	d.Write(pw)
	d.Write(salt)
	d.Write(stretch(b, len(pw)))
	for n := len(pw); n > 0; n >>= 1 {
		if n&1 == 1 {
			d.Write(b)
		} else {
			d.Write(pw)
		}
	}
	a := d.Sum(nil)

	// P: the digest of the password repeated once per byte of it, stretched
	// to its length.
	d.Reset()
	for range len(pw) {
		d.Write(pw)
	}
	p := stretch(d.Sum(nil), len(pw))

	// S: the digest of the salt repeated 16 + A[0] times, stretched to the
	// salt's length.
	d.Reset()
	for range 16 + int(a[0]) {
		d.Write(salt)
	}
	sp := stretch(d.Sum(nil), len(salt))

	// The rounds, each a digest of the previous one mixed with P and S.
	c := cryptRounds(d, append(make([]byte, 0, size), a...), p, sp, rounds)

	out := make([]byte, 0, (size*8+5)/6)
	for _, g := range v.order {
		out = encodeGroup(out, c, g)
	}
	return out
}

// stretch repeats sum until it is n bytes long (or cuts it to n).
// cryptRounds is the loop of PHK's MD5-crypt, which SHA-crypt kept: each
// round digests the previous result c with the password p and the salt s,
// in an order set by the round's number. d is reset for every round.
func cryptRounds(d hash.Hash, c, p, s []byte, rounds int) []byte {
	for i := range rounds {
		d.Reset()
		if i%2 == 1 {
			d.Write(p)
		} else {
			d.Write(c)
		}
		if i%3 != 0 {
			d.Write(s)
		}
		if i%7 != 0 {
			d.Write(p)
		}
		if i%2 == 1 {
			d.Write(c)
		} else {
			d.Write(p)
		}
		c = d.Sum(c[:0])
	}
	return c
}

func stretch(sum []byte, n int) []byte {
	out := make([]byte, 0, n)
	for len(out) < n {
		out = append(out, sum[:min(len(sum), n-len(out))]...)
	}
	return out
}

// encodeGroup appends the itoa64 characters for the bytes of sum at the
// indexes idx (the first the most significant), 6 bits at a time from the
// least significant: 4 characters for 3 bytes, 3 for 2, 2 for 1.
func encodeGroup(out, sum []byte, idx []int) []byte {
	var w uint32
	for _, i := range idx {
		w = w<<8 | uint32(sum[i])
	}
	for range len(idx) + 1 {
		out = append(out, itoa64[w&0x3f])
		w >>= 6
	}
	return out
}
