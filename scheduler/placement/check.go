package placement

import (
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
)

// kind is why a host does not qualify, in the order the checks run (which
// is also the order the error names them in). Restrictions come first so
// that a host the caller excluded is counted as excluded, not as broken.
type kind int

const (
	fits kind = iota
	outsidePod
	outsideCluster
	notRequested
	avoided
	antiAffine
	notAffine
	notUp
	disabled
	maintenance
	notEnabled // some other resource state
	zoneClosed
	podClosed
	podUnknown
	clusterClosed
	clusterUnknown
	missingTag
	shortCPU
	shortMemory
	// Storage kinds: idx is the volume's index in the request.
	noPool
	poolUnreachable
)

// verdict is the outcome of one host's checks.
type verdict struct {
	kind  kind
	idx   int    // host tag or volume index in the request
	free  int64  // shortCPU, shortMemory: what the host has free
	state string // notUp and the resource-state kinds: the host's state
	// noPool: some pool would have taken the volume but for the VM's other
	// volumes placed on it first.
	crowded bool
}

// clusterInfo caches what the checks need of a cluster.
type clusterInfo struct {
	known, open        bool
	cpuRatio, memRatio float64
}

// evaluator runs the checks of one request over the hosts of its zone.
type evaluator struct {
	st       State
	req      Request
	zoneName string
	zoneOpen bool
	needCPU  int64
	hostTags []string
	avoid    map[string]bool
	anti     map[string]bool
	affine   map[string]bool
	pods     map[string][2]bool // pod ID -> known, open
	clusters map[string]*clusterInfo
	pools    *poolIndex
	vols     []volume // placed first, then new ones largest first
	newBytes int64    // the new volumes' sizes summed
	chosen   []*slot  // scratch: the pool each of vols went to (nil: placed)
}

func newEvaluator(st State, req Request, zone *fsm.Zone) *evaluator {
	e := &evaluator{
		st: st, req: req, zoneName: req.ZoneID,
		needCPU:  int64(req.CPUs) * req.CPUMHz,
		hostTags: fold(req.HostTags),
		avoid:    set(req.AvoidHosts), anti: set(req.AntiAffinityHosts), affine: set(req.AffinityHosts),
		pods: map[string][2]bool{}, clusters: map[string]*clusterInfo{},
	}
	if zone != nil {
		e.zoneOpen = zone.AllocationState == fsm.AllocationEnabled
		if zone.Name != "" {
			e.zoneName = zone.Name
		}
	}
	e.pools = newPoolIndex(req.ZoneID, st.Pools(req.ZoneID))
	e.vols = orderVolumes(req.Volumes)
	for _, v := range e.vols {
		if v.PoolID == "" {
			e.newBytes += v.SizeBytes
		}
	}
	e.chosen = make([]*slot, len(e.vols))
	return e
}

// cluster returns the cached facts of a host's cluster.
func (e *evaluator) cluster(h *fsm.Host) *clusterInfo {
	if ci := e.clusters[h.ClusterID]; ci != nil {
		return ci
	}
	c := e.st.Cluster(h.ClusterID)
	ci := &clusterInfo{known: c != nil, open: c != nil && c.AllocationState == fsm.AllocationEnabled}
	ci.cpuRatio, ci.memRatio = e.st.Overcommit(c)
	e.clusters[h.ClusterID] = ci
	return ci
}

// pod returns whether a pod exists and is allocation-enabled.
func (e *evaluator) pod(id string) (known, open bool) {
	if p, ok := e.pods[id]; ok {
		return p[0], p[1]
	}
	p := e.st.Pod(id)
	known, open = p != nil, p != nil && p.AllocationState == fsm.AllocationEnabled
	e.pods[id] = [2]bool{known, open}
	return known, open
}

// check judges one host and returns, whatever the verdict, what CPU and
// memory it has free before this VM.
func (e *evaluator) check(h *fsm.Host) (verdict, int64, int64) {
	ci := e.cluster(h)
	cpu, mem := HostFree(h, ci.cpuRatio, ci.memRatio)
	return e.verdict(h, ci, cpu, mem), cpu, mem
}

func (e *evaluator) verdict(h *fsm.Host, ci *clusterInfo, cpu, mem int64) verdict {
	r := e.req
	switch {
	case r.PodID != "" && h.PodID != r.PodID:
		return verdict{kind: outsidePod}
	case r.ClusterID != "" && h.ClusterID != r.ClusterID:
		return verdict{kind: outsideCluster}
	case r.HostID != "" && h.ID != r.HostID:
		return verdict{kind: notRequested}
	case e.avoid[h.ID]:
		return verdict{kind: avoided}
	case e.anti[h.ID]:
		return verdict{kind: antiAffine}
	case e.affine != nil && !e.affine[h.ID]:
		return verdict{kind: notAffine}
	case h.State != fsm.HostStateUp:
		return verdict{kind: notUp, state: h.State}
	}
	switch h.ResourceState {
	case fsm.ResourceStateEnabled:
	case fsm.ResourceStateDisabled:
		return verdict{kind: disabled, state: h.ResourceState}
	case fsm.ResourceStateMaintenance, fsm.ResourceStatePrepareMaintenance, fsm.ResourceStateErrorInMaintenance:
		return verdict{kind: maintenance, state: h.ResourceState}
	default:
		return verdict{kind: notEnabled, state: h.ResourceState}
	}
	podKnown, podOpen := e.pod(h.PodID)
	switch {
	case !e.zoneOpen:
		return verdict{kind: zoneClosed}
	case !podKnown:
		return verdict{kind: podUnknown}
	case !podOpen:
		return verdict{kind: podClosed}
	case !ci.known:
		return verdict{kind: clusterUnknown}
	case !ci.open:
		return verdict{kind: clusterClosed}
	}
	if i := missing(e.hostTags, h.HostTags); i >= 0 {
		return verdict{kind: missingTag, idx: i}
	}
	if cpu < e.needCPU {
		return verdict{kind: shortCPU, free: cpu}
	}
	if mem < r.MemoryBytes {
		return verdict{kind: shortMemory, free: mem}
	}
	return e.assign(h)
}

// missing returns the index of the first wanted tag (already folded) that
// have lacks, or -1.
func missing(want, have []string) int {
	for i, w := range want {
		found := false
		for _, t := range have {
			if strings.EqualFold(strings.TrimSpace(t), w) {
				found = true
				break
			}
		}
		if !found {
			return i
		}
	}
	return -1
}
