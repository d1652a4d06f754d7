package placement

import (
	"testing"

	"github.com/stratus-cloud/stratus/fsm"
)

func vols(v ...Volume) func(r *Request) { return func(r *Request) { r.Volumes = v } }

// two adds h1 in c1 and h2 in c2; h1 has more memory, so it wins when it
// can.
func two(m *memState) {
	m.addHost("h1", "c1", 4, 16384)
	m.addHost("h2", "c2", 4, 8192)
}

func TestPlaceStoragePools(t *testing.T) {
	runPlaceCases(t, []placeCase{
		{
			name:  "zone pool",
			setup: func(m *memState) { two(m); m.addPool("zp", fsm.ScopeZone, "", 100) },
			req:   vols(Volume{ID: "root", SizeBytes: 50 * gb}),
			host:  "h1", pools: map[string]string{"root": "zp"},
		},
		{
			name: "pool exact fit and one byte over",
			setup: func(m *memState) {
				two(m)
				m.addPool("zp", fsm.ScopeZone, "", 100).AllocatedBytes = 50 * gb
			},
			req:  vols(Volume{ID: "root", SizeBytes: 50 * gb}),
			host: "h1", pools: map[string]string{"root": "zp"},
		},
		{
			name: "pool one byte over",
			setup: func(m *memState) {
				two(m)
				m.addPool("zp", fsm.ScopeZone, "", 100).AllocatedBytes = 50*gb + 1
			},
			req:    vols(Volume{ID: "root", SizeBytes: 50 * gb}),
			errHas: []string{"no primary storage pool reachable from any suitable host has 50 GiB free"},
		},
		{
			name: "pool overprovisioning",
			setup: func(m *memState) {
				two(m)
				p := m.addPool("zp", fsm.ScopeZone, "", 100)
				p.Overprovision, p.AllocatedBytes = 2, 150*gb
			},
			req:  vols(Volume{ID: "root", SizeBytes: 50 * gb}),
			host: "h1", pools: map[string]string{"root": "zp"},
		},
		{
			name: "cluster pool is reachable only from its cluster",
			setup: func(m *memState) {
				two(m)
				m.addPool("cp2", fsm.ScopeCluster, "c2", 100)
			},
			req:  vols(Volume{ID: "root", SizeBytes: 10 * gb}),
			host: "h2", pools: map[string]string{"root": "cp2"},
		},
		{
			name: "pool not Up",
			setup: func(m *memState) {
				two(m)
				m.addPool("zp", fsm.ScopeZone, "", 100).State = fsm.PoolStateDisabled
				m.addPool("cp2", fsm.ScopeCluster, "c2", 100)
			},
			req:  vols(Volume{ID: "root", SizeBytes: 10 * gb}),
			host: "h2", pools: map[string]string{"root": "cp2"},
		},
		{
			name: "most free pool, ties by ID",
			setup: func(m *memState) {
				two(m)
				m.addPool("zp-b", fsm.ScopeZone, "", 100)
				m.addPool("cp1", fsm.ScopeCluster, "c1", 200).AllocatedBytes = 100 * gb
				m.addPool("zp-c", fsm.ScopeZone, "", 90)
			},
			req:  vols(Volume{ID: "root", SizeBytes: 10 * gb}),
			host: "h1", pools: map[string]string{"root": "cp1"},
		},
		{
			name: "storage tags match without case",
			setup: func(m *memState) {
				two(m)
				m.addPool("zp-big", fsm.ScopeZone, "", 500)
				m.addPool("zp-fast", fsm.ScopeZone, "", 100, "Fast", "ssd")
			},
			req:  vols(Volume{ID: "root", SizeBytes: 10 * gb, StorageTags: []string{"fast", "SSD"}}),
			host: "h1", pools: map[string]string{"root": "zp-fast"},
		},
		{
			name:   "storage tag missing",
			setup:  func(m *memState) { two(m); m.addPool("zp", fsm.ScopeZone, "", 100, "fast") },
			req:    vols(Volume{ID: "root", SizeBytes: 50 * gb, StorageTags: []string{"fast", "nvme"}}),
			errHas: []string{"no primary storage pool reachable from any suitable host has 50 GiB free with tags fast, nvme"},
		},
	})
}

func TestPlaceStorageVolumes(t *testing.T) {
	runPlaceCases(t, []placeCase{
		{
			name: "local volume goes to the host's own pool",
			setup: func(m *memState) {
				two(m)
				m.addPool("zp", fsm.ScopeZone, "", 1000)
				m.addPool("local-h2", fsm.ScopeHost, "h2", 100)
			},
			req:  vols(Volume{ID: "root", SizeBytes: 10 * gb, Local: true}),
			host: "h2", pools: map[string]string{"root": "local-h2"},
		},
		{
			name:   "local volume never goes to a shared pool",
			setup:  func(m *memState) { two(m); m.addPool("zp", fsm.ScopeZone, "", 1000) },
			req:    vols(Volume{ID: "root", SizeBytes: 10 * gb, Local: true}),
			errHas: []string{"no local storage pool of any suitable host has 10 GiB free"},
		},
		{
			name:   "shared volume never goes to a local pool",
			setup:  func(m *memState) { two(m); m.addPool("local-h1", fsm.ScopeHost, "h1", 1000) },
			req:    vols(Volume{ID: "root", SizeBytes: 10 * gb}),
			errHas: []string{"no primary storage pool reachable from any suitable host has 10 GiB free"},
		},
		{
			name: "local root and shared data",
			setup: func(m *memState) {
				two(m)
				m.addPool("local-h1", fsm.ScopeHost, "h1", 100)
				m.addPool("zp", fsm.ScopeZone, "", 100)
			},
			req:  vols(Volume{ID: "root", SizeBytes: 10 * gb, Local: true}, Volume{ID: "data", SizeBytes: 20 * gb}),
			host: "h1", pools: map[string]string{"root": "local-h1", "data": "zp"},
		},
		{
			name:  "volumes sum on one pool: exact fit",
			setup: func(m *memState) { two(m); m.addPool("zp", fsm.ScopeZone, "", 100) },
			req:   vols(Volume{ID: "a", SizeBytes: 60 * gb}, Volume{ID: "b", SizeBytes: 40 * gb}),
			host:  "h1", pools: map[string]string{"a": "zp", "b": "zp"},
		},
		{
			name:  "volumes sum on one pool: over",
			setup: func(m *memState) { two(m); m.addPool("zp", fsm.ScopeZone, "", 100) },
			req:   vols(Volume{ID: "a", SizeBytes: 60 * gb}, Volume{ID: "b", SizeBytes: 40*gb + 1}),
			errHas: []string{
				"no host in zone z1 can take 1 CPU x 1000 MHz, 1024 MiB and 100 GiB of primary storage; " +
					"no primary storage pool reachable from any suitable host has 40 GiB free for volume b besides the VM's other volumes; " +
					"add capacity or relax the offering",
			},
		},
		{
			name: "largest volume first packs two pools",
			setup: func(m *memState) {
				two(m)
				m.addPool("big", fsm.ScopeZone, "", 100)
				m.addPool("small", fsm.ScopeZone, "", 60)
			},
			// In request order the 50 GiB volume would take big and leave
			// the 90 GiB one nowhere to go.
			req:  vols(Volume{ID: "a", SizeBytes: 50 * gb}, Volume{ID: "b", SizeBytes: 90 * gb}),
			host: "h1", pools: map[string]string{"a": "small", "b": "big"},
		},
		{
			name: "storage failing on every suitable host, memory on another",
			setup: func(m *memState) {
				two(m)
				m.addHost("h3", "c2", 1, 512)
				m.addPool("cp1", fsm.ScopeCluster, "c1", 10)
			},
			req: vols(Volume{ID: "root", SizeBytes: 20 * gb}),
			errHas: []string{
				"can take 1 CPU x 1000 MHz, 1024 MiB and 20 GiB of primary storage: 1 host has only 512 MiB of memory free; " +
					"no primary storage pool reachable from any suitable host has 20 GiB free;",
			},
		},
		{
			name: "storage count among suitable hosts",
			setup: func(m *memState) {
				two(m)
				m.addPool("cp1", fsm.ScopeCluster, "c1", 10)
				m.addPool("local-h2", fsm.ScopeHost, "h2", 100)
			},
			req: vols(Volume{ID: "root", SizeBytes: 20 * gb, Local: true}, Volume{ID: "data", SizeBytes: 5 * gb}),
			errHas: []string{
				"no local storage pool of 1 of the 2 suitable hosts has 20 GiB free for volume root",
				"no primary storage pool reachable from 1 of the 2 suitable hosts has 5 GiB free for volume data",
			},
		},
	})
}

func TestPlaceMigration(t *testing.T) {
	// The VM runs on h1 (c1); its root volume lives on c1's pool, its data
	// volume on the zone's pool.
	cloud := func(m *memState) {
		m.addHost("h1", "c1", 4, 8192)
		m.addHost("h2", "c1", 4, 8192)
		m.addHost("h3", "c2", 4, 65536)
		m.addPool("cp1", fsm.ScopeCluster, "c1", 100).AllocatedBytes = 100 * gb // full
		m.addPool("zp", fsm.ScopeZone, "", 100).AllocatedBytes = 100 * gb
	}
	placed := func(r *Request) {
		r.AvoidHosts = []string{"h1"}
		r.Volumes = []Volume{{ID: "root", SizeBytes: 50 * gb, PoolID: "cp1"}, {ID: "data", SizeBytes: 50 * gb, PoolID: "zp"}}
	}
	runPlaceCases(t, []placeCase{
		{
			name:  "placed volumes keep the VM where their pools reach, at no cost",
			setup: cloud, req: placed,
			host: "h2", pools: map[string]string{"root": "cp1", "data": "zp"},
		},
		{
			name: "a placed volume's pool need not be Up",
			setup: func(m *memState) {
				cloud(m)
				m.pools[0].State = fsm.PoolStateDisabled
			},
			req:  placed,
			host: "h2", pools: map[string]string{"root": "cp1", "data": "zp"},
		},
		{
			name:  "pool unreachable from every other host",
			setup: func(m *memState) { cloud(m); m.host("h2").State = fsm.HostStateDown },
			req:   placed,
			errHas: []string{
				"1 host is avoided", "1 is not Up",
				"pool cp1 of volume root is not reachable from any suitable host",
			},
		},
		{
			name:  "placed volume on a pool the zone lacks",
			setup: cloud,
			req: func(r *Request) {
				placed(r)
				r.Volumes[0].PoolID = "gone"
			},
			errHas: []string{"pool gone of volume root is not in zone z1"},
		},
		{
			name: "placed and new volumes together",
			setup: func(m *memState) {
				cloud(m)
				m.addPool("cp2", fsm.ScopeCluster, "c2", 100)
			},
			req: func(r *Request) {
				r.AvoidHosts = []string{"h1"}
				r.Volumes = []Volume{{ID: "data", SizeBytes: 50 * gb, PoolID: "zp"}, {ID: "new", SizeBytes: 10 * gb}}
			},
			host: "h3", pools: map[string]string{"data": "zp", "new": "cp2"},
		},
	})
}
