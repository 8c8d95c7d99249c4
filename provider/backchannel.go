package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mxidp/mxidp/keys"
	"github.com/mxidp/mxidp/storage"
)

// Backchannel delivers OpenID Back-Channel Logout 1.0 notices from the
// durable queue that ending a session fills (storage.EndSessions). Any
// instance may deliver any notice: claims are leased, so a notice is sent
// by one instance at a time and retried after a crash or restart.
type Backchannel struct {
	Store  *storage.Store
	Ring   *keys.Ring
	Issuer string
	Client *http.Client // with a timeout
	Logger *slog.Logger
	Now    func() time.Time

	wake chan struct{}
}

// Delivery tuning: a notice is retried with doubling delays from
// retryBase up to retryMax, and dropped after maxAttempts (about a day).
const (
	retryBase   = 5 * time.Second
	retryMax    = time.Hour
	maxAttempts = 30
	claimLease  = 2 * time.Minute
	claimBatch  = 20
)

// logoutEvent is the event member of a logout token (Back-Channel Logout §2.4).
const logoutEvent = "http://schemas.openid.net/event/backchannel-logout"

func (b *Backchannel) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}

// Wake asks the worker to look at the queue now, after a logout.
func (b *Backchannel) Wake() {
	select {
	case b.wakeChan() <- struct{}{}:
	default:
	}
}

func (b *Backchannel) wakeChan() chan struct{} {
	if b.wake == nil {
		b.wake = make(chan struct{}, 1)
	}
	return b.wake
}

// Run delivers due notices every poll interval, and at once when woken,
// until ctx ends. Notices queued by other processes (the command line, other
// instances) are found by the polling.
func (b *Backchannel) Run(ctx context.Context, poll time.Duration) {
	wake := b.wakeChan()
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		b.DeliverDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-wake:
		}
	}
}

// DeliverDue sends every notice that is due now.
func (b *Backchannel) DeliverDue(ctx context.Context) {
	for ctx.Err() == nil {
		batch, err := b.Store.ClaimDeliveries(ctx, claimBatch, claimLease)
		if err != nil {
			b.Logger.Warn("back-channel logout queue unavailable", "err", err)
			return
		}
		if len(batch) == 0 {
			return
		}
		for _, d := range batch {
			b.deliver(ctx, d)
		}
	}
}

func (b *Backchannel) deliver(ctx context.Context, d storage.Delivery) {
	err := b.post(ctx, d)
	if err == nil {
		b.Logger.Info("back-channel logout delivered", "client_id", d.ClientID, "attempts", d.Attempts+1)
		if err := b.Store.DeliveryDone(ctx, d.ID); err != nil {
			b.Logger.Warn("removing a delivered logout notice failed; it may be sent again", "err", err)
		}
		return
	}
	if d.Attempts+1 >= maxAttempts {
		b.Logger.Error("back-channel logout abandoned", "client_id", d.ClientID, "attempts", d.Attempts+1, "err", err)
		b.Store.DeliveryDone(ctx, d.ID)
		return
	}
	delay := retryBase << min(d.Attempts, 20)
	delay = min(delay, retryMax)
	b.Logger.Warn("back-channel logout failed; will retry", "client_id", d.ClientID, "attempts", d.Attempts+1, "retry_in", delay, "err", err)
	if err := b.Store.DeliveryFailed(ctx, d.ID, b.now().Add(delay), oneLineError(err)); err != nil {
		b.Logger.Warn("recording a failed logout notice failed", "err", err)
	}
}

func oneLineError(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) > 500 {
		s = s[:500]
	}
	return s
}

// post sends one logout token; any 2xx is success (Back-Channel Logout §2.8).
func (b *Backchannel) post(ctx context.Context, d storage.Delivery) error {
	token, err := b.LogoutToken(ctx, d)
	if err != nil {
		return err
	}
	form := url.Values{"logout_token": {token}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URI, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	// A redirect is not followed: the logout token is for the address the
	// client registered, and a 307 or 308 would post it elsewhere. It
	// counts as a failed delivery, retried like one.
	client := *b.Client
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s answered %s", d.URI, resp.Status)
	}
	return nil
}

// LogoutToken signs the logout token for one notice (Back-Channel Logout
// §2.4, as Synapse synapse/handlers/oidc.py checks it): iss, aud, iat,
// exp, jti, sub, sid and the logout event, never a nonce; header typ
// logout+jwt, with the kid of the key that signs now with the client's
// ID token algorithm (a client verifies both with the same settings; one
// removed since is sent RS256).
func (b *Backchannel) LogoutToken(ctx context.Context, d storage.Delivery) (string, error) {
	alg := keys.DefaultAlgorithm
	c, err := b.Store.ClientByID(ctx, d.ClientID)
	switch {
	case err == nil:
		alg = idTokenAlg(c)
	case !errors.Is(err, storage.ErrNotFound):
		return "", err
	}
	now := b.now()
	claims := map[string]any{
		"iss":    b.Issuer,
		"aud":    d.ClientID,
		"iat":    now.Unix(),
		"exp":    now.Add(2 * time.Minute).Unix(),
		"jti":    newID(),
		"sub":    d.Subject,
		"sid":    d.SessionID,
		"events": map[string]any{logoutEvent: map[string]any{}},
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	return b.Ring.Sign(alg, "logout+jwt", payload)
}
