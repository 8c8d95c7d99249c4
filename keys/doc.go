// Package keys keeps mxidp's signing-key ring: one active key per
// algorithm (RS256, ES256 on P-256, EdDSA on Ed25519), their private
// halves sealed with the instance secret before they reach the database.
// It rotates each algorithm's keys with a publication delay, keeps retired
// keys published until every token they signed has expired, and prepares
// the JWKS document, every algorithm's keys in it, once per change of the
// key set.
//
// Keys live in the database so that every instance of one deployment signs
// with the same key. Instances change the ring by compare-and-swap on its
// version (storage.ChangeKeyRing), so concurrent rotations cannot fork it.
//
// Package keys knows nothing of HTTP or OAuth: it hands out keys and bytes.
package keys
