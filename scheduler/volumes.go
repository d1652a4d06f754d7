package scheduler

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/scheduler/placement"
)

// Volume jobs: createVolume, attachVolume, detachVolume and resizeVolume.
// Each is one step that reads the volume (and its VM) again, re-checks what
// the API checked, and commits with compare-and-set on every row it
// changes, so a race with another job or a VM start makes the step read
// again instead of committing a stale decision.
//
// Disk hot-plug is not in the hypervisor driver yet: a volume attached to
// (or detached from, or grown on) a running VM is recorded here, and the
// host's agent applies it when it next starts the VM.

// Parameters of volume jobs, as the API commits them.
const (
	VolParamID       = "volume"
	VolParamVM       = "virtualmachineid" // attach to (or detach from) this VM
	VolParamDevice   = "deviceid"         // attach at this device ID; empty: the next free one
	VolParamSize     = "size_bytes"       // resize: the new size in bytes
	VolParamOffering = "diskofferingid"   // resize: the new disk offering, if any
)

// Device IDs of a VM's disks: the ROOT volume is 0, data disks take 1 up to
// VolMaxDeviceID, skipping VolReservedDeviceID (the CD-ROM's on KVM, which
// CloudStack skips too).
const (
	VolMaxDeviceID      = 25
	VolReservedDeviceID = 3
)

// Codes of volume job failures, as CloudStack numbers them.
const (
	volCodeParam    = 431
	volCodeCapacity = 533
	volCodeInUse    = 536
)

// RegisterVolumeJobs adds the volume job kinds.
func RegisterVolumeJobs(r *Runner) {
	r.Handle("createVolume", createVolumeStep)
	r.Handle("attachVolume", attachVolumeStep)
	r.Handle("detachVolume", detachVolumeStep)
	r.Handle("resizeVolume", resizeVolumeStep)
}

// VolumeResult is the result of the volume jobs: the API renders the
// volume as it is when the result is read.
func VolumeResult(id string) any { return map[string]any{"volume": map[string]string{"id": id}} }

// jobVolume reads the job's volume. A missing volume ends the job.
func jobVolume(st *fsm.Store, j *fsm.AsyncJob) (*fsm.Volume, *Step, error) {
	return jobRow[fsm.Volume](st, nil, fsm.TableVolumes, j.Params[VolParamID], "volume")
}

// stepOr is the Step a read helper ended the job with, or the zero Step.
func stepOr(s *Step) Step {
	if s == nil {
		return Step{}
	}
	return *s
}

// createVolumeStep ends createVolume: the API already recorded the volume
// (Allocated, no pool); with a VM it is attached as attachVolume would.
func createVolumeStep(ctx context.Context, st *fsm.Store, j *fsm.AsyncJob) (Step, error) {
	vol, end, err := jobVolume(st, j)
	if end != nil || err != nil {
		return stepOr(end), err
	}
	if j.Params[VolParamVM] == "" || vol.VMID == j.Params[VolParamVM] {
		return Succeed(VolumeResult(vol.ID)), nil
	}
	return attachVolumeStep(ctx, st, j)
}

// attachVolumeStep attaches the volume at a free device ID. When the VM
// holds a host, a volume with no pool is placed on a pool that host reaches
// and the pool's capacity is reserved; a VM with no host leaves the volume
// unplaced, and its next start places it with the VM's other volumes.
func attachVolumeStep(_ context.Context, st *fsm.Store, j *fsm.AsyncJob) (Step, error) {
	vol, end, err := jobVolume(st, j)
	if end != nil || err != nil {
		return stepOr(end), err
	}
	vm, err := fsm.Get[fsm.VM](st, nil, fsm.TableVMs, j.Params[VolParamVM])
	if err != nil {
		return Step{}, err
	}
	if vm == nil {
		return Fail(volCodeParam, "virtual machine %s no longer exists", j.Params[VolParamVM]), nil
	}
	if vol.VMID == vm.ID {
		return Succeed(VolumeResult(vol.ID)), nil
	}
	if s := CheckAttach(vol, vm); s != "" {
		return Fail(volCodeParam, "%s", s), nil
	}
	if vol.VMID != "" {
		return Fail(volCodeInUse, "volume %s is already attached to virtual machine %s; detach it first", vol.Name, vol.VMID), nil
	}
	vols, err := vmVolumes(st, vm.ID)
	if err != nil {
		return Step{}, err
	}
	dev, msg := chooseDevice(vols, j.Params[VolParamDevice])
	if msg != "" {
		return Fail(volCodeParam, "virtual machine %s: %s", vm.Name, msg), nil
	}
	nv := vol.Copy()
	nv.VMID, nv.DeviceID, nv.Attached = vm.ID, dev, time.Now().UTC()
	// Touching the VM makes a start or stop racing with this attach read
	// its volumes again (its VM update is compare-and-set too).
	ops := []fsm.TxnOp{fsm.Update(fsm.TableVMs, vm.Copy())}
	if vm.HostID == "" {
		return Succeed(VolumeResult(vol.ID), append(ops, fsm.Update(fsm.TableVolumes, nv))...), nil
	}
	host, err := fsm.Get[fsm.Host](st, nil, fsm.TableHosts, vm.HostID)
	if err != nil {
		return Step{}, err
	}
	if host == nil {
		return Fail(volCodeParam, "host %s of virtual machine %s no longer exists", vm.HostID, vm.Name), nil
	}
	if nv.PoolID != "" {
		p, err := fsm.Get[fsm.StoragePool](st, nil, fsm.TableStoragePools, nv.PoolID)
		if err != nil {
			return Step{}, err
		}
		if p == nil || !PoolReachable(p, host) {
			return Fail(volCodeParam, "volume %s is on storage pool %s, which host %s of virtual machine %s cannot reach",
				vol.Name, nv.PoolID, host.Name, vm.Name), nil
		}
		return Succeed(VolumeResult(vol.ID), append(ops, fsm.Check(fsm.TableStoragePools, p), fsm.Update(fsm.TableVolumes, nv))...), nil
	}
	pools, err := fsm.List[fsm.StoragePool](st, nil, fsm.TableStoragePools, "zone", vm.ZoneID)
	if err != nil {
		return Step{}, err
	}
	pool, why := ChoosePool(pools, host, nv)
	if pool == nil {
		return Fail(volCodeCapacity, "no storage pool can take volume %s (%d bytes) for host %s of virtual machine %s: %s",
			vol.Name, vol.SizeBytes, host.Name, vm.Name, why), nil
	}
	placed, err := reservePools(st, []*fsm.Volume{nv}, map[string]string{nv.ID: pool.ID})
	if err != nil {
		return Step{}, err
	}
	return Succeed(VolumeResult(vol.ID), append(ops, placed...)...), nil
}

// CheckAttach says why vol cannot be attached to vm (the API asks it first,
// the job again), or "" when it can. It does not look at device IDs or
// pools.
func CheckAttach(vol *fsm.Volume, vm *fsm.VM) string {
	switch {
	case vol.Type == fsm.VolumeRoot:
		return fmt.Sprintf("volume %s is a ROOT volume; only DATADISK volumes can be attached", vol.Name)
	case vol.State == fsm.VolumeDestroy:
		return fmt.Sprintf("volume %s is destroyed", vol.Name)
	case vol.ZoneID != vm.ZoneID:
		return fmt.Sprintf("volume %s is in zone %s and virtual machine %s in zone %s; they must be in the same zone", vol.Name, vol.ZoneID, vm.Name, vm.ZoneID)
	case vol.AccountID != vm.AccountID:
		return fmt.Sprintf("volume %s and virtual machine %s belong to different accounts", vol.Name, vm.Name)
	case vm.State != fsm.VMRunning && vm.State != fsm.VMStopped:
		return fmt.Sprintf("virtual machine %s is %s; volumes can be attached only to Running or Stopped VMs", vm.Name, vm.State)
	}
	return ""
}

// chooseDevice returns the device ID requested (if free and allowed) or the
// lowest free one, or a message saying why there is none.
func chooseDevice(vols []*fsm.Volume, requested string) (int, string) {
	used := map[int]bool{}
	for _, v := range vols {
		used[v.DeviceID] = true
	}
	if requested != "" {
		dev, err := strconv.Atoi(requested)
		if err != nil {
			return 0, fmt.Sprintf("device ID %q is not a number", requested)
		}
		if msg := CheckDeviceID(dev); msg != "" {
			return 0, fmt.Sprintf("device ID %d: %s", dev, msg)
		}
		if used[dev] {
			return 0, fmt.Sprintf("device ID %d is already used by another volume", dev)
		}
		return dev, ""
	}
	for dev := 1; dev <= VolMaxDeviceID; dev++ {
		if dev != VolReservedDeviceID && !used[dev] {
			return dev, ""
		}
	}
	return 0, fmt.Sprintf("every device ID from 1 to %d is taken; detach a volume first", VolMaxDeviceID)
}

// CheckDeviceID says why a data disk cannot use device ID dev, or "".
func CheckDeviceID(dev int) string {
	switch {
	case dev < 1 || dev > VolMaxDeviceID:
		return fmt.Sprintf("data disks take device IDs 1 to %d (0 is the ROOT volume)", VolMaxDeviceID)
	case dev == VolReservedDeviceID:
		return fmt.Sprintf("device ID %d is kept for the CD-ROM", VolReservedDeviceID)
	}
	return ""
}

// PoolReachable reports whether host h can use pool p: a zone-wide pool of
// its zone, a pool of its cluster, or its own local pool.
func PoolReachable(p *fsm.StoragePool, h *fsm.Host) bool {
	switch {
	case strings.EqualFold(p.Scope, fsm.ScopeZone):
		return p.ZoneID == h.ZoneID
	case strings.EqualFold(p.Scope, fsm.ScopeCluster):
		return p.ClusterID != "" && p.ClusterID == h.ClusterID
	case strings.EqualFold(p.Scope, fsm.ScopeHost):
		return p.HostID != "" && p.HostID == h.ID
	}
	return false
}

// ChoosePool picks the pool for a new volume of a VM on host h with the
// allocator's rules: an Up pool h reaches (h's own local pools for a local
// volume, the zone's and h's cluster's for a shared one) that carries every
// storage tag of the volume and has room for it; among those, the one with
// the most space free, then the lowest ID. With none it says why.
func ChoosePool(pools []*fsm.StoragePool, h *fsm.Host, vol *fsm.Volume) (*fsm.StoragePool, string) {
	var best *fsm.StoragePool
	var bestFree int64
	reached, tagged := 0, 0
	for _, p := range pools {
		if p == nil || p.State != fsm.PoolStateUp || !PoolReachable(p, h) || vol.Local != strings.EqualFold(p.Scope, fsm.ScopeHost) {
			continue
		}
		reached++
		if !hasTags(p.Tags, vol.StorageTags) {
			continue
		}
		tagged++
		free := placement.PoolFree(p)
		if free < vol.SizeBytes {
			continue
		}
		if best == nil || free > bestFree || free == bestFree && p.ID < best.ID {
			best, bestFree = p, free
		}
	}
	switch {
	case best != nil:
		return best, ""
	case reached == 0 && vol.Local:
		return nil, "the host has no local storage pool that is Up"
	case reached == 0:
		return nil, "the host reaches no shared storage pool that is Up"
	case tagged == 0:
		return nil, fmt.Sprintf("no pool the host reaches carries the storage tags %s", strings.Join(vol.StorageTags, ","))
	}
	return nil, "no pool the host reaches has that much space free"
}

// hasTags reports whether have holds every tag of want, ignoring case.
func hasTags(have, want []string) bool {
	for _, w := range want {
		w = strings.TrimSpace(w)
		if w != "" && !slices.ContainsFunc(have, func(h string) bool { return strings.EqualFold(strings.TrimSpace(h), w) }) {
			return false
		}
	}
	return true
}

// detachVolumeStep detaches a data volume from its VM. It keeps its pool
// (and the pool's reservation): a detached volume still holds its data.
func detachVolumeStep(_ context.Context, st *fsm.Store, j *fsm.AsyncJob) (Step, error) {
	vol, end, err := jobVolume(st, j)
	if end != nil || err != nil {
		return stepOr(end), err
	}
	switch {
	case vol.Type == fsm.VolumeRoot:
		return Fail(volCodeParam, "volume %s is a ROOT volume; ROOT volumes cannot be detached", vol.Name), nil
	case vol.VMID == "":
		return Fail(volCodeParam, "volume %s is not attached to any virtual machine", vol.Name), nil
	case j.Params[VolParamVM] != "" && vol.VMID != j.Params[VolParamVM]:
		return Fail(volCodeParam, "volume %s is now attached to virtual machine %s, not %s", vol.Name, vol.VMID, j.Params[VolParamVM]), nil
	}
	ops := []fsm.TxnOp{}
	vm, err := fsm.Get[fsm.VM](st, nil, fsm.TableVMs, vol.VMID)
	if err != nil {
		return Step{}, err
	}
	if vm != nil {
		if vm.State != fsm.VMRunning && vm.State != fsm.VMStopped {
			return Fail(volCodeParam, "virtual machine %s is %s; volumes can be detached only from Running or Stopped VMs", vm.Name, vm.State), nil
		}
		ops = append(ops, fsm.Update(fsm.TableVMs, vm.Copy()))
	}
	nv := vol.Copy()
	nv.VMID, nv.DeviceID, nv.Attached = "", 0, time.Time{}
	return Succeed(VolumeResult(vol.ID), append(ops, fsm.Update(fsm.TableVolumes, nv))...), nil
}

// resizeVolumeStep grows a volume (and changes its disk offering when the
// job names one). A placed volume's growth is taken from its pool with
// compare-and-set on the pool, so two resizes racing for the last bytes
// cannot both commit.
func resizeVolumeStep(_ context.Context, st *fsm.Store, j *fsm.AsyncJob) (Step, error) {
	vol, end, err := jobVolume(st, j)
	if end != nil || err != nil {
		return stepOr(end), err
	}
	size, err := strconv.ParseInt(j.Params[VolParamSize], 10, 64)
	if err != nil {
		return Fail(volCodeParam, "the job's new size %q is not a number", j.Params[VolParamSize]), nil
	}
	offering := j.Params[VolParamOffering]
	switch {
	case vol.State == fsm.VolumeDestroy:
		return Fail(volCodeParam, "volume %s is destroyed", vol.Name), nil
	case size < vol.SizeBytes:
		return Fail(volCodeParam, "volume %s is %d bytes; it can only grow, not shrink to %d", vol.Name, vol.SizeBytes, size), nil
	case size == vol.SizeBytes && (offering == "" || offering == vol.DiskOfferingID):
		return Succeed(VolumeResult(vol.ID)), nil
	}
	nv := vol.Copy()
	nv.SizeBytes = size
	if offering != "" {
		nv.DiskOfferingID = offering
	}
	ops := []fsm.TxnOp{fsm.Update(fsm.TableVolumes, nv)}
	if delta := size - vol.SizeBytes; vol.PoolID != "" && delta > 0 {
		p, err := fsm.Get[fsm.StoragePool](st, nil, fsm.TableStoragePools, vol.PoolID)
		if err != nil {
			return Step{}, err
		}
		if p != nil {
			if free := placement.PoolFree(p); free < delta {
				return Fail(volCodeCapacity, "storage pool %s has %d bytes free; growing volume %s by %d bytes needs more", p.Name, max(free, 0), vol.Name, delta), nil
			}
			ops = append(ops, fsm.ReservePool(p.ID, delta))
		}
	}
	return Succeed(VolumeResult(vol.ID), ops...), nil
}

// ReleasePoolOps returns the ops that give a volume's size back to its
// pool (none for an unplaced volume), for deleteVolume.
func ReleasePoolOps(st *fsm.Store, vol *fsm.Volume) ([]fsm.TxnOp, error) {
	op, err := releasePool(st, vol)
	if err != nil || op == nil {
		return nil, err
	}
	return []fsm.TxnOp{*op}, nil
}
