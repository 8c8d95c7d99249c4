package main

import (
	"strings"
	"testing"
)

// With the REST service on, synapse-config's comments name the shipped
// module with mxidp's listen address (loopback for an unspecified one);
// with it off they say nothing about it.
func TestSynapseConfigNamesTheShippedRESTModule(t *testing.T) {
	for _, tc := range []struct{ listen, want string }{
		{"127.0.0.1:8080", `endpoint: "http://127.0.0.1:8080"`},
		{"0.0.0.0:9000", `endpoint: "http://127.0.0.1:9000"`},
		{":9001", `endpoint: "http://127.0.0.1:9001"`},
		{"10.1.2.3:8080", `endpoint: "http://10.1.2.3:8080"`},
		{"[::1]:8080", `endpoint: "http://[::1]:8080"`},
	} {
		c := Config{Listen: tc.listen}
		c.REST.Enabled = true
		got := restModuleHint(c)
		if !strings.Contains(got, "#   - module: mxidp_rest_auth.RestAuthProvider\n") || !strings.Contains(got, tc.want) ||
			!strings.Contains(got, "contrib/synapse/mxidp_rest_auth.py") {
			t.Errorf("listen %s: hint\n%s\nwant the module and %s", tc.listen, got, tc.want)
		}
		for _, line := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
			if !strings.HasPrefix(line, "#") {
				t.Errorf("listen %s: uncommented line %q", tc.listen, line)
			}
		}
	}
	if got := restModuleHint(Config{Listen: "127.0.0.1:8080"}); got != "" {
		t.Errorf("REST off: hint %q; want none", got)
	}
}
