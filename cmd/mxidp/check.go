package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/mxidp/mxidp/keys"
	"github.com/mxidp/mxidp/provider"
	"github.com/mxidp/mxidp/storage"
	"github.com/spf13/cobra"
)

// restProbePath is the REST service's password check, the endpoint that
// must never answer the public (docs/rest.md).
const restProbePath = "/_matrix-internal/identity/v1/check_credentials"

// checker prints one line per check: ok, warn or FAIL, what was checked,
// and for each problem the fix.
type checker struct {
	out    io.Writer
	failed bool
	client *http.Client
}

func (k *checker) ok(what string, args ...any) {
	fmt.Fprintf(k.out, "ok    %s\n", fmt.Sprintf(what, args...))
}

func (k *checker) warn(what string, args ...any) {
	fmt.Fprintf(k.out, "warn  %s\n", fmt.Sprintf(what, args...))
}

func (k *checker) fail(what string, args ...any) {
	k.failed = true
	fmt.Fprintf(k.out, "FAIL  %s\n", fmt.Sprintf(what, args...))
}

func (a *app) checkCommand() *cobra.Command {
	var synapseURL, fromOutside, idpID string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check a deployment: issuer, discovery, clock, database, keys, REST exposure, Synapse",
		Long: "check reads the same configuration as serve, while serve runs, and prints one line per check\n" +
			"(ok, warn or FAIL) with the fix for each problem. It changes no setting, key or account.\n" +
			"Exit status: 0 when nothing failed (warnings do not fail), 1 when something failed, 2 for\n" +
			"usage errors. README, \"Checking a deployment\", lists the checks.",
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if timeout <= 0 {
				return usageError{errors.New("--timeout must be positive")}
			}
			for _, flag := range [][2]string{{"--synapse", synapseURL}, {"--from-outside", fromOutside}} {
				name, v := flag[0], flag[1]
				if v == "" {
					continue
				}
				if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					return usageError{fmt.Errorf("%s: %q is not an http(s) URL", name, v)}
				}
			}
			k := &checker{out: a.stdout, client: &http.Client{Timeout: timeout,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
			a.check(cmd.Context(), k, synapseURL, fromOutside, idpID)
			if k.failed {
				return errCheckFailed
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&synapseURL, "synapse", "", "Synapse's client-server URL, to check that its login shows mxidp (default: matrix.synapse.url in next-gen mode)")
	f.StringVar(&fromOutside, "from-outside", "", "the public URL mxidp is reached at from outside, for the REST exposure probe (default: the issuer)")
	f.StringVar(&idpID, "idp-id", "mxidp", "legacy: the idp_id given to mxidp synapse-config")
	f.DurationVar(&timeout, "timeout", 5*time.Second, "timeout of each HTTP request")
	return cmd
}

// errCheckFailed is check's exit 1: the lines already said why.
var errCheckFailed = errors.New("the deployment check failed (see the FAIL lines)")

func (a *app) check(ctx context.Context, k *checker, synapseURL, fromOutside, idpID string) {
	c, err := a.config()
	var cfgErr *ConfigError
	if errors.As(err, &cfgErr) {
		for _, p := range cfgErr.Problems {
			if strings.HasPrefix(p, "issuer: ") && strings.Contains(p, "must use https") {
				continue // the issuer check says it
			}
			k.fail("configuration (%s): %s", cfgErr.Source, p)
		}
	} else if err != nil {
		k.fail("configuration: %v", err)
	}
	if c.Issuer == "" {
		return
	}
	issuerOK := k.checkIssuerScheme(c.Issuer)
	var dates []time.Time
	if issuerOK {
		if d, ok := k.checkDiscovery(c.Issuer); ok {
			dates = append(dates, d)
		}
	}
	if synapseURL == "" && c.Matrix.Synapse.NextGen() {
		synapseURL = c.Matrix.Synapse.URL
	}
	if synapseURL != "" {
		if d, ok := k.checkSynapse(c, synapseURL, idpID); ok {
			dates = append(dates, d)
		}
	}
	k.checkClock(dates)
	k.checkStore(ctx, c)
	if c.REST.Enabled {
		k.checkRESTNetworks(c.REST.AllowedNetworks)
		target := fromOutside
		if target == "" && issuerOK {
			target = c.Issuer
		}
		if target != "" {
			k.checkRESTExposure(target)
		}
	}
}

func (k *checker) checkIssuerScheme(issuer string) bool {
	u, err := url.Parse(issuer)
	switch {
	case err != nil || u.Host == "":
		return false // the configuration lines say why
	case u.Scheme == "https":
		k.ok("issuer %s is https", issuer)
	case u.Scheme == "http" && provider.IsLoopback(u.Hostname()):
		k.warn("issuer %s is plain http on a loopback host: development only; set an https issuer for production", issuer)
	default:
		k.fail("issuer %s is not https: Synapse and browsers need https; put mxidp behind a TLS proxy and set issuer to its https URL", issuer)
		return false
	}
	return true
}

// getJSON fetches a URL and decodes a JSON answer into v.
func (k *checker) getJSON(u string, v any) (*http.Response, error) {
	resp, err := k.client.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return resp, fmt.Errorf("not JSON: %v", err)
	}
	return resp, nil
}

func (k *checker) checkDiscovery(issuer string) (time.Time, bool) {
	u := issuer + "/.well-known/openid-configuration"
	var doc struct {
		Issuer *string `json:"issuer"`
	}
	resp, err := k.getJSON(u, &doc)
	if err != nil {
		k.fail("discovery %s: %s; start mxidp serve, and check that DNS, the TLS proxy and its route to mxidp's listen address reach it", u, oneLine(err.Error()))
		return time.Time{}, false
	}
	switch {
	case doc.Issuer == nil:
		k.fail("discovery %s answers without an issuer: something else than mxidp answers there; route the issuer's URL to mxidp", u)
	case *doc.Issuer != issuer:
		k.fail("discovery %s publishes issuer %q, not the configured %q: relying parties compare it byte for byte; "+
			"make the proxy pass requests unchanged to the mxidp whose issuer is %q, or set issuer to the URL users reach", u, *doc.Issuer, issuer, issuer)
	default:
		k.ok("discovery %s answers with issuer %q", u, issuer)
	}
	return responseDate(resp)
}

// responseDate returns the time an answer's Date header gives, for
// checkClock, and false when there is no answer or no valid header.
func responseDate(resp *http.Response) (time.Time, bool) {
	if resp == nil {
		return time.Time{}, false
	}
	d, err := http.ParseTime(resp.Header.Get("Date"))
	return d, err == nil
}

// checkClock compares this host's clock with the Date headers of the
// answers: ID tokens carry iat and exp, which relying parties check.
func (k *checker) checkClock(dates []time.Time) {
	if len(dates) == 0 {
		k.warn("clock: not checked, no answer carried a Date header; keep the clock synchronised (systemd-timesyncd, chrony)")
		return
	}
	var worst time.Duration
	for _, d := range dates {
		off := time.Since(d).Truncate(time.Second)
		if off < 0 {
			off = -off
		}
		// The header has a resolution of one second.
		off -= time.Second
		if off > worst {
			worst = off
		}
	}
	switch {
	case worst > time.Minute:
		k.fail("clock: this host and a server differ by %v or more: tokens carry iat and exp; synchronise both clocks (systemd-timesyncd, chrony)", worst)
	case worst > 5*time.Second:
		k.warn("clock: this host and a server differ by %v or more; synchronise both clocks (systemd-timesyncd, chrony)", worst)
	default:
		k.ok("clock agrees with the servers' Date headers")
	}
}

func (k *checker) checkStore(ctx context.Context, c Config) {
	if c.Database == "" {
		return
	}
	redacted := storage.RedactURL(c.Database)
	if !storage.IsPostgresURL(c.Database) {
		path, _, _ := strings.Cut(strings.TrimPrefix(c.Database, "sqlite://"), "?")
		if _, err := os.Stat(path); err != nil {
			k.fail("database %s: %v; run mxidp migrate to create it, or point database at the existing file", redacted, errors.Unwrap(err))
			k.checkSecretFile(c.SecretKeyFile)
			return
		}
	}
	ctx, cancel := context.WithTimeout(ctx, k.client.Timeout)
	defer cancel()
	s, err := storage.Open(ctx, c.Database, storage.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		k.fail("database %s does not answer: %s; start the database server and check the URL, user and password", redacted, oneLine(err.Error()))
		k.checkSecretFile(c.SecretKeyFile)
		return
	}
	defer s.Close()
	current, latest, err := s.SchemaVersion(ctx)
	schemaOK := false
	switch {
	case err != nil:
		k.fail("database %s: cannot read its schema version: %s; check that the database user may read it", redacted, oneLine(err.Error()))
	case current < latest:
		k.fail("database %s: schema at version %d, this binary's is %d; run mxidp migrate", redacted, current, latest)
	case current > latest:
		k.fail("database %s: schema at version %d, newer than this binary's %d: this binary is older than the database; install the mxidp that migrated it", redacted, current, latest)
	default:
		k.ok("database %s answers, schema at version %d", redacted, current)
		schemaOK = true
	}
	secret := k.checkSecretFile(c.SecretKeyFile)
	if !schemaOK || secret == nil {
		return
	}
	sealer, err := keys.NewSealer(secret, "signing keys")
	if err != nil {
		k.fail("secret key file %s: %v; restore the file this deployment was started with", c.SecretKeyFile, err)
		return
	}
	ring := keys.NewRing(s, sealer, ringConfig(c, slog.New(slog.DiscardHandler)))
	if err := ring.Load(ctx); err != nil {
		k.fail("key ring: %s; every instance needs the secret_key_file that sealed the keys: restore it from a backup", oneLine(err.Error()))
		return
	}
	if err := ring.SigningKeyReady(); err != nil {
		k.fail("key ring: %s; start mxidp serve, which makes the missing keys, or run mxidp keys rotate", oneLine(err.Error()))
		return
	}
	k.ok("key ring: an active key that unseals for each of %s", strings.Join(keys.Algorithms, ", "))
}

// checkSecretFile checks the secret key file's mode and returns its
// secret, or nil.
func (k *checker) checkSecretFile(path string) []byte {
	if path == "" {
		return nil
	}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		k.fail("secret key file %s does not exist; restore it from a backup, or on a fresh installation start mxidp serve, which creates it", path)
		return nil
	}
	if err != nil {
		k.fail("secret key file %s: %v; make it readable by the user mxidp runs as", path, err)
		return nil
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		k.fail("secret key file %s has mode %04o, readable by others; chmod 600 %s", path, perm, path)
	} else {
		k.ok("secret key file %s has mode %04o", path, perm)
	}
	secret, err := keys.LoadSecret(path)
	if err != nil {
		k.fail("secret key file %s: %s; restore the file this deployment was started with", path, oneLine(err.Error()))
		return nil
	}
	return secret
}

// checkRESTNetworks warns about an allow-list reaching beyond private and
// loopback networks, and fails one that admits every address.
func (k *checker) checkRESTNetworks(networks []string) {
	if len(networks) == 0 {
		k.fail("rest.allowed_networks is empty, so the REST service answers every address; list the networks of Synapse and ma1sd, like 10.0.0.0/8")
		return
	}
	var public []string
	for _, n := range networks {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			continue // the configuration lines say why
		}
		p = p.Masked()
		if p.Bits() == 0 {
			k.fail("rest.allowed_networks has %s, every address; list only the networks of Synapse and ma1sd, like 10.0.0.0/8", n)
			return
		}
		if !privatePrefix(p) {
			public = append(public, n)
		}
	}
	if len(public) > 0 {
		k.warn("rest.allowed_networks has %s beyond private and loopback networks; make sure only Synapse and ma1sd are there", strings.Join(public, ", "))
		return
	}
	k.ok("rest.allowed_networks holds only private and loopback networks")
}

// privateRanges are the private and loopback networks (RFC 1918, RFC 4193)
// and the link-local ones.
var privateRanges = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12"), netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("fc00::/7"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("fe80::/10"),
}

// privatePrefix reports whether the whole of p lies in a private or
// loopback range (10.0.0.0/7 is not, though it starts in one).
func privatePrefix(p netip.Prefix) bool {
	for _, q := range privateRanges {
		if q.Addr().Is4() == p.Addr().Is4() && q.Bits() <= p.Bits() && q.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// checkRESTExposure posts to check_credentials through the public URL.
// mxidp refuses a client outside rest.allowed_networks with 403
// M_FORBIDDEN (provider/ma1sd); a proxy that does not route the path
// answers 403 or 404. Anything else was served.
func (k *checker) checkRESTExposure(base string) {
	u := strings.TrimSuffix(base, "/") + restProbePath
	resp, err := k.client.Post(u, "application/json", strings.NewReader(`{}`))
	if err != nil {
		k.warn("REST exposure: %s not probed: %s; run mxidp check --from-outside URL where the public reaches mxidp", u, oneLine(err.Error()))
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Errcode string `json:"errcode"`
	}
	_ = json.Unmarshal(body, &e)
	switch {
	case resp.StatusCode == http.StatusForbidden && e.Errcode == "M_FORBIDDEN":
		k.ok("REST service refuses %s from here (mxidp: not in rest.allowed_networks)", u)
	case resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusNotFound:
		k.ok("REST service not reachable at %s (HTTP %d)", u, resp.StatusCode)
	default:
		k.fail("REST service is exposed: POST %s answered HTTP %d; block /_matrix-internal/ at the proxy and list only Synapse's and ma1sd's networks in rest.allowed_networks "+
			"(if this host is in that list, run mxidp check from a host outside it)", u, resp.StatusCode)
	}
}

// checkSynapse checks that Synapse offers mxidp: legacy, as an SSO
// identity provider in its login flows; next-gen, as the issuer of its
// auth metadata (MSC2965). Synapse lists an oidc_providers entry under
// its idp_id prefixed "oidc-" (synapse_legacy_e2e_test.go sees it so).
func (k *checker) checkSynapse(c Config, base, idpID string) (time.Time, bool) {
	base = strings.TrimSuffix(base, "/")
	var resp *http.Response
	if c.Matrix.Synapse.NextGen() {
		var meta struct {
			Issuer string `json:"issuer"`
		}
		u := base + "/_matrix/client/v1/auth_metadata"
		r, err := k.getJSON(u, &meta)
		if err != nil {
			u = base + "/_matrix/client/unstable/org.matrix.msc2965/auth_metadata"
			r, err = k.getJSON(u, &meta)
		}
		resp = r
		switch {
		case err != nil:
			k.fail("Synapse %s: %s; check the URL, and that Synapse's matrix_authentication_service section is enabled (mxidp synapse-config --mode next-gen)", u, oneLine(err.Error()))
		case meta.Issuer != c.Issuer:
			k.fail("Synapse's auth metadata names issuer %q, not mxidp's %q; set Synapse's matrix_authentication_service.endpoint to mxidp (mxidp synapse-config --mode next-gen)", meta.Issuer, c.Issuer)
		default:
			k.ok("Synapse's auth metadata names mxidp's issuer")
		}
	} else {
		var flows struct {
			Flows []struct {
				Type string `json:"type"`
				IdPs []struct {
					ID   string `json:"id"`
					Name string `json:"name"`
				} `json:"identity_providers"`
			} `json:"flows"`
		}
		u := base + "/_matrix/client/v3/login"
		r, err := k.getJSON(u, &flows)
		resp = r
		found, sso := false, false
		for _, f := range flows.Flows {
			if f.Type != "m.login.sso" {
				continue
			}
			sso = true
			for _, p := range f.IdPs {
				if p.ID == idpID || p.ID == "oidc-"+idpID {
					found = true
				}
			}
		}
		switch {
		case err != nil:
			k.fail("Synapse %s: %s; check --synapse, and that Synapse runs", u, oneLine(err.Error()))
		case !sso:
			k.fail("Synapse's login flows have no m.login.sso: add mxidp to Synapse's oidc_providers (mxidp synapse-config) and restart Synapse")
		case !found:
			k.fail("Synapse's m.login.sso flow has no identity provider oidc-%s: add mxidp to oidc_providers with idp_id %q (mxidp synapse-config), or pass check --idp-id", idpID, idpID)
		default:
			k.ok("Synapse's login flows offer mxidp (m.login.sso, oidc-%s)", idpID)
		}
	}
	return responseDate(resp)
}
