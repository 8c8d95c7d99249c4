package password

import (
	"fmt"
	"strconv"
	"strings"
)

// stored is a parsed stored hash of some format.
type stored interface {
	// format names the format (one of formatNames).
	format() string
	// verify reports whether pw matches; its last step is a constant-time
	// comparison (crypto/subtle).
	verify(pw []byte) bool
}

// detector recognises one format by how its stored strings begin.
type detector struct {
	prefix string
	fold   bool // prefix compared case-insensitively (RFC 2307 {SCHEME}s)
	parse  func(s string) (stored, error)
}

// detectors are the formats Verify reads. No prefix is a prefix of another
// one, so their order does not matter.
var detectors = []detector{
	// This package's own, and argon2-cffi's and passlib's (argon2.go).
	{prefix: "$argon2id$", parse: parseArgon2},
	{prefix: "$argon2i$", parse: parseArgon2},
	// OpenBSD bcrypt, as PHP, passlib, Django and others write it (bcrypt.go).
	{prefix: "$2a$", parse: parseBcrypt},
	{prefix: "$2b$", parse: parseBcrypt},
	{prefix: "$2y$", parse: parseBcrypt},
	// Drepper's SHA-crypt, glibc's crypt(3) (shacrypt.go); PHK's MD5-crypt (md5crypt.go).
	{prefix: "$5$", parse: parseSHACrypt},
	{prefix: "$6$", parse: parseSHACrypt},
	{prefix: "$1$", parse: parseMD5Crypt},
	// WordPress 6.8's pre-hashed bcrypt (wordpress.go).
	{prefix: "$wp$2", parse: parseWordPressBcrypt},
	// phpass (WordPress, phpBB) and Drupal 7 (phpass.go).
	{prefix: "$P$", parse: parsePhpass},
	{prefix: "$H$", parse: parsePhpass},
	{prefix: "$S$", parse: parsePhpass},
	{prefix: "U$", parse: parseDrupalUpgraded},
	// passlib's PBKDF2 (pbkdf2.go).
	{prefix: "$pbkdf2$", parse: parsePasslibPBKDF2},
	{prefix: "$pbkdf2-sha256$", parse: parsePasslibPBKDF2},
	{prefix: "$pbkdf2-sha512$", parse: parsePasslibPBKDF2},
	{prefix: "{PBKDF2}", fold: true, parse: parseLDAPPBKDF2},
	{prefix: "{PBKDF2-SHA256}", fold: true, parse: parseLDAPPBKDF2},
	{prefix: "{PBKDF2-SHA512}", fold: true, parse: parseLDAPPBKDF2},
	// Django's password field: ALGORITHM$… (django.go).
	{prefix: "pbkdf2_sha256$", parse: parseDjangoPBKDF2},
	{prefix: "pbkdf2_sha1$", parse: parseDjangoPBKDF2},
	{prefix: "argon2$", parse: parseDjangoArgon2},
	{prefix: "bcrypt_sha256$", parse: parseDjangoBcrypt},
	{prefix: "bcrypt$", parse: parseDjangoBcrypt},
	// LDAP userPassword schemes, RFC 2307 and OpenLDAP (ldap.go).
	{prefix: "{SSHA}", fold: true, parse: parseLDAPDigest},
	{prefix: "{SSHA256}", fold: true, parse: parseLDAPDigest},
	{prefix: "{SSHA512}", fold: true, parse: parseLDAPDigest},
	{prefix: "{SMD5}", fold: true, parse: parseLDAPDigest},
	{prefix: "{SHA}", fold: true, parse: parseLDAPDigest},
	{prefix: "{SHA256}", fold: true, parse: parseLDAPDigest},
	{prefix: "{SHA512}", fold: true, parse: parseLDAPDigest},
	{prefix: "{MD5}", fold: true, parse: parseLDAPDigest},
	{prefix: "{CRYPT}", fold: true, parse: parseLDAPCrypt},
}

// formatNames are the names Format returns, in the order of Formats.
var formatNames = []string{
	"argon2id", "argon2i",
	"bcrypt", "sha256-crypt", "sha512-crypt", "md5-crypt",
	"phpass", "wordpress-bcrypt", "drupal7", "drupal7-md5",
	"passlib-pbkdf2-sha1", "passlib-pbkdf2-sha256", "passlib-pbkdf2-sha512",
	"ldap-pbkdf2-sha1", "ldap-pbkdf2-sha256", "ldap-pbkdf2-sha512",
	"django-pbkdf2_sha256", "django-pbkdf2_sha1", "django-argon2", "django-bcrypt_sha256", "django-bcrypt",
	"ssha", "ssha256", "ssha512", "smd5", "ldap-sha", "ldap-sha256", "ldap-sha512", "ldap-md5",
	"ldap-crypt-bcrypt", "ldap-crypt-sha256-crypt", "ldap-crypt-sha512-crypt", "ldap-crypt-md5-crypt",
}

// Formats lists the names of the formats Verify reads.
func Formats() []string { return append([]string(nil), formatNames...) }

// parse finds the format of s and reads it.
func parse(s string) (stored, error) {
	// No format has spaces or control characters; base64 decoders would
	// skip some of them silently.
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return nil, fmt.Errorf("%w: control character or space in the hash", ErrUnknownFormat)
		}
	}
	for _, d := range detectors {
		if hasPrefix(s, d.prefix, d.fold) {
			return d.parse(s)
		}
	}
	return nil, ErrUnknownFormat
}

func hasPrefix(s, prefix string, fold bool) bool {
	if fold {
		return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
	}
	return strings.HasPrefix(s, prefix)
}

// limits are the highest costs Verify computes (the constants of each
// format's file); tests lower them.
var limits = struct {
	bcryptCost, pbkdf2Iterations, shaCryptRounds, phpassLog2, argon2MemoryKiB, argon2WorkKiB int
}{bcryptMaxCost, pbkdf2MaxIterations, shaCryptMaxRounds, phpassMaxLog2, argon2MaxMemoryKiB, argon2MaxWorkKiB}

// damaged is the error for a stored string of a known format that cannot
// be used.
func damaged(format, what string) error {
	return fmt.Errorf("%w: %s: %s", ErrUnknownFormat, format, what)
}

// tooCostly is the error for a cost above what Verify agrees to compute:
// such a hash is unusable rather than a way to stall the server.
func tooCostly(format string, cost, limit int) error {
	return fmt.Errorf("%w: %s: cost %d above the limit of %d", ErrUnknownFormat, format, cost, limit)
}

// atoi reads a decimal number of digits only (no sign, no spaces), at most
// 18 digits; false if it does not fit an int.
func atoi(s string) (int, bool) {
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// itoa64 is the alphabet of crypt(3)-style base64 (SHA-crypt, MD5-crypt,
// phpass), which is not RFC 4648's.
const itoa64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// inItoa64 reports whether s is made of itoa64 characters only.
func inItoa64(s string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(itoa64, s[i]) < 0 {
			return false
		}
	}
	return true
}
