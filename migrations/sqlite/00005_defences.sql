-- Password-check throttling shared by every instance, and the audit log of
-- security events.

-- +goose Up
CREATE TABLE throttle (
    key        TEXT   PRIMARY KEY,  -- "account:" + login name, or "network:" + address or prefix
    failures   BIGINT NOT NULL,     -- wrong passwords since the last right one
    inflight   BIGINT NOT NULL,     -- checks admitted and not finished yet
    next_at    BIGINT NOT NULL,     -- Unix milliseconds: no check is admitted before
    updated_at BIGINT NOT NULL      -- Unix milliseconds of the last change
);
CREATE INDEX throttle_updated ON throttle (updated_at);

CREATE TABLE audit_events (
    id        TEXT   PRIMARY KEY,
    at        BIGINT NOT NULL,              -- Unix milliseconds
    event     TEXT   NOT NULL,              -- login.succeeded, login.failed, login.throttled, logout, user.*, client.*, keys.*
    user_id   TEXT   NOT NULL DEFAULT '',
    username  TEXT   NOT NULL DEFAULT '',   -- as typed at a login, or the account's name
    client_id TEXT   NOT NULL DEFAULT '',
    network   TEXT   NOT NULL DEFAULT '',   -- the client's address, when known
    detail    TEXT   NOT NULL DEFAULT ''    -- e.g. the reason of a failure; never a secret
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_user ON audit_events (user_id, at);
CREATE INDEX audit_events_username ON audit_events (username, at);

-- +goose Down
DROP TABLE audit_events;
DROP TABLE throttle;
