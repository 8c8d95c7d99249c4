package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/mxidp/mxidp/storage"
)

// The JWS algorithms (RFC 7518 §3.1, RFC 8037 §3.1) the ring keeps one
// active key of each. RS256 is the default: every Synapse version accepts
// it (Synapse synapse/handlers/oidc.py allows only RS256 unless discovery
// or, since 1.126, its configuration names others) and OIDC Core §15.1
// makes it mandatory to implement. ES256 (ECDSA on P-256) and EdDSA
// (Ed25519) sign in a fraction of RS256's time, for the clients that ask
// for them (docs/signing.md).
const (
	RS256 = "RS256"
	ES256 = "ES256"
	EdDSA = "EdDSA"
)

// DefaultAlgorithm signs for every client that names no other.
const DefaultAlgorithm = RS256

// Algorithms are the algorithms of the ring, the default first, in the
// order discovery lists them.
var Algorithms = []string{RS256, ES256, EdDSA}

// CheckAlgorithm admits one of Algorithms, spelled exactly so (JWS alg
// values are case-sensitive, RFC 7515 §4.1.1). Anything else, "none" and
// the HMAC algorithms included, is refused: an HS256 token would be keyed
// with the client's secret, which a client can then forge tokens with.
func CheckAlgorithm(alg string) error {
	if slices.Contains(Algorithms, alg) {
		return nil
	}
	return fmt.Errorf("signing algorithm %q is not offered: use one of %s", clipAlg(alg), strings.Join(Algorithms, ", "))
}

func clipAlg(s string) string {
	if len(s) > 32 {
		s = s[:32] + "…"
	}
	return strings.ToValidUTF8(s, "")
}

const rsaBits = 2048

// generate makes a new private key for alg.
func generate(alg string) (crypto.Signer, error) {
	switch alg {
	case RS256:
		return rsa.GenerateKey(rand.Reader, rsaBits)
	case ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case EdDSA:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	}
	return nil, CheckAlgorithm(alg)
}

// fitsAlgorithm reports whether priv is a key of alg's type (and curve).
func fitsAlgorithm(priv crypto.Signer, alg string) bool {
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		return alg == RS256
	case *ecdsa.PrivateKey:
		return alg == ES256 && k.Curve == elliptic.P256()
	case ed25519.PrivateKey:
		return alg == EdDSA
	}
	return false
}

// Store is what the ring needs of storage.
type Store interface {
	KeyRingVersion(ctx context.Context) (int64, error)
	KeyRing(ctx context.Context) (int64, []storage.SigningKey, error)
	ChangeKeyRing(ctx context.Context, expected int64, add []storage.SigningKey, remove []string) (int64, error)
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
	// RotationPeriod rotates an algorithm's key automatically when its
	// newest key is this old; 0 rotates only on request.
	RotationPeriod time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger reports rotations and failures (default: discard).
	Logger *slog.Logger
}

// State is where a key is in its life.
type State string

// A key is pending (published, not yet signing), active (the one that
// signs with its algorithm), retired (published so that tokens it signed
// still verify) or expired (no longer published; removed at the next
// change of the ring).
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
	private   crypto.Signer // nil when the ring was read without a sealer
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
	private  map[string]crypto.Signer
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
	return &Ring{store: store, sealer: sealer, cfg: cfg, version: -1, private: map[string]crypto.Signer{}}
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
	private := map[string]crypto.Signer{}
	for _, row := range rows {
		var pub jose.JSONWebKey
		if err := pub.UnmarshalJSON([]byte(row.PublicJWK)); err != nil {
			return fmt.Errorf("signing key %s: public key: %w", row.ID, err)
		}
		if err := CheckAlgorithm(row.Algorithm); err != nil {
			return fmt.Errorf("signing key %s: %w (was it made by a newer mxidp?)", row.ID, err)
		}
		if r.sealer != nil {
			r.mu.Lock()
			priv, ok := r.private[row.ID]
			r.mu.Unlock()
			if !ok {
				if priv, err = r.unseal(row); err != nil {
					return err
				}
			}
			if own, ok := priv.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !own.Equal(pub.Key) {
				return fmt.Errorf("signing key %s: the published key is not the public half of the sealed one", row.ID)
			}
			private[row.ID] = priv
		}
		// The public half is published as stored, unsealed: besides being
		// the private half's, it must name the row's kid and algorithm.
		if pub.KeyID != row.ID || pub.Algorithm != row.Algorithm || !pub.IsPublic() {
			return fmt.Errorf("signing key %s (%s): its public key is published as kid %q, alg %q", row.ID, row.Algorithm,
				strings.ToValidUTF8(pub.KeyID, ""), clipAlg(pub.Algorithm))
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.version, r.rows, r.private = v, rows, private
	r.jwks, r.jwksFrom, r.jwksTill = nil, time.Time{}, time.Time{}
	return nil
}

func (r *Ring) unseal(row storage.SigningKey) (crypto.Signer, error) {
	der, err := r.sealer.Open(row.PrivateSealed, []byte(row.ID))
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w: every instance needs the secret_key_file that sealed it", row.ID, err)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", row.ID, err)
	}
	priv, ok := k.(crypto.Signer)
	if !ok || !fitsAlgorithm(priv, row.Algorithm) {
		return nil, fmt.Errorf("signing key %s is a %T, not a key for %s", row.ID, k, row.Algorithm)
	}
	return priv, nil
}

// Ensure loads the ring and makes, for every algorithm without a key that
// may sign, one that signs at once: at the first start nothing can have
// cached an empty key set, and in a ring made before mxidp offered an
// algorithm no relying party can be using that algorithm yet (a client is
// given it only by a version that offers it).
func (r *Ring) Ensure(ctx context.Context) error {
	for range 3 {
		if err := r.Load(ctx); err != nil {
			return err
		}
		missing := r.missing()
		if len(missing) == 0 {
			return nil
		}
		_, err := r.rotate(ctx, 0, missing)
		if !errors.Is(err, storage.ErrConflict) {
			return err
		}
		// Another instance made the keys first: load them.
	}
	return r.Load(ctx)
}

// missing lists the algorithms that have no active key.
func (r *Ring) missing() []string {
	var out []string
	for _, alg := range Algorithms {
		if _, err := r.SigningKeyFor(alg); err != nil {
			out = append(out, alg)
		}
	}
	return out
}

// Rotate publishes a new key at once for each of algs (every algorithm
// when none is named), in one change of the ring. The keys sign after the
// publication delay, or at once when immediate is set (for a key thought
// compromised; relying parties then meet an unknown kid and must refetch
// the JWKS).
func (r *Ring) Rotate(ctx context.Context, immediate bool, algs ...string) ([]Key, error) {
	if len(algs) == 0 {
		algs = Algorithms
	}
	var uniq []string
	for _, alg := range algs {
		if err := CheckAlgorithm(alg); err != nil {
			return nil, err
		}
		if !slices.Contains(uniq, alg) {
			uniq = append(uniq, alg)
		}
	}
	delay := r.cfg.PublicationDelay
	if immediate {
		delay = 0
	}
	if err := r.Load(ctx); err != nil {
		return nil, err
	}
	for range 3 {
		ks, err := r.rotate(ctx, delay, uniq)
		if !errors.Is(err, storage.ErrConflict) {
			return ks, err
		}
		if err := r.Load(ctx); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("rotate: the key ring kept changing under us; try again")
}

// rotate adds one key per algorithm, signing after delay, to the ring as
// last loaded, and drops expired keys, by compare-and-swap on the loaded
// version.
func (r *Ring) rotate(ctx context.Context, delay time.Duration, algs []string) ([]Key, error) {
	if r.sealer == nil {
		return nil, errors.New("rotate: the ring was opened without the secret key")
	}
	now := r.cfg.Now()
	rows := make([]storage.SigningKey, 0, len(algs))
	privs := make([]crypto.Signer, 0, len(algs))
	for _, alg := range algs {
		priv, err := generate(alg)
		if err != nil {
			return nil, fmt.Errorf("generate %s key: %w", alg, err)
		}
		row, err := r.newRow(priv, alg, now, now.Add(delay))
		if err != nil {
			return nil, err
		}
		rows, privs = append(rows, row), append(privs, priv)
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
		return nil, errors.New("rotate: ring not loaded")
	}
	if _, err := r.store.ChangeKeyRing(ctx, expected, rows, remove); err != nil {
		return nil, err
	}
	r.mu.Lock()
	for i, row := range rows {
		r.private[row.ID] = privs[i]
	}
	r.mu.Unlock()
	if err := r.Load(ctx); err != nil {
		return nil, err
	}
	out := make([]Key, 0, len(rows))
	keys := r.Keys()
	for _, row := range rows {
		r.cfg.Logger.Info("signing key added", "kid", row.ID, "alg", row.Algorithm,
			"signs_from", row.SignFrom.UTC().Format(time.RFC3339), "removed", len(remove))
		i := slices.IndexFunc(keys, func(k Key) bool { return k.ID == row.ID })
		if i < 0 {
			return nil, fmt.Errorf("rotate: key %s vanished after it was added", row.ID)
		}
		out = append(out, keys[i])
	}
	return out, nil
}

func (r *Ring) newRow(priv crypto.Signer, alg string, created, signFrom time.Time) (storage.SigningKey, error) {
	pub := jose.JSONWebKey{Key: priv.Public(), Algorithm: alg, Use: "sig"}
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
		Algorithm:     alg,
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

// statesLocked derives each key's state at now from the keys' algorithms
// and SignFrom times alone, each algorithm on its own: the key that signs
// with an algorithm is its newest whose SignFrom has come, and a key stays
// published until Retention after the next key of its algorithm began to
// sign. Every instance derives the same states from the same rows.
func (r *Ring) statesLocked(now time.Time) []Key {
	n := len(r.rows)
	out := make([]Key, n)
	// active[alg] is the index of the algorithm's signing key; next[i] the
	// index of the key that follows row i in its algorithm, or -1.
	active := make(map[string]int, len(Algorithms))
	next := make([]int, n)
	last := make(map[string]int, len(Algorithms))
	for i := n - 1; i >= 0; i-- {
		alg := r.rows[i].Algorithm
		next[i] = -1
		if j, ok := last[alg]; ok {
			next[i] = j
		}
		last[alg] = i
	}
	for i, row := range r.rows {
		if !row.SignFrom.After(now) {
			active[row.Algorithm] = i
		}
	}
	for i, row := range r.rows {
		k := r.keyLocked(row)
		a, has := active[row.Algorithm]
		switch {
		case !has || i > a:
			k.State = Pending
		case i == a:
			k.State = Active
		default:
			k.PublishedUntil = r.rows[next[i]].SignFrom.Add(r.cfg.Retention)
			k.State = Retired
			if !now.Before(k.PublishedUntil) {
				k.State = Expired
			}
		}
		out[i] = k
	}
	return out
}

func (r *Ring) keyLocked(row storage.SigningKey) Key {
	return Key{ID: row.ID, Algorithm: row.Algorithm, CreatedAt: row.CreatedAt, SignFrom: row.SignFrom,
		publicJWK: json.RawMessage(row.PublicJWK), private: r.private[row.ID]}
}

// ErrNoKey means the ring has no key that may sign yet (call Ensure).
var ErrNoKey = errors.New("no active signing key")

// SigningKey returns the key that signs now with DefaultAlgorithm.
func (r *Ring) SigningKey() (Key, error) { return r.SigningKeyFor(DefaultAlgorithm) }

// SigningKeyFor returns the key that signs now with alg. It reads no
// database and builds no other key's state: it runs for every token.
func (r *Ring) SigningKeyFor(alg string) (Key, error) {
	now := r.cfg.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	found := -1
	for i, row := range r.rows {
		if row.Algorithm == alg && !row.SignFrom.After(now) {
			found = i
		}
	}
	if found < 0 {
		return Key{}, fmt.Errorf("%w for %s", ErrNoKey, clipAlg(alg))
	}
	k := r.keyLocked(r.rows[found])
	k.State = Active
	if k.private == nil && r.sealer != nil {
		return Key{}, fmt.Errorf("signing key %s is not unsealed", k.ID)
	}
	return k, nil
}

// Sign signs payload as a compact JWS (RFC 7515 §7.1) with the key that
// signs now with alg, its kid and, when typ is set, that typ in the header.
func (r *Ring) Sign(alg, typ string, payload []byte) (string, error) {
	k, err := r.SigningKeyFor(alg)
	if err != nil {
		return "", err
	}
	if k.private == nil {
		return "", fmt.Errorf("signing key %s: the ring was opened without the secret key", k.ID)
	}
	opts := &jose.SignerOptions{}
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg),
		Key: jose.JSONWebKey{Key: k.private, KeyID: k.ID}}, opts)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// Published returns the keys a relying party may meet now: pending, active
// and retired ones, of every algorithm.
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
// when another instance changed the ring, and rotates the algorithms whose
// newest key is older than the rotation period, in one change (one
// instance wins the race; the others see ErrConflict and load its keys).
// An algorithm left without a key that signs (its rows removed by hand)
// gets one signing at once, as at Ensure.
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
		if r.sealer == nil {
			continue
		}
		delay, algs := time.Duration(0), r.missing()
		if len(algs) == 0 {
			delay, algs = r.cfg.PublicationDelay, r.rotationDue()
		}
		if len(algs) > 0 {
			if _, err := r.rotate(ctx, delay, algs); err != nil && !errors.Is(err, storage.ErrConflict) {
				r.cfg.Logger.Error("automatic key rotation failed", "algs", algs, "err", err)
			}
		}
	}
}

// rotationDue lists the algorithms whose newest key is at least the
// rotation period old.
func (r *Ring) rotationDue() []string {
	if r.cfg.RotationPeriod <= 0 {
		return nil
	}
	newest := map[string]time.Time{}
	for _, k := range r.Keys() {
		if k.CreatedAt.After(newest[k.Algorithm]) {
			newest[k.Algorithm] = k.CreatedAt
		}
	}
	now := r.cfg.Now()
	var due []string
	for _, alg := range Algorithms {
		if created, ok := newest[alg]; ok && !now.Before(created.Add(r.cfg.RotationPeriod)) {
			due = append(due, alg)
		}
	}
	return due
}

// SigningKeyReady reports whether every algorithm has a key that can sign
// now (for readiness: a client of any algorithm may ask for a token).
func (r *Ring) SigningKeyReady() error {
	for _, alg := range Algorithms {
		k, err := r.SigningKeyFor(alg)
		if err == nil && k.Signer() == nil {
			err = fmt.Errorf("signing key %s is not unsealed", k.ID)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
