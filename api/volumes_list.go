package api

import (
	"encoding/json"
	"iter"
	"slices"
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
)

// A volume as listVolumes and the volume jobs' results show it, with the
// field names of CloudStack's VolumeResponse. Where it lives (pool, pod,
// cluster, path) is shown to root admins only, as CloudStack's full view.

type volumeResponse struct {
	ID                   string        `json:"id"`
	Name                 string        `json:"name"`
	ZoneID               string        `json:"zoneid"`
	ZoneName             string        `json:"zonename"`
	Type                 string        `json:"type"`
	DeviceID             *int          `json:"deviceid,omitempty"`
	VirtualMachineID     string        `json:"virtualmachineid,omitempty"`
	VMName               string        `json:"vmname,omitempty"`
	VMDisplayName        string        `json:"vmdisplayname,omitempty"`
	VMState              string        `json:"vmstate,omitempty"`
	VMType               string        `json:"vmtype,omitempty"`
	Size                 int64         `json:"size"`
	VirtualSize          int64         `json:"virtualsize"`
	State                string        `json:"state"`
	Storage              string        `json:"storage,omitempty"`
	StorageID            string        `json:"storageid,omitempty"`
	StorageType          string        `json:"storagetype"`
	PodID                string        `json:"podid,omitempty"`
	PodName              string        `json:"podname,omitempty"`
	ClusterID            string        `json:"clusterid,omitempty"`
	ClusterName          string        `json:"clustername,omitempty"`
	Path                 string        `json:"path,omitempty"`
	DiskOfferingID       string        `json:"diskofferingid,omitempty"`
	DiskOfferingName     string        `json:"diskofferingname,omitempty"`
	DiskOfferingText     string        `json:"diskofferingdisplaytext,omitempty"`
	ServiceOfferingID    string        `json:"serviceofferingid,omitempty"`
	ServiceOfferingName  string        `json:"serviceofferingname,omitempty"`
	TemplateID           string        `json:"templateid,omitempty"`
	TemplateName         string        `json:"templatename,omitempty"`
	Account              string        `json:"account"`
	DomainID             string        `json:"domainid"`
	Domain               string        `json:"domain"`
	Created              string        `json:"created"`
	Attached             string        `json:"attached,omitempty"`
	ProvisioningType     string        `json:"provisioningtype"`
	Hypervisor           string        `json:"hypervisor"`
	Destroyed            bool          `json:"destroyed"`
	DisplayVolume        bool          `json:"displayvolume"`
	IsExtractable        bool          `json:"isextractable"`
	QuiesceVM            bool          `json:"quiescevm"`
	SupportsStorageSnaps bool          `json:"supportsstoragesnapshot"`
	HasAnnotations       bool          `json:"hasannotations"`
	Tags                 []tagResponse `json:"tags"`
}

var volumeFields = withJobFields(
	ResponseField{Name: "id", Type: "string", Description: "Volume ID."},
	ResponseField{Name: "name", Type: "string", Description: "Volume name."},
	ResponseField{Name: "zoneid", Type: "string", Description: "Zone of the volume."},
	ResponseField{Name: "zonename", Type: "string", Description: "Name of that zone."},
	ResponseField{Name: "type", Type: "string", Description: "ROOT or DATADISK."},
	ResponseField{Name: "deviceid", Type: "long", Description: "Device ID on the VM, while attached (ROOT is 0)."},
	ResponseField{Name: "virtualmachineid", Type: "string", Description: "VM the volume is attached to."},
	ResponseField{Name: "vmname", Type: "string", Description: "Name of that VM."},
	ResponseField{Name: "vmdisplayname", Type: "string", Description: "Display name of that VM."},
	ResponseField{Name: "vmstate", Type: "string", Description: "State of that VM."},
	ResponseField{Name: "vmtype", Type: "string", Description: "Type of that VM: User."},
	ResponseField{Name: "size", Type: "long", Description: "Size in bytes."},
	ResponseField{Name: "virtualsize", Type: "long", Description: "Virtual size in bytes."},
	ResponseField{Name: "state", Type: "string", Description: "Allocated (no pool yet or not yet created), Ready, or Destroy."},
	ResponseField{Name: "storage", Type: "string", Description: "Name of the storage pool (root admins)."},
	ResponseField{Name: "storageid", Type: "string", Description: "ID of the storage pool (root admins)."},
	ResponseField{Name: "storagetype", Type: "string", Description: "shared or local."},
	ResponseField{Name: "podid", Type: "string", Description: "Pod of the storage pool (root admins)."},
	ResponseField{Name: "podname", Type: "string", Description: "Name of that pod."},
	ResponseField{Name: "clusterid", Type: "string", Description: "Cluster of the storage pool (root admins)."},
	ResponseField{Name: "clustername", Type: "string", Description: "Name of that cluster."},
	ResponseField{Name: "path", Type: "string", Description: "Path of the disk on its host, as the agent reported (root admins)."},
	ResponseField{Name: "diskofferingid", Type: "string", Description: "Disk offering of the volume."},
	ResponseField{Name: "diskofferingname", Type: "string", Description: "Name of that offering."},
	ResponseField{Name: "diskofferingdisplaytext", Type: "string", Description: "Display text of that offering."},
	ResponseField{Name: "serviceofferingid", Type: "string", Description: "Compute offering of the VM of a ROOT volume."},
	ResponseField{Name: "serviceofferingname", Type: "string", Description: "Name of that offering."},
	ResponseField{Name: "templateid", Type: "string", Description: "Template of a ROOT volume."},
	ResponseField{Name: "templatename", Type: "string", Description: "Name of that template."},
	ResponseField{Name: "account", Type: "string", Description: "Owning account."},
	ResponseField{Name: "domainid", Type: "string", Description: "Domain of the owning account."},
	ResponseField{Name: "domain", Type: "string", Description: "Name of that domain."},
	ResponseField{Name: "created", Type: "date", Description: "When the volume was created."},
	ResponseField{Name: "attached", Type: "date", Description: "When it was attached to its VM."},
	ResponseField{Name: "provisioningtype", Type: "string", Description: "thin, sparse or fat."},
	ResponseField{Name: "hypervisor", Type: "string", Description: "KVM once attached or placed, else None."},
	ResponseField{Name: "destroyed", Type: "boolean", Description: "Whether the volume is destroyed."},
	ResponseField{Name: "displayvolume", Type: "boolean", Description: "Whether users see the volume."},
	ResponseField{Name: "isextractable", Type: "boolean", Description: "Whether the volume can be downloaded: false."},
	ResponseField{Name: "quiescevm", Type: "boolean", Description: "Whether snapshots quiesce the VM: false."},
	ResponseField{Name: "supportsstoragesnapshot", Type: "boolean", Description: "Whether the pool takes snapshots itself: false."},
	ResponseField{Name: "hasannotations", Type: "boolean", Description: "Whether operators left comments on it."},
	ResponseField{Name: "tags", Type: "set", Description: "Resource tags of the volume."},
)

// volumeRenderer renders volumes for one request, caching the rows they
// name.
type volumeRenderer struct {
	r     *Request
	names *infraNames
	vms   map[string]*fsm.VM
	pools map[string]*fsm.StoragePool
	offs  map[string]*fsm.DiskOffering
}

func newVolumeRenderer(r *Request) *volumeRenderer {
	return &volumeRenderer{r: r, names: newInfraNames(r.State()), vms: map[string]*fsm.VM{},
		pools: map[string]*fsm.StoragePool{}, offs: map[string]*fsm.DiskOffering{}}
}

func (vr *volumeRenderer) vm(id string) *fsm.VM {
	return cached(vr.r.State(), vr.vms, fsm.TableVMs, id)
}
func (vr *volumeRenderer) pool(id string) *fsm.StoragePool {
	return cached(vr.r.State(), vr.pools, fsm.TableStoragePools, id)
}

func (vr *volumeRenderer) render(v *fsm.Volume) volumeResponse {
	r, st := vr.r, vr.r.State()
	acct, dom := r.ownerNames(v.AccountID, v.DomainID)
	out := volumeResponse{
		ID: v.ID, Name: v.Name, ZoneID: v.ZoneID, ZoneName: vr.names.zone(v.ZoneID), Type: v.Type, Size: v.SizeBytes,
		VirtualSize: v.SizeBytes, State: v.State, StorageType: fsm.StorageTypeShared, Account: acct, DomainID: v.DomainID,
		Domain: dom, Created: FormatTime(v.Created), ProvisioningType: fsm.ProvisioningThin, Hypervisor: "None",
		Destroyed: v.State == fsm.VolumeDestroy, DisplayVolume: true, TemplateID: v.TemplateID, Tags: computeTags(r, v.ID),
	}
	if v.Local {
		out.StorageType = fsm.StorageTypeLocal
	}
	if d := cached(st, vr.offs, fsm.TableDiskOfferings, v.DiskOfferingID); d != nil {
		out.DiskOfferingID, out.DiskOfferingName, out.DiskOfferingText, out.ProvisioningType = d.ID, d.Name, d.DisplayText, d.ProvisioningType
	}
	if t, _ := fsm.Get[fsm.Template](st, nil, fsm.TableTemplates, v.TemplateID); t != nil {
		out.TemplateName = t.Name
	}
	if vm := vr.vm(v.VMID); vm != nil {
		dev := v.DeviceID
		out.DeviceID, out.VirtualMachineID, out.VMName, out.VMDisplayName = &dev, vm.ID, vm.Name, vm.DisplayName
		out.VMState, out.VMType, out.Attached, out.Hypervisor = vm.State, "User", FormatTime(v.Attached), fsm.HypervisorKVM
		if v.Type == fsm.VolumeRoot {
			out.ServiceOfferingID = vm.ServiceOfferingID
			if o, _ := fsm.Get[fsm.ServiceOffering](st, nil, fsm.TableServiceOfferings, vm.ServiceOfferingID); o != nil {
				out.ServiceOfferingName = o.Name
			}
		}
	}
	if v.PoolID != "" {
		out.Hypervisor = fsm.HypervisorKVM
	}
	if r.isRootAdmin() {
		out.Path = v.Path
		if p := vr.pool(v.PoolID); p != nil {
			out.Storage, out.StorageID = p.Name, p.ID
			out.PodID, out.PodName, out.ClusterID, out.ClusterName = p.PodID, vr.names.pod(p.PodID), p.ClusterID, vr.names.cluster(p.ClusterID)
		}
	}
	return out
}

// computeTags renders the tags of a VM's volume or snapshot.
func computeTags(r *Request, resourceID string) []tagResponse {
	out := []tagResponse{}
	tags, _ := fsm.List[fsm.Tag](r.State(), nil, fsm.TableTags, "resource", resourceID)
	for _, t := range tags {
		acct, dom := r.ownerNames(t.AccountID, t.DomainID)
		out = append(out, tagResponse{Key: t.Key, Value: t.Value, ResourceType: t.ResourceType, ResourceID: t.ResourceID,
			Account: acct, DomainID: t.DomainID, Domain: dom, Customer: t.Customer})
	}
	return out
}

// computeTagsMatch reports whether a resource carries every tag of the
// list command's tags[i].key/value filter.
func computeTagsMatch(r *Request, resourceID string, want []map[string]string) bool {
	if len(want) == 0 {
		return true
	}
	tags, _ := fsm.List[fsm.Tag](r.State(), nil, fsm.TableTags, "resource", resourceID)
	for _, w := range want {
		found := false
		for _, t := range tags {
			if strings.EqualFold(t.Key, w["key"]) && (w["value"] == "" || t.Value == w["value"]) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// volumeFilter reads listVolumes' filters. The infrastructure filters are
// root admins' only; CloudStack ignores them for anyone else.
func volumeFilter(r *Request, vr *volumeRenderer) (func(*fsm.Volume) bool, *Error) {
	p := r.Params
	var vmID string
	if given(p, "virtualmachineid") {
		vm, e := lookupVolumeVM(r, "virtualmachineid")
		if e != nil {
			return nil, e
		}
		vmID = vm.ID
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
	zoneID, offID := strings.ToLower(p.String("zoneid")), strings.ToLower(p.String("diskofferingid"))
	name, typ, state, kw := p.String("name"), p.String("type"), p.String("state"), strings.ToLower(p.String("keyword"))
	var podID, clusterID, hostID, poolID string
	if r.isRootAdmin() {
		podID, clusterID = strings.ToLower(p.String("podid")), strings.ToLower(p.String("clusterid"))
		hostID, poolID = strings.ToLower(p.String("hostid")), strings.ToLower(strings.TrimSpace(p.String("storageid")))
	}
	tags := p.Map("tags")
	words := newKeywordMatcher(kw)
	return func(v *fsm.Volume) bool {
		if (len(ids) > 0 && !ids[v.ID]) || (vmID != "" && v.VMID != vmID) || (zoneID != "" && v.ZoneID != zoneID) ||
			(offID != "" && v.DiskOfferingID != offID) || (name != "" && !strings.EqualFold(v.Name, name)) ||
			!eqFold(typ, v.Type) || !eqFold(state, v.State) || (kw != "" && !words.match(v.Name)) || (poolID != "" && v.PoolID != poolID) {
			return false
		}
		if podID != "" || clusterID != "" || hostID != "" {
			var pool fsm.StoragePool
			var vm fsm.VM
			if p := vr.pool(v.PoolID); p != nil {
				pool = *p
			}
			if m := vr.vm(v.VMID); m != nil {
				vm = *m
			}
			if (podID != "" && pool.PodID != podID && vm.PodID != podID) ||
				(clusterID != "" && pool.ClusterID != clusterID && vm.ClusterID != clusterID) ||
				(hostID != "" && pool.HostID != hostID && vm.HostID != hostID) {
				return false
			}
		}
		return computeTagsMatch(r, v.ID, tags)
	}, nil
}

func listVolumes(r *Request) (any, *Error) {
	q, e := r.listScopeQuery()
	if e != nil {
		return nil, e
	}
	vr := newVolumeRenderer(r)
	var vols iter.Seq[*fsm.Volume]
	byID := given(r.Params, "id")
	if byID {
		v, e := lookupVolume(r, "id")
		if e != nil {
			return nil, e
		}
		vols = slices.Values([]*fsm.Volume{v})
	}
	keep, e := volumeFilter(r, vr)
	if e != nil {
		return nil, e
	}
	if !byID {
		var err error
		if vols, err = scopedRows[fsm.Volume](r, q, fsm.TableVolumes, false); err != nil {
			return nil, ErrInternal("volume scan failed")
		}
	}
	pg, e := pageParams[*fsm.Volume](r)
	if e != nil {
		return nil, e
	}
	for v := range vols {
		if (!byID && !q.keep(v.AccountID, v.DomainID)) || !keep(v) {
			continue
		}
		pg.add(v)
	}
	out := make([]volumeResponse, 0, len(pg.page))
	for _, v := range pg.page {
		out = append(out, vr.render(v))
	}
	return ListBody("volume", pg.total, out), nil
}

// expandComputeResult renders the object of a finished VM, volume,
// snapshot, affinity group or host job as it is now: the runner commits only
// {"<object>":{"id":...}}, since the names an answer carries are the API's
// to fill. ok is false for any other job, or when the object is gone.
func expandComputeResult(r *Request, j *fsm.AsyncJob) (json.RawMessage, bool) {
	if j.Status != fsm.JobSucceeded {
		return nil, false
	}
	var res map[string]struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(j.Result, &res) != nil || len(res) != 1 {
		return nil, false
	}
	var body any
	for key, obj := range res {
		switch {
		case key == "volume" && j.InstanceType == resVolume:
			if v, _ := fsm.Get[fsm.Volume](r.State(), nil, fsm.TableVolumes, obj.ID); v != nil {
				body = map[string]any{"volume": newVolumeRenderer(r).render(v)}
			}
		case key == "snapshot" && j.InstanceType == resSnapshot:
			if s, _ := fsm.Get[fsm.Snapshot](r.State(), nil, fsm.TableSnapshots, obj.ID); s != nil {
				body = map[string]any{"snapshot": renderSnapshot(r, s)}
			}
		case key == "affinitygroup" && j.InstanceType == resAffinityGroup:
			if g, _ := fsm.Get[fsm.AffinityGroup](r.State(), nil, fsm.TableAffinityGroups, obj.ID); g != nil {
				body = map[string]any{"affinitygroup": renderAffinityGroup(r, g)}
			}
		case key == "virtualmachine" && j.InstanceType == vmInstanceType:
			if v, _ := fsm.Get[fsm.VM](r.State(), nil, fsm.TableVMs, obj.ID); v != nil {
				body = map[string]any{"virtualmachine": newVMRenderer(r).render(v, false)}
			}
		case key == "host" && j.InstanceType == resHost:
			if h, _ := fsm.Get[fsm.Host](r.State(), nil, fsm.TableHosts, obj.ID); h != nil {
				body = map[string]any{"host": toHostResponse(newInfraNames(r.State()), h)}
			}
		}
	}
	if body == nil {
		return nil, false
	}
	b, err := json.Marshal(body)
	return b, err == nil
}
