package api

import (
	"testing"

	"github.com/stratus-cloud/stratus/fsm"
)

// placedVolume makes a 10 GiB volume of alice's placed on the pool
// (attached to her running VM, then detached).
func (f *computeFixture) placedVolume(t *testing.T, name string) string {
	t.Helper()
	vol := f.newVolume(t, f.alice, name)
	f.jobOK(t, f.alice, map[string]string{"command": "attachVolume", "id": vol, "virtualmachineid": f.aliceRun})
	return vol
}

func (f *computeFixture) addImageStore(t *testing.T) string {
	t.Helper()
	return f.root.ok(t, f.s, map[string]string{"command": "addImageStore", "provider": "NFS", "zoneid": f.zone1, "name": "sec",
		"url": "nfs://10.0.0.9/secondary"})["imagestore"].(map[string]any)["id"].(string)
}

func TestSnapshotLifecycle(t *testing.T) {
	f := newComputeFixture(t)
	s, alice := f.s, f.alice
	vol := f.placedVolume(t, "data")
	unplaced := f.newVolume(t, alice, "loose")
	catFail(t, alice, s, map[string]string{"command": "createSnapshot", "volumeid": vol}, 431, "zone zone one has no writable image store")
	store := f.addImageStore(t)
	catFail(t, alice, s, map[string]string{"command": "createSnapshot", "volumeid": unplaced}, 431, "only a Ready or placed volume")
	catFail(t, alice, s, map[string]string{"command": "createSnapshot"}, 431, "missing parameter volumeid")

	accepted := alice.ok(t, s, map[string]string{"command": "createSnapshot", "volumeid": vol, "name": "before"})
	snapID := accepted["id"].(string)
	j := waitForJob(t, s, accepted["jobid"].(string))
	if j["jobstatus"].(float64) != 1 || j["jobresult"].(map[string]any)["snapshot"].(map[string]any)["id"] != snapID {
		t.Fatalf("createSnapshot job = %v", j)
	}
	snap := item(t, alice.ok(t, s, map[string]string{"command": "listSnapshots", "id": snapID}), "snapshot")
	want := map[string]any{"name": "before", "volumeid": vol, "volumename": "data", "volumetype": "DATADISK", "zoneid": f.zone1,
		"state": "BackedUp", "physicalsize": float64(10 * testGiB), "virtualsize": float64(10 * testGiB), "account": "alice",
		"domainid": f.engID, "domain": "eng", "snapshottype": "MANUAL", "revertable": true}
	for k, w := range want {
		if snap[k] != w {
			t.Errorf("snapshot %s = %v, want %v", k, snap[k], w)
		}
	}
	stored, _ := fsm.Get[fsm.Snapshot](f.c.State(), nil, fsm.TableSnapshots, snapID)
	if stored.ImageStoreID != store {
		t.Errorf("snapshot filed under %q, want the zone's image store %s", stored.ImageStoreID, store)
	}
	allowed := responseFieldsOf(t, "listSnapshots")
	for k := range snap {
		if !allowed[k] {
			t.Errorf("snapshot field %s is not one of CloudStack's", k)
		}
	}

	// Revert needs the VM stopped; it sets the size back.
	f.jobOK(t, alice, map[string]string{"command": "resizeVolume", "id": vol, "diskofferingid": f.custom, "size": "15"})
	catFail(t, alice, s, map[string]string{"command": "revertSnapshot", "id": snapID}, 431, "is Running; stop it")
	f.jobOK(t, alice, map[string]string{"command": "detachVolume", "id": vol})
	res := f.jobOK(t, alice, map[string]string{"command": "revertSnapshot", "id": snapID})
	if res["snapshot"].(map[string]any)["id"] != snapID {
		t.Errorf("revert result = %v", res)
	}
	if v := f.listVolume(t, alice, vol); v["size"] != float64(10*testGiB) {
		t.Errorf("reverted volume = %v", v)
	}
	if got := f.poolAllocated(t); got != 10*testGiB {
		t.Errorf("pool allocated %d after revert, want 10 GiB", got)
	}

	// The snapshot outlives its volume; then it is deleted.
	alice.ok(t, s, map[string]string{"command": "deleteVolume", "id": vol})
	if snap := item(t, alice.ok(t, s, map[string]string{"command": "listSnapshots", "volumeid": vol}), "snapshot"); snap["revertable"] != false {
		t.Errorf("snapshot of a deleted volume = %v", snap)
	}
	catFail(t, alice, s, map[string]string{"command": "revertSnapshot", "id": snapID}, 431, "no longer exists")
	catFail(t, f.bob, s, map[string]string{"command": "deleteSnapshot", "id": snapID}, 431, catNotFound("id", snapID))
	f.jobOK(t, alice, map[string]string{"command": "deleteSnapshot", "id": snapID})
	catFail(t, alice, s, map[string]string{"command": "listSnapshots", "id": snapID}, 431, catNotFound("id", snapID))
	wantCatalogEvents(t, f.c, snapID, "SNAPSHOT.CREATE", "SNAPSHOT.REVERT", "SNAPSHOT.DELETE")
}

func TestListSnapshotsScoping(t *testing.T) {
	f := newComputeFixture(t)
	f.addImageStore(t)
	vol := f.placedVolume(t, "data")
	for _, n := range []string{"one", "two"} {
		f.jobOK(t, f.alice, map[string]string{"command": "createSnapshot", "volumeid": vol, "name": n})
	}
	list := func(id ident, extra ...string) []string {
		t.Helper()
		return names(id.ok(t, f.s, catParams(map[string]string{"command": "listSnapshots"}, extra...)), "snapshot", "name")
	}
	wantNames(t, "alice", list(f.alice), "one", "two")
	wantNames(t, "bob", list(f.bob))
	wantNames(t, "dadmin", list(f.dadmin))
	wantNames(t, "dadmin listall", list(f.dadmin, "listall", "true"), "one", "two")
	wantNames(t, "carol listall", list(f.carol, "listall", "true"))
	wantNames(t, "root listall", list(f.root, "listall", "true"), "one", "two")
	wantNames(t, "name", list(f.alice, "name", "ONE"), "one")
	wantNames(t, "keyword", list(f.alice, "keyword", "tw"), "two")
	wantNames(t, "manual", list(f.alice, "snapshottype", "MANUAL"), "one", "two")
	wantNames(t, "recurring", list(f.alice, "snapshottype", "RECURRING"))
	wantNames(t, "zone", list(f.alice, "zoneid", f.zone2))
	page := f.alice.ok(t, f.s, map[string]string{"command": "listSnapshots", "page": "1", "pagesize": "1"})
	if page["count"] != float64(2) || len(page["snapshot"].([]any)) != 1 {
		t.Errorf("paged = %v", page)
	}
}
