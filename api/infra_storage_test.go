package api

import (
	"strings"
	"testing"

	"github.com/stratus-cloud/stratus/fsm"
)

func TestCreateStoragePoolKinds(t *testing.T) {
	in := newInfra(t)
	s := in.s
	in.addHost(t, "10.1.0.60", nil)
	pool := func(params map[string]string) map[string]any {
		t.Helper()
		params["command"] = "createStoragePool"
		params["zoneid"] = in.zone
		return must(t, s, params)["storagepool"].(map[string]any)
	}
	nfs := pool(map[string]string{"name": "nfs1", "clusterid": in.cluster, "url": "nfs://10.0.0.9/export/primary/", "tags": "fast,ssd",
		"capacitybytes": "1099511627776", "hypervisor": "kvm", "provider": "DefaultPrimary", "details[0].nfsvers": "4"})
	want := map[string]any{"name": "nfs1", "type": "NetworkFilesystem", "scope": "CLUSTER", "state": "Up", "ipaddress": "10.0.0.9",
		"path": "/export/primary", "clusterid": in.cluster, "clustername": "kvm-a", "podid": in.pod, "podname": "pod-a",
		"zonename": in.zoneName, "tags": "fast,ssd", "disksizetotal": float64(1 << 40), "disksizeallocated": float64(0),
		"hypervisor": "KVM", "provider": "DefaultPrimary", "overprovisionfactor": "1.0", "created": FormatTime(fixedNow)}
	for k, v := range want {
		if nfs[k] != v {
			t.Errorf("nfs pool %s = %v, want %v", k, nfs[k], v)
		}
	}
	stored, _ := fsm.Get[fsm.StoragePool](in.c.State(), nil, fsm.TableStoragePools, nfs["id"].(string))
	if stored.URL != "nfs://10.0.0.9/export/primary" || stored.Details["nfsvers"] != "4" {
		t.Fatalf("stored nfs pool = %+v", stored)
	}
	zone := pool(map[string]string{"name": "zonewide", "scope": "ZONE", "url": "nfs://nfs.example.com:2049/z"})
	if zone["scope"] != "ZONE" || zone["ipaddress"] != "nfs.example.com" || zone["path"] != "/z" || zone["clusterid"] != nil || zone["podid"] != nil {
		t.Fatalf("zone-wide pool = %v", zone)
	}
	smp := pool(map[string]string{"name": "smp", "clusterid": in.cluster, "podid": in.pod, "url": "sharedmountpoint:///mnt/gfs"})
	if smp["type"] != "SharedMountPoint" || smp["path"] != "/mnt/gfs" || smp["ipaddress"] != "localhost" {
		t.Fatalf("shared mount point pool = %v", smp)
	}
	local := pool(map[string]string{"name": "local", "clusterid": in.cluster, "url": "file://10.1.0.60/var/lib/libvirt/images"})
	if local["type"] != "Filesystem" || local["scope"] != "HOST" || local["ipaddress"] != "10.1.0.60" {
		t.Fatalf("local pool = %v", local)
	}
	wantEvents(t, s, nfs["id"].(string), "CREATE.PS")
}

func TestCreateStoragePoolErrors(t *testing.T) {
	in := newInfra(t)
	s := in.s
	in.addHost(t, "10.1.0.60", nil)
	must(t, s, map[string]string{"command": "createStoragePool", "zoneid": in.zone, "clusterid": in.cluster, "name": "taken", "url": "nfs://10.0.0.9/taken"})
	z2 := createTestZone(t, s, "zone-b")["id"].(string)
	pod2 := in.addPod(t, in.zone, "pod-b", "10.2.0.1", "10.2.0.10", "10.2.0.20")
	base := func(kv ...string) map[string]string {
		m := map[string]string{"command": "createStoragePool", "zoneid": in.zone, "clusterid": in.cluster, "name": "p", "url": "nfs://10.0.0.9/p"}
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
		{"missing name", base("name", ""), "due to missing parameter name"},
		{"missing zoneid", base("zoneid", ""), "due to missing parameter zoneid"},
		{"no scheme", base("url", "10.0.0.9:/p"), `invalid value "10.0.0.9:/p" for parameter url: it has no scheme`},
		{"unsupported scheme", base("url", "iscsi://10.0.0.9/iqn/1"), "parameter url: scheme iscsi is not supported; give nfs://<server>/<export>"},
		{"nfs without server", base("url", "nfs:///export"), "parameter url: the NFS server is missing"},
		{"nfs without path", base("url", "nfs://10.0.0.9"), "parameter url: the path is missing"},
		{"nfs bad server", base("url", "nfs://bad_server/x"), "the NFS server bad_server is neither"},
		{"nfs bad port", base("url", "nfs://10.0.0.9:99999/x"), "port 99999 is not valid"},
		{"credentials", base("url", "nfs://u:p@10.0.0.9/x"), "it carries credentials"},
		{"query", base("url", "nfs://10.0.0.9/x?a=b"), "it has a query"},
		{"smp without path", base("url", "sharedmountpoint://"), "the path is missing"},
		{"local without host", base("url", "file:///data"), "the host whose disk it is is missing"},
		{"local host not in cluster", base("url", "file://10.1.0.99/data"), `cluster kvm-a has no host "10.1.0.99"`},
		{"local with cluster scope", base("url", "file://10.1.0.60/data", "scope", "cluster"), "scope cluster does not fit url"},
		{"nfs with host scope", base("scope", "host"), "scope host does not fit url"},
		{"bad scope", base("scope", "region"), `invalid value "region" for parameter scope`},
		{"cluster scope without cluster", base("clusterid", ""), "a cluster-scope pool needs parameter clusterid"},
		{"zone scope with cluster", base("scope", "zone"), "leave podid and clusterid out"},
		{"cluster of another zone", base("zoneid", z2), "cluster kvm-a is not in zone zone-b"},
		{"pod not the cluster's", base("podid", pod2), "cluster kvm-a is not in pod pod-b"},
		{"unknown cluster", base("clusterid", missingID), notFoundText("clusterid")},
		{"hypervisor", base("hypervisor", "VMware"), `invalid value "VMware" for parameter hypervisor`},
		{"provider", base("provider", "SolidFire"), `invalid value "SolidFire" for parameter provider`},
		{"managed", base("managed", "true"), "managed storage is not supported"},
		{"negative capacity", base("capacitybytes", "-5"), "parameter capacitybytes: it may not be negative"},
		{"capacity not a number", base("capacitybytes", "lots"), "invalid value lots for parameter capacitybytes"},
		{"duplicate name", base("name", "TAKEN", "url", "nfs://10.0.0.9/other"), "a storage pool with this name in this zone already exists"},
		{"same export twice", base("url", "nfs://10.0.0.9/taken/"), "storage nfs://10.0.0.9/taken is already pool taken"},
	} {
		t.Run(tc.name, func(t *testing.T) { wantError(t, call(t, s, tc.params), "createstoragepoolresponse", 431, tc.text) })
	}
}

func TestUpdateListDeleteStoragePools(t *testing.T) {
	in := newInfra(t)
	s := in.s
	mk := func(kv ...string) string {
		params := map[string]string{"command": "createStoragePool", "zoneid": in.zone}
		for i := 0; i+1 < len(kv); i += 2 {
			params[kv[i]] = kv[i+1]
		}
		return must(t, s, params)["storagepool"].(map[string]any)["id"].(string)
	}
	a := mk("name", "alpha", "clusterid", in.cluster, "url", "nfs://10.0.0.9/a", "capacitybytes", "1000")
	mk("name", "beta", "scope", "zone", "url", "nfs://10.0.0.8/b")
	mk("name", "gamma", "clusterid", in.cluster, "url", "sharedmountpoint:///mnt/g")

	up := must(t, s, map[string]string{"command": "updateStoragePool", "id": a, "name": "alpha2", "tags": "x,y", "enabled": "false",
		"capacitybytes": "2000", "capacityiops": "500"})["storagepool"].(map[string]any)
	if up["name"] != "alpha2" || up["tags"] != "x,y" || up["state"] != "Disabled" || up["disksizetotal"] != float64(2000) || up["capacityiops"] != float64(500) {
		t.Fatalf("updated pool = %v", up)
	}
	up = must(t, s, map[string]string{"command": "updateStoragePool", "id": a, "enabled": "true", "tags": ""})["storagepool"].(map[string]any)
	if up["state"] != "Up" || up["tags"] != nil {
		t.Fatalf("re-enabled pool = %v", up)
	}
	// Capacity may not go below what volumes hold.
	sp, _ := fsm.Get[fsm.StoragePool](in.c.State(), nil, fsm.TableStoragePools, a)
	held := sp.Copy()
	held.AllocatedBytes = 1500
	in.commitRow(t, fsm.Update(fsm.TableStoragePools, held))
	wantError(t, call(t, s, map[string]string{"command": "updateStoragePool", "id": a, "capacitybytes": "1000"}),
		"updatestoragepoolresponse", 431, "capacitybytes 1000 is below the 1500 bytes already allocated")
	wantError(t, call(t, s, map[string]string{"command": "updateStoragePool", "id": a, "enabled": "nope"}), "updatestoragepoolresponse", 431, "enabled")
	wantError(t, call(t, s, map[string]string{"command": "updateStoragePool", "id": a, "name": "beta"}), "updatestoragepoolresponse", 431, "already exists")
	wantError(t, call(t, s, map[string]string{"command": "updateStoragePool", "id": missingID}), "updatestoragepoolresponse", 431, notFoundText("id"))
	wantEvents(t, s, a, "CREATE.PS", "DISABLE.PS", "ENABLE.PS")

	names := func(kv ...string) string {
		params := map[string]string{"command": "listStoragePools"}
		for i := 0; i+1 < len(kv); i += 2 {
			params[kv[i]] = kv[i+1]
		}
		return strings.Join(listed(t, s, params, "storagepool", "name"), ",")
	}
	for _, tc := range []struct {
		filter []string
		want   string
	}{
		{nil, "alpha2,beta,gamma"},
		{[]string{"clusterid", in.cluster}, "alpha2,gamma"},
		{[]string{"podid", in.pod}, "alpha2,gamma"},
		{[]string{"zoneid", in.zone}, "alpha2,beta,gamma"},
		{[]string{"scope", "zone"}, "beta"},
		{[]string{"ipaddress", "10.0.0.9"}, "alpha2"},
		{[]string{"path", "/mnt/g/"}, "gamma"},
		{[]string{"name", "BETA"}, "beta"},
		{[]string{"keyword", "amm"}, "gamma"},
		{[]string{"id", a}, "alpha2"},
		{[]string{"page", "1", "pagesize", "2"}, "alpha2,beta"},
	} {
		if got := names(tc.filter...); got != tc.want {
			t.Errorf("listStoragePools %v = %q, want %q", tc.filter, got, tc.want)
		}
	}

	// The cluster is held by its pools; deleting them frees it.
	wantError(t, call(t, s, map[string]string{"command": "deleteCluster", "id": in.cluster}), "deleteclusterresponse", 536, ": storage pool ")
	for _, name := range []string{"alpha2", "gamma"} {
		id := listed(t, s, map[string]string{"command": "listStoragePools", "name": name}, "storagepool", "id")[0]
		if del := must(t, s, map[string]string{"command": "deleteStoragePool", "id": id, "forced": "true"}); del["success"] != true {
			t.Fatalf("deleteStoragePool %s = %v", name, del)
		}
	}
	must(t, s, map[string]string{"command": "deleteCluster", "id": in.cluster})
	wantError(t, call(t, s, map[string]string{"command": "deleteStoragePool", "id": a}), "deletestoragepoolresponse", 431, "entity does not exist")
}

func TestImageStores(t *testing.T) {
	in := newInfra(t)
	s := in.s
	st := must(t, s, map[string]string{"command": "addImageStore", "provider": "nfs", "zoneid": in.zone, "url": "nfs://10.0.0.9/secondary",
		"name": "sec1", "details[0].key": "mountopts", "details[0].value": "vers=4"})["imagestore"].(map[string]any)
	want := map[string]any{"name": "sec1", "url": "nfs://10.0.0.9/secondary", "protocol": "nfs", "providername": "NFS",
		"zoneid": in.zone, "zonename": in.zoneName, "scope": "ZONE", "readonly": false}
	for k, v := range want {
		if st[k] != v {
			t.Errorf("image store %s = %v, want %v", k, st[k], v)
		}
	}
	stored, _ := fsm.Get[fsm.ImageStore](in.c.State(), nil, fsm.TableImageStores, st["id"].(string))
	if stored.Details["mountopts"] != "vers=4" {
		t.Fatalf("details = %v", stored.Details)
	}
	// Without a name the store is named by its url.
	second := must(t, s, map[string]string{"command": "addImageStore", "provider": "NFS", "zoneid": in.zone, "url": "nfs://10.0.0.8/sec2"})["imagestore"].(map[string]any)
	if second["name"] != "nfs://10.0.0.8/sec2" {
		t.Fatalf("unnamed store = %v", second)
	}
	for _, tc := range []struct {
		name   string
		params map[string]string
		text   string
	}{
		{"missing provider", map[string]string{"zoneid": in.zone, "url": "nfs://10.0.0.7/x"}, "due to missing parameter provider"},
		{"S3", map[string]string{"provider": "S3", "zoneid": in.zone, "url": "nfs://10.0.0.7/x"}, `invalid value "S3" for parameter provider`},
		{"no zone", map[string]string{"provider": "NFS", "url": "nfs://10.0.0.7/x"}, "parameter zoneid is needed"},
		{"no url", map[string]string{"provider": "NFS", "zoneid": in.zone}, "needs parameter url"},
		{"not nfs", map[string]string{"provider": "NFS", "zoneid": in.zone, "url": "sharedmountpoint:///x"}, "an NFS image store is given as nfs://"},
		{"bad url", map[string]string{"provider": "NFS", "zoneid": in.zone, "url": "nfs://"}, "parameter url"},
		{"unknown zone", map[string]string{"provider": "NFS", "zoneid": missingID, "url": "nfs://10.0.0.7/x"}, notFoundText("zoneid")},
		{"duplicate name", map[string]string{"provider": "NFS", "zoneid": in.zone, "url": "nfs://10.0.0.7/x", "name": "SEC1"}, "image store with this name in this zone already exists"},
		{"duplicate url", map[string]string{"provider": "NFS", "zoneid": in.zone, "url": "nfs://10.0.0.9/secondary/", "name": "other"}, "is already image store sec1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.params["command"] = "addImageStore"
			wantError(t, call(t, s, tc.params), "addimagestoreresponse", 431, tc.text)
		})
	}
	names := func(kv ...string) string {
		params := map[string]string{"command": "listImageStores"}
		for i := 0; i+1 < len(kv); i += 2 {
			params[kv[i]] = kv[i+1]
		}
		return strings.Join(listed(t, s, params, "imagestore", "name"), ",")
	}
	for _, tc := range []struct {
		filter []string
		want   string
	}{
		{nil, "sec1,nfs://10.0.0.8/sec2"},
		{[]string{"zoneid", in.zone, "provider", "nfs", "protocol", "NFS"}, "sec1,nfs://10.0.0.8/sec2"},
		{[]string{"name", "sec1"}, "sec1"},
		{[]string{"keyword", "10.0.0.8"}, "nfs://10.0.0.8/sec2"},
		{[]string{"readonly", "true"}, ""},
		{[]string{"readonly", "false", "page", "2", "pagesize", "1"}, "nfs://10.0.0.8/sec2"},
		{[]string{"id", st["id"].(string)}, "sec1"},
	} {
		if got := names(tc.filter...); got != tc.want {
			t.Errorf("listImageStores %v = %q, want %q", tc.filter, got, tc.want)
		}
	}
	wantError(t, call(t, s, map[string]string{"command": "listImageStores", "zoneid": missingID}), "listimagestoresresponse", 431, notFoundText("zoneid"))
	if del := must(t, s, map[string]string{"command": "deleteImageStore", "id": st["id"].(string)}); del["success"] != true {
		t.Fatalf("deleteImageStore = %v", del)
	}
	wantError(t, call(t, s, map[string]string{"command": "deleteImageStore", "id": st["id"].(string)}), "deleteimagestoreresponse", 431, "entity does not exist")
	wantEvents(t, s, st["id"].(string), "IMAGE.STORE.CREATE", "IMAGE.STORE.DELETE")
}
