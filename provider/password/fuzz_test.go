package password

import (
	"testing"
)

// fuzzSeeds are one hash of "fuzz" in each format, at low costs, made with
// Debian's python3-passlib and python3-django (see libraries_test.go) and,
// for Drupal 7, taken from vectors_test.go (with their passwords).
var fuzzSeeds = []string{
	`pbkdf2_sha256$1000$wl4VFHcnBa7nJWybL2yOzA$YbUNprsJQtjyqviBRwipwM+ivJ4kpH6kk1SPbtx2QG4=`,
	`pbkdf2_sha1$1000$LYY0bLG4cTtMwFjVXWfWpj$Rf5AmBQROjfJ7N9e4nkb2myDwsE=`,
	`argon2$argon2id$v=19$m=64,t=1,p=1$OXNOeGFpOG5Jb05ERTU5ZFNWaWpQNQ$xT7ZuMSjar8FybSGPy3+SA`,
	`bcrypt_sha256$$2b$04$JeCUQz7jau1uxRxD/WyBbuiyzspXF2snLNPs8DbMojzl3nN2TtDj6`,
	`bcrypt$$2b$04$19EVzIbzZJENHQSzJ6K3iewGYLoevrfxBWik5KYE3R9WQpWPPYc76`,
	`$2y$04$me//r..WTYZ1TdJiufLD6eh/PmcCJ1IAct.C24XPr7CVGFZne.NXS`,
	`$5$rounds=1000$v4zemja2cUNcPJN5$HFyuUIkHQ1X67DC9C/oBDwn9aFG9ONVVcRCIjQGV2Y.`,
	`$6$rounds=1000$/JRHEozo0aAhZvIH$W3YmVRvL8bpWoOI92X8Z46Zai7Y4lh0R0D.CJ3ivcmeXpsVsErE14eQVC7vBht67Oa3Qn2h.OxxlmJ2/0TQ62.`,
	`$1$zEEFeGSp$08/M/popE0ZFYPz10pTWA.`,
	`$P$53rfZjIiEu9jIOf2rGtrmPGA9.tjPD.`,
	`$pbkdf2$1000$R0jpndO6d46R8v5/b41Rag$R0bjo04T1jJqAlvG2T3I/P0j20I`,
	`$pbkdf2-sha256$1000$XwuB8F7LeY8xZqz1fi9FqA$3rIcJVd8xXaNQAbjlrhmN/cd5zE8fD5RAjaRywibzKk`,
	`$pbkdf2-sha512$1000$D8GY8x4DYGwtBSCEcI7ROg$QqJ4lrMu602XvdWuUQkA.TgV2TLgpzxHKomKYqi02dpWuRoAqN1IxFw14JcU34nFb9.gH2HtCiMM6lIhMzA1Yw`,
	`{PBKDF2-SHA256}1000$SWkNwVjrHYPw/j/nfM9Z6w$zyRDXQzjZM9rsvatfNLwLQVBoyHFq./himMK/3.qzaA`,
	`{SSHA}CGl0VF0n3JlZfbEPuqjdCFrJT6sn5Jyz`,
	`{SSHA512}zBfdlHXgnUPH5icd3yiye9JrJk/oe06B9+uAft8290UHK7RLsMFLgoWhRaj4P70fCUL90/uUtJkUZExI0DW/qPy/t3aOkbL2`,
	`{SMD5}USBI+ThvrydzgmZ/94NNzQkBwPg=`,
	`{SHA}BJLg30AHfASxlD3BqtsyxlkID6w=`,
	`{MD5}iHF15RXNO0efaub7GnYTjg==`,
	`$argon2i$v=19$m=64,t=1,p=1$udfa+3/v3dubs9b6/9/7Xw$ecpOUXA8nEOcTpiuPQ7raQ`,
	`{CRYPT}$6$rounds=1000$0DIcK0DTsZm7DtI1$/TsO7eWYYAFM/wl1zMjjcGvoFGrSuJ63MO1/TZzb215EXBcT2vFOM85siYMiOBb/SXukOjKMGyWZnzk.HC.TS0`,
	`{CRYPT}$2b$04$2cSPKK4wo/rvmN6r.9L6cuiUSG132nw8xRSl1hzuPwx.HfIVlXKoS`,
	`$argon2id$v=19$m=64,t=1,p=1$D0FojZGSkpKyVkpJiXGuVQ$fa90DDj7QNGEnUv+Bh7Z6A`,
}

// FuzzVerify feeds Verify any stored string and password: it must never
// panic, and what the fuzzer's hashes do must not change that a fresh
// argon2id hash of the same password matches. The cost limits are lowered
// so that the fuzzer's mutations of costs stay cheap to compute.
func FuzzVerify(f *testing.F) {
	old := limits
	f.Cleanup(func() { limits = old })
	limits.bcryptCost, limits.pbkdf2Iterations, limits.shaCryptRounds, limits.phpassLog2 = 5, 5000, 5000, 8
	limits.argon2MemoryKiB, limits.argon2WorkKiB = 1024, 2048
	type seed struct {
		hash, pw string
		match    bool
	}
	seeds := []seed{
		{"$S$5FIcboyzv1ZD/OZDb4w/4HSlnsPlwbr/PWLWrHPWrJp8eXOQQaWJ", "DifficultPassword123", true},
		{"U$S$5I5Ht7YwxFRiMiJhBjyt42Ji2WRndX2dCx1jyktH92PeQp0xWdgi", "SimpleEasyPassword", true},
	}
	for _, h := range fuzzSeeds {
		seeds = append(seeds, seed{h, "fuzz", true}, seed{h, "pässwörd ✓", false})
	}
	for _, s := range seeds {
		if ok, err := Verify(s.hash, s.pw); ok != s.match || err != nil {
			f.Fatalf("seed %s, %s: %v, %v", s.hash, s.pw, ok, err)
		}
		f.Add(s.hash, s.pw)
	}
	cheap := Params{Time: 1, MemoryKiB: 8, Threads: 1}
	f.Fuzz(func(t *testing.T, hash, pw string) {
		ok, err := Verify(hash, pw)
		if ok && err != nil {
			t.Fatalf("Verify(%q) = true with error %v", hash, err)
		}
		if err == nil && Format(hash) == "unknown" {
			t.Fatalf("Verify(%q) reads a hash Format calls unknown", hash)
		}
		if err != nil && Format(hash) != "unknown" {
			t.Fatalf("Verify(%q) fails (%v) for a hash Format calls %s", hash, err, Format(hash))
		}
		if len(pw) > MaxLength {
			return
		}
		fresh, err := Hash(pw, cheap)
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := Verify(fresh, pw); !ok || err != nil {
			t.Fatalf("a fresh argon2id hash of %q: %v, %v", pw, ok, err)
		}
	})
}
