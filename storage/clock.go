package storage

import "time"

// WithClock returns a store on the same connection pool that reads the
// time from now: for tests that let delays and expiries pass without
// waiting. Closing either store closes the pool.
func (s *Store) WithClock(now func() time.Time) *Store {
	return &Store{db: s.db, dialect: s.dialect, now: now, log: s.log}
}
