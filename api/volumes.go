package api

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/scheduler"
	"github.com/stratus-cloud/stratus/scheduler/placement"
)

// Volumes. createVolume records a DATADISK in state Allocated with no pool;
// the leader's job (scheduler/volumes.go) attaches it when asked. A volume
// gets a pool when it is attached to a VM that holds a host, or when the
// VM it is attached to next starts. Disk hot-plug is not in the hypervisor
// driver yet: the host's agent applies attached, detached and grown disks
// at the VM's next start.

// resVolume is the resource and job instance type of volumes.
const resVolume = "Volume"

func volumeIDParam(desc string) ParamSpec {
	return ParamSpec{Name: "id", Type: "uuid", Required: true, Related: "listVolumes", Description: desc}
}

func init() {
	registerCommands(func(*Server) []*Command {
		return []*Command{
			{
				Name: "createVolume", Description: "Creates a data volume from a disk offering: recorded Allocated with no storage pool, and attached to a VM when virtualmachineid is given.",
				Async: true, Write: true, Access: AccessUser, ObjectName: "volume", Related: "attachVolume,listVolumes", Response: volumeFields,
				Handler: createVolume,
				Params: []ParamSpec{
					{Name: "name", Type: "string", Length: 255, Description: "Name of the volume; DATA-<id> when absent."},
					{Name: "zoneid", Type: "uuid", Related: "listZones", Description: "Zone of the volume; the VM's zone when virtualmachineid is given."},
					{Name: "diskofferingid", Type: "uuid", Related: "listDiskOfferings", Description: "Disk offering of the volume (required: volumes from snapshots are not supported)."},
					{Name: "size", Type: "long", Description: "Size in GiB, for a customized disk offering."},
					{Name: "virtualmachineid", Type: "uuid", Related: "listVirtualMachines", Description: "VM to attach the new volume to."},
					{Name: "account", Type: "string", Description: "Owning account (admins), with domainid."},
					{Name: "domainid", Type: "uuid", Related: "listDomains", Description: "Domain of that account."},
				},
			},
			{
				Name: "attachVolume", Description: "Attaches a data volume to a Running or Stopped VM of its zone and account; the agent adds the disk at the VM's next start.",
				Async: true, Write: true, Access: AccessUser, ObjectName: "volume", Related: "detachVolume,listVolumes", Response: volumeFields,
				Handler: attachVolume,
				Params: []ParamSpec{
					volumeIDParam("ID of the volume."),
					{Name: "virtualmachineid", Type: "uuid", Required: true, Related: "listVirtualMachines", Description: "VM to attach it to."},
					{Name: "deviceid", Type: "long", Description: "Device ID on the VM, 1 to 25 but not 3; the lowest free one when absent."},
				},
			},
			{
				Name: "detachVolume", Description: "Detaches a data volume from its VM; it keeps its storage pool. ROOT volumes cannot be detached.",
				Async: true, Write: true, Access: AccessUser, ObjectName: "volume", Related: "attachVolume,listVolumes", Response: volumeFields,
				Handler: detachVolume,
				Params: []ParamSpec{
					{Name: "id", Type: "uuid", Related: "listVolumes", Description: "ID of the volume; or give virtualmachineid and deviceid."},
					{Name: "virtualmachineid", Type: "uuid", Related: "listVirtualMachines", Description: "VM to detach from, with deviceid."},
					{Name: "deviceid", Type: "long", Description: "Device ID of the volume on that VM."},
				},
			},
			{
				Name: "resizeVolume", Description: "Grows a volume to a new size or to the size of another disk offering; shrinking is not supported.",
				Async: true, Write: true, Access: AccessUser, ObjectName: "volume", Related: "listVolumes", Response: volumeFields,
				Handler: resizeVolume,
				Params: []ParamSpec{
					volumeIDParam("ID of the volume."),
					{Name: "size", Type: "long", Description: "New size in GiB, for a customized offering or a ROOT volume."},
					{Name: "diskofferingid", Type: "uuid", Related: "listDiskOfferings", Description: "New disk offering; its size, or size for a customized one."},
					{Name: "shrinkok", Type: "boolean", Description: "Accepted for compatibility; true is refused, as volumes only grow."},
				},
			},
			{
				Name: "deleteVolume", Description: "Deletes a detached volume and gives its storage pool the space back; its snapshots stay.",
				Write: true, Access: AccessUser, Related: "listVolumes", Response: successResponse, Handler: deleteVolume,
				Params: []ParamSpec{volumeIDParam("ID of the volume.")},
			},
			{
				Name: "listVolumes", Description: "Lists volumes, oldest first.", Access: AccessUser, ObjectName: "volume",
				Related: "createVolume", Response: volumeFields, Handler: listVolumes,
				Params: withPaging(scopeParams(
					ParamSpec{Name: "id", Type: "uuid", Related: "listVolumes", Description: "Only the volume with this ID."},
					ParamSpec{Name: "ids", Type: "list", Related: "listVolumes", Description: "Only the volumes with these IDs, comma separated."},
					ParamSpec{Name: "name", Type: "string", Description: "Only volumes with this name."},
					ParamSpec{Name: "zoneid", Type: "uuid", Related: "listZones", Description: "Only volumes of this zone."},
					ParamSpec{Name: "virtualmachineid", Type: "uuid", Related: "listVirtualMachines", Description: "Only the volumes of this VM."},
					ParamSpec{Name: "type", Type: "string", Description: "Only ROOT or DATADISK volumes."},
					ParamSpec{Name: "state", Type: "string", Description: "Only volumes in this state: Allocated, Ready, ..."},
					ParamSpec{Name: "diskofferingid", Type: "uuid", Related: "listDiskOfferings", Description: "Only volumes of this disk offering."},
					ParamSpec{Name: "podid", Type: "uuid", Related: "listPods", Description: "Only volumes on pools of this pod or of VMs in it (root admins)."},
					ParamSpec{Name: "clusterid", Type: "uuid", Related: "listClusters", Description: "Only volumes on pools of this cluster or of VMs in it (root admins)."},
					ParamSpec{Name: "hostid", Type: "uuid", Related: "listHosts", Description: "Only volumes of VMs on this host, or on its local pools (root admins)."},
					ParamSpec{Name: "storageid", Type: "string", Related: "listStoragePools", Description: "Only volumes on this storage pool (root admins)."},
					ParamSpec{Name: "tags", Type: "map", Description: "Only volumes with all these tags, as tags[0].key=k&tags[0].value=v."},
				)...),
			},
		}
	})
}

// lookupVolume resolves a volume parameter; another account's volume does
// not exist.
func lookupVolume(r *Request, param string) (*fsm.Volume, *Error) {
	return lookup(r, fsm.TableVolumes, param, func(v *fsm.Volume) bool { return r.canAccess(v.AccountID, v.DomainID) })
}

// lookupVolumeVM resolves a VM parameter of a volume command the same way.
func lookupVolumeVM(r *Request, param string) (*fsm.VM, *Error) {
	return lookup(r, fsm.TableVMs, param, func(v *fsm.VM) bool { return r.canAccess(v.AccountID, v.DomainID) })
}

// volumeSizeGiB reads a size parameter in GiB as bytes.
func volumeSizeGiB(p Params, param string) (int64, *Error) {
	gb, e := p.Int64(param, 0)
	if e != nil {
		return 0, e
	}
	if gb < 1 || gb > catalogMaxDiskGiB {
		return 0, ErrParam("invalid value %d for parameter %s: give a size in GiB between 1 and %d", gb, param, catalogMaxDiskGiB)
	}
	return gb * catalogGiB, nil
}

// volumeOfferingSize is the size a volume of offering d gets: the offering's
// own, or the size parameter for a customized one.
func volumeOfferingSize(p Params, d *fsm.DiskOffering) (int64, *Error) {
	switch {
	case d.Customized && !given(p, "size"):
		return 0, ErrParam("disk offering %s is customized: give size in GiB", d.Name)
	case d.Customized:
		return volumeSizeGiB(p, "size")
	case given(p, "size"):
		size, e := volumeSizeGiB(p, "size")
		if e != nil {
			return 0, e
		}
		if size != d.DiskSize {
			return 0, ErrParam("disk offering %s has a fixed size of %d GiB; leave size out or use a customized offering", d.Name, d.DiskSize/catalogGiB)
		}
	}
	return d.DiskSize, nil
}

// volumeZone resolves the zone of createVolume: zoneid, or the VM's.
func volumeZone(r *Request, vm *fsm.VM) (*fsm.Zone, *Error) {
	p := r.Params
	if !given(p, "zoneid") {
		if vm == nil {
			return nil, ErrMissingParam(p.Cmd, "zoneid")
		}
		z, _ := r.State().Zone(nil, vm.ZoneID)
		if z == nil {
			return nil, ErrInternal("zone of virtual machine " + vm.Name + " cannot be read")
		}
		return z, nil
	}
	zone, e := lookupZone(r, "zoneid")
	if e != nil {
		return nil, e
	}
	if vm != nil && vm.ZoneID != zone.ID {
		return nil, ErrParam("virtual machine %s is not in zone %s; a volume can be attached only to a VM of its zone", vm.Name, zone.Name)
	}
	return zone, nil
}

func createVolume(r *Request) (any, *Error) {
	p := r.Params
	var vm *fsm.VM
	var e *Error
	if given(p, "virtualmachineid") {
		if vm, e = lookupVolumeVM(r, "virtualmachineid"); e != nil {
			return nil, e
		}
	}
	zone, e := volumeZone(r, vm)
	if e != nil {
		return nil, e
	}
	if zone.AllocationState != fsm.AllocationEnabled && !r.isRootAdmin() {
		return nil, ErrParam("zone %s is disabled for new volumes; ask an operator to enable it", zone.Name)
	}
	if !given(p, "diskofferingid") {
		return nil, ErrMissingParam(p.Cmd, "diskofferingid")
	}
	d, e := usableDiskOffering(r, "diskofferingid")
	if e != nil {
		return nil, e
	}
	if len(d.ZoneIDs) > 0 && !catalogContainsFold(d.ZoneIDs, zone.ID) {
		return nil, ErrParam("disk offering %s is not offered in zone %s", d.Name, zone.Name)
	}
	size, e := volumeOfferingSize(p, d)
	if e != nil {
		return nil, e
	}
	acctID, domID := "", ""
	if vm != nil && !given(p, "account") {
		acctID, domID = vm.AccountID, vm.DomainID
	} else if acctID, domID, e = r.owner(); e != nil {
		return nil, e
	}
	id := newID()
	name := strings.TrimSpace(p.String("name"))
	if name == "" {
		name = "DATA-" + id[:8]
	}
	now := r.srv.now().UTC()
	vol := &fsm.Volume{
		ID: id, Name: name, AccountID: acctID, DomainID: domID, ZoneID: zone.ID, Type: fsm.VolumeDataDisk, DiskOfferingID: d.ID,
		SizeBytes: size, Format: "QCOW2", State: fsm.VolumeAllocated, StorageTags: d.Tags, Local: d.StorageType == fsm.StorageTypeLocal,
		Created: now,
	}
	params := map[string]string{scheduler.VolParamID: id}
	ops := []fsm.TxnOp{fsm.Check(fsm.TableDiskOfferings, d), fsm.Create(fsm.TableVolumes, vol),
		r.event("VOLUME.CREATE", resVolume, id, "created volume %s (%d GiB) in zone %s", name, size/catalogGiB, zone.Name)}
	if vm != nil {
		if msg := scheduler.CheckAttach(vol, vm); msg != "" {
			return nil, ErrParam("%s", msg)
		}
		params[scheduler.VolParamVM] = vm.ID
		ops = append(ops, r.event("VOLUME.ATTACH", resVolume, id, "attaching volume %s to virtual machine %s", name, vm.Name))
	}
	jobID, e := r.submitJob(resVolume, id, params, ops...)
	if e != nil {
		return nil, e
	}
	return jobAccepted(jobID, id), nil
}

// volumeBusy refuses a request while another job works on the volume.
func volumeBusy(r *Request, v *fsm.Volume) *Error {
	return instanceBusy(r, resVolume, v.ID, "volume "+v.Name)
}

// deviceIDParam reads and checks a deviceid parameter; -1 when absent.
func deviceIDParam(r *Request) (int, *Error) {
	p := r.Params
	if !given(p, "deviceid") {
		return -1, nil
	}
	dev, e := p.Int64("deviceid", 0)
	if e != nil {
		return 0, e
	}
	if dev < 0 || dev > scheduler.VolMaxDeviceID {
		return 0, ErrParam("invalid value %d for parameter deviceid: %s", dev, scheduler.CheckDeviceID(-1))
	}
	return int(dev), nil
}

func attachVolume(r *Request) (any, *Error) {
	vol, e := lookupVolume(r, "id")
	if e != nil {
		return nil, e
	}
	vm, e := lookupVolumeVM(r, "virtualmachineid")
	if e != nil {
		return nil, e
	}
	if msg := scheduler.CheckAttach(vol, vm); msg != "" {
		return nil, ErrParam("%s", msg)
	}
	if vol.VMID != "" {
		name := vol.VMID
		if cur, _ := fsm.Get[fsm.VM](r.State(), nil, fsm.TableVMs, vol.VMID); cur != nil {
			name = cur.Name
		}
		return nil, ErrInUse(fmt.Sprintf("volume %s is already attached to virtual machine %s; detach it first", vol.Name, name))
	}
	dev, e := deviceIDParam(r)
	if e != nil {
		return nil, e
	}
	params := map[string]string{scheduler.VolParamID: vol.ID, scheduler.VolParamVM: vm.ID}
	if dev >= 0 {
		if msg := scheduler.CheckDeviceID(dev); msg != "" {
			return nil, ErrParam("invalid value %d for parameter deviceid: %s", dev, msg)
		}
		if n, _ := volumeAtDevice(r, vm.ID, dev); n != nil {
			return nil, ErrParam("invalid value %d for parameter deviceid: volume %s of virtual machine %s already uses it", dev, n.Name, vm.Name)
		}
		params[scheduler.VolParamDevice] = strconv.Itoa(dev)
	}
	if e := volumeBusy(r, vol); e != nil {
		return nil, e
	}
	jobID, e := r.submitJob(resVolume, vol.ID, params, fsm.Claim(fsm.TableVolumes, vol),
		r.event("VOLUME.ATTACH", resVolume, vol.ID, "attaching volume %s to virtual machine %s", vol.Name, vm.Name))
	if e != nil {
		return nil, e
	}
	return jobAccepted(jobID, ""), nil
}

// volumeAtDevice returns the volume of a VM at a device ID, or nil.
func volumeAtDevice(r *Request, vmID string, dev int) (*fsm.Volume, *Error) {
	vols, err := fsm.List[fsm.Volume](r.State(), nil, fsm.TableVolumes, "vm", vmID)
	if err != nil {
		return nil, ErrInternal("volume scan failed")
	}
	for _, v := range vols {
		if v.DeviceID == dev {
			return v, nil
		}
	}
	return nil, nil
}

// detachTarget resolves detachVolume's volume: id, or the VM's volume at
// deviceid.
func detachTarget(r *Request) (*fsm.Volume, *Error) {
	p := r.Params
	if given(p, "id") {
		return lookupVolume(r, "id")
	}
	if !given(p, "virtualmachineid") || !given(p, "deviceid") {
		return nil, ErrParam("give id, or virtualmachineid and deviceid, to name the volume to detach")
	}
	vm, e := lookupVolumeVM(r, "virtualmachineid")
	if e != nil {
		return nil, e
	}
	dev, e := deviceIDParam(r)
	if e != nil {
		return nil, e
	}
	vol, e := volumeAtDevice(r, vm.ID, dev)
	if e != nil {
		return nil, e
	}
	if vol == nil {
		return nil, ErrParam("virtual machine %s has no volume at device ID %d", vm.Name, dev)
	}
	return vol, nil
}

func detachVolume(r *Request) (any, *Error) {
	vol, e := detachTarget(r)
	if e != nil {
		return nil, e
	}
	switch {
	case vol.Type == fsm.VolumeRoot:
		return nil, ErrParam("volume %s is a ROOT volume; ROOT volumes cannot be detached", vol.Name)
	case vol.VMID == "":
		return nil, ErrParam("volume %s is not attached to any virtual machine", vol.Name)
	}
	vm, _ := fsm.Get[fsm.VM](r.State(), nil, fsm.TableVMs, vol.VMID)
	vmName := vol.VMID
	if vm != nil {
		vmName = vm.Name
		if vm.State != fsm.VMRunning && vm.State != fsm.VMStopped {
			return nil, ErrParam("virtual machine %s is %s; volumes can be detached only from Running or Stopped VMs", vm.Name, vm.State)
		}
	}
	if e := volumeBusy(r, vol); e != nil {
		return nil, e
	}
	params := map[string]string{scheduler.VolParamID: vol.ID, scheduler.VolParamVM: vol.VMID}
	jobID, e := r.submitJob(resVolume, vol.ID, params, fsm.Claim(fsm.TableVolumes, vol),
		r.event("VOLUME.DETACH", resVolume, vol.ID, "detaching volume %s from virtual machine %s", vol.Name, vmName))
	if e != nil {
		return nil, e
	}
	return jobAccepted(jobID, ""), nil
}

// resizeTarget works out resizeVolume's new size and offering.
func resizeTarget(r *Request, vol *fsm.Volume) (int64, *fsm.DiskOffering, *Error) {
	p := r.Params
	if given(p, "diskofferingid") {
		d, e := usableDiskOffering(r, "diskofferingid")
		if e != nil {
			return 0, nil, e
		}
		if len(d.ZoneIDs) > 0 && !catalogContainsFold(d.ZoneIDs, vol.ZoneID) {
			return 0, nil, ErrParam("disk offering %s is not offered in the zone of volume %s", d.Name, vol.Name)
		}
		size, e := volumeOfferingSize(p, d)
		return size, d, e
	}
	if !given(p, "size") {
		return 0, nil, ErrParam("give size (GiB) or diskofferingid to resize volume %s", vol.Name)
	}
	if cur, _ := fsm.Get[fsm.DiskOffering](r.State(), nil, fsm.TableDiskOfferings, vol.DiskOfferingID); cur != nil {
		switch {
		case cur.DiskSizeStrictness:
			return 0, nil, ErrParam("disk offering %s of volume %s forbids resizing", cur.Name, vol.Name)
		case !cur.Customized && vol.Type == fsm.VolumeDataDisk:
			return 0, nil, ErrParam("disk offering %s of volume %s has a fixed size; give the diskofferingid of a larger or a customized offering", cur.Name, vol.Name)
		}
	}
	size, e := volumeSizeGiB(p, "size")
	return size, nil, e
}

func resizeVolume(r *Request) (any, *Error) {
	vol, e := lookupVolume(r, "id")
	if e != nil {
		return nil, e
	}
	if shrink, e := r.Params.Bool("shrinkok", false); e != nil {
		return nil, e
	} else if shrink {
		return nil, ErrParam("shrinking volumes is not supported: leave shrinkok out or false")
	}
	if vol.State == fsm.VolumeDestroy {
		return nil, ErrParam("volume %s is destroyed", vol.Name)
	}
	size, d, e := resizeTarget(r, vol)
	if e != nil {
		return nil, e
	}
	switch {
	case size < vol.SizeBytes:
		return nil, ErrParam("volume %s is %d GiB; volumes only grow, so the new size must be larger", vol.Name, vol.SizeBytes/catalogGiB)
	case size == vol.SizeBytes && (d == nil || d.ID == vol.DiskOfferingID):
		return nil, ErrParam("volume %s is already %d GiB", vol.Name, size/catalogGiB)
	}
	if vol.PoolID != "" {
		if pool, _ := fsm.Get[fsm.StoragePool](r.State(), nil, fsm.TableStoragePools, vol.PoolID); pool != nil && placement.PoolFree(pool) < size-vol.SizeBytes {
			return nil, &Error{Code: ErrCodeInsufficientCapacity, CSCode: CSInsufficientCapacity, Text: fmt.Sprintf(
				"storage pool of volume %s has %d bytes free; growing it to %d GiB needs %d", vol.Name, max(placement.PoolFree(pool), 0), size/catalogGiB, size-vol.SizeBytes)}
		}
	}
	if e := volumeBusy(r, vol); e != nil {
		return nil, e
	}
	params := map[string]string{scheduler.VolParamID: vol.ID, scheduler.VolParamSize: strconv.FormatInt(size, 10)}
	ops := []fsm.TxnOp{fsm.Check(fsm.TableVolumes, vol),
		r.event("VOLUME.RESIZE", resVolume, vol.ID, "resizing volume %s from %d to %d GiB", vol.Name, vol.SizeBytes/catalogGiB, size/catalogGiB)}
	if d != nil {
		params[scheduler.VolParamOffering] = d.ID
		ops = append(ops, fsm.Check(fsm.TableDiskOfferings, d))
	}
	jobID, e := r.submitJob(resVolume, vol.ID, params, ops...)
	if e != nil {
		return nil, e
	}
	return jobAccepted(jobID, ""), nil
}

func deleteVolume(r *Request) (any, *Error) {
	vol, e := lookupVolume(r, "id")
	if e != nil {
		return nil, e
	}
	if vol.VMID != "" {
		name := vol.VMID
		if vm, _ := fsm.Get[fsm.VM](r.State(), nil, fsm.TableVMs, vol.VMID); vm != nil {
			name = vm.Name
		}
		return nil, ErrInUse(fmt.Sprintf("volume %s is attached to virtual machine %s; detach it first", vol.Name, name))
	}
	if e := volumeBusy(r, vol); e != nil {
		return nil, e
	}
	// Check pins the volume as read (detached), and the pool update is
	// compare-and-set: a racing change fails this request as stale.
	ops := []fsm.TxnOp{fsm.Check(fsm.TableVolumes, vol)}
	release, err := scheduler.ReleasePoolOps(r.State(), vol)
	if err != nil {
		return nil, ErrInternal("storage pool lookup failed")
	}
	ops = append(ops, release...)
	tags, err := fsm.List[fsm.Tag](r.State(), nil, fsm.TableTags, "resource", vol.ID)
	if err != nil {
		return nil, ErrInternal("tag scan failed")
	}
	for _, t := range tags {
		ops = append(ops, fsm.Delete(fsm.TableTags, t.ID))
	}
	ops = append(ops, fsm.Delete(fsm.TableVolumes, vol.ID), r.event("VOLUME.DELETE", resVolume, vol.ID, "deleted volume %s", vol.Name))
	if e := r.commit(ops...); e != nil {
		return nil, e
	}
	return successBody(), nil
}
