package placement

import (
	"errors"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
)

// The allocator only proposes. The leader commits a Plan with
// compare-and-set on the hosts and pools it names, re-checking capacity
// against the latest state, so two plans made from the same snapshot can
// never overbook a host: the second one fails its check and is placed again.

// Errors of the allocator. Callers match them with errors.Is.
var (
	// ErrInsufficientCapacity: no host of the zone can take the VM. The
	// error returned is an *InsufficientCapacityError that says why; the
	// API answers it with CloudStack error 533.
	ErrInsufficientCapacity = errors.New("insufficient capacity")
	// ErrUnknownZone: the request names a zone the state does not hold.
	ErrUnknownZone = errors.New("unknown zone")
)

// State is the read-only view the allocator needs; the leader adapts
// *fsm.Store to it. Returned objects are never changed.
type State interface {
	Zone(id string) *fsm.Zone
	Pod(id string) *fsm.Pod
	Cluster(id string) *fsm.Cluster
	Host(id string) *fsm.Host
	Hosts(zoneID string) []*fsm.Host // every host of the zone
	// HostsFrom calls visit with the hosts of scope in ID order, from the
	// first whose ID is not below start (the lowest when start is empty),
	// wrapping around to the lowest, until visit returns false or every
	// host was visited once. It reads the hosts as it goes, so a walk that
	// stops early costs what it visited, not the size of the scope.
	HostsFrom(scope Scope, start string, visit func(*fsm.Host) bool)
	Pools(zoneID string) []*fsm.StoragePool // every primary pool of the zone
	// Overcommit returns the ratios in force for a cluster (nil: the
	// cloud-wide ones), as (*fsm.Store).Overcommit does.
	Overcommit(c *fsm.Cluster) (cpu, mem float64)
}

// Request is what a VM needs and where it may go.
type Request struct {
	ZoneID string
	// Optional restrictions. HostID is a host the caller asked for.
	PodID, ClusterID, HostID string
	CPUs                     int
	CPUMHz                   int64 // per core
	MemoryBytes              int64
	HostTags                 []string // the host must carry every one (case-insensitive)
	Volumes                  []Volume // each needs a pool the chosen host reaches
	// AvoidHosts are hosts that already failed this VM, or its current
	// host on migration.
	AvoidHosts []string
	// AffinityHosts, when non-empty, are the only hosts allowed.
	AffinityHosts []string
	// AntiAffinityHosts are never chosen.
	AntiAffinityHosts []string
	// SpreadKey, when set (the VM's ID), makes Place choose among the
	// best few hosts by a hash of it instead of always the single best,
	// so concurrent placements spread out; the same key and state still
	// give the same plan.
	SpreadKey string
}

// Volume is one disk of the VM.
type Volume struct {
	ID          string
	SizeBytes   int64
	StorageTags []string // the pool must carry every one (case-insensitive)
	// Local volumes go only to the chosen host's own pools (scope HOST);
	// shared volumes never do.
	Local bool
	// PoolID is set when the volume already lives on a pool (migration):
	// that pool must be reachable from the host; it costs nothing new and
	// neither its state nor its tags are checked again.
	PoolID string
}

// Plan is where the VM goes. Pools maps every volume ID of the request,
// placed ones included, to its pool ID.
type Plan struct {
	ZoneID, PodID, ClusterID, HostID string
	Pools                            map[string]string
}

// Candidate is one host of the zone judged for a request.
type Candidate struct {
	Host     *fsm.Host
	Suitable bool
	// Reason says why the host is not suitable; empty when it is.
	Reason string
	// What the host can still take before this VM, under its cluster's
	// overcommit ratios; negative when it is overbooked.
	FreeCPUMHz      int64
	FreeMemoryBytes int64
}

// Place chooses a host and pools for req. Among the hosts that qualify it
// takes the one with the most memory free, then the most CPU free, then
// the lowest ID; each new volume (largest first) goes to the reachable
// pool with the most space free, then the lowest ID. With a SpreadKey it
// takes one of the best spreadChoices hosts by the key's hash instead. In
// a big zone it only looks at a sample of the hosts (see placementSample).
// The same state and request always give the same plan. When no host
// qualifies the error is an *InsufficientCapacityError wrapping
// ErrInsufficientCapacity, which counts every host of the zone.
func Place(st State, req Request) (Plan, error) {
	zone := st.Zone(req.ZoneID)
	if zone == nil {
		return Plan{}, &zoneError{req.ZoneID}
	}
	e := newEvaluator(st, req, zone)
	s, whole := e.hostScan()
	if len(s.top) == 0 {
		if !whole {
			// A restricted scan judged only the hosts it could use; the
			// error says why each host of the zone was turned down.
			s = e.walk(Scope{ZoneID: req.ZoneID}, "", 0)
		}
		return Plan{}, e.insufficient(&s.t, s.hosts)
	}
	best := s.top[spreadIndex(req.SpreadKey, len(s.top))].host
	return Plan{
		ZoneID: req.ZoneID, PodID: best.PodID, ClusterID: best.ClusterID, HostID: best.ID,
		Pools: e.poolPlan(best),
	}, nil
}

// spreadChoices is how many of the best hosts a request with a SpreadKey
// chooses among. Placements made at the same moment from the same state
// would otherwise all pick the one best host and all but one lose its
// compare-and-set; spread over the top few, they mostly commit at once.
const spreadChoices = 8

// ranked is a suitable host with what it has free.
type ranked struct {
	host     *fsm.Host
	cpu, mem int64
}

// insertRanked keeps top sorted best first and at most spreadChoices long.
func insertRanked(top []ranked, r ranked) []ranked {
	i := len(top)
	for i > 0 && better(r.mem, r.cpu, r.host.ID, top[i-1].mem, top[i-1].cpu, top[i-1].host.ID) {
		i--
	}
	if i >= spreadChoices {
		return top
	}
	top = append(top, ranked{})
	copy(top[i+1:], top[i:])
	top[i] = r
	if len(top) > spreadChoices {
		top = top[:spreadChoices]
	}
	return top
}

// spreadIndex picks one of n choices from key, the same one every time;
// 0 (the best) without a key.
func spreadIndex(key string, n int) int {
	if key == "" || n <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}

// Candidates judges every host of the zone, for findHostsForMigration and
// the like: the suitable ones first, each group in Place's order of
// preference.
func Candidates(st State, req Request) []Candidate {
	zone := st.Zone(req.ZoneID)
	e := newEvaluator(st, req, zone)
	var out []Candidate
	for _, h := range st.Hosts(req.ZoneID) {
		if h == nil {
			continue
		}
		v, cpu, mem := e.check(h)
		c := Candidate{Host: h, Suitable: v.kind == fits, FreeCPUMHz: cpu, FreeMemoryBytes: mem}
		if !c.Suitable {
			c.Reason = e.reason(v, h)
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Candidate) int {
		switch {
		case a.Suitable != b.Suitable && a.Suitable:
			return -1
		case a.Suitable != b.Suitable:
			return 1
		case a.Host.ID == b.Host.ID:
			return 0
		case better(a.FreeMemoryBytes, a.FreeCPUMHz, a.Host.ID, b.FreeMemoryBytes, b.FreeCPUMHz, b.Host.ID):
			return -1
		}
		return 1
	})
	return out
}

// better reports whether a host with free memory m1, CPU c1 and ID id1 is
// preferred to one with m2, c2, id2: it spreads load, which leaves the
// most room for HA restarts.
func better(m1, c1 int64, id1 string, m2, c2 int64, id2 string) bool {
	if m1 != m2 {
		return m1 > m2
	}
	if c1 != c2 {
		return c1 > c2
	}
	return id1 < id2
}

// HostFree returns the CPU (MHz) and memory (bytes) a host can still take
// under the given overcommit ratios: cores x MHz x cpu ratio less what is
// allocated, memory x mem ratio less what is allocated. Negative when the
// host is overbooked (a ratio was lowered). The leader's plan applier uses
// it to re-check a plan with the same arithmetic.
func HostFree(h *fsm.Host, cpuRatio, memRatio float64) (cpuMHz, memBytes int64) {
	cpu := scaled(int64(h.CPUNumber)*h.CPUSpeed, cpuRatio) - h.CPUAllocated
	mem := scaled(h.MemoryTotal, memRatio) - h.MemoryAllocated
	return cpu, mem
}

// PoolFree returns the bytes a pool can still take: its capacity times its
// overprovisioning ratio less what is allocated on it.
func PoolFree(p *fsm.StoragePool) int64 {
	return scaled(p.CapacityBytes, p.OverprovisionRatio()) - p.AllocatedBytes
}

// scaled is fsm.ScaleCapacity: the reserve applier checks placements
// with the same arithmetic.
func scaled(total int64, ratio float64) int64 { return fsm.ScaleCapacity(total, ratio) }

// fold lowercases and trims tags, dropping empty ones.
func fold(tags []string) []string {
	var out []string
	for _, t := range tags {
		if t = strings.ToLower(strings.TrimSpace(t)); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// set makes a lookup of IDs; nil when there are none.
func set(ids []string) map[string]bool {
	if len(ids) == 0 {
		return nil
	}
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}
