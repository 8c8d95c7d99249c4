// Package storage persists mxidp's state in SQL: users, clients, signing
// keys and (later) sessions, codes, tokens and rate-limit counters.
//
// One implementation serves both supported databases: SQLite through the
// pure-Go modernc.org/sqlite driver (the embedded default) and PostgreSQL
// through pgx. Queries use $N placeholders, which both drivers bind
// positionally; what still differs between the two lives in dialect.go.
//
// Storage knows nothing of HTTP, OAuth or password policy: it stores what it
// is given and reports ErrNotFound, ErrAlreadyExists and ErrConflict, which
// callers map to protocol errors in one place. Every backend must pass the
// conformance suite in storage/storagetest.
package storage
