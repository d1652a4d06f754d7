package scheduler

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/scheduler/placement"
)

// bigZone commits zone z of zoneOps to a new store.
func bigZone(tb testing.TB, z string, pods, perPod int, ids []string) *fsm.Store {
	tb.Helper()
	f := fsm.New(nil)
	commit(tb, f, 1, zoneOps(z, pods, perPod, ids))
	return f.State()
}

func commit(tb testing.TB, f *fsm.FSM, index uint64, ops []fsm.TxnOp) {
	tb.Helper()
	if err := f.ApplyCommand(index, fsm.TxnRequestType, fsm.TxnRequest{Ops: ops}); err != nil {
		tb.Fatalf("commit: %v", err)
	}
}

// zoneOps creates zone z with pods <z>-p-0.., each with clusters
// <z>-c-<pod>-0.., one zone-scope pool (as the scale benchmark has) and
// hosts of 32 cores x 2000 MHz and 256 GiB dealt out to the clusters in
// turn; ids names the hosts. A tenth of the hosts are Down and the rest
// carry some load, drawn from a fixed seed.
func zoneOps(z string, pods, perPod int, ids []string) []fsm.TxnOp {
	ops := []fsm.TxnOp{
		fsm.Create("zones", &fsm.Zone{ID: z, Name: z, NetworkType: "Advanced", AllocationState: fsm.AllocationEnabled, ZoneToken: "t-" + z}),
		fsm.Create(fsm.TableStoragePools, &fsm.StoragePool{ID: "zp-" + z, Name: "zp-" + z, ZoneID: z, Scope: fsm.ScopeZone,
			Type: fsm.PoolTypeNFS, CapacityBytes: 1 << 50, State: fsm.PoolStateUp}),
	}
	var clusters []*fsm.Cluster
	for p := range pods {
		pod := fmt.Sprintf("%s-p-%d", z, p)
		ops = append(ops, fsm.Create(fsm.TablePods, &fsm.Pod{ID: pod, Name: pod, ZoneID: z, AllocationState: fsm.AllocationEnabled}))
		for c := range perPod {
			cl := &fsm.Cluster{ID: fmt.Sprintf("%s-c-%d-%d", z, p, c), ZoneID: z, PodID: pod, HypervisorType: fsm.HypervisorKVM,
				AllocationState: fsm.AllocationEnabled, CPUOvercommit: 4, MemoryOvercommit: 1.5}
			cl.Name = cl.ID
			clusters = append(clusters, cl)
			ops = append(ops, fsm.Create(fsm.TableClusters, cl))
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i, id := range ids {
		c := clusters[i%len(clusters)]
		h := &fsm.Host{ID: id, Name: id, ZoneID: z, PodID: c.PodID, ClusterID: c.ID, Type: fsm.HostTypeRouting,
			HypervisorType: fsm.HypervisorKVM, IPAddress: fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&255, i&255),
			State: fsm.HostStateUp, ResourceState: fsm.ResourceStateEnabled, CPUNumber: 32, CPUSpeed: 2000, MemoryTotal: 256 << 30,
			CPUAllocated: rng.Int64N(200000), MemoryAllocated: rng.Int64N(300) << 30}
		if i%10 == 0 {
			h.State = fsm.HostStateDown
		}
		ops = append(ops, fsm.Create(fsm.TableHosts, h))
	}
	return ops
}

func uuids(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	return ids
}

// BenchmarkPlaceStore places a VM (4 x 2000 MHz, 8 GiB, one 20 GiB shared
// volume) in a zone of 10,000 hosts read from a real store through the
// view the servers use, each iteration with another VM ID as spread key.
func BenchmarkPlaceStore(b *testing.B) {
	st := bigZone(b, "z1", 10, 10, uuids(10000)).Snapshot()
	keys := uuids(1024)
	req := placement.Request{ZoneID: "z1", CPUs: 4, CPUMHz: 2000, MemoryBytes: 8 << 30,
		Volumes: []placement.Volume{{ID: "root", SizeBytes: 20 << 30}}}
	view := NewView(st)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		req.SpreadKey = keys[i%len(keys)]
		i++
		if _, err := placement.Place(view, req); err != nil {
			b.Fatal(err)
		}
	}
}

// TestViewHostsFrom walks the store's host indexes as Place does: from a
// start ID, wrapping around, within one zone, pod or cluster, stopping
// when asked.
func TestViewHostsFrom(t *testing.T) {
	f := fsm.New(nil)
	commit(t, f, 1, zoneOps("z1", 2, 2, []string{"h10", "h20", "h30", "h40", "h50", "h60", "h70", "h80"}))
	// A second zone, whose hosts sort between and after z1's.
	commit(t, f, 2, zoneOps("z2", 1, 1, []string{"h15", "h55", "h99"}))
	view := NewView(f.State())
	walk := func(scope placement.Scope, start string, stopAfter int) string {
		var got []string
		view.HostsFrom(scope, start, func(h *fsm.Host) bool {
			got = append(got, h.ID)
			return len(got) != stopAfter
		})
		return strings.Join(got, " ")
	}
	z1 := placement.Scope{ZoneID: "z1"}
	cases := []struct {
		name  string
		scope placement.Scope
		start string
		stop  int
		want  string
	}{
		{"zone from the beginning", z1, "", 0, "h10 h20 h30 h40 h50 h60 h70 h80"},
		{"zone from a host", z1, "h50", 0, "h50 h60 h70 h80 h10 h20 h30 h40"},
		{"zone from between hosts", z1, "h45", 0, "h50 h60 h70 h80 h10 h20 h30 h40"},
		{"zone from past the last host", z1, "h9", 0, "h10 h20 h30 h40 h50 h60 h70 h80"},
		{"zone from below the first host", z1, "a", 0, "h10 h20 h30 h40 h50 h60 h70 h80"},
		{"stops when told", z1, "h75", 3, "h80 h10 h20"},
		{"other zone", placement.Scope{ZoneID: "z2"}, "h50", 0, "h55 h99 h15"},
		// bigZone deals hosts out to the clusters in turn: c-0-0, c-0-1, c-1-0, c-1-1.
		{"cluster", placement.Scope{ZoneID: "z1", ClusterID: "z1-c-1-0"}, "h40", 0, "h70 h30"},
		{"pod", placement.Scope{ZoneID: "z1", PodID: "z1-p-0"}, "h55", 0, "h60 h10 h20 h50"},
		{"cluster wins over pod", placement.Scope{ZoneID: "z1", PodID: "z1-p-0", ClusterID: "z1-c-1-1"}, "", 0, "h40 h80"},
		{"unknown zone", placement.Scope{ZoneID: "z"}, "", 0, ""},
	}
	for _, c := range cases {
		if got := walk(c.scope, c.start, c.stop); got != c.want {
			t.Errorf("%s: visited %q, want %q", c.name, got, c.want)
		}
	}
}
