package password

import (
	"crypto/hmac"
	"crypto/sha512"
	"encoding/base64"
)

// WordPress 6.8 and later store "$wp" followed by a bcrypt hash ($2y$) of
// a pre-hashed password: the standard base64 of HMAC-SHA384 keyed with the
// fixed string "wp-sha384". The pre-hash lets passwords longer than
// bcrypt's 72 bytes count in full. (Older WordPress hashes are phpass
// $P$, in phpass.go.)
func parseWordPressBcrypt(s string) (stored, error) {
	return readBcrypt(s[len("$wp"):], "wordpress-bcrypt", wordpressPrehash)
}

func wordpressPrehash(pw []byte) []byte {
	mac := hmac.New(sha512.New384, []byte("wp-sha384"))
	mac.Write(pw)
	return []byte(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
}
