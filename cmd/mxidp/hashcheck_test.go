package main

import (
	"strings"
	"testing"

	"github.com/mxidp/mxidp/provider/password"
)

func TestHashCheck(t *testing.T) {
	// hash-check needs no configuration and no database.
	c := &cli{t: t, env: map[string]string{}}
	pw := noteSecret("hash-check pässwörd Zq8")
	argon, err := password.Hash(pw, password.Params{Time: 1, MemoryKiB: 64, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Drepper's SHA-crypt.txt, first SHA-512 test vector.
	const sha512 = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
	noteSecret(argon)
	noteSecret(sha512)
	noteSecret("plain-text-secret")

	for _, tc := range []struct {
		name, stdin    string
		status         int
		stdout, stderr string
	}{
		{"argon2id match", argon + "\n" + pw + "\n", 0, "argon2id: match\n", ""},
		{"sha512-crypt match, CRLF, no last newline", sha512 + "\r\nHello world!", 0, "sha512-crypt: match\n", ""},
		{"no match", argon + "\n" + pw + "x\n", 1, "argon2id: no match\n", "does not match"},
		{"empty password, no match", sha512 + "\n\n", 1, "sha512-crypt: no match\n", "does not match"},
		{"unknown format", "plain-text-secret\n" + pw + "\n", 2, "", "supported formats: argon2id, argon2i, bcrypt"},
		{"damaged hash", sha512[:40] + "\n" + pw + "\n", 2, "", "sha512-crypt: checksum"},
		{"one line only", argon + "\n", 2, "", "1 lines, not 2"},
		{"nothing", "", 2, "", "0 lines, not 2"},
		{"three lines", argon + "\n" + pw + "\nmore\n", 2, "", "3 lines, not 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, out, errOut := c.run(tc.stdin, "hash-check")
			if status != tc.status || out != tc.stdout || !strings.Contains(errOut, tc.stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stdout %q, stderr containing %q",
					status, out, errOut, tc.status, tc.stdout, tc.stderr)
			}
			if tc.status == 1 && strings.Count(errOut, "\n") != 1 {
				t.Errorf("stderr is not one line: %q", errOut)
			}
			checkLogHasNoSecrets(t, "mxidp hash-check (stdout)", out)
		})
	}

	status, out, _ := c.run("", "hash-check", "--help")
	if status != 0 || !strings.Contains(out, `printf '%s\n%s\n' "$HASH" "$PW" | mxidp hash-check`) || !strings.Contains(out, "drupal7") {
		t.Errorf("hash-check --help: exit %d\n%s", status, out)
	}
	if status, _, _ := c.run("", "hash-check", "extra"); status != 2 {
		t.Errorf("hash-check with an argument: exit %d, want 2", status)
	}
}
