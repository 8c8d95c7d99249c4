package password_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mxidp/mxidp/provider/password"
)

// Damaged stored strings of every format are errors (ErrUnknownFormat),
// never a panic, and never a match.
func TestVerifyRejectsDamagedHashesOfEveryFormat(t *testing.T) {
	const (
		bc     = "$2b$05$0T22t8lezm8J2s72YG0xLexWbQUIAMuDTqjuq3iO8EoEHoc7nhgI."
		s512   = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
		drupal = "$S$DI7p94K2RG7Nq2OJp2/T55TfjT/K8UYdDVSUELOgCNbNoHU2sdtq"
	)
	for _, h := range []string{
		// no format
		"", "$", "$$", "$$$$$$", "{}", "{SSHA", "{FOO}abc", "$7$abc", "$argon2d$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"sha1$salt$hash", "md5$$abc", "!", "*", "!" + bc, " " + bc,
		// control characters or spaces inside
		bc + "\n", s512[:20] + "\n" + s512[20:], "{SSHA} OidrbJc+sMj52v3Ir3wYxlvQ5FaG0Pqf",
		// bcrypt
		"$2b$", "$2b$05$", bc[:59], bc + "x", "$2x$05$" + bc[7:], "$2b$5$" + bc[7:] + "x", "$2b$ab$" + bc[7:], "$2b$03$" + bc[7:],
		"$2b$05$" + strings.Repeat("!", 53), "$2b$+5$" + bc[7:], "$2b$05x" + bc[7:],
		// argon2
		"$argon2id$v=19$m=64,t=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=0$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=-64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
		"argon2$argon2d$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "argon2$", "argon2$$",
		// SHA-crypt
		"$5$", "$6$", "$6$salt", "$6$salt$", "$6$salt$short", s512 + "x", s512[:len(s512)-1] + "!",
		"$6$rounds=$salt$" + s512[len(s512)-86:], "$6$rounds=-1$salt$" + s512[len(s512)-86:], "$6$rounds=1e4$salt$" + s512[len(s512)-86:],
		"$6$rounds=5000", "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc", "$1$", "$1$salt$abc",
		// phpass, Drupal
		"$wp$2", "$wp$2y$10$short", "$wp$2y$99$" + strings.Repeat("a", 53), "$wp" + "$2x$10$" + strings.Repeat("a", 53),
		"$P$", "$P$B12345678", "$P$!12345678" + strings.Repeat("a", 22), "$P$412345678" + strings.Repeat("a", 22),
		"$P$B12345678" + strings.Repeat("!", 22), drupal[:54], drupal + "a", "U$", "U$X$abc", "U$" + drupal[:40],
		// PBKDF2
		"pbkdf2_sha256$", "pbkdf2_sha256$$$", "pbkdf2_sha256$0$salt$21nAUeHmqXmPnceBc29qsibOTH7skAcfqgJMdY9oLPY=",
		"pbkdf2_sha256$1000$$21nAUeHmqXmPnceBc29qsibOTH7skAcfqgJMdY9oLPY=",
		"pbkdf2_sha256$1000$salt$21nAUeHmqXmPnceBc29qsibOTH7skAcfqgJMdY9oLPY",
		"pbkdf2_sha256$1000$salt$!!!!", "pbkdf2_sha256$1000$salt$YWJj", "pbkdf2_sha256$x$salt$21nAUeHmqXmPnceBc29qsibOTH7skAcfqgJMdY9oLPY=",
		"pbkdf2_sha256$1000$salt$21nAUeHmqXmPnceBc29qsibOTH7skAcfqgJMdY9oLPY=$",
		"$pbkdf2-sha256$", "$pbkdf2-sha256$29000$iRGC0Brj/H/vvZdSSqnVeg$", "$pbkdf2-sha256$29000$!!!$ZkzlxQp5jKbTBRkTYn7qo/ds7YTIrzEhn8EbpL7fTLM",
		"$pbkdf2-sha256$29000$iRGC0Brj/H/vvZdSSqnVeg$ZkzlxQp5jKbTBRkTYn7qo/ds7YTIrzEhn8EbpL7fTL",
		"$pbkdf2-sha1$1000$c2FsdA$abc", "{PBKDF2-SHA1}1000$c2FsdA$abc", "{PBKDF2}", "{PBKDF2}$$",
		// Django bcrypt
		"bcrypt$", "bcrypt$" + bc[:50], "bcrypt_sha256$$", "bcrypt_sha256$" + bc + "x",
		// LDAP
		"{SSHA}", "{SSHA}!!!!", "{SSHA}YWJj", "{SSHA}" + strings.Repeat("QUFB", 6) + "QUE=" /* 20 bytes: no salt */, "{SHA}YWJj", "{SHA}4Jf5pUPthglq9KIbJb2CQOUaSb0",
		"{SSHA512}" + strings.Repeat("QUFB", 21) /* 63 bytes */, "{CRYPT}", "{CRYPT}abcdefghijklm", "{CRYPT}$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"{CRYPT}{CRYPT}" + s512, "{CRYPT}$P$B12345678" + strings.Repeat("a", 22), "{CRYPT}$6$salt",
	} {
		done := make(chan struct{})
		var ok bool
		var err error
		go func() {
			defer close(done)
			ok, err = password.Verify(h, "pw")
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("Verify(%q) hangs", h)
		}
		if ok || !errors.Is(err, password.ErrUnknownFormat) {
			t.Errorf("Verify(%q) = %v, %v; want ErrUnknownFormat", h, ok, err)
		}
		if f := password.Format(h); f != "unknown" {
			t.Errorf("Format(%q) = %q", h, f)
		}
		if !password.NeedsRehash(h, password.Default) {
			t.Errorf("NeedsRehash(%q) = false", h)
		}
	}
}

// A cost above the limits is an error at once, not minutes of work.
func TestVerifyRefusesHostileCostsQuickly(t *testing.T) {
	for _, h := range []string{
		"$2b$17$0T22t8lezm8J2s72YG0xLexWbQUIAMuDTqjuq3iO8EoEHoc7nhgI.",
		"$2y$31$0T22t8lezm8J2s72YG0xLexWbQUIAMuDTqjuq3iO8EoEHoc7nhgI.",
		"bcrypt_sha256$$2b$20$0T22t8lezm8J2s72YG0xLexWbQUIAMuDTqjuq3iO8EoEHoc7nhgI.",
		"$6$rounds=999999999$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
		"$5$rounds=10000001$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5",
		"$6$rounds=99999999999999999999$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
		"$S$zrandomsaOpYrAZqwxGynirQbWYCb3ejW4BwGH81LJcOzbzeVd02", // 2^30 SHA-512
		"$P$Nabcdefgh" + strings.Repeat("a", 22),                  // 2^24 MD5
		"pbkdf2_sha256$10000001$salt$21nAUeHmqXmPnceBc29qsibOTH7skAcfqgJMdY9oLPY=",
		"pbkdf2_sha1$999999999999$salt$SiBKTphv5y8sZKPXMZxLthk7ib0=",
		"$pbkdf2-sha512$2000000000$mdP6X0sJgVBKCWHsvfceYw$TaIKUuENcMgApk9gE6v2/QYGf.a9qmd/u8zN7XwyBpF/GZK.WEb2vn5Dlgl9fiKgejAVqyrBgVdBH2oIYog5ng",
		"{PBKDF2-SHA256}99999999$BSBkDGGs9X4vxfgfQ6iVEg$FoApuSsjWELTrilSlNFW6kk6lH6Qm597XMhk9OY44J0",
		"$argon2id$v=19$m=1048577,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=1048576,t=5,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2i$v=19$m=65536,t=999999999999999999,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"argon2$argon2id$v=19$m=9999999,t=2,p=8$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
	} {
		start := time.Now()
		ok, err := password.Verify(h, "pw")
		if ok || !errors.Is(err, password.ErrUnknownFormat) {
			t.Errorf("Verify(%.40q…) = %v, %v; want an error", h, ok, err)
		}
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Errorf("Verify(%.40q…) took %v", h, d)
		}
	}
}

func TestFormatsListsEveryFormatName(t *testing.T) {
	names := map[string]bool{}
	for _, f := range password.Formats() {
		names[f] = true
	}
	for _, v := range publishedVectors {
		if !names[v.format] {
			t.Errorf("Formats() lacks %q", v.format)
		}
	}
	if names["unknown"] || len(names) != len(password.Formats()) {
		t.Errorf("Formats() = %v", password.Formats())
	}
}
