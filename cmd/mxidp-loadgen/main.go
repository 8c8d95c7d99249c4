// Command mxidp-loadgen measures a running mxidp the way a relying party
// and its users load it: complete OpenID Connect login flows, and the two
// documents every relying party fetches. `make bench` runs it.
//
// For each database backend (SQLite always; PostgreSQL when
// MXIDP_TEST_POSTGRES names a server it may create databases on, as
// .ci/with-postgres arranges) it makes a fresh database, registers one
// confidential client and -users users with the mxidp command line, starts
// `mxidp serve` on a free port of 127.0.0.1, and measures, in this order:
//
//  1. Complete login flows with a cheap argon2id cost (time 1, 64 KiB,
//     1 thread), so that the password hash is all but excluded: authorize →
//     login page (GET) → login submit (POST) → callback → token → ID-token
//     check (RS256 signature against /keys, iss, aud, nonce, exp, the user)
//     → userinfo (same sub). Every flow is a new browser (fresh cookie jar),
//     so every flow checks a password; flows go round-robin over the users.
//     -c flows are in flight; HTTP connections are kept alive and shared
//     between flows. It reports flows/s, p50/p99 latency per step, and the
//     server CPU per flow: utime+stime from /proc/PID/stat of the mxidp
//     process and, on PostgreSQL, of the cluster's postmaster and all its
//     children (plus the CPU of children that exited, from the postmaster's
//     cutime+cstime), read before and after the measured interval.
//  2. GET /.well-known/openid-configuration and GET /keys from mxidp,
//     beside a plain net/http handler serving the same bytes with the same
//     Content-Type and Cache-Control from a second process (this program
//     re-executed with -serve-plain), in eight slices ordered mxidp, plain,
//     plain, mxidp, mxidp, plain, plain, mxidp so that drift in the
//     machine's load hits both alike; also the server CPU per request.
//  3. The flow rate with the default argon2id cost (time 2, 19456 KiB,
//     1 thread): mxidp is restarted with that cost on the same database;
//     a warm-up of exactly one flow per user replaces every stored cheap
//     hash with a default-cost one (mxidp rehashes on login), then flows
//     are measured. The hash alone is measured in this process just before
//     and just after (argon2id at the same cost on GOMAXPROCS goroutines,
//     while the server is idle); the ratio flows/s ÷ hashes/s says how close
//     the login flow gets to what the password hash alone allows. The same
//     is also shown in CPU (CPU per hash alone ÷ server CPU per flow), which
//     holds even when others take CPU from the run.
//
// Each measurement also prints the CPU that processes outside the
// measurement used meanwhile (from /proc/stat), so that a run disturbed by
// other work on the machine can be recognised.
//
// Targets (printed PASS/FAIL; a missed target does not change the exit
// status): discovery and JWKS ≥ 0.9 × the plain handler's requests/s;
// server CPU per complete flow, hash excluded, ≤ 1.5 ms; flow rate at the
// default cost ≥ 0.9 × the hash-alone rate.
//
// Every failed flow or request is counted by step, HTTP status and kind,
// with the first example in full (body and X-Request-Id), and the server's
// log (run at level warn) is printed when it has lines. The exit status is
// 1 when anything failed or the server logged anything, 2 when the
// measurement could not be run at all, and 0 otherwise.
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
	deadline    time.Duration
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
	flag.DurationVar(&o.flowTime, "flows", 10*time.Second, "measured duration of each flow measurement")
	flag.DurationVar(&o.getTime, "get", 4*time.Second, "measured duration per document per server (discovery, JWKS)")
	flag.DurationVar(&o.hashTime, "hash", 4*time.Second, "duration of the hash-alone measurement (half before, half after the default-cost flows)")
	flag.DurationVar(&o.deadline, "deadline", 5*time.Minute, "give up after this long in all")
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
	fmt.Printf("mxidp-loadgen: %s, %d CPUs (GOMAXPROCS %d), %s; %d users, %d in flight\n",
		host, runtime.NumCPU(), runtime.GOMAXPROCS(0), time.Now().Format(time.RFC3339), o.users, o.workers)
	fmt.Printf("  durations: warm-up %s, flows %s, discovery/JWKS %s per server, hash alone %s\n",
		o.warmup, o.flowTime, o.getTime, o.hashTime)

	var results []*backendResult
	broken := false
	for _, name := range o.backends {
		var res *backendResult
		var err error
		switch name {
		case "sqlite":
			res, err = measureBackend(ctx, o, sqliteBackend())
		case "postgres":
			if o.postgresURL == "" {
				if o.pgRequired {
					err = fmt.Errorf("MXIDP_TEST_POSTGRES is not set (run under .ci/with-postgres)")
					break
				}
				fmt.Println("\n== PostgreSQL: skipped, MXIDP_TEST_POSTGRES is not set (run under .ci/with-postgres)")
				continue
			}
			var b *backend
			if b, err = postgresBackend(ctx, o.postgresURL); err == nil {
				res, err = measureBackend(ctx, o, b)
			}
		default:
			err = fmt.Errorf("unknown backend %q (want sqlite or postgres)", name)
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
	case broken:
		return 2
	case anyFailures(results):
		fmt.Println("\nmxidp-loadgen: the server misbehaved under load (see the failures and log lines above); exit status 1")
		return 1
	}
	return 0
}
