package api

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/scheduler"
)

const testGiB = int64(1) << 30

// computeFixture is the catalog fixture (root, dadmin of ROOT/eng, alice in
// ROOT/eng, bob in ROOT/eng/web, carol in ROOT) with, in zone one, a pod, a
// KVM cluster, a host, a 100 GiB cluster pool, disk offerings fixed10 (10
// GiB) and custom, and VMs: alice's aliceRun (Running on the host) with a
// ROOT volume, alice's aliceStop and bob's bobStop (Stopped, no host). The
// job runner runs the tag, volume, snapshot and affinity jobs.
type computeFixture struct {
	*catalogFixture
	pod, cluster, host, pool      string
	fixed, custom                 string
	aliceRun, aliceStop, bobStop  string
	aliceRoot, serviceOfferingID  string
	aliceRunName, aliceStopName   string
	poolName, hostName, zone1Name string
}

// withComputeRunner starts the job runner with the job kinds of these tests.
func withComputeRunner(t testing.TB, c *fakeCluster) {
	t.Helper()
	r := scheduler.NewRunner(c, nil)
	scheduler.RegisterTagJobs(r)
	scheduler.RegisterVolumeJobs(r)
	scheduler.RegisterSnapshotJobs(r)
	scheduler.RegisterAffinityJobs(r)
	if err := r.Establish(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Revoke)
}

func newComputeFixture(t *testing.T) *computeFixture {
	t.Helper()
	f := &computeFixture{catalogFixture: newCatalogFixture(t), poolName: "primary", zone1Name: "zone one"}
	s, root := f.s, f.root
	withComputeRunner(t, f.c)
	f.pod = root.ok(t, s, map[string]string{"command": "createPod", "zoneid": f.zone1, "name": "pod-a", "gateway": "10.1.0.1",
		"netmask": "255.255.255.0", "startip": "10.1.0.10", "endip": "10.1.0.50"})["pod"].(map[string]any)["id"].(string)
	f.cluster = item(t, root.ok(t, s, map[string]string{"command": "addCluster", "zoneid": f.zone1, "podid": f.pod, "clustername": "kvm-a",
		"hypervisor": "KVM", "clustertype": "CloudManaged"}), "cluster")["id"].(string)
	h := item(t, root.ok(t, s, map[string]string{"command": "addHost", "zoneid": f.zone1, "podid": f.pod, "clusterid": f.cluster,
		"url": "http://10.1.0.60", "hypervisor": "KVM", "username": "root", "password": "hunter2-secret"}), "host")
	f.host, f.hostName = h["id"].(string), h["name"].(string)
	f.pool = root.ok(t, s, map[string]string{"command": "createStoragePool", "zoneid": f.zone1, "clusterid": f.cluster, "name": f.poolName,
		"url": "nfs://10.0.0.9/primary", "capacitybytes": "107374182400"})["storagepool"].(map[string]any)["id"].(string)
	f.fixed = root.ok(t, s, map[string]string{"command": "createDiskOffering", "name": "fixed10", "displaytext": "10 GiB",
		"disksize": "10"})["diskoffering"].(map[string]any)["id"].(string)
	f.custom = root.ok(t, s, map[string]string{"command": "createDiskOffering", "name": "custom", "displaytext": "any size",
		"customized": "true"})["diskoffering"].(map[string]any)["id"].(string)
	f.serviceOfferingID = root.ok(t, s, smallOffering)["serviceoffering"].(map[string]any)["id"].(string)
	f.aliceRun, f.aliceStop, f.bobStop, f.aliceRoot = newID(), newID(), newID(), newID()
	f.aliceRunName, f.aliceStopName = "alice-run", "alice-stop"
	vm := func(id, name string, owner ident, domainID, state, host string) *fsm.VM {
		v := &fsm.VM{ID: id, Name: name, DisplayName: name, InstanceName: "i-" + id, AccountID: owner.accountID, DomainID: domainID,
			UserID: owner.userID, ZoneID: f.zone1, ServiceOfferingID: f.serviceOfferingID, CPUNumber: 1, CPUSpeed: 1000, MemoryMiB: 1024,
			State: state, Power: fsm.PowerOff, Created: fixedNow}
		if host != "" {
			v.HostID, v.PodID, v.ClusterID, v.Power = host, f.pod, f.cluster, fsm.PowerOn
		}
		return v
	}
	f.commit(t,
		fsm.Create(fsm.TableVMs, vm(f.aliceRun, f.aliceRunName, f.alice, f.engID, fsm.VMRunning, f.host)),
		fsm.Create(fsm.TableVMs, vm(f.aliceStop, f.aliceStopName, f.alice, f.engID, fsm.VMStopped, "")),
		fsm.Create(fsm.TableVMs, vm(f.bobStop, "bob-stop", f.bob, f.webID, fsm.VMStopped, "")),
		fsm.Create(fsm.TableVolumes, &fsm.Volume{ID: f.aliceRoot, Name: "ROOT-alice", AccountID: f.alice.accountID, DomainID: f.engID,
			ZoneID: f.zone1, Type: fsm.VolumeRoot, VMID: f.aliceRun, SizeBytes: 8 * testGiB, Format: "QCOW2", State: fsm.VolumeAllocated,
			Created: fixedNow, Attached: fixedNow}),
	)
	return f
}

func (f *computeFixture) commit(t *testing.T, ops ...fsm.TxnOp) {
	t.Helper()
	if _, err := f.c.Apply(context.Background(), fsm.TxnRequestType, fsm.TxnRequest{Ops: ops}); err != nil {
		t.Fatal(err)
	}
}

// job sends an async command as id, waits for its job and returns it.
func (f *computeFixture) job(t *testing.T, id ident, params map[string]string) map[string]any {
	t.Helper()
	accepted := id.ok(t, f.s, params)
	jobID, _ := accepted["jobid"].(string)
	if !IsUUID(jobID) {
		t.Fatalf("%s answered %v, want a jobid", params["command"], accepted)
	}
	return waitForJob(t, f.s, jobID)
}

// jobOK runs an async command as id and asserts it succeeded.
func (f *computeFixture) jobOK(t *testing.T, id ident, params map[string]string) map[string]any {
	t.Helper()
	j := f.job(t, id, params)
	if j["jobstatus"].(float64) != 1 {
		t.Fatalf("%v by %s failed: %v", params, id.name, j["jobresult"])
	}
	res, _ := j["jobresult"].(map[string]any)
	return res
}

// newVolume creates a volume as id and returns its ID once the job ended.
func (f *computeFixture) newVolume(t *testing.T, id ident, name string, extra ...string) string {
	t.Helper()
	accepted := id.ok(t, f.s, catParams(map[string]string{"command": "createVolume", "name": name, "zoneid": f.zone1, "diskofferingid": f.fixed}, extra...))
	volID := accepted["id"].(string)
	if j := waitForJob(t, f.s, accepted["jobid"].(string)); j["jobstatus"].(float64) != 1 {
		t.Fatalf("createVolume %s: %v", name, j["jobresult"])
	}
	return volID
}

// listVolume returns the volume as id's listVolumes shows it.
func (f *computeFixture) listVolume(t *testing.T, id ident, volID string) map[string]any {
	t.Helper()
	return item(t, id.ok(t, f.s, map[string]string{"command": "listVolumes", "id": volID}), "volume")
}

func (f *computeFixture) poolAllocated(t *testing.T) int64 {
	t.Helper()
	p, _ := fsm.Get[fsm.StoragePool](f.c.State(), nil, fsm.TableStoragePools, f.pool)
	return p.AllocatedBytes
}

func TestVolumeLifecycle(t *testing.T) {
	f := newComputeFixture(t)
	s, alice, root := f.s, f.alice, f.root
	volID := f.newVolume(t, alice, "data1")
	v := f.listVolume(t, alice, volID)
	want := map[string]any{"name": "data1", "zoneid": f.zone1, "zonename": f.zone1Name, "type": "DATADISK", "state": "Allocated",
		"size": float64(10 * testGiB), "account": "alice", "domainid": f.engID, "domain": "eng", "diskofferingid": f.fixed,
		"diskofferingname": "fixed10", "storagetype": "shared", "provisioningtype": "thin", "hypervisor": "None", "destroyed": false}
	for k, w := range want {
		if v[k] != w {
			t.Errorf("new volume %s = %v, want %v", k, v[k], w)
		}
	}
	for _, k := range []string{"storageid", "virtualmachineid", "deviceid"} {
		if _, ok := v[k]; ok {
			t.Errorf("an unplaced, detached volume shows %s: %v", k, v)
		}
	}

	f.jobOK(t, alice, map[string]string{"command": "attachVolume", "id": volID, "virtualmachineid": f.aliceRun})
	if got := f.poolAllocated(t); got != 10*testGiB {
		t.Fatalf("pool allocated %d after attaching to a running VM, want 10 GiB", got)
	}
	v = f.listVolume(t, root, volID)
	if v["storageid"] != f.pool || v["storage"] != f.poolName || v["deviceid"] != float64(1) || v["virtualmachineid"] != f.aliceRun ||
		v["vmname"] != f.aliceRunName || v["vmstate"] != "Running" || v["hypervisor"] != "KVM" || v["clusterid"] != f.cluster {
		t.Fatalf("attached volume (root's view) = %v", v)
	}
	if v := f.listVolume(t, alice, volID); v["storageid"] != nil || v["vmname"] != f.aliceRunName {
		t.Errorf("alice sees storage details: %v", v)
	}
	wantError(t, alice.do(t, s, map[string]string{"command": "deleteVolume", "id": volID}), "deletevolumeresponse", 536,
		"attached to virtual machine "+f.aliceRunName)

	// Resizing: a fixed offering's size is fixed; a customized one grows.
	catFail(t, alice, s, map[string]string{"command": "resizeVolume", "id": volID, "size": "20"}, 431, "fixed size")
	f.jobOK(t, alice, map[string]string{"command": "resizeVolume", "id": volID, "diskofferingid": f.custom, "size": "20"})
	if v := f.listVolume(t, alice, volID); v["size"] != float64(20*testGiB) || v["diskofferingname"] != "custom" {
		t.Fatalf("resized volume = %v", v)
	}
	if got := f.poolAllocated(t); got != 20*testGiB {
		t.Fatalf("pool allocated %d after growing to 20 GiB", got)
	}
	catFail(t, alice, s, map[string]string{"command": "resizeVolume", "id": volID, "size": "15"}, 431, "only grow")
	catFail(t, alice, s, map[string]string{"command": "resizeVolume", "id": volID, "size": "20"}, 431, "already 20 GiB")
	catFail(t, alice, s, map[string]string{"command": "resizeVolume", "id": volID, "size": "500"}, 533, "free")
	catFail(t, alice, s, map[string]string{"command": "resizeVolume", "id": volID, "size": "30", "shrinkok": "true"}, 431, "shrinking")

	f.jobOK(t, alice, map[string]string{"command": "detachVolume", "id": volID})
	if v := f.listVolume(t, root, volID); v["virtualmachineid"] != nil || v["storageid"] != f.pool {
		t.Fatalf("detached volume = %v, want no VM but still its pool", v)
	}
	if del := alice.ok(t, s, map[string]string{"command": "deleteVolume", "id": volID}); del["success"] != true {
		t.Fatalf("deleteVolume = %v", del)
	}
	if got := f.poolAllocated(t); got != 0 {
		t.Errorf("pool allocated %d after delete, want 0", got)
	}
	catFail(t, alice, s, map[string]string{"command": "listVolumes", "id": volID}, 431, catNotFound("id", volID))
	wantCatalogEvents(t, f.c, volID, "VOLUME.CREATE", "VOLUME.ATTACH", "VOLUME.RESIZE", "VOLUME.DETACH", "VOLUME.DELETE")
}

func TestCreateVolumeErrors(t *testing.T) {
	f := newComputeFixture(t)
	s, alice := f.s, f.alice
	limited := f.root.ok(t, s, map[string]string{"command": "createDiskOffering", "name": "z2only", "displaytext": "z2", "disksize": "1",
		"zoneid": f.zone2})["diskoffering"].(map[string]any)["id"].(string)
	base := map[string]string{"command": "createVolume", "zoneid": f.zone1, "diskofferingid": f.fixed}
	for _, tc := range []struct {
		name   string
		params map[string]string
		code   int
		text   string
	}{
		{"no offering", map[string]string{"command": "createVolume", "zoneid": f.zone1}, 431, "missing parameter diskofferingid"},
		{"no zone", map[string]string{"command": "createVolume", "diskofferingid": f.fixed}, 431, "missing parameter zoneid"},
		{"customized without size", catParams(base, "diskofferingid", f.custom), 431, "customized: give size"},
		{"fixed with another size", catParams(base, "size", "5"), 431, "fixed size of 10 GiB"},
		{"size too big", catParams(base, "diskofferingid", f.custom, "size", "99999999"), 431, "parameter size"},
		{"bad size", catParams(base, "diskofferingid", f.custom, "size", "big"), 431, "invalid value big for parameter size"},
		{"unknown zone", catParams(base, "zoneid", catUnknownID), 431, catNotFound("zoneid", catUnknownID)},
		{"unknown offering", catParams(base, "diskofferingid", catUnknownID), 431, catNotFound("diskofferingid", catUnknownID)},
		{"offering of another zone", catParams(base, "diskofferingid", limited), 431, "not offered in zone"},
		{"another account's VM", catParams(base, "virtualmachineid", f.bobStop), 431, catNotFound("virtualmachineid", f.bobStop)},
		{"VM of another zone", catParams(base, "zoneid", f.zone2, "virtualmachineid", f.aliceStop), 431, "is not in zone"},
		{"account without domain", catParams(base, "account", "bob"), 431, "domainid is required"},
	} {
		t.Run(tc.name, func(t *testing.T) { catFail(t, alice, s, tc.params, tc.code, tc.text) })
	}
	// A disabled zone takes new volumes from the root admin only.
	f.root.ok(t, s, map[string]string{"command": "updateZone", "id": f.zone2, "allocationstate": "Disabled"})
	catFail(t, alice, s, catParams(base, "zoneid", f.zone2), 431, "disabled")
	f.jobOK(t, f.root, catParams(base, "zoneid", f.zone2))
}

func TestCreateVolumeAttachesToVM(t *testing.T) {
	f := newComputeFixture(t)
	// No zoneid: the VM's. A stopped VM without a host leaves it unplaced.
	accepted := f.alice.ok(t, f.s, map[string]string{"command": "createVolume", "diskofferingid": f.custom, "size": "3", "virtualmachineid": f.aliceStop})
	if j := waitForJob(t, f.s, accepted["jobid"].(string)); j["jobstatus"].(float64) != 1 {
		t.Fatalf("createVolume with a VM: %v", j["jobresult"])
	}
	v := f.listVolume(t, f.root, accepted["id"].(string))
	if v["virtualmachineid"] != f.aliceStop || v["deviceid"] != float64(1) || v["storageid"] != nil || v["zoneid"] != f.zone1 ||
		v["size"] != float64(3*testGiB) || !strings.HasPrefix(v["name"].(string), "DATA-") {
		t.Fatalf("volume = %v", v)
	}
	// The root admin creating a volume for alice's VM makes it alice's.
	accepted = f.root.ok(t, f.s, map[string]string{"command": "createVolume", "diskofferingid": f.fixed, "virtualmachineid": f.aliceRun})
	waitForJob(t, f.s, accepted["jobid"].(string))
	v = f.listVolume(t, f.alice, accepted["id"].(string))
	if v["account"] != "alice" || v["deviceid"] != float64(1) {
		t.Fatalf("admin-made volume = %v", v)
	}
	if got := f.poolAllocated(t); got != 10*testGiB {
		t.Errorf("pool allocated %d, want the 10 GiB of the volume attached to the running VM", got)
	}
}

func TestAttachDetachErrors(t *testing.T) {
	f := newComputeFixture(t)
	s, alice := f.s, f.alice
	vol := f.newVolume(t, alice, "v1")
	bobVol := f.newVolume(t, f.bob, "bobs")
	attach := map[string]string{"command": "attachVolume", "id": vol, "virtualmachineid": f.aliceStop}
	for _, tc := range []struct {
		name   string
		params map[string]string
		code   int
		text   string
	}{
		{"missing vm", map[string]string{"command": "attachVolume", "id": vol}, 431, "missing parameter virtualmachineid"},
		{"another account's volume", catParams(attach, "id", bobVol), 431, catNotFound("id", bobVol)},
		{"another account's VM", catParams(attach, "virtualmachineid", f.bobStop), 431, catNotFound("virtualmachineid", f.bobStop)},
		{"root volume", catParams(attach, "id", f.aliceRoot), 431, "ROOT volume"},
		{"device 3", catParams(attach, "deviceid", "3"), 431, "CD-ROM"},
		{"device 0", catParams(attach, "deviceid", "0"), 431, "0 is the ROOT volume"},
		{"device too high", catParams(attach, "deviceid", "26"), 431, "deviceid"},
	} {
		t.Run(tc.name, func(t *testing.T) { catFail(t, alice, s, tc.params, tc.code, tc.text) })
	}
	// The root admin may not join alice's volume to bob's VM.
	catFail(t, f.root, s, catParams(attach, "virtualmachineid", f.bobStop), 431, "different accounts")
	f.jobOK(t, alice, catParams(attach, "deviceid", "4"))
	catFail(t, alice, s, catParams(attach, "virtualmachineid", f.aliceRun), 536, "already attached to virtual machine "+f.aliceStopName)
	vol2 := f.newVolume(t, alice, "v2")
	catFail(t, alice, s, catParams(attach, "id", vol2, "deviceid", "4"), 431, "already uses it")

	detach := map[string]string{"command": "detachVolume"}
	catFail(t, alice, s, detach, 431, "give id, or virtualmachineid and deviceid")
	catFail(t, alice, s, catParams(detach, "id", f.aliceRoot), 431, "ROOT volumes cannot be detached")
	catFail(t, alice, s, catParams(detach, "id", vol2), 431, "not attached")
	catFail(t, alice, s, catParams(detach, "virtualmachineid", f.aliceStop, "deviceid", "5"), 431, "no volume at device ID 5")
	catFail(t, alice, s, catParams(detach, "id", bobVol), 431, catNotFound("id", bobVol))
	f.jobOK(t, alice, catParams(detach, "virtualmachineid", f.aliceStop, "deviceid", "4"))
	if v := f.listVolume(t, alice, vol); v["virtualmachineid"] != nil {
		t.Fatalf("still attached: %v", v)
	}
	// A VM in a transition refuses both.
	vm, _ := fsm.Get[fsm.VM](f.c.State(), nil, fsm.TableVMs, f.aliceStop)
	c := vm.Copy()
	c.State = fsm.VMStarting
	f.commit(t, fsm.Update(fsm.TableVMs, c))
	catFail(t, alice, s, attach, 431, "Running or Stopped")
}

func volumeNames(t *testing.T, f *computeFixture, id ident, extra ...string) []string {
	t.Helper()
	return names(id.ok(t, f.s, catParams(map[string]string{"command": "listVolumes"}, extra...)), "volume", "name")
}

func TestListVolumesScopingAndFilters(t *testing.T) {
	f := newComputeFixture(t)
	f.newVolume(t, f.alice, "alice-data")
	f.newVolume(t, f.bob, "bob-data")
	f.newVolume(t, f.carol, "carol-data")
	f.newVolume(t, f.dadmin, "dadmin-data")
	wantNames(t, "alice", volumeNames(t, f, f.alice), "alice-data", "ROOT-alice")
	wantNames(t, "alice listall", volumeNames(t, f, f.alice, "listall", "true"), "alice-data", "ROOT-alice")
	wantNames(t, "dadmin", volumeNames(t, f, f.dadmin), "dadmin-data")
	wantNames(t, "dadmin listall", volumeNames(t, f, f.dadmin, "listall", "true"), "alice-data", "ROOT-alice", "bob-data", "dadmin-data")
	wantNames(t, "dadmin in web", volumeNames(t, f, f.dadmin, "domainid", f.webID), "bob-data")
	wantNames(t, "dadmin for bob", volumeNames(t, f, f.dadmin, "account", "bob", "domainid", f.webID), "bob-data")
	wantNames(t, "root listall", volumeNames(t, f, f.root, "listall", "true"), "alice-data", "ROOT-alice", "bob-data", "carol-data", "dadmin-data")
	catFail(t, f.alice, f.s, map[string]string{"command": "listVolumes", "account": "bob", "domainid": f.webID}, 431, catNotFound("domainid", f.webID))
	catFail(t, f.dadmin, f.s, map[string]string{"command": "listVolumes", "domainid": f.rootDomain}, 431, catNotFound("domainid", f.rootDomain))

	wantNames(t, "type", volumeNames(t, f, f.alice, "type", "root"), "ROOT-alice")
	wantNames(t, "vm", volumeNames(t, f, f.alice, "virtualmachineid", f.aliceRun), "ROOT-alice")
	wantNames(t, "keyword", volumeNames(t, f, f.root, "listall", "true", "keyword", "DATA"), "alice-data", "bob-data", "carol-data", "dadmin-data")
	wantNames(t, "name", volumeNames(t, f, f.root, "listall", "true", "name", "BOB-DATA"), "bob-data")
	wantNames(t, "state", volumeNames(t, f, f.root, "listall", "true", "state", "Ready"))
	catFail(t, f.alice, f.s, map[string]string{"command": "listVolumes", "virtualmachineid": f.bobStop}, 431, catNotFound("virtualmachineid", f.bobStop))
	// Infrastructure filters are root admins' only; others' are ignored.
	aliceData := f.newVolume(t, f.alice, "alice-placed")
	f.jobOK(t, f.alice, map[string]string{"command": "attachVolume", "id": aliceData, "virtualmachineid": f.aliceRun})
	wantNames(t, "root by storage", volumeNames(t, f, f.root, "listall", "true", "storageid", f.pool), "alice-placed")
	wantNames(t, "root by host", volumeNames(t, f, f.root, "listall", "true", "hostid", f.host), "alice-placed", "ROOT-alice")
	wantNames(t, "root by cluster", volumeNames(t, f, f.root, "listall", "true", "clusterid", f.cluster), "alice-placed", "ROOT-alice")
	wantNames(t, "alice by storage", volumeNames(t, f, f.alice, "storageid", f.pool), "alice-data", "alice-placed", "ROOT-alice")
	// ids, tags and paging.
	ids := strings.Join([]string{aliceData, f.aliceRoot}, ",")
	wantNames(t, "ids", volumeNames(t, f, f.alice, "ids", ids), "alice-placed", "ROOT-alice")
	f.jobOK(t, f.alice, map[string]string{"command": "createTags", "resourcetype": "Volume", "resourceids": aliceData, "tags[0].key": "tier", "tags[0].value": "gold"})
	wantNames(t, "tags", volumeNames(t, f, f.alice, "tags[0].key", "tier", "tags[0].value", "gold"), "alice-placed")
	if v := f.listVolume(t, f.alice, aliceData); len(v["tags"].([]any)) != 1 {
		t.Errorf("volume tags = %v", v["tags"])
	}
	page := f.alice.ok(t, f.s, map[string]string{"command": "listVolumes", "page": "2", "pagesize": "2"})
	if page["count"] != float64(3) || len(page["volume"].([]any)) != 1 {
		t.Errorf("page 2 of 2 = %v", page)
	}
}

func TestVolumeRoleMatrix(t *testing.T) {
	f := newComputeFixture(t)
	s := f.s
	aliceVol := f.newVolume(t, f.alice, "alice-v")
	carolVol := f.newVolume(t, f.carol, "carol-v")
	// A domain admin acts for accounts below it, not for ROOT's carol.
	bobVol := f.newVolume(t, f.dadmin, "made-for-bob", "account", "bob", "domainid", f.webID)
	if v := f.listVolume(t, f.bob, bobVol); v["account"] != "bob" {
		t.Fatalf("volume made for bob = %v", v)
	}
	catFail(t, f.dadmin, s, map[string]string{"command": "createVolume", "zoneid": f.zone1, "diskofferingid": f.fixed, "account": "carol",
		"domainid": f.rootDomain}, 431, "unable to find account carol")
	catFail(t, f.dadmin, s, map[string]string{"command": "deleteVolume", "id": carolVol}, 431, catNotFound("id", carolVol))
	catFail(t, f.bob, s, map[string]string{"command": "deleteVolume", "id": aliceVol}, 431, catNotFound("id", aliceVol))
	catFail(t, f.alice, s, map[string]string{"command": "resizeVolume", "id": carolVol, "size": "20"}, 431, catNotFound("id", carolVol))
	f.dadmin.ok(t, s, map[string]string{"command": "deleteVolume", "id": aliceVol})
	f.root.ok(t, s, map[string]string{"command": "deleteVolume", "id": carolVol})
	f.bob.ok(t, s, map[string]string{"command": "deleteVolume", "id": bobVol})
	wantNames(t, "root after deletes", volumeNames(t, f, f.root, "listall", "true"), "ROOT-alice")
}

func TestVolumeFieldNames(t *testing.T) {
	f := newComputeFixture(t)
	vol := f.newVolume(t, f.alice, "v")
	f.jobOK(t, f.alice, map[string]string{"command": "attachVolume", "id": vol, "virtualmachineid": f.aliceRun})
	allowed := objectFieldsOf(t, "listVolumes")
	for _, v := range []map[string]any{f.listVolume(t, f.root, vol), f.listVolume(t, f.root, f.aliceRoot)} {
		for k := range v {
			if !allowed[k] {
				t.Errorf("volume field %s is not one of CloudStack's", k)
			}
		}
	}
	for _, k := range []string{"id", "name", "zoneid", "zonename", "type", "deviceid", "virtualmachineid", "vmname", "vmdisplayname",
		"vmstate", "size", "state", "storage", "storageid", "storagetype", "diskofferingid", "diskofferingname", "account", "domainid",
		"domain", "created", "attached", "provisioningtype", "hypervisor", "destroyed", "tags"} {
		if _, ok := f.listVolume(t, f.root, vol)[k]; !ok {
			t.Errorf("attached volume lacks %s", k)
		}
	}
	if v := f.listVolume(t, f.root, f.aliceRoot); v["serviceofferingid"] != f.serviceOfferingID || v["deviceid"] != float64(0) {
		t.Errorf("ROOT volume = %v", v)
	}
}

// TestExpandComputeResult renders the objects of finished volume, snapshot
// and affinity group jobs, for queryAsyncJobResult.
func TestExpandComputeResult(t *testing.T) {
	f := newComputeFixture(t)
	vol := f.newVolume(t, f.alice, "v")
	acct, _ := f.c.State().Account(nil, f.alice.accountID)
	user, _ := f.c.State().User(nil, f.alice.userID)
	r := &Request{Ctx: context.Background(), Params: Params{Cmd: "queryAsyncJobResult"}, Caller: user, Account: acct, srv: f.s, state: f.c.State()}
	j := &fsm.AsyncJob{Status: fsm.JobSucceeded, InstanceType: resVolume, Result: json.RawMessage(`{"volume":{"id":"` + vol + `"}}`)}
	out, ok := expandComputeResult(r, j)
	var body struct {
		Volume volumeResponse `json:"volume"`
	}
	if !ok || json.Unmarshal(out, &body) != nil || body.Volume.Name != "v" || body.Volume.ZoneName != f.zone1Name || body.Volume.Account != "alice" {
		t.Fatalf("expanded volume result = %s (%v)", out, ok)
	}
	for _, j := range []*fsm.AsyncJob{
		{Status: fsm.JobFailed, InstanceType: resVolume, Result: j.Result},
		{Status: fsm.JobSucceeded, InstanceType: resVolume, Result: json.RawMessage(`{"success":true}`)},
		{Status: fsm.JobSucceeded, InstanceType: vmInstanceType, Result: j.Result},
		{Status: fsm.JobSucceeded, InstanceType: resVolume, Result: json.RawMessage(`{"volume":{"id":"` + catUnknownID + `"}}`)},
	} {
		if out, ok := expandComputeResult(r, j); ok {
			t.Errorf("job %+v expanded to %s", j, out)
		}
	}
}
