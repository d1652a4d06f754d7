package api

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/stratus-cloud/stratus/fsm"
)

const gib = int64(1) << 30

// change updates a stored row through f, as an agent or the allocator
// would report figures.
func change[T any](t *testing.T, in *infra, table, id string, f func(*T)) {
	t.Helper()
	row, err := fsm.Get[T](in.c.State(), nil, table, id)
	if err != nil || row == nil {
		t.Fatalf("%s %s: %v", table, id, err)
	}
	cp := *row // the rows changed here hold no maps or slices that f touches
	f(&cp)
	obj := any(&cp).(fsm.Object)
	in.commitRow(t, fsm.Update(table, obj))
}

// capacityFixture: zone-a with pod-a/kvm-a (two hosts, a disabled one, an
// NFS pool, a local pool) and pod-b/kvm-b (one host, CPU overcommit 2), a
// zone-wide pool, a disabled pool, an image store; and a disabled zone-b
// with a host of its own.
func capacityFixture(t *testing.T) (*infra, map[string]string) {
	t.Helper()
	in := newInfra(t)
	s := in.s
	ids := map[string]string{}
	host := func(name, ip string, extra map[string]string, cores int, mhz, mem, cpuAlloc, memAlloc int64) {
		id := in.addHost(t, ip, extra)["id"].(string)
		ids[name] = id
		change(t, in, fsm.TableHosts, id, func(h *fsm.Host) {
			h.CPUNumber, h.CPUSpeed, h.MemoryTotal, h.CPUAllocated, h.MemoryAllocated = cores, mhz, mem, cpuAlloc, memAlloc
		})
	}
	host("h1", "10.1.0.61", nil, 4, 2000, 8*gib, 1000, 2*gib)
	host("h2", "10.1.0.62", nil, 2, 1000, 4*gib, 0, 0)
	host("h3", "10.1.0.63", map[string]string{"allocationstate": "Disabled"}, 8, 3000, 64*gib, 0, 0)
	ids["pod-b"] = in.addPod(t, in.zone, "pod-b", "10.2.0.1", "10.2.0.10", "10.2.0.20")
	ids["kvm-b"] = item(t, must(t, s, map[string]string{"command": "addCluster", "zoneid": in.zone, "podid": ids["pod-b"],
		"clustername": "kvm-b", "hypervisor": "KVM", "clustertype": "CloudManaged"}), "cluster")["id"].(string)
	change(t, in, fsm.TableClusters, ids["kvm-b"], func(c *fsm.Cluster) { c.CPUOvercommit = 2 })
	host("h4", "10.2.0.61", map[string]string{"podid": ids["pod-b"], "clusterid": ids["kvm-b"]}, 4, 2500, 16*gib, 5000, 4*gib)

	pool := func(name string, kv ...string) string {
		params := map[string]string{"command": "createStoragePool", "zoneid": in.zone, "name": name}
		for i := 0; i+1 < len(kv); i += 2 {
			params[kv[i]] = kv[i+1]
		}
		return must(t, s, params)["storagepool"].(map[string]any)["id"].(string)
	}
	nfs := pool("nfs", "clusterid", in.cluster, "url", "nfs://10.0.0.9/a", "capacitybytes", "1000")
	change(t, in, fsm.TableStoragePools, nfs, func(p *fsm.StoragePool) { p.AllocatedBytes, p.UsedBytes = 300, 100 })
	zw := pool("zonewide", "scope", "zone", "url", "nfs://10.0.0.9/z", "capacitybytes", "4000")
	change(t, in, fsm.TableStoragePools, zw, func(p *fsm.StoragePool) { p.AllocatedBytes, p.UsedBytes, p.Overprovision = 1000, 500, 2 })
	off := pool("off", "clusterid", in.cluster, "url", "nfs://10.0.0.9/off", "capacitybytes", "99999")
	must(t, s, map[string]string{"command": "updateStoragePool", "id": off, "enabled": "false"})
	local := pool("local", "clusterid", in.cluster, "url", "file://10.1.0.61/images", "capacitybytes", "500")
	change(t, in, fsm.TableStoragePools, local, func(p *fsm.StoragePool) { p.AllocatedBytes = 50 })
	store := must(t, s, map[string]string{"command": "addImageStore", "provider": "NFS", "zoneid": in.zone, "url": "nfs://10.0.0.9/sec"})["imagestore"].(map[string]any)["id"].(string)
	change(t, in, fsm.TableImageStores, store, func(is *fsm.ImageStore) { is.CapacityBytes, is.UsedBytes = 10000, 2500 })

	ids["zone-b"] = createTestZone(t, s, "zone-b")["id"].(string)
	podZ2 := in.addPod(t, ids["zone-b"], "pod-z2", "10.3.0.1", "10.3.0.10", "10.3.0.20")
	clZ2 := item(t, must(t, s, map[string]string{"command": "addCluster", "zoneid": ids["zone-b"], "podid": podZ2,
		"clustername": "kvm-z2", "hypervisor": "KVM", "clustertype": "CloudManaged"}), "cluster")["id"].(string)
	host("z2", "10.3.0.61", map[string]string{"zoneid": ids["zone-b"], "podid": podZ2, "clusterid": clZ2}, 1, 1000, gib, 0, 0)
	return in, ids
}

// capacityRows renders a listCapacity answer as "type name where total/used/allocated pct" lines.
func capacityRows(t *testing.T, s *Server, params map[string]string) []string {
	t.Helper()
	params["command"] = "listCapacity"
	body := must(t, s, params)
	items, _ := body["capacity"].([]any)
	var out []string
	for _, it := range items {
		c := it.(map[string]any)
		where := c["zonename"].(string)
		if p, ok := c["podname"].(string); ok {
			where += "/" + p
		}
		if cl, ok := c["clustername"].(string); ok {
			where += "/" + cl
		}
		out = append(out, fmt.Sprintf("%v %v %s %.0f/%.0f/%.0f %v", c["type"], c["name"], where,
			c["capacitytotal"], c["capacityused"], c["capacityallocated"], c["percentused"]))
	}
	return out
}

func wantRows(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n got  %s\n want %s", what, strings.Join(got, "\n      "), strings.Join(want, "\n      "))
	}
}

func TestListCapacity(t *testing.T) {
	in, ids := capacityFixture(t)
	s := in.s
	g := func(n int64) string { return strconv.FormatInt(n*gib, 10) }
	// Per zone: the disabled host, the disabled pool and the disabled zone
	// are left out; kvm-b's CPU counts twice (overcommit 2).
	wantRows(t, "per zone", capacityRows(t, s, map[string]string{}),
		"0 MEMORY zone-a "+g(28)+"/"+g(6)+"/"+g(6)+" 21.43",
		"1 CPU zone-a 30000/6000/6000 20",
		"2 STORAGE zone-a 5000/600/1300 12",
		"3 STORAGE_ALLOCATED zone-a 9000/1300/1300 14.44",
		"6 SECONDARY_STORAGE zone-a 10000/2500/2500 25",
		"9 LOCAL_STORAGE zone-a 500/50/50 10",
	)
	wantRows(t, "per pod", capacityRows(t, s, map[string]string{"podid": in.pod}),
		"0 MEMORY zone-a/pod-a "+g(12)+"/"+g(2)+"/"+g(2)+" 16.67",
		"1 CPU zone-a/pod-a 10000/1000/1000 10",
		"2 STORAGE zone-a/pod-a 1000/100/300 10",
		"3 STORAGE_ALLOCATED zone-a/pod-a 1000/300/300 30",
		"9 LOCAL_STORAGE zone-a/pod-a 500/50/50 10",
	)
	wantRows(t, "per cluster", capacityRows(t, s, map[string]string{"clusterid": ids["kvm-b"]}),
		"0 MEMORY zone-a/pod-b/kvm-b "+g(16)+"/"+g(4)+"/"+g(4)+" 25",
		"1 CPU zone-a/pod-b/kvm-b 20000/5000/5000 25",
	)
	wantRows(t, "CPU only", capacityRows(t, s, map[string]string{"type": "1", "zoneid": in.zone}), "1 CPU zone-a 30000/6000/6000 20")
	wantRows(t, "a type with nothing", capacityRows(t, s, map[string]string{"type": "7"}))
	wantRows(t, "disabled zone", capacityRows(t, s, map[string]string{"zoneid": ids["zone-b"]}))

	// By usage: per cluster (zone-wide pools and secondary per zone), most used first.
	rows := capacityRows(t, s, map[string]string{"sortby": "Usage"})
	if len(rows) != 10 || rows[0] != "3 STORAGE_ALLOCATED zone-a/pod-a/kvm-a 1000/300/300 30" {
		t.Fatalf("by usage:\n%s", strings.Join(rows, "\n"))
	}
	last := 101.0
	for _, r := range rows {
		f := strings.Fields(r)
		pct, _ := strconv.ParseFloat(f[len(f)-1], 64)
		if pct > last {
			t.Fatalf("by usage is not most used first:\n%s", strings.Join(rows, "\n"))
		}
		last = pct
	}
	if page := capacityRows(t, s, map[string]string{"sortby": "usage", "page": "1", "pagesize": "1"}); len(page) != 1 || page[0] != rows[0] {
		t.Fatalf("first page by usage = %v", page)
	}

	// Enabling zone-b brings its capacity in; disabling kvm-b takes its out.
	must(t, s, map[string]string{"command": "updateZone", "id": ids["zone-b"], "allocationstate": "Enabled"})
	wantRows(t, "zone-b enabled", capacityRows(t, s, map[string]string{"zoneid": ids["zone-b"], "type": "1"}), "1 CPU zone-b 1000/0/0 0")
	must(t, s, map[string]string{"command": "updateCluster", "id": ids["kvm-b"], "allocationstate": "Disabled"})
	wantRows(t, "kvm-b disabled", capacityRows(t, s, map[string]string{"zoneid": in.zone, "type": "1"}), "1 CPU zone-a 10000/1000/1000 10")

	for _, tc := range []struct {
		params map[string]string
		text   string
	}{
		{map[string]string{"sortby": "name"}, `invalid value "name" for parameter sortby`},
		{map[string]string{"type": "cpu"}, "invalid value cpu for parameter type"},
		{map[string]string{"fetchlatest": "often"}, "fetchlatest"},
		{map[string]string{"podid": missingID}, notFoundText("podid")},
		{map[string]string{"clusterid": missingID}, notFoundText("clusterid")},
		{map[string]string{"zoneid": missingID}, notFoundText("zoneid")},
	} {
		tc.params["command"] = "listCapacity"
		wantError(t, call(t, s, tc.params), "listcapacityresponse", 431, tc.text)
	}
}

func TestShowCapacitiesAndHostFigures(t *testing.T) {
	in, ids := capacityFixture(t)
	s := in.s
	pod := item(t, must(t, s, map[string]string{"command": "listPods", "id": in.pod, "showcapacities": "true"}), "pod")
	caps := pod["capacity"].([]any)
	if len(caps) != 5 || caps[1].(map[string]any)["name"] != "CPU" || caps[1].(map[string]any)["podid"] != in.pod {
		t.Fatalf("pod capacities = %v", caps)
	}
	if _, has := item(t, must(t, s, map[string]string{"command": "listPods", "id": in.pod}), "pod")["capacity"]; has {
		t.Fatal("capacities shown without showcapacities")
	}
	cl := item(t, must(t, s, map[string]string{"command": "listClusters", "id": ids["kvm-b"], "showcapacities": "true"}), "cluster")
	if caps := cl["capacity"].([]any); len(caps) != 2 || caps[0].(map[string]any)["clustername"] != "kvm-b" {
		t.Fatalf("cluster capacities = %v", cl["capacity"])
	}
	if cl["cpuovercommitratio"] != "2.0" {
		t.Fatalf("kvm-b ratio = %v", cl["cpuovercommitratio"])
	}
	// The host shows its figures against its cluster's overcommit.
	h := item(t, must(t, s, map[string]string{"command": "listHosts", "id": ids["h4"]}), "host")
	for k, v := range map[string]any{"cpunumber": float64(4), "cpuspeed": float64(2500), "cpuwithoverprovisioning": "20000",
		"cpuallocated": "25%", "cpuallocatedvalue": float64(5000), "memorytotal": float64(16 * gib), "memoryallocated": float64(4 * gib),
		"memoryallocatedpercentage": "25%", "memorywithoverprovisioning": strconv.FormatInt(16*gib, 10), "cpuused": "0%"} {
		if h[k] != v {
			t.Errorf("host %s = %v, want %v", k, h[k], v)
		}
	}
}
