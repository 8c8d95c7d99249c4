package provider

import (
	"context"
	"crypto/subtle"
	"slices"
	"time"

	"github.com/mxidp/mxidp/storage"
)

// SessionCookie is the name of the browser-session cookie (with the
// __Host- prefix under https, see web).
const SessionCookie = "mxidp_session"

// StartSession records that a browser authenticated u now, always as a
// new session with a new cookie and a new sid, so that a cookie known
// before the login (planted, or read off a shared machine) is worth
// nothing after it. A session of the same user that the browser held is
// retired into the new one (its clients are told of the logout when the
// new session ends); a session of another user is ended first.
func (l *Login) StartSession(ctx context.Context, current *storage.Session, u storage.User) (storage.Session, string, error) {
	now := l.now()
	if current != nil && current.UserID != u.ID && l.OpenID != nil {
		if err := l.OpenID.endSessions(ctx, current.ID, true); err != nil {
			return storage.Session{}, "", err
		}
	}
	cookie := newSecret()
	s := storage.Session{ID: newID(), TokenHash: hashSecret(cookie), UserID: u.ID, AuthTime: now,
		CreatedAt: now, ExpiresAt: now.Add(l.Lifetimes.Session)}
	var err error
	if current != nil && current.UserID == u.ID {
		err = l.Store.ReplaceSession(ctx, current.ID, s)
	} else {
		err = l.Store.CreateSession(ctx, s)
	}
	if err != nil {
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

// RequestAndSession loads an authorization request together with the
// session that completed it, in one statement, and reports whether cookie
// is that live session's cookie. It does not read the user: the callback
// needs none, and a user disabled meanwhile gets no token, since the
// token endpoint loads the user to fill the ID token (SetUserinfoFromRequest)
// and refuses a disabled one, and disabling a user ends their sessions.
func (l *Login) RequestAndSession(ctx context.Context, id, cookie string) (storage.AuthRequest, bool, error) {
	a, s, err := l.Store.AuthRequestWithSession(ctx, id)
	if err != nil {
		return storage.AuthRequest{}, false, err
	}
	ours := cookie != "" && s.ID != "" && subtle.ConstantTimeCompare([]byte(hashSecret(cookie)), []byte(s.TokenHash)) == 1
	return a, ours, nil
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
