package provider_test

import (
	"testing"

	"github.com/mxidp/mxidp/provider"
)

func TestMSISDNMatchingForm(t *testing.T) {
	for in, want := range map[string]string{
		"447700900123":       "447700900123",
		"+44 7700 900123":    "447700900123",
		" +1 (555) 000-1111": "15550001111",
		"+":                  "",
		"":                   "",
		"447700900123x":      "",
		"+44 +7700":          "",
		"1234567890123456":   "", // 16 digits: longer than E.164 allows
		"٤٤٧٧":               "", // digits only in ASCII
	} {
		got, ok := provider.MSISDN(in)
		if got != want || ok != (want != "") {
			t.Errorf("MSISDN(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}
