package main

import (
	"fmt"
	"runtime"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Targets of the README's Performance table.
const (
	es256CPUTarget  = 1.0  // ms per flow beyond the hash, SQLite, ES256 client
	sqliteCPUMargin = 1.0  // ms beyond one RS256 signature, SQLite, RS256 client
	pgCPUMargin     = 2.0  // ms beyond one RS256 signature, PostgreSQL, database included
	hashRateTarget  = 0.9  // flows/s at the default cost ÷ parallel hashes/s
	checkTarget     = 0.9  // check_credentials/s ÷ parallel hashes/s, PostgreSQL
	getTarget       = 0.8  // discovery and JWKS req/s ÷ a plain handler's, request log on
	idleRSSTarget   = 18.0 // MiB, SQLite, idleWait after ready
)

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func perFlow(d time.Duration, flows int) float64 {
	if flows == 0 {
		return 0
	}
	return ms(d) / float64(flows)
}

// serverCPU is the server side's CPU per unit: mxidp and the database.
func serverCPU(o outcome) float64 {
	if o.recorder == nil {
		return 0
	}
	return perFlow(o.cpu.server+o.cpu.db, o.counted)
}

// beyondHash is a cheap-cost flow's server CPU less the cheap hash: what
// the issue calls the CPU per login flow beyond the hash.
func (r *backendResult) beyondHash(cr *clientRun) float64 {
	return serverCPU(cr.flows) - ms(r.cheapHash)
}

// statementsPer is the statements counted during o per unit.
func statementsPer(o outcome) float64 {
	if o.counted == 0 {
		return 0
	}
	return float64(o.cpu.statements) / float64(o.counted)
}

func printIdle(r *backendResult) {
	if r.idleErr != "" {
		fmt.Printf("  memory %s after ready: %s\n", idleWait, r.idleErr)
	} else {
		fmt.Printf("  memory %s after ready, before any login: VmRSS %.1f MiB, VmHWM %.1f MiB", idleWait, mib(r.idle.rss), mib(r.idle.hwm))
		if r.dbCPU == "" {
			fmt.Printf(" (target VmRSS ≤ %.0f MiB: %s)", idleRSSTarget, verdict(mib(r.idle.rss) <= idleRSSTarget))
		}
		fmt.Println()
	}
	fmt.Printf("  one RS256 signature (RSA-2048, PKCS #1 v1.5, SHA-256) in this process, the server idle: %.3f ms CPU (%d in %.2f s)\n",
		ms(r.sigIdle.perSignature()), r.sigIdle.n, r.sigIdle.wall.Seconds())
}

func printSteps(runs []clientRun) {
	fmt.Printf("  %-16s", "step")
	for _, cr := range runs {
		fmt.Printf(" %8s", cr.alg)
	}
	fmt.Println()
	for _, step := range countedSteps {
		fmt.Printf("  %-16s", step)
		for _, cr := range runs {
			fmt.Printf(" %8d", cr.steps.step[step])
		}
		fmt.Println()
	}
	fmt.Printf("  %-16s", "whole flow")
	for _, cr := range runs {
		fmt.Printf(" %8d", cr.steps.total())
	}
	fmt.Println()
	for _, cr := range runs {
		fmt.Printf("  (%s: the counted flows had %v in all)\n", cr.alg, cr.steps.reps)
	}
}

func printFlows(o outcome) {
	fmt.Printf("  %d flows ok, %d failed; %d of them ended in the measured %.2f s: %.1f flows/s\n", o.ok, o.failed(), o.counted, o.elapsed.Seconds(), o.rate())
	fmt.Printf("  %-16s %7s %9s %9s %9s\n", "step", "count", "p50 ms", "p99 ms", "max ms")
	for _, step := range append(flowSteps, "flow") {
		s := summarize(o.latency[step])
		name := step
		if step == "flow" {
			name = "whole flow"
		}
		fmt.Printf("  %-16s %7d %9.2f %9.2f %9.2f\n", name, s.n, ms(s.p50), ms(s.p99), ms(s.max))
	}
}

func printFlowCPU(o outcome, withDB bool, cheapHash time.Duration, sigIdle, sigLoad signatures) {
	c := o.cpu
	total := c.server + c.db
	fmt.Printf("  server CPU in %.2f s: mxidp %.2f s (%.0f%% in the kernel)", c.wall.Seconds(), c.server.Seconds(),
		100*c.serverSys.Seconds()/max(c.server.Seconds(), 1e-9))
	if withDB {
		fmt.Printf(", PostgreSQL %.2f s (%d processes now)", c.db.Seconds(), c.dbProcesses)
	}
	fmt.Printf(" = %.2f of the machine's cores\n", total.Seconds()/max(c.wall.Seconds(), 1e-9))
	fmt.Printf("  server CPU per flow: mxidp %.3f ms", perFlow(c.server, o.counted))
	if withDB {
		fmt.Printf(" + database %.3f ms = %.3f ms", perFlow(c.db, o.counted), perFlow(total, o.counted))
	}
	fmt.Println()
	if cheapHash > 0 {
		fmt.Printf("  beyond the hash (the cheap hash is %.3f ms per verification on one core): %.3f ms per flow\n",
			ms(cheapHash), perFlow(total, o.counted)-ms(cheapHash))
	}
	if sigIdle.n > 0 {
		fmt.Printf("  one RS256 signature here: %.3f ms CPU idle", ms(sigIdle.perSignature()))
		if sigLoad.n > 0 {
			fmt.Printf(", %.3f ms under this load (%d sampled)", ms(sigLoad.perSignature()), sigLoad.n)
		}
		fmt.Println()
	}
	fmt.Printf("  SQL statements per flow under load: %.2f\n", statementsPer(o))
	fmt.Printf("  this load generator used %.2f s CPU (%.3f ms per flow) beside the server; other processes on the machine %.2f cores\n",
		c.self.Seconds(), perFlow(c.self, o.counted), c.others().Seconds()/max(c.wall.Seconds(), 1e-9))
}

func printGETs(gs []getComparison) {
	fmt.Printf("  %-24s %9s %8s %8s %14s %7s\n", "document, server", "req/s", "p50 ms", "p99 ms", "server µs/req", "failed")
	for _, g := range gs {
		for _, side := range []struct {
			name string
			out  outcome
		}{{"mxidp", g.mxidp}, {"plain net/http", g.plain}} {
			s := summarize(side.out.latency[g.doc.Name])
			fmt.Printf("  %-24s %9.0f %8.3f %8.3f %14.1f %7d\n", g.doc.Name+", "+side.name, side.out.rate(),
				ms(s.p50), ms(s.p99), perRequest(side.out), side.out.failed())
		}
		fmt.Printf("  %-24s ratio mxidp/plain %.3f (target ≥ %.1f: %s) for GET %s, %d bytes\n", "", g.ratio(), getTarget,
			verdict(g.ratio() >= getTarget), g.doc.Path, len(g.doc.Body))
		fmt.Printf("  %-24s server CPU per request, plain ÷ mxidp: %.3f\n", "", g.cpuRatio())
	}
	for _, g := range gs {
		printPhaseFailures(g.doc.Name+" mxidp", g.mxidp)
		printPhaseFailures(g.doc.Name+" plain", g.plain)
	}
}

func printHash(flows outcome, h hashResult) {
	r := flows.rate() / h.rate()
	fmt.Printf("  hash alone: %d × %s on %d goroutines (one verifier per core: NumCPU %d, GOMAXPROCS %d) in %.2f s: %.1f hashes/s, %.1f ms CPU per hash, %.2f cores used; other processes %.2f cores\n",
		h.n, h.cost, h.workers, runtime.NumCPU(), runtime.GOMAXPROCS(0), h.elapsed.Seconds(), h.rate(), ms(h.cpuPerHash()),
		h.cpu.Seconds()/h.elapsed.Seconds(), h.others.Seconds()/h.elapsed.Seconds())
	if runtime.GOMAXPROCS(0) < runtime.NumCPU() {
		fmt.Printf("  WARNING: GOMAXPROCS %d < %d CPUs: the verifiers do not all run at once\n", runtime.GOMAXPROCS(0), runtime.NumCPU())
	}
	fmt.Printf("  flows/s ÷ hashes/s = %.1f ÷ %.1f = %.3f (target ≥ %.1f: %s)\n", flows.rate(), h.rate(), r, hashRateTarget,
		verdict(r >= hashRateTarget))
	fmt.Printf("  the same in CPU, less sensitive to others' load: CPU per hash alone ÷ server CPU per flow = %.1f ÷ %.1f ms = %.3f\n",
		ms(h.cpuPerHash()), serverCPU(flows), hashCPURatio(flows, h))
}

func printChecks(o outcome, h hashResult, withDB bool) {
	s := summarize(o.latency[checkStep])
	r := o.rate() / h.rate()
	fmt.Printf("  check_credentials: %d ok, %d failed; %d of them ended in the measured %.2f s: %.1f checks/s, p50 %.2f ms, p99 %.2f ms\n",
		o.ok, o.failed(), o.counted, o.elapsed.Seconds(), o.rate(), ms(s.p50), ms(s.p99))
	fmt.Printf("  checks/s ÷ hashes/s = %.1f ÷ %.1f = %.3f", o.rate(), h.rate(), r)
	if withDB {
		fmt.Printf(" (target ≥ %.1f: %s)", checkTarget, verdict(r >= checkTarget))
	}
	fmt.Println()
	fmt.Printf("  server CPU per check: mxidp %.3f ms", perFlow(o.cpu.server, o.counted))
	if withDB {
		fmt.Printf(" + database %.3f ms", perFlow(o.cpu.db, o.counted))
	}
	fmt.Printf("; SQL statements per check %.2f; other processes %.2f cores\n",
		statementsPer(o), o.cpu.others().Seconds()/max(o.cpu.wall.Seconds(), 1e-9))
	fmt.Printf("  the same in CPU: CPU per hash alone ÷ server CPU per check = %.1f ÷ %.1f ms = %.3f\n",
		ms(h.cpuPerHash()), serverCPU(o), hashCPURatio(o, h))
}

// hashCPURatio is what flows/s (or checks/s) ÷ hashes/s would be were
// both to get the same CPU: the hash's share of a unit's server CPU.
func hashCPURatio(flows outcome, h hashResult) float64 {
	return ms(h.cpuPerHash()) / serverCPU(flows)
}

// printPhaseFailures lists every kind of failure with its count and the
// first example.
func printPhaseFailures(name string, o outcome) {
	if o.recorder == nil || o.failed() == 0 {
		return
	}
	fmt.Printf("  FAILURES in %s: %d\n", name, o.failed())
	for _, c := range sortedFailures(o.failures) {
		fmt.Printf("    %6d × %s\n", c.count, c.first.key())
		if c.first.detail != "" {
			fmt.Printf("             first: %s\n", c.first.detail)
		}
	}
}

func printServerLog(label string, lines []string, path string) {
	if len(lines) == 0 {
		fmt.Printf("  server log (%s): no warnings or errors\n", label)
		return
	}
	panics := 0
	for _, l := range lines {
		if strings.Contains(l, "panic") {
			panics++
		}
	}
	fmt.Printf("  SERVER LOG (%s): %d lines at warn or error, %d mentioning panic (%s):\n", label, len(lines), panics, path)
	for i, l := range lines {
		if i == 30 {
			fmt.Printf("    … %d more lines\n", len(lines)-30)
			break
		}
		if len(l) > 400 {
			l = l[:400] + "…"
		}
		fmt.Printf("    %s\n", l)
	}
}

// figure is one line of the Performance table as measured: what, the value,
// the target and the verdict ("" without a target; in parentheses when
// the target is only by analogy or belongs to the other backend).
type figure struct {
	label, value, target, verdict string
}

// figures are the lines of the README's Performance table, backend by backend.
func figures(rs []*backendResult) []figure {
	var fs []figure
	add := func(label, value, target, v string) { fs = append(fs, figure{label, value, target, v}) }
	soft := func(ok bool) string { return "(" + verdict(ok) + ")" }
	for _, r := range rs {
		pg := r.dbCPU != ""
		cpu := "server CPU"
		if pg {
			cpu = "server+database CPU"
		}
		sig := ms(r.sigIdle.perSignature())
		margin := sqliteCPUMargin
		if pg {
			margin = pgCPUMargin
		}
		if es := r.client(jose.ES256); es != nil && es.flows.counted > 0 {
			v := r.beyondHash(es)
			if pg {
				add(r.name+": "+cpu+" per flow beyond the hash, ES256 client", fmt.Sprintf("%.3f ms", v),
					fmt.Sprintf("none; ≤ %.1f ms by analogy", pgCPUMargin), soft(v <= pgCPUMargin))
			} else {
				add(r.name+": "+cpu+" per flow beyond the hash, ES256 client", fmt.Sprintf("%.3f ms", v),
					fmt.Sprintf("≤ %.1f ms", es256CPUTarget), verdict(v <= es256CPUTarget))
			}
		} else {
			add(r.name+": "+cpu+" per flow beyond the hash, ES256 client", "not available in this binary", "", "")
		}
		if rc := r.client(jose.RS256); rc != nil && rc.flows.counted > 0 {
			v := r.beyondHash(rc)
			add(r.name+": "+cpu+" per flow beyond the hash, RS256 client", fmt.Sprintf("%.3f ms", v),
				fmt.Sprintf("≤ %.3f + %.1f = %.3f ms", sig, margin, sig+margin), verdict(v <= sig+margin))
			if r.sigLoad.n > 0 {
				load := ms(r.sigLoad.perSignature())
				add("  the same against one signature under load", fmt.Sprintf("%.3f ms", v),
					fmt.Sprintf("≤ %.3f + %.1f = %.3f ms", load, margin, load+margin), soft(v <= load+margin))
			}
		}
		if r.hash.n > 0 && r.defaultRun.counted > 0 {
			v := r.defaultRun.rate() / r.hash.rate()
			add(r.name+": flows/s at the default cost ÷ parallel hashes/s", fmt.Sprintf("%.3f", v),
				fmt.Sprintf("≥ %.1f", hashRateTarget), verdict(v >= hashRateTarget))
		}
		if r.hash.n > 0 && r.checks.counted > 0 {
			v := r.checks.rate() / r.hash.rate()
			if pg {
				add(r.name+": check_credentials/s ÷ parallel hashes/s", fmt.Sprintf("%.3f", v),
					fmt.Sprintf("≥ %.1f", checkTarget), verdict(v >= checkTarget))
			} else {
				add(r.name+": check_credentials/s ÷ parallel hashes/s", fmt.Sprintf("%.3f", v),
					fmt.Sprintf("PostgreSQL's ≥ %.1f", checkTarget), soft(v >= checkTarget))
			}
		}
		for _, g := range r.gets {
			add(fmt.Sprintf("%s: %s req/s ÷ plain net/http, request log on", r.name, g.doc.Name), fmt.Sprintf("%.3f", g.ratio()),
				fmt.Sprintf("≥ %.1f", getTarget), verdict(g.ratio() >= getTarget))
		}
		if r.idleErr == "" && r.idle.rss > 0 {
			v := mib(r.idle.rss)
			label := fmt.Sprintf("%s: RSS idle, %s after ready (VmRSS; VmHWM)", r.name, idleWait)
			value := fmt.Sprintf("%.1f MiB; %.1f", v, mib(r.idle.hwm))
			if pg {
				add(label, value, fmt.Sprintf("SQLite's ≤ %.0f MiB", idleRSSTarget), soft(v <= idleRSSTarget))
			} else {
				add(label, value, fmt.Sprintf("≤ %.0f MiB", idleRSSTarget), verdict(v <= idleRSSTarget))
			}
		}
		if len(r.cheapRun) > 0 && r.cheapRun[0].steps.step != nil {
			cr := r.cheapRun[0]
			add(fmt.Sprintf("%s: SQL statements per flow, one flow step by step; under load", r.name),
				fmt.Sprintf("%d; %.2f", cr.steps.total(), statementsPer(cr.flows)), "fewer", "")
		}
	}
	return fs
}

// printSummary prints the README's Performance table as measured, then the backends
// side by side in more detail.
func printSummary(rs []*backendResult) {
	if len(rs) == 0 {
		return
	}
	fmt.Printf("\n== the Performance figures, measured in this run (compare ratios within a run; the machine is shared)\n")
	for _, r := range rs {
		fmt.Printf("  %s: one RS256 signature %.3f ms CPU idle", r.name, ms(r.sigIdle.perSignature()))
		if r.sigLoad.n > 0 {
			fmt.Printf(", %.3f ms under the flows' load", ms(r.sigLoad.perSignature()))
		}
		fmt.Printf("; parallel hash throughput %.1f/s (%d verifiers, one per core)\n", r.hash.rate(), r.hash.workers)
	}
	fs := figures(rs)
	fmt.Printf("  %-72s %-30s %-30s %s\n", "figure", "measured", "target", "verdict")
	for _, f := range fs {
		fmt.Printf("  %-72s %-30s %-30s %s\n", f.label, f.value, f.target, f.verdict)
	}

	fmt.Printf("\n== details side by side\n")
	fmt.Printf("  %-56s", "")
	for _, r := range rs {
		fmt.Printf(" %18s", r.name)
	}
	fmt.Println()
	row := func(label string, cell func(r *backendResult) string) {
		fmt.Printf("  %-56s", label)
		for _, r := range rs {
			fmt.Printf(" %18s", cell(r))
		}
		fmt.Println()
	}
	f := func(format string, v float64) string { return fmt.Sprintf(format, v) }
	for _, alg := range []jose.SignatureAlgorithm{jose.RS256, jose.ES256} {
		cell := func(get func(r *backendResult, cr *clientRun) string) func(r *backendResult) string {
			return func(r *backendResult) string {
				cr := r.client(alg)
				if cr == nil || cr.flows.recorder == nil {
					return "-"
				}
				return get(r, cr)
			}
		}
		a := string(alg)
		row(a+": flows/s, cheap hash", cell(func(_ *backendResult, cr *clientRun) string { return f("%.1f", cr.flows.rate()) }))
		row(a+":   p50 / p99 ms, whole flow", cell(func(_ *backendResult, cr *clientRun) string {
			s := summarize(cr.flows.latency["flow"])
			return fmt.Sprintf("%.2f / %.2f", ms(s.p50), ms(s.p99))
		}))
		row(a+":   p50 / p99 ms, token", cell(func(_ *backendResult, cr *clientRun) string {
			s := summarize(cr.flows.latency["token"])
			return fmt.Sprintf("%.2f / %.2f", ms(s.p50), ms(s.p99))
		}))
		row(a+":   server CPU ms/flow, mxidp + database", cell(func(r *backendResult, cr *clientRun) string {
			if r.dbCPU == "" {
				return f("%.3f", perFlow(cr.flows.cpu.server, cr.flows.counted))
			}
			return fmt.Sprintf("%.3f + %.3f", perFlow(cr.flows.cpu.server, cr.flows.counted), perFlow(cr.flows.cpu.db, cr.flows.counted))
		}))
		row(a+":   less the cheap hash", cell(func(r *backendResult, cr *clientRun) string { return f("%.3f", r.beyondHash(cr)) }))
		row(a+":   load generator CPU ms/flow", cell(func(_ *backendResult, cr *clientRun) string {
			return f("%.3f", perFlow(cr.flows.cpu.self, cr.flows.counted))
		}))
		row(a+":   SQL statements per flow (step by step; load)", cell(func(_ *backendResult, cr *clientRun) string {
			return fmt.Sprintf("%d; %.2f", cr.steps.total(), statementsPer(cr.flows))
		}))
	}
	row("one RS256 signature, ms CPU (idle / under load)", func(r *backendResult) string {
		return fmt.Sprintf("%.3f / %.3f", ms(r.sigIdle.perSignature()), ms(r.sigLoad.perSignature()))
	})
	for i, name := range []string{"discovery", "JWKS"} {
		row(name+" req/s mxidp (log at info) / plain", func(r *backendResult) string {
			if i >= len(r.gets) {
				return "-"
			}
			return fmt.Sprintf("%.0f / %.0f", r.gets[i].mxidp.rate(), r.gets[i].plain.rate())
		})
		row("  server CPU µs/request mxidp / plain", func(r *backendResult) string {
			if i >= len(r.gets) {
				return "-"
			}
			return fmt.Sprintf("%.1f / %.1f", perRequest(r.gets[i].mxidp), perRequest(r.gets[i].plain))
		})
	}
	row("flows/s, default cost (RS256 client)", func(r *backendResult) string { return f("%.1f", r.defaultRun.rate()) })
	row("hashes/s alone, default cost, one verifier per core", func(r *backendResult) string { return f("%.1f", r.hash.rate()) })
	row("  in CPU: hash alone ÷ server CPU per flow, ms", func(r *backendResult) string {
		return fmt.Sprintf("%.1f÷%.1f=%.3f", ms(r.hash.cpuPerHash()), serverCPU(r.defaultRun), hashCPURatio(r.defaultRun, r.hash))
	})
	row("check_credentials/s, default cost", func(r *backendResult) string { return f("%.1f", r.checks.rate()) })
	row("  p50 / p99 ms", func(r *backendResult) string {
		s := summarize(r.checks.latency[checkStep])
		return fmt.Sprintf("%.1f / %.1f", ms(s.p50), ms(s.p99))
	})
	row("  in CPU: hash alone ÷ server CPU per check, ms", func(r *backendResult) string {
		return fmt.Sprintf("%.1f÷%.1f=%.3f", ms(r.hash.cpuPerHash()), serverCPU(r.checks), hashCPURatio(r.checks, r.hash))
	})
	row("  SQL statements per check", func(r *backendResult) string { return f("%.2f", statementsPer(r.checks)) })
	row("others' load, cores (cheap / default / hash / checks)", func(r *backendResult) string {
		cheapOthers := cpuUse{}
		for _, cr := range r.cheapRun {
			cheapOthers = cheapOthers.plus(cr.flows.cpu)
		}
		load := func(u cpuUse) float64 { return u.others().Seconds() / max(u.wall.Seconds(), 1e-9) }
		return fmt.Sprintf("%.2f/%.2f/%.2f/%.2f", load(cheapOthers), load(r.defaultRun.cpu),
			r.hash.others.Seconds()/max(r.hash.elapsed.Seconds(), 1e-9), load(r.checks.cpu))
	})
	row("failed flows/requests (all phases)", func(r *backendResult) string { return fmt.Sprint(r.failures()) })
	row("server log lines at warn or error", func(r *backendResult) string {
		n := 0
		for _, l := range r.serverLogs {
			n += len(l)
		}
		return fmt.Sprint(n)
	})
	for _, r := range rs {
		for _, s := range r.serverState {
			fmt.Printf("  %s: %s\n", r.name, s)
		}
	}
}
