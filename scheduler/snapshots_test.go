package scheduler

import (
	"testing"
	"time"

	"github.com/stratus-cloud/stratus/fsm"
)

func (f *volFixture) addSnapshot(t *testing.T, id, volID string, state string, sizeGiB int64) {
	t.Helper()
	f.apply(t, fsm.Create(fsm.TableSnapshots, &fsm.Snapshot{ID: id, Name: id, AccountID: "a-1", DomainID: "d-1", ZoneID: "z-1",
		VolumeID: volID, VolumeType: fsm.VolumeDataDisk, SizeBytes: sizeGiB * gib, State: state, Created: time.Now().UTC()}))
}

func (f *volFixture) snapshot(t *testing.T, id string) *fsm.Snapshot {
	t.Helper()
	s, err := fsm.Get[fsm.Snapshot](f.m.State(), nil, fsm.TableSnapshots, id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *volFixture) addImageStore(t *testing.T, id string, readOnly bool, created time.Time) {
	t.Helper()
	f.apply(t, fsm.Create(fsm.TableImageStores, &fsm.ImageStore{ID: id, Name: id, ZoneID: "z-1", URL: "nfs://10.0.0.9/" + id,
		Protocol: "nfs", Provider: "NFS", Scope: fsm.ScopeZone, ReadOnly: readOnly, Created: created}))
}

func TestCreateSnapshotRecordsOnImageStore(t *testing.T) {
	f := newVolFixture(t)
	f.addSnapshot(t, "s1", "root-run", fsm.SnapshotCreating, 0)
	// No image store: the job fails and the Creating record goes.
	wantJobFail(t, f.run(t, "createSnapshot", map[string]string{SnapParamID: "s1"}), 431, "no writable image store")
	if s := f.snapshot(t, "s1"); s != nil {
		t.Fatalf("snapshot kept after failing: %+v", s)
	}
	now := time.Now().UTC()
	f.addImageStore(t, "ro", true, now.Add(-time.Hour))
	f.addImageStore(t, "old", false, now.Add(-time.Minute))
	f.addImageStore(t, "new", false, now)
	f.addSnapshot(t, "s2", "root-run", fsm.SnapshotCreating, 0)
	j := f.run(t, "createSnapshot", map[string]string{SnapParamID: "s2"})
	wantJobOK(t, j)
	if string(j.Result) != `{"snapshot":{"id":"s2"}}` {
		t.Errorf("result = %s", j.Result)
	}
	s := f.snapshot(t, "s2")
	if s.State != fsm.SnapshotBackedUp || s.ImageStoreID != "old" || s.SizeBytes != 8*gib || s.VolumeType != fsm.VolumeRoot {
		t.Fatalf("snapshot = %+v, want BackedUp on the oldest writable store with the volume's 8 GiB", s)
	}
	// The volume deleted before the job ran: the record goes with the failure.
	f.addVolume(t, "gone", 1, nil)
	f.addSnapshot(t, "s3", "gone", fsm.SnapshotCreating, 0)
	f.apply(t, fsm.Delete(fsm.TableVolumes, "gone"))
	wantJobFail(t, f.run(t, "createSnapshot", map[string]string{SnapParamID: "s3"}), 431, "was deleted")
	if f.snapshot(t, "s3") != nil {
		t.Error("snapshot of a deleted volume kept")
	}
}

func TestRevertSnapshot(t *testing.T) {
	f := newVolFixture(t)
	f.addVolume(t, "d1", 10, nil)
	wantJobOK(t, f.run(t, "attachVolume", attach("d1", "vm-run")))
	f.addSnapshot(t, "s1", "d1", fsm.SnapshotBackedUp, 10)
	wantJobOK(t, f.run(t, "resizeVolume", map[string]string{VolParamID: "d1", VolParamSize: "21474836480"}))
	wantJobFail(t, f.run(t, "revertSnapshot", map[string]string{SnapParamID: "s1"}), 431, "stop it")
	// Stop the VM (as the VM jobs do: no host, Stopped).
	vm, _ := fsm.Get[fsm.VM](f.m.State(), nil, fsm.TableVMs, "vm-run")
	c := vm.Copy()
	c.State, c.HostID, c.Power = fsm.VMStopped, "", fsm.PowerOff
	f.apply(t, fsm.Update(fsm.TableVMs, c))
	wantJobOK(t, f.run(t, "revertSnapshot", map[string]string{SnapParamID: "s1"}))
	if v, p := f.volume(t, "d1"), f.pool(t, "sp-c1"); v.SizeBytes != 10*gib || p.AllocatedBytes != 10*gib {
		t.Fatalf("after revert: volume %d, pool %d; want both back at 10 GiB", v.SizeBytes, p.AllocatedBytes)
	}
	f.addSnapshot(t, "s2", "d1", fsm.SnapshotCreating, 10)
	wantJobFail(t, f.run(t, "revertSnapshot", map[string]string{SnapParamID: "s2"}), 431, "only a BackedUp snapshot")
	// A VM shown Stopped but still holding its host (host down) is refused.
	vm, _ = fsm.Get[fsm.VM](f.m.State(), nil, fsm.TableVMs, "vm-run")
	c = vm.Copy()
	c.HostID = "h-1"
	f.apply(t, fsm.Update(fsm.TableVMs, c))
	wantJobFail(t, f.run(t, "revertSnapshot", map[string]string{SnapParamID: "s1"}), 431, "still holds host")
}

func TestDeleteSnapshotRemovesTags(t *testing.T) {
	f := newVolFixture(t)
	f.addSnapshot(t, "s1", "root-run", fsm.SnapshotBackedUp, 8)
	f.apply(t, fsm.Create(fsm.TableTags, &fsm.Tag{ID: "t1", Key: "k", Value: "v", ResourceType: "Snapshot", ResourceID: "s1",
		AccountID: "a-1", DomainID: "d-1"}))
	wantJobOK(t, f.run(t, "deleteSnapshot", map[string]string{SnapParamID: "s1"}))
	if f.snapshot(t, "s1") != nil {
		t.Fatal("snapshot still there")
	}
	if tags, _ := fsm.List[fsm.Tag](f.m.State(), nil, fsm.TableTags, "resource", "s1"); len(tags) != 0 {
		t.Errorf("tags of the deleted snapshot remain: %v", tags)
	}
	// Deleting again succeeds: it is gone.
	wantJobOK(t, f.run(t, "deleteSnapshot", map[string]string{SnapParamID: "s1"}))
}

func TestAffinityGroupJobs(t *testing.T) {
	f := newVolFixture(t)
	params := map[string]string{AffinityParamID: "g1", AffinityParamName: "web", AffinityParamType: fsm.AntiAffinityHost,
		AffinityParamDescription: "spread", AffinityParamAccountID: "a-1", AffinityParamDomainID: "d-1"}
	j := f.run(t, "createAffinityGroup", params)
	wantJobOK(t, j)
	if string(j.Result) != `{"affinitygroup":{"id":"g1"}}` {
		t.Errorf("result = %s", j.Result)
	}
	g, _ := fsm.Get[fsm.AffinityGroup](f.m.State(), nil, fsm.TableAffinityGroups, "g1")
	if g == nil || g.Name != "web" || g.Type != fsm.AntiAffinityHost || g.AccountID != "a-1" || g.Description != "spread" {
		t.Fatalf("group = %+v", g)
	}
	// The same name again in the account: the commit is refused and the
	// job fails with 431.
	dup := map[string]string{}
	for k, v := range params {
		dup[k] = v
	}
	dup[AffinityParamID] = "g2"
	wantJobFail(t, f.run(t, "createAffinityGroup", dup), 431, "already exists")

	vm, _ := fsm.Get[fsm.VM](f.m.State(), nil, fsm.TableVMs, "vm-stop")
	c := vm.Copy()
	c.AffinityGroupIDs = []string{"g1"}
	f.apply(t, fsm.Update(fsm.TableVMs, c))
	wantJobFail(t, f.run(t, "deleteAffinityGroup", map[string]string{AffinityParamID: "g1"}), 536, "virtual machine vm-stop")
	vm, _ = fsm.Get[fsm.VM](f.m.State(), nil, fsm.TableVMs, "vm-stop")
	c = vm.Copy()
	c.AffinityGroupIDs = nil
	f.apply(t, fsm.Update(fsm.TableVMs, c))
	wantJobOK(t, f.run(t, "deleteAffinityGroup", map[string]string{AffinityParamID: "g1"}))
	if g, _ := fsm.Get[fsm.AffinityGroup](f.m.State(), nil, fsm.TableAffinityGroups, "g1"); g != nil {
		t.Fatalf("group still there: %+v", g)
	}
}
