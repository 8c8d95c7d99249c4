-- Settings an operator keeps per account, for mxidp's own users and for
-- the platform's alike (the platform's table is only read): keyed by the
-- account's user ID, with no row meaning the defaults.
-- password_login: whether the Matrix login API (m.login.password) takes
-- the account's password; accounts that must use the browser login are
-- refused there.

-- +goose Up
CREATE TABLE account_settings (
    user_id        TEXT    PRIMARY KEY,
    password_login BOOLEAN NOT NULL,
    updated_at     BIGINT  NOT NULL
);

-- +goose Down
DROP TABLE account_settings;
