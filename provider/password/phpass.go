package password

import (
	"crypto/md5"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"hash"
	"strings"
)

// phpass (Solar Designer's "portable" hashes, as WordPress and phpBB store
// them) and Drupal 7's variant of it:
//
//	$P$ or $H$, one itoa64 character C, 8 characters of salt, 22 of hash:
//	    MD5(salt + password), then 2^C times MD5(previous + password)
//	$S$ likewise with SHA-512, the string cut to 55 characters (Drupal 7)
//	U$S$… (or U$P$, U$H$): Drupal 7's rehash of a Drupal 6 MD5, whose
//	    "password" is the hex MD5 of the password
//
// The hash is encoded little-endian in itoa64, unlike crypt(3)'s groups.
// phpass and Drupal accept 2^7 to 2^30 iterations; Verify refuses more
// than 2^phpassMaxLog2.
const (
	phpassMinLog2 = 7
	phpassMaxLog2 = 23 // 8.4 million, in line with pbkdf2MaxIterations
)

type phpassHash struct {
	name    string
	newHash func() hash.Hash
	log2    int
	salt    []byte
	sum     []byte // as stored
	prehash bool   // Drupal's U$: the password is its hex MD5
}

func (h *phpassHash) format() string { return h.name }

func (h *phpassHash) verify(pw []byte) bool {
	if h.prehash {
		sum := md5.Sum(pw)
		pw = []byte(hex.EncodeToString(sum[:]))
	}
	d := h.newHash()
	d.Write(h.salt)
	d.Write(pw)
	sum := d.Sum(nil)
	for range 1 << h.log2 {
		d.Reset()
		d.Write(sum)
		d.Write(pw)
		sum = d.Sum(sum[:0])
	}
	got := phpassEncode(sum)
	if len(got) > len(h.sum) {
		got = got[:len(h.sum)]
	}
	return subtle.ConstantTimeCompare(got, h.sum) == 1
}

func parsePhpass(s string) (stored, error) {
	name, newHash, length := "phpass", md5.New, 34
	if s[1] == 'S' {
		name, newHash, length = "drupal7", sha512.New, 55
	}
	if len(s) != length {
		return nil, damaged(name, "length")
	}
	log2 := strings.IndexByte(itoa64, s[3])
	if log2 < phpassMinLog2 || log2 > 30 {
		return nil, damaged(name, "iteration count")
	}
	if log2 > limits.phpassLog2 {
		return nil, tooCostly(name+" (log2 of iterations)", log2, limits.phpassLog2)
	}
	if !inItoa64(s[12:]) {
		return nil, damaged(name, "hash")
	}
	return &phpassHash{name: name, newHash: newHash, log2: log2, salt: []byte(s[4:12]), sum: []byte(s[12:])}, nil
}

func parseDrupalUpgraded(s string) (stored, error) {
	rest := s[1:]
	if !strings.HasPrefix(rest, "$S$") && !strings.HasPrefix(rest, "$P$") && !strings.HasPrefix(rest, "$H$") {
		return nil, ErrUnknownFormat
	}
	h, err := parsePhpass(rest)
	if err != nil {
		return nil, err
	}
	p := h.(*phpassHash)
	p.name, p.prehash = "drupal7-md5", true
	return p, nil
}

// phpassEncode is phpass's encode64: three bytes at a time, little-endian,
// into four itoa64 characters, a last partial group into one more
// character than it has bytes.
func phpassEncode(src []byte) []byte {
	out := make([]byte, 0, (len(src)*8+5)/6)
	for i := 0; i < len(src); i += 3 {
		var w uint32
		n := min(3, len(src)-i)
		for j := range n {
			w |= uint32(src[i+j]) << (8 * j)
		}
		for range n + 1 {
			out = append(out, itoa64[w&0x3f])
			w >>= 6
		}
	}
	return out
}
