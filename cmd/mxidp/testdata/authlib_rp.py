#!/usr/bin/python3
"""A relying party that talks to mxidp exactly the way Synapse does.

Synapse (synapse/handlers/oidc.py) does its OpenID Connect work with authlib;
this script makes the same authlib calls in the same order, with the same
inputs, so that an OP that satisfies it satisfies a stock Synapse configured
with `oidc_providers` (discover: true, scopes openid profile email,
user_profile_method: auto, pkce_method: auto). The comments name the
function of synapse/handlers/oidc.py that each step copies.

Run it with Debian's interpreter, which sees python3-authlib:

    AUTHLIB_INSECURE_TRANSPORT=1 /usr/bin/python3 authlib_rp.py \
        --issuer http://127.0.0.1:PORT --client-id synapse \
        --redirect-uri http://127.0.0.1:PORT2/_synapse/client/oidc/callback \
        --username alice --auth-method basic [--alg ES256] [--userinfo-jwt]

The client secret and the password come from the environment
(AUTHLIB_RP_CLIENT_SECRET, AUTHLIB_RP_PASSWORD) so that they stay out of the
process list; every option can also be given as AUTHLIB_RP_<OPTION>.

It prints `OK <check>` for every check that passed and exits 0, or prints
`FAIL <check>: <reason>` for the first one that did not and exits 1.
"""

import argparse
import base64
import hashlib
import json
import os
import re
import sys
import time
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urljoin, urlparse

import requests
import authlib
from authlib.common.security import generate_token, is_secure_transport
from authlib.jose import JsonWebToken
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from authlib.oidc.core.util import create_half_hash
from authlib.oidc.discovery import OpenIDProviderMetadata, get_well_known_url

# What Synapse sends as its User-Agent (Synapse/<version>).
USER_AGENT = "Synapse/1.157.1"
# Synapse's clock-skew allowance for ID tokens (the leeway of _parse_id_token).
LEEWAY = 120
# A Matrix localpart as Synapse accepts it unescaped (synapse/types/__init__.py,
# map_username_to_mxid_localpart).
LOCALPART_RE = re.compile(r"^[a-z0-9._=\-/+]+$")
# Synapse's HTTP client gives up eventually; so do we.
TIMEOUT = 30


class CheckFailed(Exception):
    def __init__(self, check, reason):
        super().__init__("%s: %s" % (check, reason))
        self.check = check
        self.reason = reason


def ok(check):
    print("OK " + check, flush=True)


def require(check, condition, reason):
    if not condition:
        raise CheckFailed(check, reason)


def options():
    def opt(name, default=None):
        return os.environ.get("AUTHLIB_RP_" + name.upper().replace("-", "_"), default)

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--issuer", default=opt("issuer"), help="the issuer configured in Synapse")
    p.add_argument("--client-id", default=opt("client-id"))
    p.add_argument("--client-secret", default=opt("client-secret"))
    p.add_argument("--username", default=opt("username"))
    p.add_argument("--password", default=opt("password"))
    p.add_argument("--redirect-uri", default=opt("redirect-uri"),
                   help="Synapse's callback, <public_baseurl>_synapse/client/oidc/callback")
    p.add_argument("--auth-method", choices=["basic", "post"], default=opt("auth-method", "basic"))
    p.add_argument("--scopes", default=opt("scopes", "openid profile email"),
                   help="space-separated, as in Synapse's docs/openid.md examples")
    p.add_argument("--email", default=opt("email"), help="expected email claim (optional)")
    p.add_argument("--name", default=opt("name"), help="expected name claim (optional)")
    p.add_argument("--alg", choices=["RS256", "ES256", "EdDSA"], default=opt("alg", "RS256"),
                   help="the algorithm the client's ID tokens are signed with (mxidp client add --id-token-alg)")
    p.add_argument("--userinfo-jwt", action="store_true", default=bool(opt("userinfo-jwt")),
                   help="expect userinfo as a signed JWT (mxidp client add --userinfo-alg)")
    args = p.parse_args()
    missing = [n for n in ("issuer", "client_id", "client_secret", "username", "password", "redirect_uri")
               if not getattr(args, n)]
    if missing:
        p.error("missing: " + ", ".join("--" + n.replace("_", "-") for n in missing))
    args.client_auth_method = {"basic": "client_secret_basic", "post": "client_secret_post"}[args.auth_method]
    args.scopes = args.scopes.split()
    return args


# ---------------------------------------------------------------------------
# Discovery and metadata validation (Synapse's _load_metadata and
# _validate_metadata, skip_verification: false, no endpoint overrides).
# ---------------------------------------------------------------------------

def discover(args, http):
    # As _load_metadata: start from the configured issuer, fetch
    # <issuer without trailing slash>/.well-known/openid-configuration and
    # merge the answer over it (the discovered issuer wins).
    url = get_well_known_url(args.issuer, external=True)
    resp = http.get(url, timeout=TIMEOUT, allow_redirects=False)
    require("discovery is 200 JSON", resp.status_code == 200,
            "GET %s answered %d" % (url, resp.status_code))
    ctype = resp.headers.get("Content-Type", "")
    require("discovery is 200 JSON", ctype.split(";")[0].strip() == "application/json",
            "Content-Type is %r" % ctype)
    body = resp.json()
    require("discovery is 200 JSON", isinstance(body, dict), "not a JSON object: %r" % body)
    ok("discovery is 200 JSON")

    metadata = OpenIDProviderMetadata(issuer=args.issuer)
    metadata.update(body)

    # Synapse itself does not compare them, but back-channel logout
    # (handle_backchannel_logout) routes on the configured issuer and
    # validates against the discovered one, so they must be byte-identical.
    require("discovered issuer equals the configured issuer", metadata["issuer"] == args.issuer,
            "configured %r, discovered %r" % (args.issuer, metadata["issuer"]))
    ok("discovered issuer equals the configured issuer")

    # The checks of Synapse's _validate_metadata, in its order.
    def validated(check, fn):
        try:
            fn()
        except ValueError as e:
            raise CheckFailed(check, str(e))
        ok(check)

    validated("validate_issuer", metadata.validate_issuer)
    validated("validate_authorization_endpoint", metadata.validate_authorization_endpoint)
    validated("validate_token_endpoint", metadata.validate_token_endpoint)

    if metadata.get("token_endpoint_auth_methods_supported") is not None:
        validated("validate_token_endpoint_auth_methods_supported",
                  metadata.validate_token_endpoint_auth_methods_supported)
        require("token_endpoint_auth_methods_supported has " + args.client_auth_method,
                args.client_auth_method in metadata["token_endpoint_auth_methods_supported"],
                "%r" % metadata["token_endpoint_auth_methods_supported"])
        ok("token_endpoint_auth_methods_supported has " + args.client_auth_method)

    if metadata.get("code_challenge_methods_supported") is not None:
        validated("validate_code_challenge_methods_supported",
                  metadata.validate_code_challenge_methods_supported)
        require("code_challenge_methods_supported has S256",
                "S256" in metadata["code_challenge_methods_supported"],
                "%r" % metadata["code_challenge_methods_supported"])
        ok("code_challenge_methods_supported has S256")

    if metadata.get("response_types_supported") is not None:
        validated("validate_response_types_supported", metadata.validate_response_types_supported)
        require("response_types_supported has code", "code" in metadata["response_types_supported"],
                "%r" % metadata["response_types_supported"])
        ok("response_types_supported has code")

    # user_profile_method auto with openid in the scopes: no userinfo, so the
    # ID token is the claim source and jwks_uri is required (_validate_metadata,
    # _uses_userinfo).
    validated("validate_jwks_uri", metadata.validate_jwks_uri)

    # Not part of Synapse's validation, but this script also plays the
    # user_profile_method: userinfo_endpoint configuration below,
    # which requires it.
    require("userinfo_endpoint present", bool(metadata.get("userinfo_endpoint")), "missing")
    ok("userinfo_endpoint present")
    require("userinfo_endpoint secure transport", is_secure_transport(metadata["userinfo_endpoint"]),
            "%r is not https" % metadata["userinfo_endpoint"])
    ok("userinfo_endpoint secure transport")
    return metadata


def load_jwks(metadata, http):
    # As load_jwks: Synapse GETs jwks_uri as JSON (get_json: 2xx required).
    resp = http.get(metadata["jwks_uri"], timeout=TIMEOUT, allow_redirects=False)
    require("JWKS has unique signing keys", resp.status_code == 200, "GET %s answered %d" % (metadata["jwks_uri"], resp.status_code))
    jwks = resp.json()
    require("JWKS has unique signing keys", isinstance(jwks, dict) and isinstance(jwks.get("keys"), list) and jwks["keys"],
            "not a non-empty {\"keys\": [...]}: %r" % jwks)
    kids = [k.get("kid") for k in jwks["keys"]]
    require("JWKS has unique signing keys", all(kids) and len(set(kids)) == len(kids), "kids not unique and present: %r" % kids)
    for k in jwks["keys"]:
        require("JWKS has unique signing keys", k.get("use", "sig") == "sig", "key %s has use %r" % (k.get("kid"), k.get("use")))
        require("JWKS has unique signing keys", "key_ops" not in k or "verify" in k["key_ops"],
                "key %s has key_ops %r" % (k.get("kid"), k.get("key_ops")))
    ok("JWKS has unique signing keys")
    return jwks


# ---------------------------------------------------------------------------
# The authorization request (Synapse's handle_redirect_request), the user's
# browser at the OP, and Synapse's callback (handle_oidc_callback).
# ---------------------------------------------------------------------------

class FormParser(HTMLParser):
    """Collects the first form's action and its input fields."""

    def __init__(self):
        super().__init__()
        self.action = None
        self.inputs = {}
        self._forms = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._forms += 1
            if self._forms == 1:
                self.action = a.get("action", "")
        elif tag == "input" and self._forms == 1 and a.get("name"):
            self.inputs[a["name"]] = a.get("value") or ""


def authorization_request(args, metadata):
    # As handle_redirect_request: state 30 alphanumerics, nonce 32, and,
    # because discovery advertises code_challenge_methods_supported
    # (pkce_method: auto), a 48-character verifier sent as an S256 challenge.
    state = generate_token()
    nonce = generate_token(length=32)
    params = {}
    code_verifier = ""
    if metadata.get("code_challenge_methods_supported"):
        code_verifier = generate_token(48)
        params = {"code_challenge_method": "S256", "code_challenge": create_s256_code_challenge(code_verifier)}
    require("state/nonce/verifier like Synapse's",
            re.fullmatch(r"[A-Za-z0-9]{30}", state) and re.fullmatch(r"[A-Za-z0-9]{32}", nonce)
            and re.fullmatch(r"[A-Za-z0-9]{48}", code_verifier),
            "state %r nonce %r verifier %r (PKCE not advertised?)" % (state, nonce, code_verifier))
    # prepare_grant_uri, as Synapse's handle_redirect_request.
    url = prepare_grant_uri(metadata["authorization_endpoint"], client_id=args.client_id, response_type="code",
                            redirect_uri=args.redirect_uri, scope=args.scopes, state=state, nonce=nonce, **params)
    return url, state, nonce, code_verifier


def browser_login(args, url):
    """The user's browser: follows the OP's redirects to its login form,
    signs in, and follows on until the OP sends it to Synapse's callback,
    which is not fetched. Returns that callback URL."""
    browser = requests.Session()
    browser.headers["User-Agent"] = "Mozilla/5.0 (authlib_rp.py)"
    form_page = None
    for _ in range(10):
        resp = browser.get(url, allow_redirects=False, timeout=TIMEOUT)
        if resp.status_code in (301, 302, 303, 307, 308):
            url = urljoin(url, resp.headers["Location"])
            require("authorization reaches the login form", not url.startswith(args.redirect_uri),
                    "sent to the callback before signing in: %s" % url)
            continue
        require("authorization reaches the login form", resp.status_code == 200,
                "GET %s answered %d: %s" % (url, resp.status_code, resp.text[:500]))
        form_page = resp
        break
    require("authorization reaches the login form", form_page is not None, "too many redirects")
    form = FormParser()
    form.feed(form_page.text)
    require("authorization reaches the login form", form.action is not None and "id" in form.inputs
            and "csrf" in form.inputs, "no form with hidden id and csrf inputs at %s:\n%s" % (url, form_page.text[:1000]))
    ok("authorization reaches the login form")

    action = urljoin(url, form.action)
    resp = browser.post(action, data={"id": form.inputs["id"], "csrf": form.inputs["csrf"],
                                      "username": args.username, "password": args.password},
                        allow_redirects=False, timeout=TIMEOUT)
    for _ in range(10):
        require("login redirects to the callback", resp.status_code in (302, 303),
                "%s %s answered %d: %s" % (resp.request.method, resp.url, resp.status_code, resp.text[:500]))
        location = urljoin(resp.url, resp.headers["Location"])
        if location.startswith(args.redirect_uri):
            ok("login redirects to the callback")
            return location
        resp = browser.get(location, allow_redirects=False, timeout=TIMEOUT)
    raise CheckFailed("login redirects to the callback", "too many redirects")


def callback(args, location, state):
    # As handle_oidc_callback: the response arrives in the query string;
    # Synapse checks state against its cookie and needs a code.
    u = urlparse(location)
    require("callback URI is exactly the redirect_uri", u._replace(query="", fragment="").geturl() == args.redirect_uri,
            "sent to %s" % location)
    q = parse_qs(u.query)
    require("callback carries code and state", "error" not in q,
            "error=%s error_description=%s" % (q.get("error"), q.get("error_description")))
    require("callback carries code and state", q.get("state") == [state],
            "state %r, sent %r" % (q.get("state"), state))
    require("callback carries code and state", len(q.get("code", [])) == 1 and q["code"][0],
            "code %r" % q.get("code"))
    ok("callback carries code and state")
    return q["code"][0]


# ---------------------------------------------------------------------------
# The token request (Synapse's _exchange_code).
# ---------------------------------------------------------------------------

def exchange_code(args, metadata, http, code, code_verifier):
    check = "token request (%s)" % args.client_auth_method
    headers = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": USER_AGENT,
               "Accept": "application/json"}
    body_args = {"grant_type": "authorization_code", "code": code, "redirect_uri": args.redirect_uri}
    if code_verifier:
        body_args["code_verifier"] = code_verifier
    body = urlencode(body_args, True)
    # Credentials are added by authlib's ClientAuth, as in _exchange_code.
    uri, headers, body = ClientAuth(args.client_id, args.client_secret, args.client_auth_method).prepare(
        method="POST", uri=metadata["token_endpoint"], headers=headers, body=body)

    # The request must be what Synapse puts on the wire: raw
    # id:secret in Basic and no client_id in the body, or both in the body.
    sent = parse_qs(body)
    if args.client_auth_method == "client_secret_basic":
        require(check, headers.get("Authorization") == "Basic " + base64.b64encode(
            ("%s:%s" % (args.client_id, args.client_secret)).encode()).decode() and "client_id" not in sent,
            "authlib %s did not build Synapse's request: %r %r" % (authlib.__version__, headers, body))
    else:
        require(check, "Authorization" not in headers and sent.get("client_id") == [args.client_id]
                and sent.get("client_secret") == [args.client_secret],
                "authlib %s did not build Synapse's request: %r %r" % (authlib.__version__, headers, body))

    resp = http.post(uri, data=body.encode("utf-8"), headers=headers, timeout=TIMEOUT, allow_redirects=False)
    # As _exchange_code: 5xx is an error; otherwise the body must be JSON;
    # an "error" field at any status is an error; a 4xx without one is
    # server_error.
    require(check, resp.status_code < 500, "answered %d: %s" % (resp.status_code, resp.text[:500]))
    try:
        token = json.loads(resp.content.decode("utf-8"))
    except ValueError:
        raise CheckFailed(check, "answered %d with a body that is not JSON: %r" % (resp.status_code, resp.text[:500]))
    require(check, "error" not in token, "answered %d: error=%s error_description=%s"
            % (resp.status_code, token.get("error"), token.get("error_description")))
    require(check, resp.status_code < 400, "answered %d without an error field: %r" % (resp.status_code, token))
    # 200 JSON with access_token, token_type Bearer, id_token, expires_in.
    require(check, resp.status_code == 200, "answered %d" % resp.status_code)
    require(check, resp.headers.get("Content-Type", "").split(";")[0].strip() == "application/json",
            "Content-Type %r" % resp.headers.get("Content-Type"))
    require(check, isinstance(token.get("access_token"), str) and token["access_token"], "no access_token: %r" % token)
    require(check, str(token.get("token_type", "")).lower() == "bearer", "token_type %r" % token.get("token_type"))
    require(check, isinstance(token.get("id_token"), str) and token["id_token"],
            "no id_token: Synapse fails with invalid_token \"Missing id_token\"")
    require(check, isinstance(token.get("expires_in"), (int, float)), "expires_in %r" % token.get("expires_in"))
    ok(check)
    return token


# ---------------------------------------------------------------------------
# ID-token validation (Synapse's _parse_id_token and _verify_jwt).
# ---------------------------------------------------------------------------

def parse_id_token(args, metadata, jwks, token, nonce, uses_userinfo):
    """Validates the ID token as Synapse does. With uses_userinfo, as
    Synapse configured with user_profile_method: userinfo_endpoint, which
    also checks at_hash against the access token (v1.130+)."""
    claims_params = {"nonce": nonce, "client_id": args.client_id}
    if uses_userinfo and "access_token" in token:
        claims_params["access_token"] = token["access_token"]
    claims_options = {"iss": {"values": [metadata["issuer"]]}}
    alg_values = metadata.get("id_token_signing_alg_values_supported", ["RS256"])
    jwt = JsonWebToken(alg_values)
    claims = jwt.decode(token["id_token"], key=jwks, claims_cls=CodeIDToken,
                        claims_options=claims_options, claims_params=claims_params)
    claims.validate(now=time.time(), leeway=LEEWAY)
    return claims


def check_id_token(args, metadata, jwks, token, nonce):
    check = "ID token accepted by authlib CodeIDToken (user_profile_method: auto)"
    try:
        claims = parse_id_token(args, metadata, jwks, token, nonce, uses_userinfo=False)
    except Exception as e:  # authlib raises JoseError and ValueError subclasses
        raise CheckFailed(check, "%s: %s" % (type(e).__name__, e))
    ok(check)

    check = "ID token accepted with at_hash checked (user_profile_method: userinfo_endpoint)"
    if create_half_hash("x", args.alg) is not None:
        try:
            parse_id_token(args, metadata, jwks, token, nonce, uses_userinfo=True)
        except Exception as e:
            raise CheckFailed(check, "%s: %s" % (type(e).__name__, e))
    else:
        # Older authlib (Debian bookworm's 1.2) knows no hash for EdDSA and
        # refuses every at_hash of an EdDSA ID token: a Synapse on it could
        # use an EdDSA client only with user_profile_method: auto. The
        # check below computes at_hash the way newer authlib, go-oidc and
        # zitadel/oidc do (SHA-512, the hash inside Ed25519).
        print("NOTE authlib %s cannot check at_hash for %s; checked here" % (authlib.__version__, args.alg), flush=True)
    require(check, "at_hash" in claims, "the ID token has no at_hash")
    hash_of = {"RS256": hashlib.sha256, "ES256": hashlib.sha256, "EdDSA": hashlib.sha512}[args.alg]
    digest = hash_of(token["access_token"].encode("ascii")).digest()
    want = base64.urlsafe_b64encode(digest[:len(digest) // 2]).rstrip(b"=").decode()
    require(check, claims["at_hash"] == want, "at_hash %r, want %r" % (claims["at_hash"], want))
    ok(check)

    # The client's algorithm, with a kid that is in the JWKS as a key of
    # that algorithm.
    header = claims.header
    check = "ID token header alg %s and kid in the JWKS" % args.alg
    require(check, header.get("alg") == args.alg, "alg %r" % header.get("alg"))
    published = [k for k in jwks["keys"] if k.get("kid") == header.get("kid")]
    require(check, len(published) == 1 and published[0].get("alg", args.alg) == args.alg,
            "kid %r published as %r" % (header.get("kid"), published))
    require("id_token_signing_alg_values_supported has %s" % args.alg,
            args.alg in metadata.get("id_token_signing_alg_values_supported", ["RS256"]),
            "%r" % metadata.get("id_token_signing_alg_values_supported"))
    ok(check)
    ok("id_token_signing_alg_values_supported has %s" % args.alg)

    # Stricter than authlib: aud is the client (a string or a
    # one-element array), azp absent or the client, integer times.
    check = "ID token iss, sub, aud, azp, exp, iat"
    now = time.time()
    require(check, claims["iss"] == args.issuer, "iss %r" % claims["iss"])
    require(check, isinstance(claims["sub"], str) and claims["sub"], "sub %r" % claims["sub"])
    require(check, claims["aud"] in (args.client_id, [args.client_id]), "aud %r" % claims["aud"])
    require(check, claims.get("azp", args.client_id) == args.client_id, "azp %r" % claims.get("azp"))
    require(check, all(isinstance(claims[k], int) and not isinstance(claims[k], bool) for k in ("exp", "iat")),
            "exp %r iat %r" % (claims["exp"], claims["iat"]))
    require(check, claims["iat"] <= now + 5 < claims["exp"], "iat %r exp %r now %d" % (claims["iat"], claims["exp"], now))
    ok(check)

    # Types of the optional claims, as authlib's CodeIDToken checks them.
    check = "ID token auth_time, amr, nbf types"
    require(check, "auth_time" not in claims or isinstance(claims["auth_time"], (int, float)),
            "auth_time %r" % claims.get("auth_time"))
    require(check, "amr" not in claims or isinstance(claims["amr"], list), "amr %r" % claims.get("amr"))
    require(check, "nbf" not in claims or (isinstance(claims["nbf"], (int, float)) and claims["nbf"] <= now + 5),
            "nbf %r" % claims.get("nbf"))
    ok(check)

    # The ID token itself carries what Synapse's default mapping reads
    # (it never merges userinfo in).
    check = "ID token carries the claims Synapse maps"
    require(check, claims.get("preferred_username") == args.username,
            "preferred_username %r, want %r" % (claims.get("preferred_username"), args.username))
    require(check, LOCALPART_RE.match(claims["preferred_username"]),
            "preferred_username %r is not a Matrix localpart" % claims["preferred_username"])
    require(check, isinstance(claims.get("name"), str) and claims["name"], "name %r" % claims.get("name"))
    if args.name:
        require(check, claims["name"] == args.name, "name %r, want %r" % (claims["name"], args.name))
    require(check, isinstance(claims.get("email"), str) and "@" in claims["email"], "email %r" % claims.get("email"))
    if args.email:
        require(check, claims["email"] == args.email, "email %r, want %r" % (claims["email"], args.email))
    require(check, claims.get("email_verified") is True, "email_verified %r" % claims.get("email_verified"))
    ok(check)

    # sid is copied to the Matrix device (handle_oidc_callback); without it
    # back-channel logout can never reach that device.
    check = "ID token sid is a non-empty string"
    require(check, isinstance(claims.get("sid"), str) and claims["sid"], "sid %r" % claims.get("sid"))
    ok(check)
    return claims


# ---------------------------------------------------------------------------
# Userinfo (Synapse's _fetch_userinfo).
# ---------------------------------------------------------------------------

def fetch_userinfo(args, metadata, http, token, claims):
    check = "userinfo with the Bearer token"
    resp = http.get(metadata["userinfo_endpoint"], timeout=TIMEOUT, allow_redirects=False,
                    headers={"Authorization": "Bearer {}".format(token["access_token"])})
    # Synapse asserts a Content-Type is present; application/jwt... would be
    # a signed response, anything else is JSON.
    ctype = resp.headers.get("Content-Type")
    require(check, ctype, "no Content-Type header: Synapse fails with fetch_error")
    require(check, resp.status_code == 200, "answered %d: %s" % (resp.status_code, resp.text[:500]))
    require(check, ctype.startswith("application/jwt") == args.userinfo_jwt,
            "Content-Type %r; want %s" % (ctype, "a signed JWT" if args.userinfo_jwt else "JSON"))
    if ctype.startswith("application/jwt"):
        info = JsonWebToken(metadata.get("id_token_signing_alg_values_supported", ["RS256"])).decode(resp.content, key=load_jwks(metadata, http))
        # OIDC Core §5.3.2: a signed answer names the issuer and the client.
        require(check, info.get("iss") == args.issuer and info.get("aud") in (args.client_id, [args.client_id]),
                "signed userinfo iss %r aud %r" % (info.get("iss"), info.get("aud")))
    else:
        require(check, ctype.split(";")[0].strip() == "application/json", "Content-Type %r" % ctype)
        info = json.loads(resp.content.decode("utf-8"))
    # Synapse does not compare them, so the OP must never answer with
    # another user's claims (_fetch_userinfo).
    require(check, info.get("sub") == claims["sub"], "sub %r, ID token's %r" % (info.get("sub"), claims["sub"]))
    for k in ("preferred_username", "name", "email", "email_verified"):
        require(check, info.get(k) == claims.get(k), "%s %r, ID token's %r" % (k, info.get(k), claims.get(k)))
    ok(check)

    # A bad token is refused with 401, never answered with 200 (RFC 6750 §3.1).
    check = "userinfo refuses a bad token with 401"
    at = token["access_token"]
    bad = at[:-4] + ("BBBB" if at.endswith("AAAA") else "AAAA")
    resp = http.get(metadata["userinfo_endpoint"], timeout=TIMEOUT, allow_redirects=False,
                    headers={"Authorization": "Bearer " + bad})
    require(check, resp.status_code == 401, "answered %d: %s" % (resp.status_code, resp.text[:500]))
    require(check, resp.headers.get("WWW-Authenticate", "").startswith("Bearer"),
            "WWW-Authenticate %r" % resp.headers.get("WWW-Authenticate"))
    ok(check)


def main():
    args = options()
    print("authlib %s, %s, %s, issuer %s" % (authlib.__version__, args.client_auth_method, args.alg, args.issuer), flush=True)
    # Synapse's own HTTP client for the server-to-server requests (it does
    # not follow redirects: every call passes allow_redirects=False).
    http = requests.Session()
    http.headers["User-Agent"] = USER_AGENT
    try:
        metadata = discover(args, http)
        jwks = load_jwks(metadata, http)
        url, state, nonce, code_verifier = authorization_request(args, metadata)
        ok("state/nonce/verifier like Synapse's")
        location = browser_login(args, url)
        code = callback(args, location, state)
        token = exchange_code(args, metadata, http, code, code_verifier)
        claims = check_id_token(args, metadata, jwks, token, nonce)
        fetch_userinfo(args, metadata, http, token, claims)
    except CheckFailed as e:
        print("FAIL %s: %s" % (e.check, e.reason), flush=True)
        return 1
    except Exception as e:  # a crash is a failure too, with its cause shown
        print("FAIL unexpected %s: %s" % (type(e).__name__, e), flush=True)
        return 1
    print("PASS", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
