package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Client is a registered OpenID relying party, such as a Synapse homeserver.
type Client struct {
	ID                     string
	Name                   string // shown to users; the ID when empty
	SecretHash             string // "" for public clients; see provider.HashClientSecret
	Public                 bool   // no secret; PKCE required
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
	SkipConsent            bool
	BackchannelLogoutURI   string
	CreatedAt              time.Time
	UpdatedAt              time.Time

	// Dynamic marks a client that registered itself (RFC 7591); the
	// fields below are what it said about itself. A dynamic client that
	// nobody uses is purged (see UnusedClientGrace).
	Dynamic bool
	// ApplicationType is "web" or "native" (RFC 7591 §2, OpenID Connect
	// Dynamic Client Registration §2): it decides which redirect URIs
	// the client may use. Operator clients are "web".
	ApplicationType string
	ClientURI       string
	LogoURI         string
	TOSURI          string
	PolicyURI       string

	// IDTokenAlg signs the client's ID tokens and logout tokens: RS256,
	// ES256 or EdDSA (package keys); "" is stored as RS256.
	IDTokenAlg string
	// UserinfoAlg, when set, makes /userinfo answer the client's access
	// tokens with a JWT signed with it; "" answers JSON.
	UserinfoAlg string
}

// DefaultIDTokenAlg is the algorithm of a client that names none (OpenID
// Connect Dynamic Client Registration §2: id_token_signed_response_alg
// defaults to RS256).
const DefaultIDTokenAlg = "RS256"

// The application types of RFC 7591 clients.
const (
	ApplicationWeb    = "web"
	ApplicationNative = "native"
)

const clientColumns = `id, secret_hash, public, redirect_uris, post_logout_redirect_uris,
	skip_consent, backchannel_logout_uri, created_at, updated_at, name,
	dynamic, application_type, client_uri, logo_uri, tos_uri, policy_uri,
	id_token_signed_response_alg, userinfo_signed_response_alg`

func scanClient(row interface{ Scan(...any) error }) (Client, error) {
	var c Client
	var redirects, postLogout string
	var created, updated int64
	err := row.Scan(&c.ID, &c.SecretHash, &c.Public, &redirects, &postLogout,
		&c.SkipConsent, &c.BackchannelLogoutURI, &created, &updated, &c.Name,
		&c.Dynamic, &c.ApplicationType, &c.ClientURI, &c.LogoURI, &c.TOSURI, &c.PolicyURI,
		&c.IDTokenAlg, &c.UserinfoAlg)
	if errors.Is(err, sql.ErrNoRows) {
		return Client{}, ErrNotFound
	}
	if err != nil {
		return Client{}, err
	}
	if err := json.Unmarshal([]byte(redirects), &c.RedirectURIs); err != nil {
		return Client{}, fmt.Errorf("client %q redirect_uris: %w", c.ID, err)
	}
	if err := json.Unmarshal([]byte(postLogout), &c.PostLogoutRedirectURIs); err != nil {
		return Client{}, fmt.Errorf("client %q post_logout_redirect_uris: %w", c.ID, err)
	}
	c.CreatedAt, c.UpdatedAt = fromUnix(created), fromUnix(updated)
	return c, nil
}

// clientArgs returns the values of a client's columns in clientColumns
// order; the caller has filled its defaults (clientDefaults).
func clientArgs(c Client) ([]any, error) {
	redirects, err := jsonList(c.RedirectURIs)
	if err != nil {
		return nil, err
	}
	postLogout, err := jsonList(c.PostLogoutRedirectURIs)
	if err != nil {
		return nil, err
	}
	return []any{c.ID, c.SecretHash, c.Public, redirects, postLogout, c.SkipConsent,
		c.BackchannelLogoutURI, unix(c.CreatedAt), unix(c.UpdatedAt), c.Name,
		c.Dynamic, c.ApplicationType, c.ClientURI, c.LogoURI, c.TOSURI, c.PolicyURI,
		c.IDTokenAlg, c.UserinfoAlg}, nil
}

// clientDefaults fills what a client left empty as it is stored.
func clientDefaults(c *Client) {
	if c.ApplicationType == "" {
		c.ApplicationType = ApplicationWeb
	}
	if c.IDTokenAlg == "" {
		c.IDTokenAlg = DefaultIDTokenAlg
	}
}

// jsonList encodes a list of strings, nil as [].
func jsonList(list []string) (string, error) {
	if list == nil {
		list = []string{}
	}
	b, err := json.Marshal(list)
	return string(b), err
}

// CreateClient registers a client. A taken ID gives ErrAlreadyExists.
func (s *Store) CreateClient(ctx context.Context, c Client) (Client, error) {
	now := s.now().UTC().Truncate(time.Second)
	c.CreatedAt, c.UpdatedAt = now, now
	clientDefaults(&c)
	args, err := clientArgs(c)
	if err != nil {
		return Client{}, err
	}
	_, err = s.exec(ctx, nil, `INSERT INTO clients (`+clientColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`, args...)
	if err != nil {
		return Client{}, s.wrapWrite(err, fmt.Sprintf("create client %q", c.ID))
	}
	return c, nil
}

// ClientByID returns the client with this ID, or ErrNotFound.
func (s *Store) ClientByID(ctx context.Context, id string) (Client, error) {
	c, err := scanClient(s.queryRow(ctx, nil, `SELECT `+clientColumns+` FROM clients WHERE id = $1`, id))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Client{}, fmt.Errorf("load client %q: %w", id, err)
	}
	return c, err
}

// ListClients returns every client, ordered by ID.
func (s *Store) ListClients(ctx context.Context) ([]Client, error) {
	rows, err := s.query(ctx, nil, `SELECT `+clientColumns+` FROM clients ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	defer rows.Close()
	clients := []Client{}
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, fmt.Errorf("list clients: %w", err)
		}
		clients = append(clients, c)
	}
	return clients, rows.Err()
}

// UpdateClient changes a client in one transaction with its row locked, as
// UpdateUser does. The ID cannot change.
func (s *Store) UpdateClient(ctx context.Context, id string, update func(*Client) error) (Client, error) {
	var out Client
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		c, err := scanClient(s.queryRow(ctx, tx, `SELECT `+clientColumns+` FROM clients WHERE id = $1`+s.dialect.forUpdate, id))
		if err != nil {
			return err
		}
		if err := update(&c); err != nil {
			return err
		}
		c.ID = id
		c.UpdatedAt = s.now().UTC().Truncate(time.Second)
		clientDefaults(&c)
		args, err := clientArgs(c)
		if err != nil {
			return err
		}
		// created_at (the eighth column) never changes.
		args = append(args[:7:7], args[8:]...)
		_, err = s.exec(ctx, tx, `UPDATE clients SET secret_hash = $2, public = $3, redirect_uris = $4,
			post_logout_redirect_uris = $5, skip_consent = $6, backchannel_logout_uri = $7, updated_at = $8, name = $9,
			dynamic = $10, application_type = $11, client_uri = $12, logo_uri = $13, tos_uri = $14, policy_uri = $15,
			id_token_signed_response_alg = $16, userinfo_signed_response_alg = $17
			WHERE id = $1`, args...)
		if err != nil {
			return fmt.Errorf("update client %q: %w", id, err)
		}
		out = c
		return nil
	})
	return out, err
}

// DeleteClient removes a client, or reports ErrNotFound.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	return s.deleteWhere(ctx, "clients", "id", id)
}

// UnusedClientGrace is how long a dynamic client may go unused before the
// purge deletes it: long enough for a user to finish signing in after the
// client registered (an authorization request lives 30 minutes by
// default, and counts as use while it lives).
const UnusedClientGrace = time.Hour

// unusedDynamicClient selects, in clients, the dynamic clients nobody
// uses: no token, no authorization request and no Matrix device names
// them. Such a client holds no session (the Matrix client-server API,
// "OAuth 2.0 API", lets a server delete registrations without one).
const unusedDynamicClient = `dynamic
	AND NOT EXISTS (SELECT 1 FROM tokens t WHERE t.client_id = clients.id)
	AND NOT EXISTS (SELECT 1 FROM auth_requests a WHERE a.client_id = clients.id)
	AND NOT EXISTS (SELECT 1 FROM matrix_devices d WHERE d.client_id = clients.id)`

// CountUnusedDynamicClients counts the dynamic clients nobody uses, of
// any age: the registrations that a global cap bounds.
func (s *Store) CountUnusedDynamicClients(ctx context.Context) (int, error) {
	var n int
	if err := s.queryRow(ctx, nil, `SELECT COUNT(*) FROM clients WHERE `+unusedDynamicClient).Scan(&n); err != nil {
		return 0, fmt.Errorf("count unused dynamic clients: %w", err)
	}
	return n, nil
}

// purgeUnusedClients are Purge's statements for dynamic clients unused
// for UnusedClientGrace since they registered: their remembered consents,
// then the clients. Their argument is the cut-off, in Unix seconds.
var purgeUnusedClients = []string{
	`DELETE FROM consents WHERE client_id IN (SELECT id FROM clients WHERE created_at <= $1 AND ` + unusedDynamicClient + `)`,
	`DELETE FROM clients WHERE created_at <= $1 AND ` + unusedDynamicClient,
}
