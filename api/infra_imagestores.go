package api

import (
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
)

// Image stores: secondary storage for templates, ISOs and snapshots. Only
// NFS stores of one zone are supported.

type imageStoreResponse struct {
	ID             string `json:"id"`
	Name           string `json:"name"`
	URL            string `json:"url"`
	Protocol       string `json:"protocol"`
	ProviderName   string `json:"providername"`
	ZoneID         string `json:"zoneid"`
	ZoneName       string `json:"zonename"`
	Scope          string `json:"scope"`
	ReadOnly       bool   `json:"readonly"`
	DiskSizeTotal  int64  `json:"disksizetotal,omitempty"`
	DiskSizeUsed   int64  `json:"disksizeused,omitempty"`
	HasAnnotations bool   `json:"hasannotations"`
}

var imageStoreFields = withJobFields(
	ResponseField{Name: "id", Type: "string", Description: "Image store ID."},
	ResponseField{Name: "name", Type: "string", Description: "Image store name."},
	ResponseField{Name: "url", Type: "string", Description: "Where the store is, e.g. nfs://server/export."},
	ResponseField{Name: "protocol", Type: "string", Description: "Access protocol: nfs."},
	ResponseField{Name: "providername", Type: "string", Description: "Store provider: NFS."},
	ResponseField{Name: "zoneid", Type: "string", Description: "ID of the store's zone."},
	ResponseField{Name: "zonename", Type: "string", Description: "Name of the store's zone."},
	ResponseField{Name: "scope", Type: "scopetype", Description: "ZONE: the store serves one zone."},
	ResponseField{Name: "readonly", Type: "boolean", Description: "Whether new templates and snapshots are kept off the store."},
	ResponseField{Name: "disksizetotal", Type: "long", Description: "Size of the store in bytes, once measured."},
	ResponseField{Name: "disksizeused", Type: "long", Description: "Bytes in use, once measured."},
	ResponseField{Name: "hasannotations", Type: "boolean", Description: "Whether operators left comments on the store."},
)

func init() {
	registerCommands(func(*Server) []*Command {
		return []*Command{
			{
				Name: "addImageStore", Description: "Adds an NFS secondary storage to a zone, for templates, ISOs and snapshots.",
				Write: true, Access: AccessRootAdmin, ObjectName: "imagestore", Related: "listImageStores", Response: imageStoreFields,
				Params: []ParamSpec{
					{Name: "provider", Type: "string", Required: true, Description: "Store provider: NFS."},
					{Name: "url", Type: "string", Description: "Where the store is: nfs://<server>/<export> (needed for NFS)."},
					{Name: "zoneid", Type: "uuid", Description: "Zone the store serves (needed for NFS).", Related: "listZones"},
					{Name: "name", Type: "string", Description: "Name of the store, unique in its zone; the url when absent."},
					{Name: "details", Type: "map", Description: "Extra key/value details of the store."},
				},
				Handler: addImageStore,
			},
			{
				Name: "deleteImageStore", Description: "Deletes an image store that holds nothing any more.",
				Write: true, Access: AccessRootAdmin, Response: successResponse,
				Params:  []ParamSpec{{Name: "id", Type: "uuid", Required: true, Description: "ID of the store.", Related: "listImageStores"}},
				Handler: deleteImageStore,
			},
			{
				Name: "listImageStores", Description: "Lists image stores, oldest first.", Access: AccessRootAdmin,
				ObjectName: "imagestore", Related: "addImageStore", Response: imageStoreFields,
				Params: withPaging(
					ParamSpec{Name: "id", Type: "uuid", Description: "Only the store with this ID.", Related: "listImageStores"},
					ParamSpec{Name: "name", Type: "string", Description: "Only stores with this name."},
					ParamSpec{Name: "zoneid", Type: "uuid", Description: "Only stores of this zone.", Related: "listZones"},
					ParamSpec{Name: "provider", Type: "string", Description: "Only stores of this provider."},
					ParamSpec{Name: "protocol", Type: "string", Description: "Only stores with this protocol."},
					ParamSpec{Name: "readonly", Type: "boolean", Description: "Only read-only stores (true) or only the others (false)."},
				),
				Handler: listImageStores,
			},
		}
	})
}

func toImageStoreResponse(n *infraNames, s *fsm.ImageStore) imageStoreResponse {
	return imageStoreResponse{
		ID: s.ID, Name: s.Name, URL: s.URL, Protocol: s.Protocol, ProviderName: s.Provider, ZoneID: s.ZoneID,
		ZoneName: n.zone(s.ZoneID), Scope: s.Scope, ReadOnly: s.ReadOnly, DiskSizeTotal: s.CapacityBytes, DiskSizeUsed: s.UsedBytes,
	}
}

func addImageStore(r *Request) (any, *Error) {
	p := r.Params
	if v := strings.TrimSpace(p.String("provider")); !strings.EqualFold(v, "NFS") {
		return nil, ErrParam("invalid value %q for parameter provider: the only image store provider is NFS", v)
	}
	if !given(p, "zoneid") {
		return nil, ErrParam("an NFS image store serves one zone: parameter zoneid is needed")
	}
	zone, e := lookupZone(r, "zoneid")
	if e != nil {
		return nil, e
	}
	if !given(p, "url") {
		return nil, ErrParam("an NFS image store needs parameter url, as nfs://<server>/<export>")
	}
	loc, e := parsePoolURL(p.String("url"), "nfs://<server>/<export>")
	if e == nil && loc.typ != fsm.PoolTypeNFS {
		e = ErrParam("invalid value %q for parameter url: an NFS image store is given as nfs://<server>/<export>", p.String("url"))
	}
	if e != nil {
		return nil, e
	}
	name := strings.TrimSpace(p.String("name"))
	if name == "" {
		name = loc.url()
	}
	stores, err := fsm.List[fsm.ImageStore](r.State(), nil, fsm.TableImageStores, "zone", zone.ID)
	if err != nil {
		return nil, ErrInternal("image store scan failed")
	}
	for _, o := range stores {
		if o.URL == loc.url() {
			return nil, ErrParam("%s is already image store %s (%s) in this zone", o.URL, o.Name, o.ID)
		}
	}
	s := &fsm.ImageStore{ID: newID(), Name: name, ZoneID: zone.ID, URL: loc.url(), Protocol: "nfs", Provider: "NFS",
		Scope: fsm.ScopeZone, Details: detailsParam(p, "details"), Created: r.srv.now().UTC()}
	if e := r.commit(fsm.Create(fsm.TableImageStores, s),
		r.event("IMAGE.STORE.CREATE", resImageStore, s.ID, "added image store %s (%s) to zone %s", s.Name, s.URL, zone.Name)); e != nil {
		return nil, e
	}
	stored, err := fsm.Get[fsm.ImageStore](r.State(), nil, fsm.TableImageStores, s.ID)
	if err != nil || stored == nil {
		return nil, ErrInternal("image store " + s.ID + " was committed but cannot be read back")
	}
	return map[string]any{"imagestore": toImageStoreResponse(newInfraNames(r.State()), stored)}, nil
}

func deleteImageStore(r *Request) (any, *Error) {
	s, e := lookupImageStore(r, "id")
	if e != nil {
		return nil, e
	}
	if e := r.commit(fsm.Delete(fsm.TableImageStores, s.ID),
		r.event("IMAGE.STORE.DELETE", resImageStore, s.ID, "deleted image store %s", s.Name)); e != nil {
		return nil, e
	}
	return successBody(), nil
}

func listImageStores(r *Request) (any, *Error) {
	p := r.Params
	var stores []*fsm.ImageStore
	var e *Error
	if given(p, "id") {
		s, e := lookupImageStore(r, "id")
		if e != nil {
			return nil, e
		}
		stores = []*fsm.ImageStore{s}
	} else if stores, e = listRows[fsm.ImageStore](r, fsm.TableImageStores); e != nil {
		return nil, e
	}
	if e := checkFilterIDs(r); e != nil {
		return nil, e
	}
	readOnly, e := p.Bool("readonly", false)
	if e != nil {
		return nil, e
	}
	zoneID, name, kw := strings.ToLower(p.String("zoneid")), p.String("name"), strings.ToLower(p.String("keyword"))
	n := newInfraNames(r.State())
	var out []imageStoreResponse
	for _, s := range stores {
		if (zoneID != "" && s.ZoneID != zoneID) || (name != "" && !strings.EqualFold(s.Name, name)) ||
			!eqFold(p.String("provider"), s.Provider) || !eqFold(p.String("protocol"), s.Protocol) ||
			(given(p, "readonly") && s.ReadOnly != readOnly) || !keywordMatch(kw, s.Name, s.URL) {
			continue
		}
		out = append(out, toImageStoreResponse(n, s))
	}
	return pagedList(r, "imagestore", out)
}
