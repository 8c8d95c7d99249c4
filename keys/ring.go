package keys

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/mxidp/mxidp/storage"
)

// Algorithm is the JWS algorithm of every key mxidp makes: RS256 is the one
// every Synapse version accepts (Synapse synapse/handlers/oidc.py allows
// only RS256 unless discovery or, since 1.126, its configuration names
// others; OIDC Core §15.1 makes it mandatory to implement).
const Algorithm = "RS256"

const rsaBits = 2048

// Store is what the ring needs of storage.
type Store interface {
	KeyRingVersion(ctx context.Context) (int64, error)
	KeyRing(ctx context.Context) (int64, []storage.SigningKey, error)
	ChangeKeyRing(ctx context.Context, expected int64, add storage.SigningKey, remove []string) (int64, error)
}

// Config sets the ring's timing.
type Config struct {
	// PublicationDelay is how long a new key is published before it signs,
	// so that relying parties that cached the JWKS have fetched it by then.
	PublicationDelay time.Duration
	// Retention is how long a key stays published after its successor
	// started signing: at least the lifetime of the longest-lived token it
	// signed, plus clock leeway.
	Retention time.Duration
	// RotationPeriod rotates automatically when the newest key is this old;
	// 0 rotates only on request.
	RotationPeriod time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger reports rotations and failures (default: discard).
	Logger *slog.Logger
}

// State is where a key is in its life.
type State string

// A key is pending (published, not yet signing), active (the one that
// signs), retired (published so that tokens it signed still verify) or
// expired (no longer published; removed at the next change of the ring).
const (
	Pending State = "pending"
	Active  State = "active"
	Retired State = "retired"
	Expired State = "expired"
)

// Key is one key of the ring.
type Key struct {
	ID        string
	Algorithm string
	CreatedAt time.Time
	SignFrom  time.Time
	// PublishedUntil is when a retired key leaves the JWKS; zero for keys
	// without a successor yet.
	PublishedUntil time.Time
	State          State

	publicJWK json.RawMessage
	private   *rsa.PrivateKey // nil when the ring was read without a sealer
}

// Signer returns the private key to sign with, or nil when the ring was
// loaded without the secret key.
func (k Key) Signer() crypto.Signer {
	if k.private == nil {
		return nil
	}
	return k.private
}

// Public returns the public key.
func (k Key) Public() jose.JSONWebKey {
	var jwk jose.JSONWebKey
	// The JWK was made by generate and verified at load time.
	_ = jwk.UnmarshalJSON(k.publicJWK)
	return jwk
}

// Ring is a process's view of the signing-key ring. It reads the database
// only when the ring's version changes, so signing and publishing cost no
// query; Refresh (or Run) notices changes made by other instances.
type Ring struct {
	store  Store
	sealer *Sealer // nil: public halves only (mxidp keys list)
	cfg    Config

	mu       sync.Mutex
	version  int64
	rows     []storage.SigningKey
	private  map[string]*rsa.PrivateKey
	jwks     []byte
	jwksFrom time.Time // jwks is correct from here ...
	jwksTill time.Time // ... until here, when a key's state changes
}

// NewRing returns a ring over store. With a nil sealer it can list and
// publish keys but not sign or rotate.
func NewRing(store Store, sealer *Sealer, cfg Config) *Ring {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Ring{store: store, sealer: sealer, cfg: cfg, version: -1, private: map[string]*rsa.PrivateKey{}}
}

// Load reads the ring from the database when its version has changed since
// the last load, unsealing new private keys once.
func (r *Ring) Load(ctx context.Context) error {
	v, err := r.store.KeyRingVersion(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	same := v == r.version
	r.mu.Unlock()
	if same {
		return nil
	}
	v, rows, err := r.store.KeyRing(ctx)
	if err != nil {
		return err
	}
	private := map[string]*rsa.PrivateKey{}
	for _, row := range rows {
		var pub jose.JSONWebKey
		if err := pub.UnmarshalJSON([]byte(row.PublicJWK)); err != nil {
			return fmt.Errorf("signing key %s: public key: %w", row.ID, err)
		}
		if r.sealer == nil {
			continue
		}
		r.mu.Lock()
		priv, ok := r.private[row.ID]
		r.mu.Unlock()
		if !ok {
			if priv, err = r.unseal(row); err != nil {
				return err
			}
		}
		private[row.ID] = priv
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.version, r.rows, r.private = v, rows, private
	r.jwks, r.jwksFrom, r.jwksTill = nil, time.Time{}, time.Time{}
	return nil
}

func (r *Ring) unseal(row storage.SigningKey) (*rsa.PrivateKey, error) {
	der, err := r.sealer.Open(row.PrivateSealed, []byte(row.ID))
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w: every instance needs the secret_key_file that sealed it", row.ID, err)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", row.ID, err)
	}
	priv, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key %s is a %T, not RSA", row.ID, k)
	}
	return priv, nil
}

// Ensure loads the ring and, when it holds no usable key, makes the first
// one, signing at once (nothing can have cached an empty key set).
func (r *Ring) Ensure(ctx context.Context) error {
	for range 3 {
		if err := r.Load(ctx); err != nil {
			return err
		}
		if _, err := r.SigningKey(); err == nil {
			return nil
		}
		_, err := r.rotate(ctx, 0)
		if !errors.Is(err, storage.ErrConflict) {
			return err
		}
		// Another instance made the key first: load it.
	}
	return r.Load(ctx)
}

// Rotate publishes a new key at once. It signs after the publication delay,
// or at once when immediate is set (for a key thought compromised; relying
// parties then meet an unknown kid and must refetch the JWKS).
func (r *Ring) Rotate(ctx context.Context, immediate bool) (Key, error) {
	delay := r.cfg.PublicationDelay
	if immediate {
		delay = 0
	}
	if err := r.Load(ctx); err != nil {
		return Key{}, err
	}
	for range 3 {
		k, err := r.rotate(ctx, delay)
		if !errors.Is(err, storage.ErrConflict) {
			return k, err
		}
		if err := r.Load(ctx); err != nil {
			return Key{}, err
		}
	}
	return Key{}, fmt.Errorf("rotate: the key ring kept changing under us; try again")
}

// rotate adds a key signing after delay to the ring as last loaded, and
// drops expired keys, by compare-and-swap on the loaded version.
func (r *Ring) rotate(ctx context.Context, delay time.Duration) (Key, error) {
	if r.sealer == nil {
		return Key{}, errors.New("rotate: the ring was opened without the secret key")
	}
	now := r.cfg.Now()
	priv, err := rsa.GenerateKey(rand.Reader, rsaBits)
	if err != nil {
		return Key{}, fmt.Errorf("generate RSA key: %w", err)
	}
	row, err := r.newRow(priv, now, now.Add(delay))
	if err != nil {
		return Key{}, err
	}
	r.mu.Lock()
	expected := r.version
	var remove []string
	for _, k := range r.statesLocked(now) {
		if k.State == Expired {
			remove = append(remove, k.ID)
		}
	}
	r.mu.Unlock()
	if expected < 0 {
		return Key{}, errors.New("rotate: ring not loaded")
	}
	if _, err := r.store.ChangeKeyRing(ctx, expected, row, remove); err != nil {
		return Key{}, err
	}
	r.mu.Lock()
	r.private[row.ID] = priv
	r.mu.Unlock()
	if err := r.Load(ctx); err != nil {
		return Key{}, err
	}
	r.cfg.Logger.Info("signing key added", "kid", row.ID, "signs_from", row.SignFrom.UTC().Format(time.RFC3339), "removed", len(remove))
	for _, k := range r.Keys() {
		if k.ID == row.ID {
			return k, nil
		}
	}
	return Key{}, fmt.Errorf("rotate: key %s vanished after it was added", row.ID)
}

func (r *Ring) newRow(priv *rsa.PrivateKey, created, signFrom time.Time) (storage.SigningKey, error) {
	pub := jose.JSONWebKey{Key: &priv.PublicKey, Algorithm: Algorithm, Use: "sig"}
	thumb, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return storage.SigningKey{}, fmt.Errorf("key thumbprint: %w", err)
	}
	// The RFC 7638 thumbprint is unique per key and says nothing secret.
	pub.KeyID = base64.RawURLEncoding.EncodeToString(thumb)
	pubJSON, err := pub.MarshalJSON()
	if err != nil {
		return storage.SigningKey{}, fmt.Errorf("encode public key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return storage.SigningKey{}, fmt.Errorf("encode private key: %w", err)
	}
	return storage.SigningKey{
		ID:            pub.KeyID,
		Algorithm:     Algorithm,
		PublicJWK:     string(pubJSON),
		PrivateSealed: r.sealer.Seal(der, []byte(pub.KeyID)),
		CreatedAt:     created.UTC().Truncate(time.Second),
		SignFrom:      signFrom.UTC().Truncate(time.Second),
	}, nil
}

// Keys returns every key of the ring as last loaded, oldest first, with
// its state now.
func (r *Ring) Keys() []Key {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.statesLocked(r.cfg.Now())
}

// statesLocked derives each key's state at now from the keys' SignFrom
// times alone: the key that signs is the newest whose SignFrom has come,
// and a key stays published until Retention after its successor began to
// sign. Every instance derives the same states from the same rows.
func (r *Ring) statesLocked(now time.Time) []Key {
	out := make([]Key, len(r.rows))
	active := -1
	for i, row := range r.rows {
		if !row.SignFrom.After(now) {
			active = i
		}
	}
	for i, row := range r.rows {
		k := Key{ID: row.ID, Algorithm: row.Algorithm, CreatedAt: row.CreatedAt, SignFrom: row.SignFrom,
			publicJWK: json.RawMessage(row.PublicJWK), private: r.private[row.ID]}
		switch {
		case i > active:
			k.State = Pending
		case i == active:
			k.State = Active
		default:
			k.PublishedUntil = r.rows[i+1].SignFrom.Add(r.cfg.Retention)
			k.State = Retired
			if !now.Before(k.PublishedUntil) {
				k.State = Expired
			}
		}
		out[i] = k
	}
	return out
}

// ErrNoKey means the ring has no key that may sign yet (call Ensure).
var ErrNoKey = errors.New("no active signing key")

// SigningKey returns the key that signs now.
func (r *Ring) SigningKey() (Key, error) {
	for _, k := range r.Keys() {
		if k.State == Active {
			if k.private == nil && r.sealer != nil {
				return Key{}, fmt.Errorf("signing key %s is not unsealed", k.ID)
			}
			return k, nil
		}
	}
	return Key{}, ErrNoKey
}

// Published returns the keys a relying party may meet now: pending, active
// and retired ones.
func (r *Ring) Published() []Key {
	var out []Key
	for _, k := range r.Keys() {
		if k.State != Expired {
			out = append(out, k)
		}
	}
	return out
}

// JWKS returns the JSON Web Key Set of the published keys. The bytes are
// built once per change of the set (a load, or a key's state changing with
// time) and shared: callers must not modify them.
func (r *Ring) JWKS() []byte {
	now := r.cfg.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.jwks != nil && !now.Before(r.jwksFrom) && now.Before(r.jwksTill) {
		return r.jwks
	}
	// The public JWKs were validated at load: joining them cannot fail.
	b := []byte(`{"keys":[`)
	till := now.Add(24 * time.Hour)
	first := true
	for _, k := range r.statesLocked(now) {
		if k.State != Expired {
			if !first {
				b = append(b, ',')
			}
			b, first = append(b, k.publicJWK...), false
		}
		// The set changes when a retired key expires, and a pending key's
		// start gives its predecessor an expiry: rebuild at the first of these.
		next := k.PublishedUntil
		if k.State == Pending {
			next = k.SignFrom
		}
		if (k.State == Retired || k.State == Pending) && next.Before(till) {
			till = next
		}
	}
	b = append(b, "]}"...)
	r.jwks, r.jwksFrom, r.jwksTill = b, now, till
	return b
}

// Version returns the ring version as last loaded.
func (r *Ring) Version() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.version
}

// Run keeps the ring current until ctx ends: every interval it reloads
// when another instance changed the ring, and rotates when the newest key
// is older than the rotation period (one instance wins the race; the
// others see ErrConflict and load its key).
func (r *Ring) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := r.Load(ctx); err != nil {
			r.cfg.Logger.Warn("key ring refresh failed", "err", err)
			continue
		}
		if r.rotationDue() {
			if _, err := r.rotate(ctx, r.cfg.PublicationDelay); err != nil && !errors.Is(err, storage.ErrConflict) {
				r.cfg.Logger.Error("automatic key rotation failed", "err", err)
			}
		}
	}
}

func (r *Ring) rotationDue() bool {
	if r.cfg.RotationPeriod <= 0 || r.sealer == nil {
		return false
	}
	keys := r.Keys()
	if len(keys) == 0 {
		return false
	}
	newest := keys[len(keys)-1]
	return !r.cfg.Now().Before(newest.CreatedAt.Add(r.cfg.RotationPeriod))
}

// SigningKeyReady reports whether a key can sign now (for readiness).
func (r *Ring) SigningKeyReady() error {
	k, err := r.SigningKey()
	if err == nil && k.Signer() == nil {
		err = fmt.Errorf("signing key %s is not unsealed", k.ID)
	}
	return err
}
