package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/mxidp/mxidp/provider"
	"github.com/mxidp/mxidp/provider/password"
	"github.com/mxidp/mxidp/storage"
	"github.com/mxidp/mxidp/web"
	"gopkg.in/yaml.v3"
)

// Config is mxidp's whole configuration. Every option is documented in
// docs/mxidp.example.yaml and in the README's table; defaults live in
// defaultConfig and nowhere else.
type Config struct {
	Issuer        string          `yaml:"issuer"`
	Listen        string          `yaml:"listen"`
	Database      string          `yaml:"database"`
	SecretKeyFile string          `yaml:"secret_key_file"`
	Matrix        MatrixConfig    `yaml:"matrix"`
	Passwords     PasswordsConfig `yaml:"passwords"`
	Users         UsersConfig     `yaml:"users"`
	Keys          KeysConfig      `yaml:"keys"`
	Tokens        TokensConfig    `yaml:"tokens"`
	Sessions      SessionsConfig  `yaml:"sessions"`
	Branding      BrandingConfig  `yaml:"branding"`
	REST          RESTConfig      `yaml:"rest"`
	Throttle      ThrottleConfig  `yaml:"throttle"`
	Audit         AuditConfig     `yaml:"audit"`
	// TrustedProxies are the reverse proxies, as CIDRs, whose
	// X-Forwarded-For and Forwarded headers name the client: for the
	// throttle, the audit log, the authorize limit and the REST allow-list.
	TrustedProxies []string      `yaml:"trusted_proxies"`
	Log            LogConfig     `yaml:"log"`
	Metrics        MetricsConfig `yaml:"metrics"`
}

// MetricsConfig chooses what /metrics shows beyond the defaults.
type MetricsConfig struct {
	// DatabaseStatements adds mxidp_db_statements_total, the statements
	// sent to mxidp's database. Off by default: /metrics needs no login,
	// and the count around one sign-in tells whether its login name is an
	// account's. The load generator (make bench) turns it on.
	DatabaseStatements bool `yaml:"database_statements"`
}

// ThrottleConfig limits password checks (provider.ThrottlePolicy).
type ThrottleConfig struct {
	AccountBurst int           `yaml:"account_burst"`
	NetworkBurst int           `yaml:"network_burst"`
	BaseDelay    time.Duration `yaml:"base_delay"`
	MaxDelay     time.Duration `yaml:"max_delay"`
	ForgetAfter  time.Duration `yaml:"forget_after"`
	HardLock     bool          `yaml:"hard_lock"`
	// AuthorizeBurst and AuthorizePerSecond bound the authorization
	// requests one client network opens (each is stored until it expires).
	AuthorizeBurst     int     `yaml:"authorize_burst"`
	AuthorizePerSecond float64 `yaml:"authorize_per_second"`
	// RegistrationBurst and RegistrationPerSecond bound the clients one
	// network registers (next-gen auth); RegistrationMaxUnused caps the
	// registered clients nobody has used yet, from all networks.
	RegistrationBurst     int     `yaml:"registration_burst"`
	RegistrationPerSecond float64 `yaml:"registration_per_second"`
	RegistrationMaxUnused int     `yaml:"registration_max_unused"`
}

// Policy converts the settings for package provider.
func (t ThrottleConfig) Policy() provider.ThrottlePolicy {
	return provider.ThrottlePolicy{AccountBurst: t.AccountBurst, NetworkBurst: t.NetworkBurst,
		BaseDelay: t.BaseDelay, MaxDelay: t.MaxDelay, ForgetAfter: t.ForgetAfter, HardLock: t.HardLock}
}

// AuditConfig keeps the audit log.
type AuditConfig struct {
	Retention time.Duration `yaml:"retention"`
}

// MatrixConfig describes the Matrix deployment mxidp serves.
type MatrixConfig struct {
	ServerName string        `yaml:"server_name"` // default: the issuer's host
	Synapse    SynapseConfig `yaml:"synapse"`
	// SSOClientAllowlist lists URL prefixes of Matrix clients whose
	// m.login.sso goes on without the user's confirmation (Synapse's
	// sso.client_whitelist): same scheme and host, path at or below the
	// entry's at a "/" boundary.
	SSOClientAllowlist []string `yaml:"sso_client_allowlist"`
}

// SynapseConfig turns next-gen auth on: mxidp becomes the authentication
// service of one Synapse (its matrix_authentication_service section),
// introspecting its tokens and creating its users and devices.
type SynapseConfig struct {
	// URL is Synapse's client-server listener as mxidp reaches it, for
	// /_synapse/mas/; empty means next-gen auth is off.
	URL string `yaml:"url"`
	// SharedSecretFile holds the secret shared with Synapse (there:
	// matrix_authentication_service.secret_path).
	SharedSecretFile string `yaml:"shared_secret_file"`
}

// NextGen reports whether next-gen auth is on.
func (s SynapseConfig) NextGen() bool { return s.URL != "" }

// minSynapseSecret is the shortest shared secret accepted: it is the only
// thing between the internet and the introspection of every token.
const minSynapseSecret = 32

// sharedSecret reads the secret shared with Synapse.
func (s SynapseConfig) sharedSecret() (string, error) {
	data, err := os.ReadFile(s.SharedSecretFile)
	if err != nil {
		return "", fmt.Errorf("matrix.synapse.shared_secret_file: %w; create it with: openssl rand -hex 32 > FILE; chmod 600 FILE "+
			"(and give Synapse the same file as matrix_authentication_service.secret_path)", err)
	}
	secret := strings.TrimSpace(string(data))
	if len(secret) < minSynapseSecret {
		return "", fmt.Errorf("matrix.synapse.shared_secret_file: %s holds %d characters; put a random secret of at least %d in it (openssl rand -hex 32)",
			s.SharedSecretFile, len(secret), minSynapseSecret)
	}
	return secret, nil
}

// PasswordsConfig sets the cost of new password hashes.
type PasswordsConfig struct {
	Argon2id Argon2idConfig `yaml:"argon2id"`
}

// Argon2idConfig is the argon2id cost.
type Argon2idConfig struct {
	Time      uint32 `yaml:"time"`
	MemoryKiB uint32 `yaml:"memory_kib"`
	Threads   uint8  `yaml:"threads"`
}

// Params converts the cost for package password.
func (a Argon2idConfig) Params() password.Params {
	return password.Params{Time: a.Time, MemoryKiB: a.MemoryKiB, Threads: a.Threads}
}

// UsersConfig chooses where accounts come from.
type UsersConfig struct {
	Source   string         `yaml:"source"` // builtin | platform
	Platform PlatformConfig `yaml:"platform"`
}

// PlatformConfig reads the platform's own user table in place.
type PlatformConfig struct {
	Database string          `yaml:"database"`
	Queries  PlatformQueries `yaml:"queries"`
	// CheckInterval is how often the users with live sessions or tokens
	// are looked up again, so that those the platform disabled or removed
	// are logged out everywhere (with back-channel logout).
	CheckInterval time.Duration `yaml:"check_interval"`
}

// PlatformQueries are the SQL statements that read the platform's users
// (docs/platform.md, "The four queries").
type PlatformQueries struct {
	ByLogin string `yaml:"by_login"`
	ByID    string `yaml:"by_id"`
	ByEmail string `yaml:"by_email"`
	Search  string `yaml:"search"`
}

// KeysConfig times the signing-key ring.
type KeysConfig struct {
	PublicationDelay time.Duration `yaml:"publication_delay"`
	RotationPeriod   time.Duration `yaml:"rotation_period"`
	RefreshInterval  time.Duration `yaml:"refresh_interval"`
}

// TokensConfig sets token lifetimes.
type TokensConfig struct {
	IDTokenLifetime      time.Duration `yaml:"id_token_lifetime"`
	AccessTokenLifetime  time.Duration `yaml:"access_token_lifetime"`
	RefreshTokenLifetime time.Duration `yaml:"refresh_token_lifetime"`
}

// BrandingConfig makes the login pages look like the platform's own.
type BrandingConfig struct {
	ProductName    string `yaml:"product_name"`    // default: matrix.server_name
	PlatformName   string `yaml:"platform_name"`   // for the link back
	PlatformURL    string `yaml:"platform_url"`    // "" shows no link
	PrimaryColor   string `yaml:"primary_color"`   // #rrggbb
	LogoFile       string `yaml:"logo_file"`       // PNG, JPEG, SVG or WebP, served by mxidp
	StylesheetFile string `yaml:"stylesheet_file"` // the platform's CSS, served by mxidp after its own
}

// SessionsConfig sets how long a browser stays signed in at mxidp.
type SessionsConfig struct {
	Lifetime time.Duration `yaml:"lifetime"`
}

// RESTConfig is the ma1sd-compatible REST service (docs/rest.md): the
// Synapse REST password provider's check_credentials and ma1sd's REST
// identity store.
type RESTConfig struct {
	Enabled bool `yaml:"enabled"`
	// SharedSecretFile holds a token callers must send as
	// "Authorization: Bearer …"; "" requires none.
	SharedSecretFile string `yaml:"shared_secret_file"`
	// AllowedNetworks are the client networks served, as CIDRs: the TCP
	// peer, or behind a trusted proxy the client it names; empty serves
	// every address.
	AllowedNetworks []string `yaml:"allowed_networks"`
	// Timeout bounds every REST request (docs/rest.md, rest.timeout).
	Timeout time.Duration `yaml:"timeout"`
	// DirectoryMaxResults caps one user-directory answer.
	DirectoryMaxResults int `yaml:"directory_max_results"`
	// ExposeProfileThreepids lets profile/threepids return e-mail
	// addresses, which ma1sd can show to unauthenticated clients.
	ExposeProfileThreepids bool `yaml:"expose_profile_threepids"`
	// LoginDisplayName and LoginThreepids put the display name and the
	// verified e-mail address into login answers, which the Synapse
	// provider copies into Synapse.
	LoginDisplayName bool `yaml:"login_display_name"`
	LoginThreepids   bool `yaml:"login_threepids"`
}

// LogConfig shapes the log.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

func defaultConfig() Config {
	return Config{
		Issuer:        "http://127.0.0.1:8080",
		Listen:        "127.0.0.1:8080",
		Database:      "sqlite://./data/mxidp.db",
		SecretKeyFile: "./data/secret.key",
		Passwords: PasswordsConfig{Argon2id: Argon2idConfig{
			Time: password.Default.Time, MemoryKiB: password.Default.MemoryKiB, Threads: password.Default.Threads,
		}},
		Users: UsersConfig{Source: "builtin", Platform: PlatformConfig{CheckInterval: 5 * time.Minute}},
		Keys: KeysConfig{
			PublicationDelay: 15 * time.Minute,
			RotationPeriod:   90 * 24 * time.Hour,
			RefreshInterval:  5 * time.Second,
		},
		Tokens: TokensConfig{
			IDTokenLifetime:      provider.DefaultLifetimes.IDToken,
			AccessTokenLifetime:  provider.DefaultLifetimes.AccessToken,
			RefreshTokenLifetime: provider.DefaultLifetimes.RefreshToken,
		},
		Sessions: SessionsConfig{Lifetime: provider.DefaultLifetimes.Session},
		Throttle: ThrottleConfig{
			AccountBurst: provider.DefaultThrottle.AccountBurst, NetworkBurst: provider.DefaultThrottle.NetworkBurst,
			BaseDelay: provider.DefaultThrottle.BaseDelay, MaxDelay: provider.DefaultThrottle.MaxDelay,
			ForgetAfter:    provider.DefaultThrottle.ForgetAfter,
			AuthorizeBurst: web.DefaultAuthorizeBurst, AuthorizePerSecond: web.DefaultAuthorizePerSecond,
			RegistrationBurst: web.DefaultRegistrationBurst, RegistrationPerSecond: web.DefaultRegistrationPerSecond,
			RegistrationMaxUnused: web.DefaultRegistrationMaxUnused,
		},
		Audit:          AuditConfig{Retention: 90 * 24 * time.Hour},
		TrustedProxies: loopback,
		Branding:       BrandingConfig{PrimaryColor: "#2a5db0"},
		REST: RESTConfig{
			AllowedNetworks:     loopback,
			Timeout:             5 * time.Second,
			DirectoryMaxResults: 50,
			LoginDisplayName:    true,
			LoginThreepids:      true,
		},
		Log: LogConfig{Level: "info", Format: "text"},
	}
}

// envOverrides maps environment variables to the options they override.
func envOverrides(c *Config) []struct {
	name string
	dst  *string
} {
	return []struct {
		name string
		dst  *string
	}{
		{"MXIDP_ISSUER", &c.Issuer},
		{"MXIDP_LISTEN", &c.Listen},
		{"MXIDP_DATABASE", &c.Database},
		{"MXIDP_SECRET_KEY_FILE", &c.SecretKeyFile},
		{"MXIDP_MATRIX_SERVER_NAME", &c.Matrix.ServerName},
		{"MXIDP_SYNAPSE_URL", &c.Matrix.Synapse.URL},
		{"MXIDP_USERS_SOURCE", &c.Users.Source},
		{"MXIDP_PLATFORM_DATABASE", &c.Users.Platform.Database},
	}
}

// ConfigError lists every problem found in a configuration.
type ConfigError struct {
	Source   string // the file, or "defaults"
	Problems []string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "configuration (%s) has %d problem", e.Source, len(e.Problems))
	if len(e.Problems) != 1 {
		b.WriteString("s")
	}
	b.WriteString(":")
	for _, p := range e.Problems {
		b.WriteString("\n  - " + p)
	}
	return b.String()
}

// LoadConfig reads the configuration: defaults, then the YAML file (path,
// or $MXIDP_CONFIG, or none), then environment overrides, then derived
// values; and validates the result. getenv is os.Getenv outside tests.
func LoadConfig(path string, getenv func(string) string) (Config, error) {
	c := defaultConfig()
	if path == "" {
		path = getenv("MXIDP_CONFIG")
	}
	source := "defaults"
	if path != "" {
		source = path
		f, err := os.Open(path)
		if err != nil {
			return c, &ConfigError{Source: source, Problems: []string{fmt.Sprintf("cannot read the file: %v; check --config or MXIDP_CONFIG", err)}}
		}
		defer f.Close()
		if problems := decodeYAML(f, &c); len(problems) > 0 {
			return c, &ConfigError{Source: source, Problems: problems}
		}
	}
	for _, o := range envOverrides(&c) {
		if v, ok := lookup(getenv, o.name); ok {
			*o.dst = v
		}
	}
	if problems := c.validate(); len(problems) > 0 {
		return c, &ConfigError{Source: source, Problems: problems}
	}
	return c, nil
}

func lookup(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}

// decodeYAML reads the file strictly: an unknown key is a problem, so a
// typo never silently leaves a default in force.
func decodeYAML(r io.Reader, c *Config) []string {
	data, err := io.ReadAll(r)
	if err != nil {
		return []string{err.Error()}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err = dec.Decode(c)
	var typeErr *yaml.TypeError
	switch {
	case err == nil, errors.Is(err, io.EOF):
		return nil
	case errors.As(err, &typeErr):
		var problems []string
		for _, e := range typeErr.Errors {
			problems = append(problems, explainYAML(e))
		}
		return problems
	default:
		return []string{fmt.Sprintf("not valid YAML: %v", strings.TrimPrefix(err.Error(), "yaml: "))}
	}
}

func explainYAML(msg string) string {
	if i := strings.Index(msg, "field "); i >= 0 && strings.Contains(msg, "not found in type") {
		field := strings.Fields(msg[i+len("field "):])[0]
		return fmt.Sprintf("%s: unknown option %q; check its spelling and nesting against docs/mxidp.example.yaml", strings.TrimSuffix(msg[:i], ": "), field)
	}
	if strings.Contains(msg, "time.Duration") {
		return msg + "; write durations like 90s, 15m or 2160h"
	}
	return msg
}

// validate checks every option and derives dependent defaults. It returns
// all problems at once, each naming the option and the fix.
func (c *Config) validate() []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	issuer, err := url.Parse(c.Issuer)
	switch {
	case c.Issuer == "":
		add("issuer: empty; set the public URL users reach mxidp at, like https://id.example.org")
	case err != nil || !issuer.IsAbs() || issuer.Host == "" || issuer.Opaque != "":
		add("issuer: %q is not an absolute URL; set it like https://id.example.org", c.Issuer)
	case issuer.User != nil:
		// Shown without its password: discovery and every token would
		// publish it, and relying parties compare the issuer byte for byte.
		add("issuer: %q has a user name or password before the host; remove the \"user:password@\" part and set it like https://id.example.org", issuer.Redacted())
	case issuer.Scheme != "https" && !(issuer.Scheme == "http" && provider.IsLoopback(issuer.Hostname())):
		add("issuer: %q must use https (plain http only on localhost for trials); Synapse and browsers require it", c.Issuer)
	case issuer.RawQuery != "" || issuer.Fragment != "" || strings.Contains(c.Issuer, "?") || strings.Contains(c.Issuer, "#"):
		add("issuer: %q may not have a ?query or #fragment (OpenID Connect Discovery 1.0 §3); remove everything from the \"?\" or \"#\" on", c.Issuer)
	case strings.HasSuffix(c.Issuer, "/"):
		add("issuer: %q ends with \"/\"; write it without the trailing slash (mxidp publishes the issuer byte for byte, and Synapse compares it exactly)", c.Issuer)
	}

	if host, port, err := net.SplitHostPort(c.Listen); err != nil {
		add("listen: %q is not HOST:PORT; set it like 127.0.0.1:8080, or :8080 for every interface", c.Listen)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		add("listen: %q has no valid port; set it like 127.0.0.1:8080", c.Listen)
	} else if host != "" && net.ParseIP(host) == nil && host != "localhost" && !validHostname(host) {
		add("listen: %q names no valid host; use an IP address such as 0.0.0.0 or 127.0.0.1", c.Listen)
	}

	problems = append(problems, checkDatabaseURL("database", c.Database)...)
	if c.SecretKeyFile == "" {
		add("secret_key_file: empty; set a path such as /var/lib/mxidp/secret.key (created on first start)")
	}

	if c.Matrix.ServerName == "" && issuer != nil {
		c.Matrix.ServerName = issuer.Host
	}
	if !validServerName(c.Matrix.ServerName) {
		add("matrix.server_name: %q is not a Matrix server name; set the domain of your Matrix IDs, like example.org", c.Matrix.ServerName)
	}
	if sy := c.Matrix.Synapse; sy.URL != "" {
		if u, err := url.Parse(sy.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			add("matrix.synapse.url: %q is not an http(s) URL of Synapse's client listener, like http://127.0.0.1:8008", sy.URL)
		}
		if sy.SharedSecretFile == "" {
			add("matrix.synapse.shared_secret_file: empty; next-gen auth needs the secret shared with Synapse: " +
				"openssl rand -hex 32 > FILE; chmod 600 FILE, and name FILE here and as Synapse's matrix_authentication_service.secret_path")
		}
	} else if sy.SharedSecretFile != "" {
		add("matrix.synapse.shared_secret_file is set but matrix.synapse.url is not; set the URL of Synapse's client listener to turn next-gen auth on, or remove the file option")
	}
	for i, entry := range c.Matrix.SSOClientAllowlist {
		if problem := web.CheckSSOClientPrefix(entry); problem != "" {
			add("matrix.sso_client_allowlist[%d]: %q: %s; list the address of a Matrix client, like https://app.element.io/", i, entry, problem)
		}
	}

	if err := c.Passwords.Argon2id.Params().Validate(); err != nil {
		add("passwords.argon2id: %v; the default {time: 2, memory_kib: 19456, threads: 1} is a good start", err)
	}

	switch c.Users.Source {
	case "builtin":
	case "platform":
		if c.Users.Platform.Database == "" {
			add("users.platform.database: empty, but users.source is platform; set the platform database URL (postgres://…, mysql://… or sqlite://PATH)")
		} else {
			problems = append(problems, checkPlatformDatabaseURL("users.platform.database", c.Users.Platform.Database)...)
		}
		q := c.Users.Platform.Queries
		for name, sql := range map[string]string{"by_login": q.ByLogin, "by_id": q.ByID, "by_email": q.ByEmail, "search": q.Search} {
			if strings.TrimSpace(sql) == "" {
				add("users.platform.queries.%s: empty; see docs/ for example queries", name)
			}
		}
	default:
		add("users.source: %q is neither builtin nor platform", c.Users.Source)
	}

	if c.Keys.PublicationDelay < 0 {
		add("keys.publication_delay: %v is negative; use 0 or more, like 15m", c.Keys.PublicationDelay)
	}
	if c.Keys.RotationPeriod < 0 || (c.Keys.RotationPeriod > 0 && c.Keys.RotationPeriod < time.Hour) {
		add("keys.rotation_period: %v; use 0 (rotate only by command) or at least 1h, like 2160h", c.Keys.RotationPeriod)
	}
	if c.Keys.RefreshInterval < 100*time.Millisecond || c.Keys.RefreshInterval > time.Hour {
		add("keys.refresh_interval: %v; use between 100ms and 1h, like 5s", c.Keys.RefreshInterval)
	}
	for _, d := range []struct {
		key            string
		v, least, most time.Duration
		example        string
	}{
		{"tokens.id_token_lifetime", c.Tokens.IDTokenLifetime, time.Minute, 24 * time.Hour, "1h"},
		{"tokens.access_token_lifetime", c.Tokens.AccessTokenLifetime, time.Minute, 24 * time.Hour, "1h"},
		{"tokens.refresh_token_lifetime", c.Tokens.RefreshTokenLifetime, time.Hour, 365 * 24 * time.Hour, "720h"},
		{"sessions.lifetime", c.Sessions.Lifetime, time.Minute, 365 * 24 * time.Hour, "24h"},
		{"users.platform.check_interval", c.Users.Platform.CheckInterval, time.Second, 24 * time.Hour, "5m"},
	} {
		if d.v < d.least || d.v > d.most {
			add("%s: %v; use between %v and %v, like %s", d.key, d.v, d.least, d.most, d.example)
		}
	}

	problems = append(problems, c.Branding.validate(c.Matrix.ServerName)...)
	problems = append(problems, c.REST.validate()...)
	if err := c.Throttle.Policy().Validate(); err != nil {
		add("throttle: %v; the defaults are account_burst 5, network_burst 30, base_delay 1s, max_delay 10m, forget_after 24h", err)
	}
	if c.Throttle.AuthorizeBurst < 0 || c.Throttle.AuthorizePerSecond < 0 {
		add("throttle.authorize_burst and authorize_per_second must not be negative; 0 turns the limit off, the defaults are 300 and 5")
	}
	if c.Throttle.RegistrationBurst < 0 || c.Throttle.RegistrationPerSecond < 0 || c.Throttle.RegistrationMaxUnused < 0 {
		add("throttle.registration_burst, registration_per_second and registration_max_unused must not be negative; 0 turns a limit off, the defaults are %d, %g and %d",
			web.DefaultRegistrationBurst, web.DefaultRegistrationPerSecond, web.DefaultRegistrationMaxUnused)
	}
	if c.Audit.Retention < time.Hour {
		add("audit.retention: %v; keep the audit log at least 1h, like 2160h (90 days)", c.Audit.Retention)
	}
	_, bad := prefixes("trusted_proxies", c.TrustedProxies)
	problems = append(problems, bad...)

	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add("log.level: %q; use debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		add("log.format: %q; use text or json", c.Log.Format)
	}
	return problems
}

func checkDatabaseURL(key, raw string) []string {
	switch {
	case raw == "":
		return []string{key + ": empty; use sqlite://PATH (like sqlite://./data/mxidp.db) or postgres://USER:PASSWORD@HOST/DBNAME"}
	case storage.IsPostgresURL(raw):
		if _, err := url.Parse(raw); err != nil {
			// The parser's message quotes the URL, password and all.
			return []string{fmt.Sprintf("%s: %q is not a valid URL; percent-encode special characters in the user name and password (@ as %%40, : as %%3A, %% as %%25)", key, storage.RedactURL(raw))}
		}
	case storage.IsMySQLURL(raw):
		return []string{fmt.Sprintf("%s: %q: MySQL/MariaDB is supported only as a platform database (users.platform.database); mxidp's own database is sqlite://PATH (like sqlite://./data/mxidp.db) or postgres://USER:PASSWORD@HOST/DBNAME", key, storage.RedactURL(raw))}
	default:
		path, ok := storage.SQLitePath(raw)
		if !ok {
			return []string{fmt.Sprintf("%s: %q is not supported; use sqlite://PATH (like sqlite://./data/mxidp.db) or postgres://USER:PASSWORD@HOST/DBNAME", key, storage.RedactURL(raw))}
		}
		if path == "" || strings.ContainsAny(path, "?#") {
			return []string{fmt.Sprintf("%s: %q needs a plain file path after sqlite://, like sqlite:///var/lib/mxidp/mxidp.db", key, raw)}
		}
	}
	return nil
}

// checkPlatformDatabaseURL is checkDatabaseURL for the platform's
// database, which may also be MySQL/MariaDB: mysql://USER:PASSWORD@HOST/DBNAME
// or mysql://USER:PASSWORD@/DBNAME?socket=PATH.
func checkPlatformDatabaseURL(key, raw string) []string {
	if storage.IsMySQLURL(raw) {
		if _, err := storage.MySQLConfig(raw); err != nil {
			return []string{key + ": " + err.Error()}
		}
		return nil
	}
	return checkDatabaseURL(key, raw)
}

// validServerName follows the Matrix grammar: a DNS name or IP literal,
// optionally with a port.
func validServerName(s string) bool {
	host, port := s, ""
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return false
		}
	}
	if host == "" || len(s) > 230 {
		return false
	}
	return net.ParseIP(strings.Trim(host, "[]")) != nil || validHostname(host)
}

func validHostname(h string) bool {
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

var hexColor = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

// validate checks the branding and fills the product name's default.
func (b *BrandingConfig) validate(serverName string) []string {
	var problems []string
	if b.ProductName == "" {
		b.ProductName = serverName
	}
	if len(b.ProductName) > 64 {
		problems = append(problems, "branding.product_name: longer than 64 characters; shorten it")
	}
	if !hexColor.MatchString(b.PrimaryColor) {
		problems = append(problems, fmt.Sprintf("branding.primary_color: %q; write a colour like #2a5db0", b.PrimaryColor))
	}
	if b.PlatformURL != "" {
		if err := provider.CheckClientURI(b.PlatformURL); err != nil {
			problems = append(problems, "branding.platform_url: "+err.Error())
		} else if b.PlatformName == "" {
			problems = append(problems, "branding.platform_name: empty, but platform_url is set; name the platform for the link back")
		}
	}
	for key, path := range map[string]string{"branding.logo_file": b.LogoFile, "branding.stylesheet_file": b.StylesheetFile} {
		if path == "" {
			continue
		}
		fi, err := os.Stat(path)
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("%s: %v; give a readable file or remove the option", key, err))
		case fi.Size() > 1<<20:
			problems = append(problems, fmt.Sprintf("%s: %s has %d bytes; keep it under 1 MiB", key, path, fi.Size()))
		}
	}
	if b.LogoFile != "" {
		switch strings.ToLower(filepath.Ext(b.LogoFile)) {
		case ".png", ".jpg", ".jpeg", ".svg", ".webp":
		default:
			problems = append(problems, fmt.Sprintf("branding.logo_file: %q; use a .png, .jpg, .svg or .webp file", b.LogoFile))
		}
	}
	return problems
}

// validate checks the REST service's options. The shared secret file is
// read at start-up (readSecret), where a missing file is reported.
func (r *RESTConfig) validate() []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	_, bad := prefixes("rest.allowed_networks", r.AllowedNetworks)
	problems = append(problems, bad...)
	// Below the 30 s write timeout of the listener, so the answer always
	// gets out; callers never time out themselves (docs/rest.md).
	if r.Timeout < 100*time.Millisecond || r.Timeout > 25*time.Second {
		add("rest.timeout: %v; use between 100ms and 25s, like 5s", r.Timeout)
	}
	if r.DirectoryMaxResults < 1 || r.DirectoryMaxResults > 1000 {
		add("rest.directory_max_results: %d; use between 1 and 1000, like 50", r.DirectoryMaxResults)
	}
	return problems
}

// networks parses AllowedNetworks (already validated).
func (r RESTConfig) networks() []netip.Prefix {
	out, _ := prefixes("", r.AllowedNetworks)
	return out
}

// loopback is every loopback address, the default for settings that
// trust local peers.
var loopback = []string{"127.0.0.0/8", "::1/128"}

// prefixes parses a list of CIDRs, with a problem for each that is not one.
func prefixes(key string, cidrs []string) ([]netip.Prefix, []string) {
	var out []netip.Prefix
	var problems []string
	for _, n := range cidrs {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %q is not a network; write CIDRs like 10.0.0.0/8 or 192.0.2.7/32", key, n))
			continue
		}
		out = append(out, p.Masked())
	}
	return out, problems
}

// sharedSecret reads the shared secret file; "" when none is configured.
func (r RESTConfig) sharedSecret() (string, error) {
	if r.SharedSecretFile == "" {
		return "", nil
	}
	data, err := os.ReadFile(r.SharedSecretFile)
	if err != nil {
		return "", fmt.Errorf("rest.shared_secret_file: %w; create it with a long random token, or remove the option", err)
	}
	secret := strings.TrimSpace(string(data))
	if len(secret) < 16 {
		return "", fmt.Errorf("rest.shared_secret_file: %s holds %d characters; put a random token of at least 16 in it (openssl rand -hex 32)", r.SharedSecretFile, len(secret))
	}
	return secret, nil
}
