package ha

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/hypervisor/fence"
	"github.com/stratus-cloud/stratus/scheduler"
)

// memCluster applies commands straight to an FSM, as scheduler's tests do,
// and says it leads while leader is set.
type memCluster struct {
	mu     sync.Mutex
	f      *fsm.FSM
	index  uint64
	leader atomic.Bool
}

func newMemCluster() *memCluster {
	m := &memCluster{f: fsm.New(nil)}
	m.leader.Store(true)
	return m
}

func (m *memCluster) State() *fsm.Store { return m.f.State() }
func (m *memCluster) IsLeader() bool    { return m.leader.Load() }

func (m *memCluster) Apply(_ context.Context, t fsm.MessageType, body any) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.index++
	return m.index, m.f.ApplyCommand(m.index, t, body)
}

// Fixture: one zone, pod and cluster; hosts of 4 x 2000 MHz and 8 GiB.
const (
	fxZone, fxPod, fxCluster = "z-1", "p-1", "c-1"
	fxDomain, fxAccount      = "d-root", "a-eng"
	fxAdminAccount, fxUser   = "a-admin", "u-eng"
	fxOffering               = "so-small"
	fxHostMemory             = int64(8) << 30
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeFencer is a Fencer whose answers a test scripts.
type fakeFencer struct {
	name  string
	calls chan fence.Target
	// fence answers each call; nil: succeed.
	fence func(ctx context.Context, n int) error
	n     atomic.Int32
}

func (f *fakeFencer) Name() string { return f.name }
func (f *fakeFencer) Fence(ctx context.Context, t fence.Target) error {
	n := int(f.n.Add(1))
	select {
	case f.calls <- t:
	default:
	}
	if f.fence == nil {
		return nil
	}
	return f.fence(ctx, n)
}

type env struct {
	t    *testing.T
	m    *memCluster
	clk  *FakeClock
	c    *Controller
	ipmi *fakeFencer
}

// hostOpt adjusts a fixture host.
type hostOpt func(*fsm.Host)

func newEnv(t *testing.T, hosts map[string][]hostOpt) *env {
	t.Helper()
	e := &env{t: t, m: newMemCluster(), clk: NewFakeClock(t0),
		ipmi: &fakeFencer{name: fsm.HAProviderIPMI, calls: make(chan fence.Target, 16)}}
	boot := &fsm.BootstrapRequest{
		Meta:    fsm.Meta{ClusterID: "c0ffee00-0000-4000-8000-000000000000", Created: t0, AdminUserID: "u-admin"},
		Domain:  fsm.Domain{ID: fxDomain, Name: "ROOT", Path: "ROOT", Created: t0},
		Account: fsm.Account{ID: fxAdminAccount, Name: "admin", DomainID: fxDomain, Type: fsm.AccountTypeAdmin, RoleType: "Admin", State: fsm.StateEnabled, Created: t0},
		User:    fsm.User{ID: "u-admin", AccountID: fxAdminAccount, DomainID: fxDomain, Username: "admin", State: fsm.StateEnabled, Created: t0},
	}
	if _, err := e.m.Apply(context.Background(), fsm.BootstrapRequestType, boot); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	ops := []fsm.TxnOp{
		fsm.Create("zones", &fsm.Zone{ID: fxZone, Name: "zone-one", NetworkType: "Advanced", AllocationState: fsm.AllocationEnabled,
			GuestCIDR: "10.1.0.0/24", ZoneToken: "tok", Created: t0}),
		fsm.Create(fsm.TableAccounts, &fsm.Account{ID: fxAccount, Name: "eng", DomainID: fxDomain, Type: fsm.AccountTypeUser, RoleType: "User",
			State: fsm.StateEnabled, Created: t0}),
		fsm.Create(fsm.TablePods, &fsm.Pod{ID: fxPod, Name: "rack1", ZoneID: fxZone, Gateway: "10.0.0.1", Netmask: "255.255.255.0",
			AllocationState: fsm.AllocationEnabled, Created: t0}),
		fsm.Create(fsm.TableClusters, &fsm.Cluster{ID: fxCluster, Name: "kvm1", ZoneID: fxZone, PodID: fxPod, HypervisorType: fsm.HypervisorKVM,
			ClusterType: fsm.ClusterTypeCloudManaged, AllocationState: fsm.AllocationEnabled, ManagedState: fsm.ManagedStateManaged,
			CPUOvercommit: 2, MemoryOvercommit: 1, Created: t0}),
		fsm.Create(fsm.TableServiceOfferings, &fsm.ServiceOffering{ID: fxOffering, Name: "small", DisplayText: "small", CPUNumber: 1,
			CPUSpeed: 1000, Memory: 1024, StorageType: fsm.StorageTypeShared, ProvisioningType: fsm.ProvisioningThin,
			State: fsm.OfferingStateActive, Created: t0}),
	}
	i := 0
	for _, id := range sortedKeys(hosts) {
		i++
		ip := fmt.Sprintf("10.0.0.%d", 10+i)
		h := &fsm.Host{ID: id, Name: "kvm-" + id, ZoneID: fxZone, PodID: fxPod, ClusterID: fxCluster,
			Type: fsm.HostTypeRouting, HypervisorType: fsm.HypervisorKVM, IPAddress: ip, URL: "http://" + ip, State: fsm.HostStateUp,
			ResourceState: fsm.ResourceStateEnabled, Token: "tok-" + id, CPUNumber: 4, CPUSockets: 1, CPUSpeed: 2000,
			MemoryTotal: fxHostMemory, HAState: fsm.HAStateDisabled, SelfFence: true, Created: t0}
		for _, o := range hosts[id] {
			o(h)
		}
		ops = append(ops, fsm.Create(fsm.TableHosts, h))
	}
	e.apply(ops...)
	e.c = New(Config{Cluster: e.m, Clock: e.clk, Logger: hclog.New(&hclog.LoggerOptions{Output: testLog{t}, Level: hclog.Debug}),
		Fencers: e.fencers, FenceBackoff: 5 * time.Second, FenceAttempts: 3})
	t.Cleanup(e.c.Revoke)
	return e
}

func sortedKeys(m map[string][]hostOpt) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	for i := range ks {
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return ks
}

func (e *env) fencers(provider string) (fence.Fencer, error) {
	switch provider {
	case fsm.HAProviderIPMI:
		return e.ipmi, nil
	case fsm.HAProviderCommand:
		return nil, fmt.Errorf("no -fence-command on this server: %w", fence.ErrNotConfigured)
	}
	return fence.Lookup("", nil)(provider)
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (e *env) apply(ops ...fsm.TxnOp) {
	e.t.Helper()
	if _, err := e.m.Apply(context.Background(), fsm.TxnRequestType, fsm.TxnRequest{Ops: ops}); err != nil {
		e.t.Fatalf("apply: %v", err)
	}
}

func (e *env) setting(name, value string) {
	e.t.Helper()
	if _, err := e.m.Apply(context.Background(), fsm.ConfigSetRequestType, fsm.ConfigSetRequest{Setting: fsm.Setting{Name: name, Value: value, Updated: t0}}); err != nil {
		e.t.Fatalf("set %s: %v", name, err)
	}
}

func (e *env) establish() {
	e.t.Helper()
	if err := e.c.Establish(context.Background()); err != nil {
		e.t.Fatalf("establish: %v", err)
	}
}

// beat sends a heartbeat of each host, sent and received now.
func (e *env) beat(hosts ...string) {
	e.t.Helper()
	for _, h := range hosts {
		if _, ok := e.c.Heartbeat(h, e.clk.Now(), e.clk.Now()); !ok {
			e.t.Fatalf("heartbeat of %s refused on the leader", h)
		}
	}
}

// run advances the clock by total in steps of 2 s (the heartbeat
// interval), with heartbeats of alive after each step.
func (e *env) run(total time.Duration, alive ...string) {
	e.t.Helper()
	for step := 2 * time.Second; total > 0; total -= step {
		d := min(step, total)
		e.clk.Advance(d)
		e.beat(alive...)
	}
}

// vm adds a running VM on host, holding its capacity there.
func (e *env) vm(id, host string, ha bool, memMiB int) {
	e.t.Helper()
	st := e.m.State()
	h, _ := fsm.Get[fsm.Host](st, nil, fsm.TableHosts, host)
	v := &fsm.VM{ID: id, Name: id, DisplayName: id, InstanceName: "i-" + id, AccountID: fxAccount, DomainID: fxDomain, UserID: fxUser,
		ZoneID: fxZone, PodID: fxPod, ClusterID: fxCluster, HostID: host, ServiceOfferingID: fxOffering, CPUNumber: 1, CPUSpeed: 1000,
		MemoryMiB: memMiB, State: fsm.VMRunning, Power: fsm.PowerOn, ObservedHostID: host, ObservedPower: fsm.PowerOn,
		HAEnabled: ha, IPAddress: fmt.Sprintf("10.1.0.%d", 10+len(e.vms())), Created: t0}
	e.apply(scheduler.ReserveHost(h, v, 1), fsm.Create(fsm.TableVMs, v))
}

func (e *env) vms() []*fsm.VM {
	vs, _ := fsm.List[fsm.VM](e.m.State(), nil, fsm.TableVMs, "id")
	return vs
}

func (e *env) host(id string) *fsm.Host {
	h, _ := fsm.Get[fsm.Host](e.m.State(), nil, fsm.TableHosts, id)
	return h
}

func (e *env) getVM(id string) *fsm.VM {
	v, _ := fsm.Get[fsm.VM](e.m.State(), nil, fsm.TableVMs, id)
	return v
}

// until waits (on state watches, up to 5 s of real time) for cond.
func (e *env) until(what string, cond func(st *fsm.Store) bool) {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := e.m.State()
		changed := anyChange(st, fsm.TableHosts, fsm.TableVMs, fsm.TableJobs, fsm.TableEvents, "settings")
		if cond(st) {
			return
		}
		select {
		case <-changed:
		case <-time.After(time.Until(deadline)):
			e.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func anyChange(st *fsm.Store, tables ...string) <-chan struct{} {
	out := make(chan struct{})
	var once sync.Once
	for _, tb := range tables {
		ch, err := st.Watch(tb)
		if err != nil {
			continue
		}
		go func() {
			select {
			case <-ch:
				once.Do(func() { close(out) })
			case <-time.After(6 * time.Second):
			}
		}()
	}
	return out
}

func (e *env) untilHost(id, state, haState string) *fsm.Host {
	e.t.Helper()
	e.until(fmt.Sprintf("host %s %s/%s", id, state, haState), func(st *fsm.Store) bool {
		h, _ := fsm.Get[fsm.Host](st, nil, fsm.TableHosts, id)
		return h != nil && h.State == state && h.HAState == haState
	})
	return e.host(id)
}

// jobs returns the start jobs of a VM.
func (e *env) jobs(vmID string) []*fsm.AsyncJob {
	js, _ := fsm.List[fsm.AsyncJob](e.m.State(), nil, fsm.TableJobs, "id")
	var out []*fsm.AsyncJob
	for _, j := range js {
		if j.InstanceID == vmID {
			out = append(out, j)
		}
	}
	return out
}

func (e *env) allJobs() []*fsm.AsyncJob {
	js, _ := fsm.List[fsm.AsyncJob](e.m.State(), nil, fsm.TableJobs, "create")
	return js
}

// events returns the events of a type about a resource.
func (e *env) events(typ, resource string) []*fsm.Event {
	es, _ := fsm.List[fsm.Event](e.m.State(), nil, fsm.TableEvents, "id")
	var out []*fsm.Event
	for _, ev := range es {
		if ev.Type == typ && ev.ResourceID == resource {
			out = append(out, ev)
		}
	}
	return out
}

// degrade commits what the operator's declareHostAsDegraded commits.
func (e *env) degrade(id string) {
	e.t.Helper()
	h := e.host(id).Copy()
	h.State, h.HAState = fsm.HostStateDown, fsm.HAStateFenced
	e.apply(fsm.Update(fsm.TableHosts, h))
}

var errBMC = errors.New("bmc 10.9.0.11 does not answer")
