package scheduler

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stratus-cloud/stratus/fsm"
)

const gib = int64(1) << 30

// volFixture is a zone with two clusters; host h-1 in c-1 runs vm-run and
// reaches sp-zone (50 GiB), sp-c1 (100 GiB, tag fast) and its local pool
// sp-local (200 GiB), but not sp-c2 (1 TiB, cluster c-2). vm-stop is
// Stopped with no host.
type volFixture struct {
	m *memCluster
}

func newVolFixture(t *testing.T) *volFixture {
	t.Helper()
	m := newMemCluster()
	now := time.Now().UTC()
	pool := func(id, scope, cluster, host string, capGiB int64, tags ...string) *fsm.StoragePool {
		p := &fsm.StoragePool{ID: id, Name: id, ZoneID: "z-1", Scope: scope, Type: fsm.PoolTypeNFS, URL: "nfs://10.0.0.9/" + id,
			Host: "10.0.0.9", Path: "/" + id, Hypervisor: fsm.HypervisorKVM, Provider: "DefaultPrimary", Tags: tags,
			CapacityBytes: capGiB * gib, State: fsm.PoolStateUp, Created: now}
		if cluster != "" {
			p.PodID, p.ClusterID = "p-1", cluster
		}
		if host != "" {
			p.HostID, p.Type = host, fsm.PoolTypeFilesystem
		}
		return p
	}
	vm := func(id, state, host string) *fsm.VM {
		v := &fsm.VM{ID: id, Name: id, DisplayName: id, InstanceName: "i-" + id, AccountID: "a-1", DomainID: "d-1", ZoneID: "z-1",
			ServiceOfferingID: "so-1", CPUNumber: 1, CPUSpeed: 1000, MemoryMiB: 512, State: state, Power: fsm.PowerOff, Created: now}
		if host != "" {
			v.HostID, v.PodID, v.ClusterID, v.Power = host, "p-1", "c-1", fsm.PowerOn
		}
		return v
	}
	ops := []fsm.TxnOp{
		fsm.Create(fsm.TableDomains, &fsm.Domain{ID: "d-1", Name: "ROOT", Path: "ROOT", Created: now}),
		fsm.Create("accounts", &fsm.Account{ID: "a-1", Name: "alice", DomainID: "d-1", Type: fsm.AccountTypeUser, State: fsm.StateEnabled, Created: now}),
		fsm.Create("zones", zone("z-1")),
		fsm.Create(fsm.TablePods, &fsm.Pod{ID: "p-1", Name: "p-1", ZoneID: "z-1", Gateway: "10.0.0.1", Netmask: "255.255.255.0", AllocationState: fsm.AllocationEnabled, Created: now}),
		fsm.Create(fsm.TableClusters, &fsm.Cluster{ID: "c-1", Name: "c-1", ZoneID: "z-1", PodID: "p-1", HypervisorType: fsm.HypervisorKVM, AllocationState: fsm.AllocationEnabled, Created: now}),
		fsm.Create(fsm.TableClusters, &fsm.Cluster{ID: "c-2", Name: "c-2", ZoneID: "z-1", PodID: "p-1", HypervisorType: fsm.HypervisorKVM, AllocationState: fsm.AllocationEnabled, Created: now}),
		fsm.Create(fsm.TableHosts, &fsm.Host{ID: "h-1", Name: "h-1", ZoneID: "z-1", PodID: "p-1", ClusterID: "c-1", Type: fsm.HostTypeRouting,
			HypervisorType: fsm.HypervisorKVM, IPAddress: "10.0.0.21", State: fsm.HostStateUp, ResourceState: fsm.ResourceStateEnabled,
			Token: "tok-h-1", CPUNumber: 8, CPUSpeed: 2000, MemoryTotal: 16 * gib, Created: now}),
		fsm.Create(fsm.TableStoragePools, pool("sp-zone", fsm.ScopeZone, "", "", 50)),
		fsm.Create(fsm.TableStoragePools, pool("sp-c1", fsm.ScopeCluster, "c-1", "", 100, "fast")),
		fsm.Create(fsm.TableStoragePools, pool("sp-c2", fsm.ScopeCluster, "c-2", "", 1024)),
		fsm.Create(fsm.TableStoragePools, pool("sp-local", fsm.ScopeHost, "c-1", "h-1", 200)),
		fsm.Create(fsm.TableServiceOfferings, &fsm.ServiceOffering{ID: "so-1", Name: "small", DisplayText: "small", CPUNumber: 1, CPUSpeed: 1000,
			Memory: 512, StorageType: fsm.StorageTypeShared, ProvisioningType: fsm.ProvisioningThin, State: fsm.OfferingStateActive, Created: now}),
		fsm.Create(fsm.TableVMs, vm("vm-run", fsm.VMRunning, "h-1")),
		fsm.Create(fsm.TableVMs, vm("vm-stop", fsm.VMStopped, "")),
		fsm.Create(fsm.TableVolumes, &fsm.Volume{ID: "root-run", Name: "ROOT-run", AccountID: "a-1", DomainID: "d-1", ZoneID: "z-1",
			Type: fsm.VolumeRoot, VMID: "vm-run", PoolID: "sp-zone", SizeBytes: 8 * gib, State: fsm.VolumeReady, Created: now}),
	}
	if _, err := m.Apply(context.Background(), fsm.TxnRequestType, fsm.TxnRequest{Ops: ops}); err != nil {
		t.Fatal(err)
	}
	// The root volume holds its 8 GiB on sp-zone.
	f := &volFixture{m: m}
	f.change(t, "sp-zone", func(p *fsm.StoragePool) { p.AllocatedBytes = 8 * gib })
	r := NewRunner(m, nil)
	RegisterVolumeJobs(r)
	RegisterSnapshotJobs(r)
	RegisterAffinityJobs(r)
	if err := r.Establish(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Revoke)
	return f
}

func (f *volFixture) apply(t *testing.T, ops ...fsm.TxnOp) {
	t.Helper()
	if _, err := f.m.Apply(context.Background(), fsm.TxnRequestType, fsm.TxnRequest{Ops: ops}); err != nil {
		t.Fatal(err)
	}
}

func (f *volFixture) change(t *testing.T, poolID string, fn func(*fsm.StoragePool)) {
	t.Helper()
	p := f.pool(t, poolID).Copy()
	fn(p)
	f.apply(t, fsm.Update(fsm.TableStoragePools, p))
}

func (f *volFixture) pool(t *testing.T, id string) *fsm.StoragePool {
	t.Helper()
	p, err := fsm.Get[fsm.StoragePool](f.m.State(), nil, fsm.TableStoragePools, id)
	if err != nil || p == nil {
		t.Fatalf("pool %s: %v", id, err)
	}
	return p
}

func (f *volFixture) volume(t *testing.T, id string) *fsm.Volume {
	t.Helper()
	v, err := fsm.Get[fsm.Volume](f.m.State(), nil, fsm.TableVolumes, id)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// addVolume records a detached DATADISK, as createVolume's API half does.
func (f *volFixture) addVolume(t *testing.T, id string, sizeGiB int64, mod func(*fsm.Volume)) {
	t.Helper()
	v := &fsm.Volume{ID: id, Name: id, AccountID: "a-1", DomainID: "d-1", ZoneID: "z-1", Type: fsm.VolumeDataDisk, SizeBytes: sizeGiB * gib,
		Format: "QCOW2", State: fsm.VolumeAllocated, Created: time.Now().UTC()}
	if mod != nil {
		mod(v)
	}
	f.apply(t, fsm.Create(fsm.TableVolumes, v))
}

// run submits a job and waits for its end.
func (f *volFixture) run(t *testing.T, cmd string, params map[string]string) *fsm.AsyncJob {
	t.Helper()
	return waitJob(t, f.m, f.m.submit(t, cmd, params))
}

func wantJobOK(t *testing.T, j *fsm.AsyncJob) {
	t.Helper()
	if j.Status != fsm.JobSucceeded {
		t.Fatalf("%s failed: %s", j.Cmd, j.Result)
	}
}

func wantJobFail(t *testing.T, j *fsm.AsyncJob, code int, text string) {
	t.Helper()
	var res JobError
	_ = json.Unmarshal(j.Result, &res)
	if j.Status != fsm.JobFailed || res.Code != code || !strings.Contains(res.Text, text) {
		t.Fatalf("%s: status %d result %s, want failure %d containing %q", j.Cmd, j.Status, j.Result, code, text)
	}
}

func attach(vol, vm string) map[string]string {
	return map[string]string{VolParamID: vol, VolParamVM: vm}
}

func TestAttachPlacesOnReachablePoolAndReserves(t *testing.T) {
	f := newVolFixture(t)
	for _, id := range []string{"d1", "d2", "d3"} {
		f.addVolume(t, id, 10, nil)
	}
	j := f.run(t, "attachVolume", attach("d1", "vm-run"))
	wantJobOK(t, j)
	if string(j.Result) != `{"volume":{"id":"d1"}}` {
		t.Errorf("result = %s", j.Result)
	}
	// sp-c2 has the most space but h-1 cannot reach it; sp-c1 has the most
	// of the reachable shared pools.
	v := f.volume(t, "d1")
	if v.VMID != "vm-run" || v.DeviceID != 1 || v.PoolID != "sp-c1" || v.Attached.IsZero() {
		t.Fatalf("attached volume = %+v", v)
	}
	if got := f.pool(t, "sp-c1").AllocatedBytes; got != 10*gib {
		t.Errorf("sp-c1 allocated %d, want 10 GiB", got)
	}
	wantJobOK(t, f.run(t, "attachVolume", attach("d2", "vm-run")))
	wantJobOK(t, f.run(t, "attachVolume", attach("d3", "vm-run")))
	if d2, d3 := f.volume(t, "d2").DeviceID, f.volume(t, "d3").DeviceID; d2 != 2 || d3 != 4 {
		t.Errorf("device IDs %d, %d; want 2 and 4 (3 is skipped)", d2, d3)
	}
	if got := f.pool(t, "sp-c1").AllocatedBytes; got != 30*gib {
		t.Errorf("sp-c1 allocated %d, want 30 GiB", got)
	}
	// Attaching again to the same VM is a no-op success; to another VM it
	// is in use.
	wantJobOK(t, f.run(t, "attachVolume", attach("d1", "vm-run")))
	wantJobFail(t, f.run(t, "attachVolume", attach("d1", "vm-stop")), 536, "already attached")
	if got := f.pool(t, "sp-c1").AllocatedBytes; got != 30*gib {
		t.Errorf("a repeated attach changed sp-c1 to %d", got)
	}
}

func TestAttachPoolRules(t *testing.T) {
	f := newVolFixture(t)
	f.addVolume(t, "tagged", 10, func(v *fsm.Volume) { v.StorageTags = []string{"FAST"} })
	f.addVolume(t, "gold", 10, func(v *fsm.Volume) { v.StorageTags = []string{"gold"} })
	f.addVolume(t, "local", 10, func(v *fsm.Volume) { v.Local = true })
	f.addVolume(t, "huge", 150, nil)
	f.addVolume(t, "far", 10, func(v *fsm.Volume) { v.PoolID = "sp-c2" })
	wantJobOK(t, f.run(t, "attachVolume", attach("tagged", "vm-run")))
	if p := f.volume(t, "tagged").PoolID; p != "sp-c1" {
		t.Errorf("tagged volume on %s, want sp-c1 (tags match in any case)", p)
	}
	wantJobFail(t, f.run(t, "attachVolume", attach("gold", "vm-run")), 533, "storage tags gold")
	wantJobOK(t, f.run(t, "attachVolume", attach("local", "vm-run")))
	if p := f.volume(t, "local").PoolID; p != "sp-local" {
		t.Errorf("local volume on %s, want the host's sp-local", p)
	}
	wantJobFail(t, f.run(t, "attachVolume", attach("huge", "vm-run")), 533, "space free")
	wantJobFail(t, f.run(t, "attachVolume", attach("far", "vm-run")), 431, "cannot reach")
	if v := f.volume(t, "gold"); v.VMID != "" || v.PoolID != "" {
		t.Errorf("a failed attach changed the volume: %+v", v)
	}
	// A disabled pool takes nothing new.
	f.change(t, "sp-c1", func(p *fsm.StoragePool) { p.State = fsm.PoolStateDisabled })
	f.addVolume(t, "tagged2", 1, func(v *fsm.Volume) { v.StorageTags = []string{"fast"} })
	wantJobFail(t, f.run(t, "attachVolume", attach("tagged2", "vm-run")), 533, "storage tags")
}

func TestAttachToStoppedVMLeavesVolumeUnplaced(t *testing.T) {
	f := newVolFixture(t)
	f.addVolume(t, "d1", 10, nil)
	wantJobOK(t, f.run(t, "attachVolume", map[string]string{VolParamID: "d1", VolParamVM: "vm-stop", VolParamDevice: "5"}))
	v := f.volume(t, "d1")
	if v.VMID != "vm-stop" || v.DeviceID != 5 || v.PoolID != "" {
		t.Fatalf("volume = %+v, want attached at 5 with no pool", v)
	}
	f.addVolume(t, "d2", 1, nil)
	wantJobFail(t, f.run(t, "attachVolume", map[string]string{VolParamID: "d2", VolParamVM: "vm-stop", VolParamDevice: "5"}), 431, "already used")
	wantJobFail(t, f.run(t, "attachVolume", map[string]string{VolParamID: "d2", VolParamVM: "vm-stop", VolParamDevice: "3"}), 431, "CD-ROM")
	// createVolume with a VM attaches the same way.
	f.addVolume(t, "d3", 1, nil)
	wantJobOK(t, f.run(t, "createVolume", attach("d3", "vm-stop")))
	if v := f.volume(t, "d3"); v.VMID != "vm-stop" || v.DeviceID != 1 {
		t.Fatalf("createVolume with a VM: %+v", v)
	}
	f.addVolume(t, "d4", 1, nil)
	wantJobOK(t, f.run(t, "createVolume", map[string]string{VolParamID: "d4"}))
	if v := f.volume(t, "d4"); v.VMID != "" || v.State != fsm.VolumeAllocated {
		t.Fatalf("createVolume alone: %+v", v)
	}
}

func TestAttachRefusesBusyVMAndRoot(t *testing.T) {
	f := newVolFixture(t)
	f.addVolume(t, "d1", 1, nil)
	vm, _ := fsm.Get[fsm.VM](f.m.State(), nil, fsm.TableVMs, "vm-stop")
	c := vm.Copy()
	c.State = fsm.VMStarting
	f.apply(t, fsm.Update(fsm.TableVMs, c))
	wantJobFail(t, f.run(t, "attachVolume", attach("d1", "vm-stop")), 431, "Running or Stopped")
	wantJobFail(t, f.run(t, "attachVolume", attach("root-run", "vm-stop")), 431, "ROOT")
	wantJobFail(t, f.run(t, "attachVolume", attach("nope", "vm-run")), 431, "no longer exists")
}

func TestDetachKeepsPool(t *testing.T) {
	f := newVolFixture(t)
	f.addVolume(t, "d1", 10, nil)
	wantJobOK(t, f.run(t, "attachVolume", attach("d1", "vm-run")))
	wantJobOK(t, f.run(t, "detachVolume", attach("d1", "vm-run")))
	v := f.volume(t, "d1")
	if v.VMID != "" || v.DeviceID != 0 || v.PoolID != "sp-c1" || !v.Attached.IsZero() {
		t.Fatalf("detached volume = %+v", v)
	}
	if got := f.pool(t, "sp-c1").AllocatedBytes; got != 10*gib {
		t.Errorf("sp-c1 allocated %d after detach, want 10 GiB still", got)
	}
	wantJobFail(t, f.run(t, "detachVolume", map[string]string{VolParamID: "d1"}), 431, "not attached")
	wantJobFail(t, f.run(t, "detachVolume", map[string]string{VolParamID: "root-run"}), 431, "ROOT volumes cannot be detached")
	// Reattached to the running VM, it stays on its pool at no new cost.
	wantJobOK(t, f.run(t, "attachVolume", attach("d1", "vm-run")))
	if got := f.pool(t, "sp-c1").AllocatedBytes; got != 10*gib {
		t.Errorf("sp-c1 allocated %d after reattach, want 10 GiB", got)
	}
}

func TestResizeGrowsPoolAllocation(t *testing.T) {
	f := newVolFixture(t)
	f.addVolume(t, "d1", 10, nil)
	f.addVolume(t, "loose", 10, nil)
	wantJobOK(t, f.run(t, "attachVolume", attach("d1", "vm-run")))
	resize := func(id string, sizeGiB int64) *fsm.AsyncJob {
		return f.run(t, "resizeVolume", map[string]string{VolParamID: id, VolParamSize: strconv.FormatInt(sizeGiB*gib, 10)})
	}
	wantJobOK(t, resize("d1", 40))
	if v, p := f.volume(t, "d1"), f.pool(t, "sp-c1"); v.SizeBytes != 40*gib || p.AllocatedBytes != 40*gib {
		t.Fatalf("after growing to 40 GiB: volume %d, pool %d", v.SizeBytes, p.AllocatedBytes)
	}
	wantJobFail(t, resize("d1", 200), 533, "free")
	wantJobFail(t, resize("d1", 20), 431, "only grow")
	if p := f.pool(t, "sp-c1"); p.AllocatedBytes != 40*gib {
		t.Errorf("failed resizes changed the pool to %d", p.AllocatedBytes)
	}
	// An unplaced volume grows without touching any pool.
	wantJobOK(t, resize("loose", 500))
	if v := f.volume(t, "loose"); v.SizeBytes != 500*gib || v.PoolID != "" {
		t.Fatalf("unplaced resize: %+v", v)
	}
	// A new disk offering is recorded with the size.
	f.apply(t, fsm.Create(fsm.TableDiskOfferings, &fsm.DiskOffering{ID: "do-big", Name: "big", DisplayText: "big", DiskSize: 50 * gib,
		StorageType: fsm.StorageTypeShared, ProvisioningType: fsm.ProvisioningThin, DisplayOffering: true, State: fsm.OfferingStateActive}))
	wantJobOK(t, f.run(t, "resizeVolume", map[string]string{VolParamID: "d1", VolParamSize: strconv.FormatInt(50*gib, 10), VolParamOffering: "do-big"}))
	if v := f.volume(t, "d1"); v.DiskOfferingID != "do-big" || v.SizeBytes != 50*gib {
		t.Fatalf("resize with offering: %+v", v)
	}
}

func TestReleasePoolOps(t *testing.T) {
	f := newVolFixture(t)
	f.addVolume(t, "d1", 10, nil)
	wantJobOK(t, f.run(t, "attachVolume", attach("d1", "vm-run")))
	wantJobOK(t, f.run(t, "detachVolume", attach("d1", "vm-run")))
	ops, err := ReleasePoolOps(f.m.State(), f.volume(t, "d1"))
	if err != nil || len(ops) != 1 {
		t.Fatalf("release ops = %v, %v", ops, err)
	}
	f.apply(t, append(ops, fsm.Delete(fsm.TableVolumes, "d1"))...)
	if got := f.pool(t, "sp-c1").AllocatedBytes; got != 0 {
		t.Errorf("sp-c1 allocated %d after delete, want 0", got)
	}
	f.addVolume(t, "d2", 1, nil)
	if ops, err := ReleasePoolOps(f.m.State(), f.volume(t, "d2")); err != nil || len(ops) != 0 {
		t.Errorf("an unplaced volume releases %v, %v", ops, err)
	}
}

func TestChoosePoolOrder(t *testing.T) {
	h := &fsm.Host{ID: "h", ZoneID: "z", ClusterID: "c"}
	p := func(id, scope string, capGiB, allocGiB int64) *fsm.StoragePool {
		return &fsm.StoragePool{ID: id, ZoneID: "z", ClusterID: "c", HostID: "h", Scope: scope, State: fsm.PoolStateUp,
			CapacityBytes: capGiB * gib, AllocatedBytes: allocGiB * gib}
	}
	vol := &fsm.Volume{SizeBytes: gib}
	best, _ := ChoosePool([]*fsm.StoragePool{p("b", fsm.ScopeZone, 10, 0), p("a", fsm.ScopeCluster, 10, 0), p("c", fsm.ScopeHost, 99, 0)}, h, vol)
	if best == nil || best.ID != "a" {
		t.Errorf("tie on free space: got %v, want the lowest ID a (and never the host pool for a shared volume)", best)
	}
	over := p("o", fsm.ScopeZone, 10, 0)
	over.Overprovision = 2
	best, _ = ChoosePool([]*fsm.StoragePool{p("a", fsm.ScopeZone, 15, 0), over}, h, vol)
	if best == nil || best.ID != "o" {
		t.Errorf("overprovisioned pool: got %v, want o (20 GiB usable)", best)
	}
	if best, why := ChoosePool(nil, h, &fsm.Volume{Local: true}); best != nil || !strings.Contains(why, "local") {
		t.Errorf("no pools: %v %q", best, why)
	}
}
