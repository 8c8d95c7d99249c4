-- Users, clients and the signing-key ring.
-- Times are Unix seconds (BIGINT) in both dialects so that the Go code is the same.

-- +goose Up
CREATE TABLE users (
    id             TEXT    PRIMARY KEY,            -- stable, random, never reused: the OpenID "sub"
    username       TEXT    NOT NULL UNIQUE,        -- canonical Matrix localpart
    email          TEXT    NOT NULL DEFAULT '',    -- lower-cased; '' when none
    email_verified BOOLEAN NOT NULL DEFAULT FALSE,
    display_name   TEXT    NOT NULL DEFAULT '',
    password_hash  TEXT    NOT NULL DEFAULT '',    -- PHC string; '' means no password login
    disabled       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL
);
CREATE UNIQUE INDEX users_email ON users (email) WHERE email <> '';

CREATE TABLE clients (
    id                        TEXT    PRIMARY KEY,
    secret_hash               TEXT    NOT NULL DEFAULT '',  -- '' for public clients
    public                    BOOLEAN NOT NULL DEFAULT FALSE,
    redirect_uris             TEXT    NOT NULL DEFAULT '[]', -- JSON array, matched exactly
    post_logout_redirect_uris TEXT    NOT NULL DEFAULT '[]', -- JSON array, matched exactly
    skip_consent              BOOLEAN NOT NULL DEFAULT FALSE,
    backchannel_logout_uri    TEXT    NOT NULL DEFAULT '',
    created_at                BIGINT  NOT NULL,
    updated_at                BIGINT  NOT NULL
);

CREATE TABLE signing_keys (
    kid            TEXT   PRIMARY KEY,
    algorithm      TEXT   NOT NULL,
    public_jwk     TEXT   NOT NULL,
    private_sealed BLOB   NOT NULL,  -- sealed with the secret key; see package keys
    created_at     BIGINT NOT NULL,
    sign_from      BIGINT NOT NULL   -- published at once, signs from this time on
);

-- One row whose version changes with every change of signing_keys, so that
-- instances notice a rotation cheaply and rotate by compare-and-swap.
CREATE TABLE key_ring (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT  NOT NULL
);
INSERT INTO key_ring (id, version) VALUES (1, 0);

-- +goose Down
DROP TABLE key_ring;
DROP TABLE signing_keys;
DROP TABLE clients;
DROP TABLE users;
