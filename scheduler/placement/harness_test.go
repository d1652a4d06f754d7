package placement

import (
	"cmp"
	"slices"

	"github.com/stratus-cloud/stratus/fsm"
)

// memState is the in-memory State of the tests (after nomad's scheduler
// harness): a zone's inventory in plain maps and slices.
type memState struct {
	zones    map[string]*fsm.Zone
	pods     map[string]*fsm.Pod
	clusters map[string]*fsm.Cluster
	hosts    []*fsm.Host
	pools    []*fsm.StoragePool
	// The cloud-wide overcommit ratios; 0 reads as 1.
	cpuRatio, memRatio float64
	byID               []*fsm.Host // hosts sorted by ID for HostsFrom; nil after addHost
	// visited counts the hosts HostsFrom handed out and Host found.
	visited int
}

func (m *memState) Zone(id string) *fsm.Zone       { return m.zones[id] }
func (m *memState) Pod(id string) *fsm.Pod         { return m.pods[id] }
func (m *memState) Cluster(id string) *fsm.Cluster { return m.clusters[id] }

func (m *memState) Host(id string) *fsm.Host {
	h := m.host(id)
	if h != nil {
		m.visited++
	}
	return h
}

// HostsFrom walks the hosts in ID order as the store's index does: the
// hosts of scope's cluster, else of its pod (whatever their zone), else of
// its zone.
func (m *memState) HostsFrom(scope Scope, start string, visit func(*fsm.Host) bool) {
	if m.byID == nil {
		m.byID = slices.SortedFunc(slices.Values(m.hosts), func(a, b *fsm.Host) int { return cmp.Compare(a.ID, b.ID) })
	}
	in := func(h *fsm.Host) bool {
		switch {
		case scope.ClusterID != "":
			return h.ClusterID == scope.ClusterID
		case scope.PodID != "":
			return h.PodID == scope.PodID
		}
		return h.ZoneID == scope.ZoneID
	}
	i, _ := slices.BinarySearchFunc(m.byID, start, func(h *fsm.Host, id string) int { return cmp.Compare(h.ID, id) })
	for _, part := range [][]*fsm.Host{m.byID[i:], m.byID[:i]} {
		for _, h := range part {
			if !in(h) {
				continue
			}
			m.visited++
			if !visit(h) {
				return
			}
		}
	}
}

func (m *memState) Hosts(zoneID string) []*fsm.Host {
	var out []*fsm.Host
	for _, h := range m.hosts {
		if h.ZoneID == zoneID {
			out = append(out, h)
		}
	}
	return out
}

func (m *memState) Pools(zoneID string) []*fsm.StoragePool {
	var out []*fsm.StoragePool
	for _, p := range m.pools {
		if p.ZoneID == zoneID {
			out = append(out, p)
		}
	}
	return out
}

// Overcommit mirrors (*fsm.Store).Overcommit: the cluster's own ratio,
// else the cloud-wide one, else 1.
func (m *memState) Overcommit(c *fsm.Cluster) (cpu, mem float64) {
	cpu, mem = or1(m.cpuRatio), or1(m.memRatio)
	if c != nil && c.CPUOvercommit > 0 {
		cpu = c.CPUOvercommit
	}
	if c != nil && c.MemoryOvercommit > 0 {
		mem = c.MemoryOvercommit
	}
	return cpu, mem
}

func or1(r float64) float64 {
	if r <= 0 {
		return 1
	}
	return r
}

const (
	mb = int64(1) << 20
	gb = int64(1) << 30
)

// newCloud returns zone z1 with pods p1 (cluster c1) and p2 (cluster c2),
// all Enabled, and no hosts or pools.
func newCloud() *memState {
	m := &memState{
		zones:    map[string]*fsm.Zone{"z1": {ID: "z1", Name: "z1", AllocationState: fsm.AllocationEnabled}},
		pods:     map[string]*fsm.Pod{},
		clusters: map[string]*fsm.Cluster{},
	}
	for _, pc := range [][2]string{{"p1", "c1"}, {"p2", "c2"}} {
		m.pods[pc[0]] = &fsm.Pod{ID: pc[0], ZoneID: "z1", AllocationState: fsm.AllocationEnabled}
		m.clusters[pc[1]] = &fsm.Cluster{ID: pc[1], ZoneID: "z1", PodID: pc[0], AllocationState: fsm.AllocationEnabled}
	}
	return m
}

// addHost adds an Up, Enabled host of cores x 2000 MHz and memMiB in
// cluster, and returns it for the test to change.
func (m *memState) addHost(id, cluster string, cores int, memMiB int64, tags ...string) *fsm.Host {
	c := m.clusters[cluster]
	h := &fsm.Host{
		ID: id, Name: id, ZoneID: "z1", PodID: c.PodID, ClusterID: cluster,
		State: fsm.HostStateUp, ResourceState: fsm.ResourceStateEnabled, HostTags: tags,
		CPUNumber: cores, CPUSpeed: 2000, MemoryTotal: memMiB * mb,
	}
	m.hosts = append(m.hosts, h)
	m.byID = nil
	return h
}

// addPool adds an Up pool of capGiB. owner is the cluster ID for CLUSTER
// scope, the host ID for HOST scope, ignored for ZONE.
func (m *memState) addPool(id, scope, owner string, capGiB int64, tags ...string) *fsm.StoragePool {
	p := &fsm.StoragePool{ID: id, Name: id, ZoneID: "z1", Scope: scope, State: fsm.PoolStateUp, Tags: tags, CapacityBytes: capGiB * gb}
	switch scope {
	case fsm.ScopeCluster:
		p.ClusterID, p.PodID = owner, m.clusters[owner].PodID
	case fsm.ScopeHost:
		for _, h := range m.hosts {
			if h.ID == owner {
				p.HostID, p.ClusterID, p.PodID = owner, h.ClusterID, h.PodID
			}
		}
	}
	m.pools = append(m.pools, p)
	return p
}

func (m *memState) host(id string) *fsm.Host {
	for _, h := range m.hosts {
		if h.ID == id {
			return h
		}
	}
	return nil
}

// vmReq is a request for a small VM in z1: 1 CPU x 1000 MHz, 1024 MiB.
func vmReq() Request {
	return Request{ZoneID: "z1", CPUs: 1, CPUMHz: 1000, MemoryBytes: 1024 * mb}
}
