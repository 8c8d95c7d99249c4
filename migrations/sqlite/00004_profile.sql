-- A phone number (msisdn) and an avatar per user, for the Matrix profile,
-- 3PID lookups and the user directory (docs/rest.md).

-- +goose Up
ALTER TABLE users ADD COLUMN msisdn TEXT NOT NULL DEFAULT '';     -- E.164 digits without '+'; '' when none; set by the operator, so verified
ALTER TABLE users ADD COLUMN avatar_url TEXT NOT NULL DEFAULT ''; -- mxc:// URI; '' when none
CREATE UNIQUE INDEX users_msisdn ON users (msisdn) WHERE msisdn <> '';

-- +goose Down
DROP INDEX users_msisdn;
ALTER TABLE users DROP COLUMN avatar_url;
ALTER TABLE users DROP COLUMN msisdn;
