package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// phase is one measured (or warm-up) run, kept for the failure count.
type phase struct {
	name string
	out  outcome
}

// clientRun is the cheap-cost flows of one client: its ID-token algorithm,
// the flows, and the statements of one flow step by step.
type clientRun struct {
	alg   jose.SignatureAlgorithm
	flows outcome
	steps stepStatements
}

// backendResult is everything measured on one backend.
type backendResult struct {
	name     string
	dbCPU    string // whose CPU counts as the database's; "" for SQLite
	es256    bool   // this mxidp registers ES256 clients
	idle     memory // of a freshly started server, idleWait after ready
	idleErr  string
	sigIdle  signatures // one RS256 signature here, the server idle
	sigLoad  signatures // the same, sampled during the cheap-cost flows
	cheapRun []clientRun
	// cheapHash is one cheap verification on one core: the part of a
	// cheap-cost flow's CPU that is the hash.
	cheapHash   time.Duration
	gets        []getComparison
	getLog      infoLog // the info-level server's log during the GETs
	getRequests int     // requests that server answered
	defaultRun  outcome // flows at the default cost, RS256 client
	checks      outcome // check_credentials at the default cost
	hash        hashResult
	phases      []phase
	serverLogs  map[string][]string // per server run: lines that are problems
	serverState []string            // problems with the server process itself
}

func (r *backendResult) client(alg jose.SignatureAlgorithm) *clientRun {
	for i := range r.cheapRun {
		if r.cheapRun[i].alg == alg {
			return &r.cheapRun[i]
		}
	}
	return nil
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

// idleWait is how long a fresh server idles before its memory is read.
const idleWait = 3 * time.Second

// abba orders n kinds of slices over four rounds, forward and backward in
// turn (for two kinds: 0 1 1 0 0 1 1 0), so that a drift in the machine's
// load hits every kind alike; each kind gets four slices.
func abba(n int) []int {
	var order []int
	for round := range 4 {
		for i := range n {
			if round%2 == 1 {
				i = n - 1 - i
			}
			order = append(order, i)
		}
	}
	return order
}

// workspace makes a work directory and a fresh database of b in it; done
// drops the database and removes the directory (kept with -keep).
func workspace(ctx context.Context, o options, b *backend) (dir, dbURL string, done func(), err error) {
	dir, err = os.MkdirTemp("", "mxidp-loadgen-")
	if err != nil {
		return "", "", nil, err
	}
	removeDir := func() { os.RemoveAll(dir) }
	if o.keep {
		removeDir = func() { fmt.Printf("  (work directory kept: %s)\n", dir) }
	}
	dbURL, drop, err := b.create(ctx, dir)
	if err != nil {
		removeDir()
		return "", "", nil, err
	}
	return dir, dbURL, func() { drop(); removeDir() }, nil
}

// measureBackend runs every measurement on a fresh database of b. It
// returns what it measured even when it stops early.
func measureBackend(ctx context.Context, o options, b *backend) (res *backendResult, err error) {
	res = &backendResult{name: b.name, serverLogs: map[string][]string{}}
	if b.cluster != nil {
		res.dbCPU = b.cluster.describe()
	}
	dir, dbURL, done, err := workspace(ctx, o, b)
	if err != nil {
		return nil, err
	}
	defer done()
	fmt.Printf("\n== %s: %s\n", b.name, redact(dbURL))
	if res.dbCPU != "" {
		fmt.Printf("  database CPU: %s\n", res.dbCPU)
	}

	seen := &reporter{on: o.verbose}
	users := makeAccounts(o.users)
	in := &instance{bin: o.mxidp, dir: dir, database: dbURL}
	cheapWarn := serverConfig{name: "cheap", level: "warn", passwords: cheapCost}
	if err := in.configure(cheapWarn); err != nil {
		return res, err
	}
	if res.es256, err = in.hasIDTokenAlg(ctx); err != nil {
		return res, err
	}
	if !res.es256 {
		fmt.Println("  ES256: not available in this binary (mxidp client add has no --id-token-alg); RS256 client only")
	}
	t := time.Now()
	clients, err := in.seed(ctx, users, res.es256)
	if err != nil {
		return res, fmt.Errorf("seeding: %w", err)
	}
	fmt.Printf("  seeded %d clients (ID tokens %s) and %d users (%s) with the mxidp command line in %.1f s\n",
		len(clients), algList(clients), len(users), cheap, time.Since(t).Seconds())

	// The server's log: at level warn every line is a problem; at info,
	// the lines at warn and error (scanInfoLog).
	stopServer := func(label string, info bool) {
		if err := in.stop(); err != nil {
			res.serverState = append(res.serverState, label+": "+err.Error())
		}
		lines := logLines(in.logPath)
		if info {
			res.getLog = scanInfoLog(lines)
			lines = res.getLog.problems
		}
		res.serverLogs[label] = lines
		printServerLog(label, lines, in.logPath)
	}
	running := ""
	defer func() {
		if running != "" {
			stopServer(running, false)
		}
	}()

	// 1. A fresh server idles: its memory; meanwhile the RSA key of the
	// signature yardstick is made, and one signature measured.
	if err := in.start(ctx, dir+"/serve-cheap.log"); err != nil {
		return res, err
	}
	running = "mxidp serve, " + cheap.String()
	ready := time.Now()
	sig, err := newSigner()
	if err != nil {
		return res, err
	}
	select {
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(time.Until(ready.Add(idleWait))):
	}
	if res.idle, err = readMemory(in.pid()); err != nil {
		res.idleErr = err.Error()
	}
	if res.sigIdle, err = sig.idle(ctx, 500*time.Millisecond); err != nil {
		return res, err
	}
	fmt.Printf("\n  -- the server idle\n")
	printIdle(res)

	// 2. The statements of one flow, step by step, per client.
	p, err := connect(ctx, in.issuer, o.workers)
	if err != nil {
		return res, err
	}
	sc, err := newStatementCounter(ctx, p.backChannel, in.issuer)
	if err != nil {
		return res, err
	}
	// The flows are measured with the RS256 and the ES256 client; the
	// EdDSA one's statements are counted (and its ID tokens checked).
	var rps []*relyingParty
	var measured []registration
	var counted []clientRun
	for _, c := range clients {
		one, err := p.client(c, users[:1])
		if err != nil {
			return res, err
		}
		steps, err := countStatements(ctx, one, sc, 5)
		if err != nil {
			return res, fmt.Errorf("counting statements (%s client): %w", c.alg, err)
		}
		counted = append(counted, clientRun{alg: c.alg, steps: steps})
		if c.alg == jose.EdDSA {
			continue
		}
		rp, err := p.client(c, users)
		if err != nil {
			return res, err
		}
		rps, measured = append(rps, rp), append(measured, c)
		res.cheapRun = append(res.cheapRun, clientRun{alg: c.alg, steps: steps})
	}
	fmt.Printf("\n  -- SQL statements of one complete flow, step by step (least of 5 flows of one user; a scrape of /metrics adds %d)\n", sc.perScrape)
	printSteps(counted)

	// 3. Flows with the cheap hash, the clients interleaved, a signature
	// sampled now and then meanwhile.
	res.cheapHash = perHash(ctx, cheap)
	fmt.Printf("\n  -- complete login flows, %s (hash nearly free), %d in flight, %s per client (%s interleaved)\n",
		cheap, o.workers, o.flowTime, algList(measured))
	for i, rp := range rps {
		warm, err := drive(ctx, o.workers, o.warmup/time.Duration(len(rps)), 0, nil, rp.flow, seen, "warm-up")
		res.phases = append(res.phases, phase{"warm-up, cheap hash, " + string(measured[i].alg), warm})
		printPhaseFailures("warm-up "+string(measured[i].alg), warm)
		if err != nil {
			return res, err
		}
	}
	meter := &cpuMeter{serverPID: in.pid(), db: b.cluster, stmts: sc}
	sampler := sig.underLoad(25 * time.Millisecond)
	for _, i := range abba(len(rps)) {
		part, err := drive(ctx, o.workers, o.flowTime/4, 0, meter, rps[i].flow, seen, "flows "+string(measured[i].alg))
		res.cheapRun[i].flows.merge(part)
		if err != nil {
			sampler.finish()
			return res, err
		}
	}
	res.sigLoad = sampler.finish()
	for _, cr := range res.cheapRun {
		res.phases = append(res.phases, phase{"flows, cheap hash, " + string(cr.alg), cr.flows})
		fmt.Printf("\n  client with %s ID tokens:\n", cr.alg)
		printFlows(cr.flows)
		printFlowCPU(cr.flows, b.cluster != nil, res.cheapHash, res.sigIdle, res.sigLoad)
		printPhaseFailures("flows "+string(cr.alg), cr.flows)
	}
	running = ""
	stopServer("mxidp serve, "+cheap.String(), false)

	// 4. Discovery and JWKS, mxidp at level info (the request log on,
	// into a file) beside a plain handler.
	if err := in.configure(serverConfig{name: "info", level: "info", passwords: cheapCost}); err != nil {
		return res, err
	}
	if err := in.start(ctx, dir+"/serve-info.log"); err != nil {
		return res, err
	}
	running = "mxidp serve, log level info"
	fmt.Printf("\n  -- GET discovery and JWKS: mxidp (log level info, its log into a file) beside a plain net/http handler (second process), %d in flight, %s each\n", o.workers, o.getTime)
	p, err = connect(ctx, in.issuer, o.workers)
	if err != nil {
		return res, err
	}
	var docs []document
	for _, d := range []struct{ name, path string }{{"discovery", "/.well-known/openid-configuration"}, {"JWKS", "/keys"}} {
		doc, err := fetchDocument(ctx, p.backChannel, d.name, in.issuer, d.path)
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
		res.getRequests += g.served
		if err != nil {
			plain.stop()
			return res, err
		}
		res.gets = append(res.gets, g)
	}
	plain.stop()
	printGETs(res.gets)
	running = ""
	stopServer("mxidp serve, log level info", true)
	fmt.Printf("  request log: %d lines at level info, %d of them request lines, for about %d requests answered; %d at warn or error\n",
		res.getLog.lines, res.getLog.requests, res.getRequests+4, len(res.getLog.problems))

	// 5. The default cost: flows, the hash alone and check_credentials,
	// interleaved.
	if err := in.configure(serverConfig{name: "default", level: "warn", passwords: defaultCost, rest: true}); err != nil {
		return res, err
	}
	if err := in.start(ctx, dir+"/serve-default.log"); err != nil {
		return res, err
	}
	label := "mxidp serve, " + defaultC.String()
	running = label
	if p, err = connect(ctx, in.issuer, o.workers); err != nil {
		return res, err
	}
	rp, err := p.client(clients[0], users)
	if err != nil {
		return res, err
	}
	if sc, err = newStatementCounter(ctx, p.backChannel, in.issuer); err != nil {
		return res, err
	}
	meter = &cpuMeter{serverPID: in.pid(), db: b.cluster, stmts: sc}
	fmt.Printf("\n  -- %s (the default): login flows (%s client), the hash alone (%d verifiers in parallel, one per core) and check_credentials (REST), %d in flight, interleaved; flows %s, hash %s, checks %s in all\n",
		defaultC, clients[0].alg, verifiersPerCore(), o.workers, o.flowTime, o.hashTime, o.checkTime)
	t = time.Now()
	rehash, err := drive(ctx, o.workers, 0, len(users), nil, rp.flow, seen, "rehash warm-up")
	res.phases = append(res.phases, phase{"warm-up (rehash to default cost)", rehash})
	if err != nil {
		return res, err
	}
	fmt.Printf("  warm-up: one flow per user, %d ok, %d failed, in %.1f s (each login replaced a cheap hash by a default-cost one)\n",
		rehash.ok, rehash.failed(), time.Since(t).Seconds())
	printPhaseFailures("warm-up", rehash)
	check := p.checkCredentials(users)
	for _, kind := range abba(3) {
		var err error
		switch kind {
		case 0:
			var part outcome
			part, err = drive(ctx, o.workers, o.flowTime/4, 0, meter, rp.flow, seen, "flows, default cost")
			res.defaultRun.merge(part)
		case 1:
			h := hashAlone(ctx, defaultC, o.hashTime/4, 0)
			if res.hash.n == 0 && res.hash.elapsed == 0 {
				res.hash = h
			} else {
				res.hash = res.hash.plus(h)
			}
			err = ctx.Err()
		case 2:
			var part outcome
			part, err = drive(ctx, o.workers, o.checkTime/4, 0, meter, check, seen, "check_credentials")
			res.checks.merge(part)
		}
		if err != nil {
			return res, err
		}
	}
	res.phases = append(res.phases, phase{"flows, default cost", res.defaultRun}, phase{"check_credentials, default cost", res.checks})
	printFlows(res.defaultRun)
	printFlowCPU(res.defaultRun, b.cluster != nil, 0, signatures{}, signatures{})
	printHash(res.defaultRun, res.hash)
	printPhaseFailures("flows", res.defaultRun)
	printChecks(res.checks, res.hash, b.cluster != nil)
	printPhaseFailures("check_credentials", res.checks)
	running = ""
	stopServer(label, false)
	return res, nil
}

func algList(cs []registration) string {
	var algs []string
	for _, c := range cs {
		algs = append(algs, string(c.alg))
	}
	return strings.Join(algs, ", ")
}

// perHash is the time of one argon2id computation at cost c on one core.
func perHash(ctx context.Context, c cost) time.Duration {
	h := hashAlone(ctx, c, 300*time.Millisecond, 1)
	if h.n == 0 {
		return 0
	}
	return h.elapsed / time.Duration(h.n)
}

// countBackend is -count-statements: on a fresh database of b with one
// user, it counts the statements of one flow step by step, per client,
// and nothing else.
func countBackend(ctx context.Context, o options, b *backend) (stepsByClient []clientRun, logProblems []string, err error) {
	dir, dbURL, done, err := workspace(ctx, o, b)
	if err != nil {
		return nil, nil, err
	}
	defer done()
	in := &instance{bin: o.mxidp, dir: dir, database: dbURL}
	if err := in.configure(serverConfig{name: "cheap", level: "warn", passwords: cheapCost}); err != nil {
		return nil, nil, err
	}
	es256, err := in.hasIDTokenAlg(ctx)
	if err != nil {
		return nil, nil, err
	}
	users := makeAccounts(1)
	clients, err := in.seed(ctx, users, es256)
	if err != nil {
		return nil, nil, fmt.Errorf("seeding: %w", err)
	}
	if err := in.start(ctx, dir+"/serve.log"); err != nil {
		return nil, nil, err
	}
	defer func() {
		if stopErr := in.stop(); stopErr != nil && err == nil {
			err = stopErr
		}
		logProblems = logLines(in.logPath)
	}()
	p, err := connect(ctx, in.issuer, 1)
	if err != nil {
		return nil, nil, err
	}
	sc, err := newStatementCounter(ctx, p.backChannel, in.issuer)
	if err != nil {
		return nil, nil, err
	}
	for _, c := range clients {
		rp, err := p.client(c, users)
		if err != nil {
			return nil, nil, err
		}
		steps, err := countStatements(ctx, rp, sc, 5)
		if err != nil {
			return stepsByClient, nil, fmt.Errorf("%s client: %w", c.alg, err)
		}
		stepsByClient = append(stepsByClient, clientRun{alg: c.alg, steps: steps})
	}
	return stepsByClient, nil, nil
}
