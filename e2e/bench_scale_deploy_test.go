package e2e

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// scaleDeploy is the deploy phase's figures.
type scaleDeploy struct {
	Done, Failed int
	Errors       map[string]int
	Elapsed      time.Duration
	PerSecond    float64 // VMs Running per second over the whole phase
	WindowMin    float64 // slowest 10 s window (first and last left out)
	WindowMedian float64
	AcceptP50    time.Duration
	AcceptP99    time.Duration
	RunningP50   time.Duration // deploy sent -> job done with the VM Running
	RunningP99   time.Duration
	TimedOut     bool
	Aborted      string // why the phase stopped early, if it did
	PollRetries  int    // job polls answered 503 (no leader) and asked again
	TenantVMs    int
	Windows      []float64 // VMs Running per 10 s window, in order
}

// scaleDeployer deploys VMs: each client deploys one VM, polls its job
// until it is done (the job succeeds only once the VM runs on a host, as
// the agent reported), then deploys the next.
type scaleDeployer struct {
	c     *testCluster
	api   *scaleAPI
	z     *scaleZoneIDs
	cfg   scaleConfig
	stop  atomic.Bool // the phase is over: clients stop polling
	stuck atomic.Int64
	// pollRetries counts job polls answered 503 and asked again.
	pollRetries atomic.Int64
	t           *testing.T
}

// scaleJobTimeout bounds the wait for one deploy's job.
const scaleJobTimeout = 5 * time.Minute

func (d *scaleDeployer) deployOne(client, seq int, k adminKeys) (accepted, running time.Duration, err error) {
	start := time.Now()
	s := d.c.servers[client%len(d.c.servers)]
	var acc struct {
		ID    string `json:"id"`
		JobID string `json:"jobid"`
	}
	p := url.Values{"zoneid": {d.z.zone}, "serviceofferingid": {d.z.offering}, "templateid": {d.z.template},
		"name": {fmt.Sprintf("s-%d-%d", client, seq)}}
	if err := d.api.call(s, k, "deployVirtualMachine", p, &acc); err != nil {
		return 0, 0, err
	}
	accepted = time.Since(start)
	for {
		var j struct {
			JobStatus     int            `json:"jobstatus"`
			JobResultCode int            `json:"jobresultcode"`
			JobResult     map[string]any `json:"jobresult"`
		}
		// Polls go to the next server: a follower answers once it has
		// applied the leader's commit index (consistent read).
		if err := d.api.call(d.c.servers[(client+1)%len(d.c.servers)], k, "queryAsyncJobResult", url.Values{"jobid": {acc.JobID}}, &j); err != nil {
			// The job goes on without a leader; an SDK would ask again
			// after a 503 (no leader within the hold time).
			if !strings.Contains(err.Error(), "error 503") || d.stop.Load() || time.Since(start) > scaleJobTimeout {
				return accepted, 0, err
			}
			d.pollRetries.Add(1)
			time.Sleep(d.cfg.pollEvery)
			continue
		}
		switch j.JobStatus {
		case 1:
			return accepted, time.Since(start), nil
		case 2:
			return accepted, 0, fmt.Errorf("job failed %d: %v", j.JobResultCode, j.JobResult["errortext"])
		}
		if d.stop.Load() {
			return accepted, 0, fmt.Errorf("job still pending when the deploy phase stopped")
		}
		if time.Since(start) > scaleJobTimeout {
			d.noteStuck(acc.JobID, acc.ID, j.JobResult)
			return accepted, 0, fmt.Errorf("job still pending after %s", scaleJobTimeout)
		}
		time.Sleep(d.cfg.pollEvery) // as an SDK polls its job
	}
}

// noteStuck logs the first few jobs that never finish, for a look at
// the VM and its host in the servers' logs.
func (d *scaleDeployer) noteStuck(jobID, vmID string, result map[string]any) {
	if d.stuck.Add(1) <= 5 {
		d.t.Logf("e2e: deploy: job %s of VM %s still pending after %s (jobresult %v)", jobID, vmID, scaleJobTimeout, result)
	}
}

// errKind shortens an error for counting: the text up to the first
// digit-heavy part is enough to tell kinds apart.
func errKind(err error) string {
	s := err.Error()
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

// runScaleDeploy deploys cfg.vms VMs with cfg.clients clients (every
// cfg.tenantEvery-th one as the tenant), spread over the servers.
func runScaleDeploy(t *testing.T, c *testCluster, api *scaleAPI, z *scaleZoneIDs, cfg scaleConfig, prof *profiler) scaleDeploy {
	t.Helper()
	d := &scaleDeployer{c: c, api: api, z: z, cfg: cfg, t: t}
	var (
		next                atomic.Int64
		mu                  sync.Mutex
		accLat, runLat      []time.Duration
		doneAt              []time.Time
		errs                = map[string]int{}
		failed, tenantCount int
	)
	deadline := time.Now().Add(cfg.deployTimeout)
	// Profile 30 s from a tenth of the expected run (at 100 placements/s).
	stopProf := prof.cpu("deploy", c, min(2*time.Minute, time.Duration(cfg.vms)*time.Millisecond))
	t0 := time.Now()
	progressStop := make(chan struct{})
	var aborted string
	go func() {
		tick := time.NewTicker(30 * time.Second)
		defer tick.Stop()
		lastN, lastProgress := 0, time.Now()
		for {
			select {
			case <-progressStop:
				return
			case <-tick.C:
				mu.Lock()
				n, f := len(doneAt), failed
				mu.Unlock()
				t.Logf("e2e: deploy: %d of %d VMs Running after %s (%.0f/s), %d failed", n, cfg.vms, time.Since(t0).Round(time.Second),
					float64(n)/time.Since(t0).Seconds(), f)
				if n > lastN {
					lastN, lastProgress = n, time.Now()
				} else if time.Since(lastProgress) >= cfg.stallLimit {
					mu.Lock()
					aborted = fmt.Sprintf("no VM reached Running for %s (%d Running, %d failed): phase stopped", cfg.stallLimit, n, f)
					mu.Unlock()
					t.Logf("e2e: deploy: %s", aborted)
					d.stop.Store(true)
					return
				}
			}
		}
	}()
	var wg sync.WaitGroup
	for cl := 0; cl < cfg.clients; cl++ {
		wg.Go(func() {
			k, tenant := c.keys, cl%cfg.tenantEvery == cfg.tenantEvery-1
			if tenant {
				k = z.tenant
			}
			for seq := 0; ; seq++ {
				if next.Add(1) > int64(cfg.vms) || time.Now().After(deadline) || d.stop.Load() {
					return
				}
				a, r, err := d.deployOne(cl, seq, k)
				mu.Lock()
				if err != nil {
					failed++
					errs[errKind(err)]++
				} else {
					accLat, runLat, doneAt = append(accLat, a), append(runLat, r), append(doneAt, time.Now())
					if tenant {
						tenantCount++
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(t0)
	d.stop.Store(true)
	close(progressStop)
	stopProf()
	res := scaleDeploy{Done: len(runLat), Failed: failed, Errors: errs, Elapsed: elapsed, TenantVMs: tenantCount,
		TimedOut: time.Now().After(deadline)}
	mu.Lock()
	res.Aborted = aborted
	mu.Unlock()
	res.PollRetries = int(d.pollRetries.Load())
	// The rate runs to the last VM Running: a stalled tail (jobs that
	// never finish, the stall limit) is not time spent placing VMs.
	busy := res.Elapsed
	if len(doneAt) > 0 {
		last := doneAt[0]
		for _, at := range doneAt {
			if at.After(last) {
				last = at
			}
		}
		busy = last.Sub(t0)
	}
	res.PerSecond = float64(res.Done) / busy.Seconds()
	sortDurations(accLat)
	sortDurations(runLat)
	res.AcceptP50, res.AcceptP99 = percentile(accLat, 0.50), percentile(accLat, 0.99)
	res.RunningP50, res.RunningP99 = percentile(runLat, 0.50), percentile(runLat, 0.99)
	res.Windows = windowRates(t0, doneAt, 10*time.Second)
	if inner := append([]float64(nil), res.Windows...); len(inner) > 0 {
		if len(inner) > 2 {
			inner = inner[1 : len(inner)-1] // ramp-up and tail
		}
		sort.Float64s(inner)
		res.WindowMin, res.WindowMedian = inner[0], inner[len(inner)/2]
	}
	t.Logf("e2e: deploy: %d VMs Running (%d as the tenant), %d failed in %s: %.0f/s; errors %v", res.Done, tenantCount, failed,
		res.Elapsed.Round(time.Millisecond), res.PerSecond, errs)
	return res
}

// windowRates counts the completions in each window from t0, per second.
func windowRates(t0 time.Time, done []time.Time, w time.Duration) []float64 {
	if len(done) == 0 {
		return nil
	}
	last := t0
	for _, d := range done {
		if d.After(last) {
			last = d
		}
	}
	n := int(last.Sub(t0)/w) + 1
	counts := make([]int, n)
	for _, d := range done {
		counts[int(d.Sub(t0)/w)]++
	}
	rates := make([]float64, n)
	for i, c := range counts {
		rates[i] = float64(c) / w.Seconds()
	}
	return rates
}

func sortDurations(d []time.Duration) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
}

// fmtRates prints window rates compactly.
func fmtRates(r []float64) string {
	parts := make([]string, len(r))
	for i, v := range r {
		parts[i] = fmt.Sprintf("%.0f", v)
	}
	return strings.Join(parts, " ")
}
