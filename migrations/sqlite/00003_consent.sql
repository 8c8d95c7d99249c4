-- Consent: what a user allowed a client, remembered when they asked; and a
-- display name for clients, shown on the consent page.

-- +goose Up
CREATE TABLE consents (
    user_id    TEXT   NOT NULL,
    client_id  TEXT   NOT NULL,
    scopes     TEXT   NOT NULL,  -- space-separated
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
ALTER TABLE clients ADD COLUMN name TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE clients DROP COLUMN name;
DROP TABLE consents;
