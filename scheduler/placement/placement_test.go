package placement

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/stratus-cloud/stratus/fsm"
)

// placeCase is one Place scenario: a cloud built on newCloud, a request
// built on vmReq, and either the host (and pools) expected or the words
// the error must contain.
type placeCase struct {
	name   string
	setup  func(m *memState)
	req    func(r *Request)
	host   string            // expected host; empty: Place must fail
	pools  map[string]string // expected volume -> pool, when set
	errHas []string          // substrings of the error when Place fails
}

func runPlaceCases(t *testing.T, cases []placeCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newCloud()
			c.setup(m)
			r := vmReq()
			if c.req != nil {
				c.req(&r)
			}
			plan, err := Place(m, r)
			if c.host == "" {
				if err == nil {
					t.Fatalf("Place = %+v, want an error", plan)
				}
				if !errors.Is(err, ErrInsufficientCapacity) {
					t.Fatalf("error %v does not match ErrInsufficientCapacity", err)
				}
				for _, s := range c.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q lacks %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Place: %v", err)
			}
			h := m.host(c.host)
			want := Plan{ZoneID: "z1", PodID: h.PodID, ClusterID: h.ClusterID, HostID: h.ID}
			if plan.ZoneID != want.ZoneID || plan.PodID != want.PodID || plan.ClusterID != want.ClusterID || plan.HostID != want.HostID {
				t.Fatalf("plan = %+v, want host %+v", plan, want)
			}
			if c.pools != nil && !maps.Equal(plan.Pools, c.pools) {
				t.Fatalf("pools = %v, want %v", plan.Pools, c.pools)
			}
		})
	}
}

func TestPlaceCPU(t *testing.T) {
	runPlaceCases(t, []placeCase{
		{
			name:  "cpu exact fit",
			setup: func(m *memState) { m.addHost("h1", "c1", 4, 8192) },
			req:   func(r *Request) { r.CPUs, r.CPUMHz = 4, 2000 },
			host:  "h1",
		},
		{
			name:   "cpu one MHz over",
			setup:  func(m *memState) { m.addHost("h1", "c1", 4, 8192) },
			req:    func(r *Request) { r.CPUs, r.CPUMHz = 1, 8001 },
			errHas: []string{"1 host has only 8000 MHz of CPU free"},
		},
		{
			name:  "cpu allocated is subtracted, exact fit",
			setup: func(m *memState) { m.addHost("h1", "c1", 4, 8192).CPUAllocated = 6000 },
			req:   func(r *Request) { r.CPUs, r.CPUMHz = 2, 1000 },
			host:  "h1",
		},
		{
			name:   "cpu allocated is subtracted, one MHz over",
			setup:  func(m *memState) { m.addHost("h1", "c1", 4, 8192).CPUAllocated = 6001 },
			req:    func(r *Request) { r.CPUs, r.CPUMHz = 2, 1000 },
			errHas: []string{"has only 1999 MHz of CPU free"},
		},
	})
}

func TestPlaceMemory(t *testing.T) {
	runPlaceCases(t, []placeCase{
		{
			name:  "memory exact fit",
			setup: func(m *memState) { m.addHost("h1", "c1", 4, 8192).MemoryAllocated = 4096 * mb },
			req:   func(r *Request) { r.MemoryBytes = 4096 * mb },
			host:  "h1",
		},
		{
			name:   "memory one byte over",
			setup:  func(m *memState) { m.addHost("h1", "c1", 4, 8192).MemoryAllocated = 4096 * mb },
			req:    func(r *Request) { r.MemoryBytes = 4096*mb + 1 },
			errHas: []string{"1 host has only 4096 MiB of memory free"},
		},
		{
			name: "cloud-wide cpu overcommit, exact fit",
			setup: func(m *memState) {
				m.cpuRatio = 2
				m.addHost("h1", "c1", 4, 8192)
			},
			req:  func(r *Request) { r.CPUs, r.CPUMHz = 8, 2000 },
			host: "h1",
		},
		{
			name: "cloud-wide cpu overcommit, one MHz over",
			setup: func(m *memState) {
				m.cpuRatio = 2
				m.addHost("h1", "c1", 4, 8192)
			},
			req:    func(r *Request) { r.CPUs, r.CPUMHz = 1, 16001 },
			errHas: []string{"has only 16000 MHz of CPU free"},
		},
		{
			name: "cluster cpu overcommit overrides the cloud-wide one",
			setup: func(m *memState) {
				m.cpuRatio = 2
				m.clusters["c1"].CPUOvercommit = 3
				m.addHost("h1", "c1", 4, 8192)
			},
			req:  func(r *Request) { r.CPUs, r.CPUMHz = 12, 2000 },
			host: "h1",
		},
		{
			name: "cluster override applies only to its own cluster",
			setup: func(m *memState) {
				m.cpuRatio = 2
				m.clusters["c1"].CPUOvercommit = 3
				m.addHost("h2", "c2", 4, 8192)
			},
			req:    func(r *Request) { r.CPUs, r.CPUMHz = 12, 2000 },
			errHas: []string{"has only 16000 MHz of CPU free"},
		},
		{
			name: "cluster memory overcommit, exact fit",
			setup: func(m *memState) {
				m.memRatio = 1.2
				m.clusters["c1"].MemoryOvercommit = 1.5
				m.addHost("h1", "c1", 4, 8192)
			},
			req:  func(r *Request) { r.MemoryBytes = 12288 * mb },
			host: "h1",
		},
		{
			name: "cloud-wide memory overcommit, one byte over",
			setup: func(m *memState) {
				m.memRatio = 1.5
				m.addHost("h1", "c1", 4, 8192)
			},
			req:    func(r *Request) { r.MemoryBytes = 12288*mb + 1 },
			errHas: []string{"has only 12288 MiB of memory free"},
		},
		{
			name: "overbooked host (ratio lowered) is short, not negative",
			setup: func(m *memState) {
				m.addHost("h1", "c1", 4, 8192).MemoryAllocated = 9000 * mb
			},
			errHas: []string{"has only 0 MiB of memory free"},
		},
	})
}

func TestPlaceHostTags(t *testing.T) {
	runPlaceCases(t, []placeCase{
		{
			name:  "host tags match without case",
			setup: func(m *memState) { m.addHost("h1", "c1", 4, 8192, "SSD", "gpu") },
			req:   func(r *Request) { r.HostTags = []string{"ssd", " GPU "} },
			host:  "h1",
		},
		{
			name: "every host tag is needed",
			setup: func(m *memState) {
				m.addHost("h1", "c1", 4, 8192, "ssd")
				m.addHost("h2", "c1", 4, 8192, "gpu")
				m.addHost("h3", "c1", 4, 8192, "ssd", "gpu")
			},
			req:  func(r *Request) { r.HostTags = []string{"ssd", "gpu"} },
			host: "h3",
		},
		{
			name:   "missing host tag is named",
			setup:  func(m *memState) { m.addHost("h1", "c1", 4, 8192, "ssd") },
			req:    func(r *Request) { r.HostTags = []string{"ssd", "NVMe"} },
			errHas: []string{"1 host lacks host tag nvme"},
		},
	})
}

func TestPlaceAllocationStates(t *testing.T) {
	runPlaceCases(t, []placeCase{
		{
			name: "disabled zone",
			setup: func(m *memState) {
				m.zones["z1"].AllocationState = fsm.AllocationDisabled
				m.addHost("h1", "c1", 4, 8192)
			},
			errHas: []string{"1 host is in disabled zone z1"},
		},
		{
			name: "zone without allocation state is not enabled",
			setup: func(m *memState) {
				m.zones["z1"].AllocationState = ""
				m.addHost("h1", "c1", 4, 8192)
			},
			errHas: []string{"in disabled zone z1"},
		},
		{
			name: "disabled pod",
			setup: func(m *memState) {
				m.pods["p1"].AllocationState = fsm.AllocationDisabled
				m.addHost("h1", "c1", 4, 8192)
				m.addHost("h2", "c2", 1, 2048)
			},
			host: "h2",
		},
		{
			name: "disabled cluster",
			setup: func(m *memState) {
				m.clusters["c1"].AllocationState = fsm.AllocationDisabled
				m.addHost("h1", "c1", 4, 8192)
			},
			errHas: []string{"1 host is in a disabled cluster"},
		},
		{
			name: "disabled host",
			setup: func(m *memState) {
				m.addHost("h1", "c1", 4, 8192).ResourceState = fsm.ResourceStateDisabled
				m.addHost("h2", "c1", 1, 2048)
			},
			host: "h2",
		},
		{
			name: "maintenance hosts",
			setup: func(m *memState) {
				m.addHost("h1", "c1", 4, 8192).ResourceState = fsm.ResourceStateMaintenance
				m.addHost("h2", "c1", 4, 8192).ResourceState = fsm.ResourceStatePrepareMaintenance
				m.addHost("h3", "c1", 4, 8192).ResourceState = fsm.ResourceStateErrorInMaintenance
			},
			errHas: []string{"3 hosts are in maintenance"},
		},
		{
			name: "hosts not Up",
			setup: func(m *memState) {
				m.addHost("h1", "c1", 4, 8192).State = fsm.HostStateDown
				m.addHost("h2", "c1", 4, 8192).State = fsm.HostStateDisconnected
				m.addHost("h3", "c1", 4, 8192).State = fsm.HostStateAlert
				m.addHost("h4", "c1", 1, 2048)
			},
			host: "h4",
		},
		{
			name:   "no hosts",
			setup:  func(*memState) {},
			errHas: []string{"no host in zone z1 can take 1 CPU x 1000 MHz and 1024 MiB: the zone has no hosts"},
		},
	})
}

func TestPlaceRestrictions(t *testing.T) {
	// h1 (c1) has the most memory, so without a restriction it wins.
	three := func(m *memState) {
		m.addHost("h1", "c1", 4, 16384)
		m.addHost("h2", "c1", 4, 8192)
		m.addHost("h3", "c2", 4, 4096)
	}
	runPlaceCases(t, []placeCase{
		{name: "unrestricted takes the most memory", setup: three, host: "h1"},
		{name: "host", setup: three, req: func(r *Request) { r.HostID = "h3" }, host: "h3"},
		{name: "cluster", setup: three, req: func(r *Request) { r.ClusterID = "c2" }, host: "h3"},
		{name: "pod", setup: three, req: func(r *Request) { r.PodID = "p2" }, host: "h3"},
		{
			name:  "requested host lacking memory fails, though others fit",
			setup: three,
			req:   func(r *Request) { r.HostID, r.MemoryBytes = "h3", 8192*mb },
			errHas: []string{
				"2 hosts are not the requested host h3, 1 has only 4096 MiB of memory free",
			},
		},
		{
			name:   "requested host unknown",
			setup:  three,
			req:    func(r *Request) { r.HostID = "nope" },
			errHas: []string{"3 hosts are not the requested host nope"},
		},
		{name: "avoid", setup: three, req: func(r *Request) { r.AvoidHosts = []string{"h1"} }, host: "h2"},
		{name: "anti-affinity", setup: three, req: func(r *Request) { r.AntiAffinityHosts = []string{"h1", "h2"} }, host: "h3"},
		{name: "affinity", setup: three, req: func(r *Request) { r.AffinityHosts = []string{"h2", "h3"} }, host: "h2"},
		{
			name:  "affinity and anti-affinity together",
			setup: three,
			req: func(r *Request) {
				r.AffinityHosts, r.AntiAffinityHosts = []string{"h2", "h3"}, []string{"h2"}
			},
			host: "h3",
		},
		{
			name:  "every host excluded",
			setup: three,
			req: func(r *Request) {
				r.AvoidHosts, r.AntiAffinityHosts, r.AffinityHosts = []string{"h1"}, []string{"h2"}, []string{"h1", "h2"}
			},
			errHas: []string{"1 host is avoided", "1 is excluded by anti-affinity", "1 is outside the VM's host affinity"},
		},
	})
}

func TestPlaceChoice(t *testing.T) {
	runPlaceCases(t, []placeCase{
		{
			name: "most free memory beats more free CPU",
			setup: func(m *memState) {
				m.addHost("h1", "c1", 32, 8192)
				m.addHost("h2", "c1", 2, 8193)
			},
			host: "h2",
		},
		{
			name: "free memory counts allocations",
			setup: func(m *memState) {
				m.addHost("h1", "c1", 4, 16384).MemoryAllocated = 12288 * mb
				m.addHost("h2", "c1", 4, 8192)
			},
			host: "h2",
		},
		{
			name: "memory tie goes to more free CPU",
			setup: func(m *memState) {
				m.addHost("h1", "c1", 4, 8192)
				m.addHost("h2", "c1", 8, 8192)
			},
			host: "h2",
		},
		{
			name: "full tie goes to the lowest ID",
			setup: func(m *memState) {
				m.addHost("h3", "c1", 4, 8192)
				m.addHost("h1", "c2", 4, 8192)
				m.addHost("h2", "c1", 4, 8192)
			},
			host: "h1",
		},
	})
}

func TestExhaustionMessage(t *testing.T) {
	m := newCloud()
	for _, id := range []string{"h1", "h2", "h3"} {
		m.addHost(id, "c1", 8, 16384, "ssd").State = fsm.HostStateDown
	}
	m.addHost("h4", "c1", 8, 16384, "ssd").ResourceState = fsm.ResourceStateDisabled
	m.addHost("h5", "c2", 8, 16384)
	m.addHost("h6", "c2", 8, 16384, "hdd")
	m.addHost("h7", "c2", 8, 16384, "SSD").MemoryAllocated = 14336 * mb
	req := Request{ZoneID: "z1", CPUs: 4, CPUMHz: 2000, MemoryBytes: 8192 * mb, HostTags: []string{"ssd"}}

	_, err := Place(m, req)
	want := "no host in zone z1 can take 4 CPUs x 2000 MHz and 8192 MiB: 3 hosts are not Up, 1 is disabled, " +
		"2 lack host tag ssd, 1 has only 2048 MiB of memory free; add capacity or relax the offering"
	if err == nil || err.Error() != want {
		t.Fatalf("error:\n got %v\nwant %s", err, want)
	}
	var ice *InsufficientCapacityError
	if !errors.As(err, &ice) || ice.ZoneID != "z1" || len(ice.Reasons) != 4 || len(ice.Storage) != 0 {
		t.Fatalf("error value = %#v", ice)
	}
	// Several hosts short of memory: the most any of them has.
	m.addHost("h8", "c2", 8, 16384, "ssd").MemoryAllocated = 12288 * mb
	if _, err := Place(m, req); err == nil || !strings.Contains(err.Error(), "2 have at most 4096 MiB of memory free") {
		t.Fatalf("error = %v", err)
	}
}

func TestUnknownZone(t *testing.T) {
	_, err := Place(newCloud(), Request{ZoneID: "nope", CPUs: 1, CPUMHz: 1, MemoryBytes: 1})
	if !errors.Is(err, ErrUnknownZone) || errors.Is(err, ErrInsufficientCapacity) {
		t.Fatalf("error = %v, want ErrUnknownZone", err)
	}
}

func TestDeterminism(t *testing.T) {
	m := newCloud()
	for _, id := range []string{"h5", "h2", "h9", "h1", "h7"} {
		m.addHost(id, "c1", 4, 8192)
	}
	m.addPool("zp-b", fsm.ScopeZone, "", 100)
	m.addPool("zp-a", fsm.ScopeZone, "", 100)
	m.addPool("cp", fsm.ScopeCluster, "c1", 100)
	req := vmReq()
	req.Volumes = []Volume{{ID: "root", SizeBytes: 10 * gb}, {ID: "data", SizeBytes: 10 * gb}}
	first, err := Place(m, req)
	if err != nil {
		t.Fatal(err)
	}
	// Equal hosts and equal pools: the lowest IDs, with the second volume
	// going to the next pool with the most left.
	want := map[string]string{"data": "cp", "root": "zp-a"}
	if first.HostID != "h1" || !maps.Equal(first.Pools, want) {
		t.Fatalf("plan = %+v, want h1 with %v", first, want)
	}
	for i := range 20 {
		// Same state in another order: same plan.
		n := len(m.hosts)
		m.hosts[i%n], m.hosts[(i*7+3)%n] = m.hosts[(i*7+3)%n], m.hosts[i%n]
		m.pools[0], m.pools[2] = m.pools[2], m.pools[0]
		again, err := Place(m, req)
		if err != nil || again.HostID != first.HostID || !maps.Equal(again.Pools, first.Pools) {
			t.Fatalf("run %d: plan = %+v, %v; want %+v", i, again, err, first)
		}
	}
}

func TestCandidates(t *testing.T) {
	m := newCloud()
	m.addHost("h1", "c1", 4, 4096)
	m.addHost("h2", "c1", 4, 8192)
	m.addHost("h3", "c2", 4, 16384).State = fsm.HostStateDown
	m.addHost("h4", "c2", 1, 2048)
	req := vmReq()
	req.MemoryBytes = 4096 * mb
	req.AvoidHosts = []string{"h1"} // its current host, on migration

	got := Candidates(m, req)
	type row struct {
		id       string
		suitable bool
		reason   string
	}
	want := []row{
		{"h2", true, ""},
		{"h3", false, "host is not Up (Down)"},
		{"h1", false, "host is avoided (it failed this VM before or is its current host)"},
		{"h4", false, "host has only 2048 MiB of memory free, the VM needs 4096 MiB"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d candidates, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Host.ID != w.id || g.Suitable != w.suitable || g.Reason != w.reason {
			t.Errorf("candidate %d = %s %v %q, want %s %v %q", i, g.Host.ID, g.Suitable, g.Reason, w.id, w.suitable, w.reason)
		}
	}
	if got[0].FreeMemoryBytes != 8192*mb || got[0].FreeCPUMHz != 8000 {
		t.Errorf("h2 free = %d MHz, %d bytes", got[0].FreeCPUMHz, got[0].FreeMemoryBytes)
	}
}

func TestScaled(t *testing.T) {
	for _, c := range []struct {
		total int64
		ratio float64
		want  int64
	}{
		{8000, 1, 8000},
		{8000, 0, 8000},
		{100, 0.29, 29},
		{3, 1.1, 3},
		{8000, 1.5, 12000},
		{1 << 40, 2.5, 5 << 39},
		{1 << 62, 4, 1<<63 - 1},
		{1000, 1.0005, 1000}, // a true fraction rounds down
		{3, 1.5, 4},
	} {
		if got := scaled(c.total, c.ratio); got != c.want {
			t.Errorf("scaled(%d, %v) = %d, want %d", c.total, c.ratio, got, c.want)
		}
	}
}

func TestCandidateReasons(t *testing.T) {
	m := newCloud()
	m.pods["p2"].AllocationState = fsm.AllocationDisabled
	m.addHost("h1", "c1", 1, 8192)
	m.addHost("h2", "c2", 4, 8192)
	m.addHost("h3", "c1", 4, 8192).ResourceState = fsm.ResourceStatePrepareMaintenance
	m.addHost("h4", "c1", 4, 4096)
	m.addPool("local-h4", fsm.ScopeHost, "h4", 10, "fast")
	req := vmReq()
	req.CPUs, req.CPUMHz = 2, 2000
	req.Volumes = []Volume{{ID: "root", SizeBytes: 20 * gb, Local: true, StorageTags: []string{"fast"}}}
	want := map[string]string{
		"h1": "host has only 2000 MHz of CPU free, the VM needs 4000 MHz",
		"h2": "host is in a disabled pod (p2)",
		"h3": "host is in maintenance (PrepareForMaintenance)",
		"h4": "no local storage pool of the host has 20 GiB free with tag fast",
	}
	for _, c := range Candidates(m, req) {
		if c.Suitable || c.Reason != want[c.Host.ID] {
			t.Errorf("%s: suitable %v, reason %q; want %q", c.Host.ID, c.Suitable, c.Reason, want[c.Host.ID])
		}
	}
}

// TestSpreadKey: with a spread key, placements choose among the best few
// hosts, the same one for the same key and state, never a worse one.
func TestSpreadKey(t *testing.T) {
	m := newCloud()
	// 12 hosts: h00..h09 equal and roomy, h10 and h11 with less memory.
	for i := range 10 {
		m.addHost(fmt.Sprintf("h%02d", i), "c1", 8, 16384)
	}
	m.addHost("h10", "c1", 8, 4096)
	m.addHost("h11", "c1", 8, 4096)
	chosen := map[string]int{}
	for i := range 200 {
		req := vmReq()
		req.SpreadKey = fmt.Sprintf("vm-%d", i)
		plan, err := Place(m, req)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := Place(m, req)
		if again.HostID != plan.HostID {
			t.Fatalf("key %s placed on %s then %s", req.SpreadKey, plan.HostID, again.HostID)
		}
		chosen[plan.HostID]++
	}
	if len(chosen) < spreadChoices/2 {
		t.Fatalf("200 keys spread over %d hosts (%v), want most of the best %d", len(chosen), chosen, spreadChoices)
	}
	for h := range chosen {
		if h >= fmt.Sprintf("h%02d", spreadChoices) {
			t.Errorf("chose %s, outside the best %d (h00..h%02d by ID among equals)", h, spreadChoices, spreadChoices-1)
		}
	}
	// Without a key: always the single best.
	if plan, _ := Place(m, vmReq()); plan.HostID != "h00" {
		t.Fatalf("no key: %s, want h00", plan.HostID)
	}
}
