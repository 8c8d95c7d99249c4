package provider

import (
	"errors"
	"fmt"
	"strings"
)

// maxMatrixIDLength is the Matrix limit on a whole user ID, "@local:server".
const maxMatrixIDLength = 255

// CanonicalLocalpart turns a username into the one Matrix localpart of the
// account (Matrix spec, "User Identifiers"; docs/rest.md): lower-cased,
// made only of a-z 0-9 . _ = - /, and short enough that
// "@localpart:serverName" fits 255 characters.
//
// Usernames that would not survive Synapse unchanged are refused rather than
// altered: Synapse escapes a leading "_" and reserves all-digit localparts
// for guests, so either would give the account two different Matrix IDs.
func CanonicalLocalpart(username, serverName string) (string, error) {
	// Only ASCII letters are folded: strings.ToLower would also turn
	// look-alikes such as the Kelvin sign (U+212A) into "k", giving a
	// second spelling of someone else's localpart.
	lp := strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, strings.TrimSpace(username))
	if lp == "" {
		return "", errors.New("username is empty")
	}
	for _, r := range lp {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("._=-/", r)) {
			return "", fmt.Errorf("username %q contains %q: a Matrix localpart allows only a-z, 0-9 and . _ = - /", username, r)
		}
	}
	if lp[0] == '_' {
		return "", fmt.Errorf("username %q starts with \"_\", which Synapse reserves for bridges and escapes", username)
	}
	if strings.Trim(lp, "0123456789") == "" {
		return "", fmt.Errorf("username %q is all digits, which Synapse reserves for guest accounts", username)
	}
	if n := len("@") + len(lp) + len(":") + len(serverName); n > maxMatrixIDLength {
		return "", fmt.Errorf("username %q is too long: @%s:%s would be %d characters, Matrix allows %d", username, lp, serverName, n, maxMatrixIDLength)
	}
	return lp, nil
}
