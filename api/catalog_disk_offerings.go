package api

import (
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
)

// Disk offerings: the size and storage rules of data volumes. Like service
// offerings they are the root admin's, may be limited to domains and zones,
// and have unique names here. Users do not see offerings hidden with
// displayoffering=false.

// catalogMaxDiskGiB caps disk sizes given in GiB (1 PiB), so sizes in bytes
// never overflow.
const catalogMaxDiskGiB = 1 << 20

const catalogGiB = 1 << 30

type diskOfferingResponse struct {
	ID                 string            `json:"id"`
	Name               string            `json:"name"`
	DisplayText        string            `json:"displaytext"`
	DiskSize           int64             `json:"disksize"` // GiB
	IsCustomized       bool              `json:"iscustomized"`
	IsCustomizedIOPS   bool              `json:"iscustomizediops"`
	MinIOPS            int64             `json:"miniops,omitempty"`
	MaxIOPS            int64             `json:"maxiops,omitempty"`
	Tags               string            `json:"tags,omitempty"`
	StorageType        string            `json:"storagetype"`
	ProvisioningType   string            `json:"provisioningtype"`
	CacheMode          string            `json:"cacheMode,omitempty"`
	Encrypt            bool              `json:"encrypt"`
	DisplayOffering    bool              `json:"displayoffering"`
	DiskSizeStrictness bool              `json:"disksizestrictness"`
	DomainID           string            `json:"domainid,omitempty"`
	Domain             string            `json:"domain,omitempty"`
	ZoneID             string            `json:"zoneid,omitempty"`
	Zone               string            `json:"zone,omitempty"`
	Created            string            `json:"created"`
	HasAnnotations     bool              `json:"hasannotations"`
	Details            map[string]string `json:"details,omitempty"`
}

var diskOfferingFields = withJobFields(
	ResponseField{Name: "id", Type: "string", Description: "Offering ID."},
	ResponseField{Name: "name", Type: "string", Description: "Offering name."},
	ResponseField{Name: "displaytext", Type: "string", Description: "Text shown to users for the offering."},
	ResponseField{Name: "disksize", Type: "long", Description: "Size of the volumes in GiB; 0 for a customized offering."},
	ResponseField{Name: "iscustomized", Type: "boolean", Description: "Whether the request chooses the volume's size."},
	ResponseField{Name: "iscustomizediops", Type: "boolean", Description: "Whether the request chooses the volume's IOPS."},
	ResponseField{Name: "miniops", Type: "long", Description: "Least IOPS of the volumes."},
	ResponseField{Name: "maxiops", Type: "long", Description: "Most IOPS of the volumes."},
	ResponseField{Name: "tags", Type: "string", Description: "Tags a storage pool needs to hold the volumes, comma separated."},
	ResponseField{Name: "storagetype", Type: "string", Description: "shared or local: where the volumes go."},
	ResponseField{Name: "provisioningtype", Type: "string", Description: "thin, sparse or fat allocation."},
	ResponseField{Name: "cacheMode", Type: "string", Description: "Disk cache mode of the volumes."},
	ResponseField{Name: "encrypt", Type: "boolean", Description: "Whether the volumes are encrypted."},
	ResponseField{Name: "displayoffering", Type: "boolean", Description: "Whether users see the offering."},
	ResponseField{Name: "disksizestrictness", Type: "boolean", Description: "Whether volumes of this offering may not be resized."},
	ResponseField{Name: "domainid", Type: "string", Description: "IDs of the domains that may use it, comma separated; absent when public."},
	ResponseField{Name: "domain", Type: "string", Description: "Names of those domains, comma separated."},
	ResponseField{Name: "zoneid", Type: "string", Description: "IDs of the zones it is limited to, comma separated; absent for all zones."},
	ResponseField{Name: "zone", Type: "string", Description: "Names of those zones, comma separated."},
	ResponseField{Name: "created", Type: "date", Description: "When the offering was created."},
	ResponseField{Name: "hasannotations", Type: "boolean", Description: "Whether operators left comments on it."},
	ResponseField{Name: "details", Type: "map", Description: "Extra key/value settings."},
)

func init() {
	registerCommands(func(*Server) []*Command {
		return []*Command{
			{
				Name: "createDiskOffering", Description: "Creates a disk offering for data volumes: a fixed size, or a size the request chooses when customized.",
				Write: true, Access: AccessRootAdmin, ObjectName: "diskoffering", Response: diskOfferingFields, Handler: createDiskOffering,
				Params: []ParamSpec{
					{Name: "name", Type: "string", Required: true, Length: 255, Description: "Name of the offering; unique."},
					{Name: "displaytext", Type: "string", Required: true, Length: 4096, Description: "Text shown to users for the offering."},
					{Name: "disksize", Type: "long", Description: "Size of the volumes in GiB; needed unless customized."},
					{Name: "customized", Type: "boolean", Description: "True when the request chooses the size."},
					{Name: "customizediops", Type: "boolean", Description: "True when the request chooses the IOPS."},
					{Name: "miniops", Type: "long", Description: "Least IOPS of the volumes."},
					{Name: "maxiops", Type: "long", Description: "Most IOPS of the volumes."},
					{Name: "tags", Type: "string", Length: 4096, Description: "Tags a storage pool needs to hold the volumes, comma separated."},
					{Name: "storagetype", Type: "string", Description: "shared (default) or local."},
					{Name: "provisioningtype", Type: "string", Description: "thin (default), sparse or fat."},
					{Name: "cachemode", Type: "string", Description: "Disk cache mode: none, writeback or writethrough."},
					{Name: "encrypt", Type: "boolean", Description: "Encrypt the volumes."},
					{Name: "displayoffering", Type: "boolean", Description: "Show the offering to users; default true."},
					{Name: "disksizestrictness", Type: "boolean", Description: "Forbid resizing volumes of this offering."},
					{Name: "details", Type: "map", Description: "Extra key/value settings, as details[0].key=value."},
					{Name: "domainid", Type: "list", Related: "listDomains", Description: "Domains that may use the offering, comma separated; public when absent."},
					{Name: "zoneid", Type: "list", Related: "listZones", Description: "Zones the offering is limited to, comma separated; all zones when absent."},
				},
			},
			{
				Name: "updateDiskOffering", Description: "Renames a disk offering, or changes its text, order, tags, visibility, cache mode or the domains and zones it is limited to.",
				Write: true, Access: AccessRootAdmin, ObjectName: "diskoffering", Related: "createDiskOffering,listDiskOfferings",
				Response: diskOfferingFields, Handler: updateDiskOffering,
				Params: []ParamSpec{
					{Name: "id", Type: "uuid", Required: true, Related: "listDiskOfferings", Description: "ID of the offering."},
					{Name: "name", Type: "string", Length: 255, Description: "New name; unique."},
					{Name: "displaytext", Type: "string", Length: 4096, Description: "New display text."},
					{Name: "sortkey", Type: "integer", Description: "Position in lists: lower comes first."},
					{Name: "tags", Type: "string", Description: "New storage tags, comma separated; empty removes them."},
					{Name: "displayoffering", Type: "boolean", Description: "Show the offering to users or hide it."},
					{Name: "cachemode", Type: "string", Description: "Disk cache mode: none, writeback or writethrough."},
					{Name: "domainid", Type: "string", Length: 4096, Description: "Domains that may use it, comma separated, or public for everyone."},
					{Name: "zoneid", Type: "string", Description: "Zones it is limited to, comma separated, or all."},
				},
			},
			{
				Name: "deleteDiskOffering", Description: "Deletes a disk offering that no compute offering uses.",
				Write: true, Access: AccessRootAdmin, Response: successResponse, Handler: deleteDiskOffering,
				Params: []ParamSpec{{Name: "id", Type: "uuid", Required: true, Related: "listDiskOfferings", Description: "ID of the offering."}},
			},
			{
				Name: "listDiskOfferings", Description: "Lists the disk offerings the caller may use, by sort key then oldest first.",
				Access: AccessUser, ObjectName: "diskoffering", Related: "createDiskOffering", Response: diskOfferingFields,
				Handler: listDiskOfferings,
				Params: withPaging(
					ParamSpec{Name: "id", Type: "uuid", Related: "listDiskOfferings", Description: "Only the offering with this ID."},
					ParamSpec{Name: "name", Type: "string", Description: "Only the offering with this name."},
					ParamSpec{Name: "domainid", Type: "uuid", Related: "listDomains", Description: "Only offerings limited to this domain."},
					ParamSpec{Name: "isrecursive", Type: "boolean", Description: "With domainid, also offerings of the domains below it."},
					ParamSpec{Name: "listall", Type: "boolean", Description: "Accepted for compatibility; the list is always what the caller may use."},
					ParamSpec{Name: "zoneid", Type: "uuid", Related: "listZones", Description: "Only offerings usable in this zone."},
					ParamSpec{Name: "encrypt", Type: "boolean", Description: "Only offerings that do (or do not) encrypt volumes."},
				),
			},
		}
	})
}

// usableDiskOffering resolves a uuid parameter to a disk offering the
// caller may use, with CloudStack's "entity does not exist" error
// otherwise.
func usableDiskOffering(r *Request, param string) (*fsm.DiskOffering, *Error) {
	return lookup(r, fsm.TableDiskOfferings, param, func(o *fsm.DiskOffering) bool { return r.diskOfferingVisible(o) })
}

func (r *Request) diskOfferingVisible(o *fsm.DiskOffering) bool {
	return r.offeringUsable(o.DomainIDs) && (o.DisplayOffering || r.isRootAdmin())
}

func toDiskOfferingResponse(r *Request, o *fsm.DiskOffering) diskOfferingResponse {
	out := diskOfferingResponse{
		ID: o.ID, Name: o.Name, DisplayText: o.DisplayText, DiskSize: o.DiskSize / catalogGiB, IsCustomized: o.Customized,
		IsCustomizedIOPS: o.CustomizedIOPS, MinIOPS: o.MinIOPS, MaxIOPS: o.MaxIOPS, Tags: strings.Join(o.Tags, ","),
		StorageType: o.StorageType, ProvisioningType: o.ProvisioningType, CacheMode: o.CacheMode, Encrypt: o.Encrypt,
		DisplayOffering: o.DisplayOffering, DiskSizeStrictness: o.DiskSizeStrictness, Created: FormatTime(o.Created),
		Details: o.Details,
	}
	out.DomainID, out.Domain = catalogScopeNames(r, fsm.TableDomains, o.DomainIDs)
	out.ZoneID, out.Zone = catalogScopeNames(r, catalogZonesTable, o.ZoneIDs)
	return out
}

func diskOfferingBody(r *Request, id string) (any, *Error) {
	o, e := readBack[fsm.DiskOffering](r, fsm.TableDiskOfferings, id)
	if e != nil {
		return nil, e
	}
	return map[string]any{"diskoffering": toDiskOfferingResponse(r, o)}, nil
}

// diskOfferingSize reads disksize and customized: a fixed offering needs a
// size, a customized one must not have one.
func diskOfferingSize(p Params, o *fsm.DiskOffering) *Error {
	var e *Error
	if o.Customized, e = p.Bool("customized", false); e != nil {
		return e
	}
	size, e := p.Int64("disksize", 0)
	if e != nil {
		return e
	}
	switch {
	case o.Customized && catalogGiven(p, "disksize"):
		return ErrParam("parameter disksize cannot be set on a customized disk offering: the request chooses the size")
	case o.Customized:
		return nil
	case !catalogGiven(p, "disksize"):
		return ErrMissingParam(p.Cmd, "disksize")
	case size < 1 || size > catalogMaxDiskGiB:
		return ErrParam("invalid value %d for parameter disksize: give a size in GiB between 1 and %d", size, catalogMaxDiskGiB)
	}
	o.DiskSize = size * catalogGiB
	return nil
}

// diskOfferingIOPS reads the IOPS parameters of a new disk offering.
func diskOfferingIOPS(p Params, o *fsm.DiskOffering) *Error {
	var e *Error
	if o.CustomizedIOPS, e = p.Bool("customizediops", false); e != nil {
		return e
	}
	if o.MinIOPS, e = p.Int64("miniops", 0); e != nil {
		return e
	}
	if o.MaxIOPS, e = p.Int64("maxiops", 0); e != nil {
		return e
	}
	switch {
	case o.MinIOPS < 0:
		return ErrParam("invalid value %d for parameter miniops: it must be 0 or more", o.MinIOPS)
	case o.MaxIOPS < 0:
		return ErrParam("invalid value %d for parameter maxiops: it must be 0 or more", o.MaxIOPS)
	case o.MaxIOPS > 0 && o.MinIOPS > o.MaxIOPS:
		return ErrParam("miniops %d is more than maxiops %d", o.MinIOPS, o.MaxIOPS)
	}
	return nil
}

func createDiskOffering(r *Request) (any, *Error) {
	p := r.Params
	o := &fsm.DiskOffering{ID: newID(), State: fsm.OfferingStateActive, Created: r.srv.now().UTC()}
	var e *Error
	if o.Name, e = catalogName(p, "name"); e != nil {
		return nil, e
	}
	if o.DisplayText, e = catalogName(p, "displaytext"); e != nil {
		return nil, e
	}
	if e := diskOfferingSize(p, o); e != nil {
		return nil, e
	}
	if e := diskOfferingIOPS(p, o); e != nil {
		return nil, e
	}
	o.Tags = listParam(p, "tags")
	if o.StorageType, e = catalogChoice(p, "storagetype", fsm.StorageTypeShared, offeringStorageTypes...); e != nil {
		return nil, e
	}
	if o.ProvisioningType, e = catalogChoice(p, "provisioningtype", fsm.ProvisioningThin, offeringProvisioningTypes...); e != nil {
		return nil, e
	}
	if o.CacheMode, e = catalogChoice(p, "cachemode", "", offeringCacheModes...); e != nil {
		return nil, e
	}
	if o.Encrypt, e = p.Bool("encrypt", false); e != nil {
		return nil, e
	}
	if o.DisplayOffering, e = p.Bool("displayoffering", true); e != nil {
		return nil, e
	}
	if o.DiskSizeStrictness, e = p.Bool("disksizestrictness", false); e != nil {
		return nil, e
	}
	o.Details = detailsParam(p, "details")
	if o.DomainIDs, o.ZoneIDs, e = catalogScopeNew(r); e != nil {
		return nil, e
	}
	ops := append([]fsm.TxnOp{fsm.Create(fsm.TableDiskOfferings, o),
		r.event("DISK.OFFERING.CREATE", resDiskOffering, o.ID, "created disk offering %s", o.Name)},
		catalogScopeChecks(o.DomainIDs, o.ZoneIDs)...)
	if e := r.commit(ops...); e != nil {
		return nil, e
	}
	return diskOfferingBody(r, o.ID)
}

func updateDiskOffering(r *Request) (any, *Error) {
	p := r.Params
	cur, e := lookup[fsm.DiskOffering](r, fsm.TableDiskOfferings, "id", nil)
	if e != nil {
		return nil, e
	}
	o := cur.Copy()
	if e := catalogLabels(p, &o.Name, &o.DisplayText, &o.SortKey); e != nil {
		return nil, e
	}
	if p.Has("tags") {
		o.Tags = listParam(p, "tags")
	}
	if o.DisplayOffering, e = p.Bool("displayoffering", o.DisplayOffering); e != nil {
		return nil, e
	}
	if o.CacheMode, e = catalogChoice(p, "cachemode", o.CacheMode, offeringCacheModes...); e != nil {
		return nil, e
	}
	if e := catalogScopeUpdate(r, &o.DomainIDs, &o.ZoneIDs); e != nil {
		return nil, e
	}
	ops := append([]fsm.TxnOp{fsm.Update(fsm.TableDiskOfferings, o),
		r.event("DISK.OFFERING.EDIT", resDiskOffering, o.ID, "updated disk offering %s", o.Name)},
		catalogScopeChecks(o.DomainIDs, o.ZoneIDs)...)
	if e := r.commit(ops...); e != nil {
		return nil, e
	}
	return diskOfferingBody(r, o.ID)
}

func deleteDiskOffering(r *Request) (any, *Error) {
	o, e := lookup[fsm.DiskOffering](r, fsm.TableDiskOfferings, "id", nil)
	if e != nil {
		return nil, e
	}
	ops := append(tagDeleteOps(r, o.ID), fsm.Delete(fsm.TableDiskOfferings, o.ID),
		r.event("DISK.OFFERING.DELETE", resDiskOffering, o.ID, "deleted disk offering %s", o.Name))
	if e := r.commit(ops...); e != nil {
		return nil, e
	}
	return successBody(), nil
}

func listDiskOfferings(r *Request) (any, *Error) {
	p := r.Params
	encrypt, e := p.Bool("encrypt", false)
	if e != nil {
		return nil, e
	}
	scope, e := offeringScopeFilter(r)
	if e != nil {
		return nil, e
	}
	var rows []*fsm.DiskOffering
	if catalogGiven(p, "id") {
		o, e := usableDiskOffering(r, "id")
		if e != nil {
			return nil, e
		}
		rows = []*fsm.DiskOffering{o}
	} else {
		var err error
		if rows, err = fsm.List[fsm.DiskOffering](r.State(), nil, fsm.TableDiskOfferings, "create"); err != nil {
			return nil, ErrInternal("disk offering scan failed")
		}
	}
	catalogSortByKey(rows, func(o *fsm.DiskOffering) int { return o.SortKey })
	name, kw := p.String("name"), p.String("keyword")
	out := []diskOfferingResponse{}
	for _, o := range rows {
		if !r.diskOfferingVisible(o) || !scope(o.DomainIDs, o.ZoneIDs) || (name != "" && !strings.EqualFold(o.Name, name)) ||
			!catalogMatch(kw, o.Name, o.DisplayText) || (catalogGiven(p, "encrypt") && encrypt != o.Encrypt) {
			continue
		}
		out = append(out, toDiskOfferingResponse(r, o))
	}
	return catalogPage(r, "diskoffering", out)
}
