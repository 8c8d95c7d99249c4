package provider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mxidp/mxidp/provider/password"
	"github.com/mxidp/mxidp/storage"
)

// ErrBadCredentials is the one answer to an unknown user, a wrong
// password or a disabled account, so that none of them can be told apart.
var ErrBadCredentials = errors.New("unknown user or wrong password")

// ErrAccountDisabled is the ErrBadCredentials of a right password for a
// disabled account. Doors that may say so to whoever knows the password
// (Matrix's /login answers M_USER_DEACTIVATED) tell it apart; it costs the
// same as any other refusal, so that it tells nothing to anyone else.
var ErrAccountDisabled = fmt.Errorf("%w: the account is disabled", ErrBadCredentials)

// Login checks passwords and keeps browser sessions. The login page and
// the REST service both decide passwords here, so every rule (hash
// upgrades, disabled accounts, throttling and audit) holds at both doors.
type Login struct {
	// Store keeps sessions (and, for builtin users, the accounts).
	Store *storage.Store
	// Users is where accounts come from; nil means Store.
	Users     storage.Users
	Hash      password.Params
	Lifetimes Lifetimes
	Logger    *slog.Logger
	Now       func() time.Time
	// OpenID ends sessions (with back-channel logout) when a browser logs
	// in as someone else.
	OpenID *OpenID

	dummyOnce sync.Once
	dummy     string

	slotsOnce sync.Once
	slots     chan struct{}

	// Throttle limits password checks; nil means DefaultThrottle.
	Throttle *ThrottlePolicy
	// badHashes remembers the users whose unusable hash was logged.
	badHashes sync.Map
	// dummyCost and storedCost average the checks of the dummy hash and of
	// stored hashes, to pad refusals to one length (timing.go).
	dummyCost, storedCost costAverage

	// Observe, when set, hears the result of every password check:
	// "succeeded", "failed", "throttled", "oversized" (refused unchecked,
	// see MaxLoginLength) or "error", with the door.
	Observe func(door, result string)

	// oversized counts oversized attempts since oversizedLogged (Unix
	// milliseconds), when one was last logged.
	oversized, oversizedLogged atomic.Int64
}

func (l *Login) observe(door, result string) {
	if l.Observe != nil {
		l.Observe(door, result)
	}
}

// hashSlot waits for one of GOMAXPROCS slots for a password hash. Each
// argon2id check holds its memory cost (19 MiB by default); running more
// at once than there are cores only adds page faults and memory, so a
// flood of logins queues here instead (bounded by the request's deadline).
func (l *Login) hashSlot(ctx context.Context) (release func(), err error) {
	l.slotsOnce.Do(func() { l.slots = make(chan struct{}, runtime.GOMAXPROCS(0)) })
	select {
	case l.slots <- struct{}{}:
		return func() { <-l.slots }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting to check a password: %w", ctx.Err())
	}
}

func (l *Login) users() storage.Users {
	if l.Users != nil {
		return l.Users
	}
	return l.Store
}

// UserByID loads an account from wherever accounts come from.
func (l *Login) UserByID(ctx context.Context, id string) (storage.User, error) {
	return l.users().UserByID(ctx, id)
}

func (l *Login) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// dummyHash is verified for unknown users, so that they cost as much as a
// wrong password.
func (l *Login) dummyHash() string {
	l.dummyOnce.Do(func() {
		h, err := password.Hash(newSecret(), l.Hash)
		if err != nil {
			l.Logger.Error("making the dummy password hash failed", "err", err)
		}
		l.dummy = h
	})
	return l.dummy
}

// Attempt is one password check: what was typed, and where it came from.
type Attempt struct {
	Login, Password string
	// Network is the client's IP address, or "" where the caller cannot
	// know it (the REST service only ever sees Synapse or ma1sd).
	Network string
	// Door says where the password came in, for the audit log: "login
	// page" or "rest".
	Door     string
	ClientID string // the OpenID client the login is for, when known
}

// The longest login name and password a check looks at, in bytes. No
// account has a longer name: a Matrix user ID has at most 255 bytes (Matrix
// specification, "User Identifiers"), an e-mail address fits a path of 256
// octets (RFC 5321 §4.5.3.1.3). Synapse registers passwords of up to 512
// characters (Synapse synapse/rest/client/register.py); longer ones would
// only make some hash formats (phpass, SHA-crypt) work longer.
const (
	MaxLoginLength    = 256
	MaxPasswordLength = 1024
)

// CheckPassword returns the enabled user whose username (or verified
// e-mail address) is a.Login and whose password is a.Password. Every check
// is throttled first (see ThrottlePolicy) and recorded in the audit log.
// Unknown users, wrong passwords, disabled accounts and unusable hashes
// cost the same work and give the same ErrBadCredentials. A hash of
// another format or cost in mxidp's own table is replaced by one of the
// current cost. A login name or password longer than MaxLoginLength or
// MaxPasswordLength is refused at once: it cannot be anyone's, and it
// is neither counted nor recorded, so that a flood of them writes nothing.
func (l *Login) CheckPassword(ctx context.Context, a Attempt) (storage.User, error) {
	if len(a.Login) > MaxLoginLength || len(a.Password) > MaxPasswordLength {
		l.refuseOversized(a)
		return storage.User{}, ErrBadCredentials
	}
	event := storage.AuditEvent{Username: strings.ToLower(strings.TrimSpace(a.Login)), ClientID: a.ClientID, Network: a.Network}
	keys, err := l.admit(ctx, a)
	if err != nil {
		l.refused(ctx, a, err, storage.User{})
		return storage.User{}, err
	}
	// verify ends the checks under keys, with its own.
	u, reason, wait, err := l.verify(ctx, a, keys)
	pad(ctx, wait) // outside the hash slot: waiting costs no CPU
	var te *ThrottledError
	switch {
	case err == nil:
		l.observe(a.Door, "succeeded")
		event.Event, event.UserID, event.Username, event.Detail = "login.succeeded", u.ID, u.Username, a.Door
	case errors.Is(err, ErrBadCredentials):
		l.observe(a.Door, "failed")
		event.Event, event.UserID, event.Detail = "login.failed", u.ID, a.Door+": "+reason
	case errors.As(err, &te):
		// The account, found by another name, is held off: this name's
		// check decided nothing.
		l.refused(ctx, a, err, u)
		return storage.User{}, err
	default:
		l.observe(a.Door, "error") // not the user's doing
		return storage.User{}, err
	}
	l.audit(ctx, event)
	if err != nil {
		return storage.User{}, err
	}
	return u, nil
}

// refused reports a check that was not admitted: a ThrottledError is
// observed and counted into its key's audit row (u is the account when the
// account's own key refused); anything else is an error.
func (l *Login) refused(ctx context.Context, a Attempt, err error, u storage.User) {
	var te *ThrottledError
	if !errors.As(err, &te) {
		l.observe(a.Door, "error")
		return
	}
	l.observe(a.Door, "throttled")
	l.auditThrottled(ctx, a, te, u)
}

// oversizedLogEvery is how often a flood of oversized attempts is logged.
const oversizedLogEvery = time.Minute

// refuseOversized observes an attempt too long to check and logs it (at
// most once per oversizedLogEvery, with the number refused meanwhile),
// without what was typed.
func (l *Login) refuseOversized(a Attempt) {
	l.observe(a.Door, "oversized")
	n := l.oversized.Add(1)
	now := l.now().UnixMilli()
	last := l.oversizedLogged.Load()
	if now-last < oversizedLogEvery.Milliseconds() || !l.oversizedLogged.CompareAndSwap(last, now) {
		return
	}
	l.oversized.Add(-n)
	l.Logger.Info("refused password checks whose login name or password is too long, without checking or recording them",
		"door", a.Door, "network", a.Network, "login_bytes", len(a.Login), "password_bytes", len(a.Password),
		"max_login_bytes", MaxLoginLength, "max_password_bytes", MaxPasswordLength, "refused", n)
}

// verify looks the login name up and decides the password. A refusal is
// ErrBadCredentials with the reason for the audit log (and the user, when
// known, for its ID), and how long the caller must wait before answering so
// that every refusal takes the same time (see timing.go). A known account
// is admitted under its own throttle key first; when that refuses, the
// error is a ThrottledError and the user is the account. verify ends every
// check it was admitted to, under keys (the attempt's, admitted by the
// caller) and the account's own, in one statement where it can: a wrong
// password ends them as failures, anything short of a decision as
// undecided.
func (l *Login) verify(ctx context.Context, a Attempt, keys []throttleKey) (storage.User, string, time.Duration, error) {
	// The hash slot bounds the lookups too: a flood of logins queues
	// before reaching the user store.
	release, err := l.hashSlot(ctx)
	if err != nil {
		l.finish(ctx, keys, undecided)
		return storage.User{}, "", 0, err
	}
	u, err := l.users().UserByLogin(ctx, a.Login)
	if errors.Is(err, storage.ErrNotFound) {
		took := l.checkDummy(a.Password)
		release()
		l.finish(ctx, keys, wrong)
		return storage.User{}, "unknown user", l.padding(took), ErrBadCredentials
	}
	release() // waiting for the account's counter holds no slot
	if err != nil {
		l.finish(ctx, keys, undecided)
		return storage.User{}, "", 0, err
	}
	// What a known account costs beyond its hash (admitting and finishing
	// the check under its own throttle key) is part of its check's time,
	// which refusals are padded to; waiting (for other checks of the
	// account, for a hash slot) is not: it is no work, and would skew the
	// average.
	start := time.Now()
	own, waited, err := l.admitUser(ctx, u.ID)
	if err != nil {
		l.finish(ctx, keys, undecided)
		return storage.User{ID: u.ID, Username: u.Username}, "", 0, err
	}
	keys = append(slices.Clip(keys), own...)
	var took time.Duration
	if !waited {
		took = time.Since(start)
	}
	release, err = l.hashSlot(ctx)
	if err != nil {
		l.finish(ctx, keys, undecided)
		return storage.User{}, "", 0, err
	}
	start = time.Now()
	ok, err := password.Verify(u.PasswordHash, a.Password)
	usable := err == nil
	if !usable {
		l.checkDummy(a.Password) // the same work as a wrong password
	}
	release()
	var reason string
	refusal := ErrBadCredentials
	switch {
	case !usable:
		if _, seen := l.badHashes.LoadOrStore(u.ID, true); !seen {
			// The user ID, never the hash, goes into the log.
			l.Logger.Warn("stored password hash is unusable; the user cannot log in with a password", "user_id", u.ID, "err", err)
		}
		reason = "unusable password hash"
	case !ok:
		reason = "wrong password"
	case u.Disabled:
		reason, refusal = "account disabled", ErrAccountDisabled
	}
	if reason == "" {
		l.finish(ctx, keys, right)
	} else {
		l.finish(ctx, keys, wrong)
	}
	took += time.Since(start)
	if usable {
		l.storedCost.add(took)
	}
	if reason != "" {
		return storage.User{ID: u.ID}, reason, l.padding(took), refusal
	}
	// Only mxidp's own table is written; a platform keeps its hashes.
	if _, builtin := l.users().(*storage.Store); builtin && password.NeedsRehash(u.PasswordHash, l.Hash) {
		l.upgradeHash(ctx, u, a.Password)
	}
	return u, "", 0, nil
}

func (l *Login) upgradeHash(ctx context.Context, u storage.User, pw string) {
	h, err := password.Hash(pw, l.Hash)
	if err == nil {
		_, err = l.Store.UpdateUser(ctx, u.ID, func(u *storage.User) error {
			u.PasswordHash = h
			return nil
		})
	}
	if err != nil {
		// The login succeeds anyway; the next one tries again.
		l.Logger.Warn("upgrading a password hash failed", "user_id", u.ID, "err", err)
	}
}

// NeedsConsent reports whether the user must be asked before client gets
// what the request asks for: never for clients registered to skip consent,
// always for prompt=consent, and otherwise unless a remembered decision
// covers every requested scope.
func (l *Login) NeedsConsent(ctx context.Context, a storage.AuthRequest, c storage.Client, userID string) (bool, error) {
	if c.SkipConsent {
		return false, nil
	}
	if slices.Contains(a.Prompt, "consent") {
		return true, nil
	}
	allowed, err := l.Store.ConsentedScopes(ctx, userID, c.ID)
	if err != nil {
		return false, err
	}
	for _, s := range a.Scopes {
		if !slices.Contains(allowed, s) {
			return true, nil
		}
	}
	return false, nil
}
