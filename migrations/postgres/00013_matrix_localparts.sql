-- Which account a Matrix localpart belongs to. Synapse knows a user by
-- localpart alone in next-gen auth, so the first account mxidp creates a
-- Matrix user for keeps the localpart: a later account given the same
-- username (the platform reused it, or the user was deleted and added
-- again) cannot inherit the earlier one's rooms and messages.

-- +goose Up
CREATE TABLE matrix_localparts (
    localpart  TEXT   PRIMARY KEY,
    user_id    TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE matrix_localparts;
