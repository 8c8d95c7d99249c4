package main

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// synapseProvider is the part of Synapse's oidc_providers entry mxidp writes.
type synapseProvider struct {
	IdpID            string   `yaml:"idp_id"`
	IdpName          string   `yaml:"idp_name"`
	IdpBrand         string   `yaml:"idp_brand"`
	Issuer           string   `yaml:"issuer"`
	ClientID         string   `yaml:"client_id"`
	ClientSecretPath string   `yaml:"client_secret_path"`
	ClientAuthMethod string   `yaml:"client_auth_method"`
	PKCEMethod       string   `yaml:"pkce_method"`
	Scopes           []string `yaml:"scopes"`
	Backchannel      bool     `yaml:"backchannel_logout_enabled"`
	Mapping          struct {
		Config map[string]string `yaml:"config"`
	} `yaml:"user_mapping_provider"`
}

func parseSynapseConfig(t *testing.T, out string) synapseProvider {
	t.Helper()
	var doc struct {
		Providers []synapseProvider `yaml:"oidc_providers"`
	}
	if err := yaml.Unmarshal([]byte(out), &doc); err != nil || len(doc.Providers) != 1 {
		t.Fatalf("synapse-config output is not one oidc_providers entry (%v):\n%s", err, out)
	}
	return doc.Providers[0]
}

func TestSynapseConfigPrintsAWorkingProviderBlock(t *testing.T) {
	c := newCLI(t, "sqlite")
	c.must("", "client", "add", "synapse", "--redirect-uri", "https://matrix.example.org/_synapse/client/oidc/callback",
		"--backchannel-logout-uri", "https://matrix.example.org/_synapse/client/oidc/backchannel_logout")
	out := c.must("", "synapse-config", "--client", "synapse", "--idp-name", `Our "Platform"`)
	p := parseSynapseConfig(t, out)
	if p.Issuer != "https://id.example.org" || p.ClientID != "synapse" || p.IdpName != `Our "Platform"` || p.IdpID != "mxidp" ||
		p.ClientAuthMethod != "client_secret_basic" || p.ClientSecretPath == "" || !p.Backchannel || p.IdpBrand != "mxidp" ||
		strings.Join(p.Scopes, " ") != "openid profile email" {
		t.Errorf("provider block: %+v", p)
	}
	for key, want := range map[string]string{
		"subject_template":      "{{ user.sub }}",
		"localpart_template":    "{{ user.preferred_username }}",
		"display_name_template": "{{ user.name }}",
		"email_template":        "{{ user.email }}",
	} {
		if p.Mapping.Config[key] != want {
			t.Errorf("%s = %q, want %q", key, p.Mapping.Config[key], want)
		}
	}
	if !strings.Contains(out, "# ") || !strings.Contains(out, "public_baseurl") {
		t.Error("no comment saying what to check")
	}
	if strings.Contains(out, "no back-channel logout URI") {
		t.Error("warns about a back-channel URI that is registered")
	}
}

func TestSynapseConfigForAPublicClientUsesPKCE(t *testing.T) {
	c := newCLI(t, "sqlite")
	c.must("", "client", "add", "pub", "--public", "--redirect-uri", "https://m.example.org/_synapse/client/oidc/callback")
	p := parseSynapseConfig(t, c.must("", "synapse-config", "--client", "pub"))
	if p.ClientAuthMethod != "none" || p.PKCEMethod != "always" || p.ClientSecretPath != "" {
		t.Errorf("public client block: %+v", p)
	}
	if status, _, errOut := c.run("", "synapse-config", "--client", "nobody"); status != 1 || !strings.Contains(errOut, "client add") {
		t.Errorf("unknown client: exit %d, %q", status, errOut)
	}
	if status, _, _ := c.run("", "synapse-config"); status != 2 {
		t.Errorf("missing --client: exit %d, want 2", status)
	}
}
