// Package synapse calls the API that Synapse serves for its authentication
// service under /_synapse/mas/ when its matrix_authentication_service
// section is enabled (Synapse synapse/rest/synapse/mas/): mxidp creates
// users and devices there before a token is used, and deletes devices when
// their logins end.
package synapse

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client calls one Synapse's /_synapse/mas/ API with the shared secret.
type Client struct {
	// URL is Synapse's client-server listener as mxidp reaches it.
	URL string
	// Secret is the secret shared with Synapse
	// (matrix_authentication_service.secret or secret_path there).
	Secret string
	// HTTP sends the requests; nil means a client with a 10 s timeout.
	HTTP *http.Client
}

// Error is an answer of Synapse other than success.
type Error struct {
	Call    string
	Status  int
	ErrCode string // Matrix errcode, when the body had one
	Message string
}

func (e *Error) Error() string {
	if e.ErrCode != "" {
		return fmt.Sprintf("synapse %s: %d %s: %s", e.Call, e.Status, e.ErrCode, e.Message)
	}
	return fmt.Sprintf("synapse %s: HTTP %d", e.Call, e.Status)
}

// IsNotFound reports whether err is Synapse's 404 (no such user).
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

var defaultHTTP = &http.Client{Timeout: 10 * time.Second}

// maxAnswer bounds what is read of an answer: Synapse's are a few bytes.
const maxAnswer = 64 << 10

// call sends one request and decodes a JSON answer into out (may be nil).
func (c *Client) call(ctx context.Context, method, name string, query url.Values, body, out any) error {
	u := strings.TrimRight(c.URL, "/") + "/_synapse/mas/" + name
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("synapse %s: %w", name, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Secret)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	h := c.HTTP
	if h == nil {
		h = defaultHTTP
	}
	resp, err := h.Do(req)
	if err != nil {
		// The error names the URL, never the secret (it is in a header).
		return fmt.Errorf("synapse %s: %w", name, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("synapse %s: %w", name, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := &Error{Call: name, Status: resp.StatusCode}
		var m struct {
			ErrCode string `json:"errcode"`
			Error   string `json:"error"`
		}
		if json.Unmarshal(data, &m) == nil {
			e.ErrCode, e.Message = m.ErrCode, m.Error
		}
		return e
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("synapse %s: unreadable answer: %w", name, err)
		}
	}
	return nil
}

// User is Synapse's view of a user (query_user).
type User struct {
	UserID        string  `json:"user_id"`
	DisplayName   *string `json:"display_name"`
	AvatarURL     *string `json:"avatar_url"`
	IsSuspended   bool    `json:"is_suspended"`
	IsDeactivated bool    `json:"is_deactivated"`
}

// QueryUser looks a user up; a user Synapse does not have is an error
// for which IsNotFound holds.
func (c *Client) QueryUser(ctx context.Context, localpart string) (User, error) {
	var u User
	err := c.call(ctx, http.MethodGet, "query_user", url.Values{"localpart": {localpart}}, nil, &u)
	return u, err
}

// Provision is what provision_user sets. Nil fields are left as they are.
type Provision struct {
	Localpart   string
	DisplayName *string
	AvatarURL   *string
	Emails      []string // nil: left as they are; empty: removed
	Locked      *bool
}

// ProvisionUser creates the user if Synapse does not have it and sets
// what p says. Synapse answers 201 for a new user, 200 for an update.
func (c *Client) ProvisionUser(ctx context.Context, p Provision) error {
	body := map[string]any{"localpart": p.Localpart}
	if p.DisplayName != nil {
		if *p.DisplayName == "" {
			body["unset_displayname"] = true
		} else {
			body["set_displayname"] = *p.DisplayName
		}
	}
	if p.AvatarURL != nil {
		if *p.AvatarURL == "" {
			body["unset_avatar_url"] = true
		} else {
			body["set_avatar_url"] = *p.AvatarURL
		}
	}
	if p.Emails != nil {
		if len(p.Emails) == 0 {
			body["unset_emails"] = true
		} else {
			body["set_emails"] = p.Emails
		}
	}
	if p.Locked != nil {
		body["locked"] = *p.Locked
	}
	return c.call(ctx, http.MethodPost, "provision_user", nil, body, nil)
}

// UpsertDevice creates a user's device, or renames it if it exists.
func (c *Client) UpsertDevice(ctx context.Context, localpart, deviceID, displayName string) error {
	body := map[string]any{"localpart": localpart, "device_id": deviceID}
	if displayName != "" {
		body["display_name"] = displayName
	}
	return c.call(ctx, http.MethodPost, "upsert_device", nil, body, nil)
}

// DeleteDevice deletes a user's device with its tokens and keys. A device
// or user Synapse does not have is not an error: it is gone either way.
func (c *Client) DeleteDevice(ctx context.Context, localpart, deviceID string) error {
	err := c.call(ctx, http.MethodPost, "delete_device", nil,
		map[string]any{"localpart": localpart, "device_id": deviceID}, nil)
	if IsNotFound(err) {
		return nil
	}
	return err
}

// SyncDevices makes the user's devices in Synapse exactly deviceIDs.
func (c *Client) SyncDevices(ctx context.Context, localpart string, deviceIDs []string) error {
	if deviceIDs == nil {
		deviceIDs = []string{}
	}
	return c.call(ctx, http.MethodPost, "sync_devices", nil,
		map[string]any{"localpart": localpart, "devices": deviceIDs}, nil)
}

// AllowCrossSigningReset lets the user replace their cross-signing keys
// without further authentication for a short while (ten minutes in
// Synapse), after they confirmed it at mxidp.
func (c *Client) AllowCrossSigningReset(ctx context.Context, localpart string) error {
	return c.call(ctx, http.MethodPost, "allow_cross_signing_reset", nil, map[string]any{"localpart": localpart}, nil)
}
