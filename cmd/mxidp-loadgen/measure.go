package main

import (
	"context"
	"fmt"
	"os"
	"time"
)

const (
	clientID    = "loadgen"
	redirectURI = "http://127.0.0.1:9/cb" // never requested: the flow stops at the redirect
)

// phase is one measured (or warm-up) run, kept for the failure count.
type phase struct {
	name string
	out  outcome
}

// backendResult is everything measured on one backend.
type backendResult struct {
	name        string
	dbCPU       string // whose CPU counts as the database's; "" for SQLite
	cheapFlows  outcome
	cheapHash   time.Duration // one cheap verification, one core
	gets        []getComparison
	defaultRun  outcome
	hash        hashResult
	phases      []phase
	serverLogs  map[string][]string // per server run
	serverState []string            // problems with the server process itself
}

func (r *backendResult) failures() int {
	n := 0
	for _, p := range r.phases {
		n += p.out.failed()
	}
	return n
}

func anyFailures(rs []*backendResult) bool {
	for _, r := range rs {
		if r.failures() > 0 || len(r.serverState) > 0 {
			return true
		}
		for _, lines := range r.serverLogs {
			if len(lines) > 0 {
				return true
			}
		}
	}
	return false
}

// measureBackend runs every measurement on a fresh database of b. It
// returns what it measured even when it stops early.
func measureBackend(ctx context.Context, o options, b *backend) (res *backendResult, err error) {
	res = &backendResult{name: b.name, serverLogs: map[string][]string{}}
	if b.cluster != nil {
		res.dbCPU = b.cluster.describe()
	}
	dir, err := os.MkdirTemp("", "mxidp-loadgen-")
	if err != nil {
		return nil, err
	}
	if o.keep {
		defer fmt.Printf("  (work directory kept: %s)\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	dbURL, drop, err := b.create(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer drop()
	fmt.Printf("\n== %s: %s\n", b.name, redact(dbURL))
	if res.dbCPU != "" {
		fmt.Printf("  database CPU: %s\n", res.dbCPU)
	}

	seen := &reporter{on: o.verbose}
	users := makeAccounts(o.users)
	in := &instance{bin: o.mxidp, dir: dir, database: dbURL}
	if err := in.configure("cheap", cheapCost); err != nil {
		return res, err
	}
	t := time.Now()
	secret, err := in.seed(ctx, clientID, redirectURI, users)
	if err != nil {
		return res, fmt.Errorf("seeding: %w", err)
	}
	fmt.Printf("  seeded 1 client and %d users (%s) with the mxidp command line in %.1f s\n", len(users), cheap, time.Since(t).Seconds())

	// 1 and 2: flows with the cheap hash, then discovery and JWKS.
	if err := in.start(ctx, dir+"/serve-cheap.log"); err != nil {
		return res, err
	}
	stopServer := func(label string) {
		if err := in.stop(); err != nil {
			res.serverState = append(res.serverState, label+": "+err.Error())
		}
		res.serverLogs[label] = logLines(in.logPath)
		printServerLog(label, res.serverLogs[label], in.logPath)
	}
	running := true
	defer func() {
		if running {
			stopServer("mxidp serve, " + cheap.String())
		}
	}()
	rp, err := connect(ctx, in.issuer, clientID, secret, redirectURI, users, o.workers)
	if err != nil {
		return res, err
	}
	meter := &cpuMeter{serverPID: in.pid(), db: b.cluster}
	res.cheapHash = perHash(ctx, cheap)

	fmt.Printf("\n  -- complete login flows, %s (hash nearly free), %d in flight, %s\n", cheap, o.workers, o.flowTime)
	warm, err := drive(ctx, o.workers, o.warmup, 0, nil, rp.flow, seen, "warm-up")
	res.phases = append(res.phases, phase{"warm-up, cheap hash", warm})
	if err != nil {
		return res, err
	}
	res.cheapFlows, err = drive(ctx, o.workers, o.flowTime, 0, meter, rp.flow, seen, "flows")
	res.phases = append(res.phases, phase{"flows, cheap hash", res.cheapFlows})
	if err != nil {
		return res, err
	}
	printFlows(res.cheapFlows)
	printFlowCPU(res.cheapFlows, b.cluster != nil, res.cheapHash)
	printPhaseFailures("warm-up", warm)
	printPhaseFailures("flows", res.cheapFlows)

	fmt.Printf("\n  -- GET discovery and JWKS: mxidp beside a plain net/http handler (second process), %d in flight, %s each\n", o.workers, o.getTime)
	var docs []document
	for _, d := range []struct{ name, path string }{{"discovery", "/.well-known/openid-configuration"}, {"JWKS", "/keys"}} {
		doc, err := fetchDocument(ctx, rp.backChannel, d.name, in.issuer, d.path)
		if err != nil {
			return res, err
		}
		docs = append(docs, doc)
	}
	plain, err := startPlain(dir, docs)
	if err != nil {
		return res, err
	}
	for _, doc := range docs {
		g, err := compareGET(ctx, o, doc, in.issuer, in.pid(), plain, seen)
		res.phases = append(res.phases, phase{doc.Name + " (mxidp)", g.mxidp}, phase{doc.Name + " (plain)", g.plain})
		if err != nil {
			plain.stop()
			return res, err
		}
		res.gets = append(res.gets, g)
	}
	plain.stop()
	printGETs(res.gets)
	running = false
	stopServer("mxidp serve, " + cheap.String())

	// 3: the default cost, beside the hash alone.
	if err := in.configure("default", defaultCost); err != nil {
		return res, err
	}
	if err := in.start(ctx, dir+"/serve-default.log"); err != nil {
		return res, err
	}
	running = true
	label := "mxidp serve, " + defaultC.String()
	defer func() {
		if running {
			stopServer(label)
		}
	}()
	if rp, err = connect(ctx, in.issuer, clientID, secret, redirectURI, users, o.workers); err != nil {
		return res, err
	}
	meter = &cpuMeter{serverPID: in.pid(), db: b.cluster}
	fmt.Printf("\n  -- complete login flows, %s (the default), %d in flight, %s; the hash alone before and after\n", defaultC, o.workers, o.flowTime)
	t = time.Now()
	rehash, err := drive(ctx, o.workers, 0, len(users), nil, rp.flow, seen, "rehash warm-up")
	res.phases = append(res.phases, phase{"warm-up (rehash to default cost)", rehash})
	if err != nil {
		return res, err
	}
	fmt.Printf("  warm-up: one flow per user, %d ok, %d failed, in %.1f s (each login replaced a cheap hash by a default-cost one)\n",
		rehash.ok, rehash.failed(), time.Since(t).Seconds())
	res.hash = hashAlone(ctx, defaultC, o.hashTime/2, 0)
	res.defaultRun, err = drive(ctx, o.workers, o.flowTime, 0, meter, rp.flow, seen, "flows, default cost")
	res.phases = append(res.phases, phase{"flows, default cost", res.defaultRun})
	if err != nil {
		return res, err
	}
	res.hash = res.hash.plus(hashAlone(ctx, defaultC, o.hashTime/2, 0))
	printFlows(res.defaultRun)
	printFlowCPU(res.defaultRun, b.cluster != nil, 0)
	printHash(res.defaultRun, res.hash)
	printPhaseFailures("warm-up", rehash)
	printPhaseFailures("flows", res.defaultRun)
	running = false
	stopServer(label)
	return res, nil
}

// perHash is the time of one argon2id computation at cost c on one core.
func perHash(ctx context.Context, c cost) time.Duration {
	h := hashAlone(ctx, c, 300*time.Millisecond, 1)
	if h.n == 0 {
		return 0
	}
	return h.elapsed / time.Duration(h.n)
}
