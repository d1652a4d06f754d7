package api

import (
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/scheduler"
)

// Volume snapshots. createSnapshot records the snapshot (Creating) and the
// leader's job files it under an image store of the volume's zone with the
// volume's size, BackedUp. This is record-only for now: no data is copied
// to the image store, and revertSnapshot writes nothing back onto the
// volume (see scheduler/snapshots.go).

// resSnapshot is the resource and job instance type of snapshots.
const resSnapshot = "Snapshot"

type snapshotResponse struct {
	ID           string        `json:"id"`
	Name         string        `json:"name"`
	VolumeID     string        `json:"volumeid"`
	VolumeName   string        `json:"volumename,omitempty"`
	VolumeType   string        `json:"volumetype"`
	ZoneID       string        `json:"zoneid"`
	State        string        `json:"state"`
	SnapshotType string        `json:"snapshottype"`
	IntervalType string        `json:"intervaltype"`
	PhysicalSize int64         `json:"physicalsize"`
	VirtualSize  int64         `json:"virtualsize"`
	LocationType string        `json:"locationtype"`
	Revertable   bool          `json:"revertable"`
	Account      string        `json:"account"`
	DomainID     string        `json:"domainid"`
	Domain       string        `json:"domain"`
	Created      string        `json:"created"`
	OSTypeID     string        `json:"ostypeid,omitempty"`
	HasAnnots    bool          `json:"hasannotations"`
	Tags         []tagResponse `json:"tags"`
}

var snapshotFields = withJobFields(
	ResponseField{Name: "id", Type: "string", Description: "Snapshot ID."},
	ResponseField{Name: "name", Type: "string", Description: "Snapshot name."},
	ResponseField{Name: "volumeid", Type: "string", Description: "Volume the snapshot is of."},
	ResponseField{Name: "volumename", Type: "string", Description: "Name of that volume, while it exists."},
	ResponseField{Name: "volumetype", Type: "string", Description: "ROOT or DATADISK."},
	ResponseField{Name: "zoneid", Type: "string", Description: "Zone of the snapshot."},
	ResponseField{Name: "state", Type: "string", Description: "Creating, then BackedUp."},
	ResponseField{Name: "snapshottype", Type: "string", Description: "MANUAL: recurring snapshot policies are not supported."},
	ResponseField{Name: "intervaltype", Type: "string", Description: "MANUAL."},
	ResponseField{Name: "physicalsize", Type: "long", Description: "Bytes the snapshot takes on the image store (recorded as the volume's size)."},
	ResponseField{Name: "virtualsize", Type: "long", Description: "Size of the volume when the snapshot was taken."},
	ResponseField{Name: "locationtype", Type: "string", Description: "SECONDARY: snapshots are filed under an image store."},
	ResponseField{Name: "revertable", Type: "boolean", Description: "Whether the volume can be reverted to it."},
	ResponseField{Name: "account", Type: "string", Description: "Owning account."},
	ResponseField{Name: "domainid", Type: "string", Description: "Domain of the owning account."},
	ResponseField{Name: "domain", Type: "string", Description: "Name of that domain."},
	ResponseField{Name: "created", Type: "date", Description: "When the snapshot was taken."},
	ResponseField{Name: "ostypeid", Type: "string", Description: "OS type of the VM of a ROOT volume's snapshot."},
	ResponseField{Name: "hasannotations", Type: "boolean", Description: "Whether operators left comments on it."},
	ResponseField{Name: "tags", Type: "set", Description: "Resource tags of the snapshot."},
)

func snapshotIDParam() ParamSpec {
	return ParamSpec{Name: "id", Type: "uuid", Required: true, Related: "listSnapshots", Description: "ID of the snapshot."}
}

func init() {
	registerCommands(func(*Server) []*Command {
		return []*Command{
			{
				Name: "createSnapshot", Description: "Takes a snapshot of a volume onto an image store of its zone (recorded only: the data copy is not implemented yet).",
				Async: true, Write: true, Access: AccessUser, ObjectName: "snapshot", Related: "listSnapshots,revertSnapshot", Response: snapshotFields,
				Handler: createSnapshot,
				Params: []ParamSpec{
					{Name: "volumeid", Type: "uuid", Required: true, Related: "listVolumes", Description: "Volume to snapshot: Ready or placed on a pool."},
					{Name: "name", Type: "string", Length: 255, Description: "Name of the snapshot; <volume>_<yyyyMMddHHmmss> when absent."},
				},
			},
			{
				Name: "listSnapshots", Description: "Lists volume snapshots, oldest first.", Access: AccessUser, ObjectName: "snapshot",
				Related: "createSnapshot", Response: snapshotFields, Handler: listSnapshots,
				Params: withPaging(scopeParams(
					ParamSpec{Name: "id", Type: "uuid", Related: "listSnapshots", Description: "Only the snapshot with this ID."},
					ParamSpec{Name: "ids", Type: "list", Related: "listSnapshots", Description: "Only the snapshots with these IDs, comma separated."},
					ParamSpec{Name: "volumeid", Type: "uuid", Related: "listVolumes", Description: "Only snapshots of this volume."},
					ParamSpec{Name: "name", Type: "string", Description: "Only snapshots with this name."},
					ParamSpec{Name: "zoneid", Type: "uuid", Related: "listZones", Description: "Only snapshots of this zone."},
					ParamSpec{Name: "snapshottype", Type: "string", Description: "MANUAL (every snapshot) or RECURRING (none)."},
					ParamSpec{Name: "intervaltype", Type: "string", Description: "HOURLY, DAILY, WEEKLY or MONTHLY: none, as there are no recurring policies."},
					ParamSpec{Name: "tags", Type: "map", Description: "Only snapshots with all these tags."},
				)...),
			},
			{
				Name: "deleteSnapshot", Description: "Deletes a snapshot.", Async: true, Write: true, Access: AccessUser,
				Related: "listSnapshots", Response: successResponse, Handler: deleteSnapshot, Params: []ParamSpec{snapshotIDParam()},
			},
			{
				Name: "revertSnapshot", Description: "Reverts a volume to a snapshot; the volume's VM must be Stopped (recorded only: the data is not written back yet).",
				Async: true, Write: true, Access: AccessUser, ObjectName: "snapshot", Related: "listSnapshots", Response: snapshotFields,
				Handler: revertSnapshot, Params: []ParamSpec{snapshotIDParam()},
			},
		}
	})
}

func lookupSnapshot(r *Request, param string) (*fsm.Snapshot, *Error) {
	return lookup(r, fsm.TableSnapshots, param, func(s *fsm.Snapshot) bool { return r.canAccess(s.AccountID, s.DomainID) })
}

func renderSnapshot(r *Request, s *fsm.Snapshot) snapshotResponse {
	acct, dom := r.ownerNames(s.AccountID, s.DomainID)
	out := snapshotResponse{
		ID: s.ID, Name: s.Name, VolumeID: s.VolumeID, VolumeType: s.VolumeType, ZoneID: s.ZoneID, State: s.State,
		SnapshotType: "MANUAL", IntervalType: "MANUAL", PhysicalSize: s.SizeBytes, VirtualSize: s.SizeBytes, LocationType: "SECONDARY",
		Account: acct, DomainID: s.DomainID, Domain: dom, Created: FormatTime(s.Created), Tags: computeTags(r, s.ID),
	}
	if v, _ := fsm.Get[fsm.Volume](r.State(), nil, fsm.TableVolumes, s.VolumeID); v != nil {
		out.VolumeName, out.Revertable = v.Name, s.State == fsm.SnapshotBackedUp
		if vm, _ := fsm.Get[fsm.VM](r.State(), nil, fsm.TableVMs, v.VMID); vm != nil && v.Type == fsm.VolumeRoot {
			out.OSTypeID = vm.OSTypeID
		}
	}
	return out
}

// snapshotBusy refuses a request while another job works on the snapshot.
func snapshotBusy(r *Request, s *fsm.Snapshot) *Error {
	return instanceBusy(r, resSnapshot, s.ID, "snapshot "+s.Name)
}

func createSnapshot(r *Request) (any, *Error) {
	vol, e := lookupVolume(r, "volumeid")
	if e != nil {
		return nil, e
	}
	if vol.State == fsm.VolumeDestroy || (vol.State != fsm.VolumeReady && vol.PoolID == "") {
		return nil, ErrParam("volume %s is %s and on no storage pool; only a Ready or placed volume can be snapshotted (attach it to a VM that runs first)", vol.Name, vol.State)
	}
	zone, _ := r.State().Zone(nil, vol.ZoneID)
	zoneName := vol.ZoneID
	if zone != nil {
		zoneName = zone.Name
	}
	store, err := scheduler.SnapshotStore(r.State(), vol.ZoneID)
	if err != nil {
		return nil, ErrInternal("image store scan failed")
	}
	if store == nil {
		return nil, ErrParam("zone %s has no writable image store (secondary storage) to keep snapshots in; an operator must add one with addImageStore", zoneName)
	}
	now := r.srv.now().UTC()
	name := strings.TrimSpace(r.Params.String("name"))
	if name == "" {
		name = vol.Name + "_" + now.Format("20060102150405")
	}
	snap := &fsm.Snapshot{
		ID: newID(), Name: name, AccountID: vol.AccountID, DomainID: vol.DomainID, ZoneID: vol.ZoneID, VolumeID: vol.ID,
		VolumeType: vol.Type, SizeBytes: vol.SizeBytes, State: fsm.SnapshotCreating, Created: now,
	}
	jobID, e := r.submitJob(resSnapshot, snap.ID, map[string]string{scheduler.SnapParamID: snap.ID},
		fsm.Check(fsm.TableVolumes, vol), fsm.Create(fsm.TableSnapshots, snap),
		r.event("SNAPSHOT.CREATE", resSnapshot, snap.ID, "taking snapshot %s of volume %s", name, vol.Name))
	if e != nil {
		return nil, e
	}
	return jobAccepted(jobID, snap.ID), nil
}

func listSnapshots(r *Request) (any, *Error) {
	p := r.Params
	scope, e := r.listScope()
	if e != nil {
		return nil, e
	}
	var snaps []*fsm.Snapshot
	byID := given(p, "id")
	if byID {
		s, e := lookupSnapshot(r, "id")
		if e != nil {
			return nil, e
		}
		snaps = []*fsm.Snapshot{s}
	} else {
		var err error
		if snaps, err = fsm.List[fsm.Snapshot](r.State(), nil, fsm.TableSnapshots, "create"); err != nil {
			return nil, ErrInternal("snapshot scan failed")
		}
	}
	if given(p, "zoneid") {
		if _, e := lookupZone(r, "zoneid"); e != nil {
			return nil, e
		}
	}
	ids := map[string]bool{}
	for _, id := range p.List("ids") {
		if !IsUUID(id) {
			return nil, ErrEntityNotFound(p.Cmd, "ids", id)
		}
		ids[strings.ToLower(id)] = true
	}
	// Every snapshot is MANUAL: a RECURRING type or any interval selects none.
	none := (given(p, "snapshottype") && !strings.EqualFold(p.String("snapshottype"), "MANUAL")) || given(p, "intervaltype")
	volID, zoneID := strings.ToLower(p.String("volumeid")), strings.ToLower(p.String("zoneid"))
	name, kw, tags := p.String("name"), strings.ToLower(p.String("keyword")), p.Map("tags")
	var out []snapshotResponse
	for _, s := range snaps {
		if none || (!byID && !scope(s.AccountID, s.DomainID)) || (len(ids) > 0 && !ids[s.ID]) || (volID != "" && s.VolumeID != volID) ||
			(zoneID != "" && s.ZoneID != zoneID) || (name != "" && !strings.EqualFold(s.Name, name)) || !keywordMatch(kw, s.Name) ||
			!computeTagsMatch(r, s.ID, tags) {
			continue
		}
		out = append(out, renderSnapshot(r, s))
	}
	return catalogPage(r, "snapshot", out)
}

func deleteSnapshot(r *Request) (any, *Error) {
	s, e := lookupSnapshot(r, "id")
	if e != nil {
		return nil, e
	}
	if e := snapshotBusy(r, s); e != nil {
		return nil, e
	}
	jobID, e := r.submitJob(resSnapshot, s.ID, map[string]string{scheduler.SnapParamID: s.ID}, fsm.Claim(fsm.TableSnapshots, s),
		r.event("SNAPSHOT.DELETE", resSnapshot, s.ID, "deleting snapshot %s", s.Name))
	if e != nil {
		return nil, e
	}
	return jobAccepted(jobID, ""), nil
}

func revertSnapshot(r *Request) (any, *Error) {
	s, e := lookupSnapshot(r, "id")
	if e != nil {
		return nil, e
	}
	if s.State != fsm.SnapshotBackedUp {
		return nil, ErrParam("snapshot %s is %s; only a BackedUp snapshot can be reverted to", s.Name, s.State)
	}
	vol, _ := fsm.Get[fsm.Volume](r.State(), nil, fsm.TableVolumes, s.VolumeID)
	if vol == nil {
		return nil, ErrParam("volume %s of snapshot %s no longer exists", s.VolumeID, s.Name)
	}
	if vm, _ := fsm.Get[fsm.VM](r.State(), nil, fsm.TableVMs, vol.VMID); vm != nil && vm.State != fsm.VMStopped {
		return nil, ErrParam("virtual machine %s of volume %s is %s; stop it before reverting to a snapshot", vm.Name, vol.Name, vm.State)
	}
	if e := snapshotBusy(r, s); e != nil {
		return nil, e
	}
	if e := volumeBusy(r, vol); e != nil {
		return nil, e
	}
	jobID, e := r.submitJob(resSnapshot, s.ID, map[string]string{scheduler.SnapParamID: s.ID},
		fsm.Claim(fsm.TableSnapshots, s), fsm.Claim(fsm.TableVolumes, vol),
		r.event("SNAPSHOT.REVERT", resSnapshot, s.ID, "reverting volume %s to snapshot %s", vol.Name, s.Name))
	if e != nil {
		return nil, e
	}
	return jobAccepted(jobID, ""), nil
}
