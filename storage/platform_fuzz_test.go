package storage

import (
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

var simpleName = regexp.MustCompile(`^[A-Za-z0-9_.:@-]+$`)

// quotePG writes e as a double-quoted element of a PostgreSQL text array.
func quotePG(e string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(e) + `"`
}

// FuzzPlatformColumnParsers reads fuzzed platform column values as text,
// booleans and group lists. Properties: no panic; text gives strings and
// bytes back unchanged; truth agrees between string and bytes and with
// booleans and numbers; list gives no empty or untrimmed names, the same
// for string and bytes; a comma-separated list of simple names and a
// PostgreSQL array of any trimmed names (quoted and escaped) round-trip.
func FuzzPlatformColumnParsers(f *testing.F) {
	for _, s := range []string{"staff,admins", " staff , , admins ", "{staff,admins}", `{"a b","c,d","e\"f","g\\h",NULL,null}`,
		"{}", "{", "}", `{"unterminated`, `{\}`, `{"a"b,c}`, "t", "TRUE", " yes ", "0", "off", "", ",,,", "{{a,b},{c,d}}",
		"\xff,\xfe", `{"",""}`, `{" "}`, "{a,,b}"} {
		f.Add(s, int64(0), 0.0, false)
	}
	f.Add("a|b|c d|NULL|e\"f", int64(1), 1.5, true)
	f.Add("", int64(math.MinInt64), math.Inf(-1), true)
	f.Add("x", int64(-7), math.NaN(), false)

	f.Fuzz(func(t *testing.T, s string, n int64, x float64, b bool) {
		// text
		if got := text(s); got != s {
			t.Errorf("text(%q) = %q", s, got)
		}
		if got := text([]byte(s)); got != s {
			t.Errorf("text([]byte(%q)) = %q", s, got)
		}
		if text(nil) != "" {
			t.Error("text(nil) not empty")
		}
		if got := text(n); got != strconv.FormatInt(n, 10) {
			t.Errorf("text(%d) = %q", n, got)
		}
		if got, err := strconv.ParseFloat(text(x), 64); !math.IsNaN(x) && (err != nil || got != x) {
			t.Errorf("text(%v) = %q does not read back: %v", x, text(x), err)
		}

		// truth
		if truth(s) != truth([]byte(s)) {
			t.Errorf("truth(%q) differs for string and bytes", s)
		}
		if truth(b) != b || truth(text(b)) != b || truth(strings.ToUpper(text(b))) != b {
			t.Errorf("truth(%v) does not round-trip", b)
		}
		if truth(n) != (n != 0) {
			t.Errorf("truth(%d) = %v", n, truth(n))
		}
		if truth(nil) {
			t.Error("truth(nil) is true")
		}
		if truth(s) {
			switch strings.ToLower(strings.TrimSpace(s)) {
			case "t", "true", "1", "y", "yes", "on":
			default:
				t.Errorf("truth(%q) is true", s)
			}
		}

		// list
		got := list(s)
		if got == nil {
			t.Errorf("list(%q) is nil, not empty", s)
		}
		for _, g := range got {
			if g == "" || g != strings.TrimSpace(g) {
				t.Errorf("list(%q) has the name %q", s, g)
			}
		}
		if again := list([]byte(s)); !slices.Equal(got, again) {
			t.Errorf("list(%q) = %q, but %q for bytes", s, got, again)
		}
		if len(list(nil)) != 0 {
			t.Error("list(nil) not empty")
		}

		// Round trips of the names in s separated by "|".
		var simple, trimmed []string
		for _, e := range strings.Split(s, "|") {
			if simpleName.MatchString(e) {
				simple = append(simple, e)
			}
			if e != "" && e == strings.TrimSpace(e) && utf8.ValidString(e) {
				trimmed = append(trimmed, e)
			}
		}
		if simple == nil {
			simple = []string{}
		}
		if got := list(strings.Join(simple, ",")); !slices.Equal(got, simple) {
			t.Errorf("list(%q) = %q; want %q", strings.Join(simple, ","), got, simple)
		}
		if got := list(" " + strings.Join(simple, " , ") + " "); !slices.Equal(got, simple) {
			t.Errorf("list(%q) = %q; want %q", strings.Join(simple, " , "), got, simple)
		}
		var plain []string // unquoted array elements: simple names but NULL
		for _, e := range simple {
			if !strings.EqualFold(e, "NULL") {
				plain = append(plain, e)
			}
		}
		if plain == nil {
			plain = []string{}
		}
		if got := list("{" + strings.Join(plain, ",") + "}"); !slices.Equal(got, plain) {
			t.Errorf("list(%q) = %q; want %q", "{"+strings.Join(plain, ",")+"}", got, plain)
		}
		quoted := make([]string, len(trimmed))
		for i, e := range trimmed {
			quoted[i] = quotePG(e)
		}
		if trimmed == nil {
			trimmed = []string{}
		}
		array := "{" + strings.Join(quoted, ",") + "}"
		if got := list(array); !slices.Equal(got, trimmed) {
			t.Errorf("list(%q) = %q; want %q", array, got, trimmed)
		}
	})
}
