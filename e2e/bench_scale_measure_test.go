package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// latency is p50/p99 of one sampled request kind.
type latency struct {
	Name     string
	Server   string
	Samples  int
	Errors   int
	P50, P99 time.Duration
	Max      time.Duration
	Items    int // items in the last page answered
}

// sampleLatency sends n requests one after the other and returns their
// latency figures; op returns the number of items it got.
func sampleLatency(name, server string, n int, op func(i int) (int, error)) latency {
	l := latency{Name: name, Server: server}
	var lat []time.Duration
	for i := 0; i < n; i++ {
		t0 := time.Now()
		items, err := op(i)
		if err != nil {
			l.Errors++
			continue
		}
		lat = append(lat, time.Since(t0))
		l.Items = items
	}
	sortDurations(lat)
	l.Samples = len(lat)
	l.P50, l.P99 = percentile(lat, 0.50), percentile(lat, 0.99)
	if len(lat) > 0 {
		l.Max = lat[len(lat)-1]
	}
	return l
}

// measureScaleLists samples listVirtualMachines (pagesize 500, cycling
// over the first pages) as root admin (listall) and as the tenant, and
// listHosts (pagesize 500), against each server.
func measureScaleLists(t *testing.T, c *testCluster, api *scaleAPI, z *scaleZoneIDs, cfg scaleConfig, prof *profiler) []latency {
	t.Helper()
	stop := prof.cpu("lists", c, 0)
	defer stop()
	var out []latency
	total, _ := api.count(c.servers[0], c.keys, "listVirtualMachines", url.Values{"listall": {"true"}})
	tenantTotal, _ := api.count(c.servers[0], z.tenant, "listVirtualMachines", nil)
	hostTotal, _ := api.count(c.servers[0], c.keys, "listHosts", url.Values{"type": {"Routing"}})
	pages := func(n int) int { return max(1, min(10, (n+499)/500)) }
	list := func(s *server, k adminKeys, command, key string, params url.Values, npages int) func(i int) (int, error) {
		return func(i int) (int, error) {
			p := url.Values{"pagesize": {"500"}, "page": {strconv.Itoa(i%npages + 1)}}
			for name, v := range params {
				p[name] = v
			}
			var ans map[string]any
			if err := api.call(s, k, command, p, &ans); err != nil {
				return 0, err
			}
			items, _ := ans[key].([]any)
			return len(items), nil
		}
	}
	for _, s := range c.servers {
		out = append(out,
			sampleLatency("listVirtualMachines pagesize=500 (root admin, listall)", s.id, cfg.listSamples,
				list(s, c.keys, "listVirtualMachines", "virtualmachine", url.Values{"listall": {"true"}}, pages(total))),
			sampleLatency("listVirtualMachines pagesize=500 (tenant)", s.id, cfg.listSamples,
				list(s, z.tenant, "listVirtualMachines", "virtualmachine", nil, pages(tenantTotal))),
			sampleLatency("listHosts pagesize=500", s.id, cfg.listSamples,
				list(s, c.keys, "listHosts", "host", url.Values{"type": {"Routing"}}, pages(hostTotal))))
	}
	for _, l := range out {
		t.Logf("e2e: %s on %s: p50 %s p99 %s max %s (%d samples, %d errors, %d items in a page)", l.Name, l.Server,
			fmtDur(l.P50), fmtDur(l.P99), fmtDur(l.Max), l.Samples, l.Errors, l.Items)
	}
	return out
}

// procRSS reads VmRSS of pid in bytes, 0 if unknown.
func procRSS(pid int) int64 { return procStatusBytes(pid, "VmRSS") }

// procStatusBytes reads a "kB" field of /proc/<pid>/status (VmRSS,
// RssAnon, RssFile, ...) in bytes, 0 if unknown.
func procStatusBytes(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(v)
			if len(f) == 2 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// procCPU reads the user+system CPU time pid has used, 0 if unknown.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command may hold spaces; the fields after it are fixed.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// cpuUse is the CPU time of every process of the benchmark.
func cpuUse(c *testCluster, sim scaleSims) map[string]time.Duration {
	m := map[string]time.Duration{"clients": procCPU(os.Getpid())}
	for _, p := range sim {
		m["sim"] += procCPU(p.pid())
	}
	for _, s := range c.servers {
		if s.running() {
			m[s.id] = procCPU(s.pid())
		}
	}
	return m
}

// cpuSince is the CPU time used since before, per process.
func cpuSince(before, after map[string]time.Duration) map[string]time.Duration {
	m := map[string]time.Duration{}
	for k, v := range after {
		m[k] = v - before[k]
	}
	return m
}

// loadAvg is the 1-minute load average, as /proc/loadavg shows it.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

// measureRSS returns the RSS of every running server and of the sim
// processes together.
func measureRSS(c *testCluster, sim scaleSims) map[string]int64 {
	m := map[string]int64{}
	for _, s := range c.servers {
		if s.running() {
			m[s.id] = procRSS(s.pid())
		}
	}
	for _, p := range sim {
		m["sim"] += procRSS(p.pid())
	}
	return m
}

// scaleSnapshot is `stratus operator snapshot save` at full size. The file
// is kept in dir (the profiles' directory), for `snapshot inspect`.
type scaleSnapshot struct {
	Bytes    int64
	Duration time.Duration
	Output   string
	Err      string
}

func measureScaleSnapshot(t *testing.T, c *testCluster, dir string) scaleSnapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Errorf("snapshot save: %v", err)
		return scaleSnapshot{Err: err.Error()}
	}
	file := filepath.Join(dir, "scale.snap")
	t0 := time.Now()
	out, stderr, err := c.operatorCLI(ctx, c.leader(), "snapshot", "save", file)
	r := scaleSnapshot{Duration: time.Since(t0), Output: strings.TrimSpace(out)}
	if err != nil {
		r.Err = fmt.Sprintf("%v: %s", err, strings.TrimSpace(lastLine(stderr)))
		t.Errorf("snapshot save: %s", r.Err)
		return r
	}
	if fi, err := os.Stat(file); err == nil {
		r.Bytes = fi.Size()
	}
	t.Logf("e2e: snapshot save: %d bytes in %s: %s", r.Bytes, r.Duration.Round(time.Millisecond), r.Output)
	return r
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// scaleJoin is a new server joining at full size.
type scaleJoin struct {
	TargetIndex uint64        // the leader's applied index when the server started
	CaughtUp    time.Duration // start -> its applied index reaches TargetIndex
	Ready       time.Duration // start -> /v1/ready answers 200 and it is a voter
	Err         string
}

// measureScaleJoin starts a 4th server with an empty data dir and times
// it until it has applied the leader's index of its start (it gets the
// state as a raft snapshot, then the log after it) and until it is ready.
func measureScaleJoin(t *testing.T, c *testCluster, cfg scaleConfig) scaleJoin {
	t.Helper()
	var r scaleJoin
	leader := c.leader()
	st, err := c.status(leader)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	r.TargetIndex = st.AppliedIndex
	s := c.addServer(append(pprofArgs(), cfg.serverArgs...)...)
	t0 := time.Now()
	if err := s.start(c.bin); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err = pollUntil(ctx, func() bool {
		st, err := c.status(s)
		return err == nil && st.AppliedIndex >= r.TargetIndex
	})
	if err != nil {
		r.Err = fmt.Sprintf("not caught up with index %d: %v", r.TargetIndex, err)
		t.Error(r.Err)
		return r
	}
	r.CaughtUp = time.Since(t0)
	if err := c.waitReady(ctx, s); err != nil {
		r.Err = err.Error()
		t.Error(err)
		return r
	}
	if err := c.waitVoters(ctx, s); err != nil {
		r.Err = err.Error()
		t.Error(err)
		return r
	}
	r.Ready = time.Since(t0)
	t.Logf("e2e: join: %s caught up with index %d in %s, ready voter in %s", s.id, r.TargetIndex,
		r.CaughtUp.Round(time.Millisecond), r.Ready.Round(time.Millisecond))
	return r
}

// measureScaleFailover kills the leader (kill -9) cfg.failovers times
// while writers go through a follower, as TestBenchmarks does, and
// returns each run's kill -> first successful write.
func measureScaleFailover(t *testing.T, c *testCluster, cfg scaleConfig) []failoverRun {
	t.Helper()
	b := newBencher(c)
	var runs []failoverRun
	for i := 0; i < cfg.failovers; i++ {
		r, err := b.measureFailover(1000 + i)
		if err != nil {
			t.Errorf("failover run %d: %v", i+1, err)
			break
		}
		t.Logf("e2e: failover %d: killed %s, first write via %s after %s, errors %v, restarted server ready after %s",
			i+1, r.killed, r.via, fmtDur(r.firstWrite), r.holdErrors, fmtDur(r.restartReady))
		t.Logf("e2e: failover %d: election: %s", i+1, strings.Join(r.timeline, "; "))
		runs = append(runs, r)
	}
	return runs
}

// profiler takes CPU profiles of the servers during the phases, through
// the servers' -pprof-addr (bench_profile_test.go), into a directory.
type profiler struct {
	t     *testing.T
	dir   string
	files []string
}

// newProfiler makes the servers of c (not started yet) serve pprof.
func newProfiler(t *testing.T, c *testCluster, dir string) *profiler {
	if os.Getenv("STRATUS_BENCH_PROFILE") == "" {
		t.Setenv("STRATUS_BENCH_PROFILE", dir)
	}
	enablePprof(c)
	return &profiler{t: t, dir: benchProfileDir()}
}

// pprofArgs are the pprof flags of a server added later.
func pprofArgs() []string { return []string{"-pprof-addr", "127.0.0.1:0"} }

// cpu profiles every server for 30 s, starting after delay (so a long
// phase is profiled past its ramp-up), and returns the wait for the
// files; a phase that ends first waits for the profile.
func (p *profiler) cpu(phase string, c *testCluster, delay time.Duration) func() {
	done := make(chan func(), 1)
	go func() {
		time.Sleep(delay)
		// The simulator's processes too, as more "servers" with their
		// data dirs (c.dir/sim or c.dir/sim-N, see startScaleSim).
		sim := &testCluster{t: p.t}
		dirs, _ := filepath.Glob(filepath.Join(c.dir, "sim*"))
		for _, d := range dirs {
			if fi, err := os.Stat(d); err == nil && fi.IsDir() {
				sim.servers = append(sim.servers, &server{id: filepath.Base(d), dataDir: d})
			}
		}
		waitSim := profileServers(p.t, sim, "scale-"+phase, 30*time.Second)
		waitServers := profileServers(p.t, c, "scale-"+phase, 30*time.Second)
		done <- func() { waitServers(); waitSim() }
	}()
	return func() {
		(<-done)()
		matches, _ := filepath.Glob(filepath.Join(p.dir, "scale-"+phase+"-*.pprof"))
		sort.Strings(matches)
		p.files = append(p.files, matches...)
		for _, f := range matches {
			p.t.Logf("e2e: CPU profile %s, top functions:\n%s", f, pprofTop(c.bin, f))
		}
	}
}

// serverMemory is where a server's memory goes: its RSS split by the
// kernel into private and file-backed pages, and the Go runtime's own
// figures, read right after it.
type serverMemory struct {
	Server  string `json:"server"`
	RSS     int64  `json:"rss_bytes"`
	RSSAnon int64  `json:"rss_anon_bytes"` // private: the Go heap, stacks, runtime metadata
	RSSFile int64  `json:"rss_file_bytes"` // file-backed: the mmapped raft.db (BoltDB), the binary
	// HeapHeld is the Go heap the runtime has from the OS and has not
	// given back (HeapSys - HeapReleased), live or not.
	HeapHeld int64 `json:"heap_held_bytes"`
	// Rest is RSS - HeapHeld: mmapped files, stacks, runtime metadata.
	Rest    int64    `json:"rest_bytes"`
	Stats   memStats `json:"memstats"`
	Profile string   `json:"heap_profile,omitempty"`
	Err     string   `json:"error,omitempty"`
}

// heap reads where the memory of every running server of c goes and
// saves a heap profile of each to the profile directory. The MemStats
// come from a text heap profile taken after a forced GC (gc=1), so
// HeapAlloc is the live heap rather than live plus garbage; the binary
// profile is fetched after it, so its in-use figures are of that GC too.
func (p *profiler) heap(c *testCluster) []serverMemory {
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		p.t.Logf("e2e: heap profiles: %v", err)
	}
	var out []serverMemory
	for _, s := range c.servers {
		if !s.running() {
			continue
		}
		m := serverMemory{Server: s.id, RSS: procRSS(s.pid()),
			RSSAnon: procStatusBytes(s.pid(), "RssAnon"), RSSFile: procStatusBytes(s.pid(), "RssFile")}
		if err := p.heapOf(c, s, &m); err != nil {
			m.Err = err.Error()
			p.t.Logf("e2e: heap of %s: %v", s.id, err)
		}
		out = append(out, m)
	}
	return out
}

// heapOf fills m's runtime figures and heap profile from server s.
func (p *profiler) heapOf(c *testCluster, s *server, m *serverMemory) error {
	text, err := fetchPprof(s, "/debug/pprof/heap?debug=1&gc=1", time.Minute)
	if err != nil {
		return err
	}
	txt := filepath.Join(p.dir, "scale-heap-"+s.id+".txt")
	if err := os.WriteFile(txt, text, 0o644); err != nil {
		return fmt.Errorf("save text heap profile: %w", err)
	}
	if m.Stats, err = parseMemStats(string(text)); err != nil {
		return fmt.Errorf("%s: %w", txt, err)
	}
	m.HeapHeld = m.Stats.HeapSys - m.Stats.HeapReleased
	m.Rest = m.RSS - m.HeapHeld
	p.t.Logf("e2e: memory of %s: RSS %s (anon %s, file %s), live heap %s, heap held from the OS %s, rest %s; text heap profile %s",
		s.id, mib(m.RSS), mib(m.RSSAnon), mib(m.RSSFile), mib(m.Stats.HeapAlloc), mib(m.HeapHeld), mib(m.Rest), txt)
	prof, err := fetchPprof(s, "/debug/pprof/heap", time.Minute)
	if err != nil {
		return err
	}
	m.Profile = filepath.Join(p.dir, "scale-heap-"+s.id+".pprof")
	if err := os.WriteFile(m.Profile, prof, 0o644); err != nil {
		return fmt.Errorf("save heap profile: %w", err)
	}
	p.files = append(p.files, m.Profile)
	p.t.Logf("e2e: heap profile %s, in use by function:\n%s", m.Profile,
		pprofTop(c.bin, m.Profile, "-sample_index=inuse_space"))
	return nil
}

// pprofTop is `go tool pprof -top` of a profile, cut to 25 lines; args
// are more pprof flags (a heap profile's -sample_index).
func pprofTop(bin, file string, args ...string) string {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "(go not found: " + err.Error() + ")"
	}
	argv := append(append([]string{"tool", "pprof", "-top"}, args...), "-nodecount=25", bin, file)
	out, err := exec.Command(goBin, argv...).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("(pprof: %v: %s)", err, out)
	}
	return string(out)
}

// batchSizes is how many entries each server's writes of raft.db and its
// FSM batches held: the sums and counts of the two histograms.
type batchSizes struct {
	StoreEntries, StoreWrites float64
	FSMEntries, FSMBatches    float64
}

// scrapeBatches reads the batch histograms of every running server.
func scrapeBatches(t *testing.T, c *testCluster) map[string]batchSizes {
	t.Helper()
	out := map[string]batchSizes{}
	for _, s := range c.servers {
		if !s.running() {
			continue
		}
		body := c.metrics(t, s)
		out[s.id] = batchSizes{
			StoreEntries: metricValue(body, "stratus_raft_log_store_batch_entries_sum"),
			StoreWrites:  metricValue(body, "stratus_raft_log_store_batch_entries_count"),
			FSMEntries:   metricValue(body, "stratus_fsm_apply_batch_entries_sum"),
			FSMBatches:   metricValue(body, "stratus_fsm_apply_batch_entries_count"),
		}
	}
	return out
}

// batchesSince is what the servers wrote and applied since before.
func batchesSince(before, after map[string]batchSizes) map[string]batchSizes {
	out := map[string]batchSizes{}
	for id, a := range after {
		b := before[id]
		out[id] = batchSizes{a.StoreEntries - b.StoreEntries, a.StoreWrites - b.StoreWrites, a.FSMEntries - b.FSMEntries, a.FSMBatches - b.FSMBatches}
	}
	return out
}

// fmtBatches prints each server's mean entries per raft.db write and per
// FSM batch, and how many writes there were.
func fmtBatches(m map[string]batchSizes) string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	parts := make([]string, 0, len(ids))
	for _, id := range ids {
		b := m[id]
		parts = append(parts, fmt.Sprintf("%s %.1f / %.1f (%.0f writes)", id, b.StoreEntries/max(b.StoreWrites, 1), b.FSMEntries/max(b.FSMBatches, 1), b.StoreWrites))
	}
	return strings.Join(parts, ", ")
}
