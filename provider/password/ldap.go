package password

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"hash"
	"strings"
)

// LDAP userPassword values: {SCHEME}VALUE, the scheme's name in any case
// (RFC 2307 §5.3, OpenLDAP's slappasswd and its contrib modules):
//
//	{SHA}, {SHA256}, {SHA512}, {MD5}   base64 of the digest of the password
//	{SSHA}, {SSHA256}, {SSHA512}, {SMD5}  base64 of the digest of password
//	                                   + salt, followed by the salt
//	{CRYPT}…                           crypt(3): any crypt-style format here
//	                                   ($2b$, $5$, $6$, $1$)
//
// passlib's {PBKDF2…} notations are in pbkdf2.go.

var ldapDigests = map[string]struct {
	name    string
	newHash func() hash.Hash
	salted  bool
}{
	"SHA":     {"ldap-sha", sha1.New, false},
	"SHA256":  {"ldap-sha256", sha256.New, false},
	"SHA512":  {"ldap-sha512", sha512.New, false},
	"MD5":     {"ldap-md5", md5.New, false},
	"SSHA":    {"ssha", sha1.New, true},
	"SSHA256": {"ssha256", sha256.New, true},
	"SSHA512": {"ssha512", sha512.New, true},
	"SMD5":    {"smd5", md5.New, true},
}

type ldapDigest struct {
	name    string
	newHash func() hash.Hash
	sum     []byte
	salt    []byte
}

func (h *ldapDigest) format() string { return h.name }

func (h *ldapDigest) verify(pw []byte) bool {
	d := h.newHash()
	d.Write(pw)
	d.Write(h.salt)
	return subtle.ConstantTimeCompare(d.Sum(nil), h.sum) == 1
}

func parseLDAPDigest(s string) (stored, error) {
	scheme, value, _ := strings.Cut(s[1:], "}")
	v, ok := ldapDigests[strings.ToUpper(scheme)]
	if !ok {
		return nil, ErrUnknownFormat
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(value)
	if err != nil {
		return nil, damaged(v.name, "not base64")
	}
	size := v.newHash().Size()
	switch {
	case !v.salted && len(raw) != size:
		return nil, damaged(v.name, "digest length")
	case v.salted && (len(raw) <= size || len(raw) > size+64):
		return nil, damaged(v.name, "digest or salt length")
	}
	return &ldapDigest{name: v.name, newHash: v.newHash, sum: raw[:size], salt: raw[size:]}, nil
}

// parseLDAPCrypt reads {CRYPT} and what follows, which must be one of the
// crypt(3) formats.
func parseLDAPCrypt(s string) (stored, error) {
	rest := s[len("{CRYPT}"):]
	for _, d := range []detector{
		{prefix: "$2a$", parse: parseBcrypt}, {prefix: "$2b$", parse: parseBcrypt}, {prefix: "$2y$", parse: parseBcrypt},
		{prefix: "$5$", parse: parseSHACrypt}, {prefix: "$6$", parse: parseSHACrypt}, {prefix: "$1$", parse: parseMD5Crypt},
	} {
		if !strings.HasPrefix(rest, d.prefix) {
			continue
		}
		h, err := d.parse(rest)
		if err != nil {
			return nil, fmt.Errorf("{CRYPT}: %w", err)
		}
		return ldapCrypt{h}, nil
	}
	return nil, fmt.Errorf("%w: {CRYPT} of an unsupported crypt(3) format (known: $2b$, $5$, $6$, $1$)", ErrUnknownFormat)
}

type ldapCrypt struct{ stored }

func (c ldapCrypt) format() string { return "ldap-crypt-" + c.stored.format() }
