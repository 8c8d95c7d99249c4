package main

import (
	"os"
	"reflect"
	"strings"
	"testing"
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
