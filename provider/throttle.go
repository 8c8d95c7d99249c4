package provider

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mxidp/mxidp/clientip"
	"github.com/mxidp/mxidp/storage"
)

// ThrottlePolicy limits password checks per login name, per account and
// per client network, with counters in the database that every instance
// shares. The login name (as typed) is counted before the account is looked
// up, so that unknown names are throttled exactly like real ones; the
// account (by its ID) after, so that its username, its e-mail address and
// any other spelling a platform's database finds it by share one
// allowance.
//
// A key's first Burst checks run at once; each further check waits a delay
// that doubles from BaseDelay up to MaxDelay, and checks that come sooner
// are refused without looking at the password. A correct password after
// the wait logs in and clears the login name's counter, so an attacker can
// slow the owner down but not lock them out, unless HardLock is chosen:
// then a login name that reached its burst is refused, right password or
// not, until ForgetAfter has passed or an operator runs `mxidp user
// unlock`. Counts older than ForgetAfter are forgotten.
type ThrottlePolicy struct {
	AccountBurst int // checks per login name and per account before delays begin; 0 turns the account limit off
	NetworkBurst int // checks per client network (IPv4 address, IPv6 /64); 0 turns it off
	BaseDelay    time.Duration
	MaxDelay     time.Duration
	ForgetAfter  time.Duration
	HardLock     bool
}

// DefaultThrottle: five tries per login name, then 1 s, 2 s, 4 s … up to
// 10 min between tries (about 150 guesses a day at most); thirty per
// network, so that a household or a school behind one address is not
// slowed by one forgetful user; counts forgotten after a day.
var DefaultThrottle = ThrottlePolicy{
	AccountBurst: 5, NetworkBurst: 30,
	BaseDelay: time.Second, MaxDelay: 10 * time.Minute, ForgetAfter: 24 * time.Hour,
}

// Validate reports settings the throttle cannot work with.
func (p ThrottlePolicy) Validate() error {
	switch {
	case p.AccountBurst < 0 || p.NetworkBurst < 0:
		return fmt.Errorf("bursts must be 0 (off) or more")
	case p.BaseDelay <= 0 || p.MaxDelay < p.BaseDelay:
		return fmt.Errorf("need 0 < base_delay ≤ max_delay")
	case p.ForgetAfter < p.MaxDelay:
		return fmt.Errorf("forget_after must be at least max_delay")
	}
	return nil
}

// delays returns the wait after the n-th counted check of a key whose
// burst is burst.
func (p ThrottlePolicy) delays(burst int, hardLock bool) func(n int64) time.Duration {
	return func(n int64) time.Duration {
		switch {
		case n < int64(burst):
			return 0
		case hardLock:
			return p.ForgetAfter
		}
		d := p.BaseDelay << min(n-int64(burst), 40)
		if d <= 0 || d > p.MaxDelay {
			return p.MaxDelay
		}
		return d
	}
}

// ThrottledError refuses a check that came before its key's delay ran out.
type ThrottledError struct {
	Key        string // "account" or "network"
	RetryAfter time.Duration

	counter string // the throttle key that refused, e.g. "network:192.0.2.1"
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many password checks for this %s; try again in %s", e.Key, e.RetryAfter.Round(time.Second))
}

// throttleKey is one counter an attempt is admitted under.
type throttleKey struct {
	kind, key string // kind: "account" or "network"
	// wide marks an IPv6 site's (/48's) counter, whose burst (and the
	// start of its delays) is clientip.SiteNetworks networks' worth.
	wide bool
}

// burst is the allowance of key k under p.
func (p ThrottlePolicy) burst(k throttleKey) int {
	switch {
	case k.kind == "account":
		return p.AccountBurst
	case k.wide:
		return p.NetworkBurst * clientip.SiteNetworks
	default:
		return p.NetworkBurst
	}
}

func (l *Login) policy() ThrottlePolicy {
	if l.Throttle != nil {
		return *l.Throttle
	}
	return DefaultThrottle
}

// throttleKeys lists the counters an attempt is admitted under before its
// account is looked up: its client network first, so that a network that
// is held off writes no counter for each name it tries, then its login name
// as typed.
func (l *Login) throttleKeys(a Attempt) []throttleKey {
	p := l.policy()
	var keys []throttleKey
	if n, site := clientip.Networks(a.Network); n != "" && p.NetworkBurst > 0 {
		keys = append(keys, throttleKey{kind: "network", key: "network:" + n})
		if site != "" {
			keys = append(keys, throttleKey{kind: "network", key: "network:" + site, wide: true})
		}
	}
	if p.AccountBurst > 0 {
		keys = append(keys, loginKey(a.Login))
	}
	return keys
}

// loginKey is the counter of a login name as typed.
func loginKey(login string) throttleKey {
	return throttleKey{kind: "account", key: "account:" + strings.ToLower(strings.TrimSpace(login))}
}

// userKey is the counter of an account, whatever name it was found by.
func userKey(userID string) throttleKey {
	return throttleKey{kind: "account", key: "user:" + userID}
}

// admitUser admits a check under the account the login name was found
// to be, or refuses it (ThrottledError) when that account's allowance is
// spent, by whichever of its names. waited says whether it had to wait for
// other checks of the account.
func (l *Login) admitUser(ctx context.Context, userID string) (keys []throttleKey, waited bool, err error) {
	p := l.policy()
	if p.AccountBurst <= 0 {
		return nil, false, nil
	}
	k := userKey(userID)
	if waited, err = l.admitOne(ctx, k, int64(p.AccountBurst), p.ForgetAfter); err != nil {
		return nil, waited, err
	}
	return []throttleKey{k}, waited, nil
}

// admit asks each of the attempt's keys for a check, waiting while
// earlier checks of the same key are under way, or refuses the attempt
// with a ThrottledError. It returns the keys it was admitted under.
func (l *Login) admit(ctx context.Context, a Attempt) ([]throttleKey, error) {
	p := l.policy()
	keys := l.throttleKeys(a)
	common := make([]storage.ThrottleKey, len(keys))
	for i, k := range keys {
		common[i] = storage.ThrottleKey{Key: k.key, Burst: int64(p.burst(k))}
	}
	// Usually every key has room: one statement admits them all. The
	// others are asked for one by one, in order, as before.
	fast, err := l.Store.AdmitCommon(ctx, common, p.ForgetAfter)
	if err != nil {
		return nil, err
	}
	// Keys are held in order only: a request that must wait for a key (or
	// is refused by it) holds none that come after it. Otherwise a request
	// waiting for its busy network would keep a place of the login name
	// it names, and an attacker could park enough of them to lock the
	// owner out of their login name from every network, without a guess
	// (and, waiting in a cycle, such requests could hold each other up).
	// What the one statement admitted past the first key it did not is
	// given back, and asked for again in its turn.
	n := 0
	for n < len(keys) && fast[keys[n].key] {
		n++
	}
	admitted := slices.Clip(keys[:n])
	var back []throttleKey
	for _, k := range keys[n:] {
		if fast[k.key] {
			back = append(back, k)
		}
	}
	l.finish(ctx, back, undecided)
	for _, k := range keys[n:] {
		if _, err := l.admitOne(ctx, k, int64(p.burst(k)), p.ForgetAfter); err != nil {
			l.finish(ctx, admitted, undecided)
			return nil, err
		}
		admitted = append(admitted, k)
	}
	return admitted, nil
}

// admitOne waits for key's admission: while the key's allowance is taken
// by checks under way it asks again, a little later each time. waited
// says whether it did.
func (l *Login) admitOne(ctx context.Context, k throttleKey, burst int64, forgetAfter time.Duration) (waited bool, err error) {
	wait := 5 * time.Millisecond
	for {
		adm, err := l.Store.Admit(ctx, k.key, burst, forgetAfter)
		switch {
		case err != nil:
			return waited, err
		case adm.Admitted:
			return waited, nil
		case !adm.Busy:
			return waited, &ThrottledError{Key: k.kind, RetryAfter: adm.RetryAfter, counter: k.key}
		}
		waited = true
		select {
		case <-ctx.Done():
			return waited, fmt.Errorf("waiting for earlier password checks of this %s: %w", k.kind, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// outcome is how an admitted check ended.
type outcome int

const (
	undecided outcome = iota // no password was decided (a deadline, a failing user store)
	wrong
	right
)

// finish records how admitted checks ended. It runs even when the request
// was cancelled meanwhile: a guess whose client hung up still counts.
func (l *Login) finish(ctx context.Context, keys []throttleKey, o outcome) {
	ctx = context.WithoutCancel(ctx)
	p := l.policy()
	if o != wrong {
		// Nothing is computed from the rows: one statement ends them all.
		var all, forget []string
		for _, k := range keys {
			all = append(all, k.key)
			if k.kind == "account" {
				forget = append(forget, k.key)
			}
		}
		if err := l.Store.FinishMany(ctx, all, forget, o == right); err != nil {
			l.Logger.Warn("updating a throttle counter failed", "err", err)
		}
		return
	}
	for _, k := range keys {
		var err error
		if k.kind == "account" {
			err = l.Store.Finish(ctx, k.key, true, true, p.delays(p.AccountBurst, p.HardLock))
		} else {
			err = l.Store.Finish(ctx, k.key, true, false, p.delays(p.burst(k), false))
		}
		if err != nil {
			l.Logger.Warn("updating a throttle counter failed", "err", err)
		}
	}
}

// Unlock clears the throttle counters of a user: the account's and its
// login names' (the username and the e-mail address; `mxidp user unlock`).
func (a *Accounts) Unlock(ctx context.Context, username string) error {
	u, err := a.User(ctx, username)
	if err != nil {
		return err
	}
	keys := []throttleKey{userKey(u.ID), loginKey(u.Username)}
	if u.Email != "" {
		keys = append(keys, loginKey(u.Email))
	}
	for _, k := range keys {
		if err := a.Store.ClearThrottle(ctx, k.key); err != nil {
			return err
		}
	}
	return a.audit(ctx, nil, storage.AuditEvent{Event: "user.unlocked", UserID: u.ID, Username: u.Username})
}

// audit records a security event; a failure is logged, never fatal.
func (l *Login) audit(ctx context.Context, e storage.AuditEvent) {
	if err := l.Store.AddAuditEvent(context.WithoutCancel(ctx), e); err != nil {
		l.Logger.Warn("recording an audit event failed", "event", e.Event, "err", err)
	}
}

// throttledWindow is how long the refusals of one throttle key share one
// audit row: a flood of refused checks costs a row per key and hour, not
// a row each.
const throttledWindow = time.Hour

// auditThrottled records a refused check in the row of the key that
// refused it. The row names what the key counts: the login name as typed,
// the account (u, found by the lookup), or the network, whose refusals
// cover many names and so name none.
func (l *Login) auditThrottled(ctx context.Context, a Attempt, te *ThrottledError, u storage.User) {
	e := storage.AuditEvent{Event: "login.throttled", ClientID: a.ClientID, Network: a.Network,
		Detail: fmt.Sprintf("by %s; next check in %s", te.Key, te.RetryAfter.Round(time.Second))}
	if a.Door != "" {
		e.Detail = a.Door + ", " + e.Detail
	}
	switch {
	case strings.HasPrefix(te.counter, "network:"):
		e.Network = strings.TrimPrefix(te.counter, "network:")
	case strings.HasPrefix(te.counter, "user:"):
		e.UserID, e.Username = u.ID, u.Username
	default:
		e.Username = strings.TrimPrefix(te.counter, "account:")
	}
	err := l.Store.AddRepeatedAuditEvent(context.WithoutCancel(ctx), e, e.Event+" "+a.Door+" "+te.counter, throttledWindow)
	if err != nil {
		l.Logger.Warn("recording an audit event failed", "event", e.Event, "err", err)
	}
}
