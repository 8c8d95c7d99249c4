package password_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/mxidp/mxidp/provider/password"
)

var cheap = password.Params{Time: 1, MemoryKiB: 64, Threads: 1}

func TestHashVerifiesTheRightPasswordOnly(t *testing.T) {
	h, err := password.Hash("correct horse", cheap)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Errorf("hash %q is not a PHC argon2id string of the given cost", h)
	}
	if ok, err := password.Verify(h, "correct horse"); !ok || err != nil {
		t.Errorf("right password: %v, %v", ok, err)
	}
	for _, wrong := range []string{"", "correct hors", "Correct horse", "correct horse ", strings.Repeat("x", password.MaxLength+1)} {
		if ok, err := password.Verify(h, wrong); ok || err != nil {
			t.Errorf("wrong password %.20q: %v, %v", wrong, ok, err)
		}
	}
	if h2, _ := password.Hash("correct horse", cheap); h2 == h {
		t.Error("two hashes of one password are equal: no random salt")
	}
}

// A vector from the reference implementation's test suite
// (github.com/P-H-C/phc-winner-argon2, src/test.c: argon2id, t=2, m=2^16, p=1).
func TestVerifyAcceptsReferenceVector(t *testing.T) {
	const h = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	if ok, err := password.Verify(h, "password"); !ok || err != nil {
		t.Errorf("reference vector: %v, %v", ok, err)
	}
}

func TestVerifyRejectsDamagedHashesWithoutPanicking(t *testing.T) {
	for _, h := range []string{
		"", "plain", "$argon2id$", "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ", "$argon2d$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=16$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=0,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=1,x=2$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=1$!!!$aGFzaGhhc2hoYXNoaGFzaA",
	} {
		if ok, err := password.Verify(h, "pw"); ok || !errors.Is(err, password.ErrUnknownFormat) {
			t.Errorf("Verify(%q) = %v, %v; want ErrUnknownFormat", h, ok, err)
		}
	}
}

func TestNeedsRehashWhenCostOrFormatDiffers(t *testing.T) {
	h, _ := password.Hash("pw", cheap)
	if password.NeedsRehash(h, cheap) {
		t.Error("a hash of the current cost needs no rehash")
	}
	if !password.NeedsRehash(h, password.Params{Time: 2, MemoryKiB: 64, Threads: 1}) {
		t.Error("a hash of an older cost must be rehashed")
	}
	if !password.NeedsRehash("$argon2i$v=19$m=64,t=1,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", cheap) {
		t.Error("an argon2i hash must be rehashed")
	}
}

func TestParamsValidate(t *testing.T) {
	for _, p := range []password.Params{{Time: 0, MemoryKiB: 64, Threads: 1}, {Time: 1, MemoryKiB: 64, Threads: 0}, {Time: 1, MemoryKiB: 7, Threads: 1},
		{Time: 1, MemoryKiB: 1<<20 + 1, Threads: 1}, {Time: 5, MemoryKiB: 1 << 20, Threads: 1}} {
		if p.Validate() == nil {
			t.Errorf("%+v accepted", p)
		}
	}
	if err := password.Default.Validate(); err != nil {
		t.Error(err)
	}
}
