package placement

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stratus-cloud/stratus/fsm"
)

// randomID draws an ID shaped like a UUID's leading hex, so host IDs and
// spread keys are spread over one ID space as the real ones are.
func randomID(rng *rand.Rand) string { return fmt.Sprintf("%016x", rng.Uint64()) }

// bigCloud returns newCloud with n hosts of random IDs, alternately in c1
// and c2, of 8 cores and 8..16 GiB (random), all Up with room.
func bigCloud(n int, seed uint64) *memState {
	m := newCloud()
	rng := rand.New(rand.NewPCG(seed, seed))
	for i := range n {
		m.addHost(randomID(rng), []string{"c1", "c2"}[i%2], 8, 8192+rng.Int64N(8192))
	}
	return m
}

// wantFits fails unless plan names a host of m that is Up and has the
// request's memory and CPU free.
func wantFits(t *testing.T, m *memState, req Request, plan Plan) {
	t.Helper()
	h := m.host(plan.HostID)
	if h == nil || h.State != fsm.HostStateUp || plan.ClusterID != h.ClusterID || plan.PodID != h.PodID {
		t.Fatalf("plan %+v names no Up host of the zone (%+v)", plan, h)
	}
	cpu, mem := HostFree(h, 1, 1)
	if mem < req.MemoryBytes || cpu < int64(req.CPUs)*req.CPUMHz {
		t.Fatalf("plan chose %s with %d MHz and %d bytes free for %+v", h.ID, cpu, mem, req)
	}
}

func TestPlaceSamplesABigZone(t *testing.T) {
	m := bigCloud(5000, 1)
	for _, h := range m.hosts[:len(m.hosts)/3] {
		h.State = fsm.HostStateDown // a third of the zone can take nothing
	}
	rng := rand.New(rand.NewPCG(7, 7))
	chosen := map[string]bool{}
	for range 100 {
		req := vmReq()
		req.SpreadKey = randomID(rng)
		m.visited = 0
		plan, err := Place(m, req)
		if err != nil {
			t.Fatalf("key %s: %v", req.SpreadKey, err)
		}
		// 64 suitable hosts and the Down ones between them: about 96.
		if m.visited < placementSample || m.visited > 2*placementSample {
			t.Fatalf("key %s: Place judged %d of 5000 hosts, want %d..%d", req.SpreadKey, m.visited, placementSample, 2*placementSample)
		}
		wantFits(t, m, req, plan)
		again, err := Place(m, req)
		if err != nil || again.HostID != plan.HostID {
			t.Fatalf("key %s: placed on %s, then %s (%v)", req.SpreadKey, plan.HostID, again.HostID, err)
		}
		chosen[plan.HostID] = true
	}
	// Each key samples its own part of the zone, so placements made at the
	// same moment rarely want the same host (a full scan gave them all the
	// same spreadChoices hosts).
	if len(chosen) < 80 {
		t.Errorf("100 keys chose %d hosts, want most of them distinct", len(chosen))
	}
}

func TestPlaceFindsTheOnlyHostWithRoom(t *testing.T) {
	m := newCloud()
	for i := range 5000 {
		m.addHost(fmt.Sprintf("h%05d", i), "c1", 8, 8192).MemoryAllocated = 8192 * mb
	}
	m.host("h02000").MemoryAllocated = 0
	req := vmReq()
	req.SpreadKey = "h02001" // the walk reaches h02000 last, after wrapping
	plan, err := Place(m, req)
	if err != nil || plan.HostID != "h02000" {
		t.Fatalf("Place = %+v, %v; want h02000", plan, err)
	}
	if m.visited != 5000 {
		t.Fatalf("judged %d hosts, want the whole zone of 5000", m.visited)
	}
}

func TestPlaceFullBigZoneCountsEveryHost(t *testing.T) {
	m := newCloud()
	for i := range 5000 {
		h := m.addHost(fmt.Sprintf("h%05d", i), []string{"c1", "c2"}[i%2], 8, 8192)
		h.MemoryAllocated = 7680 * mb
		if i%5 == 0 {
			h.State = fsm.HostStateDown
		}
	}
	cases := []struct {
		name    string
		req     func(r *Request)
		reasons string
	}{
		{"zone", func(r *Request) { r.SpreadKey = "h03000" }, "1000 hosts are not Up, 4000 have at most 512 MiB of memory free"},
		{"cluster", func(r *Request) { r.ClusterID = "c2" },
			"2500 hosts are outside cluster c2, 500 are not Up, 2000 have at most 512 MiB of memory free"},
		{"pod", func(r *Request) { r.PodID = "p1" },
			"2500 hosts are outside pod p1, 500 are not Up, 2000 have at most 512 MiB of memory free"},
		{"host", func(r *Request) { r.HostID = "h00001" },
			"4999 hosts are not the requested host h00001, 1 has only 512 MiB of memory free"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := vmReq()
			c.req(&req)
			_, err := Place(m, req)
			var ice *InsufficientCapacityError
			if !errors.As(err, &ice) {
				t.Fatalf("Place error = %v, want an InsufficientCapacityError", err)
			}
			if got := strings.Join(ice.Reasons, ", "); got != c.reasons {
				t.Fatalf("reasons:\n got %s\nwant %s", got, c.reasons)
			}
		})
	}
}

func TestPlaceRestrictedInABigZone(t *testing.T) {
	m := bigCloud(5000, 2)
	var inC2 []string
	for _, h := range m.hosts {
		if h.ClusterID == "c2" {
			inC2 = append(inC2, h.ID)
		}
	}
	cases := []struct {
		name   string
		req    func(r *Request)
		visits int
		check  func(p Plan) bool
	}{
		{"host", func(r *Request) { r.HostID = inC2[7] }, 1, func(p Plan) bool { return p.HostID == inC2[7] }},
		{"cluster", func(r *Request) { r.ClusterID = "c2" }, placementSample, func(p Plan) bool { return p.ClusterID == "c2" }},
		{"pod", func(r *Request) { r.PodID = "p1" }, placementSample, func(p Plan) bool { return p.PodID == "p1" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := vmReq()
			req.SpreadKey = "8000000000000000"
			c.req(&req)
			m.visited = 0
			plan, err := Place(m, req)
			if err != nil || !c.check(plan) {
				t.Fatalf("Place = %+v, %v", plan, err)
			}
			wantFits(t, m, req, plan)
			if m.visited != c.visits {
				t.Fatalf("judged %d hosts, want %d", m.visited, c.visits)
			}
		})
	}
}

// TestPlaceSmallZoneAsFullScan: with no more suitable hosts than the
// sample, wherever the walk starts, Place takes what the full scan took:
// the host with the most memory free without a key, one of the best
// spreadChoices (in Candidates' order) by the key's hash with one.
func TestPlaceSmallZoneAsFullScan(t *testing.T) {
	m := bigCloud(placementSample, 3) // exactly as many suitable hosts as the sample
	for i := range 30 {               // unsuitable hosts don't count toward it
		h := m.addHost(fmt.Sprintf("%016x", uint64(i)<<59|1), "c1", 8, 512)
		if i%3 == 0 {
			h.MemoryTotal, h.ResourceState = 16384*mb, fsm.ResourceStateDisabled
		}
	}
	req := vmReq()
	var best []*fsm.Host
	for _, c := range Candidates(m, req) {
		if c.Suitable && len(best) < spreadChoices {
			best = append(best, c.Host)
		}
	}
	if plan, err := Place(m, req); err != nil || plan.HostID != best[0].ID {
		t.Fatalf("no key: Place = %+v, %v; want %s, the most memory free", plan, err, best[0].ID)
	}
	rng := rand.New(rand.NewPCG(9, 9))
	for range 200 {
		req.SpreadKey = randomID(rng)
		want := best[spreadIndex(req.SpreadKey, len(best))].ID
		if plan, err := Place(m, req); err != nil || plan.HostID != want {
			t.Fatalf("key %s: Place = %+v, %v; want %s", req.SpreadKey, plan, err, want)
		}
	}
}
