package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

const (
	haBenchTrials = 20
	envBenchDoc   = "STRATUS_BENCH_DOC" // a markdown file whose "## Host HA" section the benchmark replaces
	haBenchTitle  = "## Host HA"
)

// TestBenchmarkHA measures, with the default HA settings (10 s lease, 4 s
// margin, 2 s heartbeats), the time from kill -9 of a host's agent to
// every HA VM of that host Running on another host: in the API and in
// that host's domain list. 20 trials on `stratus dev --servers 3 --hosts
// 4` with 20 HA and 10 non-HA VMs; each trial kills the agent of the host
// with the most HA VMs and starts it again before the next. Figures only;
// nothing is asserted about them (the double-run sampler still fails the
// test on a VM seen on two hosts at once).
func TestBenchmarkHA(t *testing.T) {
	bin := requireBench(t)
	d := startDevCloud(t, bin, 4)
	sampler, tl, stopSampler := startHASampler(d)
	defer stopSampler()
	r := newHARun(t, d, sampler, tl)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	r.deployWith(ctx, "deploy HA", "ha", r.haOffering, haVMs)
	r.deployWith(ctx, "deploy non-HA", "plain", r.offering, plainVMs)
	checkHostsMatchAPI(t, r.vmRun, "deploy")

	var running, fenced []time.Duration
	minVMs, maxVMs := 1<<30, 0
	var rows strings.Builder
	for i := 1; i <= haBenchTrials; i++ {
		victim, haOn, _ := r.busiestHost(false)
		if victim == nil || len(haOn) == 0 {
			t.Fatalf("trial %d: no host runs an HA VM", i)
		}
		res := r.killRound(victim, true)
		running, fenced = append(running, res.toRunning), append(fenced, res.toFenced)
		minVMs, maxVMs = min(minVMs, res.movedHA), max(maxVMs, res.movedHA)
		fmt.Fprintf(&rows, "| %d | %s | %d | %s | %s |\n", i, victim.name, res.movedHA, fmtDur(res.toFenced), fmtDur(res.toRunning))
		t.Logf("e2e: bench HA trial %d: %s with %d HA VMs: Down/Fenced after %s, all Running elsewhere after %s", i, victim.name, res.movedHA,
			fmtDur(res.toFenced), fmtDur(res.toRunning))
	}
	sampler.check(t, "benchmark")
	d.c.checkNoCrash()

	var sb strings.Builder
	fmt.Fprintf(&sb, "%s\n\n", haBenchTitle)
	fmt.Fprintf(&sb, "Time from kill -9 of a host's agent to every HA VM of that host Running on another host, with the default settings "+
		"(`host.lease.ttl` 10 s, `host.lease.margin` 4 s, `host.heartbeat.interval` 2 s, provider `lease`). Measured %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&sb, "- command: `make bench` (or `STRATUS_BENCH=1 STRATUS_BIN=$PWD/bin/stratus go test -count=1 -v -timeout 30m -run '^TestBenchmarkHA$' ./e2e/`)\n")
	fmt.Fprintf(&sb, "- setup: `stratus dev --servers 3 --hosts 4` (each host an agent process on libvirt's test driver, whose guests die with the agent: "+
		"a power loss), 20 HA VMs (`medium-ha`) and 10 non-HA ones; each trial kills the agent of the host with the most HA VMs (%d to %d per trial) "+
		"and starts it again before the next; %d CPUs (%s)\n", minVMs, maxVMs, runtime.NumCPU(), cpuModel())
	fmt.Fprintf(&sb, "- Running elsewhere means: listVirtualMachines shows the VM Running on another host and that host's agent lists the domain Running; "+
		"the test polls both about every 0.1 to 0.2 s, which is the figures' resolution\n\n")
	fmt.Fprintf(&sb, "| from kill -9 to | trials | p50 | p99 | min | max |\n|---|---:|---:|---:|---:|---:|\n")
	for _, row := range []struct {
		name string
		ds   []time.Duration
	}{{"host Down / Fenced (listHosts)", fenced}, {"every HA VM Running elsewhere", running}} {
		p50, p99, lo, hi := durStats(row.ds)
		fmt.Fprintf(&sb, "| %s | %d | %s | %s | %s | %s |\n", row.name, len(row.ds), fmtDur(p50), fmtDur(p99), fmtDur(lo), fmtDur(hi))
	}
	fmt.Fprintf(&sb, "\nThe goal is under 20 s. For comparison (figures from the issue, not measured here): CloudStack's agent timeout alone is "+
		"about 150 s before it even starts HA work, Proxmox HA takes about 2 min, Kubernetes about 6 min (node eviction) to run a failed node's workload elsewhere.\n\n")
	fmt.Fprintf(&sb, "Where the time goes: a host is declared lost `ttl + margin` (14 s) after the last heartbeat the leader received, "+
		"so 12 to 14 s after the kill with heartbeats every 2 s; fencing with `lease` is immediate; the restarts take the rest (docs/ha.md).\n\n")
	fmt.Fprintf(&sb, "<details><summary>every trial</summary>\n\n| trial | host | HA VMs | Down / Fenced after | all Running elsewhere after |\n|---:|---|---:|---:|---:|\n%s\n</details>\n", rows.String())
	fmt.Print("\n" + sb.String())
	if path := os.Getenv(envBenchDoc); path != "" {
		if err := replaceSection(path, haBenchTitle, sb.String()); err != nil {
			t.Errorf("write %s: %v", path, err)
		}
	}
}

// replaceSection replaces the section that starts with the line title in
// the markdown file path (up to the next heading of the same level) with
// body, or appends body when there is no such section; a missing file is
// created with a title line.
func replaceSection(path, title, body string) error {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		b, err = []byte("# Benchmarks\n\n"), nil
	}
	if err != nil {
		return err
	}
	lines := strings.SplitAfter(string(b), "\n")
	start, end := -1, len(lines)
	for i, l := range lines {
		trimmed := strings.TrimRight(l, "\n")
		if start < 0 && trimmed == title {
			start = i
			continue
		}
		if start >= 0 && strings.HasPrefix(trimmed, "## ") {
			end = i
			break
		}
	}
	var out string
	if start < 0 {
		out = strings.TrimRight(string(b), "\n") + "\n\n" + body
	} else {
		out = strings.Join(lines[:start], "") + body
		if end < len(lines) {
			out += "\n" + strings.Join(lines[end:], "")
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(out), 0o644)
}
