package password_test

// Hashes made at test time by independent implementations: Debian's
// python3-django (django.contrib.auth.hashers) and python3-passlib, with
// python3-bcrypt and python3-argon2 as their backends.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/mxidp/mxidp/provider/password"
)

// debianPython is Debian's interpreter: the packages are installed for it,
// not for whatever python3 comes first on PATH.
const debianPython = "/usr/bin/python3"

type libraryHash struct {
	Format, Password, Hash string
	// Truncates is how many bytes of the password the format uses, if
	// fewer than all (bcrypt: 72).
	Truncates int
}

// libraryHashes runs hashesScript once. Without the libraries the test
// fails where the suite must be complete (make test and CI set
// MXIDP_TEST_POSTGRES_REQUIRED=1) and is skipped elsewhere.
func libraryHashes(t *testing.T) []libraryHash {
	t.Helper()
	out, err := exec.Command(debianPython, "-c", "import django, passlib, bcrypt, argon2").CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("%s cannot import django, passlib, bcrypt and argon2 (%v: %s); install them with: apt-get install python3-django python3-passlib python3-bcrypt python3-argon2",
			debianPython, err, strings.TrimSpace(string(out)))
		if os.Getenv("MXIDP_TEST_POSTGRES_REQUIRED") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	cmd := exec.Command(debianPython, "-c", hashesScript)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", debianPython, err, stderr.String())
	}
	var hs []libraryHash
	if err := json.Unmarshal(out, &hs); err != nil {
		t.Fatal(err)
	}
	return hs
}

func TestVerifyReadsHashesOfDjangoAndPasslib(t *testing.T) {
	hs := libraryHashes(t)
	seen := map[string]bool{}
	for i, h := range hs {
		seen[h.Format] = true
		t.Run(fmt.Sprintf("%d-%s", i, h.Format), func(t *testing.T) {
			t.Parallel()
			if got := password.Format(h.Hash); got != h.Format {
				t.Errorf("Format(%s) = %q, want %q", h.Hash, got, h.Format)
			}
			if !password.NeedsRehash(h.Hash, password.Default) {
				t.Errorf("NeedsRehash(%s) = false", h.Hash)
			}
			if ok, err := password.Verify(h.Hash, h.Password); !ok || err != nil {
				t.Errorf("Verify(%s, right password %q) = %v, %v", h.Hash, h.Password, ok, err)
			}
			wrong := []string{h.Password + "x", "x"}
			if h.Password != "" {
				wrong = append(wrong, "x"+h.Password[1:])
			}
			if h.Truncates > 0 {
				// What follows the used bytes does not count, as in the library.
				cut := h.Password[:h.Truncates]
				for _, same := range []string{cut, cut + "anything"} {
					if ok, err := password.Verify(h.Hash, same); !ok || err != nil {
						t.Errorf("Verify(%s, the same first %d bytes) = %v, %v", h.Hash, h.Truncates, ok, err)
					}
				}
				wrong = []string{"x" + h.Password[1:], h.Password[:h.Truncates-1]}
			}
			for _, w := range wrong {
				if ok, err := password.Verify(h.Hash, w); ok || err != nil {
					t.Errorf("Verify(%s, wrong password %q) = %v, %v", h.Hash, w, ok, err)
				}
			}
		})
	}
	// The script must have made every format it is meant to make.
	for _, f := range []string{
		"django-pbkdf2_sha256", "django-pbkdf2_sha1", "django-argon2", "django-bcrypt_sha256", "django-bcrypt",
		"bcrypt", "sha256-crypt", "sha512-crypt", "md5-crypt", "phpass",
		"passlib-pbkdf2-sha1", "passlib-pbkdf2-sha256", "passlib-pbkdf2-sha512",
		"ldap-pbkdf2-sha1", "ldap-pbkdf2-sha256", "ldap-pbkdf2-sha512",
		"ssha", "smd5", "ldap-sha", "ldap-md5", "argon2id", "argon2i",
		"ldap-crypt-sha512-crypt", "ldap-crypt-sha256-crypt", "ldap-crypt-md5-crypt", "ldap-crypt-bcrypt",
		"wordpress-bcrypt",
	} {
		if !seen[f] {
			t.Errorf("the libraries made no %s hash", f)
		}
	}
}

// hashesScript prints a JSON list of {format, password, hash, truncates}:
// each format these libraries make, each of several passwords, non-ASCII
// ones among them, and one of 100 bytes for bcrypt's 72-byte limit (which
// Debian's bcrypt and passlib apply silently, truncating).
const hashesScript = `
import json, os, sys
out = []
def add(fmt, pw, h, truncates=0):
    out.append({"format": fmt, "password": pw, "hash": h, "truncates": truncates})

passwords = ["Wonder-Land-42", "pässwörd ✓"]
long_pw = "L" * 60 + "ä" * 20  # 100 bytes in UTF-8
assert len(long_pw.encode()) == 100

import django
from django.conf import settings
settings.configure(PASSWORD_HASHERS=[
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.BCryptPasswordHasher",
])
django.setup()
from django.contrib.auth.hashers import make_password, get_hasher
import copy
def cheap(algo):
    # Django's hasher at a lower cost (its attributes), to keep the test short.
    h = copy.copy(get_hasher(algo))
    h.rounds, h.iterations, h.time_cost, h.memory_cost, h.parallelism = 5, 1000, 1, 1024, 2
    return h
for algo in ["pbkdf2_sha256", "pbkdf2_sha1", "argon2", "bcrypt_sha256", "bcrypt"]:
    add("django-" + algo, passwords[0], make_password(passwords[0], hasher=algo))  # Django's cost
    for pw in passwords[1:] + [""]:
        add("django-" + algo, pw, make_password(pw, hasher=cheap(algo)))
add("django-bcrypt_sha256", long_pw, make_password(long_pw, hasher=cheap("bcrypt_sha256")))
add("django-bcrypt", long_pw, make_password(long_pw, hasher=cheap("bcrypt")), 72)
# Django before 3.2 stored argon2i, as argon2-cffi writes it behind "argon2".
import argon2.low_level
for pw in passwords:
    add("django-argon2", pw, "argon2" + argon2.low_level.hash_secret(
        pw.encode(), os.urandom(16), time_cost=2, memory_cost=512, parallelism=2, hash_len=16,
        type=argon2.low_level.Type.I).decode())

from passlib import hash as ph
def lib(fmt, handler, pws=passwords, truncates=0):
    for pw in pws:
        add(fmt, pw, handler.hash(pw), truncates)
for ident in ["2a", "2b", "2y"]:
    lib("bcrypt", ph.bcrypt.using(ident=ident, rounds=5))
lib("bcrypt", ph.bcrypt.using(rounds=5), [long_pw], 72)
lib("sha256-crypt", ph.sha256_crypt, passwords[:1])  # default rounds: slow
lib("sha512-crypt", ph.sha512_crypt, passwords[1:])
lib("sha256-crypt", ph.sha256_crypt.using(rounds=5000))
lib("sha512-crypt", ph.sha512_crypt.using(rounds=5000))
lib("sha512-crypt", ph.sha512_crypt.using(rounds=1000), [long_pw, ""])
lib("md5-crypt", ph.md5_crypt, passwords + [long_pw, ""])
lib("phpass", ph.phpass.using(ident="P", rounds=8))  # WordPress's cost
lib("phpass", ph.phpass.using(ident="H", rounds=8))
lib("phpass", ph.phpass, passwords[:1])  # passlib's default cost
lib("passlib-pbkdf2-sha256", ph.pbkdf2_sha256)
lib("passlib-pbkdf2-sha1", ph.pbkdf2_sha1)
lib("passlib-pbkdf2-sha512", ph.pbkdf2_sha512)
lib("ldap-pbkdf2-sha256", ph.ldap_pbkdf2_sha256)
lib("ldap-pbkdf2-sha1", ph.ldap_pbkdf2_sha1)
lib("ldap-pbkdf2-sha512", ph.ldap_pbkdf2_sha512)
lib("ssha", ph.ldap_salted_sha1)
lib("smd5", ph.ldap_salted_md5)
lib("ldap-sha", ph.ldap_sha1)
lib("ldap-md5", ph.ldap_md5)
for name, fmt in [("ldap_salted_sha256", "ssha256"), ("ldap_salted_sha512", "ssha512")]:
    if hasattr(ph, name):
        lib(fmt, getattr(ph, name))
lib("argon2id", ph.argon2.using(type="ID"), passwords[:1])  # passlib's cost
lib("argon2id", ph.argon2.using(type="ID", memory_cost=1024, rounds=1), passwords[1:])
lib("argon2i", ph.argon2.using(type="I", memory_cost=1024, rounds=1))
lib("ldap-crypt-sha512-crypt", ph.ldap_sha512_crypt.using(rounds=5000))
lib("ldap-crypt-sha256-crypt", ph.ldap_sha256_crypt.using(rounds=12345))
lib("ldap-crypt-md5-crypt", ph.ldap_md5_crypt)
lib("ldap-crypt-bcrypt", ph.ldap_bcrypt.using(rounds=5))

# WordPress 6.8's wp_hash_password: "$wp" + PHP's password_hash (bcrypt,
# $2y$) of base64(HMAC-SHA384(key "wp-sha384", password)), made here with
# Python's hmac and Debian's bcrypt.
import base64, bcrypt, hashlib, hmac
for pw in passwords + [long_pw]:
    pre = base64.b64encode(hmac.new(b"wp-sha384", pw.encode(), hashlib.sha384).digest())
    h = bcrypt.hashpw(pre, bcrypt.gensalt(rounds=5)).decode().replace("$2b$", "$2y$", 1)
    add("wordpress-bcrypt", pw, "$wp" + h)
json.dump(out, sys.stdout)
`
