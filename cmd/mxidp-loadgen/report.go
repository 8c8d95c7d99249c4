package main

import (
	"fmt"
	"strings"
	"time"
)

// Targets of the issue.
const (
	getTarget      = 0.9 // discovery and JWKS ≥ 0.9 × the plain handler
	cpuTarget      = 1.5 // ms of server CPU per flow, hash excluded
	hashRateTarget = 0.9 // flows/s at the default cost ≥ 0.9 × hashes/s alone
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

func printFlows(o outcome) {
	fmt.Printf("  %d flows ok, %d failed in %.2f s: %.1f flows/s\n", o.ok, o.failed(), o.elapsed.Seconds(), o.rate())
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

func printFlowCPU(o outcome, withDB bool, cheapHash time.Duration) {
	c := o.cpu
	total := c.server + c.db
	fmt.Printf("  server CPU in %.2f s: mxidp %.2f s (%.0f%% in the kernel)", c.wall.Seconds(), c.server.Seconds(),
		100*c.serverSys.Seconds()/max(c.server.Seconds(), 1e-9))
	if withDB {
		fmt.Printf(", PostgreSQL %.2f s (%d processes now)", c.db.Seconds(), c.dbProcesses)
	}
	fmt.Printf(" = %.2f of the machine's cores\n", total.Seconds()/c.wall.Seconds())
	fmt.Printf("  server CPU per flow: mxidp %.3f ms", perFlow(c.server, o.ok))
	if withDB {
		fmt.Printf(" + database %.3f ms = %.3f ms", perFlow(c.db, o.ok), perFlow(total, o.ok))
	}
	fmt.Println()
	if cheapHash > 0 {
		fmt.Printf("  (the cheap hash itself: %.3f ms per verification on one core, so %.3f ms per flow without it)\n",
			ms(cheapHash), perFlow(total, o.ok)-ms(cheapHash))
	}
	fmt.Printf("  this load generator used %.2f s CPU (%.3f ms per flow) beside the server; other processes on the machine %.2f cores\n",
		c.self.Seconds(), perFlow(c.self, o.ok), c.others().Seconds()/c.wall.Seconds())
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
	fmt.Printf("  hash alone: %d × %s on %d goroutines in %.2f s: %.1f hashes/s, %.1f ms CPU per hash, %.2f cores used; other processes %.2f cores\n",
		h.n, h.cost, h.workers, h.elapsed.Seconds(), h.rate(), ms(h.cpuPerHash()), h.cpu.Seconds()/h.elapsed.Seconds(),
		h.others.Seconds()/h.elapsed.Seconds())
	fmt.Printf("  flows/s ÷ hashes/s = %.1f ÷ %.1f = %.3f (target ≥ %.1f: %s)\n", flows.rate(), h.rate(), r, hashRateTarget,
		verdict(r >= hashRateTarget))
	fmt.Printf("  the same in CPU, less sensitive to others' load: CPU per hash alone ÷ server CPU per flow = %.1f ÷ %.1f ms = %.3f\n",
		ms(h.cpuPerHash()), perFlow(flows.cpu.server+flows.cpu.db, flows.ok), hashCPURatio(flows, h))
}

// hashCPURatio is what flows/s ÷ hashes/s would be were both to get the
// same CPU: the hash's share of a flow's server CPU.
func hashCPURatio(flows outcome, h hashResult) float64 {
	return ms(h.cpuPerHash()) / perFlow(flows.cpu.server+flows.cpu.db, flows.ok)
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
	fmt.Printf("  SERVER LOG (%s): %d lines, %d mentioning panic (%s):\n", label, len(lines), panics, path)
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

// printSummary puts the backends side by side, with the targets.
func printSummary(rs []*backendResult) {
	if len(rs) == 0 {
		return
	}
	fmt.Printf("\n== summary (compare ratios within this run; the machine is shared)\n")
	fmt.Printf("  %-52s", "")
	for _, r := range rs {
		fmt.Printf(" %16s", r.name)
	}
	fmt.Println()
	row := func(label string, cell func(r *backendResult) string) {
		fmt.Printf("  %-52s", label)
		for _, r := range rs {
			fmt.Printf(" %16s", cell(r))
		}
		fmt.Println()
	}
	f := func(format string, v float64) string { return fmt.Sprintf(format, v) }
	row("flows/s, cheap hash", func(r *backendResult) string { return f("%.1f", r.cheapFlows.rate()) })
	for _, step := range append(flowSteps, "flow") {
		row("  p50 / p99 ms "+step, func(r *backendResult) string {
			s := summarize(r.cheapFlows.latency[step])
			return fmt.Sprintf("%.2f / %.2f", ms(s.p50), ms(s.p99))
		})
	}
	row("server CPU ms/flow: mxidp", func(r *backendResult) string { return f("%.3f", perFlow(r.cheapFlows.cpu.server, r.cheapFlows.ok)) })
	row("server CPU ms/flow: database (PostgreSQL processes)", func(r *backendResult) string {
		if r.dbCPU == "" {
			return "in mxidp"
		}
		return f("%.3f", perFlow(r.cheapFlows.cpu.db, r.cheapFlows.ok))
	})
	cpuPerFlow := func(r *backendResult) float64 {
		return perFlow(r.cheapFlows.cpu.server+r.cheapFlows.cpu.db, r.cheapFlows.ok)
	}
	row("server CPU ms/flow, hash excluded (cheap cost)", func(r *backendResult) string { return f("%.3f", cpuPerFlow(r)) })
	row(fmt.Sprintf("  target ≤ %.1f ms", cpuTarget), func(r *backendResult) string {
		return verdict(r.cheapFlows.ok > 0 && cpuPerFlow(r) <= cpuTarget)
	})
	row("  less the cheap hash itself", func(r *backendResult) string { return f("%.3f", cpuPerFlow(r)-ms(r.cheapHash)) })
	row("load generator CPU ms/flow", func(r *backendResult) string { return f("%.3f", perFlow(r.cheapFlows.cpu.self, r.cheapFlows.ok)) })
	for i, name := range []string{"discovery", "JWKS"} {
		row(name+" req/s mxidp / plain", func(r *backendResult) string {
			if i >= len(r.gets) {
				return "-"
			}
			return fmt.Sprintf("%.0f / %.0f", r.gets[i].mxidp.rate(), r.gets[i].plain.rate())
		})
		row(fmt.Sprintf("  ratio, target ≥ %.1f", getTarget), func(r *backendResult) string {
			if i >= len(r.gets) {
				return "-"
			}
			return fmt.Sprintf("%.3f %s", r.gets[i].ratio(), verdict(r.gets[i].ratio() >= getTarget))
		})
		row("  server CPU µs/request mxidp / plain", func(r *backendResult) string {
			if i >= len(r.gets) {
				return "-"
			}
			return fmt.Sprintf("%.1f / %.1f", perRequest(r.gets[i].mxidp), perRequest(r.gets[i].plain))
		})
	}
	row("flows/s, default cost", func(r *backendResult) string { return f("%.1f", r.defaultRun.rate()) })
	row("hashes/s alone, default cost, all cores", func(r *backendResult) string { return f("%.1f", r.hash.rate()) })
	row(fmt.Sprintf("  ratio flows/s ÷ hashes/s, target ≥ %.1f", hashRateTarget), func(r *backendResult) string {
		if r.hash.n == 0 {
			return "-"
		}
		ratio := r.defaultRun.rate() / r.hash.rate()
		return fmt.Sprintf("%.3f %s", ratio, verdict(ratio >= hashRateTarget))
	})
	row("  in CPU: CPU per hash alone ÷ server CPU per flow", func(r *backendResult) string {
		return fmt.Sprintf("%.1f÷%.1f=%.3f", ms(r.hash.cpuPerHash()),
			perFlow(r.defaultRun.cpu.server+r.defaultRun.cpu.db, r.defaultRun.ok), hashCPURatio(r.defaultRun, r.hash))
	})
	row("other processes' load, cores (cheap / default / hash)", func(r *backendResult) string {
		return fmt.Sprintf("%.2f/%.2f/%.2f", r.cheapFlows.cpu.others().Seconds()/r.cheapFlows.cpu.wall.Seconds(),
			r.defaultRun.cpu.others().Seconds()/r.defaultRun.cpu.wall.Seconds(), r.hash.others.Seconds()/r.hash.elapsed.Seconds())
	})
	row("failed flows/requests (all phases)", func(r *backendResult) string { return fmt.Sprint(r.failures()) })
	row("server log lines (warn/error)", func(r *backendResult) string {
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
