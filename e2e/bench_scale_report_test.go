package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

// scaleReport is everything TestBenchmarkScale measured; it is printed as
// a table and written as JSON to $STRATUS_SCALE_OUT.
type scaleReport struct {
	Command       string                   `json:"command"`
	Started       time.Time                `json:"started"`
	Machine       string                   `json:"machine"`
	Hosts         int                      `json:"hosts"`
	SimProcs      int                      `json:"sim_processes"`
	VMsWanted     int                      `json:"vms_wanted"`
	Clients       int                      `json:"clients"`
	HostsUp       time.Duration            `json:"hosts_up_ns"`
	Deploy        scaleDeploy              `json:"deploy"`
	DeployCPU     map[string]time.Duration `json:"deploy_cpu_ns"`
	IdleCPU       map[string]time.Duration `json:"idle_cpu_ns"`
	DeployBatches map[string]batchSizes    `json:"deploy_batches"`
	IdleFor       time.Duration            `json:"idle_for_ns"`
	LoadAvg       string                   `json:"load_average"`
	VMsRunning    int                      `json:"vms_running"`
	Lists         []latency                `json:"lists"`
	RSSAfterHosts map[string]int64         `json:"rss_after_hosts_bytes"`
	RSS           map[string]int64         `json:"rss_after_deploy_bytes"`
	RSSEnd        map[string]int64         `json:"rss_end_bytes"`
	Memory        []serverMemory           `json:"memory_after_deploy"`
	Snapshot      scaleSnapshot            `json:"snapshot"`
	Failover      []failoverRun            `json:"-"`
	FailoverRuns  []scaleFailover          `json:"failover"`
	Join          scaleJoin                `json:"join"`
	Profiles      []string                 `json:"profiles"`
}

// scaleFailover is failoverRun in the JSON.
type scaleFailover struct {
	Killed       string         `json:"killed"`
	Via          string         `json:"via"`
	FirstWrite   time.Duration  `json:"first_write_ns"`
	Errors       map[string]int `json:"errors"`
	RestartReady time.Duration  `json:"restart_ready_ns"`
}

// fmtCPU prints each process's CPU time and its share per VM.
func fmtCPU(m map[string]time.Duration, vms int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		per := ""
		if vms > 0 {
			per = fmt.Sprintf(" (%.2f ms)", float64(m[k].Microseconds())/1000/float64(vms))
		}
		parts = append(parts, fmt.Sprintf("%s %.1f s%s", k, m[k].Seconds(), per))
	}
	return strings.Join(parts, ", ")
}

// fmtShare prints each process's CPU time over d as a share of one core.
func fmtShare(m map[string]time.Duration, d time.Duration) string {
	if d <= 0 {
		return "not measured"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", k, 100*m[k].Seconds()/d.Seconds()))
	}
	return strings.Join(parts, ", ")
}

func mib(b int64) string { return fmt.Sprintf("%d MiB", b>>20) }

// worst returns the highest p99 of the latencies named name.
func worst(ls []latency, prefix string) time.Duration {
	var w time.Duration
	for _, l := range ls {
		if strings.HasPrefix(l.Name, prefix) && l.P99 > w {
			w = l.P99
		}
	}
	return w
}

// verdict prints a goal's status.
func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func (r *scaleReport) print(t *testing.T, cfg scaleConfig) {
	r.Machine = fmt.Sprintf("%d CPUs (%s), %s", runtime.NumCPU(), cpuModel(), runtime.Version())
	for _, f := range r.Failover {
		r.FailoverRuns = append(r.FailoverRuns, scaleFailover{Killed: f.killed, Via: f.via, FirstWrite: f.firstWrite,
			Errors: f.holdErrors, RestartReady: f.restartReady})
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n## Scale benchmark (%s)\n\n", r.Started.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&sb, "- command: `%s`\n- machine: %s\n", r.Command, r.Machine)
	fmt.Fprintf(&sb, "- 3 servers; %d `stratus sim` process(es) with %d hosts in all (real agent loops on hypervisor.Fake, %d per cluster); %d clients deploying `scale-tiny` VMs (every %d-th as a tenant), polling jobs every %s\n\n",
		r.SimProcs, r.Hosts, cfg.perCluster, r.Clients, cfg.tenantEvery, cfg.pollEvery)
	d := r.Deploy
	fmt.Fprintf(&sb, "| figure | value |\n|---|---|\n")
	if r.HostsUp > 0 {
		fmt.Fprintf(&sb, "| hosts registered and Up (from sim start) | %d in %s |\n", r.Hosts, fmtDur(r.HostsUp))
	} else {
		fmt.Fprintf(&sb, "| hosts registered and Up (from sim start) | not all %d Up: the run stopped there (see the log) |\n", r.Hosts)
	}
	fmt.Fprintf(&sb, "| VMs deployed Running / wanted / failed | %d / %d / %d (%d as the tenant; listVirtualMachines state=Running counts %d)%s |\n",
		d.Done, r.VMsWanted, d.Failed, d.TenantVMs, r.VMsRunning, map[bool]string{true: " (deploy time limit hit)", false: ""}[d.TimedOut])
	fmt.Fprintf(&sb, "| placements/s (from the first deploy to the last VM Running; phase %s) | %.0f |\n", fmtDur(d.Elapsed), d.PerSecond)
	fmt.Fprintf(&sb, "| placements/s per 10 s window: min / median (first and last left out) | %.0f / %.0f |\n", d.WindowMin, d.WindowMedian)
	fmt.Fprintf(&sb, "| CPU used by the hosts alone (all Up, no deploys) over %s, share of one core | %s |\n", fmtDur(r.IdleFor), fmtShare(r.IdleCPU, r.IdleFor))
	fmt.Fprintf(&sb, "| CPU time used during the deploys (ms per VM Running) | %s |\n", fmtCPU(r.DeployCPU, d.Done))
	fmt.Fprintf(&sb, "| entries per raft.db write / per FSM batch during the deploys (mean) | %s |\n", fmtBatches(r.DeployBatches))
	fmt.Fprintf(&sb, "| machine load (1-min load average; %d CPUs, shared) | %s |\n", runtime.NumCPU(), r.LoadAvg)
	fmt.Fprintf(&sb, "| deploy accepted p50 / p99 | %s / %s |\n", fmtDur(d.AcceptP50), fmtDur(d.AcceptP99))
	fmt.Fprintf(&sb, "| deploy -> job done (VM Running) p50 / p99 | %s / %s |\n", fmtDur(d.RunningP50), fmtDur(d.RunningP99))
	for _, l := range r.Lists {
		fmt.Fprintf(&sb, "| %s on %s: p50 / p99 / max | %s / %s / %s (%d samples, %d errors) |\n", l.Name, l.Server,
			fmtDur(l.P50), fmtDur(l.P99), fmtDur(l.Max), l.Samples, l.Errors)
	}
	for _, phase := range []struct {
		name string
		m    map[string]int64
	}{{"RSS with hosts Up, no VMs", r.RSSAfterHosts}, {"RSS after the deploys", r.RSS}, {"RSS at the end", r.RSSEnd}} {
		keys := make([]string, 0, len(phase.m))
		for k := range phase.m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, k+" "+mib(phase.m[k]))
		}
		fmt.Fprintf(&sb, "| %s | %s |\n", phase.name, strings.Join(parts, ", "))
	}
	for _, m := range r.Memory {
		fmt.Fprintf(&sb, "| %s |\n", m.row())
	}
	fmt.Fprintf(&sb, "| snapshot save (operator, from the leader) | %s in %s %s |\n", mib(r.Snapshot.Bytes), fmtDur(r.Snapshot.Duration), r.Snapshot.Err)
	for i, f := range r.FailoverRuns {
		fmt.Fprintf(&sb, "| failover %d: kill -9 %s -> first write via %s | %s (errors %v; killed server ready again after %s) |\n",
			i+1, f.Killed, f.Via, fmtDur(f.FirstWrite), f.Errors, fmtDur(f.RestartReady))
	}
	fmt.Fprintf(&sb, "| new server joins: caught up with index %d / ready voter | %s / %s %s |\n", r.Join.TargetIndex,
		fmtDur(r.Join.CaughtUp), fmtDur(r.Join.Ready), r.Join.Err)
	fmt.Fprintf(&sb, "\nplacements/s per 10 s window: %s\n", fmtRates(d.Windows))
	if d.PollRetries > 0 {
		fmt.Fprintf(&sb, "\njob polls answered 503 (no leader within the hold time) and asked again: %d\n", d.PollRetries)
	}
	if d.Aborted != "" {
		fmt.Fprintf(&sb, "\ndeploy phase aborted: %s\n", d.Aborted)
	}
	if len(d.Errors) > 0 {
		fmt.Fprintf(&sb, "\ndeploy errors: %v\n", d.Errors)
	}
	sb.WriteString(r.goals())
	if len(r.Profiles) > 0 {
		fmt.Fprintf(&sb, "\nProfiles (go tool pprof -top bin/stratus FILE; a scale-heap one with -sample_index=inuse_space):\n")
		for _, p := range r.Profiles {
			fmt.Fprintf(&sb, "- %s\n", p)
		}
	}
	fmt.Print(sb.String())
	t.Log(sb.String())
	if cfg.outPath != "" {
		b, _ := json.MarshalIndent(r, "", "  ")
		if err := os.WriteFile(cfg.outPath, append(b, '\n'), 0o644); err != nil {
			t.Errorf("write %s: %v", cfg.outPath, err)
		}
	}
}

// row is a server's memory as a row of the report's table.
func (m serverMemory) row() string {
	name := fmt.Sprintf("memory of %s after the deploys: RSS / live heap (HeapAlloc after a GC) / heap held from the OS (HeapSys - HeapReleased) / rest (RSS - held)", m.Server)
	if m.Err != "" {
		return fmt.Sprintf("%s | RSS %s; runtime figures not read: %s", name, mib(m.RSS), m.Err)
	}
	st := m.Stats
	return fmt.Sprintf("%s | %s / %s / %s / %s (RSS file-backed %s: mmapped raft.db, the binary; runtime outside the heap %s, of it stacks %s; %d GCs, %.1f%% of CPU in GC)",
		name, mib(m.RSS), mib(st.HeapAlloc), mib(m.HeapHeld), mib(m.Rest), mib(m.RSSFile),
		mib(st.Sys-st.HeapSys), mib(st.StackSys), st.NumGC, 100*st.GCCPUFraction)
}

// goals compares the figures with the goals of issue 7.
func (r *scaleReport) goals() string {
	var sb strings.Builder
	var maxRSS int64
	for k, v := range r.RSSEnd {
		if k != "sim" && v > maxRSS {
			maxRSS = v
		}
	}
	for _, v := range r.RSS {
		maxRSS = max(maxRSS, v)
	}
	var worstFail time.Duration
	for _, f := range r.FailoverRuns {
		worstFail = max(worstFail, f.FirstWrite)
	}
	p99 := worst(r.Lists, "listVirtualMachines")
	fmt.Fprintf(&sb, "\nGoals of issue 7 (at %d hosts / %d VMs wanted):\n\n| goal | measured | |\n|---|---|---|\n", r.Hosts, r.VMsWanted)
	fmt.Fprintf(&sb, "| every server under 4 GiB RSS | largest server %s | %s |\n", mib(maxRSS), verdict(maxRSS > 0 && maxRSS < 4<<30))
	fmt.Fprintf(&sb, "| listVirtualMachines pagesize 500 p99 < 100 ms | worst p99 %s | %s |\n", fmtDur(p99), verdict(p99 > 0 && p99 < 100*time.Millisecond))
	fmt.Fprintf(&sb, "| deployVirtualMachine >= 1,000 placements/s sustained | %.0f/s (slowest window %.0f/s) | %s |\n",
		r.Deploy.PerSecond, r.Deploy.WindowMin, verdict(r.Deploy.PerSecond >= 1000))
	fmt.Fprintf(&sb, "| new server catches up < 30 s | %s | %s |\n", fmtDur(r.Join.CaughtUp), verdict(r.Join.CaughtUp > 0 && r.Join.CaughtUp < 30*time.Second))
	fmt.Fprintf(&sb, "| failover < 3 s | worst %s of %d | %s |\n", fmtDur(worstFail), len(r.FailoverRuns), verdict(worstFail > 0 && worstFail < 3*time.Second))
	return sb.String()
}
