package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Benchmark settings: each load phase runs loadFor; the failover figure
// is the median of failoverRuns kills.
const (
	loadFor        = 10 * time.Second
	failoverRuns   = 10
	failoverWriter = 4 // concurrent writers through the follower during a kill
	firstWriteMax  = 30 * time.Second
)

// bencher sends raw signed HTTP with keep-alive, so client overhead stays
// small next to the server's.
type bencher struct {
	c      *testCluster
	client *http.Client
}

func newBencher(c *testCluster) *bencher {
	return &bencher{c: c, client: &http.Client{Transport: newTransport(), Timeout: 30 * time.Second}}
}

// do sends one request and returns nil for HTTP 200, else an error whose
// text is the kind (status or transport).
func (b *bencher) do(req *http.Request) error {
	resp, err := b.client.Do(req)
	if err != nil {
		return fmt.Errorf("transport: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

func (b *bencher) createZone(s *server, name string) error {
	form := signedForm("createZone", url.Values{"name": {name}, "networktype": {"Basic"},
		"dns1": {"8.8.8.8"}, "internaldns1": {"10.0.0.1"}}, b.c.keys)
	req, err := http.NewRequest(http.MethodPost, s.apiURL(), strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

func (b *bencher) getZone(s *server, id string, stale bool) error {
	v := url.Values{"id": {id}, "response": {"json"}}
	if stale {
		v.Set("consistency", "stale")
	}
	req, err := http.NewRequest(http.MethodGet, s.apiURL()+"?"+signedQuery("listZones", v, b.c.keys, signV3), nil)
	if err != nil {
		return err
	}
	return b.do(req)
}

// loadResult is one load phase.
type loadResult struct {
	name    string
	clients int
	ok      int
	errs    map[string]int
	elapsed time.Duration
	lat     []time.Duration // of successful requests, sorted
}

func (r loadResult) errCount() int {
	n := 0
	for _, v := range r.errs {
		n += v
	}
	return n
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p)
	return sorted[i]
}

// runLoad runs clients goroutines, each calling op in a loop for d; client
// i talks to server i mod 3, so followers forward writes to the leader.
func (b *bencher) runLoad(name string, clients int, d time.Duration, op func(s *server, client, seq int) error) loadResult {
	type part struct {
		lat  []time.Duration
		errs map[string]int
	}
	parts := make([]part, clients)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := b.c.servers[i%len(b.c.servers)]
			p := part{errs: map[string]int{}}
			for seq := 0; time.Now().Before(deadline); seq++ {
				t0 := time.Now()
				if err := op(s, i, seq); err != nil {
					p.errs[err.Error()]++
					continue
				}
				p.lat = append(p.lat, time.Since(t0))
			}
			parts[i] = p
		}()
	}
	wg.Wait()
	r := loadResult{name: name, clients: clients, errs: map[string]int{}, elapsed: time.Since(start)}
	for _, p := range parts {
		r.lat = append(r.lat, p.lat...)
		for k, v := range p.errs {
			r.errs[k] += v
		}
	}
	r.ok = len(r.lat)
	sort.Slice(r.lat, func(i, j int) bool { return r.lat[i] < r.lat[j] })
	return r
}

// failoverRun is one leader kill.
type failoverRun struct {
	killed, via   string
	firstWrite    time.Duration // kill -> first successful write started after the kill
	holdErrors    map[string]int
	writesInHold  int
	restartReady  time.Duration
	leaderChanged bool
	// timeline is what the surviving servers logged of the election
	// after the kill, each line "+offset server message".
	timeline []string
}

// failoverEvents are the log messages of an election, in the order a
// failover passes them: a follower misses the leader (finding its raft
// port closed, or by raft's heartbeat timer), stands, wins, and
// the winner applies what earlier leaders committed (the barrier) and runs
// its leadership hooks.
var failoverEvents = []string{
	"refuses connections: its process is gone", "standing for election now",
	"heartbeat timeout reached", "entering candidate state", "election won",
	"entering leader state", "cluster leadership acquired", "cluster leadership established",
}

// failoverTimeline reads the election's messages that servers other than
// killed logged after at, as offsets from at, in time order.
func failoverTimeline(c *testCluster, killed *server, at time.Time) []string {
	type event struct {
		t    time.Time
		line string
	}
	var evs []event
	for _, s := range c.servers {
		if s == killed || s.proc == nil {
			continue
		}
		data, err := os.ReadFile(s.proc.logPath)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			ts, rest, ok := strings.Cut(line, " ")
			if !ok {
				continue
			}
			t, err := time.Parse("2006-01-02T15:04:05.000Z0700", ts)
			if err != nil || t.Before(at) {
				continue
			}
			for _, ev := range failoverEvents {
				if strings.Contains(rest, ev) {
					evs = append(evs, event{t, fmt.Sprintf("+%s %s %s", fmtDur(t.Sub(at)), s.id, ev)})
					break
				}
			}
		}
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].t.Before(evs[j].t) })
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.line
	}
	return out
}

// measureFailover kills the leader while failoverWriter clients write
// through one follower, and reports the time from the kill to the first
// successful write sent after it. It restarts the killed server and waits
// until all servers are ready before returning.
func (b *bencher) measureFailover(run int) (failoverRun, error) {
	ctx, cancel := context.WithTimeout(context.Background(), leaderTimeout+firstWriteMax+readyTimeout)
	defer cancel()
	leader, _, err := b.c.findLeader(ctx, nil)
	if err != nil {
		return failoverRun{}, err
	}
	var via *server
	for _, s := range b.c.servers {
		if s != leader {
			via = s
			break
		}
	}
	r := failoverRun{killed: leader.id, via: via.id, holdErrors: map[string]int{}}

	var (
		mu        sync.Mutex
		killedAt  time.Time // zero until the kill
		firstOK   time.Time // first success of a request started after the kill
		preKillOK int
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < failoverWriter; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				t0 := time.Now()
				err := b.createZone(via, fmt.Sprintf("bench-failover-%d-%d-%d", run, w, seq))
				t1 := time.Now()
				mu.Lock()
				switch {
				case killedAt.IsZero():
					if err == nil {
						preKillOK++
					}
				case err != nil:
					r.holdErrors[err.Error()]++
				case !t0.Before(killedAt):
					if firstOK.IsZero() || t1.Before(firstOK) {
						firstOK = t1
					}
				default:
					r.writesInHold++ // sent before the kill, answered after it
				}
				mu.Unlock()
				if err != nil {
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()

	// Kill only once writes flow.
	if err := pollUntil(ctx, func() bool { mu.Lock(); defer mu.Unlock(); return preKillOK >= 3*failoverWriter }); err != nil {
		return r, fmt.Errorf("writes through %s do not flow before the kill: %w", via.id, err)
	}
	mu.Lock()
	killedAt = time.Now()
	mu.Unlock()
	leader.kill9()
	if err := pollUntil(ctx, func() bool { mu.Lock(); defer mu.Unlock(); return !firstOK.IsZero() }); err != nil {
		return r, fmt.Errorf("no write through %s succeeded after killing %s: %w", via.id, leader.id, err)
	}
	mu.Lock()
	r.firstWrite = firstOK.Sub(killedAt)
	mu.Unlock()
	r.timeline = failoverTimeline(b.c, leader, killedAt)

	restart := time.Now()
	if err := leader.start(b.c.bin); err != nil {
		return r, err
	}
	for _, s := range b.c.servers {
		if err := b.c.waitReady(ctx, s); err != nil {
			return r, err
		}
		if err := b.c.waitVoters(ctx, s); err != nil {
			return r, err
		}
	}
	r.restartReady = time.Since(restart)
	return r, nil
}

// pollUntil polls cond every 10 ms until it holds or ctx ends.
func pollUntil(ctx context.Context, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// TestBenchmarks measures a local 3-server cluster and prints a markdown
// table: write and read throughput with latency, and the time from a
// leader kill to the first successful write through a follower. It
// reports figures only; no timing is asserted.
func TestBenchmarks(t *testing.T) {
	bin := requireBench(t)
	c := newCluster(t, bin, 3)
	if benchProfileDir() != "" {
		enablePprof(c)
	}
	c.startAll()
	b := newBencher(c)

	var loads []loadResult
	clientCounts := []int{1, 16, 64}
	if benchQuick() {
		clientCounts = []int{64}
	}
	for _, n := range clientCounts {
		wait := func() {}
		if n == 64 {
			wait = profileServers(t, c, "write64", loadFor-time.Second)
		}
		r := b.runLoad("createZone (write)", n, loadFor, func(s *server, client, seq int) error {
			return b.createZone(s, fmt.Sprintf("bench-w%d-%d-%d", n, client, seq))
		})
		wait()
		t.Logf("e2e: bench %s x%d: %d ok, %d errors %v", r.name, n, r.ok, r.errCount(), r.errs)
		loads = append(loads, r)
	}
	if benchQuick() {
		c.checkNoCrash()
		fmt.Print(benchReport(bin, c, loads, nil))
		return
	}
	readName := "bench-read-target"
	if err := b.createZone(c.servers[0], readName); err != nil {
		t.Fatalf("create the zone to read: %v", err)
	}
	zones := listZoneNames(t, newSDK(c.servers[0].apiURL(), c.keys), c.servers[0].id)
	zoneID := zones[readName]
	if zoneID == "" {
		t.Fatalf("zone %s not listed after its create", readName)
	}
	for _, stale := range []bool{false, true} {
		name := "listZones id=X (consistent)"
		if stale {
			name = "listZones id=X consistency=stale"
		}
		r := b.runLoad(name, 64, loadFor, func(s *server, _, _ int) error { return b.getZone(s, zoneID, stale) })
		t.Logf("e2e: bench %s x64: %d ok, %d errors %v", r.name, r.ok, r.errCount(), r.errs)
		loads = append(loads, r)
	}

	var runs []failoverRun
	for i := 0; i < failoverRuns; i++ {
		r, err := b.measureFailover(i)
		if err != nil {
			t.Fatalf("failover run %d: %v", i+1, err)
		}
		t.Logf("e2e: bench failover %d: killed %s, first write via %s after %s, %d errors %v, restarted ready in %s",
			i+1, r.killed, r.via, r.firstWrite.Round(time.Millisecond), len(r.holdErrors), r.holdErrors, r.restartReady.Round(time.Millisecond))
		t.Logf("e2e: bench failover %d: election: %s", i+1, strings.Join(r.timeline, "; "))
		runs = append(runs, r)
	}
	c.checkNoCrash()
	fmt.Print(benchReport(bin, c, loads, runs))
}

func benchReport(bin string, c *testCluster, loads []loadResult, runs []failoverRun) string {
	var sb strings.Builder
	ver, _ := exec.Command(bin, "version").Output()
	fmt.Fprintf(&sb, "\n## Stratus benchmark (%s)\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&sb, "- machine: %d CPUs (%s), %s/%s, %s; data dirs on %s\n", runtime.NumCPU(), cpuModel(),
		runtime.GOOS, runtime.GOARCH, runtime.Version(), fsType(c.dir))
	fmt.Fprintf(&sb, "- binary: %s (version %s)\n", bin, strings.TrimSpace(string(ver)))
	fmt.Fprintf(&sb, "- command: `STRATUS_BENCH=1 STRATUS_BIN=%s go test -count=1 -v -timeout 30m -run TestBenchmarks ./e2e/` (make bench)\n", bin)
	fmt.Fprintf(&sb, "- cluster: 3 servers on 127.0.0.1, default flags (raft heartbeat/election 1s, hold 5s); client i talks to server i mod 3 over keep-alive HTTP; %s per phase\n\n", loadFor)
	fmt.Fprintf(&sb, "| workload | clients | ok | errors | ops/s | p50 | p99 |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range loads {
		fmt.Fprintf(&sb, "| %s | %d | %d | %d | %.0f | %s | %s |\n", r.name, r.clients, r.ok, r.errCount(),
			float64(r.ok)/r.elapsed.Seconds(), fmtDur(percentile(r.lat, 0.50)), fmtDur(percentile(r.lat, 0.99)))
	}
	var firsts []time.Duration
	withErrors, totalErrors := 0, 0
	for _, r := range runs {
		firsts = append(firsts, r.firstWrite)
		n := 0
		for _, v := range r.holdErrors {
			n += v
		}
		if n > 0 {
			withErrors++
		}
		totalErrors += n
	}
	sort.Slice(firsts, func(i, j int) bool { return firsts[i] < firsts[j] })
	if len(firsts) > 0 {
		median := firsts[len(firsts)/2]
		if len(firsts)%2 == 0 {
			median = (firsts[len(firsts)/2-1] + firsts[len(firsts)/2]) / 2
		}
		fmt.Fprintf(&sb, "\nLeader kill -9 -> first successful createZone sent through a follower after the kill (%d writers on that follower), %d runs:\n\n", failoverWriter, len(runs))
		fmt.Fprintf(&sb, "| min | median | max | runs with client errors | client errors in all |\n|---:|---:|---:|---:|---:|\n")
		fmt.Fprintf(&sb, "| %s | %s | %s | %d of %d | %d |\n\n", fmtDur(firsts[0]), fmtDur(median), fmtDur(firsts[len(firsts)-1]),
			withErrors, len(runs), totalErrors)
		fmt.Fprintf(&sb, "| run | killed | writes via | kill -> first write | errors | writes in flight at the kill | restarted server ready after |\n|---:|---|---|---:|---|---:|---:|\n")
		for i, r := range runs {
			fmt.Fprintf(&sb, "| %d | %s | %s | %s | %v | %d | %s |\n", i+1, r.killed, r.via, fmtDur(r.firstWrite), r.holdErrors, r.writesInHold, fmtDur(r.restartReady))
		}
	}
	return sb.String()
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%d µs", d.Microseconds())
	}
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// fsType names the file system of dir (fsync cost differs a lot).
func fsType(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "unknown fs"
	}
	names := map[int64]string{0x01021994: "tmpfs", 0xEF53: "ext4", 0x58465342: "xfs", 0x9123683E: "btrfs", 0x794c7630: "overlayfs"}
	if n, ok := names[int64(st.Type)]; ok {
		return n
	}
	return fmt.Sprintf("fs type 0x%x", st.Type)
}
