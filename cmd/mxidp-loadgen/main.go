// Command mxidp-loadgen measures a running mxidp the way a relying party
// and its users load it: complete OpenID Connect login flows, the two
// documents every relying party fetches, and Synapse's REST password
// check. `make bench` runs it; it reports every figure of the README's
// "Performance" table as measured in one run, on SQLite and on PostgreSQL,
// with its targets and PASS or FAIL.
//
// For each database backend (SQLite always; PostgreSQL when
// MXIDP_TEST_POSTGRES names a server it may create databases on, as
// .ci/with-postgres arranges) it makes a fresh database, registers with the
// mxidp command line confidential clients, one with RS256 ID tokens (the
// default) and, when the binary has the flag (otherwise it says "ES256: not
// available in this binary"), one with `--id-token-alg ES256` and one with
// EdDSA, and -users users, and measures, in this order:
//
//  1. The server idle: `mxidp serve` on a free port of 127.0.0.1, started
//     afresh; 3 s after /readyz first answered, before any login, VmRSS
//     and VmHWM from /proc/PID/status. Then, still idle, one RS256
//     signature (RSA-2048, PKCS #1 v1.5, SHA-256, a key generated for the
//     run) in this process: the CPU of its thread per signature, the
//     yardstick of the RS256 client's target.
//  2. The SQL statements of one complete flow (authorize, login page,
//     login submit, callback, token, userinfo), per client (the EdDSA one
//     only here, its ID tokens checked like the others'): the counter
//     mxidp_db_statements_total of /metrics is read after each step (and
//     again until it stays put, should a request leave work behind); one
//     user's flows, the least of five per step, since the server's own
//     periodic work only adds. A scrape's own query counts in the next
//     scrape and is taken off. -count-statements does only this, in a few
//     seconds.
//  3. Complete login flows with a cheap argon2id cost (time 1, 64 KiB,
//     1 thread), so that the password hash is all but excluded: authorize
//     → login page (GET) → login submit (POST) → callback → token →
//     ID-token check (the signature, RS256, ES256 or EdDSA, whichever the
//     client was registered with, against /keys with go-jose; iss, aud,
//     nonce, exp, the user) → userinfo (same sub). Every flow is a new
//     browser (fresh cookie jar), so every flow checks a password; flows go
//     round-robin over the users; -c flows are in flight; HTTP connections
//     are kept alive and shared. The two clients take turns in eight slices
//     (RS256, ES256, ES256, RS256, …) so that drift in the machine's load
//     hits both alike. It reports flows/s, p50/p99 latency per step, the
//     statements per flow, and the server CPU per flow: utime+stime from
//     /proc/PID/stat of the mxidp process and, on PostgreSQL, of the
//     cluster's postmaster and all its children (plus the CPU of children
//     that exited, from the postmaster's cutime+cstime), read when each
//     slice's window opens and closes. Less the cheap hash itself
//     (measured on one core), that is the CPU per flow beyond the hash.
//     Meanwhile one RS256 signature every 25 ms is sampled in this
//     process: the signature's CPU under load, shown beside the idle one.
//  4. GET /.well-known/openid-configuration and GET /keys from mxidp
//     restarted at log level info (the request log on, one line per
//     request, into a file as a deployment's goes to journald), beside a
//     plain net/http handler serving the same bytes with the same
//     Content-Type and Cache-Control from a second process (this program
//     re-executed with -serve-plain), in eight slices ordered mxidp,
//     plain, plain, mxidp, … ; also the server CPU per request. That log's
//     lines at level WARN or ERROR count as the server's problems.
//  5. The default argon2id cost (time 2, 19456 KiB, 1 thread): mxidp is
//     restarted with it on the same database, with the REST service on for
//     127.0.0.0/8; a warm-up of one flow per user replaces every stored
//     cheap hash with a default-cost one (mxidp rehashes on login). Then,
//     interleaved in twelve slices (flows, hash, checks, checks, hash,
//     flows, …): login flows of the RS256 client; the hash alone in this
//     process while the server idles (argon2id at the same cost, one
//     verifier per core: NumCPU goroutines in parallel); and POST
//     /_matrix-internal/identity/v1/check_credentials (docs/rest.md) with
//     the users' Matrix IDs and passwords, -c in flight. The ratios
//     flows/s ÷ hashes/s and checks/s ÷ hashes/s say how close a login
//     and Synapse's password check get to what the hash alone allows; the
//     same for flows in CPU (CPU per hash alone ÷ server CPU per flow),
//     which holds even when others take CPU from the run.
//
// Every slice is a steady-state window: the units (flows, requests,
// checks, hashes) start 150 ms before it opens, none starts after it
// closes, and only those that ended inside it count for rates and for the
// CPU and statements per unit, so that neither the ramp-up nor the tail (in
// which fewer units are in flight) weighs on a ratio. Each measurement
// also prints the CPU that processes outside the measurement used
// meanwhile (from /proc/stat), so that a run disturbed by other work on
// the machine can be recognised.
//
// The summary prints the README's Performance table as measured, one line per figure and
// backend, with its target and PASS or FAIL (a missed target does not
// change the exit status): server CPU per flow beyond the hash on SQLite
// ≤ 1.0 ms with the ES256 client and ≤ one RS256 signature (measured here)
// + 1.0 ms with the RS256 client; on PostgreSQL, database included, ≤ one
// signature + 2.0 ms (RS256; ES256 is shown against 2.0 ms by analogy, in
// parentheses); flows/s at the default cost ÷ parallel hashes/s ≥ 0.9 on
// both; check_credentials/s ÷ hashes/s ≥ 0.9 on PostgreSQL (SQLite shown
// in parentheses); discovery and JWKS ≥ 0.8 × the plain handler's req/s
// with the request log on; VmRSS idle ≤ 18 MiB on SQLite; the statements
// per flow (no target: fewer). Then the details side by side.
//
// Every failed flow or request is counted by step, HTTP status and kind,
// with the first example in full (body and X-Request-Id), and the server's
// log is printed when it has problems (at level warn: any line). The exit
// status is 1 when anything failed or the server logged a problem, 2 when
// the measurement could not be run at all, and 0 otherwise.
//
// All traffic goes to 127.0.0.1. The whole run is bounded by -deadline.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"
)

type options struct {
	mxidp       string
	backends    []string
	users       int
	workers     int
	warmup      time.Duration
	flowTime    time.Duration
	getTime     time.Duration
	hashTime    time.Duration
	checkTime   time.Duration
	deadline    time.Duration
	countOnly   bool
	keep        bool
	verbose     bool
	pgRequired  bool
	postgresURL string
}

func main() {
	var o options
	var backends, plainManifest string
	flag.StringVar(&o.mxidp, "mxidp", "bin/mxidp", "the mxidp binary to run")
	flag.StringVar(&backends, "backends", "sqlite,postgres", "comma-separated database backends to measure: sqlite, postgres")
	flag.IntVar(&o.users, "users", 200, "distinct users; flows go round-robin over them")
	flag.IntVar(&o.workers, "c", 8, "flows (or requests) in flight")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured flows before the cheap-cost measurement")
	flag.DurationVar(&o.flowTime, "flows", 8*time.Second, "measured duration of each flow measurement (per client at the cheap cost; at the default cost)")
	flag.DurationVar(&o.getTime, "get", 4*time.Second, "measured duration per document per server (discovery, JWKS)")
	flag.DurationVar(&o.hashTime, "hash", 6*time.Second, "duration of the hash-alone measurement (in four slices among the default-cost flows and checks)")
	flag.DurationVar(&o.checkTime, "check", 6*time.Second, "duration of the check_credentials measurement (in four slices)")
	flag.BoolVar(&o.countOnly, "count-statements", false, "only count the SQL statements of one flow, step by step, and exit")
	flag.DurationVar(&o.deadline, "deadline", 8*time.Minute, "give up after this long in all")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (databases, configs, server logs)")
	flag.BoolVar(&o.verbose, "v", false, "print each new kind of failure when it first happens")
	flag.StringVar(&plainManifest, "serve-plain", "", "internal: serve the documents of this manifest with a plain net/http handler")
	flag.Parse()
	if plainManifest != "" {
		servePlain(plainManifest)
		return
	}
	for _, b := range strings.Split(backends, ",") {
		if b = strings.TrimSpace(b); b != "" {
			o.backends = append(o.backends, b)
		}
	}
	o.postgresURL = os.Getenv("MXIDP_TEST_POSTGRES")
	o.pgRequired = os.Getenv("MXIDP_TEST_POSTGRES_REQUIRED") == "1"

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.deadline)
	defer cancel()
	os.Exit(run(ctx, o))
}

func run(ctx context.Context, o options) int {
	host, _ := os.Hostname()
	if o.countOnly {
		fmt.Printf("mxidp-loadgen -count-statements: %s, %s\n", host, time.Now().Format(time.RFC3339))
		return countAll(ctx, o)
	}
	fmt.Printf("mxidp-loadgen: %s, %d CPUs (GOMAXPROCS %d), %s; %d users, %d in flight\n",
		host, runtime.NumCPU(), runtime.GOMAXPROCS(0), time.Now().Format(time.RFC3339), o.users, o.workers)
	fmt.Printf("  durations: warm-up %s, flows %s, discovery/JWKS %s per server, hash alone %s, check_credentials %s\n",
		o.warmup, o.flowTime, o.getTime, o.hashTime, o.checkTime)

	var results []*backendResult
	broken := false
	for _, name := range o.backends {
		var res *backendResult
		b, err := pickBackend(ctx, o, name)
		if b == nil && err == nil {
			continue
		}
		if err == nil {
			res, err = measureBackend(ctx, o, b)
		}
		if err != nil {
			fmt.Printf("\nmxidp-loadgen: %s: %v\n", name, err)
			broken = true
		}
		if res != nil {
			results = append(results, res)
		}
		if ctx.Err() != nil {
			break
		}
	}
	printSummary(results)
	switch {
	case len(results) == 0:
		return 2
	case broken:
		return 2
	case anyFailures(results):
		fmt.Println("\nmxidp-loadgen: the server misbehaved under load (see the failures and log lines above); exit status 1")
		return 1
	}
	return 0
}

// pickBackend returns the backend of this name; nil and no error when it
// is PostgreSQL, not required, and there is none.
func pickBackend(ctx context.Context, o options, name string) (*backend, error) {
	switch name {
	case "sqlite":
		return sqliteBackend(), nil
	case "postgres":
		if o.postgresURL == "" {
			if o.pgRequired {
				return nil, fmt.Errorf("MXIDP_TEST_POSTGRES is not set (run under .ci/with-postgres)")
			}
			fmt.Println("\n== PostgreSQL: skipped, MXIDP_TEST_POSTGRES is not set (run under .ci/with-postgres)")
			return nil, nil
		}
		return postgresBackend(ctx, o.postgresURL)
	}
	return nil, fmt.Errorf("unknown backend %q (want sqlite or postgres)", name)
}

// countAll is -count-statements: the statements of one flow, step by
// step, per backend and client.
func countAll(ctx context.Context, o options) int {
	status := 0
	for _, name := range o.backends {
		b, err := pickBackend(ctx, o, name)
		if b == nil && err == nil {
			continue
		}
		var runs []clientRun
		var problems []string
		if err == nil {
			t := time.Now()
			runs, problems, err = countBackend(ctx, o, b)
			fmt.Printf("\n== %s: SQL statements of one complete flow, step by step (least of 5 flows; %.1f s)\n", b.name, time.Since(t).Seconds())
		}
		if len(runs) > 0 {
			printSteps(runs)
			if len(runs) == 1 {
				fmt.Println("  (ES256 and EdDSA: not available in this binary)")
			}
		}
		if len(problems) > 0 {
			printServerLog("mxidp serve", problems, "")
			status = max(status, 1)
		}
		if err != nil {
			fmt.Printf("mxidp-loadgen: %s: %v\n", name, err)
			status = 2
		}
	}
	return status
}
