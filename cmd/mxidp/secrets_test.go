package main

import (
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// No password, secret, token or hash may appear in mxidp's logs. Tests
// note every such value they use or receive; the standard error of every
// started mxidp (at the end of its test) and of every CLI command is
// searched for all of them.

var knownSecrets sync.Map // value → true

// noteSecret remembers a value that must never be logged, and returns it.
// Values shorter than 6 bytes are too likely to occur by chance.
func noteSecret(s string) string {
	if v := strings.TrimSpace(s); len(v) >= 6 {
		knownSecrets.Store(v, true)
	}
	return s
}

// generatedSecretRE finds secrets that commands print for the operator.
var generatedSecretRE = regexp.MustCompile(`(?m)^(?:password|client_secret|access_token|refresh_token): (\S+)`)

// noteGenerated remembers the secrets a command printed on its output.
func noteGenerated(out string) {
	for _, m := range generatedSecretRE.FindAllStringSubmatch(out, -1) {
		noteSecret(m[1])
	}
}

// noteCookies remembers the values of the cookies a response set.
func noteCookies(resp *http.Response) {
	for _, c := range resp.Cookies() {
		noteSecret(c.Value)
	}
}

// checkLogHasNoSecrets fails t if log contains a noted value.
func checkLogHasNoSecrets(t testing.TB, where, log string) {
	t.Helper()
	knownSecrets.Range(func(k, _ any) bool {
		if s := k.(string); strings.Contains(log, s) {
			t.Errorf("%s logged a secret (%.4s…)", where, s)
		}
		return true
	})
}

func TestTheSecretCheckFindsALoggedSecret(t *testing.T) {
	noteSecret("s3cret-for-the-self-test")
	inner := &testing.T{}
	ft := &fakeT{TB: inner}
	checkLogHasNoSecrets(ft, "a log", `level=INFO msg="login" password=s3cret-for-the-self-test`)
	if !ft.failed {
		t.Error("a logged secret went unnoticed")
	}
	ft = &fakeT{TB: inner}
	checkLogHasNoSecrets(ft, "a log", `level=INFO msg="login" user=alice`)
	if ft.failed {
		t.Error("a clean log was reported")
	}
}

// fakeT records a failure instead of failing the test.
type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Helper()               {}
func (f *fakeT) Errorf(string, ...any) { f.failed = true }
