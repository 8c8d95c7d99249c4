// Package keys keeps mxidp's signing-key ring: it generates RS256 keys,
// seals their private halves with the instance secret before they reach
// the database, rotates them with a publication delay, keeps retired keys
// published until every token they signed has expired, and prepares the
// JWKS document once per change of the key set.
//
// Keys live in the database so that every instance of one deployment signs
// with the same key. Instances change the ring by compare-and-swap on its
// version (storage.ChangeKeyRing), so concurrent rotations cannot fork it.
//
// Package keys knows nothing of HTTP or OAuth: it hands out keys and bytes.
package keys
