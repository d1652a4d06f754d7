package ha

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/scheduler"
)

// Default settings: lease ttl 10 s, margin 4 s, so the leader's deadline
// is 14 s after a heartbeat; grace 15 s plus up to 1.5 s of jitter.
const (
	deadline = 14 * time.Second
	graceMax = 15*time.Second + 1500*time.Millisecond
)

func upHosts(ids ...string) map[string][]hostOpt {
	m := map[string][]hostOpt{}
	for _, id := range ids {
		m[id] = nil
	}
	return m
}

func TestHeartbeatsKeepAHostUp(t *testing.T) {
	e := newEnv(t, upHosts("h-1"))
	e.establish()
	e.beat("h-1")
	e.untilHost("h-1", fsm.HostStateUp, fsm.HAStateAvailable) // the first heartbeat shows it Available
	e.run(2*time.Minute, "h-1")
	if h := e.host("h-1"); h.State != fsm.HostStateUp || len(e.events("HOST.DISCONNECT", "h-1")) != 0 {
		t.Fatalf("heartbeating host = %s/%s, disconnect events %d", h.State, h.HAState, len(e.events("HOST.DISCONNECT", "h-1")))
	}
}

func TestHeartbeatJustBeforeTheDeadlineIsNeverFenced(t *testing.T) {
	e := newEnv(t, upHosts("h-1"))
	e.establish()
	e.beat("h-1")
	for range 10 {
		e.clk.Advance(deadline - time.Millisecond)
		e.beat("h-1")
	}
	e.c.Revoke() // waits for any expiry under way
	if h := e.host("h-1"); h.State != fsm.HostStateUp || h.HAState != fsm.HAStateAvailable {
		t.Fatalf("host = %s/%s, want Up/Available", h.State, h.HAState)
	}
}

// TestLeaseExpiryFencesAndRestarts: a host that stops heartbeating is
// Disconnected at its deadline and, with the lease provider, at once Down
// and Fenced; its HA VMs get start jobs, its non-HA VMs show Stopped and
// keep their placement.
func TestLeaseExpiryFencesAndRestarts(t *testing.T) {
	e := newEnv(t, upHosts("h-1", "h-2", "h-3"))
	e.vm("ha-1", "h-1", true, 2048)
	e.vm("plain-1", "h-1", false, 1024)
	e.establish()
	e.beat("h-1", "h-2", "h-3")
	e.run(deadline-2*time.Second, "h-2", "h-3")
	if h := e.host("h-1"); h.State != fsm.HostStateUp {
		t.Fatalf("host before its deadline = %s", h.State)
	}
	e.run(2*time.Second, "h-2", "h-3")
	h := e.untilHost("h-1", fsm.HostStateDown, fsm.HAStateFenced)
	if len(e.events("HOST.DISCONNECT", "h-1")) != 1 || len(e.events("HOST.FENCE", "h-1")) != 1 {
		t.Fatalf("events: disconnect %d, fence %d", len(e.events("HOST.DISCONNECT", "h-1")), len(e.events("HOST.FENCE", "h-1")))
	}
	if ev := e.events("HOST.DISCONNECT", "h-1")[0]; ev.AccountID != fxAdminAccount {
		t.Errorf("host event account = %q, want the admin's", ev.AccountID)
	}
	e.until("the HA VM's start job", func(*fsm.Store) bool { return len(e.jobs("ha-1")) == 1 })
	j := e.jobs("ha-1")[0]
	if j.Cmd != "startVirtualMachine" || j.Params[scheduler.VMParamID] != "ha-1" || j.Params[scheduler.VMParamAvoid] != "h-1" ||
		j.InstanceType != "VirtualMachine" || j.AccountID != fxAccount || j.DomainID != fxDomain || j.Status != fsm.JobPending {
		t.Errorf("start job = %+v", j)
	}
	v := e.getVM("ha-1")
	if v.HostID != "" || v.LastHostID != "h-1" || v.State != fsm.VMStarting || v.Power != fsm.PowerOff || !v.HAPending {
		t.Errorf("HA VM = host %q last %q %s power %s pending %v", v.HostID, v.LastHostID, v.State, v.Power, v.HAPending)
	}
	if len(e.events("VM.HA.RESTART", "ha-1")) != 1 {
		t.Error("no VM.HA.RESTART event")
	}
	e.until("the non-HA VM shown Stopped", func(*fsm.Store) bool { return e.getVM("plain-1").State == fsm.VMStopped })
	p := e.getVM("plain-1")
	if p.HostID != "h-1" || p.Power != fsm.PowerOn || len(e.jobs("plain-1")) != 0 {
		t.Errorf("non-HA VM = host %q power %s jobs %d; want its placement kept and no job", p.HostID, p.Power, len(e.jobs("plain-1")))
	}
	h = e.host("h-1")
	if h.MemoryAllocated != 1024<<20 {
		t.Errorf("fenced host holds %d bytes, want only the non-HA VM's", h.MemoryAllocated)
	}
	// The host comes back: Up, and nothing else changes.
	e.beat("h-1")
	e.untilHost("h-1", fsm.HostStateUp, fsm.HAStateAvailable)
	if len(e.events("HOST.RECONNECT", "h-1")) != 1 {
		t.Error("no HOST.RECONNECT event")
	}
	if v := e.getVM("ha-1"); v.HostID != "" || len(e.jobs("ha-1")) != 1 {
		t.Errorf("the restarted VM changed when its old host returned: %+v", v)
	}
}

// TestNewLeaderRearmsWithTheGrace: after a leader change nothing is fenced
// until the grace passes, and a host that heartbeats within it never is.
func TestNewLeaderRearmsWithTheGrace(t *testing.T) {
	e := newEnv(t, upHosts("h-1", "h-2"))
	e.establish()
	e.beat("h-1", "h-2")
	e.clk.Advance(5 * time.Second)
	e.c.Revoke()
	if _, ok := e.c.Heartbeat("h-1", e.clk.Now(), e.clk.Now()); ok {
		t.Fatal("a controller that does not lead took a heartbeat")
	}
	e.clk.Advance(30 * time.Second) // an election: no heartbeats reach anyone
	e.establish()
	e.clk.Advance(deadline) // past a heartbeat's deadline, within the grace
	e.beat("h-1")
	e.run(graceMax, "h-1")
	e.untilHost("h-2", fsm.HostStateDown, fsm.HAStateFenced)
	if h := e.host("h-1"); h.State != fsm.HostStateUp || len(e.events("HOST.DISCONNECT", "h-1")) != 0 {
		t.Fatalf("host that heartbeat within the grace = %s", h.State)
	}
}

// TestGraceNeverShorterThanTheLease: a grace set below ttl + margin is
// raised to it.
func TestGraceNeverShorterThanTheLease(t *testing.T) {
	e := newEnv(t, upHosts("h-1"))
	e.setting(fsm.SettingFailoverGrace, "1")
	e.establish()
	e.clk.Advance(deadline - time.Second)
	e.c.Revoke()
	if h := e.host("h-1"); h.State != fsm.HostStateUp {
		t.Fatalf("host fenced %v into a new term, before ttl + margin", deadline-time.Second)
	}
}

// TestProviderNoneWaitsForTheOperator: a host that cannot be fenced goes
// to Alert and Ineligible and its VMs stay; once the operator declares it
// down (Down + Fenced), its HA VMs restart.
func TestProviderNoneWaitsForTheOperator(t *testing.T) {
	e := newEnv(t, map[string][]hostOpt{"h-1": {func(h *fsm.Host) { h.SelfFence = false }}, "h-2": nil})
	e.vm("ha-1", "h-1", true, 1024)
	e.establish()
	e.beat("h-1", "h-2")
	e.run(deadline+2*time.Second, "h-2")
	e.untilHost("h-1", fsm.HostStateAlert, fsm.HAStateIneligible)
	evs := e.events("HOST.ALERT", "h-1")
	if len(evs) != 1 || !strings.Contains(evs[0].Description, "declareHostAsDegraded") || !strings.Contains(evs[0].Description, "none") {
		t.Fatalf("alert events = %+v", evs)
	}
	e.run(time.Minute, "h-2")
	if v := e.getVM("ha-1"); v.HostID != "h-1" || len(e.jobs("ha-1")) != 0 {
		t.Fatalf("VM of an unfenced host moved: host %q jobs %d", v.HostID, len(e.jobs("ha-1")))
	}
	e.degrade("h-1")
	e.until("the restart after the operator's confirmation", func(*fsm.Store) bool { return len(e.jobs("ha-1")) == 1 })
}

// TestDisabledHAIsNeverFenced: a host whose HA an operator disabled goes to
// Alert, HA state Disabled.
func TestDisabledHAIsNeverFenced(t *testing.T) {
	e := newEnv(t, map[string][]hostOpt{"h-1": {func(h *fsm.Host) { h.HAProvider, h.HAEnabled = fsm.HAProviderIPMI, false }}})
	e.establish()
	e.beat("h-1")
	e.run(deadline + 2*time.Second)
	e.untilHost("h-1", fsm.HostStateAlert, fsm.HAStateDisabled)
	if n := e.ipmi.n.Load(); n != 0 {
		t.Fatalf("fenced %d times with HA disabled", n)
	}
}

func ipmiHost(h *fsm.Host) {
	h.HAProvider, h.HAEnabled, h.SelfFence = fsm.HAProviderIPMI, true, false
	h.OutOfBand = &fsm.OutOfBand{Enabled: true, Driver: "ipmitool", Address: "10.9.0.11", Username: "admin", Password: "secret"}
}

// expireIPMI lets h-1 (ipmi) miss its deadline and waits for the first
// fence call.
func expireIPMI(t *testing.T, e *env) {
	t.Helper()
	e.establish()
	e.beat("h-1")
	e.clk.Advance(deadline)
	select {
	case tg := <-e.ipmi.calls:
		if tg.HostID != "h-1" || tg.IPMI == nil || tg.IPMI.Address != "10.9.0.11" || tg.IPMI.Password != "secret" {
			t.Fatalf("fence target = %+v", tg)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the ipmi fence was never called")
	}
}

func TestIPMIFenceFailingLeavesTheHostInAlert(t *testing.T) {
	e := newEnv(t, map[string][]hostOpt{"h-1": {ipmiHost}})
	e.ipmi.fence = func(context.Context, int) error { return errBMC }
	e.vm("ha-1", "h-1", true, 1024)
	expireIPMI(t, e)
	e.untilHost("h-1", fsm.HostStateDisconnected, fsm.HAStateFencing)
	for _, pause := range []time.Duration{5 * time.Second, 10 * time.Second} {
		if !e.clk.WaitDue(e.clk.Now().Add(pause), 5*time.Second) {
			t.Fatalf("no backoff of %v after a failed fence", pause)
		}
		e.clk.Advance(pause)
		select {
		case <-e.ipmi.calls:
		case <-time.After(5 * time.Second):
			t.Fatal("no fence attempt after the backoff")
		}
	}
	e.untilHost("h-1", fsm.HostStateAlert, fsm.HAStateIneligible)
	evs := e.events("HOST.ALERT", "h-1")
	if len(evs) != 1 || !strings.Contains(evs[0].Description, errBMC.Error()) || !strings.Contains(evs[0].Description, "3 attempt") ||
		!strings.Contains(evs[0].Description, "declareHostAsDegraded") {
		t.Fatalf("alert events = %+v", evs)
	}
	if e.ipmi.n.Load() != 3 || len(e.jobs("ha-1")) != 0 {
		t.Fatalf("fence calls %d, jobs %d", e.ipmi.n.Load(), len(e.jobs("ha-1")))
	}
}

func TestIPMIFenceSucceedingFencesTheHost(t *testing.T) {
	e := newEnv(t, map[string][]hostOpt{"h-1": {ipmiHost}, "h-2": nil})
	e.ipmi.fence = func(_ context.Context, n int) error {
		if n == 1 {
			return errBMC
		}
		return nil
	}
	e.vm("ha-1", "h-1", true, 1024)
	expireIPMI(t, e)
	if !e.clk.WaitDue(e.clk.Now().Add(5*time.Second), 5*time.Second) {
		t.Fatal("no backoff after a failed fence")
	}
	e.clk.Advance(5 * time.Second)
	e.untilHost("h-1", fsm.HostStateDown, fsm.HAStateFenced)
	if evs := e.events("HOST.FENCE", "h-1"); len(evs) != 1 || !strings.Contains(evs[0].Description, "ipmi") {
		t.Fatalf("fence events = %+v", evs)
	}
	e.until("the HA VM's start job", func(*fsm.Store) bool { return len(e.jobs("ha-1")) == 1 })
}

// TestHostBackDuringFencingIsNotFenced: a heartbeat calls a fence under way
// off and the host is Up again.
func TestHostBackDuringFencingIsNotFenced(t *testing.T) {
	e := newEnv(t, map[string][]hostOpt{"h-1": {ipmiHost}})
	called := make(chan struct{})
	e.ipmi.fence = func(ctx context.Context, _ int) error {
		close(called)
		<-ctx.Done()
		return ctx.Err()
	}
	e.vm("ha-1", "h-1", true, 1024)
	e.establish()
	e.beat("h-1")
	e.clk.Advance(deadline)
	<-called
	e.untilHost("h-1", fsm.HostStateDisconnected, fsm.HAStateFencing)
	e.beat("h-1")
	e.untilHost("h-1", fsm.HostStateUp, fsm.HAStateAvailable)
	e.c.Revoke()
	if h := e.host("h-1"); h.State != fsm.HostStateUp || len(e.jobs("ha-1")) != 0 {
		t.Fatalf("host = %s, jobs %d", h.State, len(e.jobs("ha-1")))
	}
}

// TestTimerAfterLeadershipLostDoesNothing: raft lost the lead before the
// revoke hook ran; the timer that fires then does not act.
func TestTimerAfterLeadershipLostDoesNothing(t *testing.T) {
	e := newEnv(t, upHosts("h-1"))
	e.vm("ha-1", "h-1", true, 1024)
	e.establish()
	e.beat("h-1")
	e.m.leader.Store(false)
	if _, ok := e.c.Heartbeat("h-1", e.clk.Now(), e.clk.Now()); ok {
		t.Fatal("heartbeat taken by a node that lost the lead")
	}
	e.clk.Advance(time.Minute)
	e.c.Revoke() // waits for the callbacks
	if h := e.host("h-1"); h.State != fsm.HostStateUp || len(e.events("HOST.DISCONNECT", "h-1")) != 0 {
		t.Fatalf("a deposed leader acted: host %s", h.State)
	}
}

// TestRestartsAreRateLimitedAndOrdered: with ha.restart.rate 2, five HA
// VMs restart two per second, the biggest first.
func TestRestartsAreRateLimitedAndOrdered(t *testing.T) {
	e := newEnv(t, upHosts("h-1", "h-2"))
	e.setting(fsm.SettingHARestartRate, "2")
	for i, mem := range []int{512, 1024, 4096, 256, 2048} {
		e.vm("ha-"+string(rune('a'+i)), "h-1", true, mem)
	}
	e.establish()
	e.degrade("h-1")
	for _, want := range []int{2, 4, 5} {
		e.until("restart jobs", func(*fsm.Store) bool { return len(e.allJobs()) >= want })
		if n := len(e.allJobs()); n != want {
			t.Fatalf("%d restart jobs, want %d at %v", n, want, e.clk.Now().Sub(t0))
		}
		e.clk.Advance(time.Second)
	}
	var order []string
	for _, j := range e.allJobs() {
		order = append(order, j.InstanceID)
	}
	if got := strings.Join(order, ","); got != "ha-c,ha-e,ha-b,ha-a,ha-d" {
		t.Errorf("restart order = %s, want the most memory first", got)
	}
}

// TestPendingRestartRetriedWhenCapacityAppears: an HA VM whose start job
// failed (no room) stays HAPending and Stopped; it gets a new job once a
// host has room, at the next retry.
func TestPendingRestartRetriedWhenCapacityAppears(t *testing.T) {
	e := newEnv(t, map[string][]hostOpt{"h-1": nil, "h-2": {func(h *fsm.Host) { h.MemoryAllocated = fxHostMemory }}})
	e.vm("ha-1", "h-1", true, 1024)
	e.establish()
	e.beat("h-2")
	e.degrade("h-1")
	e.until("the first restart job", func(*fsm.Store) bool { return len(e.jobs("ha-1")) == 1 })
	// The job fails as startVirtualMachine's does without capacity.
	j := e.jobs("ha-1")[0].Copy()
	j.Status, j.ResultCode = fsm.JobFailed, 533
	v := e.getVM("ha-1").Copy()
	v.State, v.Power = fsm.VMStopped, fsm.PowerOff
	e.apply(fsm.Update(fsm.TableJobs, j), fsm.Update(fsm.TableVMs, v))
	e.run(12*time.Second, "h-2")
	if n := len(e.jobs("ha-1")); n != 1 {
		t.Fatalf("%d jobs while no host has room, want 1", n)
	}
	h := e.host("h-2").Copy()
	h.MemoryAllocated = 0
	e.apply(fsm.Update(fsm.TableHosts, h))
	e.run(12*time.Second, "h-2")
	e.until("the retried restart job", func(*fsm.Store) bool { return len(e.jobs("ha-1")) == 2 })
	if v := e.getVM("ha-1"); v.State != fsm.VMStarting || !v.HAPending {
		t.Errorf("retried VM = %s pending %v", v.State, v.HAPending)
	}
}

// TestLeaseFenceNeedsAPeerWithALease: hosts whose agents answer peers'
// lease questions hold on, keeping their VMs, when none of their peers has
// a lease either (a management outage, or the whole cluster cut off). So
// when every host of the cluster is lost together, none is taken as
// fenced by its lease; one lost while a peer still heartbeats is.
func TestLeaseFenceNeedsAPeerWithALease(t *testing.T) {
	withStatus := func(h *fsm.Host) { h.StatusURL = "http://" + h.IPAddress + ":8250" }
	e := newEnv(t, map[string][]hostOpt{"h-1": {withStatus}, "h-2": {withStatus}, "h-3": {withStatus}})
	e.vm("ha-1", "h-1", true, 1024)
	e.establish()
	e.beat("h-1", "h-2", "h-3")
	// h-1 is lost while h-2 and h-3 still heartbeat: trusted.
	e.run(deadline, "h-2", "h-3")
	e.untilHost("h-1", fsm.HostStateDown, fsm.HAStateFenced)
	e.until("the HA VM's start job", func(*fsm.Store) bool { return len(e.jobs("ha-1")) == 1 })
	// Now h-2 and h-3 are lost together: nobody of the cluster holds a
	// lease, so neither is taken as fenced.
	e.vm("ha-2", "h-2", true, 1024)
	e.run(2 * deadline)
	for _, id := range []string{"h-2", "h-3"} {
		h := e.untilHost(id, fsm.HostStateAlert, fsm.HAStateIneligible)
		if h.State == fsm.HostStateDown {
			t.Errorf("host %s taken as fenced with no peer holding a lease", id)
		}
	}
	if n := len(e.jobs("ha-2")); n != 0 {
		t.Fatalf("%d restart jobs for a VM of a host that may only be cut off", n)
	}
}

// TestLeaderChangeDuringRestarts: the leader is replaced while the HA VMs
// of a fenced host are being restarted (rate-limited, so some are still
// waiting). The next leader restarts the rest, and no VM gets two restart
// jobs.
func TestLeaderChangeDuringRestarts(t *testing.T) {
	e := newEnv(t, upHosts("h-1", "h-2"))
	e.setting(fsm.SettingHARestartRate, "1")
	for i := range 4 {
		e.vm("ha-"+string(rune('a'+i)), "h-1", true, 512)
	}
	e.establish()
	e.degrade("h-1")
	e.until("the first restart job", func(*fsm.Store) bool { return len(e.allJobs()) >= 1 })
	// The leader goes; a new term starts on the same state.
	e.c.Revoke()
	e.m.leader.Store(false)
	next := New(Config{Cluster: e.m, Clock: e.clk, Logger: e.c.logger, Fencers: e.fencers, FenceBackoff: 5 * time.Second, FenceAttempts: 3})
	t.Cleanup(next.Revoke)
	e.m.leader.Store(true)
	if err := next.Establish(context.Background()); err != nil {
		t.Fatal(err)
	}
	for n := len(e.allJobs()); n < 4; n = len(e.allJobs()) {
		e.clk.Advance(time.Second)
		e.until("the next restart job", func(*fsm.Store) bool { return len(e.allJobs()) > n })
	}
	seen := map[string]int{}
	for _, j := range e.allJobs() {
		seen[j.InstanceID]++
	}
	for i := range 4 {
		id := "ha-" + string(rune('a'+i))
		if seen[id] != 1 {
			t.Errorf("%s got %d restart jobs, want exactly 1", id, seen[id])
		}
		if v := e.getVM(id); v.HostID != "" || !v.HAPending {
			t.Errorf("%s = host %q pending %v, want released and pending its start", id, v.HostID, v.HAPending)
		}
	}
}

// TestStoppingNonHAVMOfALeaseFencedHostKeepsItsHost: the lease self-fence
// kills only HA guests, so a non-HA VM whose stop was pending may still
// run on the cut-off host: it must not be let go of the host (a start
// elsewhere would run it twice). An operator's confirmation that the host
// is down does let it go.
func TestStoppingNonHAVMOfALeaseFencedHostKeepsItsHost(t *testing.T) {
	e := newEnv(t, upHosts("h-1", "h-2"))
	e.vm("plain-1", "h-1", false, 1024)
	v := e.getVM("plain-1").Copy()
	v.Power, v.State = fsm.PowerOff, fsm.VMStopping // a stop job waits for the agent
	e.apply(fsm.Update(fsm.TableVMs, v))
	e.establish()
	e.beat("h-1", "h-2")
	e.run(deadline, "h-2")
	e.untilHost("h-1", fsm.HostStateDown, fsm.HAStateFenced)
	e.run(4*time.Second, "h-2") // the restarter has looked at the host
	if got := e.getVM("plain-1"); got.HostID != "h-1" {
		t.Fatalf("stopping non-HA VM let go of a lease-fenced host: host %q state %s", got.HostID, got.State)
	}
	if h := e.host("h-1"); h.MemoryAllocated != 1024<<20 {
		t.Fatalf("its capacity was given back: %d bytes allocated", h.MemoryAllocated)
	}
	// The operator confirms the host is off: now it is let go.
	h := e.host("h-1").Copy()
	h.ResourceState = fsm.ResourceStateDegraded
	e.apply(fsm.Update(fsm.TableHosts, h))
	e.until("the VM let go after the confirmation", func(*fsm.Store) bool { return e.getVM("plain-1").HostID == "" })
	if got := e.getVM("plain-1"); got.State != fsm.VMStopped || got.LastHostID != "h-1" {
		t.Fatalf("after confirmation: %+v", got)
	}
}
