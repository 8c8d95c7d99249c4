package storagetest

import (
	"context"
	"testing"

	"github.com/mxidp/mxidp/storage"
)

// ThrottleKeys lists the keys of the throttle table, sorted: what a test
// asserts when it counts the rows an attempt was allowed to write.
func ThrottleKeys(t testing.TB, s *storage.Store) []string {
	t.Helper()
	rows, err := s.DB().QueryContext(context.Background(), `SELECT key FROM throttle ORDER BY key`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	keys := []string{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}
