package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/mxidp/mxidp/keys"
	"github.com/mxidp/mxidp/provider"
	"github.com/mxidp/mxidp/provider/ma1sd"
	synapseapi "github.com/mxidp/mxidp/provider/synapse"
	"github.com/mxidp/mxidp/storage"
	"github.com/mxidp/mxidp/web"
	"github.com/spf13/cobra"
)

func (a *app) serveCommand() *cobra.Command {
	var demo bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the OpenID provider and REST service",
		Long: "Serve applies pending migrations, creates the secret key file and the first\n" +
			"signing key when missing, and answers HTTP until SIGTERM or SIGINT.",
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			return a.serve(ctx, demo)
		},
	}
	cmd.Flags().BoolVar(&demo, "demo", false, "on an empty user table, create the user 'demo' with a generated password and print it")
	return cmd
}

func (a *app) serve(ctx context.Context, demo bool) error {
	c, err := a.config()
	if err != nil {
		return err
	}
	log, logOut := a.serveLogger(c)
	defer logOut.Close()
	slog.SetDefault(log) // zitadel/oidc logs through the default logger
	svc, err := a.newService(ctx, c, log)
	if err != nil {
		return err
	}
	defer svc.close()
	svc.runBackground(ctx)

	if demo && svc.platform == nil {
		if err := a.createDemoUser(ctx, c, svc.store); err != nil {
			return err
		}
	}

	settle()
	l, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another process using it? set listen or MXIDP_LISTEN)", c.Listen, err)
	}
	log.Info("mxidp serving", "issuer", c.Issuer, "listen", l.Addr().String(), "database", svc.store.Dialect(), "server_name", c.Matrix.ServerName)
	fmt.Fprintf(a.stdout, "mxidp: issuer %s, listening on %s\n", c.Issuer, l.Addr())
	if err := web.Serve(ctx, l, svc.handler, log); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("stopped")
	return nil
}

// service is a wired mxidp: its HTTP handler and the parts whose
// background work runBackground starts.
type service struct {
	c           Config
	log         *slog.Logger
	store       *storage.Store
	platform    *storage.Platform // nil unless users.source is platform
	openID      *provider.OpenID
	ring        *keys.Ring
	backchannel *provider.Backchannel
	devices     *provider.DeviceCleanup // nil unless next-gen auth is on
	handler     http.Handler
}

// newService opens the database (migrating it), loads or makes the secret
// and the signing keys, and builds the HTTP handler.
func (a *app) newService(ctx context.Context, c Config, log *slog.Logger) (*service, error) {
	store, err := a.openStore(ctx, c, log)
	if err != nil {
		return nil, err
	}
	svc := &service{c: c, log: log, store: store}
	fail := func(err error) (*service, error) {
		svc.close()
		return nil, err
	}
	secret, err := loadSecret(ctx, c, store, log)
	if err != nil {
		return fail(err)
	}
	sealer, err := keys.NewSealer(secret, "signing keys")
	if err != nil {
		return fail(err)
	}
	var users storage.Users = store
	if c.Users.Source == "platform" {
		if svc.platform, err = openPlatform(ctx, c, log); err != nil {
			return fail(err)
		}
		users = svc.platform
	}
	svc.ring = keys.NewRing(store, sealer, ringConfig(c, log))
	if err := svc.ring.Ensure(ctx); err != nil {
		return fail(fmt.Errorf("signing keys: %w", err))
	}
	if k, err := svc.ring.SigningKey(); err == nil {
		log.Info("signing key loaded", "kid", k.ID, "published_keys", len(svc.ring.Published()))
	}

	lifetimes := tokenLifetimes(c)
	svc.backchannel = &provider.Backchannel{Store: store, Ring: svc.ring, Issuer: c.Issuer,
		Client: &http.Client{Timeout: 10 * time.Second}, Logger: log}
	openID := &provider.OpenID{Store: store, Users: users, Ring: svc.ring, Issuer: c.Issuer, Lifetimes: lifetimes, Logger: log,
		LoggedOut: svc.backchannel.Wake}
	svc.openID = openID
	var synapseSecret string
	if c.Matrix.Synapse.NextGen() {
		if openID.Matrix, synapseSecret, err = nextGenMatrix(c, store, users, log); err != nil {
			return fail(err)
		}
		svc.devices = openID.Matrix.Cleanup
		log.Info("next-gen auth: mxidp is Synapse's authentication service", "synapse", c.Matrix.Synapse.URL)
	}
	policy := c.Throttle.Policy()
	login := &provider.Login{Store: store, Users: users, Throttle: &policy, Hash: c.Passwords.Argon2id.Params(), Lifetimes: lifetimes, Logger: log, OpenID: openID}
	op, err := provider.NewOP(openID, secret)
	if err != nil {
		return fail(fmt.Errorf("openid provider: %w", err))
	}
	discovery, err := provider.Discovery(op, openID)
	if err != nil {
		return fail(err)
	}
	branding, err := loadBranding(c.Branding)
	if err != nil {
		return fail(err)
	}
	trusted, _ := prefixes("", c.TrustedProxies)
	var rest http.Handler
	if c.REST.Enabled {
		secret, err := c.REST.sharedSecret()
		if err != nil {
			return fail(err)
		}
		rest = ma1sd.New(users, login, c.Matrix.ServerName, ma1sd.Options{
			SharedSecret: secret, AllowedNetworks: c.REST.networks(), Timeout: c.REST.Timeout,
			MaxResults: c.REST.DirectoryMaxResults, ExposeProfileThreepids: c.REST.ExposeProfileThreepids,
			LoginOmitsDisplayName: !c.REST.LoginDisplayName, LoginOmitsThreePIDs: !c.REST.LoginThreepids,
			TrustedProxies: trusted, Logger: log.With("service", "rest"),
		})
		log.Info("REST service enabled", "allowed_networks", c.REST.AllowedNetworks, "shared_secret", secret != "")
		if len(c.REST.AllowedNetworks) == 0 {
			log.Warn("rest.allowed_networks is empty: the REST service, which takes passwords and reveals the directory, " +
				"answers every address; list the networks of Synapse and ma1sd")
		}
	}
	var db web.Pinger = store
	if svc.platform != nil {
		db = bothDatabases{store, svc.platform}
	}
	var registration *web.RegistrationConfig
	if c.Matrix.Synapse.NextGen() {
		// The Matrix OAuth 2.0 API has clients register themselves.
		registration = &web.RegistrationConfig{Burst: c.Throttle.RegistrationBurst,
			PerSecond: c.Throttle.RegistrationPerSecond, MaxUnused: c.Throttle.RegistrationMaxUnused}
	}
	formKey, err := provider.FormKey(secret)
	if err != nil {
		return fail(err)
	}
	svc.handler = web.NewHandler(web.Deps{DB: db, Keys: svc.ring, Logger: log, OpenID: &web.OpenID{
		Issuer: c.Issuer, OP: op, Storage: openID, Login: login, Discovery: discovery,
		Branding: branding, TrustedProxies: trusted, FormKey: formKey, SynapseSecret: synapseSecret,
		AuthorizeBurst: c.Throttle.AuthorizeBurst, AuthorizePerSecond: c.Throttle.AuthorizePerSecond,
		ServerName: c.Matrix.ServerName, Registration: registration,
		SSOClientAllowlist: c.Matrix.SSOClientAllowlist,
	}, REST: rest, PendingLogouts: store.PendingDeliveries, Statements: statementCounter(c, store),
		BasePath: issuerPath(c.Issuer)})
	return svc, nil
}

// tokenLifetimes are the configured lifetimes of tokens and sessions.
func tokenLifetimes(c Config) provider.Lifetimes {
	l := provider.DefaultLifetimes
	l.IDToken, l.AccessToken = c.Tokens.IDTokenLifetime, c.Tokens.AccessTokenLifetime
	l.RefreshToken, l.Session = c.Tokens.RefreshTokenLifetime, c.Sessions.Lifetime
	return l
}

// nextGenMatrix connects next-gen auth to Synapse (matrix.synapse): the
// client of Synapse's /_synapse/mas/ API with the shared secret, which it
// returns too, and the device cleanup, which serve runs.
func nextGenMatrix(c Config, store *storage.Store, users storage.Users, log *slog.Logger) (*provider.Matrix, string, error) {
	secret, err := c.Matrix.Synapse.sharedSecret()
	if err != nil {
		return nil, "", &ConfigError{Source: "matrix.synapse", Problems: []string{err.Error()}}
	}
	client := &synapseapi.Client{URL: c.Matrix.Synapse.URL, Secret: secret, HTTP: &http.Client{Timeout: 10 * time.Second}}
	cleanup := &provider.DeviceCleanup{Store: store, Users: users, Synapse: client, Logger: log}
	return &provider.Matrix{Synapse: client, Cleanup: cleanup}, secret, nil
}

// loadSecret reads the secret key file, and creates it on a fresh
// installation. A database that holds signing keys was served with a
// secret before: a new one could open none of them, and writing it would
// leave a file that hides the mistake, so start-up stops instead, without
// writing anything, and says how to recover.
func loadSecret(ctx context.Context, c Config, store *storage.Store, log *slog.Logger) ([]byte, error) {
	secret, err := keys.LoadSecret(c.SecretKeyFile)
	if err == nil {
		if fi, err := os.Stat(c.SecretKeyFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
			log.Warn("secret key file is readable by other users; chmod 600 it", "path", c.SecretKeyFile, "mode", fi.Mode().Perm().String())
		}
		return secret, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	_, sealed, err := store.KeyRing(ctx)
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	if len(sealed) > 0 {
		return nil, &ConfigError{Source: "secret_key_file, checked against the database", Problems: []string{fmt.Sprintf(
			"secret_key_file: %s does not exist, but the database holds %d signing key(s) sealed with the secret that was in it; "+
				"restore that file from a backup or from another instance (every instance needs the same one), or point secret_key_file "+
				"(MXIDP_SECRET_KEY_FILE) at it, and start again; mxidp makes no new one, which could open none of these keys",
			c.SecretKeyFile, len(sealed))}}
	}
	secret, created, err := keys.LoadOrCreateSecret(c.SecretKeyFile)
	if err != nil {
		return nil, err
	}
	if created {
		log.Info("created secret key file; give every instance of this deployment the same file", "path", c.SecretKeyFile)
	}
	return secret, nil
}

// openPlatform connects read-only to the platform's database and checks
// its queries (users.source: platform).
func openPlatform(ctx context.Context, c Config, log *slog.Logger) (*storage.Platform, error) {
	q := c.Users.Platform.Queries
	p, err := storage.OpenPlatform(ctx, c.Users.Platform.Database,
		storage.PlatformQueries{ByLogin: q.ByLogin, ByID: q.ByID, ByEmail: q.ByEmail, Search: q.Search},
		storage.PlatformOptions{Logger: log.With("users", "platform"), Localpart: func(username string) (string, error) {
			return provider.CanonicalLocalpart(username, c.Matrix.ServerName)
		}})
	var qErr *storage.PlatformQueryError
	if errors.As(err, &qErr) {
		return nil, &ConfigError{Source: "users.platform.queries, checked against the platform's database", Problems: qErr.Problems}
	}
	if err != nil {
		return nil, fmt.Errorf("users.platform: %w", err)
	}
	log.Info("users come from the platform's database, read-only", "database", storage.RedactURL(c.Users.Platform.Database))
	return p, nil
}

// bothDatabases is ready when mxidp's database and the platform's answer.
type bothDatabases [2]web.Pinger

func (b bothDatabases) Ping(ctx context.Context) error {
	for _, db := range b {
		if err := db.Ping(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (s *service) close() {
	if s.platform != nil {
		s.platform.Close()
	}
	s.store.Close()
}

// loadBranding reads the branding files once, at start-up.
func loadBranding(b BrandingConfig) (web.Branding, error) {
	out := web.Branding{ProductName: b.ProductName, PlatformName: b.PlatformName, PlatformURL: b.PlatformURL, PrimaryColor: b.PrimaryColor}
	var err error
	if b.LogoFile != "" {
		if out.Logo, err = os.ReadFile(b.LogoFile); err != nil {
			return out, fmt.Errorf("branding.logo_file: %w", err)
		}
		out.LogoType = map[string]string{".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
			".svg": "image/svg+xml", ".webp": "image/webp"}[strings.ToLower(filepath.Ext(b.LogoFile))]
	}
	if b.StylesheetFile != "" {
		if out.Stylesheet, err = os.ReadFile(b.StylesheetFile); err != nil {
			return out, fmt.Errorf("branding.stylesheet_file: %w", err)
		}
	}
	return out, nil
}

// runBackground starts the key-ring refresh, the back-channel delivery
// worker and the purge, until ctx ends.
func (s *service) runBackground(ctx context.Context) {
	go s.ring.Run(ctx, s.c.Keys.RefreshInterval)
	// Notices queued by the command line or other instances are found by polling.
	go s.backchannel.Run(ctx, 2*time.Second)
	go purgeExpired(ctx, s.store, s.c, s.log)
	if s.devices != nil {
		go s.devices.Run(ctx, 2*time.Second)
	}
	if s.platform != nil {
		go every(ctx, s.c.Users.Platform.CheckInterval, func() {
			if _, err := s.openID.EndDepartedSessions(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("checking platform users with live sessions failed", "err", err)
			}
		})
	}
}

// every calls f every interval until ctx ends.
func every(ctx context.Context, interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

// createDemoUser gives a fresh trial installation an account to log in
// with: on an empty user table only, with a generated password printed once.
func (a *app) createDemoUser(ctx context.Context, c Config, store *storage.Store) error {
	n, err := store.CountUsers(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		fmt.Fprintf(a.stdout, "mxidp: %d user(s) exist; no demo user created (reset one with: mxidp user passwd NAME)\n", n)
		return nil
	}
	pw := provider.NewPassword()
	acc := a.accounts(c, store)
	if _, err := acc.AddUser(ctx, provider.NewUser{Username: "demo", DisplayName: "Demo User", Password: pw}); err != nil {
		return fmt.Errorf("create demo user: %w", err)
	}
	fmt.Fprintf(a.stdout, "mxidp: created demo user\n  username: demo\n  password: %s\n  (shown once; change it with: mxidp user passwd demo)\n", pw)
	fmt.Fprintf(a.stdout, "mxidp: next, register your homeserver and print its oidc_providers block:\n"+
		"  bin/mxidp client add synapse --skip-consent --redirect-uri http://localhost:8008/_synapse/client/oidc/callback\n"+
		"  bin/mxidp synapse-config --client synapse\n")
	return nil
}

// purgeExpired deletes expired requests, tokens and sessions now and then,
// so that the database does not grow without bound.
func purgeExpired(ctx context.Context, store *storage.Store, c Config, log *slog.Logger) {
	purges := map[string]func(context.Context) (int64, error){
		"expired requests, tokens and sessions": store.Purge,
		"audit events past audit.retention": func(ctx context.Context) (int64, error) {
			return store.PurgeAudit(ctx, c.Audit.Retention)
		},
		"stale throttle counters": func(ctx context.Context) (int64, error) {
			return store.PurgeThrottle(ctx, c.Throttle.ForgetAfter)
		},
	}
	purgeAll := func() {
		for what, purge := range purges {
			if n, err := purge(ctx); err != nil && ctx.Err() == nil {
				log.Warn("purging failed", "what", what, "err", err)
			} else if n > 0 {
				log.Info("purged", "what", what, "rows", n)
			}
		}
	}
	purgeAll()
	every(ctx, 10*time.Minute, purgeAll)
}

func (a *app) migrateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply pending database migrations and exit",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.config()
			if err != nil {
				return err
			}
			s, err := storage.Open(cmd.Context(), c.Database, storage.Options{Logger: a.logger(c)})
			if err != nil {
				return fmt.Errorf("database: %w", err)
			}
			defer s.Close()
			n, err := s.Migrate(cmd.Context())
			if err != nil {
				return err
			}
			current, _, err := s.SchemaVersion(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "applied %d migration(s); %s schema at version %d\n", n, s.Dialect(), current)
			return nil
		},
	}
}

// settle hands the memory start-up used back to the operating system
// before serving: the migrations' parse buffers (goose keeps them in a
// sync.Pool, which two collections empty), the first key generation, the
// demo user's hash.
func settle() {
	runtime.GC()
	debug.FreeOSMemory()
}

// statementCounter is what /metrics counts database statements with: only
// when metrics.database_statements asks for it.
func statementCounter(c Config, store *storage.Store) func() uint64 {
	if !c.Metrics.DatabaseStatements {
		return nil
	}
	return store.Statements
}

// issuerPath is the path of the issuer's URL without a trailing slash
// ("/idp" for https://example.org/idp), under which serve answers every
// route as well as at the root.
func issuerPath(issuer string) string {
	u, err := url.Parse(issuer)
	if err != nil { // the configuration was validated
		return ""
	}
	return strings.TrimSuffix(u.Path, "/")
}
