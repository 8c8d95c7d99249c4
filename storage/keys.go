package storage

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// SigningKey is one key of the signing-key ring as stored. The private
// half is sealed by package keys; storage never sees it in the clear.
type SigningKey struct {
	ID            string // the JWS "kid"
	Algorithm     string // RS256, ES256 or EdDSA (see package keys)
	PublicJWK     string // JSON Web Key of the public half
	PrivateSealed []byte
	CreatedAt     time.Time
	SignFrom      time.Time // published from CreatedAt, signs from SignFrom on
}

// KeyRingVersion returns the version of the key ring, which changes with
// every change of its keys. Instances poll it to notice a rotation.
func (s *Store) KeyRingVersion(ctx context.Context) (int64, error) {
	var v int64
	err := s.queryRow(ctx, nil, `SELECT version FROM key_ring WHERE id = 1`).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("read key ring version: %w", err)
	}
	return v, nil
}

// KeyRing returns the version of the key ring and its keys, oldest first,
// read in one consistent snapshot.
func (s *Store) KeyRing(ctx context.Context) (int64, []SigningKey, error) {
	var version int64
	var list []SigningKey
	// A read-only snapshot would do on PostgreSQL; a plain transaction is
	// the form both dialects share.
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.queryRow(ctx, tx, `SELECT version FROM key_ring WHERE id = 1`).Scan(&version); err != nil {
			return err
		}
		rows, err := s.query(ctx, tx, `SELECT kid, algorithm, public_jwk, private_sealed, created_at, sign_from
			FROM signing_keys ORDER BY sign_from, kid`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k SigningKey
			var created, signFrom int64
			if err := rows.Scan(&k.ID, &k.Algorithm, &k.PublicJWK, &k.PrivateSealed, &created, &signFrom); err != nil {
				return err
			}
			k.CreatedAt, k.SignFrom = fromUnix(created), fromUnix(signFrom)
			list = append(list, k)
		}
		return rows.Err()
	})
	if err != nil {
		return 0, nil, fmt.Errorf("read key ring: %w", err)
	}
	return version, list, nil
}

// ChangeKeyRing adds keys and removes the keys named in remove, provided
// the ring is still at version expected: a compare-and-swap, so of several
// instances rotating at once exactly one succeeds and the others get
// ErrConflict. It returns the new version.
func (s *Store) ChangeKeyRing(ctx context.Context, expected int64, add []SigningKey, remove []string) (int64, error) {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := s.exec(ctx, tx, `UPDATE key_ring SET version = version + 1 WHERE id = 1 AND version = $1`, expected)
		if err := casResult(res, err); err != nil {
			return err
		}
		for _, kid := range remove {
			if _, err := s.exec(ctx, tx, `DELETE FROM signing_keys WHERE kid = $1`, kid); err != nil {
				return err
			}
		}
		for _, k := range add {
			_, err = s.exec(ctx, tx, `INSERT INTO signing_keys (kid, algorithm, public_jwk, private_sealed, created_at, sign_from)
				VALUES ($1, $2, $3, $4, $5, $6)`,
				k.ID, k.Algorithm, k.PublicJWK, k.PrivateSealed, unix(k.CreatedAt), unix(k.SignFrom))
			if err != nil {
				return s.wrapWrite(err, "add signing key")
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("change key ring: %w", err)
	}
	return expected + 1, nil
}
