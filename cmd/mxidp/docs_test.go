package main

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/mxidp/mxidp/storage"
	"github.com/mxidp/mxidp/storage/storagetest"
	"gopkg.in/yaml.v3"
)

// The commented example and the README's table must name every option, and
// the example must load as it is.
func TestEveryOptionIsDocumentedAndTheExampleLoads(t *testing.T) {
	example, err := os.ReadFile("../../docs/mxidp.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range optionKeys(reflect.TypeOf(Config{}), "") {
		leaf := key[strings.LastIndex(key, ".")+1:]
		if !strings.Contains(string(example), leaf+":") {
			t.Errorf("docs/mxidp.example.yaml does not show %s", key)
		}
		if !strings.Contains(string(readme), "`"+key+"`") {
			t.Errorf("README.md's configuration table lacks `%s`", key)
		}
	}
	if _, err := LoadConfig("../../docs/mxidp.example.yaml", env(nil)); err != nil {
		t.Errorf("the example does not load: %v", err)
	}
}

// optionKeys lists the dotted YAML keys of a config struct's leaves.
func optionKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		key := prefix + f.Tag.Get("yaml")
		// The argon2id cost and the queries are documented as one option each.
		if f.Type.Kind() == reflect.Struct && key != "passwords.argon2id" && key != "users.platform.queries" {
			keys = append(keys, optionKeys(f.Type, key+".")...)
			continue
		}
		keys = append(keys, key)
	}
	return keys
}

// TestDocsDjangoExampleIsTheTestedOne keeps docs/platform.md's Django
// example the same as the queries the platform tests run.
func TestDocsDjangoExampleIsTheTestedOne(t *testing.T) {
	checkDocsExample(t, "django-example", storagetest.DjangoQueries("postgres"))
}

// TestDocsWordPressExampleIsTheTestedOne does the same for WordPress.
func TestDocsWordPressExampleIsTheTestedOne(t *testing.T) {
	checkDocsExample(t, "wordpress-example", storagetest.WordPressQueries())
}

// checkDocsExample compares the queries of the yaml block after the
// marker in docs/platform.md with want, ignoring layout.
func checkDocsExample(t *testing.T, marker string, want storage.PlatformQueries) {
	t.Helper()
	doc, err := os.ReadFile("../../docs/platform.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "<!-- "+marker)
	_, rest, ok2 := strings.Cut(rest, "```yaml\n")
	block, _, ok3 := strings.Cut(rest, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatalf("docs/platform.md has no yaml block after the %s marker", marker)
	}
	var c struct {
		Users UsersConfig `yaml:"users"`
	}
	if err := yaml.Unmarshal([]byte(block), &c); err != nil {
		t.Fatalf("the %s is not valid YAML: %v", marker, err)
	}
	same := func(a, b string) bool {
		return strings.Join(strings.Fields(a), " ") == strings.Join(strings.Fields(b), " ")
	}
	got := c.Users.Platform.Queries
	for name, pair := range map[string][2]string{
		"by_login": {got.ByLogin, want.ByLogin}, "by_id": {got.ByID, want.ByID},
		"by_email": {got.ByEmail, want.ByEmail}, "search": {got.Search, want.Search},
	} {
		if !same(pair[0], pair[1]) {
			t.Errorf("docs/platform.md's %s %s differs from the tested query:\ndocs:   %s\ntested: %s", marker, name, pair[0], pair[1])
		}
	}
	if problems := checkPlatformDatabaseURL("users.platform.database", c.Users.Platform.Database); problems != nil {
		t.Errorf("the %s's database URL: %v", marker, problems)
	}
}
