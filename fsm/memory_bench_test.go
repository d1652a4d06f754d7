package fsm

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	memdb "github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"
)

// What one deployed VM costs the replicated store, measured on a store
// filled the way deploys fill it: every VM goes through the two commits of
// a deployVirtualMachine that is placed at once (api submitDeploy with
// scheduler.PlaceNew, then the host's report that finishes the start,
// scheduler.StartedOnReport), each encoded and wrapped by WrapOnce as
// cluster.Apply sends it, and applied through ApplyBatch in raft-sized
// batches.

const (
	memBenchVMs   = 20_000
	memBenchHosts = 1_000
	// memBenchRate is how many deploys a second the proposers' clocks in
	// the entries say: 100/s, so every request of the run is still inside
	// OnceWindow at the end (the worst case of the requests table).
	memBenchRate  = 100
	memBenchBatch = 64 // entries per ApplyBatch, raft's MaxAppendEntries
)

// memIDs makes UUID-shaped IDs from a fixed seed, so runs compare.
type memIDs struct{ r *rand.Rand }

func (g memIDs) next() string {
	var b [16]byte
	for i := range b {
		b[i] = byte(g.r.Uint32())
	}
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// memCloud is the infrastructure and catalog the VMs deploy onto.
type memCloud struct {
	f        *FSM
	ids      memIDs
	index    uint64
	now      time.Time
	zone     string
	pod      string
	hosts    []*Host
	pools    map[string]string // cluster ID -> its shared pool
	offering *ServiceOffering
	template *Template
	accounts []*Account
	timed    bool // applyAll runs the benchmark's timer
}

func (c *memCloud) nextIndex() uint64 { c.index++; return c.index }

// applyOnce applies one WrapOnce'd transaction entry alone.
func (c *memCloud) applyOnce(tb testing.TB, ops ...TxnOp) {
	tb.Helper()
	data, err := WrapOnce(c.ids.next(), c.now, TxnRequestType, TxnRequest{Ops: ops})
	if err != nil {
		tb.Fatal(err)
	}
	if resp := c.f.Apply(&raft.Log{Index: c.nextIndex(), Type: raft.LogCommand, Data: data}); resp != nil {
		tb.Fatalf("setup entry %d refused: %v", c.index, resp)
	}
}

// newMemCloud seeds a zone of one pod, clusters of up to 500 hosts (as
// bench-scale groups them) each with a shared NFS pool, a 1 CPU / 128 MiB
// offering, a ready template and 32 tenant accounts beside the admin.
func newMemCloud(tb testing.TB, hosts int) *memCloud {
	tb.Helper()
	c := &memCloud{f: New(nil), ids: memIDs{rand.New(rand.NewPCG(7, 7))}, now: testTime, pools: map[string]string{}}
	boot := testBootstrap()
	if err := c.f.ApplyCommand(c.nextIndex(), BootstrapRequestType, boot); err != nil {
		tb.Fatal(err)
	}
	z := testZone(c.ids.next(), "zone1")
	c.zone = z.ID
	pod := testPod(c.ids.next(), c.zone, "pod1")
	c.pod = pod.ID
	c.applyOnce(tb, Create(tableZones, &z), Create(TablePods, pod))
	for ci := range (hosts + 499) / 500 {
		cl := testCluster(c.ids.next(), c.zone, c.pod, fmt.Sprintf("cluster%d", ci))
		pool := testPool(c.ids.next(), c.zone, c.pod, cl.ID, fmt.Sprintf("nfs%d", ci))
		pool.CapacityBytes = 1 << 60
		c.pools[cl.ID] = pool.ID
		c.applyOnce(tb, Create(TableClusters, cl), Create(TableStoragePools, pool))
		for hi := range min(500, hosts-ci*500) {
			ip := fmt.Sprintf("10.1.%d.%d", ci*2+hi/250, hi%250+1)
			h := testHost(c.ids.next(), c.zone, c.pod, cl.ID, ip)
			h.Name, h.State, h.HostTags = fmt.Sprintf("sim-%d-%d", ci, hi), HostStateUp, nil
			h.CPUNumber, h.CPUSpeed, h.MemoryTotal = 64, 2400, 256<<30
			c.applyOnce(tb, Create(TableHosts, h))
			c.hosts = append(c.hosts, h)
		}
	}
	so := catTestServiceOffering(c.ids.next(), "tiny")
	so.CPUNumber, so.CPUSpeed, so.Memory, so.HostTags, so.StorageTags = 1, 1000, 128, nil, nil
	tmpl := catTestTemplate(c.ids.next(), boot.Account.ID, boot.Account.DomainID, "tiny-linux")
	tz := catTestTemplateZone(c.ids.next(), tmpl.ID, c.zone)
	tz.DownloadState, tz.IsReady, tz.Size = DownloadDownloaded, true, 1<<30
	c.applyOnce(tb, Create(TableServiceOfferings, so), Create(TableTemplates, tmpl), Create(TableTemplateZones, tz))
	c.offering, _ = Get[ServiceOffering](c.f.State(), nil, TableServiceOfferings, so.ID)
	c.template, _ = Get[Template](c.f.State(), nil, TableTemplates, tmpl.ID)
	c.accounts = []*Account{&boot.Account}
	for i := range 32 {
		a := &Account{ID: c.ids.next(), Name: fmt.Sprintf("tenant%d", i), DomainID: boot.Domain.ID, Type: AccountTypeUser,
			RoleType: "User", State: StateEnabled, Created: testTime}
		c.applyOnce(tb, Create(tableAccounts, a))
		c.accounts = append(c.accounts, a)
	}
	return c
}

// memDeploy is one VM on its way through its two commits.
type memDeploy struct {
	vm  *VM
	vol *Volume
	job *AsyncJob
}

// deployOps is the commit of deployVirtualMachine, placed at once: the
// checks, the VM and its root volume as placed, the reservations, the
// request's event and the pending job.
func (c *memCloud) deployOps(i int, d *memDeploy) []TxnOp {
	acct := c.accounts[i%8/7*(1+i/8%32)] // every 8th deploy is a tenant's, as in bench-scale
	h := c.hosts[i%len(c.hosts)]
	id := c.ids.next()
	ip := fmt.Sprintf("10.%d.%d.%d", 100+i>>16&63, i>>8&255, i&255)
	name := fmt.Sprintf("s-%d-%d", i%256, i/256)
	d.vm = &VM{ID: id, Name: name, DisplayName: name, InstanceName: "i-" + id, AccountID: acct.ID, DomainID: acct.DomainID,
		UserID: "u-admin", ZoneID: c.zone, PodID: c.pod, ClusterID: h.ClusterID, HostID: h.ID, ServiceOfferingID: c.offering.ID,
		TemplateID: c.template.ID, OSTypeID: c.template.OSTypeID, CPUNumber: 1, CPUSpeed: 1000, MemoryMiB: 128,
		State: VMStarting, Power: PowerOn, IPAddress: ip, Created: c.now,
		NICs: []NIC{{ID: c.ids.next(), MAC: "02:00:" + id[:2] + ":" + id[2:4] + ":" + id[4:6] + ":" + id[6:8], IPAddress: ip,
			Gateway: "10.100.0.1", Netmask: "255.192.0.0", IsDefault: true}},
	}
	d.vol = &Volume{ID: c.ids.next(), Name: "ROOT-" + id[:8], AccountID: acct.ID, DomainID: acct.DomainID, ZoneID: c.zone,
		Type: VolumeRoot, VMID: id, PoolID: c.pools[h.ClusterID], TemplateID: c.template.ID, SizeBytes: 8 << 30, Format: "QCOW2",
		State: VolumeAllocated, Created: c.now, Attached: c.now}
	d.job = &AsyncJob{ID: c.ids.next(), Cmd: "deployVirtualMachine", AccountID: acct.ID, DomainID: acct.DomainID, UserID: "u-admin",
		Params: map[string]string{"vm": id, "deploy": "true", "startvm": "true", "placed": "true"}, Status: JobPending,
		InstanceType: "VirtualMachine", InstanceID: id, Created: c.now}
	event := &Event{ID: c.ids.next(), Type: "VM.CREATE", Level: EventInfo, State: "Completed",
		Description: "deploying virtual machine " + name, AccountID: acct.ID, DomainID: acct.DomainID, UserID: "u-admin",
		ResourceType: "VirtualMachine", ResourceID: id, Created: c.now}
	return []TxnOp{
		Check(TableServiceOfferings, c.offering), Check(TableTemplates, c.template),
		Create(TableVMs, d.vm), Create(TableVolumes, d.vol),
		ReservePool(d.vol.PoolID, d.vol.SizeBytes), ReserveHost(h.ID, 1000, 128<<20),
		Create(TableEvents, event), Create(TableJobs, d.job),
	}
}

// reportOps is the commit of the host's report that shows the VM running
// and its root volume created: the job's success, the VM Running with
// what the agent observed, its event, and the volume Ready.
func (c *memCloud) reportOps(d *memDeploy, deployIndex uint64) []TxnOp {
	job := d.job.Copy()
	job.CreateIndex, job.ModifyIndex = deployIndex, deployIndex
	job.Attempts, job.Completed, job.Status, job.ResultType = 1, c.now, JobSucceeded, "object"
	job.Result = []byte(`{"virtualmachine":{"id":"` + d.vm.ID + `"}}`)
	vm := d.vm.Copy()
	vm.CreateIndex, vm.ModifyIndex = deployIndex, deployIndex
	vm.State, vm.ObservedHostID, vm.ObservedPower, vm.ObservedAt = VMRunning, vm.HostID, PowerOn, c.now
	vol := d.vol.Copy()
	vol.CreateIndex, vol.ModifyIndex = deployIndex, deployIndex
	vol.State, vol.Path = VolumeReady, "/var/lib/stratus/pools/"+vol.PoolID+"/"+vol.ID
	event := &Event{ID: c.ids.next(), Type: "VM.CREATE", Level: EventInfo, State: "Completed",
		Description: "started virtual machine " + vm.Name + " on host " + vm.HostID, AccountID: job.AccountID,
		DomainID: job.DomainID, UserID: job.UserID, ResourceType: "VirtualMachine", ResourceID: vm.ID, JobID: job.ID, Created: c.now}
	return []TxnOp{Update(TableJobs, job), Update(TableVMs, vm), Create(TableEvents, event), Update(TableVolumes, vol)}
}

// deploy runs n deploys, memBenchBatch at a time: the batch's deploy
// commits, then their reports.
func (c *memCloud) deploy(tb testing.TB, n int) {
	tb.Helper()
	step := time.Second / memBenchRate
	for start := 0; start < n; start += memBenchBatch / 2 {
		ds := make([]memDeploy, min(memBenchBatch/2, n-start))
		var logs []*raft.Log
		for k := range ds {
			c.now = c.now.Add(step)
			logs = append(logs, c.onceLog(tb, c.deployOps(start+k, &ds[k])))
		}
		c.applyAll(tb, logs)
		reports := make([]*raft.Log, 0, len(ds))
		for k := range ds {
			reports = append(reports, c.onceLog(tb, c.reportOps(&ds[k], logs[k].Index)))
		}
		c.applyAll(tb, reports)
	}
}

// applyAll applies a batch; with timed set, only the applying is timed.
func (c *memCloud) applyAll(tb testing.TB, logs []*raft.Log) {
	tb.Helper()
	if b, ok := tb.(*testing.B); ok && c.timed {
		b.StartTimer()
		defer b.StopTimer()
	}
	for i, resp := range c.f.ApplyBatch(logs) {
		if resp != nil {
			tb.Fatalf("entry %d refused: %v", logs[i].Index, resp)
		}
	}
}

func (c *memCloud) onceLog(tb testing.TB, ops []TxnOp) *raft.Log {
	tb.Helper()
	data, err := WrapOnce(c.ids.next(), c.now, TxnRequestType, TxnRequest{Ops: ops})
	if err != nil {
		tb.Fatal(err)
	}
	return &raft.Log{Index: c.nextIndex(), Type: raft.LogCommand, Data: data}
}

// liveHeap is the heap in use after a full collection.
func liveHeap() int64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// memTables are the tables a deploy writes, in the order the benchmark
// empties them to weigh each.
var memTables = []string{tableRequests, TableEvents, TableJobs, TableVolumes, TableVMs}

// BenchmarkStoreMemoryPerVM reports the live heap the store holds per
// deployed VM (its row, root volume, deploy job, two events and the two
// remembered requests of its commits), each table's share, the snapshot
// stream per VM, and logs the bytes per row of each index.
//
//	go test -run '^$' -bench BenchmarkStoreMemoryPerVM -benchtime 1x ./fsm/
func BenchmarkStoreMemoryPerVM(b *testing.B) {
	for b.Loop() {
		c := newMemCloud(b, memBenchHosts)
		base := liveHeap()
		c.deploy(b, memBenchVMs)
		full := liveHeap()
		per := func(bytes int64) float64 { return float64(bytes) / memBenchVMs }
		b.ReportMetric(per(full-base), "B/VM")
		var snap countingWriter
		if err := c.f.State().WriteSnapshot(&snap, c.index); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(per(snap.n), "snapshot-B/VM")
		indexes := indexCosts(b, c.f.State())
		lines := []string{fmt.Sprintf("%d VMs on %d hosts: %.0f B/VM live heap, %.0f B/VM snapshot. By table (B/VM, rows, B/row; then B/row of each index built alone):",
			memBenchVMs, memBenchHosts, per(full-base), per(snap.n))}
		prev := full
		for _, t := range memTables {
			rows, _ := c.f.State().Count(t, "id")
			txn := c.f.State().db.Txn(true)
			if _, err := txn.DeleteAll(t, "id"); err != nil {
				b.Fatal(err)
			}
			txn.Commit()
			now := liveHeap()
			b.ReportMetric(per(prev-now), t+"-B/VM")
			lines = append(lines, fmt.Sprintf("%-8s %5.0f %6d %5.0f  %s", t, per(prev-now), rows, float64(prev-now)/float64(max(rows, 1)), indexes[t]))
			prev = now
		}
		b.Log(strings.Join(lines, "\n"))
		runtime.KeepAlive(c)
	}
}

// indexCosts weighs each index of the deploy's tables on its own: the
// table's rows inserted into a database that has only that index (and
// "id"), less the same with "id" alone. The rows are shared, so what a
// database adds is its index trees.
func indexCosts(b *testing.B, s *Store) map[string]string {
	out := map[string]string{}
	for _, t := range memTables {
		it, err := s.db.Txn(false).Get(t, "id")
		if err != nil {
			b.Fatal(err)
		}
		var rows []any
		for raw := it.Next(); raw != nil; raw = it.Next() {
			rows = append(rows, raw)
		}
		if len(rows) == 0 {
			continue
		}
		full := mustSchema().Tables[t]
		weigh := func(names ...string) int64 {
			ts := &memdb.TableSchema{Name: t, Indexes: map[string]*memdb.IndexSchema{}}
			for _, n := range names {
				ts.Indexes[n] = full.Indexes[n]
			}
			before := liveHeap()
			db := loadTable(b, ts, rows)
			after := liveHeap()
			runtime.KeepAlive(db)
			return after - before
		}
		id := weigh("id")
		names := make([]string, 0, len(full.Indexes))
		for n := range full.Indexes {
			if n != "id" {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		parts := []string{fmt.Sprintf("id %.0f", float64(id)/float64(len(rows)))}
		for _, n := range names {
			parts = append(parts, fmt.Sprintf("%s %.0f", n, float64(weigh("id", n)-id)/float64(len(rows))))
		}
		out[t] = strings.Join(parts, ", ")
	}
	return out
}

// BenchmarkDeployApply is the CPU time of applying one deploy's two
// commits (the same entries as BenchmarkStoreMemoryPerVM's), building the
// entries untimed.
//
//	go test -run '^$' -bench BenchmarkDeployApply -benchtime 20000x ./fsm/
func BenchmarkDeployApply(b *testing.B) {
	c := newMemCloud(b, memBenchHosts)
	c.timed = true
	b.ReportAllocs()
	b.ResetTimer()
	b.StopTimer()
	c.deploy(b, b.N)
}

// loadTable returns a memdb of the one table ts describes, holding rows.
func loadTable[T any](tb testing.TB, ts *memdb.TableSchema, rows []T) *memdb.MemDB {
	tb.Helper()
	db, err := memdb.NewMemDB(&memdb.DBSchema{Tables: map[string]*memdb.TableSchema{ts.Name: ts}})
	if err != nil {
		tb.Fatal(err)
	}
	txn := db.Txn(true)
	for _, r := range rows {
		if err := txn.Insert(ts.Name, r); err != nil {
			tb.Fatal(err)
		}
	}
	txn.Commit()
	return db
}
