package api

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stratus-cloud/stratus/fsm"
)

// infra is a small inventory for the infrastructure tests: an enabled zone
// with one pod (10.1.0.0/24) and one KVM cluster.
type infra struct {
	s                   *Server
	c                   *fakeCluster
	zone, pod, cluster  string
	zoneName, clusterNm string
}

// must calls a command as the root admin and returns the inner object of a
// 200 answer.
func must(t *testing.T, s *Server, params map[string]string) map[string]any {
	t.Helper()
	rec := call(t, s, params)
	if rec.Code != http.StatusOK {
		t.Fatalf("%v: %d %s", params, rec.Code, rec.Body.String())
	}
	return decode(t, rec, strings.ToLower(params["command"])+"response")
}

// item returns the only item of a list answer, checking count.
func item(t *testing.T, body map[string]any, key string) map[string]any {
	t.Helper()
	items, _ := body[key].([]any)
	if len(items) != 1 || body["count"] != float64(1) {
		t.Fatalf("want exactly one %s, got %v", key, body)
	}
	return items[0].(map[string]any)
}

// listed returns a field of every item of a list command's answer, in
// answer order.
func listed(t *testing.T, s *Server, params map[string]string, key, field string) []string {
	t.Helper()
	body := must(t, s, params)
	var out []string
	items, _ := body[key].([]any)
	for _, it := range items {
		out = append(out, it.(map[string]any)[field].(string))
	}
	return out
}

func newInfra(t *testing.T) *infra {
	t.Helper()
	s, c := newTestServer(t)
	in := &infra{s: s, c: c, zoneName: "zone-a", clusterNm: "kvm-a"}
	in.zone = createTestZone(t, s, in.zoneName)["id"].(string)
	must(t, s, map[string]string{"command": "updateZone", "id": in.zone, "allocationstate": "Enabled"})
	in.pod = in.addPod(t, in.zone, "pod-a", "10.1.0.1", "10.1.0.10", "10.1.0.50")
	cl := must(t, s, map[string]string{"command": "addCluster", "zoneid": in.zone, "podid": in.pod, "clustername": in.clusterNm,
		"hypervisor": "KVM", "clustertype": "CloudManaged"})
	in.cluster = item(t, cl, "cluster")["id"].(string)
	return in
}

func (in *infra) addPod(t *testing.T, zone, name, gw, start, end string) string {
	t.Helper()
	pod := must(t, in.s, map[string]string{"command": "createPod", "zoneid": zone, "name": name, "gateway": gw,
		"netmask": "255.255.255.0", "startip": start, "endip": end})["pod"].(map[string]any)
	return pod["id"].(string)
}

func (in *infra) addHost(t *testing.T, ip string, extra map[string]string) map[string]any {
	t.Helper()
	params := map[string]string{"command": "addHost", "zoneid": in.zone, "podid": in.pod, "clusterid": in.cluster,
		"url": "http://" + ip, "hypervisor": "KVM", "username": "root", "password": "hunter2-secret"}
	for k, v := range extra {
		params[k] = v
	}
	return item(t, must(t, in.s, params), "host")
}

// commitRow changes a stored row directly, as a later part (the agent, the
// allocator) would.
func (in *infra) commitRow(t *testing.T, op fsm.TxnOp) {
	t.Helper()
	if _, err := in.c.Apply(context.Background(), fsm.TxnRequestType, fsm.TxnRequest{Ops: []fsm.TxnOp{op}}); err != nil {
		t.Fatalf("commit %s %s: %v", op.Verb, op.Table, err)
	}
}

// eventTypes lists the types of the events about a resource.
func eventTypes(t *testing.T, s *Server, resourceID string) []string {
	t.Helper()
	return listed(t, s, map[string]string{"command": "listEvents", "resourceid": resourceID, "listall": "true"}, "event", "type")
}

func wantEvents(t *testing.T, s *Server, id string, want ...string) {
	t.Helper()
	got := eventTypes(t, s, id)
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("events of %s = %v, want %v", id, got, want)
	}
}

const missingID = "99999999-9999-4999-8999-999999999999"

func notFoundText(param string) string {
	return "Invalid parameter " + param + " value=" + missingID + " due to incorrect long value format, or entity does not exist"
}

func TestPodLifecycle(t *testing.T) {
	in := newInfra(t)
	s := in.s
	pod := must(t, s, map[string]string{"command": "listPods", "id": in.pod})
	p := item(t, pod, "pod")
	if p["name"] != "pod-a" || p["zoneid"] != in.zone || p["zonename"] != in.zoneName || p["gateway"] != "10.1.0.1" ||
		p["netmask"] != "255.255.255.0" || p["allocationstate"] != "Enabled" {
		t.Fatalf("pod = %v", p)
	}
	// The ranges come as parallel lists and as objects, as 4.18 shows them.
	if strings.Join(toStrings(p["startip"]), ",") != "10.1.0.10" || strings.Join(toStrings(p["endip"]), ",") != "10.1.0.50" ||
		strings.Join(toStrings(p["forsystemvms"]), ",") != "0" || strings.Join(toStrings(p["vlanid"]), ",") != "vlan://untagged" {
		t.Fatalf("pod range lists = %v", p)
	}
	rg := p["ipranges"].([]any)[0].(map[string]any)
	if rg["startip"] != "10.1.0.10" || rg["endip"] != "10.1.0.50" || rg["forsystemvms"] != "0" || rg["cidr"] != "10.1.0.0/24" {
		t.Fatalf("ipranges = %v", p["ipranges"])
	}

	// Without endip the range runs to the subnet's last usable address;
	// without any range the pod has none.
	b := must(t, s, map[string]string{"command": "createPod", "zoneid": in.zone, "name": "pod-b", "gateway": "10.2.0.1",
		"netmask": "255.255.255.0", "startip": "10.2.0.100", "allocationstate": "disabled"})["pod"].(map[string]any)
	if toStrings(b["endip"])[0] != "10.2.0.254" || b["allocationstate"] != "Disabled" {
		t.Fatalf("pod b = %v", b)
	}
	c := must(t, s, map[string]string{"command": "createPod", "zoneid": in.zone, "name": "pod-c", "gateway": "10.3.0.1",
		"netmask": "255.255.0.0"})["pod"].(map[string]any)
	if _, has := c["startip"]; has {
		t.Fatalf("a pod without a range shows one: %v", c)
	}

	// Same name in the zone (any case): conflict. In another zone: fine.
	wantError(t, call(t, s, map[string]string{"command": "createPod", "zoneid": in.zone, "name": "POD-A", "gateway": "10.9.0.1", "netmask": "255.255.255.0"}),
		"createpodresponse", 431, "a pod with this name in this zone already exists")
	z2 := createTestZone(t, s, "zone-b")["id"].(string)
	in.addPod(t, z2, "pod-a", "10.1.0.1", "10.1.0.10", "10.1.0.50")

	// Filters and paging.
	if got := strings.Join(listed(t, s, map[string]string{"command": "listPods", "zoneid": in.zone}, "pod", "name"), ","); got != "pod-a,pod-b,pod-c" {
		t.Fatalf("pods of zone a = %s", got)
	}
	if got := strings.Join(listed(t, s, map[string]string{"command": "listPods", "name": "pod-a"}, "pod", "zoneid"), ","); got != in.zone+","+z2 {
		t.Fatalf("pods named pod-a = %s", got)
	}
	if got := strings.Join(listed(t, s, map[string]string{"command": "listPods", "allocationstate": "Disabled"}, "pod", "name"), ","); got != "pod-b" {
		t.Fatalf("disabled pods = %s", got)
	}
	if got := strings.Join(listed(t, s, map[string]string{"command": "listPods", "keyword": "D-C"}, "pod", "name"), ","); got != "pod-c" {
		t.Fatalf("keyword = %s", got)
	}
	page := must(t, s, map[string]string{"command": "listPods", "page": "2", "pagesize": "3"})
	if page["count"] != float64(4) || len(page["pod"].([]any)) != 1 {
		t.Fatalf("page 2 of 3 = %v", page)
	}
	wantError(t, call(t, s, map[string]string{"command": "listPods", "id": missingID}), "listpodsresponse", 431, notFoundText("id"))
	wantError(t, call(t, s, map[string]string{"command": "listPods", "zoneid": missingID}), "listpodsresponse", 431, notFoundText("zoneid"))

	// Update: rename, move the range, change the subnet, disable.
	up := must(t, s, map[string]string{"command": "updatePod", "id": b["id"].(string), "name": "pod-b2", "startip": "10.2.0.20",
		"endip": "10.2.0.30", "allocationstate": "Enabled"})["pod"].(map[string]any)
	if up["name"] != "pod-b2" || toStrings(up["startip"])[0] != "10.2.0.20" || toStrings(up["endip"])[0] != "10.2.0.30" || up["allocationstate"] != "Enabled" {
		t.Fatalf("updated pod = %v", up)
	}
	// A new subnet must still hold the range.
	wantError(t, call(t, s, map[string]string{"command": "updatePod", "id": b["id"].(string), "gateway": "10.4.0.1"}),
		"updatepodresponse", 431, "parameter startip")
	up = must(t, s, map[string]string{"command": "updatePod", "id": b["id"].(string), "gateway": "10.4.0.1", "startip": "10.4.0.5", "endip": "10.4.0.9"})["pod"].(map[string]any)
	if up["gateway"] != "10.4.0.1" || toStrings(up["startip"])[0] != "10.4.0.5" {
		t.Fatalf("pod with a new subnet = %v", up)
	}
	wantError(t, call(t, s, map[string]string{"command": "updatePod", "id": b["id"].(string), "name": "pod-a"}), "updatepodresponse", 431, "already exists")
	wantError(t, call(t, s, map[string]string{"command": "updatePod", "id": missingID, "name": "x"}), "updatepodresponse", 431, notFoundText("id"))

	// Delete: refused while the pod holds a cluster, fine when empty.
	wantError(t, call(t, s, map[string]string{"command": "deletePod", "id": in.pod}), "deletepodresponse", 536, "cluster kvm-a still uses it")
	if del := must(t, s, map[string]string{"command": "deletePod", "id": c["id"].(string)}); del["success"] != true {
		t.Fatalf("deletePod = %v", del)
	}
	wantError(t, call(t, s, map[string]string{"command": "deletePod", "id": c["id"].(string)}), "deletepodresponse", 431, "entity does not exist")
	wantEvents(t, s, b["id"].(string), "POD.CREATE", "POD.EDIT", "POD.EDIT")
	wantEvents(t, s, c["id"].(string), "POD.CREATE", "POD.DELETE")
}

func toStrings(v any) []string {
	var out []string
	items, _ := v.([]any)
	for _, it := range items {
		out = append(out, it.(string))
	}
	return out
}

func TestPodParameterErrors(t *testing.T) {
	in := newInfra(t)
	base := func(kv ...string) map[string]string {
		m := map[string]string{"command": "createPod", "zoneid": in.zone, "name": "p", "gateway": "10.5.0.1", "netmask": "255.255.255.0"}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	cases := []struct {
		name   string
		params map[string]string
		text   string
	}{
		{"missing zone", base("zoneid", ""), "due to missing parameter zoneid"},
		{"missing name", base("name", ""), "due to missing parameter name"},
		{"blank name", base("name", "  "), "parameter name must not be blank"},
		{"unknown zone", base("zoneid", missingID), notFoundText("zoneid")},
		{"malformed zone id", base("zoneid", "zone-1"), "Invalid parameter zoneid value=zone-1"},
		{"missing gateway", base("gateway", ""), "due to missing parameter gateway"},
		{"missing netmask", base("netmask", ""), "due to missing parameter netmask"},
		{"gateway not an address", base("gateway", "10.5.0"), `invalid value "10.5.0" for parameter gateway`},
		{"IPv6 gateway", base("gateway", "fd00::1"), "parameter gateway: give an IPv4 address"},
		{"netmask not contiguous", base("netmask", "255.0.255.0"), "parameter netmask: the mask's one bits must be contiguous"},
		{"netmask too small", base("netmask", "255.255.255.254"), "parameter netmask: a /31 subnet leaves no room"},
		{"netmask garbage", base("netmask", "24"), "parameter netmask: give a dotted IPv4 netmask"},
		{"gateway is the network address", base("gateway", "10.5.0.0"), "network or broadcast address"},
		{"start outside the subnet", base("startip", "10.6.0.5"), `invalid value "10.6.0.5" for parameter startip: it is not a usable address of the pod's subnet 10.5.0.0/24`},
		{"end outside the subnet", base("startip", "10.5.0.5", "endip", "10.5.1.5"), "parameter endip: it is not a usable address"},
		{"end is broadcast", base("startip", "10.5.0.5", "endip", "10.5.0.255"), "parameter endip"},
		{"start after end", base("startip", "10.5.0.50", "endip", "10.5.0.20"), "startip 10.5.0.50 comes after endip 10.5.0.20"},
		{"gateway in the range", base("startip", "10.5.0.1", "endip", "10.5.0.20"), "the gateway 10.5.0.1 lies inside the range"},
		{"end without start", base("endip", "10.5.0.20"), "due to missing parameter startip"},
		{"bad start", base("startip", "ten"), `invalid value "ten" for parameter startip`},
		{"bad allocation state", base("allocationstate", "Maybe"), `invalid value "Maybe" for parameter allocationstate`},
		{"subnet overlaps another pod's", base("gateway", "10.1.0.129", "netmask", "255.255.255.128"), "overlaps the subnet 10.1.0.0/24 of pod pod-a"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, call(t, in.s, tc.params), "createpodresponse", 431, tc.text)
		})
	}
	if got := listed(t, in.s, map[string]string{"command": "listPods"}, "pod", "name"); len(got) != 1 {
		t.Fatalf("failed creates left pods behind: %v", got)
	}
}

func TestClusterLifecycle(t *testing.T) {
	in := newInfra(t)
	s := in.s
	body := must(t, s, map[string]string{"command": "listClusters", "id": in.cluster})
	c := item(t, body, "cluster")
	if c["name"] != "kvm-a" || c["podid"] != in.pod || c["podname"] != "pod-a" || c["zoneid"] != in.zone || c["zonename"] != in.zoneName ||
		c["hypervisortype"] != "KVM" || c["clustertype"] != "CloudManaged" || c["allocationstate"] != "Enabled" || c["managedstate"] != "Managed" ||
		c["cpuovercommitratio"] != "1.0" || c["memoryovercommitratio"] != "1.0" {
		t.Fatalf("cluster = %v", c)
	}
	if d := c["resourcedetails"].(map[string]any); d["cpuOvercommitRatio"] != "1.0" || d["memoryOvercommitRatio"] != "1.0" {
		t.Fatalf("resourcedetails = %v", d)
	}

	add := func(kv ...string) map[string]string {
		m := map[string]string{"command": "addCluster", "zoneid": in.zone, "podid": in.pod, "clustername": "kvm-b", "hypervisor": "kvm", "clustertype": "cloudmanaged"}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	z2 := createTestZone(t, s, "zone-b")["id"].(string)
	pod2 := in.addPod(t, z2, "pod-z2", "10.7.0.1", "10.7.0.10", "10.7.0.20")
	for _, tc := range []struct {
		name   string
		params map[string]string
		text   string
	}{
		{"missing clustername", add("clustername", ""), "due to missing parameter clustername"},
		{"missing hypervisor", add("hypervisor", ""), "due to missing parameter hypervisor"},
		{"missing clustertype", add("clustertype", ""), "due to missing parameter clustertype"},
		{"missing podid", add("podid", ""), "due to missing parameter podid"},
		{"VMware", add("hypervisor", "VMware"), `invalid value "VMware" for parameter hypervisor: this cloud manages KVM hosts only`},
		{"external", add("clustertype", "ExternalManaged"), `invalid value "ExternalManaged" for parameter clustertype`},
		{"pod of another zone", add("podid", pod2), "is not in zone zone-a"},
		{"unknown pod", add("podid", missingID), notFoundText("podid")},
		{"duplicate name", add("clustername", "KVM-A"), "a cluster with this name in this zone already exists"},
		{"bad allocation state", add("allocationstate", "on"), "parameter allocationstate"},
	} {
		t.Run(tc.name, func(t *testing.T) { wantError(t, call(t, s, tc.params), "addclusterresponse", 431, tc.text) })
	}
	b := item(t, must(t, s, add("allocationstate", "Disabled")), "cluster")
	if b["hypervisortype"] != "KVM" || b["clustertype"] != "CloudManaged" || b["allocationstate"] != "Disabled" {
		t.Fatalf("cluster b = %v", b)
	}
	bid := b["id"].(string)
	// The same name in another zone is fine.
	must(t, s, add("zoneid", z2, "podid", pod2, "clustername", "kvm-a"))

	up := must(t, s, map[string]string{"command": "updateCluster", "id": bid, "clustername": "kvm-b2", "allocationstate": "Enabled",
		"managedstate": "unmanaged", "hypervisor": "KVM"})["cluster"].(map[string]any)
	if up["name"] != "kvm-b2" || up["allocationstate"] != "Enabled" || up["managedstate"] != "Unmanaged" {
		t.Fatalf("updated cluster = %v", up)
	}
	wantError(t, call(t, s, map[string]string{"command": "updateCluster", "id": bid, "hypervisor": "XenServer"}), "updateclusterresponse", 431, "hypervisor")
	wantError(t, call(t, s, map[string]string{"command": "updateCluster", "id": bid, "managedstate": "Sideways"}), "updateclusterresponse", 431, "managedstate")
	wantError(t, call(t, s, map[string]string{"command": "updateCluster", "id": bid, "clustername": "kvm-a"}), "updateclusterresponse", 431, "already exists")
	wantError(t, call(t, s, map[string]string{"command": "updateCluster", "id": missingID}), "updateclusterresponse", 431, notFoundText("id"))

	if got := strings.Join(listed(t, s, map[string]string{"command": "listClusters", "zoneid": in.zone}, "cluster", "name"), ","); got != "kvm-a,kvm-b2" {
		t.Fatalf("clusters of zone a = %s", got)
	}
	if got := strings.Join(listed(t, s, map[string]string{"command": "listClusters", "podid": pod2}, "cluster", "zonename"), ","); got != "zone-b" {
		t.Fatalf("clusters of pod2 = %s", got)
	}
	if got := listed(t, s, map[string]string{"command": "listClusters", "managedstate": "Unmanaged", "hypervisor": "kvm"}, "cluster", "name"); strings.Join(got, ",") != "kvm-b2" {
		t.Fatalf("unmanaged clusters = %v", got)
	}
	if got := listed(t, s, map[string]string{"command": "listClusters", "keyword": "B2"}, "cluster", "name"); strings.Join(got, ",") != "kvm-b2" {
		t.Fatalf("keyword = %v", got)
	}
	wantError(t, call(t, s, map[string]string{"command": "listClusters", "podid": missingID}), "listclustersresponse", 431, notFoundText("podid"))

	// Overcommit: the cloud-wide setting, then the cluster's own ratio.
	must(t, s, map[string]string{"command": "updateConfiguration", "name": fsm.SettingCPUOvercommit, "value": "4"})
	if got := item(t, must(t, s, map[string]string{"command": "listClusters", "id": bid}), "cluster")["cpuovercommitratio"]; got != "4.0" {
		t.Fatalf("cpu ratio after the global setting = %v", got)
	}
	cur, _ := fsm.Get[fsm.Cluster](in.c.State(), nil, fsm.TableClusters, bid)
	r := &Request{Ctx: context.Background(), Params: Params{Cmd: "updateConfiguration"}, srv: s, state: in.c.State(),
		Caller: &fsm.User{ID: "11111111-1111-4111-8111-111111111111"}, Account: &fsm.Account{ID: "33333333-3333-4333-8333-333333333333"}}
	if handled, e := setClusterOvercommit(r, cur, fsm.SettingMemoryOvercommit, "1.5"); !handled || e != nil {
		t.Fatalf("set memory ratio: %v %v", handled, e)
	}
	if handled, e := setClusterOvercommit(r, cur, fsm.SettingMemoryOvercommit, "-1"); !handled || e == nil || e.Code != 431 {
		t.Fatalf("negative ratio: %v %v", handled, e)
	}
	if handled, _ := setClusterOvercommit(r, cur, "default.page.size", "3"); handled {
		t.Fatal("an unrelated setting was taken as a cluster ratio")
	}
	got := item(t, must(t, s, map[string]string{"command": "listClusters", "id": bid}), "cluster")
	if got["memoryovercommitratio"] != "1.5" || got["cpuovercommitratio"] != "4.0" {
		t.Fatalf("ratios = %v / %v", got["cpuovercommitratio"], got["memoryovercommitratio"])
	}

	// Delete: refused while a host is in the cluster.
	in.addHost(t, "10.1.0.60", nil)
	wantError(t, call(t, s, map[string]string{"command": "deleteCluster", "id": in.cluster}), "deleteclusterresponse", 536, "host 10.1.0.60 still uses it")
	if del := must(t, s, map[string]string{"command": "deleteCluster", "id": bid}); del["success"] != true {
		t.Fatalf("deleteCluster = %v", del)
	}
	wantEvents(t, s, bid, "CLUSTER.CREATE", "CLUSTER.UPDATE", "CONFIGURATION.VALUE.EDIT", "CLUSTER.DELETE")
}

func TestZoneDeleteWhileInfrastructureRemains(t *testing.T) {
	in := newInfra(t)
	s := in.s
	wantError(t, call(t, s, map[string]string{"command": "deleteZone", "id": in.zone}), "deletezoneresponse", 536, "cluster kvm-a still uses it")
	must(t, s, map[string]string{"command": "deleteCluster", "id": in.cluster})
	wantError(t, call(t, s, map[string]string{"command": "deleteZone", "id": in.zone}), "deletezoneresponse", 536, "pod pod-a still uses it")
	must(t, s, map[string]string{"command": "deletePod", "id": in.pod})
	store := must(t, s, map[string]string{"command": "addImageStore", "provider": "NFS", "zoneid": in.zone, "url": "nfs://10.0.0.9/sec", "name": "sec"})
	wantError(t, call(t, s, map[string]string{"command": "deleteZone", "id": in.zone}), "deletezoneresponse", 536, "image store sec still uses it")
	must(t, s, map[string]string{"command": "deleteImageStore", "id": store["imagestore"].(map[string]any)["id"].(string)})
	pool := must(t, s, map[string]string{"command": "createStoragePool", "zoneid": in.zone, "scope": "zone", "name": "zp", "url": "nfs://10.0.0.9/zp"})
	wantError(t, call(t, s, map[string]string{"command": "deleteZone", "id": in.zone}), "deletezoneresponse", 536, "storage pool zp still uses it")
	must(t, s, map[string]string{"command": "deleteStoragePool", "id": pool["storagepool"].(map[string]any)["id"].(string)})
	must(t, s, map[string]string{"command": "deleteZone", "id": in.zone})
}

func TestInfraCommandsAreRootAdminOnly(t *testing.T) {
	f := newIdentityFixture(t)
	for _, cmd := range []string{"listPods", "listClusters", "listHosts", "listStoragePools", "listImageStores", "listCapacity",
		"createPod", "addCluster", "addHost", "createStoragePool", "addImageStore", "deletePod", "updateHost"} {
		for _, who := range []ident{f.dadmin, f.alice} {
			rec := who.do(t, f.s, map[string]string{"command": cmd})
			if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), notAvailable) {
				t.Errorf("%s by %s: %d %s", cmd, who.name, rec.Code, rec.Body.String())
			}
		}
	}
}

// objectFieldsOf reads, from key-object-fields.txt, the top-level field
// names CloudStack gives the items of a list command.
func objectFieldsOf(t *testing.T, cmd string) map[string]bool {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "shared", "cloudstack", "key-object-fields.txt"))
	if err != nil {
		t.Skipf("key-object-fields.txt not found: %v", err)
	}
	lines := strings.Split(string(raw), "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "### "+cmd+" ") || i+1 >= len(lines) {
			continue
		}
		out := map[string]bool{}
		depth, start := 0, 0
		spec := lines[i+1] + ","
		for j, c := range spec {
			switch c {
			case '{':
				depth++
			case '}':
				depth--
			case ',':
				if depth == 0 {
					name, _, _ := strings.Cut(strings.TrimSpace(spec[start:j]), ":")
					out[name] = true
					start = j + 1
				}
			}
		}
		return out
	}
	t.Fatalf("%s is not in key-object-fields.txt", cmd)
	return nil
}

// responseFieldsOf reads the response fields 4.18's listApis gives a
// command.
func responseFieldsOf(t *testing.T, cmd string) map[string]bool {
	t.Helper()
	raw, err := os.ReadFile(reference)
	if err != nil {
		t.Skipf("reference dump not found: %v", err)
	}
	var dump struct {
		API []struct {
			Name     string `json:"name"`
			Response []struct {
				Name string `json:"name"`
			} `json:"response"`
		} `json:"api"`
	}
	if err := json.Unmarshal(raw, &dump); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, a := range dump.API {
		if a.Name == cmd {
			for _, r := range a.Response {
				out[r.Name] = true
			}
		}
	}
	return out
}

// TestInfraObjectFieldNames checks every key of each inventory object
// against CloudStack's field names, and that the keys clients rely on are
// there.
func TestInfraObjectFieldNames(t *testing.T) {
	in := newInfra(t)
	s := in.s
	h := in.addHost(t, "10.1.0.60", map[string]string{"hosttags": "ssd"})
	must(t, s, map[string]string{"command": "updateHost", "id": h["id"].(string), "annotation": "rack 4"})
	must(t, s, map[string]string{"command": "createStoragePool", "zoneid": in.zone, "clusterid": in.cluster, "name": "p1", "url": "nfs://10.0.0.9/p1", "tags": "fast", "capacitybytes": "1000"})
	must(t, s, map[string]string{"command": "addImageStore", "provider": "NFS", "zoneid": in.zone, "url": "nfs://10.0.0.9/sec"})
	cases := []struct {
		cmd, key string
		params   map[string]string
		known    map[string]bool
		must     []string
	}{
		{"listPods", "pod", map[string]string{"showcapacities": "true"}, objectFieldsOf(t, "listPods"),
			[]string{"id", "name", "zoneid", "zonename", "gateway", "netmask", "startip", "endip", "forsystemvms", "vlanid", "ipranges", "allocationstate", "capacity"}},
		{"listClusters", "cluster", map[string]string{"showcapacities": "true"}, objectFieldsOf(t, "listClusters"),
			[]string{"id", "name", "podid", "podname", "zoneid", "zonename", "hypervisortype", "clustertype", "allocationstate", "managedstate",
				"cpuovercommitratio", "memoryovercommitratio", "resourcedetails", "capacity"}},
		{"listHosts", "host", nil, objectFieldsOf(t, "listHosts"),
			[]string{"id", "name", "state", "type", "ipaddress", "zoneid", "zonename", "podid", "podname", "clusterid", "clustername", "clustertype",
				"hypervisor", "resourcestate", "hosttags", "cpunumber", "cpuspeed", "cpuallocated", "memorytotal", "memoryallocated", "hostha",
				"created", "annotation", "lastannotated", "username", "hasannotations", "islocalstorageactive", "hahost"}},
		{"listStoragePools", "storagepool", nil, responseFieldsOf(t, "listStoragePools"),
			[]string{"id", "name", "zoneid", "zonename", "podid", "podname", "clusterid", "clustername", "ipaddress", "path", "type", "state",
				"scope", "disksizetotal", "disksizeallocated", "disksizeused", "tags", "storagecapabilities", "hypervisor", "provider", "overprovisionfactor"}},
		{"listImageStores", "imagestore", nil, responseFieldsOf(t, "listImageStores"),
			[]string{"id", "name", "url", "protocol", "providername", "zoneid", "zonename", "scope", "readonly"}},
		{"listCapacity", "capacity", nil, responseFieldsOf(t, "listCapacity"),
			[]string{"type", "name", "zoneid", "zonename", "capacitytotal", "capacityused", "capacityallocated", "percentused"}},
	}
	for _, tc := range cases {
		params := map[string]string{"command": tc.cmd}
		for k, v := range tc.params {
			params[k] = v
		}
		items := must(t, s, params)[tc.key].([]any)
		if len(items) == 0 {
			t.Fatalf("%s returned nothing", tc.cmd)
		}
		obj := items[0].(map[string]any)
		for k := range obj {
			if !tc.known[k] {
				t.Errorf("%s: field %q is not a CloudStack field", tc.cmd, k)
			}
		}
		for _, k := range tc.must {
			if _, ok := obj[k]; !ok {
				t.Errorf("%s: field %q missing from %v", tc.cmd, k, obj)
			}
		}
	}
	ha := item(t, must(t, s, map[string]string{"command": "listHosts"}), "host")["hostha"].(map[string]any)
	if len(ha) != 3 || ha["haenable"] != false || ha["haprovider"] != "" || ha["hastate"] != "Disabled" {
		t.Fatalf("hostha = %v", ha)
	}
}
