-- Clients that registered themselves (RFC 7591 dynamic client
-- registration, as the Matrix client-server API's OAuth 2.0 API profiles
-- it): what they said about themselves, shown on the consent page, and
-- the kind of application, which decides their redirect URI rules. Also
-- the indexes that find the registrations nobody uses, for the purge.

-- +goose Up
ALTER TABLE clients ADD COLUMN dynamic BOOLEAN NOT NULL DEFAULT FALSE;    -- registered itself, not by the operator
ALTER TABLE clients ADD COLUMN application_type TEXT NOT NULL DEFAULT 'web'; -- web | native
ALTER TABLE clients ADD COLUMN client_uri TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN logo_uri TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN tos_uri TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN policy_uri TEXT NOT NULL DEFAULT '';
CREATE INDEX clients_dynamic ON clients (created_at) WHERE dynamic;
CREATE INDEX tokens_client ON tokens (client_id);
CREATE INDEX auth_requests_client ON auth_requests (client_id);

-- +goose Down
DROP INDEX auth_requests_client;
DROP INDEX tokens_client;
DROP INDEX clients_dynamic;
ALTER TABLE clients DROP COLUMN policy_uri;
ALTER TABLE clients DROP COLUMN tos_uri;
ALTER TABLE clients DROP COLUMN logo_uri;
ALTER TABLE clients DROP COLUMN client_uri;
ALTER TABLE clients DROP COLUMN application_type;
ALTER TABLE clients DROP COLUMN dynamic;
