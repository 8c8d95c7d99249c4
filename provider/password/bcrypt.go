package password

import (
	"crypto/sha256"
	"encoding/hex"

	"golang.org/x/crypto/bcrypt"
)

// bcryptMaxCost is the highest bcrypt cost Verify computes: 2^16 rounds,
// some seconds. Real systems use 10 to 14.
const bcryptMaxCost = 16

// bcryptMaxPassword is how much of a password bcrypt uses. Like PHP's
// password_verify, passlib (by default) and the C library, Verify ignores
// what follows the first 72 bytes, so that hashes made by those systems of
// longer passwords still match; golang.org/x/crypto/bcrypt would refuse to
// hash such passwords but gives the same result on their first 72 bytes.
const bcryptMaxPassword = 72

// bcryptHash is $2a$, $2b$ or $2y$, COST$, then 22 characters of salt and
// 31 of hash. The three are one algorithm for passwords of up to 72 bytes
// ($2a$ differed only in the C code's handling of longer ones, $2y$ is
// PHP's name for the corrected $2a$).
type bcryptHash struct {
	name string
	hash []byte // with the prefix $2a$, which x/crypto reads
	// prehash, if set, transforms the password first (Django's bcrypt_sha256).
	prehash func([]byte) []byte
}

func (b *bcryptHash) format() string { return b.name }

// verify ends in x/crypto/bcrypt's own constant-time comparison
// (subtle.ConstantTimeCompare of the two encoded hashes).
func (b *bcryptHash) verify(pw []byte) bool {
	if b.prehash != nil {
		pw = b.prehash(pw)
	}
	if len(pw) > bcryptMaxPassword {
		pw = pw[:bcryptMaxPassword]
	}
	return bcrypt.CompareHashAndPassword(b.hash, pw) == nil
}

func parseBcrypt(s string) (stored, error) { return readBcrypt(s, "bcrypt", nil) }

// readBcrypt reads a bcrypt string, checking what x/crypto would not: the
// cost limit and the alphabet.
func readBcrypt(s, name string, prehash func([]byte) []byte) (*bcryptHash, error) {
	if len(s) < 4 || s[0] != '$' || s[1] != '2' || (s[2] != 'a' && s[2] != 'b' && s[2] != 'y') || s[3] != '$' {
		return nil, damaged(name, "not $2a$, $2b$ or $2y$")
	}
	if len(s) != 60 || s[6] != '$' {
		return nil, damaged(name, "not $2b$COST$ and 53 characters")
	}
	cost, ok := atoi(s[4:6])
	if !ok || cost < bcrypt.MinCost {
		return nil, damaged(name, "cost")
	}
	if cost > limits.bcryptCost {
		return nil, tooCostly(name, cost, limits.bcryptCost)
	}
	for _, c := range []byte(s[7:]) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '/') {
			return nil, damaged(name, "character outside bcrypt's base64")
		}
	}
	h := []byte("$2a$" + s[4:])
	if _, err := bcrypt.Cost(h); err != nil {
		return nil, damaged(name, err.Error())
	}
	return &bcryptHash{name: name, hash: h, prehash: prehash}, nil
}

// sha256Hex is the password transformation of Django's
// BCryptSHA256PasswordHasher: the lower-case hex SHA-256 of the password,
// so that bcrypt sees all of a long password (as 64 bytes).
func sha256Hex(pw []byte) []byte {
	sum := sha256.Sum256(pw)
	return []byte(hex.EncodeToString(sum[:]))
}
