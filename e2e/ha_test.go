package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/cloudstack-go/v2/cloudstack"
)

// Host HA end to end: `stratus dev --servers 3 --hosts 4`, 20 HA VMs and
// 10 non-HA ones, a sampler of every host's real domain list all along.

const (
	haVMs    = 20
	plainVMs = 10
	// The test runs with shorter HA timings than the defaults (10 s lease,
	// 4 s margin, 2 s heartbeats, 15 s grace) to stay short;
	// TestBenchmarkHA measures the defaults. The grace is never below
	// ttl + margin (the controller enforces that), so 9 here.
	fastTTL    = 6 * time.Second
	haTestTime = 5 * time.Minute
	cutUIDTest = 65534 // the partitioned agent runs as nobody
)

var fastHASettings = [][2]string{
	{"host.lease.ttl", "6"}, {"host.lease.margin", "3"}, {"host.heartbeat.interval", "1"}, {"ha.failover.grace", "9"},
}

// TestHostHA runs host HA against real agent processes: a host's agent
// killed with SIGKILL (a power loss: the test driver's guests die with
// it), a host cut off from servers and peers while its agent runs (it
// must fence itself before its VMs start elsewhere), and maintenance.
func TestHostHA(t *testing.T) {
	bin := requireE2E(t)
	begin := time.Now()
	d := startDevCloud(t, bin, 4)
	sampler, tl, stopSampler := startHASampler(d)
	defer stopSampler()
	r := newHARun(t, d, sampler, tl)
	ctx, cancel := context.WithTimeout(context.Background(), haTestTime)
	defer cancel()

	r.setSettings(fastHASettings)
	r.waitLeaseTTL(fastTTL)
	t.Logf("e2e: HA timings for this test: %v (defaults 10/4/2/15 s; TestBenchmarkHA uses the defaults)", fastHASettings)

	t0 := time.Now()
	ha := r.deployWith(ctx, "deploy HA", "ha", r.haOffering, haVMs)
	plain := r.deployWith(ctx, "deploy non-HA", "plain", r.offering, plainVMs)
	all := r.expectVMs("deploy", append(slices.Clone(ha), plain...), "Running")
	for _, id := range ha {
		if !all[id].Haenable {
			t.Fatalf("deploy: VM %s of offering %s answers haenable=false", all[id].Name, haOfferingName)
		}
	}
	checkHostsMatchAPI(t, r.vmRun, "deploy")
	r.phase("deploy 20 HA + 10 non-HA", t0)

	run := func(name string, f func(t *testing.T)) {
		if t.Failed() {
			return
		}
		t.Run(name, func(st *testing.T) {
			r.t = st
			defer func() { r.t = t }()
			f(st)
		})
	}
	run("kill9-agent", func(st *testing.T) {
		t0 := time.Now()
		victim, haOn, plainOn := r.busiestHost(true)
		if victim == nil || len(haOn) == 0 {
			st.Fatalf("no host runs both HA and non-HA VMs")
		}
		res := r.killRound(victim, true)
		st.Logf("e2e: kill -9 of %s (%d HA, %d non-HA VMs): states %s; Fenced after %s, HA VMs Running elsewhere after %s; agent back Up with its non-HA VMs %s after its restart",
			victim.name, len(haOn), len(plainOn), strings.Join(res.states, " -> "), fmtDur(res.toFenced), fmtDur(res.toRunning), fmtDur(res.backIn))
		r.phase("kill -9 agent", t0)
	})
	run("partition", func(st *testing.T) {
		if why := canPartition(); why != "" {
			st.Skipf("partition case skipped: %s", why)
		}
		t0 := time.Now()
		target, haOn, plainOn := r.busiestHost(true)
		if target == nil || len(haOn) == 0 {
			st.Fatalf("no host runs both HA and non-HA VMs")
		}
		r.restartAgentAs(target, cutUIDTest)
		checkHostsMatchAPI(st, r.vmRun, "agent restarted as uid 65534")
		if uid := uidOf(target.pid()); uid != fmt.Sprint(cutUIDTest) {
			st.Fatalf("agent %s runs as uid %s, want %d", target.name, uid, cutUIDTest)
		}
		res := r.partitionRound(target, cutUIDTest)
		st.Logf("e2e: partition of %s (%d HA, %d non-HA VMs): states %s; self-fenced %s after the cut, Fenced in the API after %s, HA VMs Running elsewhere after %s; "+
			"fence lead (gone from the cut host -> first seen elsewhere) min %s max %s; %d samples of the cut host while cut (longest gap %s); back Up %s after healing",
			target.name, len(haOn), len(plainOn), strings.Join(res.states, " -> "), fmtDur(res.toSelfFence), fmtDur(res.toFenced), fmtDur(res.toRunning),
			fmtDur(res.leadMin), fmtDur(res.leadMax), res.cutSamples, fmtDur(res.maxGap), fmtDur(res.backIn))
		r.phase("partition", t0)
	})
	run("maintenance", func(st *testing.T) {
		t0 := time.Now()
		r.maintenancePhase(ctx)
		r.phase("maintenance", t0)
	})

	sampler.check(t, "end")
	t.Logf("e2e: phases: %s", strings.Join(r.phases, ", "))
	t.Logf("e2e: host sampler: %s; API retries: %s", sampler, r.retrySummary())
	t.Logf("e2e: whole test %s", time.Since(begin).Round(time.Millisecond))
	d.c.checkNoCrash()
}

// killResult is what one kill -9 of an agent showed.
type killResult struct {
	states                      []string // the host's states as polled, deduplicated
	toDisconnected, toFenced    time.Duration
	toRunning, backIn           time.Duration
	movedHA, plainKept, skipped int
}

// hostWatch records the distinct states a host shows while polled.
type hostWatch struct {
	states []string
	first  map[string]time.Duration // state -> first seen after start
	start  time.Time
}

func newHostWatch() *hostWatch {
	return &hostWatch{first: map[string]time.Duration{}, start: time.Now()}
}

func (w *hostWatch) see(h *cloudstack.Host) {
	s := hostState(h)
	if n := len(w.states); n == 0 || w.states[n-1] != s {
		w.states = append(w.states, s)
	}
	if h != nil {
		if _, ok := w.first[h.State]; !ok {
			w.first[h.State] = time.Since(w.start)
		}
	}
}

// killRound kills the victim's agent with SIGKILL and waits until every HA
// VM it ran is Running on another host (API and that host's domain list),
// its non-HA VMs are Stopped and still placed on it, and the host is Down
// with HA state Fenced; events must record the disconnect, the fence and
// each restart. With restart, the agent is then started again with the
// same command line: it must come back Up, run its non-HA VMs again and no
// copy of a moved HA VM, ever.
func (r *haRun) killRound(victim *simHost, restart bool) killResult {
	t := r.t
	t.Helper()
	all, err := r.listVMs("")
	if err != nil {
		t.Fatal(err)
	}
	haOn, plainOn := r.onHost(all, victim.id)
	before := r.eventIDs(append([]string{victim.id}, haOn...)...)
	p, bin, err := r.d.killAgent(victim)
	if err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	w := newHostWatch()
	w.start = killedAt
	obs := observerClient(time.Second)
	var res killResult
	r.waitFor(fmt.Sprintf("after kill -9 of %s: its %d HA VMs Running elsewhere, its %d non-HA VMs Stopped on it, the host Down and Fenced",
		victim.name, len(haOn), len(plainOn)), haWaitTimeout, func() (bool, string) {
		hosts, err := r.hostsByID()
		if err != nil {
			return false, err.Error()
		}
		w.see(hosts[victim.id])
		all, err := r.listVMs("")
		if err != nil {
			return false, err.Error()
		}
		moved, why := r.movedOff(haOn, victim.id, all, r.allDomains(obs))
		if moved && res.toRunning == 0 {
			res.toRunning = time.Since(killedAt)
		}
		if !moved {
			return false, why
		}
		for _, id := range plainOn {
			if v := all[id]; v == nil || v.State != "Stopped" || v.Hostid != victim.id {
				return false, fmt.Sprintf("non-HA VM %s: %+v, want Stopped on %s", id, vmBrief(v), victim.name)
			}
		}
		if h := hosts[victim.id]; h == nil || h.State != "Down" || h.Hostha.Hastate != "Fenced" {
			return false, fmt.Sprintf("host %s is %s, want Down/Fenced", victim.name, hostState(h))
		}
		return true, ""
	})
	res.states = w.states
	res.toDisconnected, res.toFenced = w.first["Disconnected"], w.first["Down"]
	res.movedHA, res.plainKept = len(haOn), len(plainOn)
	r.sampler.check(t, "kill -9 "+victim.name)
	r.requireEvents("kill -9 "+victim.name, victim.id, before, "HOST.DISCONNECT", "HOST.FENCE")
	for _, id := range haOn {
		r.requireEvents("kill -9 "+victim.name, id, before, "VM.HA.RESTART")
	}
	if !restart {
		return res
	}
	if err := r.d.startAgent(victim, p, bin); err != nil {
		t.Fatal(err)
	}
	restartedAt := time.Now()
	r.waitAgentBack(victim, plainOn)
	res.backIn = time.Since(restartedAt)
	checkHostsMatchAPI(t, r.vmRun, "agent "+victim.name+" restarted")
	r.requireNoCopies(victim, haOn, killedAt)
	return res
}

func vmBrief(v *cloudstack.VirtualMachine) string {
	if v == nil {
		return "not listed"
	}
	return fmt.Sprintf("%s %s on %q", v.Name, v.State, v.Hostname)
}

// waitAgentBack waits until a host is Up with HA state Available, its
// domain list is exactly plain, all Running, and the API shows those VMs
// Running on it.
func (r *haRun) waitAgentBack(h *simHost, plain []string) {
	r.t.Helper()
	obs := observerClient(time.Second)
	want := slices.Sorted(slices.Values(plain))
	r.waitFor(fmt.Sprintf("host %s back Up running exactly its %d non-HA VMs", h.name, len(plain)), haWaitTimeout, func() (bool, string) {
		hosts, err := r.hostsByID()
		if err != nil {
			return false, err.Error()
		}
		if hh := hosts[h.id]; hh == nil || hh.State != "Up" || hh.Hostha.Hastate != "Available" {
			return false, fmt.Sprintf("host %s is %s", h.name, hostState(hosts[h.id]))
		}
		st, err := h.status(obs)
		if err != nil {
			return false, err.Error()
		}
		doms := domainSet(st)
		if got := slices.Sorted(maps.Keys(doms)); !slices.Equal(got, want) {
			return false, fmt.Sprintf("%s runs %s, want %s", h.name, shortIDs(got), shortIDs(want))
		}
		all, err := r.listVMs("")
		if err != nil {
			return false, err.Error()
		}
		for _, id := range plain {
			if doms[id] != "Running" {
				return false, fmt.Sprintf("domain %s is %s on %s", id, doms[id], h.name)
			}
			if v := all[id]; v == nil || v.State != "Running" || v.Hostid != h.id {
				return false, fmt.Sprintf("non-HA VM %s: %s, want Running on %s", id, vmBrief(v), h.name)
			}
		}
		return true, ""
	})
}

// requireNoCopies fails the test if any sample of host h taken after since
// holds one of the moved VMs.
func (r *haRun) requireNoCopies(h *simHost, moved []string, since time.Time) {
	r.t.Helper()
	for _, s := range r.tl.of(h.name, since, time.Time{}) {
		for _, id := range moved {
			if s.domains[id] {
				r.t.Errorf("host %s held a copy of moved VM %s at %s", h.name, id, s.at.Format("15:04:05.000"))
			}
		}
	}
	if r.t.Failed() {
		r.t.FailNow()
	}
}

// partitionResult is what one partition showed.
type partitionResult struct {
	states                            []string
	toSelfFence, toFenced, toRunning  time.Duration
	leadMin, leadMax, maxGap, backIn  time.Duration
	cutSamples, movedHA, plainRunning int
}

// partitionRound cuts target (whose agent runs as uid) off the servers
// and its peers while its agent keeps running, and checks from the
// sampler's timeline that it fenced itself (its HA VMs gone from its own
// domain list) before any of them was seen on another host, that its
// non-HA VMs ran on it all along, and that the leader fenced it and
// restarted its HA VMs elsewhere. Then it heals the cut: the host must be
// Up again with its non-HA VMs Running and no copy of a moved VM.
func (r *haRun) partitionRound(target *simHost, uid int) partitionResult {
	t := r.t
	t.Helper()
	all, err := r.listVMs("")
	if err != nil {
		t.Fatal(err)
	}
	haOn, plainOn := r.onHost(all, target.id)
	before := r.eventIDs(append([]string{target.id}, haOn...)...)
	cut := cutUID(t, uid)
	cutAt := time.Now()
	w := newHostWatch()
	obs := observerClient(time.Second)
	var res partitionResult
	r.waitFor(fmt.Sprintf("after cutting %s off: its %d HA VMs Running elsewhere, the host Down and Fenced, its %d non-HA VMs shown Stopped",
		target.name, len(haOn), len(plainOn)), haWaitTimeout, func() (bool, string) {
		hosts, err := r.hostsByID()
		if err != nil {
			return false, err.Error()
		}
		w.see(hosts[target.id])
		all, err := r.listVMs("")
		if err != nil {
			return false, err.Error()
		}
		if ok, why := r.movedOff(haOn, target.id, all, r.allDomains(obs)); !ok {
			return false, why
		}
		if res.toRunning == 0 {
			res.toRunning = time.Since(cutAt)
		}
		if h := hosts[target.id]; h == nil || h.State != "Down" || h.Hostha.Hastate != "Fenced" {
			return false, fmt.Sprintf("host %s is %s, want Down/Fenced", target.name, hostState(h))
		}
		for _, id := range plainOn {
			if v := all[id]; v == nil || v.State != "Stopped" || v.Hostid != target.id {
				return false, fmt.Sprintf("non-HA VM %s: %s, want shown Stopped on %s", id, vmBrief(v), target.name)
			}
		}
		return true, ""
	})
	res.states, res.toFenced = w.states, w.first["Down"]
	res.movedHA, res.plainRunning = len(haOn), len(plainOn)
	// The wait above saw the restarts through its own observer; the
	// sampler's timeline, which the order checks below read, must have
	// swept every host since.
	var names []string
	for _, h := range r.sampler.hosts {
		names = append(names, h.name)
	}
	if err := r.tl.caughtUp(names, time.Now(), 5*time.Second); err != nil {
		t.Fatalf("partition: %v", err)
	}
	res.leadMin = time.Hour

	// The order of events, as the sampler saw them.
	samples := r.tl.of(target.name, cutAt, time.Time{})
	res.cutSamples = len(samples)
	prev := cutAt
	for _, s := range samples {
		res.maxGap = max(res.maxGap, s.at.Sub(prev))
		prev = s.at
		for _, id := range plainOn {
			if !s.domains[id] {
				t.Errorf("partition: non-HA VM %s was not running on the cut host %s at %s", id, target.name, s.at.Format("15:04:05.000"))
			}
		}
	}
	res.maxGap = max(res.maxGap, time.Since(prev))
	if res.maxGap > 2*time.Second {
		t.Fatalf("partition: the cut host %s was not sampled for %s: its self-fence cannot be ordered against the restarts", target.name, res.maxGap)
	}
	var fencedAt time.Time
	for _, id := range haOn {
		else_, ok := r.tl.firstElsewhere(id, target.name, cutAt)
		if !ok {
			t.Fatalf("partition: HA VM %s was never seen on another host", id)
		}
		var goneAt time.Time
		for _, s := range samples {
			switch {
			case s.domains[id] && !s.at.Before(else_.at):
				t.Errorf("partition: HA VM %s still ran on the cut host %s at %s, after it was seen on %s at %s: it ran twice",
					id, target.name, s.at.Format("15:04:05.000"), else_.host, else_.at.Format("15:04:05.000"))
			case s.domains[id]:
				goneAt = time.Time{}
			case goneAt.IsZero() && s.at.Before(else_.at):
				goneAt = s.at
			}
		}
		if goneAt.IsZero() {
			t.Errorf("partition: no sample of the cut host %s without HA VM %s before it was seen on %s at %s", target.name, id, else_.host, else_.at.Format("15:04:05.000"))
			continue
		}
		lead := else_.at.Sub(goneAt)
		res.leadMin, res.leadMax = min(res.leadMin, lead), max(res.leadMax, lead)
		if goneAt.After(fencedAt) {
			fencedAt = goneAt
		}
	}
	if len(haOn) == 0 {
		res.leadMin = 0
	}
	if !fencedAt.IsZero() {
		res.toSelfFence = fencedAt.Sub(cutAt)
	}
	if t.Failed() {
		t.FailNow()
	}
	r.sampler.check(t, "partition of "+target.name)
	r.requireEvents("partition of "+target.name, target.id, before, "HOST.DISCONNECT", "HOST.FENCE")
	for _, id := range haOn {
		r.requireEvents("partition of "+target.name, id, before, "VM.HA.RESTART")
	}

	if err := cut.heal(); err != nil {
		t.Fatal(err)
	}
	healedAt := time.Now()
	r.waitAgentBack(target, plainOn)
	res.backIn = time.Since(healedAt)
	checkHostsMatchAPI(t, r.vmRun, "partition of "+target.name+" healed")
	r.requireNoCopies(target, haOn, fencedAt)
	return res
}

// maintenancePhase prepares the host with the most VMs for maintenance:
// every VM must move to other hosts (API and domain lists agree), the host
// end in Maintenance and get none of a few new VMs; cancelling makes it
// Enabled again.
func (r *haRun) maintenancePhase(ctx context.Context) {
	t := r.t
	t.Helper()
	var h *simHost
	var before []string
	for _, sh := range r.d.hosts {
		if on := r.vmsOn(sh.id); len(on) > len(before) {
			h, before = sh, on
		}
	}
	if h == nil {
		t.Fatal("maintenance: no host runs a VM")
	}
	hostJob := func(cmd string, f func() (string, error)) {
		outs := r.runJobs(ctx, []string{h.id}, 1, func(string) (string, string, error) {
			jobID, err := f()
			return h.id, jobID, err
		}, nil)
		r.requireJobsOK(cmd+" "+h.name, outs)
	}
	t0 := time.Now()
	hostJob("prepareHostForMaintenance", func() (string, error) {
		resp, err := r.cs.Host.PrepareHostForMaintenance(r.cs.Host.NewPrepareHostForMaintenanceParams(h.id))
		if err != nil {
			return "", err
		}
		return resp.JobID, nil
	})
	prepared := time.Since(t0)
	hosts, err := r.hostsByID()
	if err != nil {
		t.Fatal(err)
	}
	if hh := hosts[h.id]; hh == nil || hh.Resourcestate != "Maintenance" {
		t.Fatalf("maintenance: host %s is %s after its prepareHostForMaintenance job, want resource state Maintenance", h.name, hostState(hh))
	}
	if left := r.vmsOn(h.id); len(left) > 0 {
		t.Fatalf("maintenance: host %s in Maintenance still holds VMs %s", h.name, shortIDs(left))
	}
	after := r.expectVMs("maintenance", before, "Running")
	for _, id := range before {
		if after[id].Hostid == h.id {
			t.Fatalf("maintenance: VM %s is still on %s", id, h.name)
		}
	}
	checkHostsMatchAPI(t, r.vmRun, "maintenance")
	if st, err := h.status(r.d.probe); err != nil || len(st.Domains) > 0 {
		t.Fatalf("maintenance: host %s domain list %+v (err %v), want empty", h.name, st, err)
	}
	newVMs := r.deployWith(ctx, "deploy during maintenance", "maint", r.offering, 6)
	placed := r.expectVMs("deploy during maintenance", newVMs, "Running")
	for _, id := range newVMs {
		if placed[id].Hostid == h.id {
			t.Fatalf("maintenance: new VM %s was placed on %s, which is in Maintenance", placed[id].Name, h.name)
		}
	}
	checkHostsMatchAPI(t, r.vmRun, "deploy during maintenance")
	hostJob("cancelHostMaintenance", func() (string, error) {
		resp, err := r.cs.Host.CancelHostMaintenance(r.cs.Host.NewCancelHostMaintenanceParams(h.id))
		if err != nil {
			return "", err
		}
		return resp.JobID, nil
	})
	if hosts, err = r.hostsByID(); err != nil {
		t.Fatal(err)
	}
	if hh := hosts[h.id]; hh == nil || hh.Resourcestate != "Enabled" || hh.State != "Up" {
		t.Fatalf("maintenance: host %s is %s after cancelHostMaintenance, want Up and Enabled", h.name, hostState(hh))
	}
	checkHostsMatchAPI(t, r.vmRun, "maintenance cancelled")
	t.Logf("e2e: maintenance of %s: its %d VMs moved in %s; 6 new VMs placed elsewhere; cancelled: Enabled", h.name, len(before), fmtDur(prepared))
}
