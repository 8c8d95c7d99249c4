-- The algorithms a client's tokens are signed with (OpenID Connect Dynamic
-- Client Registration §2): id_token_signed_response_alg for its ID tokens
-- and logout tokens, RS256 unless the client asked for ES256 or EdDSA;
-- userinfo_signed_response_alg, when set, makes /userinfo answer a JWT
-- signed with it instead of JSON (OIDC Core §5.3.2). Package keys lists
-- the algorithms offered.

-- +goose Up
ALTER TABLE clients ADD COLUMN id_token_signed_response_alg TEXT NOT NULL DEFAULT 'RS256';
ALTER TABLE clients ADD COLUMN userinfo_signed_response_alg TEXT NOT NULL DEFAULT ''; -- '' answers JSON

-- +goose Down
ALTER TABLE clients DROP COLUMN userinfo_signed_response_alg;
ALTER TABLE clients DROP COLUMN id_token_signed_response_alg;
