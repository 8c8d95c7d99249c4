package web

import (
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"testing"
)

func TestEveryCatalogueHasEveryMessage(t *testing.T) {
	for lang, msgs := range catalogues {
		for id, en := range catalogues["en"] {
			m, ok := msgs[id]
			if !ok || m == "" {
				t.Errorf("%s lacks %s", lang, id)
			}
			if strings.Count(m, "%") != strings.Count(en, "%") {
				t.Errorf("%s %s has other format verbs than English", lang, id)
			}
		}
		for id := range msgs {
			if _, ok := catalogues["en"][id]; !ok {
				t.Errorf("%s has %s, which English lacks", lang, id)
			}
		}
	}
	var langs []string
	for l := range catalogues {
		langs = append(langs, l)
	}
	sort.Strings(langs)
	if strings.Join(langs, ",") != "de,en" {
		t.Errorf("catalogues %v, want de and en", langs)
	}
}

func TestLocaleComesFromUILocalesThenAcceptLanguage(t *testing.T) {
	for _, c := range []struct{ uiLocales, accept, want string }{
		{"", "", "en"},
		{"", "de-DE,de;q=0.9,en;q=0.5", "de"},
		{"", "fr-FR, fr;q=0.9", "en"},
		{"de", "en-US", "de"},
		{"en", "de", "en"},
		{"fr de-AT", "en", "de"},
		{"%%% nonsense", "de", "de"},
	} {
		r := httptest.NewRequest("GET", "/login", nil)
		if c.accept != "" {
			r.Header.Set("Accept-Language", c.accept)
		}
		if got := pickLocale(c.uiLocales, r); got.Lang != c.want || got.T("login.title") != catalogues[c.want]["login.title"] {
			t.Errorf("ui_locales %q, Accept-Language %q: %s, want %s", c.uiLocales, c.accept, got.Lang, c.want)
		}
	}
}

func TestEveryTemplateMessageIDExists(t *testing.T) {
	used := regexp.MustCompile(`\.Tf? "([a-z_.]+)"`)
	entries, err := templateFiles.ReadDir("templates")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, e := range entries {
		b, err := templateFiles.ReadFile("templates/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range used.FindAllStringSubmatch(string(b), -1) {
			seen++
			if _, ok := catalogues["en"][m[1]]; !ok {
				t.Errorf("%s uses unknown message %q", e.Name(), m[1])
			}
		}
	}
	if seen < 5 {
		t.Errorf("found only %d message IDs in the templates: the pattern is wrong", seen)
	}
}
