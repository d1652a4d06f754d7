package fsm

import (
	"errors"
	"strings"
	"testing"
)

func init() {
	tableSamples[TablePods] = func() Object { return testPod("p-1", "z-1", "rack1") }
	tableSamples[TableClusters] = func() Object {
		c := testCluster("c-1", "z-1", "p-1", "kvm1")
		c.Details = map[string]string{"k": "v"}
		return c
	}
	tableSamples[TableHosts] = func() Object {
		h := testHost("h-1", "z-1", "p-1", "c-1", "10.0.0.5")
		h.HypervisorVersion, h.Version, h.Capabilities = "8.0", "1.0", "hvm"
		h.CPUNumber, h.CPUSockets, h.CPUSpeed, h.MemoryTotal = 8, 1, 2400, 32<<30
		h.CPUAllocated, h.MemoryAllocated, h.CPUUsedPercent, h.MemoryUsed = 1000, 1<<30, 12.5, 2<<30
		h.HAEnabled, h.HAProvider, h.ManagementServerID = true, "kvmhaprovider", "ms-1"
		h.SelfFence, h.StatusURL = true, "http://10.0.0.5:8250"
		h.OutOfBand = &OutOfBand{Enabled: true, Driver: "ipmitool", Address: "10.9.0.5", Port: 623, Username: "root", Password: "pw", PowerState: "On"}
		h.Annotation, h.AnnotatedBy, h.LastAnnotated = "rack 4", "admin", testTime
		h.Details = map[string]string{"k": "v"}
		h.LastPinged, h.Disconnected = testTime, testTime
		return h
	}
	tableSamples[TableStoragePools] = func() Object {
		p := testPool("sp-1", "z-1", "p-1", "c-1", "pri1")
		p.HostID, p.Scope, p.Type, p.Port = "h-1", ScopeHost, PoolTypeFilesystem, 2049
		p.CapacityIOPS, p.AllocatedBytes, p.UsedBytes, p.Overprovision = 1000, 1<<30, 2<<30, 2
		p.Details = map[string]string{"k": "v"}
		return p
	}
	tableSamples[TableImageStores] = func() Object {
		return &ImageStore{ID: "is-1", Name: "sec1", ZoneID: "z-1", URL: "nfs://10.0.0.9/export/sec", Protocol: "nfs",
			Provider: "NFS", Scope: ScopeZone, ReadOnly: true, CapacityBytes: 1 << 40, UsedBytes: 1 << 30,
			Details: map[string]string{"k": "v"}, Created: testTime}
	}
}

func testPod(id, zone, name string) *Pod {
	return &Pod{ID: id, Name: name, ZoneID: zone, Gateway: "10.0.0.1", Netmask: "255.255.255.0",
		IPRanges:        []PodIPRange{{StartIP: "10.0.0.10", EndIP: "10.0.0.20", ForSystemVMs: true, VlanID: "vlan://100"}},
		AllocationState: AllocationEnabled, Created: testTime}
}

func testCluster(id, zone, pod, name string) *Cluster {
	return &Cluster{ID: id, Name: name, ZoneID: zone, PodID: pod, HypervisorType: HypervisorKVM, ClusterType: ClusterTypeCloudManaged,
		AllocationState: AllocationEnabled, ManagedState: ManagedStateManaged, CPUOvercommit: 2, MemoryOvercommit: 1.5, Created: testTime}
}

func testHost(id, zone, pod, cluster, ip string) *Host {
	return &Host{ID: id, Name: ip, ZoneID: zone, PodID: pod, ClusterID: cluster, Type: HostTypeRouting, HypervisorType: HypervisorKVM,
		IPAddress: ip, URL: "http://" + ip, State: HostStateDisconnected, ResourceState: ResourceStateEnabled,
		HostTags: []string{"ssd"}, Token: "tok-" + id, HAState: HAStateDisabled, Created: testTime}
}

func testPool(id, zone, pod, cluster, name string) *StoragePool {
	return &StoragePool{ID: id, Name: name, ZoneID: zone, PodID: pod, ClusterID: cluster, Scope: ScopeCluster, Type: PoolTypeNFS,
		URL: "nfs://10.0.0.9/export/" + name, Host: "10.0.0.9", Path: "/export/" + name, Hypervisor: HypervisorKVM,
		Provider: "DefaultPrimary", Tags: []string{"fast"}, CapacityBytes: 1 << 40, State: PoolStateUp, Created: testTime}
}

// infraFixture commits a zone with a pod, a cluster, a host, a cluster pool,
// a local pool on the host and an image store.
func infraFixture(t *testing.T) *FSM {
	t.Helper()
	f := seeded(t)
	z := testZone("z-1", "one")
	local := testPool("sp-local", "z-1", "p-1", "c-1", "local")
	local.HostID, local.Scope, local.Type = "h-1", ScopeHost, PoolTypeFilesystem
	ops := []TxnOp{
		Create(tableZones, &z),
		Create(TablePods, testPod("p-1", "z-1", "rack1")),
		Create(TableClusters, testCluster("c-1", "z-1", "p-1", "kvm1")),
		Create(TableHosts, testHost("h-1", "z-1", "p-1", "c-1", "10.0.0.5")),
		Create(TableStoragePools, testPool("sp-1", "z-1", "p-1", "c-1", "pri1")),
		Create(TableStoragePools, local),
		Create(TableImageStores, &ImageStore{ID: "is-1", Name: "sec1", ZoneID: "z-1", URL: "nfs://10.0.0.9/sec", Protocol: "nfs", Provider: "NFS", Scope: ScopeZone, Created: testTime}),
	}
	if err := apply(t, f, 2, TxnRequestType, TxnRequest{Ops: ops}); err != nil {
		t.Fatalf("infrastructure fixture: %v", err)
	}
	return f
}

func TestInfraReferencesMustExist(t *testing.T) {
	f := infraFixture(t)
	cases := []struct {
		name string
		op   TxnOp
		want string
	}{
		{"pod in a missing zone", Create(TablePods, testPod("p-x", "z-missing", "x")), "zone z-missing does not exist"},
		{"cluster in a missing pod", Create(TableClusters, testCluster("c-x", "z-1", "p-missing", "x")), "pod p-missing does not exist"},
		{"host in a missing cluster", Create(TableHosts, testHost("h-x", "z-1", "p-1", "c-missing", "10.0.0.99")), "cluster c-missing does not exist"},
		{"local pool on a missing host", func() TxnOp {
			p := testPool("sp-x", "z-1", "p-1", "c-1", "x")
			p.HostID = "h-missing"
			return Create(TableStoragePools, p)
		}(), "host h-missing does not exist"},
		{"image store in a missing zone", Create(TableImageStores, &ImageStore{ID: "is-x", Name: "x", ZoneID: "z-missing"}), "zone z-missing does not exist"},
	}
	for i, tc := range cases {
		err := apply(t, f, uint64(10+i), TxnRequestType, TxnRequest{Ops: []TxnOp{tc.op}})
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want not found %q", tc.name, err, tc.want)
		}
	}
}

func TestInfraDeletesInUse(t *testing.T) {
	f := infraFixture(t)
	cases := []struct {
		name  string
		table string
		id    string
		want  string
	}{
		{"zone with everything", tableZones, "z-1", "cannot delete zone z-1: cluster kvm1 still uses it"},
		{"pod with a cluster", TablePods, "p-1", "cannot delete pod p-1: cluster kvm1 still uses it"},
		{"cluster with a host", TableClusters, "c-1", "cannot delete cluster c-1: host 10.0.0.5 still uses it"},
		{"host with local storage", TableHosts, "h-1", "cannot delete host h-1: storage pool local still uses it"},
	}
	for i, tc := range cases {
		err := apply(t, f, uint64(10+i), TxnRequestType, TxnRequest{Ops: []TxnOp{Delete(tc.table, tc.id)}})
		if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want in use %q", tc.name, err, tc.want)
		}
	}
	// Pools hold the cluster once the host is gone.
	if err := apply(t, f, 20, TxnRequestType, TxnRequest{Ops: []TxnOp{Delete(TableStoragePools, "sp-local"), Delete(TableHosts, "h-1")}}); err != nil {
		t.Fatalf("delete local pool then host: %v", err)
	}
	err := apply(t, f, 21, TxnRequestType, TxnRequest{Ops: []TxnOp{Delete(TableClusters, "c-1")}})
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "storage pool pri1 still uses it") {
		t.Fatalf("delete cluster with a pool: err = %v", err)
	}
	// The image store alone keeps the zone once the rest is gone, bottom up.
	if err := apply(t, f, 22, TxnRequestType, TxnRequest{Ops: []TxnOp{
		Delete(TableStoragePools, "sp-1"), Delete(TableClusters, "c-1"), Delete(TablePods, "p-1")}}); err != nil {
		t.Fatalf("delete pool, cluster, pod: %v", err)
	}
	err = apply(t, f, 23, TxnRequestType, TxnRequest{Ops: []TxnOp{Delete(tableZones, "z-1")}})
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "image store sec1 still uses it") {
		t.Fatalf("delete zone with an image store: err = %v", err)
	}
	if err := apply(t, f, 24, TxnRequestType, TxnRequest{Ops: []TxnOp{Delete(TableImageStores, "is-1"), Delete(tableZones, "z-1")}}); err != nil {
		t.Fatalf("delete image store then zone: %v", err)
	}
}

func TestInfraUniqueKeys(t *testing.T) {
	f := infraFixture(t)
	z2 := testZone("z-2", "two")
	if err := apply(t, f, 3, TxnRequestType, TxnRequest{Ops: []TxnOp{Create(tableZones, &z2)}}); err != nil {
		t.Fatal(err)
	}
	conflicts := []struct {
		name string
		op   TxnOp
		want string
	}{
		{"pod name, other case", Create(TablePods, testPod("p-2", "z-1", "RACK1")), "pod with this name in this zone already exists (id p-1)"},
		{"cluster name", Create(TableClusters, testCluster("c-2", "z-1", "p-1", "Kvm1")), "cluster with this name in this zone already exists"},
		{"host address", Create(TableHosts, func() *Host { h := testHost("h-2", "z-1", "p-1", "c-1", "10.0.0.5"); h.Token = "other"; return h }()), "host with this address in this zone already exists"},
		{"host token", Create(TableHosts, func() *Host { h := testHost("h-2", "z-1", "p-1", "c-1", "10.0.0.6"); h.Token = "tok-h-1"; return h }()), "host with this agent token already exists"},
		{"pool name", Create(TableStoragePools, testPool("sp-2", "z-1", "", "", "PRI1")), "storage pool with this name in this zone already exists"},
		{"image store name", Create(TableImageStores, &ImageStore{ID: "is-2", Name: "Sec1", ZoneID: "z-1"}), "image store with this name in this zone already exists"},
	}
	for i, tc := range conflicts {
		err := apply(t, f, uint64(10+i), TxnRequestType, TxnRequest{Ops: []TxnOp{tc.op}})
		if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want conflict %q", tc.name, err, tc.want)
		}
	}
	// The same names in another zone are fine.
	ok := []TxnOp{
		Create(TablePods, testPod("p-2", "z-2", "rack1")),
		Create(TableClusters, testCluster("c-2", "z-2", "p-2", "kvm1")),
		Create(TableHosts, func() *Host { h := testHost("h-2", "z-2", "p-2", "c-2", "10.0.0.5"); h.Token = "tok-2"; return h }()),
		Create(TableStoragePools, testPool("sp-2", "z-2", "p-2", "c-2", "pri1")),
		Create(TableImageStores, &ImageStore{ID: "is-2", Name: "sec1", ZoneID: "z-2"}),
	}
	if err := apply(t, f, 30, TxnRequestType, TxnRequest{Ops: ok}); err != nil {
		t.Fatalf("same names in another zone: %v", err)
	}
	// Renaming a row to its own name (an update) is not a conflict.
	p, _ := Get[Pod](f.State(), nil, TablePods, "p-1")
	upd := p.Copy()
	upd.Name = "Rack1"
	if err := apply(t, f, 31, TxnRequestType, TxnRequest{Ops: []TxnOp{Update(TablePods, upd)}}); err != nil {
		t.Fatalf("rename to own name in another case: %v", err)
	}
}

func TestHostByTokenAndCopies(t *testing.T) {
	f := infraFixture(t)
	h, err := f.State().HostByToken(nil, "tok-h-1")
	if err != nil || h == nil || h.ID != "h-1" {
		t.Fatalf("host by token = %+v, %v", h, err)
	}
	if h, _ := f.State().HostByToken(nil, ""); h != nil {
		t.Fatal("an empty token found a host")
	}
	if h, _ := f.State().HostByToken(nil, "nope"); h != nil {
		t.Fatal("a wrong token found a host")
	}
	// Copies share nothing with the stored rows.
	c := h.Copy()
	c.HostTags[0] = "changed"
	if h.HostTags[0] != "ssd" {
		t.Fatal("Host.Copy shares its tags")
	}
	p, _ := Get[Pod](f.State(), nil, TablePods, "p-1")
	pc := p.Copy()
	pc.IPRanges[0].StartIP = "x"
	if p.IPRanges[0].StartIP != "10.0.0.10" {
		t.Fatal("Pod.Copy shares its ranges")
	}
	cl, _ := Get[Cluster](f.State(), nil, TableClusters, "c-1")
	if cpu, mem := f.State().Overcommit(cl); cpu != 2 || mem != 1.5 {
		t.Fatalf("cluster ratios: %v %v", cpu, mem)
	}
	if cpu, mem := f.State().Overcommit(&Cluster{}); cpu != 1 || mem != 1 {
		t.Fatalf("default ratios: %v %v", cpu, mem)
	}
	// The cloud-wide setting applies to clusters without their own ratio.
	if err := apply(t, f, 5, ConfigSetRequestType, ConfigSetRequest{Setting: Setting{Name: SettingCPUOvercommit, Value: "4"}}); err != nil {
		t.Fatal(err)
	}
	if cpu, mem := f.State().Overcommit(&Cluster{MemoryOvercommit: 3}); cpu != 4 || mem != 3 {
		t.Fatalf("ratios with a cloud-wide setting: %v %v", cpu, mem)
	}
	if cpu, _ := f.State().Overcommit(cl); cpu != 2 {
		t.Fatalf("the cluster's own ratio lost to the setting: %v", cpu)
	}
	sp, _ := Get[StoragePool](f.State(), nil, TableStoragePools, "sp-1")
	spc := sp.Copy()
	spc.Tags[0] = "slow"
	if sp.Tags[0] != "fast" || sp.OverprovisionRatio() != 1 {
		t.Fatal("StoragePool.Copy shares its tags or the ratio default is wrong")
	}
}
