package api

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stratus-cloud/stratus/fsm"
)

// The scale fixture of issue 7: 10,000 hosts and 100,000 running VMs of
// 200 accounts (20 in each of 10 domains below ROOT), each VM with its
// root volume, its finished deploy job and the deploy's two events, all
// committed through the FSM's transaction applier as the API's deploy and
// the job runner commit them (many VMs per transaction, to build it in
// seconds). It is built once per test binary and only by the benchmarks.

// scaleSize is the fixture's shape; the scale benchmarks use bigCloud.
type scaleSize struct {
	hosts, vms, accounts, domains int
	zones, pods, clusters         int // pods per zone, clusters per pod
}

var bigCloud = scaleSize{hosts: 10_000, vms: 100_000, accounts: 200, domains: 10, zones: 2, pods: 5, clusters: 10}

const scaleBatch = 500 // rows per transaction while building

// scaleCloud is the built fixture.
type scaleCloud struct {
	s        *Server
	c        *fakeCluster
	size     scaleSize
	tenants  []ident // one user of each account
	dadmin   ident   // a domain admin of ROOT/d0, whose subtree holds ROOT/d0/d1
	accounts []string
	zones    []string
	hosts    []string
	// heap figures (bytes) measured while building, for bytes per VM.
	heapBase, heapVMs, heapJobs, heapEvents uint64
}

var (
	scaleOnce sync.Once
	scaleFix  *scaleCloud
)

// scaleFixture returns the shared fixture, building it at the first call.
func scaleFixture(tb testing.TB) *scaleCloud {
	tb.Helper()
	scaleOnce.Do(func() { scaleFix = buildScaleCloud(tb, bigCloud) })
	if scaleFix == nil {
		tb.Fatal("the scale fixture failed to build")
	}
	return scaleFix
}

// heapInUse returns the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// scaleID is a deterministic UUID-shaped ID for the fixture's rows.
func scaleID(kind byte, n int) string {
	return fmt.Sprintf("%08x-0000-4000-8000-%02x%010x", n*2654435761%(1<<32), kind, n)
}

func buildScaleCloud(tb testing.TB, size scaleSize) *scaleCloud {
	s, c := newTestServer(tb)
	sc := &scaleCloud{s: s, c: c, size: size}
	ctx := context.Background()
	apply := func(ops []fsm.TxnOp) {
		if _, err := c.Apply(ctx, fsm.TxnRequestType, fsm.TxnRequest{Ops: ops}); err != nil {
			tb.Fatalf("building the scale fixture: %v", err)
		}
	}
	batched := func(n int, build func(i int) []fsm.TxnOp) {
		var ops []fsm.TxnOp
		for i := range n {
			ops = append(ops, build(i)...)
			if len(ops) >= scaleBatch {
				apply(ops)
				ops = nil
			}
		}
		if len(ops) > 0 {
			apply(ops)
		}
	}
	now := fixedNow.Add(-time.Hour)
	rootDomain := "22222222-2222-4222-8222-222222222222"

	// The catalog: an offering and a template ready in every zone.
	off := &fsm.ServiceOffering{ID: scaleID(1, 1), Name: "small", DisplayText: "small", CPUNumber: 1, CPUSpeed: 1000, Memory: 1024,
		StorageType: fsm.StorageTypeShared, ProvisioningType: fsm.ProvisioningThin, State: fsm.OfferingStateActive, Created: now}
	tmpl := &fsm.Template{ID: scaleID(2, 1), Name: "ubuntu", DisplayText: "ubuntu", Kind: fsm.ImageKindTemplate,
		TemplateType: fsm.TemplateTypeUser, Format: "QCOW2", Hypervisor: fsm.HypervisorKVM, OSTypeID: fsm.OSTypeOtherLinux64,
		URL: "http://images.example/ubuntu.qcow2", IsPublic: true, AccountID: "33333333-3333-4333-8333-333333333333", DomainID: rootDomain, Created: now}
	ops := []fsm.TxnOp{fsm.Create(fsm.TableServiceOfferings, off), fsm.Create(fsm.TableTemplates, tmpl)}
	// The inventory: zones, pods, clusters, one pool per cluster, hosts.
	var clusters, pools, pods []string
	for z := range size.zones {
		zid := scaleID(3, z)
		sc.zones = append(sc.zones, zid)
		ops = append(ops, fsm.Create("zones", &fsm.Zone{ID: zid, Name: fmt.Sprintf("zone-%d", z), NetworkType: "Advanced",
			AllocationState: fsm.AllocationEnabled, GuestCIDR: "10.0.0.0/8", ZoneToken: "tok-" + zid, Created: now}),
			fsm.Create(fsm.TableTemplateZones, &fsm.TemplateZone{ID: scaleID(4, z), TemplateID: tmpl.ID, ZoneID: zid,
				DownloadState: fsm.DownloadDownloaded, IsReady: true, Size: 4 << 30, Created: now}))
		for p := range size.pods {
			pid := scaleID(5, z*size.pods+p)
			pods = append(pods, pid)
			ops = append(ops, fsm.Create(fsm.TablePods, &fsm.Pod{ID: pid, Name: fmt.Sprintf("pod-%d", p), ZoneID: zid, Gateway: "10.0.0.1",
				Netmask: "255.255.255.0", AllocationState: fsm.AllocationEnabled, Created: now}))
			for k := range size.clusters {
				n := (z*size.pods+p)*size.clusters + k
				cid, spid := scaleID(6, n), scaleID(7, n)
				clusters, pools = append(clusters, cid), append(pools, spid)
				ops = append(ops, fsm.Create(fsm.TableClusters, &fsm.Cluster{ID: cid, Name: fmt.Sprintf("kvm-%d", n), ZoneID: zid, PodID: pid,
					HypervisorType: fsm.HypervisorKVM, ClusterType: fsm.ClusterTypeCloudManaged, AllocationState: fsm.AllocationEnabled,
					ManagedState: fsm.ManagedStateManaged, CPUOvercommit: 2, MemoryOvercommit: 1, Created: now}),
					fsm.Create(fsm.TableStoragePools, &fsm.StoragePool{ID: spid, Name: fmt.Sprintf("pri-%d", n), ZoneID: zid, PodID: pid,
						ClusterID: cid, Scope: fsm.ScopeCluster, Type: fsm.PoolTypeNFS, URL: "nfs://10.0.0.9/export/" + spid, Host: "10.0.0.9",
						Path: "/export/" + spid, Hypervisor: fsm.HypervisorKVM, Provider: "DefaultPrimary", CapacityBytes: 1 << 50,
						State: fsm.PoolStateUp, Created: now}))
			}
		}
	}
	apply(ops)
	nClusters := len(clusters)
	batched(size.hosts, func(i int) []fsm.TxnOp {
		cl := i % nClusters
		zid := sc.zones[cl/(size.pods*size.clusters)]
		id := scaleID(8, i)
		sc.hosts = append(sc.hosts, id)
		ip := fmt.Sprintf("172.%d.%d.%d", 16+i>>16, (i>>8)&255, i&255)
		return []fsm.TxnOp{fsm.Create(fsm.TableHosts, &fsm.Host{ID: id, Name: fmt.Sprintf("kvm-%05d", i), ZoneID: zid, PodID: pods[cl/size.clusters],
			ClusterID: clusters[cl], Type: fsm.HostTypeRouting, HypervisorType: fsm.HypervisorKVM, IPAddress: ip, URL: "http://" + ip,
			State: fsm.HostStateUp, ResourceState: fsm.ResourceStateEnabled, Token: "tok-" + id, CPUNumber: 64, CPUSockets: 2, CPUSpeed: 2400,
			MemoryTotal: 512 << 30, CPUAllocated: 10 * 1000, MemoryAllocated: 10 << 30, HAState: fsm.HAStateDisabled, Created: now})}
	})
	// Identity: 10 domains below ROOT, 20 accounts in each, one user each.
	ops = nil
	for d := range size.domains {
		parent, path := rootDomain, fmt.Sprintf("ROOT/d%d", d)
		if d == 1 {
			parent, path = scaleID(9, 0), "ROOT/d0/d1"
		}
		ops = append(ops, fsm.Create("domains", &fsm.Domain{ID: scaleID(9, d), Name: fmt.Sprintf("d%d", d), Path: path,
			ParentID: parent, Created: now}))
	}
	sc.dadmin = ident{name: "dadmin", key: "key-dadmin", secret: "secret-dadmin", userID: scaleID(11, 1<<20), accountID: scaleID(10, 1<<20)}
	ops = append(ops, fsm.Create("accounts", &fsm.Account{ID: sc.dadmin.accountID, Name: "dadmin", DomainID: scaleID(9, 0),
		Type: fsm.AccountTypeDomainAdmin, RoleType: "DomainAdmin", State: fsm.StateEnabled, Created: now}),
		fsm.Create("users", &fsm.User{ID: sc.dadmin.userID, AccountID: sc.dadmin.accountID, DomainID: scaleID(9, 0), Username: "dadmin",
			State: fsm.StateEnabled, APIKey: sc.dadmin.key, SecretKey: sc.dadmin.secret, Created: now}))
	for a := range size.accounts {
		aid, uid, dom := scaleID(10, a), scaleID(11, a), scaleID(9, a%size.domains)
		key, secret := fmt.Sprintf("key-%d", a), fmt.Sprintf("secret-%d", a)
		sc.accounts = append(sc.accounts, aid)
		sc.tenants = append(sc.tenants, ident{name: fmt.Sprintf("user%d", a), key: key, secret: secret, userID: uid, accountID: aid})
		ops = append(ops, fsm.Create("accounts", &fsm.Account{ID: aid, Name: fmt.Sprintf("acct%d", a), DomainID: dom, Type: fsm.AccountTypeUser,
			RoleType: "User", State: fsm.StateEnabled, Created: now}),
			fsm.Create("users", &fsm.User{ID: uid, AccountID: aid, DomainID: dom, Username: fmt.Sprintf("user%d", a), State: fsm.StateEnabled,
				APIKey: key, SecretKey: secret, Created: now}))
	}
	apply(ops)
	sc.heapBase = heapInUse()

	// VMs as deploy and the job runner leave them: placed, running, with
	// a default NIC, and a Ready root volume on the cluster's pool.
	vmOf := func(i int) (*fsm.VM, *fsm.Volume) {
		a, h := i%size.accounts, i%size.hosts
		cl := h % nClusters
		id := scaleID(12, i)
		ip := fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255)
		created := now.Add(time.Duration(i) * time.Millisecond)
		vm := &fsm.VM{ID: id, Name: fmt.Sprintf("vm-%06d", i), DisplayName: fmt.Sprintf("web server %06d", i), InstanceName: "i-" + id,
			AccountID: sc.accounts[a], DomainID: scaleID(9, a%size.domains), UserID: scaleID(11, a), ZoneID: sc.zones[cl/(size.pods*size.clusters)],
			PodID: pods[cl/size.clusters], ClusterID: clusters[cl], HostID: sc.hosts[h], LastHostID: sc.hosts[h],
			ServiceOfferingID: off.ID, TemplateID: tmpl.ID, OSTypeID: tmpl.OSTypeID, CPUNumber: 1, CPUSpeed: 1000, MemoryMiB: 1024,
			State: fsm.VMRunning, Power: fsm.PowerOn, ObservedHostID: sc.hosts[h], ObservedPower: fsm.PowerOn, ObservedAt: created,
			IPAddress: ip, NICs: []fsm.NIC{{ID: scaleID(13, i), MAC: macOf(id), IPAddress: ip, Netmask: "255.0.0.0", Gateway: "10.0.0.1", IsDefault: true}},
			Created: created}
		vol := &fsm.Volume{ID: scaleID(14, i), Name: "ROOT-" + id[:8], AccountID: vm.AccountID, DomainID: vm.DomainID, ZoneID: vm.ZoneID,
			Type: fsm.VolumeRoot, VMID: id, PoolID: pools[cl], TemplateID: tmpl.ID, SizeBytes: 8 << 30, Format: "QCOW2", State: fsm.VolumeReady,
			Path: "/export/" + pools[cl] + "/" + scaleID(14, i), Created: created, Attached: created}
		return vm, vol
	}
	batched(size.vms, func(i int) []fsm.TxnOp {
		vm, vol := vmOf(i)
		return []fsm.TxnOp{fsm.Create(fsm.TableVMs, vm), fsm.Create(fsm.TableVolumes, vol)}
	})
	sc.heapVMs = heapInUse()
	// The deploy jobs, finished, with the params the API gives them.
	batched(size.vms, func(i int) []fsm.TxnOp {
		a := i % size.accounts
		vmID := scaleID(12, i)
		created := now.Add(time.Duration(i) * time.Millisecond)
		return []fsm.TxnOp{fsm.Create(fsm.TableJobs, &fsm.AsyncJob{ID: scaleID(15, i), Cmd: "deployVirtualMachine", AccountID: sc.accounts[a],
			DomainID: scaleID(9, a%size.domains), UserID: scaleID(11, a), Params: map[string]string{"vmid": vmID, "deploy": "true", "startvm": "true"},
			Status: fsm.JobSucceeded, ResultType: "object", Result: []byte(`{"virtualmachine":{"id":"` + vmID + `"}}`), InstanceType: "VirtualMachine",
			InstanceID: vmID, Step: "starting", Attempts: 3, Created: created, Completed: created.Add(2 * time.Second)})}
	})
	sc.heapJobs = heapInUse()
	// The deploy's events: the API's "deploying" and the runner's "started".
	batched(size.vms, func(i int) []fsm.TxnOp {
		a := i % size.accounts
		vmID, name := scaleID(12, i), fmt.Sprintf("vm-%06d", i)
		created := now.Add(time.Duration(i) * time.Millisecond)
		ev := func(n int, typ, desc string, at time.Time) fsm.TxnOp {
			return fsm.Create(fsm.TableEvents, &fsm.Event{ID: scaleID(byte(16+n), i), Type: typ, Level: fsm.EventInfo, State: "Completed",
				Description: desc, AccountID: sc.accounts[a], DomainID: scaleID(9, a%size.domains), UserID: scaleID(11, a),
				ResourceType: "VirtualMachine", ResourceID: vmID, JobID: scaleID(15, i), Created: at})
		}
		return []fsm.TxnOp{ev(0, "VM.CREATE", "deploying virtual machine "+name, created),
			ev(1, "VM.START", "started virtual machine "+name, created.Add(2*time.Second))}
	})
	sc.heapEvents = heapInUse()
	return sc
}

// scaleRequest is a signed listing request, prepared once so a benchmark
// measures the server, not the signing.
func scaleRequest(id ident, params map[string]string) string {
	v := url.Values{}
	for k, val := range params {
		v.Set(k, val)
	}
	v.Set("apiKey", id.key)
	v.Set("response", "json")
	v.Set("signature", Sign(v, id.secret))
	return "/client/api?" + v.Encode()
}

func benchList(b *testing.B, id ident, params map[string]string) {
	sc := scaleFixture(b)
	target := scaleRequest(id, params)
	// The fixture's garbage is collected before the clock starts, so no
	// benchmark pays for the build's collection.
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	for b.Loop() {
		rec := httptest.NewRecorder()
		sc.s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
		if rec.Code != http.StatusOK {
			b.Fatalf("%v: %d %s", params, rec.Code, rec.Body.String())
		}
	}
	// CPU time per request (GC included) is steadier than ns/op on a
	// shared machine.
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
}

// processCPU is the process's user and system CPU time in nanoseconds.
func processCPU() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

var scaleRoot = ident{name: "admin", key: adminKey, secret: adminSecret}

func BenchmarkListVMsRootFirstPage(b *testing.B) {
	benchList(b, scaleRoot, map[string]string{"command": "listVirtualMachines", "listall": "true", "page": "1", "pagesize": "500"})
}

func BenchmarkListVMsRootMiddlePage(b *testing.B) {
	benchList(b, scaleRoot, map[string]string{"command": "listVirtualMachines", "listall": "true", "page": "100", "pagesize": "500"})
}

func BenchmarkListVMsTenant(b *testing.B) {
	sc := scaleFixture(b)
	benchList(b, sc.tenants[7], map[string]string{"command": "listVirtualMachines", "page": "1", "pagesize": "500"})
}

func BenchmarkListVMsKeyword(b *testing.B) {
	benchList(b, scaleRoot, map[string]string{"command": "listVirtualMachines", "listall": "true", "keyword": "vm-0420",
		"page": "1", "pagesize": "500"})
}

func BenchmarkListVMsHost(b *testing.B) {
	sc := scaleFixture(b)
	benchList(b, scaleRoot, map[string]string{"command": "listVirtualMachines", "listall": "true", "hostid": sc.hosts[42],
		"page": "1", "pagesize": "500"})
}

func BenchmarkListHosts(b *testing.B) {
	benchList(b, scaleRoot, map[string]string{"command": "listHosts", "page": "3", "pagesize": "500"})
}

func BenchmarkListVolumesTenant(b *testing.B) {
	sc := scaleFixture(b)
	benchList(b, sc.tenants[7], map[string]string{"command": "listVolumes", "page": "1", "pagesize": "500"})
}

func BenchmarkListAsyncJobsTenant(b *testing.B) {
	sc := scaleFixture(b)
	benchList(b, sc.tenants[7], map[string]string{"command": "listAsyncJobs", "page": "1", "pagesize": "500"})
}

func BenchmarkListEventsRoot(b *testing.B) {
	benchList(b, scaleRoot, map[string]string{"command": "listEvents", "listall": "true", "page": "1", "pagesize": "500"})
}

// BenchmarkListStoreBytesPerVM reports what the fixture's rows cost in
// memory: bytes of live heap per VM for the VM and volume rows, for the
// deploy jobs and for the events (all indexes included).
func BenchmarkListStoreBytesPerVM(b *testing.B) {
	sc := scaleFixture(b)
	for b.Loop() {
	}
	per := func(hi, lo uint64) float64 { return float64(int64(hi)-int64(lo)) / float64(sc.size.vms) }
	b.ReportMetric(per(sc.heapVMs, sc.heapBase), "vm+volume-B/VM")
	b.ReportMetric(per(sc.heapJobs, sc.heapVMs), "job-B/VM")
	b.ReportMetric(per(sc.heapEvents, sc.heapJobs), "events-B/VM")
	b.ReportMetric(per(sc.heapEvents, sc.heapBase), "total-B/VM")
	b.ReportMetric(float64(sc.heapEvents)/(1<<20), "heap-MiB")
}
