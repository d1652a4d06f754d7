package placement

import (
	"cmp"
	"slices"
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
)

// volume is a requested volume with its position in the request and its
// storage tags folded.
type volume struct {
	Volume
	idx  int
	tags []string
}

// orderVolumes puts the placed volumes first (they only need a check),
// then the new ones largest first: worst-fit decreasing packs several
// volumes onto the pools better than request order, and the order is
// fixed by size and ID so plans stay deterministic.
func orderVolumes(vs []Volume) []volume {
	out := make([]volume, len(vs))
	for i, v := range vs {
		out[i] = volume{Volume: v, idx: i, tags: fold(v.StorageTags)}
	}
	slices.SortStableFunc(out, func(a, b volume) int {
		if pa, pb := a.PoolID != "", b.PoolID != ""; pa != pb {
			if pa {
				return -1
			}
			return 1
		}
		if a.PoolID != "" {
			return cmp.Compare(a.idx, b.idx)
		}
		if c := cmp.Compare(b.SizeBytes, a.SizeBytes); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out
}

// slot is a pool that takes new volumes (state Up), with what the plan of
// the host being judged has put on it so far.
type slot struct {
	p       *fsm.StoragePool
	free    int64
	tags    []string
	used    int64
	touched bool
}

func (s *slot) left() int64 { return s.free - s.used }

// poolIndex holds a zone's pools by where they can be reached from, so
// judging a host looks only at the pools it reaches.
type poolIndex struct {
	byID    map[string]*fsm.StoragePool // every pool of the zone, whatever its state
	zone    []*slot
	cluster map[string][]*slot
	host    map[string][]*slot
	touched []*slot
}

func newPoolIndex(zoneID string, pools []*fsm.StoragePool) *poolIndex {
	x := &poolIndex{byID: make(map[string]*fsm.StoragePool, len(pools)), cluster: map[string][]*slot{}, host: map[string][]*slot{}}
	slots := make([]slot, 0, len(pools)) // one allocation; never grows past cap
	for _, p := range pools {
		if p == nil || p.ZoneID != zoneID {
			continue
		}
		x.byID[p.ID] = p
		if p.State != fsm.PoolStateUp {
			continue
		}
		slots = append(slots, slot{p: p, free: PoolFree(p), tags: fold(p.Tags)})
		s := &slots[len(slots)-1]
		switch {
		case strings.EqualFold(p.Scope, fsm.ScopeZone):
			x.zone = append(x.zone, s)
		case strings.EqualFold(p.Scope, fsm.ScopeCluster) && p.ClusterID != "":
			x.cluster[p.ClusterID] = append(x.cluster[p.ClusterID], s)
		case strings.EqualFold(p.Scope, fsm.ScopeHost) && p.HostID != "":
			x.host[p.HostID] = append(x.host[p.HostID], s)
		}
	}
	return x
}

// reachable reports whether host h can use pool p.
func reachable(p *fsm.StoragePool, h *fsm.Host) bool {
	switch {
	case strings.EqualFold(p.Scope, fsm.ScopeZone):
		return p.ZoneID == h.ZoneID
	case strings.EqualFold(p.Scope, fsm.ScopeCluster):
		return p.ClusterID != "" && p.ClusterID == h.ClusterID
	case strings.EqualFold(p.Scope, fsm.ScopeHost):
		return p.HostID != "" && p.HostID == h.ID
	}
	return false
}

// pick returns the pool for a new volume on host h: among the pools of
// the right kind (the host's own for a local volume, the zone's and the
// host cluster's for a shared one) that carry its tags and still have room
// after this plan's earlier volumes, the one with the most left, then the
// lowest ID. With none, crowded says whether some pool would have had room
// but for those earlier volumes.
func (x *poolIndex) pick(v volume, h *fsm.Host) (best *slot, crowded bool) {
	consider := func(slots []*slot) {
		for _, s := range slots {
			if !hasAll(s.tags, v.tags) {
				continue
			}
			if s.left() < v.SizeBytes {
				crowded = crowded || s.free >= v.SizeBytes
				continue
			}
			if best == nil || s.left() > best.left() || s.left() == best.left() && s.p.ID < best.p.ID {
				best = s
			}
		}
	}
	if v.Local {
		consider(x.host[h.ID])
	} else {
		consider(x.zone)
		consider(x.cluster[h.ClusterID])
	}
	return best, crowded
}

// take books a volume on a slot for the plan being judged.
func (x *poolIndex) take(s *slot, size int64) {
	s.used += size
	if !s.touched {
		s.touched = true
		x.touched = append(x.touched, s)
	}
}

// reset forgets the bookings of the plan just judged.
func (x *poolIndex) reset() {
	for _, s := range x.touched {
		s.used, s.touched = 0, false
	}
	x.touched = x.touched[:0]
}

// assign gives every volume a pool from host h, leaving the choices in
// e.chosen, or says which volume found none.
func (e *evaluator) assign(h *fsm.Host) verdict {
	defer e.pools.reset()
	for i, v := range e.vols {
		e.chosen[i] = nil
		if v.PoolID != "" {
			if p := e.pools.byID[v.PoolID]; p == nil || !reachable(p, h) {
				return verdict{kind: poolUnreachable, idx: v.idx}
			}
			continue
		}
		s, crowded := e.pools.pick(v, h)
		if s == nil {
			return verdict{kind: noPool, idx: v.idx, crowded: crowded}
		}
		e.pools.take(s, v.SizeBytes)
		e.chosen[i] = s
	}
	return verdict{kind: fits}
}

// poolPlan returns the volume-to-pool map of the chosen host.
func (e *evaluator) poolPlan(h *fsm.Host) map[string]string {
	e.assign(h)
	m := make(map[string]string, len(e.vols))
	for i, v := range e.vols {
		if v.PoolID != "" {
			m[v.ID] = v.PoolID
		} else if e.chosen[i] != nil {
			m[v.ID] = e.chosen[i].p.ID
		}
	}
	return m
}

// hasAll reports whether every tag of want (folded) is in have (folded).
func hasAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}
