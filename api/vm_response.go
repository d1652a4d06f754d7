package api

import (
	"strconv"
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
)

// A VM as listVirtualMachines and the VM jobs' results show it, with the
// field names of CloudStack's UserVmResponse. Terraform and scripts read
// nic[0].ipaddress, so a placed VM always has its default NIC.

type nicResponse struct {
	ID               string `json:"id"`
	NetworkID        string `json:"networkid"`
	NetworkName      string `json:"networkname"`
	Netmask          string `json:"netmask,omitempty"`
	Gateway          string `json:"gateway,omitempty"`
	IPAddress        string `json:"ipaddress,omitempty"`
	MACAddress       string `json:"macaddress"`
	IsDefault        bool   `json:"isdefault"`
	DeviceID         string `json:"deviceid"`
	TrafficType      string `json:"traffictype"`
	Type             string `json:"type"`
	VirtualMachineID string `json:"virtualmachineid"`
}

type vmAffinityResponse struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Type        string `json:"type"`
	Description string `json:"description,omitempty"`
}

type vmResponse struct {
	ID                  string               `json:"id"`
	Name                string               `json:"name"`
	DisplayName         string               `json:"displayname"`
	InstanceName        string               `json:"instancename,omitempty"` // admins only
	Account             string               `json:"account"`
	UserID              string               `json:"userid"`
	Username            string               `json:"username,omitempty"`
	DomainID            string               `json:"domainid"`
	Domain              string               `json:"domain"`
	Created             string               `json:"created"`
	LastUpdated         string               `json:"lastupdated,omitempty"`
	State               string               `json:"state"`
	HAEnable            bool                 `json:"haenable"`
	Group               string               `json:"group,omitempty"`
	ZoneID              string               `json:"zoneid"`
	ZoneName            string               `json:"zonename"`
	HostID              string               `json:"hostid,omitempty"` // admins only
	HostName            string               `json:"hostname,omitempty"`
	TemplateID          string               `json:"templateid,omitempty"`
	TemplateName        string               `json:"templatename,omitempty"`
	TemplateDisplayText string               `json:"templatedisplaytext,omitempty"`
	PasswordEnabled     bool                 `json:"passwordenabled"`
	ISOID               string               `json:"isoid,omitempty"`
	ServiceOfferingID   string               `json:"serviceofferingid"`
	ServiceOfferingName string               `json:"serviceofferingname"`
	CPUNumber           int                  `json:"cpunumber"`
	CPUSpeed            int                  `json:"cpuspeed"`
	Memory              int                  `json:"memory"`
	GuestOSID           string               `json:"guestosid,omitempty"`
	OSTypeID            string               `json:"ostypeid,omitempty"`
	RootDeviceID        int64                `json:"rootdeviceid"`
	RootDeviceType      string               `json:"rootdevicetype"`
	Hypervisor          string               `json:"hypervisor"`
	NIC                 []nicResponse        `json:"nic"`
	AffinityGroup       []vmAffinityResponse `json:"affinitygroup"`
	KeyPairs            string               `json:"keypairs,omitempty"`
	UserData            string               `json:"userdata,omitempty"`
	Details             map[string]string    `json:"details,omitempty"`
	IsDynamicallyScale  bool                 `json:"isdynamicallyscalable"`
	DisplayVM           bool                 `json:"displayvm"`
	ForVirtualNetwork   bool                 `json:"forvirtualnetwork"`
	Tags                []tagResponse        `json:"tags"`
	HasAnnotations      bool                 `json:"hasannotations"`
}

var vmFields = withJobFields(
	ResponseField{Name: "id", Type: "string", Description: "VM ID."},
	ResponseField{Name: "name", Type: "string", Description: "Host name of the VM."},
	ResponseField{Name: "displayname", Type: "string", Description: "Name shown to users."},
	ResponseField{Name: "instancename", Type: "string", Description: "Name of the VM on its hypervisor (root admins only)."},
	ResponseField{Name: "account", Type: "string", Description: "Owning account."},
	ResponseField{Name: "userid", Type: "string", Description: "User who deployed the VM."},
	ResponseField{Name: "domainid", Type: "string", Description: "Domain of the owning account."},
	ResponseField{Name: "domain", Type: "string", Description: "Name of that domain."},
	ResponseField{Name: "created", Type: "date", Description: "When the VM was deployed."},
	ResponseField{Name: "state", Type: "string", Description: "Starting, Running, Stopping, Stopped, Migrating, Destroyed, Expunging or Error."},
	ResponseField{Name: "haenable", Type: "boolean", Description: "Whether the VM is restarted elsewhere when its host fails."},
	ResponseField{Name: "group", Type: "string", Description: "Free-form group name."},
	ResponseField{Name: "zoneid", Type: "string", Description: "Zone of the VM."},
	ResponseField{Name: "zonename", Type: "string", Description: "Name of that zone."},
	ResponseField{Name: "hostid", Type: "string", Description: "Host running the VM (admins only)."},
	ResponseField{Name: "hostname", Type: "string", Description: "Name of that host."},
	ResponseField{Name: "templateid", Type: "string", Description: "Template the VM was made from."},
	ResponseField{Name: "templatename", Type: "string", Description: "Name of that template."},
	ResponseField{Name: "serviceofferingid", Type: "string", Description: "Compute offering of the VM."},
	ResponseField{Name: "serviceofferingname", Type: "string", Description: "Name of that offering."},
	ResponseField{Name: "cpunumber", Type: "integer", Description: "Number of virtual CPUs."},
	ResponseField{Name: "cpuspeed", Type: "integer", Description: "Speed of each CPU in MHz."},
	ResponseField{Name: "memory", Type: "integer", Description: "Memory in MiB."},
	ResponseField{Name: "hypervisor", Type: "string", Description: "KVM."},
	ResponseField{Name: "nic", Type: "set", Description: "Network interfaces: id, ipaddress, netmask, gateway, macaddress, isdefault."},
	ResponseField{Name: "affinitygroup", Type: "set", Description: "Affinity groups of the VM."},
	ResponseField{Name: "keypairs", Type: "string", Description: "SSH key pairs given at deploy time."},
	ResponseField{Name: "userdata", Type: "string", Description: "Base64 user data, with userdata=true."},
	ResponseField{Name: "details", Type: "map", Description: "Extra key/value details."},
	ResponseField{Name: "tags", Type: "set", Description: "Resource tags of the VM."},
)

// guestNetworkName names the zone's single guest network in NIC answers.
const guestNetworkName = "guest"

// vmRenderer renders VMs for one request, caching the rows it names (a
// page of VMs shares a few accounts, users, templates and offerings).
type vmRenderer struct {
	r         *Request
	names     *infraNames
	accounts  map[string]*fsm.Account
	domains   map[string]*fsm.Domain
	users     map[string]*fsm.User
	templates map[string]*fsm.Template
	offerings map[string]*fsm.ServiceOffering
}

func newVMRenderer(r *Request) *vmRenderer {
	return &vmRenderer{r: r, names: newInfraNames(r.State()), accounts: map[string]*fsm.Account{}, domains: map[string]*fsm.Domain{},
		users: map[string]*fsm.User{}, templates: map[string]*fsm.Template{}, offerings: map[string]*fsm.ServiceOffering{}}
}

// ownerNames is Request.ownerNames through the renderer's caches.
func (vr *vmRenderer) ownerNames(accountID, domainID string) (account, domain string) {
	st := vr.r.State()
	if a := cached(st, vr.accounts, fsm.TableAccounts, accountID); a != nil {
		account = a.Name
	}
	if d := cached(st, vr.domains, fsm.TableDomains, domainID); d != nil {
		domain = d.Name
	}
	return account, domain
}

func (vr *vmRenderer) render(v *fsm.VM, withUserData bool) vmResponse {
	r, st := vr.r, vr.r.State()
	acct, dom := vr.ownerNames(v.AccountID, v.DomainID)
	out := vmResponse{
		ID: v.ID, Name: v.Name, DisplayName: v.DisplayName, Account: acct, UserID: v.UserID, DomainID: v.DomainID, Domain: dom,
		Created: FormatTime(v.Created), State: v.State, HAEnable: v.HAEnabled, Group: v.Group, ZoneID: v.ZoneID,
		ZoneName: vr.names.zone(v.ZoneID), TemplateID: v.TemplateID, ISOID: v.ISOID, ServiceOfferingID: v.ServiceOfferingID,
		CPUNumber: v.CPUNumber, CPUSpeed: v.CPUSpeed, Memory: v.MemoryMiB, GuestOSID: v.OSTypeID, OSTypeID: v.OSTypeID,
		RootDeviceType: "ROOT", Hypervisor: fsm.HypervisorKVM, KeyPairs: strings.Join(v.KeyPairs, ","), Details: v.Details,
		DisplayVM: true, ForVirtualNetwork: true, NIC: []nicResponse{}, AffinityGroup: []vmAffinityResponse{}, Tags: []tagResponse{},
	}
	if v.ModifyIndex != 0 {
		out.LastUpdated = out.Created
	}
	if u := cached(st, vr.users, fsm.TableUsers, v.UserID); u != nil {
		out.Username = u.Username
	}
	if r.isRootAdmin() {
		out.InstanceName = v.InstanceName
		if v.HostID != "" {
			out.HostID = v.HostID
			if h := vr.names.hostRow(v.HostID); h != nil {
				out.HostName = h.Name
			}
		}
	}
	if t := cached(st, vr.templates, fsm.TableTemplates, v.TemplateID); t != nil {
		out.TemplateName, out.TemplateDisplayText, out.PasswordEnabled = t.Name, t.DisplayText, t.PasswordEnabled
	}
	if o := cached(st, vr.offerings, fsm.TableServiceOfferings, v.ServiceOfferingID); o != nil {
		out.ServiceOfferingName, out.IsDynamicallyScale = o.Name, o.DynamicScalingEnabled
	}
	if withUserData {
		out.UserData = v.UserData
	}
	for _, n := range v.NICs {
		out.NIC = append(out.NIC, nicResponse{ID: n.ID, NetworkID: v.ZoneID, NetworkName: guestNetworkName, Netmask: n.Netmask,
			Gateway: n.Gateway, IPAddress: n.IPAddress, MACAddress: n.MAC, IsDefault: n.IsDefault, DeviceID: strconv.Itoa(n.DeviceID),
			TrafficType: "Guest", Type: guestNetworkType, VirtualMachineID: v.ID})
	}
	for _, gid := range v.AffinityGroupIDs {
		if g, _ := fsm.Get[fsm.AffinityGroup](st, nil, fsm.TableAffinityGroups, gid); g != nil {
			out.AffinityGroup = append(out.AffinityGroup, vmAffinityResponse{ID: g.ID, Name: g.Name, Type: g.Type, Description: g.Description})
		}
	}
	if tags, _ := fsm.List[fsm.Tag](st, nil, fsm.TableTags, "resource", v.ID); len(tags) > 0 {
		for _, t := range tags {
			out.Tags = append(out.Tags, tagResponse{Key: t.Key, Value: t.Value, ResourceType: t.ResourceType, ResourceID: t.ResourceID,
				Account: acct, DomainID: t.DomainID, Domain: dom, Customer: t.Customer})
		}
	}
	return out
}

// vmBody is the {"virtualmachine": {...}} answer of a VM command.
func vmBody(r *Request, id string) (any, *Error) {
	v, e := readBack[fsm.VM](r, fsm.TableVMs, id)
	if e != nil {
		return nil, e
	}
	return map[string]any{"virtualmachine": newVMRenderer(r).render(v, false)}, nil
}
