"""Makes password hashes the way platforms do, for mxidp's platform tests.

Reads a JSON list of {"scheme": ..., "password": ...} (and optionally
"rounds", for passlib) on standard input and
prints the list of stored hashes, in order. Schemes "django:NAME" use
Django's own hashers (NAME is a hasher's algorithm: pbkdf2_sha256,
pbkdf2_sha1, argon2, bcrypt_sha256, bcrypt); "passlib:NAME" use passlib's
handler of that name (sha512_crypt, phpass, bcrypt, ...); "wordpress:bcrypt"
is WordPress 6.8's format. Run it with
Debian's /usr/bin/python3 and python3-django, python3-passlib.
"""
import json
import sys

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

from django.contrib.auth.hashers import make_password  # noqa: E402
import passlib.hash  # noqa: E402

out = []
for item in json.load(sys.stdin):
    kind, _, name = item["scheme"].partition(":")
    if kind == "django":
        out.append(make_password(item["password"], hasher=name))
    elif kind == "passlib":
        handler = getattr(passlib.hash, name)
        if "rounds" in item:
            handler = handler.using(rounds=item["rounds"])
        out.append(handler.hash(item["password"]))
    elif item["scheme"] == "wordpress:bcrypt":
        # WordPress 6.8's wp_hash_password: "$wp" + PHP's bcrypt ($2y$) of
        # base64(HMAC-SHA384(key "wp-sha384", password)).
        import base64, bcrypt, hashlib, hmac
        pre = base64.b64encode(hmac.new(b"wp-sha384", item["password"].encode(), hashlib.sha384).digest())
        out.append("$wp" + bcrypt.hashpw(pre, bcrypt.gensalt(rounds=10)).decode().replace("$2b$", "$2y$", 1))
    else:
        sys.exit("unknown scheme " + item["scheme"])
json.dump(out, sys.stdout)
