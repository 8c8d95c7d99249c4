-- The OpenID provider's state: authorization requests and their codes,
-- browser sessions, tokens, and the durable back-channel logout queue.
-- Secrets (codes, refresh tokens, session cookies) are stored as SHA-256 hashes.

-- +goose Up
CREATE TABLE auth_requests (
    id                    TEXT    PRIMARY KEY,
    client_id             TEXT    NOT NULL,
    redirect_uri          TEXT    NOT NULL,
    scopes                TEXT    NOT NULL,              -- space-separated
    state                 TEXT    NOT NULL DEFAULT '',
    nonce                 TEXT    NOT NULL DEFAULT '',
    response_type         TEXT    NOT NULL,
    response_mode         TEXT    NOT NULL DEFAULT '',
    code_challenge        TEXT    NOT NULL DEFAULT '',
    code_challenge_method TEXT    NOT NULL DEFAULT '',
    prompt                TEXT    NOT NULL DEFAULT '',   -- space-separated
    max_age               BIGINT,                        -- seconds; NULL when not asked
    login_hint            TEXT    NOT NULL DEFAULT '',
    ui_locales            TEXT    NOT NULL DEFAULT '',
    user_id               TEXT    NOT NULL DEFAULT '',   -- set by the login
    session_id            TEXT    NOT NULL DEFAULT '',   -- the browser session: the "sid"
    auth_time             BIGINT  NOT NULL DEFAULT 0,
    amr                   TEXT    NOT NULL DEFAULT '',
    done                  BOOLEAN NOT NULL DEFAULT FALSE,
    code_hash             TEXT,                          -- SHA-256 of the code, once issued
    code_expires_at       BIGINT  NOT NULL DEFAULT 0,
    consumed              BOOLEAN NOT NULL DEFAULT FALSE, -- the code was exchanged; kept to detect replays
    created_at            BIGINT  NOT NULL,
    expires_at            BIGINT  NOT NULL
);
CREATE UNIQUE INDEX auth_requests_code ON auth_requests (code_hash) WHERE code_hash IS NOT NULL;
CREATE INDEX auth_requests_expiry ON auth_requests (expires_at);

CREATE TABLE sessions (
    id         TEXT   PRIMARY KEY,        -- public: the "sid" claim
    token_hash TEXT   NOT NULL UNIQUE,    -- SHA-256 of the cookie value
    user_id    TEXT   NOT NULL,
    auth_time  BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- The clients that received tokens in a session: who to notify at logout.
CREATE TABLE session_clients (
    session_id TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    PRIMARY KEY (session_id, client_id)
);

CREATE TABLE tokens (
    id              TEXT    PRIMARY KEY,
    kind            TEXT    NOT NULL,          -- access | refresh
    hash            TEXT    UNIQUE,            -- refresh tokens: SHA-256 of the value
    family_id       TEXT    NOT NULL,          -- every token descended from one code
    client_id       TEXT    NOT NULL,
    user_id         TEXT    NOT NULL,
    session_id      TEXT    NOT NULL DEFAULT '',
    scopes          TEXT    NOT NULL DEFAULT '',
    audience        TEXT    NOT NULL DEFAULT '',
    auth_time       BIGINT  NOT NULL DEFAULT 0,
    amr             TEXT    NOT NULL DEFAULT '',
    rotated         BOOLEAN NOT NULL DEFAULT FALSE, -- a refresh token already used once
    revoked         BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      BIGINT  NOT NULL,
    expires_at      BIGINT  NOT NULL
);
CREATE INDEX tokens_family ON tokens (family_id);
CREATE INDEX tokens_user ON tokens (user_id);
CREATE INDEX tokens_session ON tokens (session_id);
CREATE INDEX tokens_expiry ON tokens (expires_at);

CREATE TABLE backchannel_queue (
    id              TEXT    PRIMARY KEY,
    client_id       TEXT    NOT NULL,
    uri             TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    session_id      TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,
    last_error      TEXT    NOT NULL DEFAULT '',
    created_at      BIGINT  NOT NULL
);
CREATE INDEX backchannel_due ON backchannel_queue (next_attempt_at);

-- Group memberships of builtin users, for the "groups" claim.
CREATE TABLE user_groups (
    user_id    TEXT NOT NULL,
    group_name TEXT NOT NULL,
    PRIMARY KEY (user_id, group_name)
);

-- +goose Down
DROP TABLE user_groups;
DROP TABLE backchannel_queue;
DROP TABLE tokens;
DROP TABLE session_clients;
DROP TABLE sessions;
DROP TABLE auth_requests;
