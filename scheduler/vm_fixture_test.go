package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"

	"github.com/stratus-cloud/stratus/fsm"
)

// The VM job tests run the job runner on a memCluster holding one zone with
// a pod, a KVM cluster, a few hosts and a cluster-scope pool, an account,
// an offering and a template. fakeAgents plays the hosts' agents.

// Fixture figures. A host has 4 x 2000 MHz (16000 MHz under the cluster's
// CPU overcommit of 2) and 8 GiB of memory; a VM of the offering takes
// 2 x 1000 MHz and 2 GiB, so memory binds: four VMs fill a host.
const (
	fxZone, fxZoneName = "z-1", "zone-one"
	fxGuestCIDR        = "10.1.0.0/24"
	fxPod, fxCluster   = "p-1", "c-1"
	fxPool             = "sp-1"
	fxDomain           = "d-root"
	fxAccount          = "a-eng"
	fxUser             = "u-eng"
	fxOffering         = "so-small"
	fxTemplate         = "t-ubuntu"

	fxHostCPUs      = 4
	fxHostMHz       = 2000
	fxHostMemory    = int64(8) << 30
	fxCPUOvercommit = 2.0

	fxVMCPUs      = 2
	fxVMMHz       = 1000
	fxVMMemoryMiB = 2048
	fxVMCPU       = int64(fxVMCPUs * fxVMMHz)  // MHz a VM reserves
	fxVMMemory    = int64(fxVMMemoryMiB) << 20 // bytes a VM reserves
	fxVMsPerHost  = 4                          // by memory

	fxRootSize     = int64(10) << 30
	fxPoolCapacity = int64(500) << 30
)

// fxHostID names the fixture's i-th host (from 1).
func fxHostID(i int) string { return fmt.Sprintf("h-%d", i) }

// vmEnv is one test's cloud: the cluster, its agents and its hosts.
type vmEnv struct {
	t      testing.TB
	m      *memCluster
	agents *fakeAgents
	hosts  []string
}

// newVMEnv commits the fixture with n hosts and starts their agents. The
// job runner is started separately (startRunner), so a test can replace it.
func newVMEnv(t testing.TB, n int) *vmEnv {
	t.Helper()
	e := &vmEnv{t: t, m: newMemCluster()}
	now := time.Now().UTC()
	boot := &fsm.BootstrapRequest{
		Meta:    fsm.Meta{ClusterID: uuid.NewString(), Created: now, AdminUserID: "u-admin"},
		Domain:  fsm.Domain{ID: fxDomain, Name: "ROOT", Path: "ROOT", Created: now},
		Account: fsm.Account{ID: "a-admin", Name: "admin", DomainID: fxDomain, Type: fsm.AccountTypeAdmin, RoleType: "Admin", State: fsm.StateEnabled, Created: now},
		User:    fsm.User{ID: "u-admin", AccountID: "a-admin", DomainID: fxDomain, Username: "admin", State: fsm.StateEnabled, Created: now},
	}
	if _, err := e.m.Apply(context.Background(), fsm.BootstrapRequestType, boot); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	ops := []fsm.TxnOp{
		fsm.Create("zones", &fsm.Zone{ID: fxZone, Name: fxZoneName, NetworkType: "Advanced", AllocationState: fsm.AllocationEnabled,
			GuestCIDR: fxGuestCIDR, ZoneToken: "tok-" + fxZone, Created: now}),
		fsm.Create(fsm.TableAccounts, &fsm.Account{ID: fxAccount, Name: "eng", DomainID: fxDomain, Type: fsm.AccountTypeUser, RoleType: "User",
			State: fsm.StateEnabled, Created: now}),
		fsm.Create(fsm.TablePods, &fsm.Pod{ID: fxPod, Name: "rack1", ZoneID: fxZone, Gateway: "10.0.0.1", Netmask: "255.255.255.0",
			AllocationState: fsm.AllocationEnabled, Created: now}),
		fsm.Create(fsm.TableClusters, &fsm.Cluster{ID: fxCluster, Name: "kvm1", ZoneID: fxZone, PodID: fxPod, HypervisorType: fsm.HypervisorKVM,
			ClusterType: fsm.ClusterTypeCloudManaged, AllocationState: fsm.AllocationEnabled, ManagedState: fsm.ManagedStateManaged,
			CPUOvercommit: fxCPUOvercommit, MemoryOvercommit: 1, Created: now}),
	}
	for i := 1; i <= n; i++ {
		id := fxHostID(i)
		e.hosts = append(e.hosts, id)
		ip := fmt.Sprintf("10.0.0.%d", 10+i)
		ops = append(ops, fsm.Create(fsm.TableHosts, &fsm.Host{ID: id, Name: "kvm-" + id, ZoneID: fxZone, PodID: fxPod, ClusterID: fxCluster,
			Type: fsm.HostTypeRouting, HypervisorType: fsm.HypervisorKVM, IPAddress: ip, URL: "http://" + ip, State: fsm.HostStateUp,
			ResourceState: fsm.ResourceStateEnabled, Token: "tok-" + id, CPUNumber: fxHostCPUs, CPUSockets: 1, CPUSpeed: fxHostMHz,
			MemoryTotal: fxHostMemory, HAState: fsm.HAStateDisabled, Created: now}))
	}
	ops = append(ops,
		fsm.Create(fsm.TableStoragePools, &fsm.StoragePool{ID: fxPool, Name: "pri1", ZoneID: fxZone, PodID: fxPod, ClusterID: fxCluster,
			Scope: fsm.ScopeCluster, Type: fsm.PoolTypeNFS, URL: "nfs://10.0.0.9/export/pri1", Host: "10.0.0.9", Path: "/export/pri1",
			Hypervisor: fsm.HypervisorKVM, Provider: "DefaultPrimary", CapacityBytes: fxPoolCapacity, State: fsm.PoolStateUp, Created: now}),
		fsm.Create(fsm.TableServiceOfferings, &fsm.ServiceOffering{ID: fxOffering, Name: "small", DisplayText: "small", CPUNumber: fxVMCPUs,
			CPUSpeed: fxVMMHz, Memory: fxVMMemoryMiB, StorageType: fsm.StorageTypeShared, ProvisioningType: fsm.ProvisioningThin,
			State: fsm.OfferingStateActive, Created: now}),
		fsm.Create(fsm.TableTemplates, &fsm.Template{ID: fxTemplate, Name: "ubuntu", DisplayText: "ubuntu", Kind: fsm.ImageKindTemplate,
			TemplateType: fsm.TemplateTypeUser, Format: "QCOW2", Hypervisor: fsm.HypervisorKVM, OSTypeID: fsm.OSTypeOtherLinux64,
			URL: "http://images.example/ubuntu.qcow2", IsPublic: true, AccountID: fxAccount, DomainID: fxDomain, Created: now}),
		fsm.Create(fsm.TableTemplateZones, &fsm.TemplateZone{ID: "tz-1", TemplateID: fxTemplate, ZoneID: fxZone,
			DownloadState: fsm.DownloadDownloaded, IsReady: true, Size: 4 << 30, Created: now}),
	)
	e.apply(ops...)
	e.agents = startFakeAgents(t, e.m, e.hosts...)
	return e
}

// startRunner starts a job runner with the VM jobs; it is revoked when
// the test ends, if the test has not revoked it already.
func (e *vmEnv) startRunner() *Runner {
	r := NewRunner(e.m, hclog.New(&hclog.LoggerOptions{Output: vmTestLog{e.t}, Level: hclog.Warn}))
	RegisterVMJobs(r)
	_ = r.Establish(context.Background())
	e.t.Cleanup(r.Revoke)
	return r
}

// vmTestLog routes the runner's log to the test's.
type vmTestLog struct{ t testing.TB }

func (l vmTestLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (e *vmEnv) apply(ops ...fsm.TxnOp) {
	e.t.Helper()
	if _, err := e.m.Apply(context.Background(), fsm.TxnRequestType, fsm.TxnRequest{Ops: ops}); err != nil {
		e.t.Fatalf("apply: %v", err)
	}
}

// newJob returns a pending VM job, as the API's submitJob makes it.
func newJob(cmd, vmID string, params map[string]string) *fsm.AsyncJob {
	p := map[string]string{VMParamID: vmID}
	for k, v := range params {
		p[k] = v
	}
	return &fsm.AsyncJob{ID: uuid.NewString(), Cmd: cmd, AccountID: fxAccount, DomainID: fxDomain, UserID: fxUser, Params: p,
		Status: fsm.JobPending, InstanceType: "VirtualMachine", InstanceID: vmID, Created: time.Now().UTC()}
}

// deployOps returns what deployVirtualMachine commits for a new VM named
// name: the VM (Starting, no host, no address), its ROOT volume
// (Allocated, on no pool) and the job.
func deployOps(name string) (vmID, jobID string, ops []fsm.TxnOp) {
	id := uuid.NewString()
	now := time.Now().UTC()
	vm := &fsm.VM{ID: id, Name: name, DisplayName: name, InstanceName: "i-" + id, AccountID: fxAccount, DomainID: fxDomain, UserID: fxUser,
		ZoneID: fxZone, ServiceOfferingID: fxOffering, TemplateID: fxTemplate, OSTypeID: fsm.OSTypeOtherLinux64,
		CPUNumber: fxVMCPUs, CPUSpeed: fxVMMHz, MemoryMiB: fxVMMemoryMiB, State: fsm.VMStarting, Power: fsm.PowerOff, Created: now,
		NICs: []fsm.NIC{{ID: uuid.NewString(), MAC: "02:00:00:00:00:01", IsDefault: true}}}
	root := &fsm.Volume{ID: uuid.NewString(), Name: "ROOT-" + id[:8], AccountID: fxAccount, DomainID: fxDomain, ZoneID: fxZone,
		Type: fsm.VolumeRoot, VMID: id, TemplateID: fxTemplate, SizeBytes: fxRootSize, Format: "QCOW2", State: fsm.VolumeAllocated,
		Created: now, Attached: now}
	j := newJob("deployVirtualMachine", id, map[string]string{VMParamDeploy: "true", VMParamStartVM: "true"})
	return id, j.ID, []fsm.TxnOp{fsm.Create(fsm.TableVMs, vm), fsm.Create(fsm.TableVolumes, root), fsm.Create(fsm.TableJobs, j)}
}

// deploy submits deployVirtualMachine for a new VM and returns the VM's
// and the job's IDs.
func (e *vmEnv) deploy(name string) (vmID, jobID string) {
	e.t.Helper()
	vmID, jobID, ops := deployOps(name)
	e.apply(ops...)
	return vmID, jobID
}

// submit commits a VM job and returns its ID.
func (e *vmEnv) submit(cmd, vmID string, params map[string]string) string {
	e.t.Helper()
	j := newJob(cmd, vmID, params)
	e.apply(fsm.Create(fsm.TableJobs, j))
	return j.ID
}

// run submits a VM job and waits for its end.
func (e *vmEnv) run(cmd, vmID string, params map[string]string) *fsm.AsyncJob {
	e.t.Helper()
	return e.wait(e.submit(cmd, vmID, params))
}

// wait waits for a job's end.
func (e *vmEnv) wait(jobID string) *fsm.AsyncJob {
	e.t.Helper()
	return waitJob(e.t, e.m, jobID)
}

// running deploys a VM, waits for it to be Running and returns it.
func (e *vmEnv) running(name string) *fsm.VM {
	e.t.Helper()
	id, jobID := e.deploy(name)
	vmJobOK(e.t, e.wait(jobID))
	v := e.vm(id)
	if v == nil || v.State != fsm.VMRunning || v.HostID == "" {
		e.t.Fatalf("deployed VM %s = %+v, want Running on a host", name, v)
	}
	return v
}

func (e *vmEnv) vm(id string) *fsm.VM {
	e.t.Helper()
	v, err := fsm.Get[fsm.VM](e.m.State(), nil, fsm.TableVMs, id)
	if err != nil {
		e.t.Fatalf("get VM %s: %v", id, err)
	}
	return v
}

func (e *vmEnv) host(id string) *fsm.Host {
	e.t.Helper()
	h, err := fsm.Get[fsm.Host](e.m.State(), nil, fsm.TableHosts, id)
	if err != nil || h == nil {
		e.t.Fatalf("get host %s: %v (%v)", id, h, err)
	}
	return h
}

func (e *vmEnv) pool() *fsm.StoragePool {
	e.t.Helper()
	p, err := fsm.Get[fsm.StoragePool](e.m.State(), nil, fsm.TableStoragePools, fxPool)
	if err != nil || p == nil {
		e.t.Fatalf("get pool: %v (%v)", p, err)
	}
	return p
}

// root returns the VM's ROOT volume, or nil.
func (e *vmEnv) root(vmID string) *fsm.Volume {
	e.t.Helper()
	vols, err := fsm.List[fsm.Volume](e.m.State(), nil, fsm.TableVolumes, "vm", vmID)
	if err != nil {
		e.t.Fatalf("volumes of %s: %v", vmID, err)
	}
	for _, v := range vols {
		if v.Type == fsm.VolumeRoot {
			return v
		}
	}
	return nil
}

// wantHost checks what host id has allocated, in VMs of the fixture's
// size.
func (e *vmEnv) wantHost(id string, vms int) {
	e.t.Helper()
	h := e.host(id)
	if h.CPUAllocated != int64(vms)*fxVMCPU || h.MemoryAllocated != int64(vms)*fxVMMemory {
		e.t.Errorf("host %s allocates %d MHz and %d bytes; want %d VMs' worth: %d MHz and %d bytes",
			id, h.CPUAllocated, h.MemoryAllocated, vms, int64(vms)*fxVMCPU, int64(vms)*fxVMMemory)
	}
}

// wantAccounting checks that every host allocates exactly the VMs that
// hold it and the pool exactly its volumes, within what overcommit allows.
func (e *vmEnv) wantAccounting() {
	e.t.Helper()
	st := e.m.State()
	vms, _ := fsm.List[fsm.VM](st, nil, fsm.TableVMs, "id")
	for _, hid := range e.hosts {
		var cpu, mem int64
		for _, v := range vms {
			if v.HostID == hid {
				cpu, mem = cpu+vmCPU(v), mem+vmMemory(v)
			}
			if v.MigrateTo == hid {
				cpu, mem = cpu+vmCPU(v), mem+vmMemory(v)
			}
		}
		h := e.host(hid)
		if h.CPUAllocated != cpu || h.MemoryAllocated != mem {
			e.t.Errorf("host %s allocates %d MHz, %d bytes; its VMs take %d MHz, %d bytes", hid, h.CPUAllocated, h.MemoryAllocated, cpu, mem)
		}
		if limit := int64(float64(int64(h.CPUNumber)*h.CPUSpeed) * fxCPUOvercommit); h.CPUAllocated > limit {
			e.t.Errorf("host %s is overbooked: %d MHz allocated of %d", hid, h.CPUAllocated, limit)
		}
		if h.MemoryAllocated > h.MemoryTotal {
			e.t.Errorf("host %s is overbooked: %d bytes of memory allocated of %d", hid, h.MemoryAllocated, h.MemoryTotal)
		}
	}
	vols, _ := fsm.List[fsm.Volume](st, nil, fsm.TableVolumes, "id")
	var bytes int64
	for _, v := range vols {
		if v.PoolID != fxPool {
			continue
		}
		bytes += v.SizeBytes
	}
	if p := e.pool(); p.AllocatedBytes != bytes {
		e.t.Errorf("pool allocates %d bytes; its volumes take %d", p.AllocatedBytes, bytes)
	}
}

// eventually waits until cond holds, looking again whenever a VM or job
// changes, for 10 s at most.
func (e *vmEnv) eventually(what string, cond func(st *fsm.Store) bool) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := e.m.State()
		vms, _ := st.Watch(fsm.TableVMs)
		jobs, _ := st.Watch(fsm.TableJobs)
		if cond(st) {
			return
		}
		select {
		case <-vms:
		case <-jobs:
		case <-time.After(time.Until(deadline)):
			e.t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// jobAt waits until a job has committed step.
func (e *vmEnv) jobAt(jobID, step string) {
	e.t.Helper()
	e.eventually("job reaches step "+step, func(st *fsm.Store) bool {
		j, _ := fsm.Get[fsm.AsyncJob](st, nil, fsm.TableJobs, jobID)
		if j != nil && j.Status != fsm.JobPending {
			e.t.Fatalf("job ended before step %s: %+v (%s)", step, j, j.Result)
		}
		return j != nil && j.Step == step
	})
}

// stillPending checks that a job does not end within d.
func (e *vmEnv) stillPending(jobID string, d time.Duration) {
	e.t.Helper()
	deadline := time.After(d)
	for {
		st := e.m.State()
		jobs, _ := st.Watch(fsm.TableJobs)
		j, _ := fsm.Get[fsm.AsyncJob](st, nil, fsm.TableJobs, jobID)
		if j == nil || j.Status != fsm.JobPending {
			e.t.Fatalf("job ended though nothing could let it: %+v", j)
		}
		select {
		case <-jobs:
		case <-deadline:
			return
		}
	}
}

func vmJobOK(t testing.TB, j *fsm.AsyncJob) {
	t.Helper()
	if j.Status != fsm.JobSucceeded || j.ResultCode != 0 {
		t.Fatalf("%s job = status %d code %d result %s; want success", j.Cmd, j.Status, j.ResultCode, j.Result)
	}
}

// vmJobFailed checks a job failed with code and a text containing each of
// want, and returns the text.
func vmJobFailed(t *testing.T, j *fsm.AsyncJob, code int, want ...string) string {
	t.Helper()
	var res JobError
	if err := json.Unmarshal(j.Result, &res); err != nil {
		t.Fatalf("%s job result %s: %v", j.Cmd, j.Result, err)
	}
	if j.Status != fsm.JobFailed || j.ResultCode != code || res.Code != code {
		t.Fatalf("%s job = status %d code %d result %s; want failure %d", j.Cmd, j.Status, j.ResultCode, j.Result, code)
	}
	for _, w := range want {
		if !strings.Contains(res.Text, w) {
			t.Errorf("%s job error %q does not say %q", j.Cmd, res.Text, w)
		}
	}
	return res.Text
}

// fakeAgents plays the agents of some hosts: for every VM whose HostID is
// one of them it reports, as api/agent_report.go's vmReportOps commits a
// real agent's report, that the VM is in the desired power state on that
// host at the desired reboot generation, and that the host let go of a
// migrating VM. Each report is a compare-and-set update of the VM row,
// read again and retried when stale.
type fakeAgents struct {
	t     testing.TB
	m     *memCluster
	hosts map[string]bool

	// mu is held while reporting, so once hold returns no report is in
	// flight.
	mu        sync.Mutex
	held      bool
	failing   map[string]string // host ID -> the error its agent reports instead of starting
	errorReps map[string]int    // host ID -> failed starts reported

	kick   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

func startFakeAgents(t testing.TB, m *memCluster, hosts ...string) *fakeAgents {
	ctx, cancel := context.WithCancel(context.Background())
	a := &fakeAgents{t: t, m: m, hosts: map[string]bool{}, failing: map[string]string{}, errorReps: map[string]int{},
		kick: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	for _, h := range hosts {
		a.hosts[h] = true
	}
	go a.loop(ctx)
	t.Cleanup(func() {
		a.cancel()
		<-a.done
	})
	return a
}

// hold stops the agents reporting until release.
func (a *fakeAgents) hold() {
	a.mu.Lock()
	a.held = true
	a.mu.Unlock()
}

func (a *fakeAgents) release() {
	a.mu.Lock()
	a.held = false
	a.mu.Unlock()
	a.poke()
}

// failOn makes host's agent report msg for every VM it is asked to start;
// VMs it runs already keep running.
func (a *fakeAgents) failOn(host, msg string) {
	a.mu.Lock()
	a.failing[host] = msg
	a.mu.Unlock()
	a.poke()
}

// failedStarts returns how many failed starts host's agent reported.
func (a *fakeAgents) failedStarts(host string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.errorReps[host]
}

func (a *fakeAgents) poke() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

func (a *fakeAgents) loop(ctx context.Context) {
	defer close(a.done)
	for {
		changed, err := a.m.State().Watch(fsm.TableVMs)
		if err != nil {
			a.t.Errorf("fake agents: watch VMs: %v", err)
			return
		}
		a.reportAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-a.kick:
		}
	}
}

func (a *fakeAgents) reportAll(ctx context.Context) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.held {
		return
	}
	vms, err := fsm.List[fsm.VM](a.m.State(), nil, fsm.TableVMs, "id")
	if err != nil {
		a.t.Errorf("fake agents: list VMs: %v", err)
		return
	}
	for _, v := range vms {
		if a.hosts[v.HostID] {
			a.report(ctx, v.ID)
		}
	}
}

// report commits one VM's report, reading it again while the update is
// stale.
func (a *fakeAgents) report(ctx context.Context, id string) {
	for attempt := 1; ctx.Err() == nil; attempt++ {
		v, err := fsm.Get[fsm.VM](a.m.State(), nil, fsm.TableVMs, id)
		if err != nil || v == nil || !a.hosts[v.HostID] {
			return
		}
		nv := a.observe(v)
		if nv == nil {
			return
		}
		_, err = a.m.Apply(ctx, fsm.TxnRequestType, fsm.TxnRequest{Ops: []fsm.TxnOp{fsm.Update(fsm.TableVMs, nv)}})
		switch {
		case err == nil:
			if nv.ObservedError != "" && nv.ObservedError != v.ObservedError {
				a.errorReps[v.HostID]++
			}
			return
		case errors.Is(err, fsm.ErrNotFound):
			return // expunged meanwhile
		case !errors.Is(err, fsm.ErrStale) || attempt >= 100:
			a.t.Errorf("fake agent of %s: report on %s: %v", v.HostID, v.Name, err)
			return
		}
	}
}

// observe returns the VM row with what its host's agent sees, or nil when
// that is what the row already says.
func (a *fakeAgents) observe(v *fsm.VM) *fsm.VM {
	nv := v.Copy()
	nv.ObservedHostID, nv.ObservedPower, nv.ObservedRebootGen, nv.ObservedError = v.HostID, v.Power, v.RebootGen, ""
	running := v.ObservedHostID == v.HostID && v.ObservedPower == fsm.PowerOn
	if msg := a.failing[v.HostID]; msg != "" && v.Power == fsm.PowerOn && !running {
		nv.ObservedPower, nv.ObservedError = fsm.PowerOff, msg
	}
	if v.MigrateTo != "" {
		nv.MigratedOut = true
	}
	if nv.ObservedHostID == v.ObservedHostID && nv.ObservedPower == v.ObservedPower && nv.ObservedRebootGen == v.ObservedRebootGen &&
		nv.ObservedError == v.ObservedError && nv.MigratedOut == v.MigratedOut {
		return nil
	}
	nv.ObservedAt = time.Now().UTC()
	return nv
}
