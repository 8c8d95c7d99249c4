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

// BenchmarkVerifyFormat is the cost of one check of each imported format
// at the cost its system typically uses, hashes of "correct horse battery
// staple" made with Debian's python3-passlib (Drupal 7: the published
// vector of vectors_test.go).
func BenchmarkVerifyFormat(b *testing.B) {
	for _, bm := range []struct{ name, hash, pw string }{
		{"bcrypt-10", "$2y$10$.lxarGWOgIDZU7tBu3UtUesekk8HAciuqbHu.hPBv3cPqevwIBYE6", ""},
		{"phpass-WordPress", "$P$BW6Qr6rlFs3KzZm0NHF8ZlO8CtpFOe.", ""},
		{"drupal7-2^15", "$S$DI7p94K2RG7Nq2OJp2/T55TfjT/K8UYdDVSUELOgCNbNoHU2sdtq", "password"},
		{"passlib-pbkdf2-sha256-29000", "$pbkdf2-sha256$29000$i5HSutdaK8U4p3TOGQPgHA$sxKxztwmFcszVkvA8Z.p73.NKDfS2qQG24V3Mw8NCX4", ""},
		{"pbkdf2-sha256-600000", "$pbkdf2-sha256$600000$.x8jZMwZQ.h9b.0dg/D.3w$f814HHeCsr0KEgDg5P7UChTtW.avYQk.QK8UisnnZEc", ""},
		{"sha512-crypt-5000", "$6$52Xk95N8xZuezMc1$7fZvsPZT2NTkT2iDvYtPm5VW8AbN8eEvCsI8sUu0zMviNDeC6yAZ1udZeE/wOwT5RyANqgnk4RhiXVN7J78ES.", ""},
		{"md5-crypt", "$1$fBYHal5M$Zqu8I5f9G8dg0o9GaXoUI/", ""},
		{"ssha", "{SSHA}NKo1SzZZNaGHeD8jaG+EhhcEd9aGEELo", ""},
	} {
		pw := bm.pw
		if pw == "" {
			pw = "correct horse battery staple"
		}
		b.Run(bm.name, func(b *testing.B) {
			for b.Loop() {
				if ok, err := password.Verify(bm.hash, pw); !ok || err != nil {
					b.Fatal("no match", err)
				}
			}
		})
	}
}
