package api

import (
	"net"
	"strings"

	"github.com/google/uuid"

	"github.com/stratus-cloud/stratus/fsm"
)

// zoneResponse is the zone object of the API.
type zoneResponse struct {
	ID                    string            `json:"id"`
	Name                  string            `json:"name"`
	Description           string            `json:"description,omitempty"`
	DisplayText           string            `json:"displaytext,omitempty"`
	NetworkType           string            `json:"networktype"`
	AllocationState       string            `json:"allocationstate"`
	DNS1                  string            `json:"dns1,omitempty"`
	DNS2                  string            `json:"dns2,omitempty"`
	InternalDNS1          string            `json:"internaldns1,omitempty"`
	InternalDNS2          string            `json:"internaldns2,omitempty"`
	IP6DNS1               string            `json:"ip6dns1,omitempty"`
	IP6DNS2               string            `json:"ip6dns2,omitempty"`
	GuestCIDRAddress      string            `json:"guestcidraddress,omitempty"`
	Domain                string            `json:"domain,omitempty"`
	DomainID              string            `json:"domainid,omitempty"`
	DomainName            string            `json:"domainname,omitempty"`
	LocalStorageEnabled   bool              `json:"localstorageenabled"`
	SecurityGroupsEnabled bool              `json:"securitygroupsenabled"`
	ZoneToken             string            `json:"zonetoken"`
	DHCPProvider          string            `json:"dhcpprovider"`
	Type                  string            `json:"type"`
	HasAnnotations        bool              `json:"hasannotations"`
	ResourceDetails       map[string]string `json:"resourcedetails,omitempty"`
}

func toZoneResponse(st *fsm.Store, z *fsm.Zone) zoneResponse {
	r := zoneResponse{
		ID: z.ID, Name: z.Name, Description: z.Description, DisplayText: z.Description,
		NetworkType: z.NetworkType, AllocationState: z.AllocationState,
		DNS1: z.DNS1, DNS2: z.DNS2, InternalDNS1: z.InternalDNS1, InternalDNS2: z.InternalDNS2,
		IP6DNS1: z.IP6DNS1, IP6DNS2: z.IP6DNS2, GuestCIDRAddress: z.GuestCIDR, Domain: z.Domain,
		DomainID: z.DomainID, LocalStorageEnabled: z.LocalStorage, SecurityGroupsEnabled: z.SecurityGroups,
		ZoneToken: z.ZoneToken, DHCPProvider: "VirtualRouter", Type: "Core", ResourceDetails: z.Details,
	}
	if z.DomainID != "" {
		if d, _ := st.Domain(nil, z.DomainID); d != nil {
			r.DomainName = d.Name
		}
	}
	return r
}

var zoneFields = withJobFields(
	ResponseField{Name: "id", Type: "string", Description: "Zone ID."},
	ResponseField{Name: "name", Type: "string", Description: "Zone name."},
	ResponseField{Name: "description", Type: "string", Description: "Free-form description of the zone."},
	ResponseField{Name: "displaytext", Type: "string", Description: "Text shown for the zone; same as the description."},
	ResponseField{Name: "networktype", Type: "string", Description: "Basic or Advanced networking."},
	ResponseField{Name: "allocationstate", Type: "string", Description: "Enabled when new resources may be placed in the zone, else Disabled."},
	ResponseField{Name: "dns1", Type: "string", Description: "First public DNS server for guests."},
	ResponseField{Name: "dns2", Type: "string", Description: "Second public DNS server for guests."},
	ResponseField{Name: "internaldns1", Type: "string", Description: "First DNS server for system VMs and hosts."},
	ResponseField{Name: "internaldns2", Type: "string", Description: "Second DNS server for system VMs and hosts."},
	ResponseField{Name: "ip6dns1", Type: "string", Description: "First IPv6 DNS server for guests."},
	ResponseField{Name: "ip6dns2", Type: "string", Description: "Second IPv6 DNS server for guests."},
	ResponseField{Name: "guestcidraddress", Type: "string", Description: "Default guest network CIDR of the zone."},
	ResponseField{Name: "domain", Type: "string", Description: "Network domain name given to guests."},
	ResponseField{Name: "domainid", Type: "string", Description: "ID of the domain the zone is dedicated to, if any."},
	ResponseField{Name: "domainname", Type: "string", Description: "Name of that domain."},
	ResponseField{Name: "localstorageenabled", Type: "boolean", Description: "Whether hosts' local disks may hold volumes."},
	ResponseField{Name: "securitygroupsenabled", Type: "boolean", Description: "Whether guests are isolated with security groups."},
	ResponseField{Name: "zonetoken", Type: "string", Description: "Token that identifies the zone to hosts."},
	ResponseField{Name: "dhcpprovider", Type: "string", Description: "Service that hands out guest addresses."},
	ResponseField{Name: "type", Type: "string", Description: "Core for a full zone."},
	ResponseField{Name: "hasannotations", Type: "boolean", Description: "Whether operators left comments on the zone."},
	ResponseField{Name: "resourcedetails", Type: "map", Description: "Extra key/value details of the zone."},
)

// zoneSettableParams are the parameters createZone and updateZone share.
var zoneSettableParams = []ParamSpec{
	{Name: "dns2", Type: "string", Description: "Second public DNS server for guests."},
	{Name: "internaldns2", Type: "string", Description: "Second DNS server for system VMs and hosts."},
	{Name: "ip6dns1", Type: "string", Description: "First IPv6 DNS server for guests."},
	{Name: "ip6dns2", Type: "string", Description: "Second IPv6 DNS server for guests."},
	{Name: "guestcidraddress", Type: "string", Description: "Default guest network CIDR, e.g. 10.1.1.0/24."},
	{Name: "domain", Type: "string", Description: "Network domain name for guests."},
	{Name: "localstorageenabled", Type: "boolean", Description: "Allow volumes on hosts' local disks."},
	{Name: "allocationstate", Type: "string", Description: "Enabled or Disabled; new zones start Disabled unless told otherwise."},
}

func zoneCommands() []*Command {
	create := &Command{
		Name: "createZone", Description: "Creates a zone, the largest unit of a cloud: pods, clusters, hosts and storage live in one.",
		Write: true, Access: AccessRootAdmin, ObjectName: "zone", Related: "listZones", Response: zoneFields,
		Params: append([]ParamSpec{
			{Name: "name", Type: "string", Required: true, Description: "Name of the zone; unique in the cloud."},
			{Name: "networktype", Type: "string", Required: true, Description: "Basic or Advanced networking."},
			{Name: "dns1", Type: "string", Required: true, Description: "First public DNS server for guests."},
			{Name: "internaldns1", Type: "string", Required: true, Description: "First DNS server for system VMs and hosts."},
			{Name: "domainid", Type: "uuid", Description: "Dedicate the zone to this domain.", Related: "listDomains"},
			{Name: "securitygroupenabled", Type: "boolean", Description: "Isolate guests with security groups."},
			{Name: "isedge", Type: "boolean", Since: "4.18.0", Description: "Create an edge zone; Stratus builds core zones only, so true is refused."},
		}, zoneSettableParams...),
		Handler: createZone,
	}
	update := &Command{
		Name: "updateZone", Description: "Changes a zone's name, DNS servers, allocation state or details.",
		Write: true, Access: AccessRootAdmin, ObjectName: "zone", Related: "createZone,listZones", Response: zoneFields,
		Params: append([]ParamSpec{
			{Name: "id", Type: "uuid", Required: true, Description: "ID of the zone to change.", Related: "listZones"},
			{Name: "name", Type: "string", Description: "New name; unique in the cloud."},
			{Name: "dns1", Type: "string", Description: "First public DNS server for guests."},
			{Name: "internaldns1", Type: "string", Description: "First DNS server for system VMs and hosts."},
			{Name: "details", Type: "map", Description: "Key/value details to set, as details[0].key=value."},
		}, zoneSettableParams...),
		Handler: updateZone,
	}
	del := &Command{
		Name: "deleteZone", Description: "Deletes a zone that holds nothing any more.",
		Write: true, Access: AccessRootAdmin, Response: successResponse,
		Params:  []ParamSpec{{Name: "id", Type: "uuid", Required: true, Description: "ID of the zone to delete.", Related: "listZones"}},
		Handler: deleteZone,
	}
	list := &Command{
		Name: "listZones", Description: "Lists zones, oldest first.", Access: AccessUser,
		ObjectName: "zone", Related: "createZone", Response: zoneFields,
		Params: withPaging(
			ParamSpec{Name: "id", Type: "uuid", Description: "Only the zone with this ID.", Related: "listZones"},
			ParamSpec{Name: "name", Type: "string", Description: "Only zones with exactly this name."},
			ParamSpec{Name: "networktype", Type: "string", Description: "Only zones with this network type."},
		),
		Handler: listZones,
	}
	return []*Command{create, update, del, list}
}

func canonicalChoice(p Params, name string, choices ...string) (string, *Error) {
	v := p.String(name)
	for _, c := range choices {
		if strings.EqualFold(v, c) {
			return c, nil
		}
	}
	return "", ErrParam("invalid value %q for parameter %s: use one of %s", v, name, strings.Join(choices, ", "))
}

// applyZoneParams copies the settable parameters present in p onto z.
func applyZoneParams(p Params, z *fsm.Zone) *Error {
	for name, dst := range map[string]*string{
		"dns1": &z.DNS1, "dns2": &z.DNS2, "internaldns1": &z.InternalDNS1, "internaldns2": &z.InternalDNS2,
		"ip6dns1": &z.IP6DNS1, "ip6dns2": &z.IP6DNS2,
	} {
		if !p.Has(name) {
			continue
		}
		v := p.String(name)
		ip := net.ParseIP(v)
		if v != "" && (ip == nil || (strings.HasPrefix(name, "ip6") != (ip.To4() == nil))) {
			return ErrParam("invalid value %q for parameter %s: give an IP%s address", v, name, map[bool]string{true: "v6", false: "v4"}[strings.HasPrefix(name, "ip6")])
		}
		*dst = v
	}
	if p.Has("guestcidraddress") {
		v := p.String("guestcidraddress")
		if _, _, err := net.ParseCIDR(v); v != "" && err != nil {
			return ErrParam("invalid value %q for parameter guestcidraddress: give a CIDR such as 10.1.1.0/24", v)
		}
		z.GuestCIDR = v
	}
	if p.Has("domain") {
		z.Domain = p.String("domain")
	}
	if p.Has("localstorageenabled") {
		v, e := p.Bool("localstorageenabled", false)
		if e != nil {
			return e
		}
		z.LocalStorage = v
	}
	if p.Has("allocationstate") {
		v, e := canonicalChoice(p, "allocationstate", fsm.AllocationEnabled, fsm.AllocationDisabled)
		if e != nil {
			return e
		}
		z.AllocationState = v
	}
	return nil
}

func createZone(r *Request) (any, *Error) {
	p := r.Params
	nt, e := canonicalChoice(p, "networktype", "Basic", "Advanced")
	if e != nil {
		return nil, e
	}
	if edge, e := p.Bool("isedge", false); e != nil {
		return nil, e
	} else if edge {
		return nil, ErrParam("edge zones are not supported; omit isedge or set it to false")
	}
	sg, e := p.Bool("securitygroupenabled", false)
	if e != nil {
		return nil, e
	}
	z := fsm.Zone{
		ID: uuid.NewString(), Name: strings.TrimSpace(p.String("name")), NetworkType: nt,
		AllocationState: fsm.AllocationDisabled, SecurityGroups: sg, ZoneToken: uuid.NewString(),
		Created: r.srv.now().UTC(),
	}
	if z.Name == "" {
		return nil, ErrParam("parameter name must not be blank")
	}
	if p.Has("domainid") {
		id := strings.ToLower(p.String("domainid"))
		if d, _ := r.State().Domain(nil, id); d == nil {
			return nil, ErrEntityNotFound(p.Cmd, "domainid", p.String("domainid"))
		}
		z.DomainID = id
	}
	if e := applyZoneParams(p, &z); e != nil {
		return nil, e
	}
	if e := r.commit(fsm.Create("zones", &z), r.event("ZONE.CREATE", "Zone", z.ID, "created zone %s", z.Name)); e != nil {
		return nil, e
	}
	return zoneBody(r, z.ID)
}

// zoneBody answers with the stored zone, as committed.
func zoneBody(r *Request, id string) (any, *Error) {
	z, err := r.State().Zone(nil, id)
	if err != nil || z == nil {
		return nil, ErrInternal("zone " + id + " was committed but cannot be read back")
	}
	return map[string]any{"zone": toZoneResponse(r.State(), z)}, nil
}

// lookupZone resolves a uuid parameter to a zone, with CloudStack's
// "entity does not exist" error.
func lookupZone(r *Request, param string) (*fsm.Zone, *Error) {
	raw := r.Params.String(param)
	z, err := r.State().Zone(nil, strings.ToLower(raw))
	if err != nil {
		return nil, ErrInternal("zone lookup failed")
	}
	if z == nil {
		return nil, ErrEntityNotFound(r.Params.Cmd, param, raw)
	}
	return z, nil
}

func updateZone(r *Request) (any, *Error) {
	p := r.Params
	cur, e := lookupZone(r, "id")
	if e != nil {
		return nil, e
	}
	z := cur.Copy()
	if p.Has("name") {
		if z.Name = strings.TrimSpace(p.String("name")); z.Name == "" {
			return nil, ErrParam("parameter name must not be blank")
		}
	}
	if e := applyZoneParams(p, z); e != nil {
		return nil, e
	}
	if details := p.Map("details"); len(details) > 0 {
		if z.Details == nil {
			z.Details = map[string]string{}
		}
		for _, m := range details {
			for k, v := range m {
				z.Details[k] = v
			}
		}
	}
	if e := r.commit(fsm.Update("zones", z), r.event("ZONE.EDIT", "Zone", z.ID, "updated zone %s", z.Name)); e != nil {
		return nil, e
	}
	return zoneBody(r, z.ID)
}

func deleteZone(r *Request) (any, *Error) {
	z, e := lookupZone(r, "id")
	if e != nil {
		return nil, e
	}
	if e := r.commit(fsm.Delete("zones", z.ID), r.event("ZONE.DELETE", "Zone", z.ID, "deleted zone %s", z.Name)); e != nil {
		return nil, e
	}
	return successBody(), nil
}

func listZones(r *Request) (any, *Error) {
	p := r.Params
	start, limit, e := p.Page(r.State().SettingInt(fsm.SettingDefaultPageSize))
	if e != nil {
		return nil, e
	}
	var zones []*fsm.Zone
	if p.Has("id") {
		z, e := lookupZone(r, "id")
		if e != nil {
			return nil, e
		}
		zones = []*fsm.Zone{z}
	} else {
		var err error
		if zones, err = r.State().Zones(nil); err != nil {
			return nil, ErrInternal("zone scan failed")
		}
	}
	name, kw, nt := p.String("name"), strings.ToLower(p.String("keyword")), p.String("networktype")
	var out []zoneResponse
	for _, z := range zones {
		if (name != "" && z.Name != name) || (nt != "" && !strings.EqualFold(z.NetworkType, nt)) {
			continue
		}
		if kw != "" && !strings.Contains(strings.ToLower(z.Name), kw) && !strings.Contains(strings.ToLower(z.Description), kw) {
			continue
		}
		out = append(out, toZoneResponse(r.State(), z))
	}
	return ListBody("zone", len(out), Paginate(out, start, limit)), nil
}
