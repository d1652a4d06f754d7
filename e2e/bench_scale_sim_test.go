package e2e

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSimHostsRegisterAndRunVMs runs 50 simulated hosts in two `stratus
// sim` processes (hosts 1 to 40 and 41 to 50, as the scale benchmark
// splits 10,000) against three servers: every simulated host registers
// with the registration token into the clusters its process adds, comes
// Up, and a VM deployed through the API is placed on one of them and runs
// there; SIGTERM stops both processes cleanly.
func TestSimHostsRegisterAndRunVMs(t *testing.T) {
	bin := requireE2E(t)
	start := time.Now()
	c := newCluster(t, bin, 3)
	c.startAll()
	api := newScaleAPI()
	z := setupScaleZone(t, c, api)
	cfg := scaleConfig{hosts: 50, perCluster: 20, simRamp: "500", hostCPUs: 8, hostMemGiB: 16, pollEvery: 50 * time.Millisecond, simPerProc: 25}
	sim := startScaleSim(t, c, z, cfg)
	waitScaleHostsUp(t, c, api, z, sim, cfg)

	var clusters struct {
		Cluster []struct{ ID, Name string } `json:"cluster"`
	}
	if err := api.call(c.servers[1], c.keys, "listClusters", url.Values{"zoneid": {z.zone}}, &clusters); err != nil {
		t.Fatal(err)
	}
	if len(sim) != 2 {
		t.Fatalf("%d sim processes for 50 hosts at 25 per process, 20 per cluster; want 2", len(sim))
	}
	if len(clusters.Cluster) != 3 {
		t.Fatalf("listClusters: %+v; want the 3 clusters the sims added for 50 hosts, 20 per cluster (2 and 1)", clusters.Cluster)
	}
	var hosts struct {
		Count int `json:"count"`
		Host  []struct {
			ID, Name, State, ClusterName string
		} `json:"host"`
	}
	if err := api.call(c.servers[2], c.keys, "listHosts", url.Values{"zoneid": {z.zone}, "type": {"Routing"}}, &hosts); err != nil {
		t.Fatal(err)
	}
	simHosts := map[string]string{}
	for _, h := range hosts.Host {
		if !strings.HasPrefix(h.Name, "sim-host-") || h.State != "Up" {
			t.Errorf("listHosts: host %s in state %s; want sim-host-N Up", h.Name, h.State)
		}
		simHosts[h.ID] = h.Name
	}
	if hosts.Count != 50 || len(simHosts) != 50 {
		t.Fatalf("listHosts counts %d hosts (%d listed), want 50", hosts.Count, len(simHosts))
	}

	d := &scaleDeployer{c: c, api: api, z: z, cfg: cfg, t: t}
	if _, _, err := d.deployOne(0, 0, c.keys); err != nil {
		t.Fatalf("deploy on the simulated hosts: %v", err)
	}
	var vms struct {
		VirtualMachine []struct{ ID, Name, State, HostID string } `json:"virtualmachine"`
	}
	if err := api.call(c.servers[0], c.keys, "listVirtualMachines", url.Values{"listall": {"true"}}, &vms); err != nil {
		t.Fatal(err)
	}
	if len(vms.VirtualMachine) != 1 || vms.VirtualMachine[0].State != "Running" || simHosts[vms.VirtualMachine[0].HostID] == "" {
		t.Fatalf("listVirtualMachines: %+v; want the one VM Running on a simulated host", vms.VirtualMachine)
	}
	t.Logf("e2e: VM %s Running on %s", vms.VirtualMachine[0].Name, simHosts[vms.VirtualMachine[0].HostID])
	if err := sim.stop(); err != nil {
		t.Error(err)
	}
	c.checkNoCrash()
	t.Logf("e2e: sim test took %s", time.Since(start).Round(time.Millisecond))
}

// TestSimProcShares checks how the scale benchmark splits its hosts over
// sim processes: every host in exactly one, no cluster split between two.
func TestSimProcShares(t *testing.T) {
	for _, tc := range []struct {
		hosts, perProc, perCluster int
		want                       []int
	}{
		{50, 2500, 20, []int{50}},
		{2500, 2500, 500, []int{2500}},
		{10000, 2500, 500, []int{2500, 2500, 2500, 2500}},
		{5100, 2500, 500, []int{2000, 2000, 1100}},
		{6000, 2500, 3000, []int{3000, 3000}},
	} {
		got := simProcShares(tc.hosts, tc.perProc, tc.perCluster)
		if !slices.Equal(got, tc.want) {
			t.Errorf("simProcShares(%d, %d, %d) = %v, want %v", tc.hosts, tc.perProc, tc.perCluster, got, tc.want)
		}
		sum := 0
		for i, n := range got {
			if i < len(got)-1 && n%tc.perCluster != 0 {
				t.Errorf("simProcShares(%d, %d, %d): process %d plays %d hosts, part of a cluster", tc.hosts, tc.perProc, tc.perCluster, i+1, n)
			}
			sum += n
		}
		if sum != tc.hosts {
			t.Errorf("simProcShares(%d, %d, %d) plays %d hosts in all", tc.hosts, tc.perProc, tc.perCluster, sum)
		}
	}
}
