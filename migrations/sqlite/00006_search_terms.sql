-- The user directory's word index: each user's lower-cased username and
-- the lower-cased words of the display name, so that a search term is
-- found as a prefix with a range scan instead of a scan of every user.
-- SQLite compares text bytewise (BINARY), which is what a prefix range needs.

-- +goose Up
CREATE TABLE user_search_terms (
    term    TEXT NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (term, user_id)
);
CREATE INDEX user_search_terms_user ON user_search_terms (user_id);
-- Filled from the users table by mxidp after migrating (storage.Migrate).

-- +goose Down
DROP TABLE user_search_terms;
