package placement

import (
	"fmt"
	"testing"

	"github.com/stratus-cloud/stratus/fsm"
)

// benchZone returns a zone of 10,000 hosts in 100 clusters (10 pods), each
// cluster with a shared pool, a tenth of the hosts Down and the others
// with some load; with local, each host has its own pool too. The request
// is a VM with a shared data volume, and a local root volume when local.
func benchZone(local bool) (*memState, Request) {
	m := &memState{
		zones:    map[string]*fsm.Zone{"z1": {ID: "z1", AllocationState: fsm.AllocationEnabled}},
		pods:     map[string]*fsm.Pod{},
		clusters: map[string]*fsm.Cluster{},
		cpuRatio: 4, memRatio: 1.5,
	}
	for p := range 10 {
		pod := fmt.Sprintf("p%d", p)
		m.pods[pod] = &fsm.Pod{ID: pod, ZoneID: "z1", AllocationState: fsm.AllocationEnabled}
		for c := range 10 {
			id := fmt.Sprintf("c%d-%d", p, c)
			m.clusters[id] = &fsm.Cluster{ID: id, ZoneID: "z1", PodID: pod, AllocationState: fsm.AllocationEnabled}
			m.addPool("pool-"+id, fsm.ScopeCluster, id, 10000, "fast")
		}
	}
	for i := range 10000 {
		cluster := fmt.Sprintf("c%d-%d", i%10, i/10%10)
		h := m.addHost(fmt.Sprintf("h%05d", i), cluster, 32, 262144, "kvm")
		h.CPUAllocated, h.MemoryAllocated = int64(i%97)*1000, int64(i%89)*1024*mb
		if i%10 == 0 {
			h.State = fsm.HostStateDown
		}
		if local {
			m.pools = append(m.pools, &fsm.StoragePool{ID: fmt.Sprintf("local-%05d", i), ZoneID: "z1", Scope: fsm.ScopeHost,
				HostID: h.ID, ClusterID: h.ClusterID, PodID: h.PodID, State: fsm.PoolStateUp, CapacityBytes: 2000 * gb})
		}
	}
	req := Request{
		ZoneID: "z1", CPUs: 4, CPUMHz: 2000, MemoryBytes: 8192 * mb, HostTags: []string{"kvm"},
		Volumes:           []Volume{{ID: "data", SizeBytes: 100 * gb, StorageTags: []string{"fast"}}},
		AntiAffinityHosts: []string{"h00001", "h00002"},
	}
	if local {
		req.Volumes = append(req.Volumes, Volume{ID: "root", SizeBytes: 20 * gb, Local: true})
	}
	return m, req
}

func benchPlace(b *testing.B, m *memState, req Request) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Place(m, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlace places a VM with a local root and a shared data volume in
// a zone of 10,000 hosts, each host with its own pool.
func BenchmarkPlace(b *testing.B) {
	m, req := benchZone(true)
	benchPlace(b, m, req)
}

// BenchmarkPlaceShared is BenchmarkPlace with shared storage only, as the
// scale benchmark has it: what the host scan costs, without 10,000 local
// pools to index.
func BenchmarkPlaceShared(b *testing.B) {
	m, req := benchZone(false)
	benchPlace(b, m, req)
}
