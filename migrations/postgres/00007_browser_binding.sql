-- Authorization requests are bound to the browser that started them, and
-- a login that replaces a session leaves the old one as a link in a chain.

-- +goose Up
-- SHA-256 of the browser-binding cookie sent to /authorize; a request is
-- only shown, completed and answered with a code in that browser.
ALTER TABLE auth_requests ADD COLUMN browser_hash TEXT NOT NULL DEFAULT '';
-- Set when a new login in the same browser replaced this session: its
-- cookie no longer works, but ending the successor also ends it (and
-- notifies its clients, which know this session's sid).
ALTER TABLE sessions ADD COLUMN successor_id TEXT NOT NULL DEFAULT '';
CREATE INDEX sessions_successor ON sessions (successor_id) WHERE successor_id <> '';

-- +goose Down
DROP INDEX sessions_successor;
ALTER TABLE sessions DROP COLUMN successor_id;
ALTER TABLE auth_requests DROP COLUMN browser_hash;
