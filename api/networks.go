package api

import (
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/scheduler"
)

// Guest networks, as far as this cloud has them: every zone has exactly
// one, shared by all its accounts, whose ID is the zone's ID and whose
// addresses are the zone's guest CIDR (a VM's NIC shows it as its
// network). Tools that look a network up before they deploy (Terraform's
// cloudstack_instance reads listNetworks id=... projectid=-1; cmk lists
// networks to fill networkids) find it here and may pass it as
// deployVirtualMachine's networkids. There is no createNetwork or
// deleteNetwork: isolated networks, VPCs and VLANs are not implemented.
// Projects are not either, so listProjects answers an empty list.

// Fixed, so every server and every version answers the same ID.
const (
	guestOfferingID   = "4b2c6a4e-5d43-4c0e-9b7e-3f1a2d9c8e01"
	guestOfferingName = "ZoneGuestNetwork"
	guestOfferingText = "The guest network of a zone, shared by its accounts: addresses from the zone's guest CIDR"
	guestNetworkType  = "Shared"
)

type networkResponse struct {
	ID                          string        `json:"id"`
	Name                        string        `json:"name"`
	DisplayText                 string        `json:"displaytext"`
	ZoneID                      string        `json:"zoneid"`
	ZoneName                    string        `json:"zonename"`
	Type                        string        `json:"type"`
	TrafficType                 string        `json:"traffictype"`
	State                       string        `json:"state"`
	CIDR                        string        `json:"cidr"`
	Gateway                     string        `json:"gateway"`
	Netmask                     string        `json:"netmask"`
	DNS1                        string        `json:"dns1,omitempty"`
	DNS2                        string        `json:"dns2,omitempty"`
	NetworkDomain               string        `json:"networkdomain,omitempty"`
	NetworkOfferingID           string        `json:"networkofferingid"`
	NetworkOfferingName         string        `json:"networkofferingname"`
	NetworkOfferingDisplayText  string        `json:"networkofferingdisplaytext"`
	NetworkOfferingAvailability string        `json:"networkofferingavailability"`
	ACLType                     string        `json:"acltype"`
	IsDefault                   bool          `json:"isdefault"`
	IsSystem                    bool          `json:"issystem"`
	IsPersistent                bool          `json:"ispersistent"`
	CanUseForDeploy             bool          `json:"canusefordeploy"`
	SpecifyIPRanges             bool          `json:"specifyipranges"`
	RestartRequired             bool          `json:"restartrequired"`
	DisplayNetwork              bool          `json:"displaynetwork"`
	SubdomainAccess             bool          `json:"subdomainaccess"`
	Related                     string        `json:"related"`
	Tags                        []tagResponse `json:"tags"`
}

type networkOfferingResponse struct {
	ID              string `json:"id"`
	Name            string `json:"name"`
	DisplayText     string `json:"displaytext"`
	GuestIPType     string `json:"guestiptype"`
	TrafficType     string `json:"traffictype"`
	State           string `json:"state"`
	Availability    string `json:"availability"`
	IsDefault       bool   `json:"isdefault"`
	IsPersistent    bool   `json:"ispersistent"`
	SpecifyIPRanges bool   `json:"specifyipranges"`
	SpecifyVlan     bool   `json:"specifyvlan"`
	ForVPC          bool   `json:"forvpc"`
	ConserveMode    bool   `json:"conservemode"`
}

func init() {
	registerCommands(func(*Server) []*Command {
		return []*Command{
			{
				Name: "listNetworks", Description: "Lists guest networks: each zone has one, shared by its accounts, whose ID is the zone's.",
				Access: AccessUser, ObjectName: "network", Handler: listNetworks, Related: "listZones",
				Response: withJobFields(
					ResponseField{Name: "id", Type: "string", Description: "Network ID: the ID of its zone."},
					ResponseField{Name: "name", Type: "string", Description: "Network name, as VMs' NICs show it."},
					ResponseField{Name: "displaytext", Type: "string", Description: "Description."},
					ResponseField{Name: "zoneid", Type: "string", Description: "Zone of the network."},
					ResponseField{Name: "zonename", Type: "string", Description: "Name of that zone."},
					ResponseField{Name: "type", Type: "string", Description: "Guest type: Shared."},
					ResponseField{Name: "traffictype", Type: "string", Description: "Traffic type: Guest."},
					ResponseField{Name: "state", Type: "string", Description: "Implemented: the network exists as long as its zone."},
					ResponseField{Name: "cidr", Type: "string", Description: "The zone's guest CIDR, from which VMs get addresses."},
					ResponseField{Name: "gateway", Type: "string", Description: "Gateway: the CIDR's first address."},
					ResponseField{Name: "netmask", Type: "string", Description: "Netmask of the CIDR."},
					ResponseField{Name: "dns1", Type: "string", Description: "First DNS server of the zone."},
					ResponseField{Name: "dns2", Type: "string", Description: "Second DNS server of the zone."},
					ResponseField{Name: "networkdomain", Type: "string", Description: "DNS domain of the zone's guests."},
					ResponseField{Name: "networkofferingid", Type: "string", Description: "The built-in network offering."},
					ResponseField{Name: "networkofferingname", Type: "string", Description: "Its name."},
					ResponseField{Name: "networkofferingdisplaytext", Type: "string", Description: "Its description."},
					ResponseField{Name: "networkofferingavailability", Type: "string", Description: "Its availability: Required."},
					ResponseField{Name: "acltype", Type: "string", Description: "Domain: every account may use it."},
					ResponseField{Name: "isdefault", Type: "boolean", Description: "Whether VMs of the zone get it by default: true."},
					ResponseField{Name: "issystem", Type: "boolean", Description: "Whether it is a system network: false."},
					ResponseField{Name: "ispersistent", Type: "boolean", Description: "Whether it exists with no VM in it: true."},
					ResponseField{Name: "canusefordeploy", Type: "boolean", Description: "Whether new VMs can be deployed in it: its zone is Enabled."},
					ResponseField{Name: "specifyipranges", Type: "boolean", Description: "Whether it takes IP ranges: false."},
					ResponseField{Name: "restartrequired", Type: "boolean", Description: "Whether it needs a restart: false."},
					ResponseField{Name: "displaynetwork", Type: "boolean", Description: "Whether users see it: true."},
					ResponseField{Name: "subdomainaccess", Type: "boolean", Description: "Whether subdomains may use it: true."},
					ResponseField{Name: "related", Type: "string", Description: "ID of the related network: its own."},
					ResponseField{Name: "tags", Type: "list", Description: "Tags: none."},
				),
				Params: withPaging(
					ParamSpec{Name: "id", Type: "uuid", Description: "Only the network with this ID.", Related: "listNetworks"},
					ParamSpec{Name: "zoneid", Type: "uuid", Description: "Only the network of this zone.", Related: "listZones"},
					ParamSpec{Name: "type", Type: "string", Description: "Only networks of this guest type: Isolated, Shared or L2 (all are Shared)."},
					ParamSpec{Name: "traffictype", Type: "string", Description: "Only networks of this traffic type (all are Guest)."},
					ParamSpec{Name: "networkofferingid", Type: "uuid", Description: "Only networks of this offering.", Related: "listNetworkOfferings"},
					ParamSpec{Name: "canusefordeploy", Type: "boolean", Description: "Only networks new VMs can (or cannot) be deployed in."},
					ParamSpec{Name: "issystem", Type: "boolean", Description: "Only system (true) or guest (false) networks; there are no system networks."},
					ParamSpec{Name: "specifyipranges", Type: "boolean", Description: "Only networks that take (or do not take) IP ranges."},
					ParamSpec{Name: "acltype", Type: "string", Description: "Only networks of this access type: Account or Domain (all are Domain)."},
					ParamSpec{Name: "forvpc", Type: "boolean", Description: "Only networks of a VPC (true); there are none."},
					ParamSpec{Name: "vpcid", Type: "uuid", Description: "Only networks of this VPC; there are no VPCs."},
					ParamSpec{Name: "projectid", Type: "uuid", Description: "Project: -1 for all; there are no projects."},
					ParamSpec{Name: "account", Type: "string", Description: "Account whose networks to list: every account uses its zone's network."},
					ParamSpec{Name: "domainid", Type: "uuid", Description: "Domain of that account.", Related: "listDomains"},
					ParamSpec{Name: "listall", Type: "boolean", Description: "List everything the caller may see; the same networks."},
					ParamSpec{Name: "isrecursive", Type: "boolean", Description: "Include subdomains; the same networks."},
				),
			},
			{
				Name: "listNetworkOfferings", Description: "Lists network offerings: the one built-in offering of the zones' guest networks.",
				Access: AccessUser, ObjectName: "networkoffering", Handler: listNetworkOfferings, Related: "listNetworks",
				Response: withJobFields(
					ResponseField{Name: "id", Type: "string", Description: "Offering ID."},
					ResponseField{Name: "name", Type: "string", Description: "Offering name."},
					ResponseField{Name: "displaytext", Type: "string", Description: "Description."},
					ResponseField{Name: "guestiptype", Type: "string", Description: "Guest type of its networks: Shared."},
					ResponseField{Name: "traffictype", Type: "string", Description: "Traffic type: Guest."},
					ResponseField{Name: "state", Type: "string", Description: "Enabled."},
					ResponseField{Name: "availability", Type: "string", Description: "Required: every zone's network uses it."},
					ResponseField{Name: "isdefault", Type: "boolean", Description: "Whether it is a default offering: true."},
					ResponseField{Name: "ispersistent", Type: "boolean", Description: "Whether its networks exist with no VM: true."},
					ResponseField{Name: "specifyipranges", Type: "boolean", Description: "Whether its networks take IP ranges: false."},
					ResponseField{Name: "specifyvlan", Type: "boolean", Description: "Whether its networks take a VLAN: false."},
					ResponseField{Name: "forvpc", Type: "boolean", Description: "Whether it is for VPC networks: false."},
					ResponseField{Name: "conservemode", Type: "boolean", Description: "Whether it is in conserve mode: true."},
				),
				Params: withPaging(
					ParamSpec{Name: "id", Type: "uuid", Description: "Only the offering with this ID."},
					ParamSpec{Name: "name", Type: "string", Description: "Only the offering with this name."},
					ParamSpec{Name: "displaytext", Type: "string", Description: "Only offerings with this description."},
					ParamSpec{Name: "guestiptype", Type: "string", Description: "Only offerings of this guest type: Isolated, Shared or L2."},
					ParamSpec{Name: "traffictype", Type: "string", Description: "Only offerings of this traffic type."},
					ParamSpec{Name: "state", Type: "string", Description: "Only offerings in this state: Enabled or Disabled."},
					ParamSpec{Name: "availability", Type: "string", Description: "Only offerings of this availability."},
					ParamSpec{Name: "isdefault", Type: "boolean", Description: "Only default (or other) offerings."},
					ParamSpec{Name: "specifyipranges", Type: "boolean", Description: "Only offerings whose networks take (or do not take) IP ranges."},
					ParamSpec{Name: "specifyvlan", Type: "boolean", Description: "Only offerings whose networks take (or do not take) a VLAN."},
					ParamSpec{Name: "forvpc", Type: "boolean", Description: "Only offerings for VPC networks (true); there are none."},
					ParamSpec{Name: "sourcenatsupported", Type: "boolean", Description: "Only offerings with source NAT (true); there are none."},
					ParamSpec{Name: "zoneid", Type: "uuid", Description: "Only offerings usable in this zone.", Related: "listZones"},
					ParamSpec{Name: "networkid", Type: "uuid", Description: "Only the offering of this network.", Related: "listNetworks"},
				),
			},
			{
				Name: "listProjects", Description: "Lists projects; projects are not implemented, so there are none.",
				Access: AccessUser, ObjectName: "project", Handler: listProjects,
				Response: withJobFields(
					ResponseField{Name: "id", Type: "string", Description: "Project ID."},
					ResponseField{Name: "name", Type: "string", Description: "Project name."},
				),
				Params: withPaging(
					ParamSpec{Name: "id", Type: "uuid", Description: "Only the project with this ID."},
					ParamSpec{Name: "name", Type: "string", Description: "Only the project with this name."},
					ParamSpec{Name: "account", Type: "string", Description: "Only projects of this account."},
					ParamSpec{Name: "domainid", Type: "uuid", Description: "Only projects of this domain.", Related: "listDomains"},
					ParamSpec{Name: "listall", Type: "boolean", Description: "List everything the caller may see."},
				),
			},
		}
	})
}

// zoneNetwork is the guest network of zone z.
func zoneNetwork(z *fsm.Zone) (networkResponse, *Error) {
	subnet, gw, mask, err := scheduler.GuestNetwork(z)
	if err != nil {
		return networkResponse{}, ErrParam("%v", err)
	}
	return networkResponse{
		ID: z.ID, Name: guestNetworkName, DisplayText: "Guest network of zone " + z.Name, ZoneID: z.ID, ZoneName: z.Name,
		Type: guestNetworkType, TrafficType: "Guest", State: "Implemented",
		CIDR: subnet.String(), Gateway: gw.String(), Netmask: mask, DNS1: z.DNS1, DNS2: z.DNS2, NetworkDomain: z.Domain,
		NetworkOfferingID: guestOfferingID, NetworkOfferingName: guestOfferingName, NetworkOfferingDisplayText: guestOfferingText,
		NetworkOfferingAvailability: "Required", ACLType: "Domain", IsDefault: true, IsPersistent: true,
		CanUseForDeploy: z.AllocationState == fsm.AllocationEnabled, DisplayNetwork: true, SubdomainAccess: true,
		Related: z.ID, Tags: []tagResponse{},
	}, nil
}

// noProject checks a projectid parameter: -1 (all projects, as tools send
// it) or absent. Any other ID names a project that cannot exist.
func noProject(p Params) *Error {
	if v := p.String("projectid"); v != "" && v != "-1" {
		return ErrEntityNotFound(p.Cmd, "projectid", v)
	}
	return nil
}

// guestTypeParam checks a guest type filter and says whether it admits
// the zones' Shared networks.
func guestTypeParam(p Params, name string) (bool, *Error) {
	t, e := catalogChoice(p, name, guestNetworkType, "Isolated", "Shared", "L2")
	return t == guestNetworkType, e
}

// boolField is a boolean parameter and the object's value of it.
type boolField struct {
	name string
	v    bool
}

// boolFilters reads boolean filters and says whether the one object passes
// every one given (have[name] is its value).
func boolFilters(p Params, have ...boolField) (bool, *Error) {
	ok := true
	for _, f := range have {
		name, v := f.name, f.v
		if !p.Has(name) {
			continue
		}
		b, e := p.Bool(name, v)
		if e != nil {
			return false, e
		}
		ok = ok && b == v
	}
	return ok, nil
}

func listNetworks(r *Request) (any, *Error) {
	p := r.Params
	if e := noProject(p); e != nil {
		return nil, e
	}
	if v := p.String("vpcid"); v != "" && v != "-1" {
		return nil, ErrEntityNotFound(p.Cmd, "vpcid", v)
	}
	var zones []*fsm.Zone
	for _, param := range []string{"id", "zoneid"} {
		if !p.Has(param) {
			continue
		}
		z, e := lookupZone(r, param)
		if e != nil {
			return nil, e
		}
		if zones != nil && zones[0].ID != z.ID {
			return catalogPage(r, "network", []networkResponse{}) // id and zoneid disagree
		}
		zones = []*fsm.Zone{z}
	}
	if zones == nil {
		var err error
		if zones, err = r.State().Zones(nil); err != nil {
			return nil, ErrInternal("zone scan failed")
		}
	}
	match, e := guestTypeParam(p, "type")
	if e != nil {
		return nil, e
	}
	if v := p.String("traffictype"); v != "" && !strings.EqualFold(v, "Guest") {
		match = false
	}
	acl, e := catalogChoice(p, "acltype", "Domain", "Account", "Domain")
	if e != nil {
		return nil, e
	}
	match = match && acl == "Domain"
	if v := p.String("networkofferingid"); v != "" && !strings.EqualFold(v, guestOfferingID) {
		match = false
	}
	fixed, e := boolFilters(p, boolField{"issystem", false}, boolField{"specifyipranges", false}, boolField{"forvpc", false})
	if e != nil {
		return nil, e
	}
	deployable, e := p.Bool("canusefordeploy", false)
	if e != nil {
		return nil, e
	}
	out := []networkResponse{}
	for _, z := range zones {
		if !match || !fixed {
			break
		}
		n, e := zoneNetwork(z)
		if e != nil {
			continue // a zone whose CIDR is broken has no usable network; updateZone fixes it
		}
		if (p.Has("canusefordeploy") && n.CanUseForDeploy != deployable) || !catalogMatch(p.String("keyword"), n.Name, n.DisplayText) {
			continue
		}
		out = append(out, n)
	}
	return catalogPage(r, "network", out)
}

func listNetworkOfferings(r *Request) (any, *Error) {
	p := r.Params
	if v := p.String("id"); v != "" && !strings.EqualFold(v, guestOfferingID) {
		return nil, ErrEntityNotFound(p.Cmd, "id", v)
	}
	for _, param := range []string{"zoneid", "networkid"} { // a network's ID is its zone's
		if p.Has(param) {
			if _, e := lookupZone(r, param); e != nil {
				return nil, e
			}
		}
	}
	match, e := guestTypeParam(p, "guestiptype")
	if e != nil {
		return nil, e
	}
	st, e := catalogChoice(p, "state", "Enabled", "Enabled", "Disabled")
	if e != nil {
		return nil, e
	}
	match = match && st == "Enabled"
	if v := p.String("traffictype"); v != "" && !strings.EqualFold(v, "Guest") {
		match = false
	}
	if v := p.String("availability"); v != "" && !strings.EqualFold(v, "Required") {
		match = false
	}
	if v := p.String("name"); v != "" && !strings.EqualFold(v, guestOfferingName) {
		match = false
	}
	if v := p.String("displaytext"); v != "" && !strings.EqualFold(v, guestOfferingText) {
		match = false
	}
	fixed, e := boolFilters(p, boolField{"isdefault", true}, boolField{"specifyipranges", false},
		boolField{"specifyvlan", false}, boolField{"forvpc", false}, boolField{"sourcenatsupported", false})
	if e != nil {
		return nil, e
	}
	out := []networkOfferingResponse{}
	if match && fixed && catalogMatch(p.String("keyword"), guestOfferingName, guestOfferingText) {
		out = append(out, networkOfferingResponse{ID: guestOfferingID, Name: guestOfferingName, DisplayText: guestOfferingText,
			GuestIPType: guestNetworkType, TrafficType: "Guest", State: "Enabled", Availability: "Required",
			IsDefault: true, IsPersistent: true, ConserveMode: true})
	}
	return catalogPage(r, "networkoffering", out)
}

func listProjects(r *Request) (any, *Error) {
	if v := r.Params.String("id"); v != "" {
		return nil, ErrEntityNotFound(r.Params.Cmd, "id", v)
	}
	return catalogPage(r, "project", []struct{}{})
}

// deployNetwork checks deployVirtualMachine's networkids: absent, or the
// guest network of the zone the VM is deployed in, once.
func deployNetwork(r *Request, zone *fsm.Zone) *Error {
	ids := r.Params.List("networkids")
	if len(ids) == 0 {
		return nil
	}
	if len(ids) > 1 {
		return ErrParam("invalid value %q for parameter networkids: a VM has one NIC, on its zone's guest network %s", r.Params.String("networkids"), zone.ID)
	}
	id := strings.ToLower(ids[0])
	if id == zone.ID {
		return nil
	}
	other, err := r.State().Zone(nil, id)
	if err != nil {
		return ErrInternal("zone lookup failed")
	}
	if other == nil {
		return ErrEntityNotFound(r.Params.Cmd, "networkids", ids[0])
	}
	return ErrParam("invalid value %q for parameter networkids: it is the guest network of zone %s, not of zone %s (listNetworks zoneid=%s)", ids[0], other.Name, zone.Name, zone.ID)
}
