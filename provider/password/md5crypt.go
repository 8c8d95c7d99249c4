package password

import (
	"crypto/md5"
	"crypto/subtle"
	"strings"
)

// MD5-crypt, Poul-Henning Kamp's FreeBSD crypt(3): $1$SALT$CHECKSUM, SALT
// at most 8 characters, CHECKSUM 22 characters of itoa64, 1000 rounds.
// Still common in /etc/shadow copies and in LDAP as {CRYPT}$1$….

type md5CryptHash struct {
	salt, sum []byte
}

func (h *md5CryptHash) format() string { return "md5-crypt" }

func (h *md5CryptHash) verify(pw []byte) bool {
	return subtle.ConstantTimeCompare(md5CryptChecksum(pw, h.salt), h.sum) == 1
}

func parseMD5Crypt(s string) (stored, error) {
	salt, sum, found := strings.Cut(s[3:], "$")
	if !found {
		return nil, damaged("md5-crypt", "no checksum")
	}
	if len(salt) > 8 {
		salt = salt[:8]
	}
	if len(sum) != 22 || !inItoa64(sum) {
		return nil, damaged("md5-crypt", "checksum")
	}
	return &md5CryptHash{salt: []byte(salt), sum: []byte(sum)}, nil
}

func md5CryptChecksum(pw, salt []byte) []byte {
	// An alternate digest of password, salt, password …
	d := md5.New()
	d.Write(pw)
	d.Write(salt)
	d.Write(pw)
	alt := d.Sum(nil)

	// … mixed into one of password, magic, salt: the alternate digest
	// stretched to the password's length, then per bit of that length
	// from the lowest a zero byte for a 1, the password's first byte for a 0.
	d.Reset()
	d.Write(pw)
	d.Write([]byte("$1$"))
	d.Write(salt)
	d.Write(stretch(alt, len(pw)))
	for n := len(pw); n > 0; n >>= 1 {
		if n&1 == 1 {
			d.Write([]byte{0})
		} else {
			d.Write(pw[:1])
		}
	}
	// 1000 rounds, each of the previous digest with password and salt.
	c := cryptRounds(d, d.Sum(nil), pw, salt, 1000)

	out := make([]byte, 0, 22)
	for _, g := range [][]int{{0, 6, 12}, {1, 7, 13}, {2, 8, 14}, {3, 9, 15}, {4, 10, 5}, {11}} {
		out = encodeGroup(out, c, g)
	}
	return out
}
