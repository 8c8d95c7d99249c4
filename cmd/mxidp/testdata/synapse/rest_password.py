"""A Synapse password auth provider that makes the REST password provider's call.

The end-to-end tests run it inside a real Synapse in place of Synapse's REST
password provider (rest_auth_provider.RestAuthProvider, a third-party module
the tests cannot download). It sends the same HTTP request as that provider
(ma1sd docs/stores/rest.md; mxidp's docs/rest.md):

    POST {endpoint}/_matrix-internal/identity/v1/check_credentials
    {"user": {"id": "@alice:example.org", "password": "..."}}

and, like the provider, logs the user in as the ID it sent (never one the
answer names) when the answer says success, registering an unknown user
first with the display name and e-mail addresses of the answer's profile. Anything else is "not
authenticated", and Synapse answers the login 403 M_FORBIDDEN.

It uses only Synapse's module API (Synapse docs/modules/password_auth_provider_callbacks.md):

    modules:
      - module: rest_password.RestPassword
        config:
          endpoint: "http://127.0.0.1:8080"
"""

import logging

from synapse.module_api import ModuleApi

logger = logging.getLogger(__name__)

CHECK_CREDENTIALS = "/_matrix-internal/identity/v1/check_credentials"


class RestPassword:
    def __init__(self, config, api: ModuleApi):
        self._api = api
        # Concatenated with the path as the provider does, unnormalised.
        self._endpoint = config["endpoint"]
        api.register_password_auth_provider_callbacks(
            auth_checkers={("m.login.password", ("password",)): self.check_password},
        )

    @staticmethod
    def parse_config(config):
        if not isinstance(config.get("endpoint"), str):
            raise Exception("rest_password: config.endpoint (the service's base URL) is required")
        return config

    async def check_password(self, username, login_type, login_dict):
        user_id = self._api.get_qualified_user_id(username)
        answer = await self._api.http_client.post_json_get_json(
            self._endpoint + CHECK_CREDENTIALS,
            {"user": {"id": user_id, "password": login_dict["password"]}},
        )
        auth = answer["auth"]
        if auth["success"] is not True:
            logger.info("rest_password: the service refused %s", user_id)
            return None
        profile = auth["profile"]  # required on success, as the provider reads it
        if await self._api.check_user_exists(user_id) is None:
            localpart = user_id[1:].split(":", 1)[0]
            emails = [p["address"] for p in profile.get("three_pids", []) if p["medium"] == "email"]
            await self._api.register_user(localpart, displayname=profile.get("display_name"), emails=emails)
        logger.info("rest_password: the service accepted %s", user_id)
        return user_id, None
