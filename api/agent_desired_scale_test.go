package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/hypervisor/agent"
)

// pollFixture is a cloud of many hosts, every other one with a running
// VM, for the agents' desired-state polls.
type pollFixture struct {
	s     *Server
	c     *fakeCluster
	hosts []*fsm.Host
	vms   map[string]*fsm.VM // by host ID
}

func newPollFixture(t testing.TB, hosts int) *pollFixture {
	t.Helper()
	s, c := newTestServer(t)
	f := &pollFixture{s: s, c: c, vms: map[string]*fsm.VM{}}
	st := c.State()
	m, _ := st.Meta(nil)
	admin, _ := st.User(nil, m.AdminUserID)
	const zone, pod = "aaaaaaaa-0000-4000-8000-000000000001", "aaaaaaaa-0000-4000-8000-000000000002"
	const offering, template = "bbbbbbbb-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002"
	ops := []fsm.TxnOp{
		fsm.Create(fsm.TableServiceOfferings, &fsm.ServiceOffering{ID: offering, Name: "small", DisplayText: "small", CPUNumber: 1,
			CPUSpeed: 1000, Memory: 512, StorageType: fsm.StorageTypeShared, ProvisioningType: fsm.ProvisioningThin,
			State: fsm.OfferingStateActive, Created: fixedNow}),
		fsm.Create(fsm.TableTemplates, &fsm.Template{ID: template, Name: "linux", DisplayText: "linux", Kind: fsm.ImageKindTemplate,
			TemplateType: fsm.TemplateTypeUser, Format: "QCOW2", Hypervisor: fsm.HypervisorKVM, OSTypeID: fsm.OSTypeOtherLinux64,
			URL: "http://images.example/linux.qcow2", IsPublic: true, AccountID: admin.AccountID, DomainID: admin.DomainID, Created: fixedNow}),
		fsm.Create("zones", &fsm.Zone{ID: zone, Name: "zone-a", NetworkType: "Advanced", AllocationState: "Enabled", Created: fixedNow}),
		fsm.Create(fsm.TablePods, &fsm.Pod{ID: pod, Name: "pod-a", ZoneID: zone, Gateway: "10.1.0.1", Netmask: "255.255.255.0",
			AllocationState: "Enabled", Created: fixedNow}),
	}
	// Clusters of 20 hosts, as racks are: a desired state lists its
	// host's cluster peers.
	const perCluster = 20
	clusterOf := func(i int) string { return fmt.Sprintf("aaaaaaaa-0000-4000-8000-1%011x", i/perCluster) }
	for i := 0; i < hosts; i += perCluster {
		ops = append(ops, fsm.Create(fsm.TableClusters, &fsm.Cluster{ID: clusterOf(i), Name: "kvm-" + strconv.Itoa(i/perCluster), ZoneID: zone,
			PodID: pod, HypervisorType: fsm.HypervisorKVM, ClusterType: "CloudManaged", AllocationState: "Enabled", ManagedState: "Managed",
			CPUOvercommit: 1, MemoryOvercommit: 1, Created: fixedNow}))
	}
	flush := func() {
		if _, err := c.Apply(context.Background(), fsm.TxnRequestType, fsm.TxnRequest{Ops: ops}); err != nil {
			t.Fatalf("seed: %v", err)
		}
		ops = nil
	}
	flush()
	for i := range hosts {
		ip := fmt.Sprintf("10.%d.%d.%d", 20+i>>16, (i>>8)&255, i&255)
		h := &fsm.Host{ID: fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i), Name: "host-" + strconv.Itoa(i), ZoneID: zone, PodID: pod,
			ClusterID: clusterOf(i), Type: fsm.HostTypeRouting, HypervisorType: fsm.HypervisorKVM, IPAddress: ip, URL: "http://" + ip,
			State: fsm.HostStateUp, ResourceState: fsm.ResourceStateEnabled, HAState: fsm.HAStateAvailable, Token: fmt.Sprintf("token-%d", i),
			Created: fixedNow}
		f.hosts = append(f.hosts, h)
		ops = append(ops, fsm.Create(fsm.TableHosts, h))
		if i%2 == 0 {
			id := fmt.Sprintf("%08x-1111-4000-8000-%012x", i, i)
			v := &fsm.VM{ID: id, Name: "vm-" + strconv.Itoa(i), DisplayName: "vm-" + strconv.Itoa(i), InstanceName: "i-" + strconv.Itoa(i),
				AccountID: admin.AccountID, DomainID: admin.DomainID, UserID: admin.ID, ZoneID: zone, PodID: pod, ClusterID: clusterOf(i),
				HostID: h.ID, ServiceOfferingID: offering, TemplateID: template, CPUNumber: 1, CPUSpeed: 1000, MemoryMiB: 512, State: fsm.VMRunning, Power: fsm.PowerOn, Created: fixedNow}
			f.vms[h.ID] = v
			ops = append(ops, fsm.Create(fsm.TableVMs, v))
		}
		if len(ops) >= 500 {
			flush()
		}
	}
	if len(ops) > 0 {
		flush()
	}
	return f
}

func (f *pollFixture) commit(t testing.TB, op fsm.TxnOp) {
	t.Helper()
	if _, err := f.c.Apply(context.Background(), fsm.TxnRequestType, fsm.TxnRequest{Ops: []fsm.TxnOp{op}}); err != nil {
		t.Fatalf("commit %s %s: %v", op.Verb, op.Table, err)
	}
}

// agentRequest is a request of host h's agent, signed as the agent signs.
func agentRequest(ctx context.Context, h *fsm.Host, method, pathAndQuery string, body []byte, nonce string) *http.Request {
	req := httptest.NewRequest(method, pathAndQuery, nil)
	if body != nil {
		req = httptest.NewRequest(method, pathAndQuery, bytes.NewReader(body))
	}
	req = req.WithContext(ctx)
	date := fixedNow.Format(time.RFC3339)
	req.Header.Set(agent.HeaderHost, h.ID)
	req.Header.Set(agent.HeaderDate, date)
	req.Header.Set(agent.HeaderNonce, nonce)
	req.Header.Set(agent.HeaderSignature, agent.Sign(h.Token, agent.Canonical(method, pathAndQuery, date, nonce, body)))
	return req
}

// pollAnswer is one finished desired-state poll.
type pollAnswer struct {
	host string
	code int
	d    agent.Desired
}

// TestIdleDesiredPollsWakeOnlyTheirHost: 2,000 agents' desired-state
// polls block, half of them for hosts with a VM, half for hosts without.
// A change of host A's VM answers A's poll, and only A's; a VM placed on
// host B, which had none, answers B's; a VM that starts migrating to host
// C answers C's and its source's. No other poll answers, and no other
// host's desired state is even computed again. Every idle poll costs its
// request's goroutine and no other.
func TestIdleDesiredPollsWakeOnlyTheirHost(t *testing.T) {
	const n = 2000
	f := newPollFixture(t, n)
	s, st := f.s, f.c.State()
	since := map[string]uint64{}
	for _, h := range f.hosts {
		d, err := s.desiredOf(st, nil, h.ID, "")
		if err != nil {
			t.Fatal(err)
		}
		since[h.ID] = d.Index
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	answers := make(chan pollAnswer, n)
	runtime.GC()
	goroutines := runtime.NumGoroutine()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	reads := desiredReads.Load()
	var wg sync.WaitGroup
	for _, h := range f.hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			uri := fmt.Sprintf("%s?index=%d&wait=60000", agent.PathDesired, since[h.ID])
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, agentRequest(ctx, h, http.MethodGet, uri, nil, "poll-"+h.ID))
			a := pollAnswer{host: h.ID, code: rec.Code}
			_ = json.Unmarshal(rec.Body.Bytes(), &a.d)
			answers <- a
		}()
	}
	waitFor(t, "every poll to compute its desired state once", func() bool { return desiredReads.Load() >= reads+n })
	runtime.GC()
	var idle runtime.MemStats
	runtime.ReadMemStats(&idle)
	perPoll := (int64(idle.HeapInuse+idle.StackInuse) - int64(before.HeapInuse+before.StackInuse)) / n
	extra := runtime.NumGoroutine() - goroutines - n
	t.Logf("%d idle polls: %d B per poll (heap + stacks, request and recorder included), %d goroutines beyond one per poll",
		n, perPoll, extra)
	if extra > n/100 {
		t.Errorf("%d goroutines beyond one per idle poll", extra)
	}
	if len(answers) != 0 {
		t.Fatalf("%d polls answered before any change", len(answers))
	}

	// Host A (with a VM) and then host B (without one) change.
	a, b := f.hosts[10], f.hosts[11]
	stopped := f.vms[a.ID].Copy()
	stopped.Power, stopped.State = fsm.PowerOff, fsm.VMStopped
	reads = desiredReads.Load()
	f.commit(t, fsm.Update(fsm.TableVMs, stopped))
	got := <-answers
	if got.host != a.ID || got.code != http.StatusOK || got.d.Index <= since[a.ID] || len(got.d.VMs) != 1 || got.d.VMs[0].Power != agent.WantStopped {
		t.Fatalf("first answer after A's VM stopped: host %s code %d %+v", got.host, got.code, got.d)
	}
	placed := &fsm.VM{}
	*placed = *f.vms[f.hosts[0].ID]
	placed.ID, placed.Name, placed.InstanceName, placed.HostID = "ffffffff-1111-4000-8000-000000000000", "vm-b", "i-b", b.ID
	placed.Indexes = fsm.Indexes{}
	f.commit(t, fsm.Create(fsm.TableVMs, placed))
	got = <-answers
	if got.host != b.ID || got.code != http.StatusOK || len(got.d.VMs) != 1 || got.d.VMs[0].ID != placed.ID {
		t.Fatalf("answer after a VM was placed on B: host %s code %d %+v", got.host, got.code, got.d)
	}
	src, dst := f.hosts[0], f.hosts[13]
	migrating := f.vms[src.ID].Copy()
	migrating.MigrateTo = dst.ID
	f.commit(t, fsm.Update(fsm.TableVMs, migrating))
	woke := map[string]agent.Desired{}
	for range 2 {
		got = <-answers
		if got.code != http.StatusOK {
			t.Fatalf("answer after a migration started: host %s code %d", got.host, got.code)
		}
		woke[got.host] = got.d
	}
	if d, ok := woke[dst.ID]; !ok || len(d.VMs) != 1 || !d.VMs[0].Incoming {
		t.Errorf("migration target's answer: %+v (answered: %v)", d, ok)
	}
	if d, ok := woke[src.ID]; !ok || len(d.VMs) != 1 || d.VMs[0].MigrateTo != dst.ID {
		t.Errorf("migration source's answer: %+v (answered: %v)", d, ok)
	}
	if r := desiredReads.Load() - reads; r != 4 {
		t.Errorf("three changes computed %d desired states, want 4 (A's, B's, and the migration's two hosts)", r)
	}
	if len(answers) != 0 {
		t.Fatalf("%d other polls answered", len(answers))
	}
	cancel()
	wg.Wait()
}

// BenchmarkIdleDesiredPoll reports the memory an idle desired-state poll
// holds, measured over real HTTP (the server's connection goroutine and
// buffers included, and the client's side too), as B/poll.
func BenchmarkIdleDesiredPoll(b *testing.B) {
	const n = 1000
	f := newPollFixture(b, n)
	srv := httptest.NewServer(f.s)
	defer srv.Close()
	st := f.c.State()
	for i := range b.N {
		ctx, cancel := context.WithCancel(context.Background())
		tr := &http.Transport{MaxIdleConnsPerHost: n}
		cl := &http.Client{Transport: tr}
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		reads := desiredReads.Load()
		var wg sync.WaitGroup
		for j, h := range f.hosts {
			d, _ := f.s.desiredOf(st, nil, h.ID, "")
			uri := fmt.Sprintf("%s?index=%d&wait=60000", agent.PathDesired, d.Index)
			req := agentRequest(ctx, h, http.MethodGet, uri, nil, fmt.Sprintf("bench-%d-%d", i, j))
			req.RequestURI, req.URL.Scheme, req.URL.Host, req.Host = "", "http", srv.Listener.Addr().String(), ""
			wg.Add(1)
			go func() {
				defer wg.Done()
				if resp, err := cl.Do(req); err == nil {
					resp.Body.Close()
				}
			}()
		}
		for desiredReads.Load() < reads+2*n {
			runtime.Gosched()
		}
		runtime.GC()
		var idle runtime.MemStats
		runtime.ReadMemStats(&idle)
		// Server and client sides are both in this process: an upper
		// bound of what a poll costs a management server.
		b.ReportMetric(float64(int64(idle.HeapInuse+idle.StackInuse)-int64(before.HeapInuse+before.StackInuse))/n, "B/poll(client+server)")
		cancel()
		wg.Wait()
		tr.CloseIdleConnections()
	}
}

// waitFor polls cond until it holds, failing after 30 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
