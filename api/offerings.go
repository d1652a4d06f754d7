package api

import (
	"strconv"
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
)

// Service offerings: the CPU, memory and placement rules of a VM. Only the
// root admin creates, changes and deletes them; everyone lists those they
// may use (public ones and those of their domain or a domain above it).
//
// Stratus keeps offering names unique (CloudStack does not) so that tools
// resolving an offering by name get one answer. Deleting an offering
// removes its row; CloudStack keeps a removed row, which only matters once
// VMs refer to offerings (their references will then refuse the delete).

type serviceOfferingResponse struct {
	ID                      string            `json:"id"`
	Name                    string            `json:"name"`
	DisplayText             string            `json:"displaytext"`
	CPUNumber               int               `json:"cpunumber,omitempty"`
	CPUSpeed                int               `json:"cpuspeed,omitempty"`
	Memory                  int               `json:"memory,omitempty"`
	Created                 string            `json:"created"`
	StorageType             string            `json:"storagetype"`
	ProvisioningType        string            `json:"provisioningtype"`
	OfferHA                 bool              `json:"offerha"`
	LimitCPUUse             bool              `json:"limitcpuuse"`
	IsVolatile              bool              `json:"isvolatile"`
	HostTags                string            `json:"hosttags,omitempty"`
	StorageTags             string            `json:"storagetags,omitempty"`
	IsSystem                bool              `json:"issystem"`
	DefaultUse              bool              `json:"defaultuse"`
	IsCustomized            bool              `json:"iscustomized"`
	IsCustomizedIOPS        bool              `json:"iscustomizediops"`
	DynamicScalingEnabled   bool              `json:"dynamicscalingenabled"`
	EncryptRoot             bool              `json:"encryptroot"`
	DiskOfferingStrictness  bool              `json:"diskofferingstrictness"`
	DiskOfferingID          string            `json:"diskofferingid,omitempty"`
	DiskOfferingName        string            `json:"diskofferingname,omitempty"`
	DiskOfferingDisplayText string            `json:"diskofferingdisplaytext,omitempty"`
	RootDiskSize            int64             `json:"rootdisksize,omitempty"`
	NetworkRate             int               `json:"networkrate,omitempty"`
	CacheMode               string            `json:"cacheMode,omitempty"`
	DeploymentPlanner       string            `json:"deploymentplanner,omitempty"`
	DomainID                string            `json:"domainid,omitempty"`
	Domain                  string            `json:"domain,omitempty"`
	ZoneID                  string            `json:"zoneid,omitempty"`
	Zone                    string            `json:"zone,omitempty"`
	HasAnnotations          bool              `json:"hasannotations"`
	Details                 map[string]string `json:"serviceofferingdetails,omitempty"`
}

var serviceOfferingFields = withJobFields(
	ResponseField{Name: "id", Type: "string", Description: "Offering ID."},
	ResponseField{Name: "name", Type: "string", Description: "Offering name."},
	ResponseField{Name: "displaytext", Type: "string", Description: "Text shown to users for the offering."},
	ResponseField{Name: "cpunumber", Type: "integer", Description: "Virtual CPUs of a VM; absent for a customized offering."},
	ResponseField{Name: "cpuspeed", Type: "integer", Description: "Speed of each virtual CPU in MHz."},
	ResponseField{Name: "memory", Type: "integer", Description: "Memory of a VM in MiB; absent for a customized offering."},
	ResponseField{Name: "created", Type: "date", Description: "When the offering was created."},
	ResponseField{Name: "storagetype", Type: "string", Description: "shared or local: where root volumes go."},
	ResponseField{Name: "provisioningtype", Type: "string", Description: "thin, sparse or fat allocation of root volumes."},
	ResponseField{Name: "offerha", Type: "boolean", Description: "Whether VMs are restarted elsewhere when their host fails."},
	ResponseField{Name: "limitcpuuse", Type: "boolean", Description: "Whether VMs are capped at their CPU share."},
	ResponseField{Name: "isvolatile", Type: "boolean", Description: "Whether a VM's root volume is rebuilt at every reboot."},
	ResponseField{Name: "hosttags", Type: "string", Description: "Tags a host needs to run VMs of this offering, comma separated."},
	ResponseField{Name: "storagetags", Type: "string", Description: "Tags a storage pool needs to hold root volumes, comma separated."},
	ResponseField{Name: "issystem", Type: "boolean", Description: "Whether the offering is for system VMs; always false here."},
	ResponseField{Name: "defaultuse", Type: "boolean", Description: "Whether it is a default system offering; always false here."},
	ResponseField{Name: "iscustomized", Type: "boolean", Description: "Whether the deploy request chooses CPUs and memory."},
	ResponseField{Name: "iscustomizediops", Type: "boolean", Description: "Whether the deploy request chooses the root volume's IOPS."},
	ResponseField{Name: "dynamicscalingenabled", Type: "boolean", Description: "Whether running VMs may be scaled up."},
	ResponseField{Name: "encryptroot", Type: "boolean", Description: "Whether root volumes are encrypted."},
	ResponseField{Name: "diskofferingstrictness", Type: "boolean", Description: "Whether the root volume must keep the linked disk offering."},
	ResponseField{Name: "diskofferingid", Type: "string", Description: "Disk offering of the root volume, if one is linked."},
	ResponseField{Name: "diskofferingname", Type: "string", Description: "Name of that disk offering."},
	ResponseField{Name: "diskofferingdisplaytext", Type: "string", Description: "Display text of that disk offering."},
	ResponseField{Name: "rootdisksize", Type: "long", Description: "Size of the root volume in GiB, when the offering fixes it."},
	ResponseField{Name: "networkrate", Type: "integer", Description: "Network rate limit of VMs in Mbit/s."},
	ResponseField{Name: "cacheMode", Type: "string", Description: "Disk cache mode of root volumes."},
	ResponseField{Name: "deploymentplanner", Type: "string", Description: "Placement heuristic used for VMs of this offering."},
	ResponseField{Name: "domainid", Type: "string", Description: "IDs of the domains that may use it, comma separated; absent when public."},
	ResponseField{Name: "domain", Type: "string", Description: "Names of those domains, comma separated."},
	ResponseField{Name: "zoneid", Type: "string", Description: "IDs of the zones it is limited to, comma separated; absent for all zones."},
	ResponseField{Name: "zone", Type: "string", Description: "Names of those zones, comma separated."},
	ResponseField{Name: "hasannotations", Type: "boolean", Description: "Whether operators left comments on it."},
	ResponseField{Name: "serviceofferingdetails", Type: "map", Description: "Extra key/value settings, including the CPU and memory bounds of a customized offering."},
)

func init() {
	registerCommands(func(*Server) []*Command {
		return []*Command{
			{
				Name: "createServiceOffering", Description: "Creates a compute offering: the CPUs, memory and placement rules of VMs. Leave cpunumber, cpuspeed and memory out for an offering whose VMs choose their own size.",
				Write: true, Access: AccessRootAdmin, ObjectName: "serviceoffering", Related: "updateServiceOffering,listServiceOfferings",
				Response: serviceOfferingFields, Handler: createServiceOffering,
				Params: []ParamSpec{
					{Name: "name", Type: "string", Required: true, Length: 255, Description: "Name of the offering; unique."},
					{Name: "displaytext", Type: "string", Required: true, Length: 255, Description: "Text shown to users for the offering."},
					{Name: "cpunumber", Type: "integer", Description: "Virtual CPUs of a VM (fixed offerings)."},
					{Name: "cpuspeed", Type: "integer", Description: "Speed of each virtual CPU in MHz."},
					{Name: "memory", Type: "integer", Description: "Memory of a VM in MiB, at least 32 (fixed offerings)."},
					{Name: "customized", Type: "boolean", Description: "True when the deploy request chooses CPUs and memory; the default when cpunumber and memory are absent."},
					{Name: "mincpunumber", Type: "integer", Description: "Fewest CPUs a customized VM may ask for."},
					{Name: "maxcpunumber", Type: "integer", Description: "Most CPUs a customized VM may ask for."},
					{Name: "minmemory", Type: "integer", Description: "Least memory in MiB a customized VM may ask for."},
					{Name: "maxmemory", Type: "integer", Description: "Most memory in MiB a customized VM may ask for."},
					{Name: "offerha", Type: "boolean", Description: "Restart VMs elsewhere when their host fails."},
					{Name: "limitcpuuse", Type: "boolean", Description: "Cap VMs at their CPU share."},
					{Name: "isvolatile", Type: "boolean", Description: "Rebuild a VM's root volume at every reboot."},
					{Name: "dynamicscalingenabled", Type: "boolean", Description: "Allow running VMs to be scaled up; default true."},
					{Name: "hosttags", Type: "string", Description: "Tags a host needs to run VMs of this offering, comma separated."},
					{Name: "tags", Type: "string", Description: "Tags a storage pool needs to hold root volumes, comma separated."},
					{Name: "storagetype", Type: "string", Description: "shared (default) or local: where root volumes go."},
					{Name: "provisioningtype", Type: "string", Description: "thin (default), sparse or fat allocation of root volumes."},
					{Name: "cachemode", Type: "string", Description: "Disk cache mode of root volumes: none, writeback or writethrough."},
					{Name: "rootdisksize", Type: "long", Description: "Size of the root volume in GiB, overriding the template's."},
					{Name: "networkrate", Type: "integer", Description: "Network rate limit of VMs in Mbit/s."},
					{Name: "deploymentplanner", Type: "string", Description: "Placement heuristic: FirstFitPlanner, UserDispersingPlanner or UserConcentratedPodPlanner."},
					{Name: "encryptroot", Type: "boolean", Description: "Encrypt root volumes."},
					{Name: "diskofferingid", Type: "uuid", Related: "listDiskOfferings", Description: "Disk offering of the root volume."},
					{Name: "diskofferingstrictness", Type: "boolean", Description: "Keep root volumes on the linked disk offering."},
					{Name: "issystem", Type: "boolean", Description: "Must be false or absent: system VM offerings are not made here."},
					{Name: "serviceofferingdetails", Type: "map", Description: "Extra key/value settings, as serviceofferingdetails[0].key=value."},
					{Name: "domainid", Type: "list", Related: "listDomains", Description: "Domains that may use the offering, comma separated; public when absent."},
					{Name: "zoneid", Type: "list", Related: "listZones", Description: "Zones the offering is limited to, comma separated; all zones when absent."},
				},
			},
			{
				Name: "updateServiceOffering", Description: "Renames a compute offering, or changes its text, order, tags or the domains and zones it is limited to.",
				Write: true, Access: AccessRootAdmin, ObjectName: "serviceoffering", Response: serviceOfferingFields, Handler: updateServiceOffering,
				Params: []ParamSpec{
					{Name: "id", Type: "uuid", Required: true, Related: "listServiceOfferings", Description: "ID of the offering."},
					{Name: "name", Type: "string", Length: 255, Description: "New name; unique."},
					{Name: "displaytext", Type: "string", Length: 255, Description: "New display text."},
					{Name: "sortkey", Type: "integer", Description: "Position in lists: lower comes first."},
					{Name: "hosttags", Type: "string", Description: "New host tags, comma separated; empty removes them."},
					{Name: "storagetags", Type: "string", Description: "New storage tags, comma separated; empty removes them."},
					{Name: "domainid", Type: "string", Length: 4096, Description: "Domains that may use it, comma separated, or public for everyone."},
					{Name: "zoneid", Type: "string", Description: "Zones it is limited to, comma separated, or all."},
				},
			},
			{
				Name: "deleteServiceOffering", Description: "Deletes a compute offering.",
				Write: true, Access: AccessRootAdmin, Response: successResponse, Handler: deleteServiceOffering,
				Params: []ParamSpec{{Name: "id", Type: "uuid", Required: true, Related: "listServiceOfferings", Description: "ID of the offering."}},
			},
			{
				Name: "listServiceOfferings", Description: "Lists the compute offerings the caller may use, by sort key then oldest first.",
				Access: AccessUser, ObjectName: "serviceoffering", Related: "updateServiceOffering", Response: serviceOfferingFields,
				Handler: listServiceOfferings,
				Params: withPaging(
					ParamSpec{Name: "id", Type: "uuid", Related: "listServiceOfferings", Description: "Only the offering with this ID."},
					ParamSpec{Name: "name", Type: "string", Description: "Only the offering with this name."},
					ParamSpec{Name: "domainid", Type: "uuid", Related: "listDomains", Description: "Only offerings limited to this domain."},
					ParamSpec{Name: "isrecursive", Type: "boolean", Description: "With domainid, also offerings of the domains below it."},
					ParamSpec{Name: "listall", Type: "boolean", Description: "Accepted for compatibility; the list is always what the caller may use."},
					ParamSpec{Name: "zoneid", Type: "uuid", Related: "listZones", Description: "Only offerings usable in this zone."},
					ParamSpec{Name: "issystem", Type: "boolean", Description: "True lists system VM offerings (there are none); root admin only."},
					ParamSpec{Name: "cpunumber", Type: "integer", Description: "Only offerings that can give a VM this many CPUs."},
					ParamSpec{Name: "cpuspeed", Type: "integer", Description: "Only offerings whose CPUs run at least this fast (MHz)."},
					ParamSpec{Name: "memory", Type: "integer", Description: "Only offerings that can give a VM this much memory (MiB)."},
					ParamSpec{Name: "encryptroot", Type: "boolean", Description: "Only offerings that do (or do not) encrypt root volumes."},
				),
			},
		}
	})
}

// usableServiceOffering resolves a uuid parameter to an offering the caller
// may use, with CloudStack's "entity does not exist" error otherwise.
func usableServiceOffering(r *Request, param string) (*fsm.ServiceOffering, *Error) {
	return lookup(r, fsm.TableServiceOfferings, param, func(o *fsm.ServiceOffering) bool { return r.offeringUsable(o.DomainIDs) })
}

func toServiceOfferingResponse(r *Request, o *fsm.ServiceOffering) serviceOfferingResponse {
	out := serviceOfferingResponse{
		ID: o.ID, Name: o.Name, DisplayText: o.DisplayText, Created: FormatTime(o.Created),
		StorageType: o.StorageType, ProvisioningType: o.ProvisioningType, OfferHA: o.OfferHA, LimitCPUUse: o.LimitCPUUse,
		IsVolatile: o.IsVolatile, HostTags: strings.Join(o.HostTags, ","), StorageTags: strings.Join(o.StorageTags, ","),
		IsCustomized: o.Customized, DynamicScalingEnabled: o.DynamicScalingEnabled, EncryptRoot: o.EncryptRoot,
		DiskOfferingStrictness: o.DiskOfferingStrictness, RootDiskSize: o.RootDiskSize, NetworkRate: o.NetworkRate,
		CacheMode: o.CacheMode, DeploymentPlanner: o.DeploymentPlanner, CPUSpeed: o.CPUSpeed,
	}
	if !o.Customized {
		out.CPUNumber, out.Memory = o.CPUNumber, o.Memory
	}
	if o.DiskOfferingID != "" {
		out.DiskOfferingID = o.DiskOfferingID
		if d, _ := fsm.Get[fsm.DiskOffering](r.State(), nil, fsm.TableDiskOfferings, o.DiskOfferingID); d != nil {
			out.DiskOfferingName, out.DiskOfferingDisplayText = d.Name, d.DisplayText
		}
	}
	out.DomainID, out.Domain = catalogScopeNames(r, fsm.TableDomains, o.DomainIDs)
	out.ZoneID, out.Zone = catalogScopeNames(r, catalogZonesTable, o.ZoneIDs)
	details := map[string]string{}
	for k, v := range o.Details {
		details[k] = v
	}
	for k, v := range map[string]int{"mincpunumber": o.MinCPUNumber, "maxcpunumber": o.MaxCPUNumber, "minmemory": o.MinMemory, "maxmemory": o.MaxMemory} {
		if v > 0 {
			details[k] = strconv.Itoa(v)
		}
	}
	if len(details) > 0 {
		out.Details = details
	}
	return out
}

func serviceOfferingBody(r *Request, id string) (any, *Error) {
	o, e := readBack[fsm.ServiceOffering](r, fsm.TableServiceOfferings, id)
	if e != nil {
		return nil, e
	}
	return map[string]any{"serviceoffering": toServiceOfferingResponse(r, o)}, nil
}

// offeringSize reads the size parameters of createServiceOffering: a fixed
// offering needs cpunumber, cpuspeed and memory; a customized one leaves
// CPUs and memory to the deploy request, within optional bounds.
func offeringSize(p Params, o *fsm.ServiceOffering) *Error {
	var e *Error
	if o.Customized, e = p.Bool("customized", !catalogGiven(p, "cpunumber") && !catalogGiven(p, "memory")); e != nil {
		return e
	}
	if o.CPUNumber, e = catalogPositive(p, "cpunumber", 1, 0); e != nil {
		return e
	}
	if o.CPUSpeed, e = catalogPositive(p, "cpuspeed", 1, 0); e != nil {
		return e
	}
	if o.Memory, e = catalogPositive(p, "memory", 32, 0); e != nil {
		return e
	}
	bounds := []struct {
		param string
		min   int
		dst   *int
	}{{"mincpunumber", 1, &o.MinCPUNumber}, {"maxcpunumber", 1, &o.MaxCPUNumber}, {"minmemory", 32, &o.MinMemory}, {"maxmemory", 32, &o.MaxMemory}}
	for _, b := range bounds {
		if *b.dst, e = catalogPositive(p, b.param, b.min, 0); e != nil {
			return e
		}
		if *b.dst > 0 && !o.Customized {
			return ErrParam("parameter %s only applies to a customized offering: leave out cpunumber and memory, or set customized=true", b.param)
		}
	}
	if !o.Customized {
		for _, need := range []string{"cpunumber", "cpuspeed", "memory"} {
			if !catalogGiven(p, need) {
				return ErrMissingParam(p.Cmd, need)
			}
		}
		return nil
	}
	for _, fixed := range []string{"cpunumber", "memory"} {
		if catalogGiven(p, fixed) {
			return ErrParam("parameter %s cannot be set on a customized offering: the deploy request chooses it; bound it with min%s and max%s", fixed, fixed, fixed)
		}
	}
	if o.MaxCPUNumber > 0 && o.MinCPUNumber > o.MaxCPUNumber {
		return ErrParam("mincpunumber %d is more than maxcpunumber %d", o.MinCPUNumber, o.MaxCPUNumber)
	}
	if o.MaxMemory > 0 && o.MinMemory > o.MaxMemory {
		return ErrParam("minmemory %d is more than maxmemory %d", o.MinMemory, o.MaxMemory)
	}
	return nil
}

// Choices of the offering parameters.
var (
	offeringStorageTypes      = []string{fsm.StorageTypeShared, fsm.StorageTypeLocal}
	offeringProvisioningTypes = []string{fsm.ProvisioningThin, fsm.ProvisioningSparse, fsm.ProvisioningFat}
	offeringCacheModes        = []string{"none", "writeback", "writethrough"}
	offeringPlanners          = []string{"FirstFitPlanner", "UserDispersingPlanner", "UserConcentratedPodPlanner"}
)

func createServiceOffering(r *Request) (any, *Error) {
	p := r.Params
	o := &fsm.ServiceOffering{ID: newID(), State: fsm.OfferingStateActive, Created: r.srv.now().UTC()}
	var e *Error
	if o.Name, e = catalogName(p, "name"); e != nil {
		return nil, e
	}
	if o.DisplayText, e = catalogName(p, "displaytext"); e != nil {
		return nil, e
	}
	if sys, e := p.Bool("issystem", false); e != nil {
		return nil, e
	} else if sys {
		return nil, ErrParam("invalid value true for parameter issystem: this cloud makes no system VM offerings")
	}
	if e := offeringSize(p, o); e != nil {
		return nil, e
	}
	for _, b := range []struct {
		param string
		def   bool
		dst   *bool
	}{
		{"offerha", false, &o.OfferHA}, {"limitcpuuse", false, &o.LimitCPUUse}, {"isvolatile", false, &o.IsVolatile},
		{"dynamicscalingenabled", true, &o.DynamicScalingEnabled}, {"encryptroot", false, &o.EncryptRoot},
		{"diskofferingstrictness", false, &o.DiskOfferingStrictness},
	} {
		if *b.dst, e = p.Bool(b.param, b.def); e != nil {
			return nil, e
		}
	}
	o.HostTags, o.StorageTags = listParam(p, "hosttags"), listParam(p, "tags")
	if o.StorageType, e = catalogChoice(p, "storagetype", fsm.StorageTypeShared, offeringStorageTypes...); e != nil {
		return nil, e
	}
	if o.ProvisioningType, e = catalogChoice(p, "provisioningtype", fsm.ProvisioningThin, offeringProvisioningTypes...); e != nil {
		return nil, e
	}
	if o.CacheMode, e = catalogChoice(p, "cachemode", "", offeringCacheModes...); e != nil {
		return nil, e
	}
	if o.DeploymentPlanner, e = catalogChoice(p, "deploymentplanner", "", offeringPlanners...); e != nil {
		return nil, e
	}
	rootSize, e := p.Int64("rootdisksize", 0)
	if e != nil {
		return nil, e
	}
	if catalogGiven(p, "rootdisksize") && (rootSize < 1 || rootSize > catalogMaxDiskGiB) {
		return nil, ErrParam("invalid value %d for parameter rootdisksize: give a size in GiB between 1 and %d", rootSize, catalogMaxDiskGiB)
	}
	o.RootDiskSize = rootSize
	if o.NetworkRate, e = catalogPositive(p, "networkrate", 1, 0); e != nil {
		return nil, e
	}
	if catalogGiven(p, "diskofferingid") {
		d, e := lookup[fsm.DiskOffering](r, fsm.TableDiskOfferings, "diskofferingid", nil)
		if e != nil {
			return nil, e
		}
		o.DiskOfferingID = d.ID
	}
	o.Details = detailsParam(p, "serviceofferingdetails")
	if o.DomainIDs, o.ZoneIDs, e = catalogScopeNew(r); e != nil {
		return nil, e
	}
	ops := append([]fsm.TxnOp{fsm.Create(fsm.TableServiceOfferings, o),
		r.event("SERVICE.OFFERING.CREATE", resServiceOffering, o.ID, "created service offering %s", o.Name)},
		catalogScopeChecks(o.DomainIDs, o.ZoneIDs)...)
	if e := r.commit(ops...); e != nil {
		return nil, e
	}
	return serviceOfferingBody(r, o.ID)
}

func updateServiceOffering(r *Request) (any, *Error) {
	p := r.Params
	cur, e := lookup[fsm.ServiceOffering](r, fsm.TableServiceOfferings, "id", nil)
	if e != nil {
		return nil, e
	}
	o := cur.Copy()
	if e := catalogLabels(p, &o.Name, &o.DisplayText, &o.SortKey); e != nil {
		return nil, e
	}
	if p.Has("hosttags") {
		o.HostTags = listParam(p, "hosttags")
	}
	if p.Has("storagetags") {
		o.StorageTags = listParam(p, "storagetags")
	}
	if e := catalogScopeUpdate(r, &o.DomainIDs, &o.ZoneIDs); e != nil {
		return nil, e
	}
	ops := append([]fsm.TxnOp{fsm.Update(fsm.TableServiceOfferings, o),
		r.event("SERVICE.OFFERING.EDIT", resServiceOffering, o.ID, "updated service offering %s", o.Name)},
		catalogScopeChecks(o.DomainIDs, o.ZoneIDs)...)
	if e := r.commit(ops...); e != nil {
		return nil, e
	}
	return serviceOfferingBody(r, o.ID)
}

func deleteServiceOffering(r *Request) (any, *Error) {
	o, e := lookup[fsm.ServiceOffering](r, fsm.TableServiceOfferings, "id", nil)
	if e != nil {
		return nil, e
	}
	ops := append(tagDeleteOps(r, o.ID), fsm.Delete(fsm.TableServiceOfferings, o.ID),
		r.event("SERVICE.OFFERING.DELETE", resServiceOffering, o.ID, "deleted service offering %s", o.Name))
	if e := r.commit(ops...); e != nil {
		return nil, e
	}
	return successBody(), nil
}

// offeringFits reports whether an offering can give a VM n of something
// (CPUs, memory): a fixed offering exactly n, a customized one n within
// its bounds (0 = unbounded).
func offeringFits(customized bool, fixed, lo, hi, n int) bool {
	if !customized {
		return fixed == n
	}
	return (lo == 0 || n >= lo) && (hi == 0 || n <= hi)
}

func listServiceOfferings(r *Request) (any, *Error) {
	p := r.Params
	sys, e := p.Bool("issystem", false)
	if e != nil {
		return nil, e
	}
	if sys && !r.isRootAdmin() {
		return nil, ErrParam("only the root admin may list system VM offerings")
	}
	cpus, e := p.Int("cpunumber", 0)
	if e != nil {
		return nil, e
	}
	speed, e := p.Int("cpuspeed", 0)
	if e != nil {
		return nil, e
	}
	mem, e := p.Int("memory", 0)
	if e != nil {
		return nil, e
	}
	encrypt, e := p.Bool("encryptroot", false)
	if e != nil {
		return nil, e
	}
	scope, e := offeringScopeFilter(r)
	if e != nil {
		return nil, e
	}
	var rows []*fsm.ServiceOffering
	if catalogGiven(p, "id") {
		o, e := usableServiceOffering(r, "id")
		if e != nil {
			return nil, e
		}
		rows = []*fsm.ServiceOffering{o}
	} else {
		var err error
		if rows, err = fsm.List[fsm.ServiceOffering](r.State(), nil, fsm.TableServiceOfferings, "create"); err != nil {
			return nil, ErrInternal("service offering scan failed")
		}
	}
	catalogSortByKey(rows, func(o *fsm.ServiceOffering) int { return o.SortKey })
	name, kw := p.String("name"), p.String("keyword")
	out := []serviceOfferingResponse{}
	for _, o := range rows {
		switch {
		case sys, !r.offeringUsable(o.DomainIDs), !scope(o.DomainIDs, o.ZoneIDs),
			name != "" && !strings.EqualFold(o.Name, name), !catalogMatch(kw, o.Name, o.DisplayText),
			cpus > 0 && !offeringFits(o.Customized, o.CPUNumber, o.MinCPUNumber, o.MaxCPUNumber, cpus),
			mem > 0 && !offeringFits(o.Customized, o.Memory, o.MinMemory, o.MaxMemory, mem),
			speed > 0 && o.CPUSpeed > 0 && o.CPUSpeed < speed,
			catalogGiven(p, "encryptroot") && encrypt != o.EncryptRoot:
			continue
		}
		out = append(out, toServiceOfferingResponse(r, o))
	}
	return catalogPage(r, "serviceoffering", out)
}
