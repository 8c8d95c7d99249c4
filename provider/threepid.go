package provider

import (
	"fmt"
	"net/url"
	"strings"
)

// MSISDN returns the matching form of a phone number: E.164 digits
// without "+", as the Matrix spec writes an msisdn, with spaces, "-", "("
// and ")" removed. It reports false for anything that is not 2 to 15
// digits afterwards (E.164 numbers have at most 15).
func MSISDN(number string) (string, bool) {
	digits := strings.Map(func(r rune) rune {
		if strings.ContainsRune(" -()", r) {
			return -1
		}
		return r
	}, strings.TrimPrefix(strings.TrimSpace(number), "+"))
	if len(digits) < 2 || len(digits) > 15 || strings.Trim(digits, "0123456789") != "" {
		return "", false
	}
	return digits, true
}

func normaliseMSISDN(number string) (string, error) {
	if strings.TrimSpace(number) == "" {
		return "", nil
	}
	m, ok := MSISDN(number)
	if !ok {
		return "", fmt.Errorf("phone number %q is not an international number like +44 7700 900123 (E.164: up to 15 digits)", number)
	}
	return m, nil
}

// checkAvatarURL accepts "" or an mxc://server/media URI: Matrix clients
// show nothing else as an avatar.
func checkAvatarURL(avatar string) (string, error) {
	avatar = strings.TrimSpace(avatar)
	if avatar == "" {
		return "", nil
	}
	u, err := url.Parse(avatar)
	if err != nil || u.Scheme != "mxc" || u.Host == "" || len(u.Path) < 2 || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("avatar %q is not an mxc://server/media-id URI (upload the image to the homeserver first)", avatar)
	}
	return avatar, nil
}
