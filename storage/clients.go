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
}

const clientColumns = `id, secret_hash, public, redirect_uris, post_logout_redirect_uris,
	skip_consent, backchannel_logout_uri, created_at, updated_at, name`

func scanClient(row interface{ Scan(...any) error }) (Client, error) {
	var c Client
	var redirects, postLogout string
	var created, updated int64
	err := row.Scan(&c.ID, &c.SecretHash, &c.Public, &redirects, &postLogout,
		&c.SkipConsent, &c.BackchannelLogoutURI, &created, &updated, &c.Name)
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
// order.
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
		c.BackchannelLogoutURI, unix(c.CreatedAt), unix(c.UpdatedAt), c.Name}, nil
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
	args, err := clientArgs(c)
	if err != nil {
		return Client{}, err
	}
	_, err = s.exec(ctx, nil, `INSERT INTO clients (`+clientColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, args...)
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
		args, err := clientArgs(c)
		if err != nil {
			return err
		}
		// created_at ($8) never changes.
		args = append(args[:7], unix(c.UpdatedAt), c.Name)
		_, err = s.exec(ctx, tx, `UPDATE clients SET secret_hash = $2, public = $3, redirect_uris = $4,
			post_logout_redirect_uris = $5, skip_consent = $6, backchannel_logout_uri = $7, updated_at = $8, name = $9
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
