"""Password logins for Synapse, checked by mxidp's REST service.

A Synapse module (Synapse docs/modules/password_auth_provider_callbacks.md)
that answers Matrix's m.login.password by asking mxidp, with the request the
REST password provider makes (mxidp docs/rest.md):

    POST {endpoint}/_matrix-internal/identity/v1/check_credentials
    {"user": {"id": "@alice:example.org", "password": "..."}}

When mxidp answers success, the user is logged in as the Matrix ID that was
sent, never as one the answer names. A user Synapse does not know yet is
registered first, with the display name and the e-mail addresses of the
answer's profile (mxidp only ever returns verified ones, so Synapse records
them as validated 3PIDs). Everything else, whether mxidp refuses, is down,
is slow, answers with another status than 200 or with something that is not
the expected JSON, means "not authenticated": Synapse goes on to its next
password checker, if any, and answers the login 403 M_FORBIDDEN. Each such
case is logged with the Matrix ID and the reason; passwords never are.

It uses only Synapse's module API: register_password_auth_provider_callbacks
(Synapse 1.46 and later), register_user with a display name and e-mails
(1.2), check_user_exists, get_qualified_user_id, is_mine and http_client.

Install: copy this file into a directory on Synapse's Python path (or add
its directory to PYTHONPATH in Synapse's environment), then in
homeserver.yaml:

    modules:
      - module: mxidp_rest_auth.RestAuthProvider
        config:
          endpoint: "http://127.0.0.1:8080"   # mxidp's base URL, REST enabled
          timeout: 10                         # seconds; optional, default 10
"""

import json
import logging

from twisted.internet import reactor
from twisted.web.client import readBody
from twisted.web.http_headers import Headers

from synapse.logging.context import make_deferred_yieldable, run_in_background
from synapse.module_api import ModuleApi

logger = logging.getLogger(__name__)

CHECK_CREDENTIALS = "/_matrix-internal/identity/v1/check_credentials"
DEFAULT_TIMEOUT = 10.0
MAX_ANSWER = 64 * 1024  # a login answer is a few hundred bytes


class NotAuthenticated(Exception):
    """Why mxidp's answer does not log the user in (logged, never raised to Synapse)."""


class RestAuthProvider:
    def __init__(self, config, api: ModuleApi):
        self._api = api
        self._url = config["endpoint"] + CHECK_CREDENTIALS
        self._timeout = config["timeout"]
        api.register_password_auth_provider_callbacks(
            auth_checkers={("m.login.password", ("password",)): self.check_password},
        )

    @staticmethod
    def parse_config(config):
        if not isinstance(config, dict):
            raise Exception("mxidp_rest_auth: config must be a mapping with endpoint (mxidp's base URL)")
        endpoint = config.get("endpoint")
        if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
            raise Exception("mxidp_rest_auth: config.endpoint must be mxidp's base URL, http:// or https://")
        timeout = config.get("timeout", DEFAULT_TIMEOUT)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise Exception("mxidp_rest_auth: config.timeout must be a positive number of seconds")
        unknown = sorted(set(config) - {"endpoint", "timeout"})
        if unknown:
            raise Exception("mxidp_rest_auth: unknown config options: " + ", ".join(unknown))
        return {"endpoint": endpoint.rstrip("/"), "timeout": float(timeout)}

    async def check_password(self, username, login_type, login_dict):
        user_id = self._api.get_qualified_user_id(username)
        if not self._api.is_mine(user_id):
            logger.info("mxidp_rest_auth: %s is not a user of this server: not authenticated", user_id)
            return None
        password = login_dict.get("password")
        if not isinstance(password, str):
            return None
        try:
            auth = await self._ask(user_id, password)
        except NotAuthenticated as e:
            logger.warning("mxidp_rest_auth: %s not authenticated: %s", user_id, e)
            return None
        if auth.get("success") is not True:
            logger.info("mxidp_rest_auth: mxidp refused %s", user_id)
            return None
        named = auth.get("mxid")
        if named is not None and named != user_id:
            logger.warning("mxidp_rest_auth: mxidp accepted %s as %r: not authenticated", user_id, named)
            return None

        existing = await self._api.check_user_exists(user_id)
        if existing is None:
            await self._register(user_id, auth.get("profile"))
        elif existing != user_id:
            # Synapse matches IDs ignoring case; mxidp approved this spelling only.
            logger.warning("mxidp_rest_auth: %s is %s in Synapse: not authenticated", user_id, existing)
            return None
        logger.info("mxidp_rest_auth: mxidp accepted %s", user_id)
        return user_id, None

    async def _ask(self, user_id, password):
        """Returns the answer's auth object, or raises NotAuthenticated."""
        d = run_in_background(self._post, json.dumps({"user": {"id": user_id, "password": password}}).encode())
        expired = []

        def expire():
            expired.append(True)
            d.cancel()

        timer = reactor.callLater(self._timeout, expire)
        try:
            code, body = await make_deferred_yieldable(d)
        except NotAuthenticated:
            raise
        except Exception as e:  # refused connection, DNS, TLS, a reset, the cancel above...
            if expired:
                raise NotAuthenticated("mxidp did not answer within %g s" % self._timeout)
            raise NotAuthenticated("mxidp unreachable at %s: %s" % (self._url, type(e).__name__))
        finally:
            if timer.active():
                timer.cancel()
        if code != 200:
            raise NotAuthenticated("mxidp answered HTTP %d" % code)
        try:
            answer = json.loads(body)
        except ValueError:
            raise NotAuthenticated("mxidp's answer is not JSON")
        auth = answer.get("auth") if isinstance(answer, dict) else None
        if not isinstance(auth, dict):
            raise NotAuthenticated("mxidp's answer has no auth object")
        return auth

    async def _post(self, body):
        # Not post_json_get_json: Synapse's HTTP client logs that body, the
        # password with it, at DEBUG level.
        response = await self._api.http_client.request(
            "POST", self._url, data=body,
            headers=Headers({"Content-Type": ["application/json"], "Accept": ["application/json"]}),
        )
        if isinstance(response.length, int) and response.length > MAX_ANSWER:
            raise NotAuthenticated("mxidp's answer is larger than %d bytes" % MAX_ANSWER)
        return response.code, await make_deferred_yieldable(readBody(response))

    async def _register(self, user_id, profile):
        if not isinstance(profile, dict):
            profile = {}
        name = profile.get("display_name")
        if not isinstance(name, str) or not name:
            name = None
        emails = []
        for pid in profile.get("three_pids") or []:
            if isinstance(pid, dict) and pid.get("medium") == "email" and isinstance(pid.get("address"), str):
                emails.append(pid["address"])
        localpart = user_id[1:].split(":", 1)[0]
        await self._api.register_user(localpart, displayname=name, emails=emails)
        logger.info("mxidp_rest_auth: registered %s with %d e-mail address(es) from mxidp", user_id, len(emails))
