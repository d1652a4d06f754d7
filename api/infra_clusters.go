package api

import (
	"strconv"
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
)

// Clusters: KVM hosts of a pod that share primary storage. Stratus manages
// its clusters itself (CloudManaged); external managers (vCenter) do not
// apply to KVM.
//
// Overcommit ratios: CloudStack keeps cpuovercommitratio and
// memoryovercommitratio as cluster-scoped settings (cpu.overprovisioning.factor
// and mem.overprovisioning.factor, changed by updateConfiguration with
// clusterid; 4.18's updateCluster has no parameter for them). Stratus stores
// them as fields of the cluster row, 0 meaning "the cloud-wide setting",
// and shows the ratio in force in the response and in resourcedetails
// under CloudStack's detail keys. setClusterOvercommit is the write path for
// updateConfiguration's clusterid.

// Detail keys CloudStack shows the cluster's ratios under.
const (
	detailCPUOvercommit    = "cpuOvercommitRatio"
	detailMemoryOvercommit = "memoryOvercommitRatio"
)

type clusterResponse struct {
	ID                    string             `json:"id"`
	Name                  string             `json:"name"`
	PodID                 string             `json:"podid"`
	PodName               string             `json:"podname"`
	ZoneID                string             `json:"zoneid"`
	ZoneName              string             `json:"zonename"`
	HypervisorType        string             `json:"hypervisortype"`
	ClusterType           string             `json:"clustertype"`
	AllocationState       string             `json:"allocationstate"`
	ManagedState          string             `json:"managedstate"`
	CPUOvercommitRatio    string             `json:"cpuovercommitratio"`
	MemoryOvercommitRatio string             `json:"memoryovercommitratio"`
	HasAnnotations        bool               `json:"hasannotations"`
	ResourceDetails       map[string]string  `json:"resourcedetails,omitempty"`
	Capacity              []capacityResponse `json:"capacity,omitempty"`
}

var clusterFields = withJobFields(
	ResponseField{Name: "id", Type: "string", Description: "Cluster ID."},
	ResponseField{Name: "name", Type: "string", Description: "Cluster name."},
	ResponseField{Name: "podid", Type: "string", Description: "ID of the cluster's pod."},
	ResponseField{Name: "podname", Type: "string", Description: "Name of the cluster's pod."},
	ResponseField{Name: "zoneid", Type: "string", Description: "ID of the cluster's zone."},
	ResponseField{Name: "zonename", Type: "string", Description: "Name of the cluster's zone."},
	ResponseField{Name: "hypervisortype", Type: "string", Description: "Hypervisor of the cluster's hosts: KVM."},
	ResponseField{Name: "clustertype", Type: "string", Description: "CloudManaged: Stratus manages the hosts itself."},
	ResponseField{Name: "allocationstate", Type: "string", Description: "Enabled when new VMs may be placed in the cluster, else Disabled."},
	ResponseField{Name: "managedstate", Type: "string", Description: "Managed, or Unmanaged while an operator has taken the cluster out of management."},
	ResponseField{Name: "cpuovercommitratio", Type: "string", Description: "How many times its CPU capacity the cluster's hosts may hand out."},
	ResponseField{Name: "memoryovercommitratio", Type: "string", Description: "How many times its memory the cluster's hosts may hand out."},
	ResponseField{Name: "hasannotations", Type: "boolean", Description: "Whether operators left comments on the cluster."},
	ResponseField{Name: "resourcedetails", Type: "map", Description: "The cluster's settings, the overcommit ratios included."},
	ResponseField{Name: "capacity", Type: "list", Description: "The cluster's capacities, with showcapacities=true."},
)

func init() {
	registerCommands(func(*Server) []*Command {
		return []*Command{
			{
				Name: "addCluster", Description: "Adds a cluster of KVM hosts to a pod.",
				Write: true, Access: AccessRootAdmin, ObjectName: "cluster", Related: "listClusters", Response: clusterFields,
				Params: []ParamSpec{
					{Name: "zoneid", Type: "uuid", Required: true, Description: "Zone of the cluster.", Related: "listZones"},
					{Name: "podid", Type: "uuid", Required: true, Description: "Pod of the cluster, in that zone.", Related: "listPods"},
					{Name: "clustername", Type: "string", Required: true, Description: "Name of the cluster; unique in its zone."},
					{Name: "hypervisor", Type: "string", Required: true, Description: "Hypervisor of the cluster's hosts: KVM."},
					{Name: "clustertype", Type: "string", Required: true, Description: "CloudManaged."},
					{Name: "allocationstate", Type: "string", Description: "Enabled (the default) or Disabled."},
				},
				Handler: addCluster,
			},
			{
				Name: "updateCluster", Description: "Renames a cluster, enables or disables it, or changes its managed state.",
				Write: true, Access: AccessRootAdmin, ObjectName: "cluster", Related: "listClusters", Response: clusterFields,
				Params: []ParamSpec{
					{Name: "id", Type: "uuid", Required: true, Description: "ID of the cluster.", Related: "listClusters"},
					{Name: "clustername", Type: "string", Description: "New name; unique in the zone."},
					{Name: "allocationstate", Type: "string", Description: "Enabled or Disabled."},
					{Name: "managedstate", Type: "string", Description: "Managed or Unmanaged."},
					{Name: "hypervisor", Type: "string", Description: "Accepted when it names the cluster's own hypervisor, KVM."},
					{Name: "clustertype", Type: "string", Description: "Accepted when it names the cluster's own type, CloudManaged."},
				},
				Handler: updateCluster,
			},
			{
				Name: "deleteCluster", Description: "Deletes a cluster that holds no hosts or storage pools any more.",
				Write: true, Access: AccessRootAdmin, Response: successResponse,
				Params:  []ParamSpec{{Name: "id", Type: "uuid", Required: true, Description: "ID of the cluster.", Related: "listClusters"}},
				Handler: deleteCluster,
			},
			{
				Name: "listClusters", Description: "Lists clusters, oldest first.", Access: AccessRootAdmin,
				ObjectName: "cluster", Related: "addCluster", Response: clusterFields,
				Params: withPaging(
					ParamSpec{Name: "id", Type: "uuid", Description: "Only the cluster with this ID.", Related: "listClusters"},
					ParamSpec{Name: "name", Type: "string", Description: "Only clusters with this name."},
					ParamSpec{Name: "zoneid", Type: "uuid", Description: "Only clusters of this zone.", Related: "listZones"},
					ParamSpec{Name: "podid", Type: "uuid", Description: "Only clusters of this pod.", Related: "listPods"},
					ParamSpec{Name: "hypervisor", Type: "string", Description: "Only clusters of this hypervisor."},
					ParamSpec{Name: "clustertype", Type: "string", Description: "Only clusters of this type."},
					ParamSpec{Name: "allocationstate", Type: "string", Description: "Only clusters in this allocation state."},
					ParamSpec{Name: "managedstate", Type: "string", Description: "Only clusters in this managed state."},
					ParamSpec{Name: "showcapacities", Type: "boolean", Description: "Add each cluster's capacities."},
				),
				Handler: listClusters,
			},
		}
	})
}

func toClusterResponse(n *infraNames, c *fsm.Cluster) clusterResponse {
	cpu, mem := n.overcommit(c.ID)
	details := map[string]string{detailCPUOvercommit: formatRatio(cpu), detailMemoryOvercommit: formatRatio(mem)}
	for k, v := range c.Details {
		details[k] = v
	}
	return clusterResponse{
		ID: c.ID, Name: c.Name, PodID: c.PodID, PodName: n.pod(c.PodID), ZoneID: c.ZoneID, ZoneName: n.zone(c.ZoneID),
		HypervisorType: c.HypervisorType, ClusterType: c.ClusterType, AllocationState: c.AllocationState, ManagedState: c.ManagedState,
		CPUOvercommitRatio: formatRatio(cpu), MemoryOvercommitRatio: formatRatio(mem), ResourceDetails: details,
	}
}

// clusterTypeParam reads a cluster type: only CloudManaged.
func clusterTypeParam(p Params, param string) (string, *Error) {
	v := strings.TrimSpace(p.String(param))
	if v == "" || strings.EqualFold(v, fsm.ClusterTypeCloudManaged) {
		return fsm.ClusterTypeCloudManaged, nil
	}
	return "", ErrParam("invalid value %q for parameter %s: KVM clusters are CloudManaged; external managers do not apply", v, param)
}

// newCluster builds a KVM cluster of a pod.
func newCluster(r *Request, pod *fsm.Pod, name, alloc string) *fsm.Cluster {
	return &fsm.Cluster{ID: newID(), Name: name, ZoneID: pod.ZoneID, PodID: pod.ID, HypervisorType: fsm.HypervisorKVM,
		ClusterType: fsm.ClusterTypeCloudManaged, AllocationState: alloc, ManagedState: fsm.ManagedStateManaged,
		Created: r.srv.now().UTC()}
}

func addCluster(r *Request) (any, *Error) {
	p := r.Params
	zone, e := lookupZone(r, "zoneid")
	if e != nil {
		return nil, e
	}
	pod, e := podOfZone(r, zone)
	if e != nil {
		return nil, e
	}
	name, e := requiredName(p, "clustername")
	if e != nil {
		return nil, e
	}
	if _, e := hypervisorParam(p, "hypervisor"); e != nil {
		return nil, e
	}
	if _, e := clusterTypeParam(p, "clustertype"); e != nil {
		return nil, e
	}
	alloc, e := allocationParam(p, "allocationstate", fsm.AllocationEnabled)
	if e != nil {
		return nil, e
	}
	c := newCluster(r, pod, name, alloc)
	if e := r.commit(fsm.Create(fsm.TableClusters, c),
		r.event("CLUSTER.CREATE", resCluster, c.ID, "added cluster %s to pod %s", c.Name, pod.Name)); e != nil {
		return nil, e
	}
	// CloudStack answers addCluster with a list of the clusters it added.
	resp, e := clusterResponseOf(r, c.ID)
	if e != nil {
		return nil, e
	}
	return ListBody("cluster", 1, []clusterResponse{resp}), nil
}

// clusterResponseOf reads back a committed cluster.
func clusterResponseOf(r *Request, id string) (clusterResponse, *Error) {
	c, e := readBack[fsm.Cluster](r, fsm.TableClusters, id)
	if e != nil {
		return clusterResponse{}, e
	}
	return toClusterResponse(newInfraNames(r.State()), c), nil
}

func updateCluster(r *Request) (any, *Error) {
	p := r.Params
	cur, e := lookupCluster(r, "id")
	if e != nil {
		return nil, e
	}
	c := cur.Copy()
	if given(p, "clustername") {
		if c.Name, e = requiredName(p, "clustername"); e != nil {
			return nil, e
		}
	}
	if _, e := hypervisorParam(p, "hypervisor"); e != nil {
		return nil, e
	}
	if _, e := clusterTypeParam(p, "clustertype"); e != nil {
		return nil, e
	}
	if c.AllocationState, e = allocationParam(p, "allocationstate", cur.AllocationState); e != nil {
		return nil, e
	}
	if given(p, "managedstate") {
		if c.ManagedState, e = canonicalChoice(p, "managedstate", fsm.ManagedStateManaged, "Unmanaged"); e != nil {
			return nil, e
		}
	}
	if e := r.commit(fsm.Update(fsm.TableClusters, c), r.event("CLUSTER.UPDATE", resCluster, c.ID, "updated cluster %s", c.Name)); e != nil {
		return nil, e
	}
	resp, e := clusterResponseOf(r, c.ID)
	if e != nil {
		return nil, e
	}
	return map[string]any{"cluster": resp}, nil
}

// setClusterOvercommit sets a cluster's own CPU or memory overcommit ratio:
// what updateConfiguration with clusterid does for the settings
// cpu.overprovisioning.factor and mem.overprovisioning.factor. An empty
// value returns the cluster to the cloud-wide setting. It reports whether
// name is one of the two settings; other names are left to the caller.
func setClusterOvercommit(r *Request, c *fsm.Cluster, name, value string) (bool, *Error) {
	if name != fsm.SettingCPUOvercommit && name != fsm.SettingMemoryOvercommit {
		return false, nil
	}
	ratio := 0.0
	if v := strings.TrimSpace(value); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 || f > 1000 {
			return true, ErrParam("invalid value %q for %s: give a ratio greater than 0, e.g. 2.0", value, name)
		}
		ratio = f
	}
	upd := c.Copy()
	if name == fsm.SettingCPUOvercommit {
		upd.CPUOvercommit = ratio
	} else {
		upd.MemoryOvercommit = ratio
	}
	return true, r.commit(fsm.Update(fsm.TableClusters, upd),
		r.event("CONFIGURATION.VALUE.EDIT", resCluster, c.ID, "set %s of cluster %s to %q", name, c.Name, value))
}

func deleteCluster(r *Request) (any, *Error) {
	c, e := lookupCluster(r, "id")
	if e != nil {
		return nil, e
	}
	if e := r.commit(fsm.Delete(fsm.TableClusters, c.ID), r.event("CLUSTER.DELETE", resCluster, c.ID, "deleted cluster %s", c.Name)); e != nil {
		return nil, e
	}
	return successBody(), nil
}

func listClusters(r *Request) (any, *Error) {
	p := r.Params
	showCap, e := p.Bool("showcapacities", false)
	if e != nil {
		return nil, e
	}
	var clusters []*fsm.Cluster
	if given(p, "id") {
		c, e := lookupCluster(r, "id")
		if e != nil {
			return nil, e
		}
		clusters = []*fsm.Cluster{c}
	} else if clusters, e = listRows[fsm.Cluster](r, fsm.TableClusters); e != nil {
		return nil, e
	}
	if e := checkFilterIDs(r); e != nil {
		return nil, e
	}
	zoneID, podID := strings.ToLower(p.String("zoneid")), strings.ToLower(p.String("podid"))
	name, kw := p.String("name"), strings.ToLower(p.String("keyword"))
	n := newInfraNames(r.State())
	var out []clusterResponse
	for _, c := range clusters {
		if (zoneID != "" && c.ZoneID != zoneID) || (podID != "" && c.PodID != podID) || (name != "" && !strings.EqualFold(c.Name, name)) ||
			!eqFold(p.String("hypervisor"), c.HypervisorType) || !eqFold(p.String("clustertype"), c.ClusterType) ||
			!eqFold(p.String("allocationstate"), c.AllocationState) || !eqFold(p.String("managedstate"), c.ManagedState) ||
			!keywordMatch(kw, c.Name) {
			continue
		}
		resp := toClusterResponse(n, c)
		if showCap {
			resp.Capacity = computeCapacity(r.State(), n, capacityQuery{zoneID: c.ZoneID, podID: c.PodID, clusterID: c.ID, level: levelCluster})
		}
		out = append(out, resp)
	}
	return pagedList(r, "cluster", out)
}
