-- Matrix devices that mxidp created in Synapse (next-gen auth): one per
-- token family (one authorization), so that when the family's last token
-- is revoked or expires the device is deleted in Synapse too.

-- +goose Up
CREATE TABLE matrix_devices (
    family_id    TEXT   PRIMARY KEY,    -- the tokens' family_id: the authorization it came from
    user_id      TEXT   NOT NULL,
    localpart    TEXT   NOT NULL,       -- kept, so the device can be deleted after the user is gone
    device_id    TEXT   NOT NULL,
    client_id    TEXT   NOT NULL,
    session_id   TEXT   NOT NULL DEFAULT '',
    display_name TEXT   NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,       -- the last time Synapse introspected one of its tokens
    UNIQUE (user_id, device_id)
);
CREATE INDEX matrix_devices_created ON matrix_devices (created_at);

-- +goose Down
DROP TABLE matrix_devices;
