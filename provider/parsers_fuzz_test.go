package provider_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/mxidp/mxidp/provider"
)

var localpartPattern = regexp.MustCompile(`^[a-z0-9._=/-]+$`)

// FuzzCanonicalLocalpart: an accepted username gives a localpart of the
// Matrix alphabet, not starting with "_", not all digits, fitting a 255
// character Matrix ID, that is the trimmed username with ASCII capitals
// lowered (no other character may fold into the alphabet: the Kelvin sign
// is not a k) and is its own canonical form; and every username whose
// form has these properties is accepted.
func FuzzCanonicalLocalpart(f *testing.F) {
	for _, s := range []string{"alice", "Alice", "  Bob.Smith ", "a_b=c-d/e.f", "user1", "", " ", "_bridge", "12345",
		"alice smith", "ålice", "alice@example.org", "K\u212Aelvin", "\u0130stanbul", "a\x00b", "\xff", strings.Repeat("a", 300)} {
		f.Add(s, "example.org")
	}
	f.Add("alice", strings.Repeat("x", 250))
	f.Add("alice", "")
	f.Fuzz(func(t *testing.T, username, serverName string) {
		lp, err := provider.CanonicalLocalpart(username, serverName)
		want := asciiLower(strings.TrimSpace(username))
		acceptable := localpartPattern.MatchString(want) && want[0] != '_' && strings.Trim(want, "0123456789") != "" &&
			len("@"+want+":"+serverName) <= 255
		if err != nil {
			if lp != "" {
				t.Errorf("CanonicalLocalpart(%q) = %q and error %v", username, lp, err)
			}
			if err.Error() == "" {
				t.Errorf("CanonicalLocalpart(%q): empty error", username)
			}
			if acceptable {
				t.Errorf("CanonicalLocalpart(%q, %q) refused the valid localpart %q: %v", username, serverName, want, err)
			}
			return
		}
		if !acceptable || lp != want {
			t.Fatalf("CanonicalLocalpart(%q, %q) = %q; want %q or an error", username, serverName, lp, want)
		}
		again, err := provider.CanonicalLocalpart(lp, serverName)
		if err != nil || again != lp {
			t.Errorf("CanonicalLocalpart(%q) = %q, %v; not idempotent", lp, again, err)
		}
	})
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// FuzzMSISDN: an accepted number is the ASCII digits of the input, 2 to
// 15 of them, and its own matching form.
func FuzzMSISDN(f *testing.F) {
	for _, s := range []string{"447700900123", "+44 7700 900123", " +1 (555) 000-1111", "+", "", "447700900123x",
		"+44 +7700", "1234567890123456", "٤٤٧٧", "++4477", "(((12)))", "1\t2", "１２３", "\xff12"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, number string) {
		m, ok := provider.MSISDN(number)
		if !ok {
			if m != "" {
				t.Errorf("MSISDN(%q) = %q, false", number, m)
			}
			return
		}
		if len(m) < 2 || len(m) > 15 || strings.Trim(m, "0123456789") != "" {
			t.Fatalf("MSISDN(%q) = %q: not 2 to 15 ASCII digits", number, m)
		}
		digits := strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, number)
		if m != digits {
			t.Errorf("MSISDN(%q) = %q; the input's digits are %q", number, m, digits)
		}
		if again, ok := provider.MSISDN(m); !ok || again != m {
			t.Errorf("MSISDN(%q) = %q, %v; not idempotent", m, again, ok)
		}
	})
}

// FuzzReadImport: an import file is read without panic; a refusal names
// its problems; an accepted file gives canonical, distinct usernames and
// normalised e-mail addresses and phone numbers.
func FuzzReadImport(f *testing.F) {
	for _, s := range []string{
		`{"username":"alice","email":"Alice@Example.org","password_hash":"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"}`,
		"{\"username\":\"Bob\",\"msisdn\":\"+44 7700 900123\",\"groups\":[\"staff\"],\"email_verified\":false}\n\n{\"username\":\"carol\",\"disabled\":true}",
		`{"username":"alice"}` + "\n" + `{"username":"ALICE"}`,
		`{"username":"_bridge"}`,
		`{"username":"dave","unknown":1}`,
		`{"username":"dave","password_hash":"plain"}`,
		`{"username":"erin","avatar_url":"mxc://example.org/abc","display_name":"  Erin  "}`,
		`{"username":"frank","groups":[""]}`,
		`[]`, `null`, `{}`, "", "\n\n", `{"username":"gina"} trailing`,
		`{"username":"hal","email":"not an address"}`,
		strings.Repeat("x", 70000),
	} {
		f.Add(s)
	}
	a := &provider.Accounts{ServerName: "example.org"}
	f.Fuzz(func(t *testing.T, file string) {
		lines, err := a.ReadImport(strings.NewReader(file))
		if err != nil {
			if lines != nil {
				t.Errorf("ReadImport returned %d lines and the error %v", len(lines), err)
			}
			if !strings.Contains(err.Error(), "line") {
				t.Errorf("ReadImport error %q names no line", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, l := range lines {
			u := l.User
			if lp, err := provider.CanonicalLocalpart(u.Username, "example.org"); err != nil || lp != u.Username {
				t.Errorf("line %d: username %q is not canonical (%q, %v)", l.Line, u.Username, lp, err)
			}
			if seen[u.Username] {
				t.Errorf("line %d: username %q twice", l.Line, u.Username)
			}
			seen[u.Username] = true
			if u.Email != strings.ToLower(u.Email) || u.Email != strings.TrimSpace(u.Email) {
				t.Errorf("line %d: e-mail %q not normalised", l.Line, u.Email)
			}
			if u.MSISDN != "" {
				if m, ok := provider.MSISDN(u.MSISDN); !ok || m != u.MSISDN {
					t.Errorf("line %d: phone number %q not normalised", l.Line, u.MSISDN)
				}
			}
			if u.ID == "" || l.Line < 1 {
				t.Errorf("line %d: no user ID (%q) or line number", l.Line, u.ID)
			}
			for _, g := range l.Groups {
				if strings.TrimSpace(g) == "" {
					t.Errorf("line %d: empty group", l.Line)
				}
			}
		}
	})
}
