package api

import (
	"net/netip"
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
)

// Pods. A pod is one management subnet of a zone (gateway and netmask) with
// ranges of it reserved for system use. Like CloudStack 4.18, a pod answers
// its ranges both as the parallel lists startip, endip, forsystemvms and
// vlanid and as ipranges.

// untaggedVlan is how CloudStack names a range without a VLAN.
const untaggedVlan = "vlan://untagged"

type podIPRangeResponse struct {
	StartIP      string `json:"startip"`
	EndIP        string `json:"endip"`
	ForSystemVMs string `json:"forsystemvms"`
	VlanID       string `json:"vlanid"`
	Gateway      string `json:"gateway,omitempty"`
	CIDR         string `json:"cidr,omitempty"`
}

type podResponse struct {
	ID              string               `json:"id"`
	Name            string               `json:"name"`
	ZoneID          string               `json:"zoneid"`
	ZoneName        string               `json:"zonename"`
	Gateway         string               `json:"gateway"`
	Netmask         string               `json:"netmask"`
	StartIP         []string             `json:"startip,omitempty"`
	EndIP           []string             `json:"endip,omitempty"`
	ForSystemVMs    []string             `json:"forsystemvms,omitempty"`
	VlanID          []string             `json:"vlanid,omitempty"`
	IPRanges        []podIPRangeResponse `json:"ipranges,omitempty"`
	AllocationState string               `json:"allocationstate"`
	HasAnnotations  bool                 `json:"hasannotations"`
	Capacity        []capacityResponse   `json:"capacity,omitempty"`
}

var podFields = withJobFields(
	ResponseField{Name: "id", Type: "string", Description: "Pod ID."},
	ResponseField{Name: "name", Type: "string", Description: "Pod name."},
	ResponseField{Name: "zoneid", Type: "string", Description: "ID of the pod's zone."},
	ResponseField{Name: "zonename", Type: "string", Description: "Name of the pod's zone."},
	ResponseField{Name: "gateway", Type: "string", Description: "Gateway of the pod's management subnet."},
	ResponseField{Name: "netmask", Type: "string", Description: "Netmask of the pod's management subnet."},
	ResponseField{Name: "startip", Type: "list", Description: "First address of each reserved range."},
	ResponseField{Name: "endip", Type: "list", Description: "Last address of each reserved range."},
	ResponseField{Name: "forsystemvms", Type: "list", Description: "For each range, 1 when only system VMs draw from it, else 0."},
	ResponseField{Name: "vlanid", Type: "list", Description: "VLAN of each range; vlan://untagged for none."},
	ResponseField{Name: "ipranges", Type: "list", Description: "The reserved ranges as objects: startip, endip, forsystemvms, vlanid, gateway, cidr."},
	ResponseField{Name: "allocationstate", Type: "string", Description: "Enabled when new resources may be placed in the pod, else Disabled."},
	ResponseField{Name: "hasannotations", Type: "boolean", Description: "Whether operators left comments on the pod."},
	ResponseField{Name: "capacity", Type: "list", Description: "The pod's capacities, with showcapacities=true."},
)

func init() {
	registerCommands(func(*Server) []*Command {
		netParams := []ParamSpec{
			{Name: "gateway", Type: "string", Description: "Gateway of the pod's management subnet (needed to create a pod)."},
			{Name: "netmask", Type: "string", Description: "Netmask of that subnet, dotted, e.g. 255.255.255.0 (needed to create a pod)."},
			{Name: "startip", Type: "string", Description: "First address of the range reserved for system use."},
			{Name: "endip", Type: "string", Description: "Last address of that range; the subnet's last usable address when absent."},
			{Name: "allocationstate", Type: "string", Description: "Enabled or Disabled."},
		}
		return []*Command{
			{
				Name: "createPod", Description: "Creates a pod, a management subnet of a zone that holds clusters of hosts.",
				Write: true, Access: AccessRootAdmin, ObjectName: "pod", Related: "listPods", Response: podFields,
				Params: append([]ParamSpec{
					{Name: "zoneid", Type: "uuid", Required: true, Description: "Zone of the new pod.", Related: "listZones"},
					{Name: "name", Type: "string", Required: true, Description: "Name of the pod; unique in its zone."},
				}, netParams...),
				Handler: createPod,
			},
			{
				Name: "updatePod", Description: "Renames a pod, changes its subnet or reserved range, or enables or disables it.",
				Write: true, Access: AccessRootAdmin, ObjectName: "pod", Related: "listPods", Response: podFields,
				Params: append([]ParamSpec{
					{Name: "id", Type: "uuid", Required: true, Description: "ID of the pod.", Related: "listPods"},
					{Name: "name", Type: "string", Description: "New name; unique in the zone."},
				}, netParams...),
				Handler: updatePod,
			},
			{
				Name: "deletePod", Description: "Deletes a pod that holds no clusters, hosts or storage any more.",
				Write: true, Access: AccessRootAdmin, Response: successResponse,
				Params:  []ParamSpec{{Name: "id", Type: "uuid", Required: true, Description: "ID of the pod.", Related: "listPods"}},
				Handler: deletePod,
			},
			{
				Name: "listPods", Description: "Lists pods, oldest first.", Access: AccessRootAdmin,
				ObjectName: "pod", Related: "createPod", Response: podFields,
				Params: withPaging(
					ParamSpec{Name: "id", Type: "uuid", Description: "Only the pod with this ID.", Related: "listPods"},
					ParamSpec{Name: "name", Type: "string", Description: "Only pods with this name."},
					ParamSpec{Name: "zoneid", Type: "uuid", Description: "Only pods of this zone.", Related: "listZones"},
					ParamSpec{Name: "allocationstate", Type: "string", Description: "Only pods in this allocation state."},
					ParamSpec{Name: "showcapacities", Type: "boolean", Description: "Add each pod's capacities."},
				),
				Handler: listPods,
			},
		}
	})
}

func toPodResponse(n *infraNames, p *fsm.Pod) podResponse {
	out := podResponse{
		ID: p.ID, Name: p.Name, ZoneID: p.ZoneID, ZoneName: n.zone(p.ZoneID), Gateway: p.Gateway, Netmask: p.Netmask,
		AllocationState: p.AllocationState,
	}
	cidr := ""
	if bits, e := netmaskBits(p.Netmask, "netmask"); e == nil {
		if gw, err := netip.ParseAddr(p.Gateway); err == nil {
			cidr = netip.PrefixFrom(gw, bits).Masked().String()
		}
	}
	for _, rg := range p.IPRanges {
		sys, vlan := "0", untaggedVlan
		if rg.ForSystemVMs {
			sys = "1"
		}
		if rg.VlanID != "" {
			vlan = rg.VlanID
		}
		out.StartIP = append(out.StartIP, rg.StartIP)
		out.EndIP = append(out.EndIP, rg.EndIP)
		out.ForSystemVMs = append(out.ForSystemVMs, sys)
		out.VlanID = append(out.VlanID, vlan)
		out.IPRanges = append(out.IPRanges, podIPRangeResponse{StartIP: rg.StartIP, EndIP: rg.EndIP, ForSystemVMs: sys, VlanID: vlan,
			Gateway: p.Gateway, CIDR: cidr})
	}
	return out
}

// podSubnet returns the subnet a gateway and netmask describe.
func podSubnet(gateway, netmask string) (netip.Prefix, bool) {
	gw, err := netip.ParseAddr(gateway)
	if err != nil || !gw.Is4() {
		return netip.Prefix{}, false
	}
	bits, e := netmaskBits(netmask, "netmask")
	if e != nil {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(gw, bits).Masked(), true
}

// podNetwork works out a pod's gateway, netmask and ranges from the
// parameters over the pod's current values (cur is nil for a new pod), and
// checks them: addresses are IPv4, the mask contiguous, every range inside
// the subnet in the right order, and the gateway in the subnet but in no
// range.
func podNetwork(p Params, cur *fsm.Pod) (gateway, netmask string, ranges []fsm.PodIPRange, e *Error) {
	if cur != nil {
		gateway, netmask, ranges = cur.Gateway, cur.Netmask, append([]fsm.PodIPRange(nil), cur.IPRanges...)
	}
	if v := strings.TrimSpace(p.String("gateway")); v != "" {
		gateway = v
	}
	if v := strings.TrimSpace(p.String("netmask")); v != "" {
		netmask = v
	}
	if gateway == "" {
		return "", "", nil, ErrMissingParam(p.Cmd, "gateway")
	}
	if netmask == "" {
		return "", "", nil, ErrMissingParam(p.Cmd, "netmask")
	}
	gw, e := parseIPv4(gateway, "gateway")
	if e != nil {
		return "", "", nil, e
	}
	bits, e := netmaskBits(netmask, "netmask")
	if e != nil {
		return "", "", nil, e
	}
	subnet := netip.PrefixFrom(gw, bits).Masked()
	network := u32(subnet.Addr())
	broadcast := network | (1<<(32-bits) - 1)
	if g := u32(gw); g == network || g == broadcast {
		return "", "", nil, ErrParam("invalid value %q for parameter gateway: it is the network or broadcast address of %s; give a usable address of the subnet", gateway, subnet)
	}
	start, end := strings.TrimSpace(p.String("startip")), strings.TrimSpace(p.String("endip"))
	if start != "" || end != "" {
		if len(ranges) > 1 {
			return "", "", nil, ErrParam("the pod has %d address ranges; startip and endip can only change a pod with one", len(ranges))
		}
		var rg fsm.PodIPRange
		if len(ranges) == 1 {
			rg = ranges[0]
		}
		if start != "" {
			rg.StartIP = start
		}
		if rg.StartIP == "" {
			return "", "", nil, ErrMissingParam(p.Cmd, "startip")
		}
		if end != "" {
			rg.EndIP = end
		} else if rg.EndIP == "" || len(ranges) == 0 {
			rg.EndIP = addrOf(broadcast - 1).String()
		}
		ranges = []fsm.PodIPRange{rg}
	}
	for i, rg := range ranges {
		if e := checkPodRange(subnet, gw, rg); e != nil {
			return "", "", nil, e
		}
		for _, other := range ranges[:i] {
			if u32(netip.MustParseAddr(rg.StartIP)) <= u32(netip.MustParseAddr(other.EndIP)) &&
				u32(netip.MustParseAddr(other.StartIP)) <= u32(netip.MustParseAddr(rg.EndIP)) {
				return "", "", nil, ErrParam("range %s-%s overlaps range %s-%s of the pod", rg.StartIP, rg.EndIP, other.StartIP, other.EndIP)
			}
		}
	}
	return gw.String(), netmask, ranges, nil
}

// checkPodRange checks one range against the pod's subnet and gateway.
func checkPodRange(subnet netip.Prefix, gw netip.Addr, rg fsm.PodIPRange) *Error {
	parse := func(param, v string) (uint32, *Error) {
		a, e := parseIPv4(v, param)
		if e != nil {
			return 0, e
		}
		bits := subnet.Bits()
		network := u32(subnet.Addr())
		broadcast := network | (1<<(32-bits) - 1)
		if x := u32(a); !subnet.Contains(a) || x == network || x == broadcast {
			return 0, ErrParam("invalid value %q for parameter %s: it is not a usable address of the pod's subnet %s (gateway %s)", v, param, subnet, gw)
		}
		return u32(a), nil
	}
	s, e := parse("startip", rg.StartIP)
	if e != nil {
		return e
	}
	end, e := parse("endip", rg.EndIP)
	if e != nil {
		return e
	}
	if s > end {
		return ErrParam("startip %s comes after endip %s: give the lower address as startip", rg.StartIP, rg.EndIP)
	}
	if g := u32(gw); s <= g && g <= end {
		return ErrParam("the gateway %s lies inside the range %s-%s: keep the gateway out of the reserved range", gw, rg.StartIP, rg.EndIP)
	}
	return nil
}

// checkPodSubnetFree fails when another pod of the zone has a subnet that
// overlaps subnet.
func checkPodSubnetFree(r *Request, zoneID, selfID string, subnet netip.Prefix) *Error {
	pods, err := fsm.List[fsm.Pod](r.State(), nil, fsm.TablePods, "zone", zoneID)
	if err != nil {
		return ErrInternal("pod scan failed")
	}
	for _, other := range pods {
		if other.ID == selfID {
			continue
		}
		if os, ok := podSubnet(other.Gateway, other.Netmask); ok && os.Overlaps(subnet) {
			return ErrParam("the pod's subnet %s overlaps the subnet %s of pod %s in this zone; pods of a zone need separate subnets", subnet, os, other.Name)
		}
	}
	return nil
}

func createPod(r *Request) (any, *Error) {
	p := r.Params
	zone, e := lookupZone(r, "zoneid")
	if e != nil {
		return nil, e
	}
	name, e := requiredName(p, "name")
	if e != nil {
		return nil, e
	}
	gw, mask, ranges, e := podNetwork(p, nil)
	if e != nil {
		return nil, e
	}
	alloc, e := allocationParam(p, "allocationstate", fsm.AllocationEnabled)
	if e != nil {
		return nil, e
	}
	subnet, _ := podSubnet(gw, mask)
	if e := checkPodSubnetFree(r, zone.ID, "", subnet); e != nil {
		return nil, e
	}
	pod := &fsm.Pod{ID: newID(), Name: name, ZoneID: zone.ID, Gateway: gw, Netmask: mask, IPRanges: ranges,
		AllocationState: alloc, Created: r.srv.now().UTC()}
	if e := r.commit(fsm.Create(fsm.TablePods, pod),
		r.event("POD.CREATE", resPod, pod.ID, "created pod %s in zone %s", pod.Name, zone.Name)); e != nil {
		return nil, e
	}
	return podBody(r, pod.ID)
}

// podBody answers with the stored pod, as committed.
func podBody(r *Request, id string) (any, *Error) {
	pod, e := readBack[fsm.Pod](r, fsm.TablePods, id)
	if e != nil {
		return nil, e
	}
	return map[string]any{"pod": toPodResponse(newInfraNames(r.State()), pod)}, nil
}

func updatePod(r *Request) (any, *Error) {
	p := r.Params
	cur, e := lookupPod(r, "id")
	if e != nil {
		return nil, e
	}
	pod := cur.Copy()
	if p.Has("name") {
		if pod.Name, e = requiredName(p, "name"); e != nil {
			return nil, e
		}
	}
	if pod.Gateway, pod.Netmask, pod.IPRanges, e = podNetwork(p, cur); e != nil {
		return nil, e
	}
	if pod.AllocationState, e = allocationParam(p, "allocationstate", cur.AllocationState); e != nil {
		return nil, e
	}
	if subnet, _ := podSubnet(pod.Gateway, pod.Netmask); pod.Gateway != cur.Gateway || pod.Netmask != cur.Netmask {
		if e := checkPodSubnetFree(r, pod.ZoneID, pod.ID, subnet); e != nil {
			return nil, e
		}
	}
	if e := r.commit(fsm.Update(fsm.TablePods, pod), r.event("POD.EDIT", resPod, pod.ID, "updated pod %s", pod.Name)); e != nil {
		return nil, e
	}
	return podBody(r, pod.ID)
}

func deletePod(r *Request) (any, *Error) {
	pod, e := lookupPod(r, "id")
	if e != nil {
		return nil, e
	}
	if e := r.commit(fsm.Delete(fsm.TablePods, pod.ID), r.event("POD.DELETE", resPod, pod.ID, "deleted pod %s", pod.Name)); e != nil {
		return nil, e
	}
	return successBody(), nil
}

func listPods(r *Request) (any, *Error) {
	p := r.Params
	showCap, e := p.Bool("showcapacities", false)
	if e != nil {
		return nil, e
	}
	var pods []*fsm.Pod
	if given(p, "id") {
		pod, e := lookupPod(r, "id")
		if e != nil {
			return nil, e
		}
		pods = []*fsm.Pod{pod}
	} else if pods, e = listRows[fsm.Pod](r, fsm.TablePods); e != nil {
		return nil, e
	}
	if e := checkFilterIDs(r); e != nil {
		return nil, e
	}
	zoneID, name, alloc := strings.ToLower(p.String("zoneid")), p.String("name"), p.String("allocationstate")
	kw := strings.ToLower(p.String("keyword"))
	n := newInfraNames(r.State())
	var out []podResponse
	for _, pod := range pods {
		if (zoneID != "" && pod.ZoneID != zoneID) || (name != "" && !strings.EqualFold(pod.Name, name)) ||
			!eqFold(alloc, pod.AllocationState) || !keywordMatch(kw, pod.Name) {
			continue
		}
		resp := toPodResponse(n, pod)
		if showCap {
			resp.Capacity = computeCapacity(r.State(), n, capacityQuery{zoneID: pod.ZoneID, podID: pod.ID, level: levelPod})
		}
		out = append(out, resp)
	}
	return pagedList(r, "pod", out)
}
