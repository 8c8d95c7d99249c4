package provider

import (
	"context"
	"slices"
	"time"

	"github.com/mxidp/mxidp/storage"
)

// SessionCookie is the name of the browser-session cookie.
const SessionCookie = "mxidp_session"

// StartSession records that a browser authenticated u now. A browser that
// already had a session of the same user keeps its sid (with a fresh
// authentication time); a session of another user is ended first. It
// returns the new cookie value ("" when the old cookie stays valid).
func (l *Login) StartSession(ctx context.Context, current *storage.Session, u storage.User) (storage.Session, string, error) {
	now := l.now()
	if current != nil && current.UserID == u.ID {
		if err := l.Store.TouchSession(ctx, current.ID, now); err != nil {
			return storage.Session{}, "", err
		}
		current.AuthTime = now
		return *current, "", nil
	}
	if current != nil && l.OpenID != nil {
		if err := l.OpenID.endSessions(ctx, current.ID, true); err != nil {
			return storage.Session{}, "", err
		}
	}
	cookie := newSecret()
	s := storage.Session{ID: newID(), TokenHash: hashSecret(cookie), UserID: u.ID, AuthTime: now,
		CreatedAt: now, ExpiresAt: now.Add(l.Lifetimes.Session)}
	if err := l.Store.CreateSession(ctx, s); err != nil {
		return storage.Session{}, "", err
	}
	return s, cookie, nil
}

// Session returns the live session a cookie refers to, whose user may
// still log in.
func (l *Login) Session(ctx context.Context, cookie string) (storage.Session, error) {
	if cookie == "" {
		return storage.Session{}, storage.ErrNotFound
	}
	s, err := l.Store.SessionByTokenHash(ctx, hashSecret(cookie))
	if err != nil {
		return storage.Session{}, err
	}
	u, err := l.UserByID(ctx, s.UserID)
	if err != nil || u.Disabled {
		return storage.Session{}, storage.ErrNotFound
	}
	return s, nil
}

// Complete marks an authorization request as authenticated by session s.
func (l *Login) Complete(ctx context.Context, authRequestID string, s storage.Session) error {
	return l.Store.CompleteAuthRequest(ctx, authRequestID, s.UserID, s.ID, s.AuthTime, []string{"pwd"})
}

// SatisfiedBy reports whether an existing session may answer a request
// without asking for the password again: not when the client asked for a
// fresh login (prompt=login) or the authentication is older than max_age.
func (l *Login) SatisfiedBy(a storage.AuthRequest, s storage.Session) bool {
	if slices.Contains(a.Prompt, "login") {
		return false
	}
	if a.MaxAge != nil && l.now().Sub(s.AuthTime) > time.Duration(*a.MaxAge)*time.Second {
		return false
	}
	return true
}
