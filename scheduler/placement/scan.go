package placement

import (
	"github.com/stratus-cloud/stratus/fsm"
)

// Place samples a zone instead of judging every host of it (Nomad's limit
// iterator, the "power of k choices"): it walks the hosts in ID order from
// the first one at or after the request's SpreadKey, wrapping around, and
// stops at the placementSample-th suitable host; the plan is then chosen
// among the best spreadChoices of those as before. SpreadKey is the VM's
// ID, a random UUID like the host IDs, so the walks of different VMs begin
// all over the zone, and the same state and request still walk the same
// hosts. A zone with no more suitable hosts than the sample is walked
// whole, which gives exactly the full scan's plan; a zone with none is
// walked whole too, so the error counts every host.

// placementSample is how many suitable hosts a placement looks at. The
// best of k random choices is already in the top 1/(k+1) of the zone on
// average; choosing among the best spreadChoices of 64 keeps the host in
// the best eighth or so of the zone by free memory, where the full scan
// took one of the 8 best of all. 64 consecutive hosts also smooth out the
// uneven gaps between random IDs, which would favour the host after a wide
// gap if the walk stopped at the first fit. Judging 64 hosts costs
// microseconds (Nomad settles for ceil(log2 n), 14 at 10,000 hosts, but
// picks only the single best); a zone of up to 64 suitable hosts is
// placed exactly as by a full scan.
const placementSample = 64

// Scope is the set of hosts a scan walks: the hosts of a zone, or only
// those of one pod or cluster (the cluster when both are set). A pod or
// cluster scope is not checked against the zone: the allocator is.
type Scope struct {
	ZoneID, PodID, ClusterID string
}

// scan is what a walk over hosts found.
type scan struct {
	top   []ranked // the best spreadChoices suitable hosts, best first
	t     tally    // the hosts turned down, and t.suitable
	hosts int      // hosts judged
}

// judge checks one host and books the outcome.
func (s *scan) judge(e *evaluator, h *fsm.Host) {
	s.hosts++
	v, cpu, mem := e.check(h)
	if v.kind != fits {
		s.t.add(v)
		return
	}
	s.t.suitable++
	s.top = insertRanked(s.top, ranked{h, cpu, mem})
}

// hostScan runs the walk Place needs: the requested host alone, else a
// sample of the narrowest scope the request allows. Only when whole is the
// tally that of every host of the zone.
func (e *evaluator) hostScan() (s *scan, whole bool) {
	r := e.req
	if r.HostID != "" {
		s = &scan{}
		if h := e.st.Host(r.HostID); h != nil && h.ZoneID == r.ZoneID {
			s.judge(e, h)
		}
		return s, false
	}
	scope := Scope{ZoneID: r.ZoneID, PodID: r.PodID, ClusterID: r.ClusterID}
	return e.walk(scope, r.SpreadKey, placementSample), r.PodID == "" && r.ClusterID == ""
}

// walk judges the hosts of scope that belong to the request's zone, from
// start on, until limit of them are suitable (0: no limit).
func (e *evaluator) walk(scope Scope, start string, limit int) *scan {
	s := &scan{}
	e.st.HostsFrom(scope, start, func(h *fsm.Host) bool {
		if h == nil || h.ZoneID != e.req.ZoneID {
			return true
		}
		s.judge(e, h)
		return limit == 0 || s.t.suitable < limit
	})
	return s
}
