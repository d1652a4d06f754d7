package api

import (
	"iter"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
)

// Hosts. addHost records a KVM host; its agent (a later part) connects with
// the host's token, reports the hardware and brings it Up. Until then the
// host is Disconnected and its CPU and memory figures are zero. The login
// password CloudStack asks for is never stored: Stratus agents authenticate
// with their token, not over SSH.

type hostHAResponse struct {
	HAEnable   bool   `json:"haenable"`
	HAProvider string `json:"haprovider"`
	HAState    string `json:"hastate"`
}

type hostResponse struct {
	ID                               string            `json:"id"`
	Name                             string            `json:"name"`
	State                            string            `json:"state"`
	Type                             string            `json:"type"`
	IPAddress                        string            `json:"ipaddress"`
	ZoneID                           string            `json:"zoneid"`
	ZoneName                         string            `json:"zonename"`
	PodID                            string            `json:"podid"`
	PodName                          string            `json:"podname"`
	ClusterID                        string            `json:"clusterid"`
	ClusterName                      string            `json:"clustername"`
	ClusterType                      string            `json:"clustertype"`
	Hypervisor                       string            `json:"hypervisor"`
	HypervisorVersion                string            `json:"hypervisorversion,omitempty"`
	Version                          string            `json:"version,omitempty"`
	ResourceState                    string            `json:"resourcestate"`
	HostTags                         string            `json:"hosttags,omitempty"`
	Capabilities                     string            `json:"capabilities,omitempty"`
	CPUNumber                        int               `json:"cpunumber"`
	CPUSockets                       int               `json:"cpusockets"`
	CPUSpeed                         int64             `json:"cpuspeed"`
	CPUAllocated                     string            `json:"cpuallocated"`
	CPUAllocatedPercentage           string            `json:"cpuallocatedpercentage"`
	CPUAllocatedValue                int64             `json:"cpuallocatedvalue"`
	CPUAllocatedWithOverprovisioning string            `json:"cpuallocatedwithoverprovisioning"`
	CPUWithOverprovisioning          string            `json:"cpuwithoverprovisioning"`
	CPUUsed                          string            `json:"cpuused"`
	CPULoadAverage                   float64           `json:"cpuloadaverage"`
	MemoryTotal                      int64             `json:"memorytotal"`
	MemoryAllocated                  int64             `json:"memoryallocated"`
	MemoryAllocatedBytes             int64             `json:"memoryallocatedbytes"`
	MemoryAllocatedPercentage        string            `json:"memoryallocatedpercentage"`
	MemoryWithOverprovisioning       string            `json:"memorywithoverprovisioning"`
	MemoryUsed                       int64             `json:"memoryused"`
	DiskSizeTotal                    int64             `json:"disksizetotal"`
	DiskSizeAllocated                int64             `json:"disksizeallocated"`
	IsLocalStorageActive             bool              `json:"islocalstorageactive"`
	HAHost                           bool              `json:"hahost"`
	HostHA                           hostHAResponse    `json:"hostha"`
	OutOfBandManagement              hostOOBMResponse  `json:"outofbandmanagement"`
	UEFICapability                   bool              `json:"ueficapability"`
	ManagementServerID               string            `json:"managementserverid,omitempty"`
	Created                          string            `json:"created"`
	LastPinged                       string            `json:"lastpinged,omitempty"`
	Disconnected                     string            `json:"disconnected,omitempty"`
	Annotation                       string            `json:"annotation,omitempty"`
	LastAnnotated                    string            `json:"lastannotated,omitempty"`
	Username                         string            `json:"username,omitempty"`
	HasAnnotations                   bool              `json:"hasannotations"`
	Details                          map[string]string `json:"details,omitempty"`
	// Set only by findHostsForMigration.
	SuitableForMigration  *bool `json:"suitableformigration,omitempty"`
	RequiresStorageMotion *bool `json:"requiresStorageMotion,omitempty"`
}

var hostFields = withJobFields(
	ResponseField{Name: "id", Type: "string", Description: "Host ID."},
	ResponseField{Name: "name", Type: "string", Description: "Host name."},
	ResponseField{Name: "state", Type: "status", Description: "Connection state of the host's agent: Up, Disconnected, Down, Alert."},
	ResponseField{Name: "type", Type: "type", Description: "Host type: Routing for a hypervisor host."},
	ResponseField{Name: "ipaddress", Type: "string", Description: "Address the host was added with."},
	ResponseField{Name: "zoneid", Type: "string", Description: "ID of the host's zone."},
	ResponseField{Name: "zonename", Type: "string", Description: "Name of the host's zone."},
	ResponseField{Name: "podid", Type: "string", Description: "ID of the host's pod."},
	ResponseField{Name: "podname", Type: "string", Description: "Name of the host's pod."},
	ResponseField{Name: "clusterid", Type: "string", Description: "ID of the host's cluster."},
	ResponseField{Name: "clustername", Type: "string", Description: "Name of the host's cluster."},
	ResponseField{Name: "clustertype", Type: "string", Description: "Type of the host's cluster."},
	ResponseField{Name: "hypervisor", Type: "hypervisortype", Description: "Hypervisor of the host: KVM."},
	ResponseField{Name: "hypervisorversion", Type: "string", Description: "Hypervisor version the agent reported."},
	ResponseField{Name: "version", Type: "string", Description: "Version of the host's agent."},
	ResponseField{Name: "resourcestate", Type: "string", Description: "Operator state: Enabled, Disabled, PrepareForMaintenance, Maintenance, ErrorInMaintenance."},
	ResponseField{Name: "hosttags", Type: "string", Description: "The host's tags, comma separated."},
	ResponseField{Name: "capabilities", Type: "string", Description: "Capabilities the agent reported."},
	ResponseField{Name: "cpunumber", Type: "integer", Description: "CPU cores of the host."},
	ResponseField{Name: "cpusockets", Type: "integer", Description: "CPU sockets of the host."},
	ResponseField{Name: "cpuspeed", Type: "long", Description: "Speed of each core in MHz."},
	ResponseField{Name: "cpuallocated", Type: "string", Description: "Share of the CPU capacity (overcommit included) handed out to VMs."},
	ResponseField{Name: "cpuallocatedpercentage", Type: "string", Description: "Same as cpuallocated."},
	ResponseField{Name: "cpuallocatedvalue", Type: "long", Description: "CPU handed out to VMs, in MHz."},
	ResponseField{Name: "cpuallocatedwithoverprovisioning", Type: "string", Description: "Same as cpuallocated."},
	ResponseField{Name: "cpuwithoverprovisioning", Type: "string", Description: "CPU capacity in MHz, overcommit included."},
	ResponseField{Name: "cpuused", Type: "string", Description: "CPU use the agent last reported."},
	ResponseField{Name: "cpuloadaverage", Type: "double", Description: "Load average the agent last reported."},
	ResponseField{Name: "memorytotal", Type: "long", Description: "Memory of the host in bytes."},
	ResponseField{Name: "memoryallocated", Type: "long", Description: "Memory handed out to VMs, in bytes."},
	ResponseField{Name: "memoryallocatedbytes", Type: "long", Description: "Same as memoryallocated."},
	ResponseField{Name: "memoryallocatedpercentage", Type: "string", Description: "Share of the memory (overcommit included) handed out to VMs."},
	ResponseField{Name: "memorywithoverprovisioning", Type: "string", Description: "Memory in bytes, overcommit included."},
	ResponseField{Name: "memoryused", Type: "long", Description: "Memory use the agent last reported, in bytes."},
	ResponseField{Name: "disksizetotal", Type: "long", Description: "Size of the host's local storage in bytes."},
	ResponseField{Name: "disksizeallocated", Type: "long", Description: "Bytes of local storage handed out to volumes."},
	ResponseField{Name: "islocalstorageactive", Type: "boolean", Description: "Whether the host has local storage."},
	ResponseField{Name: "hahost", Type: "boolean", Description: "Whether the host is reserved for HA restarts."},
	ResponseField{Name: "hostha", Type: "hostharesponse", Description: "Host HA configuration: haenable, haprovider, hastate."},
	ResponseField{Name: "outofbandmanagement", Type: "outofbandmanagementresponse", Description: "Out-of-band management: enabled, driver, address, port, username, powerstate (never the password)."},
	ResponseField{Name: "ueficapability", Type: "boolean", Description: "Whether the host boots guests with UEFI."},
	ResponseField{Name: "managementserverid", Type: "string", Description: "Management server the agent is connected to."},
	ResponseField{Name: "created", Type: "date", Description: "When the host was added."},
	ResponseField{Name: "lastpinged", Type: "date", Description: "When the agent was last heard from."},
	ResponseField{Name: "disconnected", Type: "date", Description: "When the agent last disconnected."},
	ResponseField{Name: "annotation", Type: "string", Description: "The operators' comment on the host."},
	ResponseField{Name: "lastannotated", Type: "date", Description: "When that comment was written."},
	ResponseField{Name: "username", Type: "string", Description: "Who wrote that comment."},
	ResponseField{Name: "hasannotations", Type: "boolean", Description: "Whether the host has a comment."},
	ResponseField{Name: "details", Type: "map", Description: "Further details the agent reported."},
)

func init() {
	registerCommands(func(*Server) []*Command {
		return []*Command{
			{
				Name: "addHost", Description: "Adds a KVM host to a cluster. The host stays Disconnected until its agent connects with the host's token.",
				Write: true, Access: AccessRootAdmin, ObjectName: "host", Related: "listHosts", Response: hostFields,
				Params: []ParamSpec{
					{Name: "zoneid", Type: "uuid", Required: true, Description: "Zone of the host.", Related: "listZones"},
					{Name: "podid", Type: "uuid", Required: true, Description: "Pod of the host, in that zone.", Related: "listPods"},
					{Name: "clusterid", Type: "uuid", Description: "Cluster of the host, in that pod; or give clustername.", Related: "listClusters"},
					{Name: "clustername", Type: "string", Description: "Name of the host's cluster in the pod; the cluster is made if the pod has none of that name."},
					{Name: "url", Type: "string", Required: true, Description: "Address of the host, as http://<address or name>."},
					{Name: "hypervisor", Type: "string", Required: true, Description: "Hypervisor of the host: KVM."},
					{Name: "username", Type: "string", Description: "Accepted for compatibility; agents authenticate with the host's token."},
					{Name: "password", Type: "string", Description: "Accepted for compatibility and never stored."},
					{Name: "hosttags", Type: "list", Description: "Tags of the host, comma separated; offerings with host tags only go to hosts with them."},
					{Name: "allocationstate", Type: "string", Description: "Enabled (the default) or Disabled."},
				},
				Handler: addHost,
			},
			{
				Name: "updateHost", Description: "Renames a host, changes its tags or comment, or enables or disables it for new VMs.",
				Write: true, Access: AccessRootAdmin, ObjectName: "host", Related: "listHosts", Response: hostFields,
				Params: []ParamSpec{
					{Name: "id", Type: "uuid", Required: true, Description: "ID of the host.", Related: "listHosts"},
					{Name: "name", Type: "string", Description: "New name of the host."},
					{Name: "allocationstate", Type: "string", Description: "Enable or Disable: whether new VMs may be placed on the host."},
					{Name: "hosttags", Type: "list", Description: "New tags, comma separated; empty removes them all."},
					{Name: "annotation", Type: "string", Description: "Comment on the host; empty removes it."},
				},
				Handler: updateHost,
			},
			{
				Name: "deleteHost", Description: "Removes a host, and its local storage pools. The host must not be Up, or must be in maintenance, unless forced.",
				Write: true, Access: AccessRootAdmin, Response: successResponse,
				Params: []ParamSpec{
					{Name: "id", Type: "uuid", Required: true, Description: "ID of the host.", Related: "listHosts"},
					{Name: "forced", Type: "boolean", Description: "Remove the host even while its agent is connected."},
					{Name: "forcedestroylocalstorage", Type: "boolean", Description: "Accepted for compatibility: local pools are removed with the host, and volumes on them prevent it."},
				},
				Handler: deleteHost,
			},
			{
				Name: "listHosts", Description: "Lists hosts, oldest first.", Access: AccessRootAdmin,
				ObjectName: "host", Related: "addHost", Response: hostFields,
				Params: withPaging(
					ParamSpec{Name: "id", Type: "uuid", Description: "Only the host with this ID.", Related: "listHosts"},
					ParamSpec{Name: "name", Type: "string", Description: "Only hosts with this name."},
					ParamSpec{Name: "zoneid", Type: "uuid", Description: "Only hosts of this zone.", Related: "listZones"},
					ParamSpec{Name: "podid", Type: "uuid", Description: "Only hosts of this pod.", Related: "listPods"},
					ParamSpec{Name: "clusterid", Type: "uuid", Description: "Only hosts of this cluster.", Related: "listClusters"},
					ParamSpec{Name: "type", Type: "string", Description: "Only hosts of this type (Routing)."},
					ParamSpec{Name: "state", Type: "string", Description: "Only hosts in this connection state."},
					ParamSpec{Name: "resourcestate", Type: "string", Description: "Only hosts in this resource state."},
					ParamSpec{Name: "hypervisor", Type: "string", Description: "Only hosts of this hypervisor."},
					ParamSpec{Name: "hahost", Type: "boolean", Description: "Only hosts reserved for HA restarts (true) or only the others (false)."},
					ParamSpec{Name: "outofbandmanagementenabled", Type: "boolean", Description: "Only hosts with out-of-band management on (true) or off (false)."},
					ParamSpec{Name: "details", Type: "list", Description: "Accepted for compatibility; every host comes with all its details."},
				),
				Handler: listHosts,
			},
		}
	})
}

func toHostResponse(n *infraNames, h *fsm.Host) hostResponse {
	cpuRatio, memRatio := n.overcommit(h.ClusterID)
	cpuWith := float64(h.CPUNumber) * float64(h.CPUSpeed) * cpuRatio
	memWith := float64(h.MemoryTotal) * memRatio
	cpuAlloc := percentOf(float64(h.CPUAllocated), cpuWith) + "%"
	out := hostResponse{
		ID: h.ID, Name: h.Name, State: h.State, Type: h.Type, IPAddress: h.IPAddress,
		ZoneID: h.ZoneID, ZoneName: n.zone(h.ZoneID), PodID: h.PodID, PodName: n.pod(h.PodID),
		ClusterID: h.ClusterID, ClusterName: n.cluster(h.ClusterID), Hypervisor: h.HypervisorType,
		HypervisorVersion: h.HypervisorVersion, Version: h.Version, ResourceState: h.ResourceState,
		HostTags: strings.Join(h.HostTags, ","), Capabilities: h.Capabilities,
		CPUNumber: h.CPUNumber, CPUSockets: h.CPUSockets, CPUSpeed: h.CPUSpeed,
		CPUAllocated: cpuAlloc, CPUAllocatedPercentage: cpuAlloc, CPUAllocatedValue: h.CPUAllocated,
		CPUAllocatedWithOverprovisioning: cpuAlloc, CPUWithOverprovisioning: formatDecimal(cpuWith),
		CPUUsed:     formatDecimal(h.CPUUsedPercent) + "%",
		MemoryTotal: h.MemoryTotal, MemoryAllocated: h.MemoryAllocated, MemoryAllocatedBytes: h.MemoryAllocated,
		MemoryAllocatedPercentage: percentOf(float64(h.MemoryAllocated), memWith) + "%", MemoryWithOverprovisioning: formatDecimal(memWith),
		MemoryUsed:          h.MemoryUsed,
		HostHA:              hostHAResponse{HAEnable: h.HAEnabled, HAProvider: h.HAProvider, HAState: h.HAState},
		OutOfBandManagement: hostOOBM(h),
		ManagementServerID:  h.ManagementServerID, Created: FormatTime(h.Created), LastPinged: FormatTime(h.LastPinged),
		Disconnected: FormatTime(h.Disconnected), Annotation: h.Annotation, LastAnnotated: FormatTime(h.LastAnnotated),
		Username: h.AnnotatedBy, HasAnnotations: h.Annotation != "", Details: h.Details,
	}
	if c := n.clusterRow(h.ClusterID); c != nil {
		out.ClusterType = c.ClusterType
	}
	if out.HostHA.HAState == "" {
		out.HostHA.HAState = fsm.HAStateDisabled
	}
	if pools, err := fsm.List[fsm.StoragePool](n.st, nil, fsm.TableStoragePools, "host", h.ID); err == nil {
		for _, sp := range pools {
			out.IsLocalStorageActive = true
			out.DiskSizeTotal += sp.CapacityBytes
			out.DiskSizeAllocated += sp.AllocatedBytes
		}
	}
	return out
}

// parseHostURL reads addHost's url: http://<address or DNS name>, or the
// bare address. It returns the address part.
func parseHostURL(raw string) (string, *Error) {
	v := strings.TrimSpace(raw)
	host := v
	if strings.Contains(v, "://") {
		u, err := url.Parse(v)
		if err != nil {
			return "", ErrParam("invalid value %q for parameter url: %v; give the host as http://<address>", raw, err)
		}
		if !strings.EqualFold(u.Scheme, "http") {
			return "", ErrParam("invalid value %q for parameter url: a KVM host is given as http://<address>, not with scheme %s", raw, u.Scheme)
		}
		host = u.Hostname()
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return a.String(), nil
	}
	if !validHostname(host) {
		return "", ErrParam("invalid value %q for parameter url: %q is neither an IP address nor a DNS name; give the host as http://<address>", raw, host)
	}
	return strings.ToLower(host), nil
}

// validHostname reports whether s is a DNS name: dot-separated labels of
// letters, digits and inner hyphens, each 1-63 long, 253 at most in all.
func validHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
				return false
			}
		}
	}
	return true
}

// hostCluster resolves addHost's cluster: clusterid, or clustername in the
// pod, making that cluster (as CloudStack does) when the pod has none of
// that name; create is then the op that adds it.
func hostCluster(r *Request, pod *fsm.Pod) (c *fsm.Cluster, create *fsm.Cluster, e *Error) {
	p := r.Params
	if given(p, "clusterid") {
		if c, e = lookupCluster(r, "clusterid"); e != nil {
			return nil, nil, e
		}
		if c.PodID != pod.ID {
			return nil, nil, ErrParam("cluster %s (%s) is not in pod %s (%s): give a cluster of that pod", c.Name, c.ID, pod.Name, pod.ID)
		}
		return c, nil, nil
	}
	if !given(p, "clustername") {
		return nil, nil, ErrParam("give clusterid, or clustername to name (or make) the host's cluster in the pod")
	}
	name := strings.TrimSpace(p.String("clustername"))
	found, err := fsm.List[fsm.Cluster](r.State(), nil, fsm.TableClusters, "name", pod.ZoneID, name)
	if err != nil {
		return nil, nil, ErrInternal("cluster lookup failed")
	}
	if len(found) > 0 {
		if c = found[0]; c.PodID != pod.ID {
			return nil, nil, ErrParam("cluster %s is in another pod of the zone (%s); cluster names are unique in a zone", c.Name, c.PodID)
		}
		return c, nil, nil
	}
	c = newCluster(r, pod, name, fsm.AllocationEnabled)
	return c, c, nil
}

func addHost(r *Request) (any, *Error) {
	p := r.Params
	zone, e := lookupZone(r, "zoneid")
	if e != nil {
		return nil, e
	}
	pod, e := podOfZone(r, zone)
	if e != nil {
		return nil, e
	}
	if _, e := hypervisorParam(p, "hypervisor"); e != nil {
		return nil, e
	}
	addr, e := parseHostURL(p.String("url"))
	if e != nil {
		return nil, e
	}
	alloc, e := allocationParam(p, "allocationstate", fsm.AllocationEnabled)
	if e != nil {
		return nil, e
	}
	cluster, newCl, e := hostCluster(r, pod)
	if e != nil {
		return nil, e
	}
	if cluster.HypervisorType != fsm.HypervisorKVM {
		return nil, ErrParam("cluster %s runs %s, not KVM", cluster.Name, cluster.HypervisorType)
	}
	now := r.srv.now().UTC()
	h := &fsm.Host{
		ID: newID(), Name: addr, ZoneID: zone.ID, PodID: pod.ID, ClusterID: cluster.ID, Type: fsm.HostTypeRouting,
		HypervisorType: fsm.HypervisorKVM, IPAddress: addr, URL: "http://" + hostForURL(addr), State: fsm.HostStateDisconnected,
		ResourceState: alloc, HostTags: listParam(p, "hosttags"), Token: fsm.NewKey(32), HAState: fsm.HAStateDisabled,
		Created: now,
	}
	var ops []fsm.TxnOp
	if newCl != nil {
		ops = append(ops, fsm.Create(fsm.TableClusters, newCl),
			r.event("CLUSTER.CREATE", resCluster, newCl.ID, "added cluster %s to pod %s for host %s", newCl.Name, pod.Name, addr))
	}
	ops = append(ops, fsm.Create(fsm.TableHosts, h),
		r.event("HOST.CREATE", resHost, h.ID, "added host %s to cluster %s", h.Name, cluster.Name))
	if e := r.commit(ops...); e != nil {
		return nil, e
	}
	resp, e := hostResponseOf(r, h.ID)
	if e != nil {
		return nil, e
	}
	// CloudStack answers addHost with a list of the hosts it added.
	return ListBody("host", 1, []hostResponse{resp}), nil
}

// hostForURL puts an IPv6 address in brackets for a URL.
func hostForURL(addr string) string {
	if a, err := netip.ParseAddr(addr); err == nil && a.Is6() {
		return "[" + addr + "]"
	}
	return addr
}

// hostResponseOf reads back a committed host.
func hostResponseOf(r *Request, id string) (hostResponse, *Error) {
	h, e := readBack[fsm.Host](r, fsm.TableHosts, id)
	if e != nil {
		return hostResponse{}, e
	}
	return toHostResponse(newInfraNames(r.State()), h), nil
}

func updateHost(r *Request) (any, *Error) {
	p := r.Params
	cur, e := lookupHost(r, "id")
	if e != nil {
		return nil, e
	}
	h := cur.Copy()
	if given(p, "name") {
		if h.Name, e = requiredName(p, "name"); e != nil {
			return nil, e
		}
	}
	if given(p, "allocationstate") {
		state, e := allocationParam(p, "allocationstate", "")
		if e != nil {
			return nil, ErrParam("invalid value %q for parameter allocationstate: use Enable or Disable", p.String("allocationstate"))
		}
		switch cur.ResourceState {
		case fsm.ResourceStateEnabled, fsm.ResourceStateDisabled:
			h.ResourceState = state // AllocationEnabled/Disabled equal ResourceStateEnabled/Disabled
		default:
			return nil, ErrParam("host %s is in resource state %s; cancel its maintenance before enabling or disabling it", cur.Name, cur.ResourceState)
		}
	}
	if p.Has("hosttags") {
		h.HostTags = listParam(p, "hosttags")
	}
	if p.Has("annotation") {
		h.Annotation = strings.TrimSpace(p.String("annotation"))
		h.AnnotatedBy, h.LastAnnotated = r.Caller.Username, r.srv.now().UTC()
		if h.Annotation == "" {
			h.AnnotatedBy = ""
		}
	}
	if e := r.commit(fsm.Update(fsm.TableHosts, h), r.event("HOST.UPDATE", resHost, h.ID, "updated host %s", h.Name)); e != nil {
		return nil, e
	}
	resp, e := hostResponseOf(r, h.ID)
	if e != nil {
		return nil, e
	}
	return map[string]any{"host": resp}, nil
}

func deleteHost(r *Request) (any, *Error) {
	p := r.Params
	h, e := lookupHost(r, "id")
	if e != nil {
		return nil, e
	}
	forced, e := p.Bool("forced", false)
	if e != nil {
		return nil, e
	}
	if _, e := p.Bool("forcedestroylocalstorage", false); e != nil {
		return nil, e
	}
	if !forced && h.State == fsm.HostStateUp && h.ResourceState != fsm.ResourceStateMaintenance {
		return nil, &Error{Code: ErrCodeInternal, CSCode: CSCloudRuntime, Text: "host " + h.ID +
			" cannot be deleted while its agent is connected and it is not in maintenance: put the host into maintenance, or delete it with forced=true"}
	}
	pools, err := fsm.List[fsm.StoragePool](r.State(), nil, fsm.TableStoragePools, "host", h.ID)
	if err != nil {
		return nil, ErrInternal("storage pool scan failed")
	}
	var ops []fsm.TxnOp
	for _, sp := range pools {
		ops = append(ops, fsm.Delete(fsm.TableStoragePools, sp.ID),
			r.event("DELETE.PS", resStoragePool, sp.ID, "deleted local storage pool %s with host %s", sp.Name, h.Name))
	}
	ops = append(ops, fsm.Delete(fsm.TableHosts, h.ID), r.event("HOST.DELETE", resHost, h.ID, "deleted host %s", h.Name))
	if e := r.commit(ops...); e != nil {
		return nil, e
	}
	return successBody(), nil
}

func listHosts(r *Request) (any, *Error) {
	p := r.Params
	var hosts iter.Seq[*fsm.Host]
	if given(p, "id") {
		h, e := lookupHost(r, "id")
		if e != nil {
			return nil, e
		}
		hosts = slices.Values([]*fsm.Host{h})
	} else {
		var err error
		if hosts, err = fsm.Rows[fsm.Host](r.State(), nil, fsm.TableHosts, "create"); err != nil {
			return nil, ErrInternal(fsm.TableHosts + " scan failed")
		}
	}
	if e := checkFilterIDs(r); e != nil {
		return nil, e
	}
	haHost, e := p.Bool("hahost", false)
	if e != nil {
		return nil, e
	}
	oobm, e := p.Bool("outofbandmanagementenabled", false)
	if e != nil {
		return nil, e
	}
	if given(p, "hahost") && haHost {
		return ListBody("host", 0, nil), nil // no host is an HA-reserved host
	}
	zoneID, podID, clusterID := strings.ToLower(p.String("zoneid")), strings.ToLower(p.String("podid")), strings.ToLower(p.String("clusterid"))
	name, kw := p.String("name"), strings.ToLower(p.String("keyword"))
	typ, state, resState, hv := p.String("type"), p.String("state"), p.String("resourcestate"), p.String("hypervisor")
	byOOBM := given(p, "outofbandmanagementenabled")
	words := newKeywordMatcher(kw)
	pg, e := pageParams[*fsm.Host](r)
	if e != nil {
		return nil, e
	}
	for h := range hosts {
		if (zoneID != "" && h.ZoneID != zoneID) || (podID != "" && h.PodID != podID) || (clusterID != "" && h.ClusterID != clusterID) ||
			(name != "" && !strings.EqualFold(h.Name, name)) || !eqFold(typ, h.Type) || !eqFold(state, h.State) ||
			!eqFold(resState, h.ResourceState) || !eqFold(hv, h.HypervisorType) ||
			(kw != "" && !words.match(h.Name) && !words.match(h.IPAddress)) ||
			(byOOBM && oobm != (h.OutOfBand != nil && h.OutOfBand.Enabled)) {
			continue
		}
		pg.add(h)
	}
	n := newInfraNames(r.State())
	out := make([]hostResponse, 0, len(pg.page))
	for _, h := range pg.page {
		out = append(out, toHostResponse(n, h))
	}
	return ListBody("host", pg.total, out), nil
}
