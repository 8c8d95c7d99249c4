package password_test

import (
	"testing"

	"github.com/mxidp/mxidp/provider/password"
)

// BenchmarkVerifyDefaultCost is the cost of one password check at the
// default argon2id cost: the ceiling of password checks per second per core.
func BenchmarkVerifyDefaultCost(b *testing.B) {
	h, err := password.Hash("correct horse battery staple", password.Default)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, _ := password.Verify(h, "correct horse battery staple"); !ok {
			b.Fatal("no match")
		}
	}
}
