package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// clockTick is the unit of the CPU times in /proc/PID/stat (USER_HZ,
// 100 on every Linux configuration Go supports without cgo's sysconf).
const clockTick = 10 * time.Millisecond

// procStat is what this program reads from /proc/PID/stat.
type procStat struct {
	comm                          string
	ppid                          int
	utime, stime, cutime, cstime  int64
	ownCPU, withReapedChildrenCPU time.Duration
}

func readProcStat(pid int) (procStat, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// The command name is in parentheses and may contain anything, spaces
	// and parentheses included: the fields start after the last ')'.
	open, end := bytes.IndexByte(data, '('), bytes.LastIndexByte(data, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(data[end+1:]))
	// f[0] is field 3 (state); utime..cstime are fields 14..17.
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	var s procStat
	s.comm = string(data[open+1 : end])
	s.ppid, _ = strconv.Atoi(f[1])
	nums := []*int64{&s.utime, &s.stime, &s.cutime, &s.cstime}
	for i, p := range nums {
		if *p, err = strconv.ParseInt(f[11+i], 10, 64); err != nil {
			return procStat{}, fmt.Errorf("/proc/%d/stat: field %d: %v", pid, 14+i, err)
		}
	}
	s.ownCPU = time.Duration(s.utime+s.stime) * clockTick
	s.withReapedChildrenCPU = time.Duration(s.utime+s.stime+s.cutime+s.cstime) * clockTick
	return s, nil
}

// processCPU is the user and the system CPU a process has used so far.
func processCPU(pid int) (user, sys time.Duration, err error) {
	s, err := readProcStat(pid)
	return time.Duration(s.utime) * clockTick, time.Duration(s.stime) * clockTick, err
}

// selfCPU is this program's own CPU (getrusage), for context: the load
// generator shares the machine with the server.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineBusy is the CPU all processes on the machine have used since
// boot (the first line of /proc/stat, less idle and iowait), so that the
// load of others sharing the machine during a measurement can be shown.
func machineBusy() time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		// user nice system idle iowait irq softirq steal guest guest_nice:
		// not idle, iowait, nor steal (the hypervisor's, not ours); guest
		// time is already counted in user time.
		if i == 3 || i == 4 || i >= 7 {
			continue
		}
		busy += n
	}
	return time.Duration(busy) * clockTick
}

// pgCluster sums the CPU of a PostgreSQL cluster's server processes: the
// postmaster with the CPU of its children that have exited (cutime and
// cstime, added when it reaps them), plus every live child (backends,
// checkpointer, walwriter, autovacuum…). When the postmaster is unknown it
// sums every process named postgres on the machine.
type pgCluster struct {
	postmaster int // 0: unknown
}

func (c pgCluster) describe() string {
	if c.postmaster == 0 {
		return "all processes named postgres on this machine (their postmasters with reaped children)"
	}
	return fmt.Sprintf("postmaster PID %d with reaped children, and all its live children", c.postmaster)
}

// cpu returns the cluster's CPU so far and how many processes it read.
func (c pgCluster) cpu() (time.Duration, int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, 0, err
	}
	stats := map[int]procStat{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		s, err := readProcStat(pid)
		if err != nil {
			continue // exited meanwhile
		}
		stats[pid] = s
	}
	var total time.Duration
	n := 0
	for pid, s := range stats {
		switch {
		case c.postmaster != 0 && pid == c.postmaster:
			total += s.withReapedChildrenCPU
		case c.postmaster != 0 && s.ppid == c.postmaster:
			total += s.ownCPU
		case c.postmaster == 0 && isPostgres(pid, s):
			if parent, ok := stats[s.ppid]; ok && isPostgres(s.ppid, parent) {
				total += s.ownCPU
			} else {
				total += s.withReapedChildrenCPU
			}
		default:
			continue
		}
		n++
	}
	if c.postmaster != 0 {
		if _, ok := stats[c.postmaster]; !ok {
			return 0, 0, fmt.Errorf("postmaster PID %d is gone", c.postmaster)
		}
	}
	return total, n, nil
}

// isPostgres: the executable is named postgres, or the command line starts
// with "postgres" (backends retitle themselves "postgres: user db …").
func isPostgres(pid int, s procStat) bool {
	if s.comm == "postgres" {
		return true
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	argv0, _, _ := bytes.Cut(cmdline, []byte{0})
	return strings.HasPrefix(string(argv0), "postgres") || filepath.Base(string(argv0)) == "postgres"
}

// cpuMeter reads the server side's CPU: the mxidp process and, when set,
// the database cluster; and, when set, mxidp's statement count.
type cpuMeter struct {
	serverPID int
	db        *pgCluster
	stmts     *statementCounter
}

type cpuSample struct {
	at                    time.Time
	server, serverSys, db time.Duration
	self, machine         time.Duration
	dbProcesses           int
	statements            int64
}

// sample reads the meter; the statement count is read before the CPU at
// the start of a measurement and after it at the end, so that the scrape's
// own CPU is never the measurement's.
func (m cpuMeter) sample(ctx context.Context, end bool) (cpuSample, error) {
	var s cpuSample
	var err error
	scrape := func() error {
		if m.stmts != nil {
			s.statements, err = m.stmts.read(ctx)
		}
		return err
	}
	if !end && scrape() != nil {
		return s, err
	}
	s.at, s.self, s.machine = time.Now(), selfCPU(), machineBusy()
	user, sys, err := processCPU(m.serverPID)
	if err != nil {
		return s, fmt.Errorf("server CPU: %w", err)
	}
	s.server, s.serverSys = user+sys, sys
	if m.db != nil {
		if s.db, s.dbProcesses, err = m.db.cpu(); err != nil {
			return s, fmt.Errorf("database CPU: %w", err)
		}
	}
	if end && scrape() != nil {
		return s, err
	}
	return s, nil
}

// cpuUse is the CPU used between two samples: by the server (mxidp or
// the plain server; serverSys is the part spent in the kernel), the
// database cluster, this program, and every process on the machine.
type cpuUse struct {
	wall, server, serverSys, db, self, machine time.Duration
	dbProcesses                                int
	statements                                 int64 // when counted
}

func (u cpuUse) plus(o cpuUse) cpuUse {
	return cpuUse{wall: u.wall + o.wall, server: u.server + o.server, serverSys: u.serverSys + o.serverSys,
		db: u.db + o.db, self: u.self + o.self, machine: u.machine + o.machine,
		dbProcesses: max(u.dbProcesses, o.dbProcesses), statements: u.statements + o.statements}
}

// others is the CPU that processes not measured here used meanwhile.
func (u cpuUse) others() time.Duration {
	return max(0, u.machine-u.server-u.db-u.self)
}

// to is the use from a to b; the statement count is less the one query
// of a's scrape, which counts in b's (statementCounter).
func (a cpuSample) to(b cpuSample, m cpuMeter) cpuUse {
	u := cpuUse{wall: b.at.Sub(a.at), server: b.server - a.server,
		serverSys: b.serverSys - a.serverSys, db: b.db - a.db, self: b.self - a.self, machine: b.machine - a.machine,
		dbProcesses: b.dbProcesses}
	if m.stmts != nil {
		u.statements = b.statements - a.statements - m.stmts.perScrape
	}
	return u
}

// memory is what /proc/PID/status says of a process's resident memory.
type memory struct {
	rss, hwm int64 // VmRSS and VmHWM (its peak), in bytes
}

// readMemory reads VmRSS and VmHWM from /proc/PID/status.
func readMemory(pid int) (memory, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	return parseStatus(string(data))
}

func parseStatus(status string) (memory, error) {
	var m memory
	found := 0
	for _, line := range strings.Split(status, "\n") {
		key, value, ok := strings.Cut(line, ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		f := strings.Fields(value)
		if len(f) != 2 || f[1] != "kB" {
			return memory{}, fmt.Errorf("/proc status: %s: unexpected %q", key, value)
		}
		kib, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return memory{}, fmt.Errorf("/proc status: %s: %v", key, err)
		}
		if key == "VmRSS" {
			m.rss = kib << 10
		} else {
			m.hwm = kib << 10
		}
		found++
	}
	if found != 2 {
		return memory{}, fmt.Errorf("/proc status: no VmRSS and VmHWM lines")
	}
	return m, nil
}

func mib(bytes int64) float64 { return float64(bytes) / (1 << 20) }

// threadCPU is the CPU the calling OS thread has used, to the nanosecond
// (clock_gettime CLOCK_THREAD_CPUTIME_ID; getrusage RUSAGE_THREAD is
// apportioned from clock ticks and far off over a millisecond); callers
// lock their goroutine to its thread.
func threadCPU() time.Duration {
	const clockThreadCPUTimeID = 3 // Linux
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0)
	return time.Duration(ts.Nano())
}
