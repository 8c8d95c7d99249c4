package password

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"strings"
)

// Django stores ALGORITHM$… in its password field
// (django.contrib.auth.hashers):
//
//	pbkdf2_sha256$ITERATIONS$SALT$HASH  HASH in standard base64, SALT used as text
//	pbkdf2_sha1$ITERATIONS$SALT$HASH
//	argon2$argon2id$v=19$m=…,t=…,p=…$SALT$HASH  (argon2 + a PHC string; argon2i before Django 3.2)
//	bcrypt_sha256$$2b$12$…  bcrypt of the hex SHA-256 of the password
//	bcrypt$$2b$12$…         bcrypt of the password

func parseDjangoPBKDF2(s string) (stored, error) {
	algorithm, _, _ := strings.Cut(s, "$")
	name := "django-" + algorithm
	var newHash func() hash.Hash
	switch algorithm {
	case "pbkdf2_sha256":
		newHash = sha256.New
	case "pbkdf2_sha1":
		newHash = sha1.New
	default:
		return nil, ErrUnknownFormat
	}
	parts := strings.Split(s, "$")
	if len(parts) != 4 {
		return nil, damaged(name, "not "+algorithm+"$ITERATIONS$SALT$HASH")
	}
	iter, ok := atoi(parts[1])
	if !ok || iter < 1 {
		return nil, damaged(name, "iterations")
	}
	if parts[2] == "" {
		return nil, damaged(name, "empty salt")
	}
	key, err := base64.StdEncoding.Strict().DecodeString(parts[3])
	if err != nil {
		return nil, damaged(name, "hash is not base64")
	}
	return newPBKDF2(name, newHash, iter, []byte(parts[2]), key)
}

func parseDjangoArgon2(s string) (stored, error) {
	a, err := readArgon2(strings.TrimPrefix(s, "argon2"))
	if err != nil {
		return nil, fmt.Errorf("django-argon2: %w", err)
	}
	return djangoArgon2{a}, nil
}

// djangoArgon2 is a PHC argon2 string behind Django's prefix; it is never
// this package's own format, so NeedsRehash holds for it.
type djangoArgon2 struct{ *argon2Hash }

func (djangoArgon2) format() string { return "django-argon2" }

func parseDjangoBcrypt(s string) (stored, error) {
	algorithm, rest, _ := strings.Cut(s, "$")
	var prehash func([]byte) []byte
	if algorithm == "bcrypt_sha256" {
		prehash = sha256Hex
	}
	return readBcrypt(rest, "django-"+algorithm, prehash)
}
