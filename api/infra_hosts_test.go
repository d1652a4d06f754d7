package api

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stratus-cloud/stratus/fsm"
)

func TestAddHostRecordsADisconnectedHost(t *testing.T) {
	in := newInfra(t)
	s := in.s
	rec := call(t, s, map[string]string{"command": "addHost", "zoneid": in.zone, "podid": in.pod, "clusterid": in.cluster,
		"url": "http://10.1.0.60", "hypervisor": "KVM", "username": "root", "password": "hunter2-secret", "hosttags": "ssd, gpu,ssd"})
	body := decode(t, rec, "addhostresponse")
	h := item(t, body, "host") // a list, as CloudStack answers addHost
	if h["name"] != "10.1.0.60" || h["ipaddress"] != "10.1.0.60" || h["state"] != "Disconnected" || h["resourcestate"] != "Enabled" ||
		h["type"] != "Routing" || h["hypervisor"] != "KVM" || h["clusterid"] != in.cluster || h["clustername"] != "kvm-a" ||
		h["clustertype"] != "CloudManaged" || h["podname"] != "pod-a" || h["zonename"] != in.zoneName || h["hosttags"] != "ssd,gpu" ||
		h["cpunumber"] != float64(0) || h["memorytotal"] != float64(0) || h["cpuallocated"] != "0%" || h["created"] != FormatTime(fixedNow) {
		t.Fatalf("host = %v", h)
	}
	id := h["id"].(string)
	stored, _ := fsm.Get[fsm.Host](in.c.State(), nil, fsm.TableHosts, id)
	if stored == nil || len(stored.Token) < 40 {
		t.Fatalf("stored host has no agent token: %+v", stored)
	}
	// Neither the token nor the password is ever shown; the password is not
	// stored at all.
	raw, _ := json.Marshal(stored)
	list := call(t, s, map[string]string{"command": "listHosts", "id": id}).Body.String()
	for what, text := range map[string]string{"addHost answer": rec.Body.String(), "listHosts answer": list} {
		if strings.Contains(text, stored.Token) || strings.Contains(text, "hunter2") {
			t.Errorf("%s shows a secret: %s", what, text)
		}
	}
	if strings.Contains(string(raw), "hunter2") {
		t.Errorf("the stored host holds the password: %s", raw)
	}
	// The same address again in the zone is a conflict; every host gets its
	// own token.
	wantError(t, call(t, s, map[string]string{"command": "addHost", "zoneid": in.zone, "podid": in.pod, "clusterid": in.cluster,
		"url": "http://10.1.0.60/", "hypervisor": "KVM"}), "addhostresponse", 431, "a host with this address in this zone already exists")
	other := in.addHost(t, "kvm2.example.com", nil)
	o, _ := fsm.Get[fsm.Host](in.c.State(), nil, fsm.TableHosts, other["id"].(string))
	if o.Token == stored.Token || other["name"] != "kvm2.example.com" {
		t.Fatalf("second host %v shares the token or lost its name", other)
	}
	wantEvents(t, s, id, "HOST.CREATE")
	// XML renders the nested hostha object too.
	xml := call(t, s, map[string]string{"command": "listHosts", "id": id, "response": "xml"}).Body.String()
	if !strings.Contains(xml, "<hostha><haenable>false</haenable><haprovider></haprovider><hastate>Disabled</hastate></hostha>") ||
		!strings.Contains(xml, "<count>1</count>") {
		t.Fatalf("xml host = %s", xml)
	}
}

func TestAddHostClusterByName(t *testing.T) {
	in := newInfra(t)
	s := in.s
	// An existing cluster of the pod, by name in any case.
	h := in.addHost(t, "10.1.0.61", map[string]string{"clusterid": "", "clustername": "KVM-A"})
	if h["clusterid"] != in.cluster {
		t.Fatalf("host went to %v, want the existing cluster", h["clusterid"])
	}
	// A new name makes the cluster, as CloudStack does.
	h = in.addHost(t, "10.1.0.62", map[string]string{"clusterid": "", "clustername": "kvm-new"})
	c := item(t, must(t, s, map[string]string{"command": "listClusters", "name": "kvm-new"}), "cluster")
	if h["clusterid"] != c["id"] || c["podid"] != in.pod || c["hypervisortype"] != "KVM" || c["allocationstate"] != "Enabled" {
		t.Fatalf("made cluster %v for host %v", c, h)
	}
	wantEvents(t, s, c["id"].(string), "CLUSTER.CREATE")
}

func TestAddHostParameterErrors(t *testing.T) {
	in := newInfra(t)
	s := in.s
	z2 := createTestZone(t, s, "zone-b")["id"].(string)
	pod2 := in.addPod(t, z2, "pod-b", "10.8.0.1", "10.8.0.10", "10.8.0.20")
	pod3 := in.addPod(t, in.zone, "pod-c", "10.9.0.1", "10.9.0.10", "10.9.0.20")
	base := func(kv ...string) map[string]string {
		m := map[string]string{"command": "addHost", "zoneid": in.zone, "podid": in.pod, "clusterid": in.cluster, "url": "http://10.1.0.70", "hypervisor": "KVM"}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	for _, tc := range []struct {
		name   string
		params map[string]string
		text   string
	}{
		{"missing url", base("url", ""), "due to missing parameter url"},
		{"missing zoneid", base("zoneid", ""), "due to missing parameter zoneid"},
		{"missing podid", base("podid", ""), "due to missing parameter podid"},
		{"missing hypervisor", base("hypervisor", ""), "due to missing parameter hypervisor"},
		{"no cluster", base("clusterid", ""), "give clusterid, or clustername"},
		{"XenServer", base("hypervisor", "XenServer"), `invalid value "XenServer" for parameter hypervisor`},
		{"https", base("url", "https://10.1.0.70"), "not with scheme https"},
		{"nfs url", base("url", "nfs://10.1.0.70/x"), "parameter url: a KVM host is given as http://<address>"},
		{"no address", base("url", "http://"), "is neither an IP address nor a DNS name"},
		{"bad name", base("url", "http://bad_host!"), "parameter url"},
		{"pod of another zone", base("podid", pod2), "is not in zone zone-a"},
		{"cluster of another pod", base("podid", pod3), "is not in pod pod-c"},
		{"unknown cluster", base("clusterid", missingID), notFoundText("clusterid")},
		{"unknown zone", base("zoneid", missingID), notFoundText("zoneid")},
		{"bad allocation state", base("allocationstate", "Paused"), "parameter allocationstate"},
	} {
		t.Run(tc.name, func(t *testing.T) { wantError(t, call(t, s, tc.params), "addhostresponse", 431, tc.text) })
	}
	// A bare address is taken as the host.
	if h := item(t, must(t, s, base("url", "10.1.0.71", "allocationstate", "Disabled")), "host"); h["ipaddress"] != "10.1.0.71" || h["resourcestate"] != "Disabled" {
		t.Fatalf("bare address host = %v", h)
	}
}

func TestUpdateHost(t *testing.T) {
	in := newInfra(t)
	s := in.s
	id := in.addHost(t, "10.1.0.60", map[string]string{"hosttags": "ssd"})["id"].(string)
	up := must(t, s, map[string]string{"command": "updateHost", "id": id, "allocationstate": "Disable", "hosttags": "gpu,nvme",
		"name": "kvm-1", "annotation": "fans replaced"})["host"].(map[string]any)
	if up["resourcestate"] != "Disabled" || up["hosttags"] != "gpu,nvme" || up["name"] != "kvm-1" || up["annotation"] != "fans replaced" ||
		up["username"] != "admin" || up["hasannotations"] != true || up["lastannotated"] != FormatTime(fixedNow) {
		t.Fatalf("updated host = %v", up)
	}
	up = must(t, s, map[string]string{"command": "updateHost", "id": id, "allocationstate": "enable", "hosttags": "", "annotation": ""})["host"].(map[string]any)
	if up["resourcestate"] != "Enabled" || up["hosttags"] != nil || up["hasannotations"] != false || up["username"] != nil {
		t.Fatalf("host after enable and clearing = %v", up)
	}
	wantError(t, call(t, s, map[string]string{"command": "updateHost", "id": id, "allocationstate": "Maintenance"}), "updatehostresponse", 431, "use Enable or Disable")
	wantError(t, call(t, s, map[string]string{"command": "updateHost", "id": missingID}), "updatehostresponse", 431, notFoundText("id"))
	// A host in maintenance cannot be enabled or disabled.
	h, _ := fsm.Get[fsm.Host](in.c.State(), nil, fsm.TableHosts, id)
	m := h.Copy()
	m.ResourceState = fsm.ResourceStateMaintenance
	in.commitRow(t, fsm.Update(fsm.TableHosts, m))
	wantError(t, call(t, s, map[string]string{"command": "updateHost", "id": id, "allocationstate": "Enable"}), "updatehostresponse", 431, "cancel its maintenance")
	wantEvents(t, s, id, "HOST.CREATE", "HOST.UPDATE", "HOST.UPDATE")
}

func TestListHostsFilters(t *testing.T) {
	in := newInfra(t)
	s := in.s
	a := in.addHost(t, "10.1.0.60", nil)["id"].(string)
	in.addHost(t, "10.1.0.61", map[string]string{"allocationstate": "Disabled"})
	pod2 := in.addPod(t, in.zone, "pod-b", "10.2.0.1", "10.2.0.10", "10.2.0.20")
	c2 := item(t, must(t, s, map[string]string{"command": "addCluster", "zoneid": in.zone, "podid": pod2, "clustername": "kvm-b",
		"hypervisor": "KVM", "clustertype": "CloudManaged"}), "cluster")["id"].(string)
	in.addHost(t, "10.2.0.60", map[string]string{"podid": pod2, "clusterid": c2})
	// The first host's agent has connected.
	h, _ := fsm.Get[fsm.Host](in.c.State(), nil, fsm.TableHosts, a)
	upd := h.Copy()
	upd.State = fsm.HostStateUp
	in.commitRow(t, fsm.Update(fsm.TableHosts, upd))

	names := func(kv ...string) string {
		params := map[string]string{"command": "listHosts"}
		for i := 0; i+1 < len(kv); i += 2 {
			params[kv[i]] = kv[i+1]
		}
		return strings.Join(listed(t, s, params, "host", "name"), ",")
	}
	for _, tc := range []struct {
		filter []string
		want   string
	}{
		{nil, "10.1.0.60,10.1.0.61,10.2.0.60"},
		{[]string{"zoneid", in.zone}, "10.1.0.60,10.1.0.61,10.2.0.60"},
		{[]string{"podid", pod2}, "10.2.0.60"},
		{[]string{"clusterid", in.cluster}, "10.1.0.60,10.1.0.61"},
		{[]string{"resourcestate", "disabled"}, "10.1.0.61"},
		{[]string{"state", "Up"}, "10.1.0.60"},
		{[]string{"state", "Disconnected"}, "10.1.0.61,10.2.0.60"},
		{[]string{"type", "routing"}, "10.1.0.60,10.1.0.61,10.2.0.60"},
		{[]string{"type", "SecondaryStorage"}, ""},
		{[]string{"hypervisor", "KVM"}, "10.1.0.60,10.1.0.61,10.2.0.60"},
		{[]string{"name", "10.1.0.61"}, "10.1.0.61"},
		{[]string{"keyword", "10.2."}, "10.2.0.60"},
		{[]string{"hahost", "true"}, ""},
		{[]string{"hahost", "false"}, "10.1.0.60,10.1.0.61,10.2.0.60"},
		{[]string{"outofbandmanagementenabled", "true"}, ""},
		{[]string{"details", "min,capacity"}, "10.1.0.60,10.1.0.61,10.2.0.60"},
		{[]string{"page", "2", "pagesize", "2"}, "10.2.0.60"},
	} {
		if got := names(tc.filter...); got != tc.want {
			t.Errorf("listHosts %v = %q, want %q", tc.filter, got, tc.want)
		}
	}
	wantError(t, call(t, s, map[string]string{"command": "listHosts", "clusterid": missingID}), "listhostsresponse", 431, notFoundText("clusterid"))
	wantError(t, call(t, s, map[string]string{"command": "listHosts", "hahost": "perhaps"}), "listhostsresponse", 431, "hahost")
}

func TestDeleteHost(t *testing.T) {
	in := newInfra(t)
	s := in.s
	id := in.addHost(t, "10.1.0.60", nil)["id"].(string)
	local := must(t, s, map[string]string{"command": "createStoragePool", "zoneid": in.zone, "clusterid": in.cluster, "name": "local-1",
		"url": "file://10.1.0.60/var/lib/libvirt/images", "capacitybytes": "1000"})["storagepool"].(map[string]any)
	if local["scope"] != "HOST" || local["type"] != "Filesystem" {
		t.Fatalf("local pool = %v", local)
	}
	if h := item(t, must(t, s, map[string]string{"command": "listHosts", "id": id}), "host"); h["islocalstorageactive"] != true || h["disksizetotal"] != float64(1000) {
		t.Fatalf("host with local storage = %v", h)
	}
	// An Up host not in maintenance needs forced=true.
	h, _ := fsm.Get[fsm.Host](in.c.State(), nil, fsm.TableHosts, id)
	upd := h.Copy()
	upd.State = fsm.HostStateUp
	in.commitRow(t, fsm.Update(fsm.TableHosts, upd))
	wantError(t, call(t, s, map[string]string{"command": "deleteHost", "id": id}), "deletehostresponse", 530, "put the host into maintenance, or delete it with forced=true")
	wantError(t, call(t, s, map[string]string{"command": "deleteHost", "id": id, "forced": "sure"}), "deletehostresponse", 431, "forced")
	if del := must(t, s, map[string]string{"command": "deleteHost", "id": id, "forced": "true"}); del["success"] != true {
		t.Fatalf("deleteHost = %v", del)
	}
	// Its local pool went with it, and the cluster can go now.
	if body := must(t, s, map[string]string{"command": "listStoragePools"}); len(body) != 0 {
		t.Fatalf("pools after deleting the host = %v", body)
	}
	wantEvents(t, s, local["id"].(string), "CREATE.PS", "DELETE.PS")
	wantEvents(t, s, id, "HOST.CREATE", "HOST.DELETE")
	wantError(t, call(t, s, map[string]string{"command": "deleteHost", "id": id}), "deletehostresponse", 431, notFoundText("id")[:18])
	must(t, s, map[string]string{"command": "deleteCluster", "id": in.cluster})

	// A Disconnected host goes without forced.
	in2 := newInfra(t)
	id2 := in2.addHost(t, "10.1.0.61", nil)["id"].(string)
	must(t, in2.s, map[string]string{"command": "deleteHost", "id": id2})
}
