-- A repeated audit event (a flood of throttled logins) is one row whose
-- count grows, instead of one row each.

-- +goose Up
ALTER TABLE audit_events ADD COLUMN count BIGINT NOT NULL DEFAULT 1;   -- how many times it happened
ALTER TABLE audit_events ADD COLUMN last_at BIGINT NOT NULL DEFAULT 0; -- Unix milliseconds of the last time
UPDATE audit_events SET last_at = at;
-- What a repeated event is counted under (its kind and window); NULL for
-- events recorded one by one.
ALTER TABLE audit_events ADD COLUMN repeat_key TEXT;
CREATE UNIQUE INDEX audit_events_repeat ON audit_events (repeat_key);

-- +goose Down
DROP INDEX audit_events_repeat;
ALTER TABLE audit_events DROP COLUMN repeat_key;
ALTER TABLE audit_events DROP COLUMN last_at;
ALTER TABLE audit_events DROP COLUMN count;
