#!/usr/bin/python3
"""A Matrix bot's session with matrix-nio, as grouprise's and Schul-Cloud's
sync bots run one: password login, sync, a room of its own, a message.

Run it with Debian's interpreter, which sees python3-matrix-nio:

    /usr/bin/python3 nio_login.py login HOMESERVER USER DEVICE_NAME
        (the password on standard input) logs USER in by m.login.password
        (a localpart or a full Matrix ID, as nio's login() takes it), syncs,
        creates a private room, sends a message into it and syncs again;

    /usr/bin/python3 nio_login.py logout HOMESERVER USER_ID DEVICE_ID
        (the access token on standard input) restores that session and logs
        it out.

HOMESERVER is the base URL a client is given: the reverse proxy that sends
login, logout and refresh to the authentication service and the rest to
Synapse. The script prints one JSON object on standard output and exits 0,
or prints {"ok": false, "step": ..., "error": ..., "errcode": ...} and exits
1 at the first call that failed. nio's own logging stays off: it would show
request URLs, which hold the access token (nio 0.20 sends it as the
access_token query parameter).
"""

import asyncio
import json
import sys

from nio import (
    AsyncClient,
    AsyncClientConfig,
    ErrorResponse,
    LoginResponse,
    LogoutResponse,
    RoomCreateResponse,
    RoomSendResponse,
    SyncResponse,
)

MESSAGE = "hello from matrix-nio"
SYNC_TIMEOUT_MS = 1000


class Failed(Exception):
    def __init__(self, step, resp):
        super().__init__(step)
        self.step = step
        self.resp = resp


def check(step, resp, want):
    if not isinstance(resp, want):
        raise Failed(step, resp)
    return resp


def failure(step, resp):
    out = {"ok": False, "step": step, "error": str(resp)}
    if isinstance(resp, ErrorResponse):
        # nio keeps a Matrix error's errcode in status_code.
        out["errcode"] = resp.status_code
        out["retry_after_ms"] = resp.retry_after_ms
        out["soft_logout"] = resp.soft_logout
    return out


def client(homeserver, user):
    # No retries: the test wants the first answer, not nio's patience.
    cfg = AsyncClientConfig(max_timeouts=1, max_limit_exceeded=0, encryption_enabled=False)
    return AsyncClient(homeserver, user, config=cfg)


async def login(homeserver, user, device_name, password):
    c = client(homeserver, user)
    try:
        resp = check("login", await c.login(password, device_name=device_name), LoginResponse)
        out = {"ok": True, "user_id": resp.user_id, "device_id": resp.device_id, "access_token": resp.access_token}
        first = check("sync", await c.sync(timeout=SYNC_TIMEOUT_MS, full_state=True), SyncResponse)
        out["next_batch"] = first.next_batch
        room = check("room_create", await c.room_create(name="nio bot room"), RoomCreateResponse)
        out["room_id"] = room.room_id
        sent = check("room_send", await c.room_send(room.room_id, "m.room.message",
                                                    {"msgtype": "m.text", "body": MESSAGE}), RoomSendResponse)
        out["event_id"] = sent.event_id
        # The next sync shows the bot its own room and message.
        later = check("sync after sending", await c.sync(timeout=SYNC_TIMEOUT_MS, since=first.next_batch), SyncResponse)
        joined = later.rooms.join.get(room.room_id)
        out["synced_bodies"] = [getattr(ev, "body", None) for ev in joined.timeline.events] if joined else []
        return out
    finally:
        await c.close()


async def logout(homeserver, user_id, device_id, token):
    c = client(homeserver, user_id)
    try:
        c.restore_login(user_id, device_id, token)
        check("logout", await c.logout(), LogoutResponse)
        return {"ok": True}
    finally:
        await c.close()


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in ("login", "logout"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    mode, homeserver, a, b = sys.argv[1:]
    secret = sys.stdin.read()
    if secret.endswith("\n"):
        secret = secret[:-1]
    try:
        if mode == "login":
            out = asyncio.run(login(homeserver, a, b, secret))
        else:
            out = asyncio.run(logout(homeserver, a, b, secret))
    except Failed as f:
        print(json.dumps(failure(f.step, f.resp)))
        sys.exit(1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
