-- One-time login tokens of Matrix's m.login.sso / m.login.token (the
-- compatibility layer of next-gen auth): a browser that signed in at mxidp
-- is sent back to the Matrix client with one, which the client exchanges
-- once for a session. Only the SHA-256 of a token is stored.

-- +goose Up
CREATE TABLE matrix_login_tokens (
    hash         TEXT    PRIMARY KEY,
    user_id      TEXT    NOT NULL,
    redirect_url TEXT    NOT NULL,
    used         BOOLEAN NOT NULL DEFAULT FALSE,
    created_at   BIGINT  NOT NULL,
    expires_at   BIGINT  NOT NULL
);
CREATE INDEX matrix_login_tokens_expiry ON matrix_login_tokens (expires_at);

-- +goose Down
DROP TABLE matrix_login_tokens;
