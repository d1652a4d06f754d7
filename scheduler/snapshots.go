package scheduler

import (
	"context"
	"sort"

	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/scheduler/placement"
)

// Snapshot jobs: createSnapshot, deleteSnapshot and revertSnapshot.
//
// These jobs are record-only for now: they keep the snapshot rows, the
// image store a snapshot is filed under and the sizes right in the
// replicated state, but no data is copied. Backing a volume up to the
// image store, and writing a snapshot back onto a volume, need the host
// agent's storage work, which is not written yet; until it is, a snapshot
// is a record of what the copy would hold, not a copy.

// SnapParamID is the snapshot a snapshot job works on.
const SnapParamID = "snapshot"

// RegisterSnapshotJobs adds the snapshot job kinds.
func RegisterSnapshotJobs(r *Runner) {
	r.Handle("createSnapshot", createSnapshotStep)
	r.Handle("deleteSnapshot", deleteSnapshotStep)
	r.Handle("revertSnapshot", revertSnapshotStep)
}

// SnapshotResult is the result of createSnapshot and revertSnapshot: the
// API renders the snapshot as it is when the result is read.
func SnapshotResult(id string) any { return map[string]any{"snapshot": map[string]string{"id": id}} }

func jobSnapshot(st *fsm.Store, j *fsm.AsyncJob) (*fsm.Snapshot, error) {
	return fsm.Get[fsm.Snapshot](st, nil, fsm.TableSnapshots, j.Params[SnapParamID])
}

// SnapshotStore returns the image store a new snapshot of zoneID goes to:
// the oldest writable one of the zone, or nil when it has none.
func SnapshotStore(st *fsm.Store, zoneID string) (*fsm.ImageStore, error) {
	stores, err := fsm.List[fsm.ImageStore](st, nil, fsm.TableImageStores, "zone", zoneID)
	if err != nil {
		return nil, err
	}
	sort.SliceStable(stores, func(i, k int) bool {
		if !stores[i].Created.Equal(stores[k].Created) {
			return stores[i].Created.Before(stores[k].Created)
		}
		return stores[i].ID < stores[k].ID
	})
	for _, s := range stores {
		if !s.ReadOnly {
			return s, nil
		}
	}
	return nil, nil
}

// createSnapshotStep files the snapshot the API recorded (Creating) under
// an image store of its zone with the volume's size, and marks it BackedUp.
// If the volume or every image store is gone by then, the snapshot row is
// removed with the failure.
func createSnapshotStep(_ context.Context, st *fsm.Store, j *fsm.AsyncJob) (Step, error) {
	snap, err := jobSnapshot(st, j)
	if err != nil {
		return Step{}, err
	}
	if snap == nil {
		return Fail(volCodeParam, "snapshot %s no longer exists", j.Params[SnapParamID]), nil
	}
	if snap.State == fsm.SnapshotBackedUp {
		return Succeed(SnapshotResult(snap.ID)), nil
	}
	vol, err := fsm.Get[fsm.Volume](st, nil, fsm.TableVolumes, snap.VolumeID)
	if err != nil {
		return Step{}, err
	}
	drop := []fsm.TxnOp{fsm.Check(fsm.TableSnapshots, snap), fsm.Delete(fsm.TableSnapshots, snap.ID)}
	if vol == nil {
		s := Fail(volCodeParam, "volume %s was deleted before its snapshot %s was taken", snap.VolumeID, snap.Name)
		s.Ops = drop
		return s, nil
	}
	store, err := SnapshotStore(st, snap.ZoneID)
	if err != nil {
		return Step{}, err
	}
	if store == nil {
		s := Fail(volCodeParam, "zone %s has no writable image store (secondary storage) to keep snapshot %s; add one with addImageStore", snap.ZoneID, snap.Name)
		s.Ops = drop
		return s, nil
	}
	// Record only: the data copy from the volume's pool to the image store
	// is the agent's storage work, not implemented yet (see the file's
	// comment).
	ns := *snap
	ns.ImageStoreID, ns.SizeBytes, ns.VolumeType, ns.State = store.ID, vol.SizeBytes, vol.Type, fsm.SnapshotBackedUp
	return Succeed(SnapshotResult(snap.ID), fsm.Check(fsm.TableImageStores, store), fsm.Update(fsm.TableSnapshots, &ns)), nil
}

// deleteSnapshotStep removes a snapshot and its tags.
func deleteSnapshotStep(_ context.Context, st *fsm.Store, j *fsm.AsyncJob) (Step, error) {
	snap, err := jobSnapshot(st, j)
	if err != nil {
		return Step{}, err
	}
	if snap == nil {
		return Succeed(nil), nil
	}
	ops := []fsm.TxnOp{fsm.Check(fsm.TableSnapshots, snap)}
	tags, err := fsm.List[fsm.Tag](st, nil, fsm.TableTags, "resource", snap.ID)
	if err != nil {
		return Step{}, err
	}
	for _, t := range tags {
		ops = append(ops, fsm.Delete(fsm.TableTags, t.ID))
	}
	return Succeed(nil, append(ops, fsm.Delete(fsm.TableSnapshots, snap.ID))...), nil
}

// revertSnapshotStep sets the volume back to the snapshot: today that is
// its size (and its pool's reservation), since the data itself is not
// written back yet (record only, see the file's comment). The volume's VM
// must be Stopped; the VM is pinned with a check so a start racing with
// the revert makes this step read again.
func revertSnapshotStep(_ context.Context, st *fsm.Store, j *fsm.AsyncJob) (Step, error) {
	snap, err := jobSnapshot(st, j)
	if err != nil {
		return Step{}, err
	}
	if snap == nil {
		return Fail(volCodeParam, "snapshot %s no longer exists", j.Params[SnapParamID]), nil
	}
	if snap.State != fsm.SnapshotBackedUp {
		return Fail(volCodeParam, "snapshot %s is %s; only a BackedUp snapshot can be reverted to", snap.Name, snap.State), nil
	}
	vol, err := fsm.Get[fsm.Volume](st, nil, fsm.TableVolumes, snap.VolumeID)
	if err != nil {
		return Step{}, err
	}
	if vol == nil {
		return Fail(volCodeParam, "volume %s of snapshot %s no longer exists", snap.VolumeID, snap.Name), nil
	}
	ops := []fsm.TxnOp{fsm.Check(fsm.TableSnapshots, snap)}
	if vol.VMID != "" {
		vm, err := fsm.Get[fsm.VM](st, nil, fsm.TableVMs, vol.VMID)
		if err != nil {
			return Step{}, err
		}
		switch {
		case vm != nil && vm.State != fsm.VMStopped:
			return Fail(volCodeParam, "virtual machine %s of volume %s is %s; stop it before reverting to a snapshot", vm.Name, vol.Name, vm.State), nil
		case vm != nil && vm.HostID != "":
			return Fail(volCodeParam, "virtual machine %s of volume %s still holds host %s (the host is not confirmed off); stop it before reverting to a snapshot",
				vm.Name, vol.Name, vm.HostID), nil
		}
		if vm != nil {
			ops = append(ops, fsm.Check(fsm.TableVMs, vm))
		}
	}
	if snap.SizeBytes == vol.SizeBytes {
		return Succeed(SnapshotResult(snap.ID), append(ops, fsm.Check(fsm.TableVolumes, vol))...), nil
	}
	nv := vol.Copy()
	nv.SizeBytes = snap.SizeBytes
	ops = append(ops, fsm.Update(fsm.TableVolumes, nv))
	if vol.PoolID != "" {
		p, err := fsm.Get[fsm.StoragePool](st, nil, fsm.TableStoragePools, vol.PoolID)
		if err != nil {
			return Step{}, err
		}
		if p != nil {
			delta := snap.SizeBytes - vol.SizeBytes
			if free := placement.PoolFree(p); delta > 0 && free < delta {
				return Fail(volCodeCapacity, "storage pool %s has %d bytes free; reverting volume %s to snapshot %s needs %d more",
					p.Name, max(free, 0), vol.Name, snap.Name, delta), nil
			}
			ops = append(ops, fsm.ReservePool(p.ID, delta))
		}
	}
	return Succeed(SnapshotResult(snap.ID), ops...), nil
}
