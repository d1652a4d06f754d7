package api

import (
	"sort"
	"strconv"
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
)

// listCapacity: what the cloud holds and what placement has handed out,
// summed per zone (or per pod or cluster when asked), computed on every call
// from the replicated host, pool and image store records; there is no
// separate capacity table to fall out of step.
//
// As in CloudStack, only capacity open to placement counts: hosts whose
// resource state is Enabled, storage pools that are Up, in clusters, pods
// and zones that are not Disabled. (CloudStack marks the capacity rows of
// disabled resources Disabled and leaves them out of listCapacity.) A new
// zone is Disabled, so its capacity shows once it is enabled.

// Capacity types, numbered as CloudStack numbers them.
const (
	CapacityMemory           = 0
	CapacityCPU              = 1
	CapacityStorage          = 2 // primary storage, used bytes as measured
	CapacityStorageAllocated = 3 // primary storage, bytes handed out to volumes
	CapacitySecondary        = 6
	CapacityLocalStorage     = 9
)

var capacityNames = map[int]string{
	CapacityMemory: "MEMORY", CapacityCPU: "CPU", CapacityStorage: "STORAGE",
	CapacityStorageAllocated: "STORAGE_ALLOCATED", CapacitySecondary: "SECONDARY_STORAGE",
	CapacityLocalStorage: "LOCAL_STORAGE",
}

type capacityResponse struct {
	Type              int    `json:"type"`
	Name              string `json:"name"`
	ZoneID            string `json:"zoneid"`
	ZoneName          string `json:"zonename"`
	PodID             string `json:"podid,omitempty"`
	PodName           string `json:"podname,omitempty"`
	ClusterID         string `json:"clusterid,omitempty"`
	ClusterName       string `json:"clustername,omitempty"`
	CapacityTotal     int64  `json:"capacitytotal"`
	CapacityUsed      int64  `json:"capacityused"`
	CapacityAllocated int64  `json:"capacityallocated"`
	PercentUsed       string `json:"percentused"`
	percent           float64
}

var capacityFields = withJobFields(
	ResponseField{Name: "type", Type: "short", Description: "Capacity type: 0 memory, 1 CPU, 2 primary storage used, 3 primary storage allocated, 6 secondary storage, 9 local storage."},
	ResponseField{Name: "name", Type: "string", Description: "Name of the capacity type, e.g. CPU or MEMORY."},
	ResponseField{Name: "zoneid", Type: "string", Description: "Zone the figures belong to."},
	ResponseField{Name: "zonename", Type: "string", Description: "Name of that zone."},
	ResponseField{Name: "podid", Type: "string", Description: "Pod the figures belong to, when summed per pod or cluster."},
	ResponseField{Name: "podname", Type: "string", Description: "Name of that pod."},
	ResponseField{Name: "clusterid", Type: "string", Description: "Cluster the figures belong to, when summed per cluster."},
	ResponseField{Name: "clustername", Type: "string", Description: "Name of that cluster."},
	ResponseField{Name: "capacitytotal", Type: "long", Description: "Total capacity, overcommit included: MHz for CPU, bytes otherwise."},
	ResponseField{Name: "capacityused", Type: "long", Description: "Capacity in use."},
	ResponseField{Name: "capacityallocated", Type: "long", Description: "Capacity handed out to VMs and volumes."},
	ResponseField{Name: "percentused", Type: "string", Description: "Used as a percentage of total, with up to two decimals."},
)

// capacityLevel is how finely figures are summed.
type capacityLevel int

const (
	levelZone capacityLevel = iota
	levelPod
	levelCluster
)

// capacityQuery selects the records that count and how to sum them.
type capacityQuery struct {
	zoneID, podID, clusterID string
	hasType                  bool // only capacity type typ
	typ                      int
	level                    capacityLevel
}

type capacityKey struct {
	typ                int
	zone, pod, cluster string
}

type capacitySum struct{ total, used, allocated float64 }

func init() {
	registerCommands(func(*Server) []*Command {
		return []*Command{{
			Name: "listCapacity", Description: "Lists the capacity of zones, pods or clusters: CPU, memory, primary and secondary storage, with what is in use.",
			Access: AccessRootAdmin, ObjectName: "capacity", Response: capacityFields,
			Params: withPaging(
				ParamSpec{Name: "zoneid", Type: "uuid", Description: "Only this zone.", Related: "listZones"},
				ParamSpec{Name: "podid", Type: "uuid", Description: "Only this pod, summed per pod.", Related: "listPods"},
				ParamSpec{Name: "clusterid", Type: "uuid", Description: "Only this cluster, summed per cluster.", Related: "listClusters"},
				ParamSpec{Name: "type", Type: "integer", Description: "Only this capacity type (see the type field)."},
				ParamSpec{Name: "sortby", Type: "string", Description: "usage: per cluster (per zone for secondary storage), the most used first."},
				ParamSpec{Name: "fetchlatest", Type: "boolean", Description: "Accepted for compatibility: figures are always computed when asked."},
			),
			Handler: listCapacity,
		}}
	})
}

func listCapacity(r *Request) (any, *Error) {
	p := r.Params
	q := capacityQuery{level: levelZone}
	if given(p, "zoneid") {
		z, e := lookupZone(r, "zoneid")
		if e != nil {
			return nil, e
		}
		q.zoneID = z.ID
	}
	if given(p, "podid") {
		pod, e := lookupPod(r, "podid")
		if e != nil {
			return nil, e
		}
		q.podID, q.level = pod.ID, levelPod
	}
	if given(p, "clusterid") {
		c, e := lookupCluster(r, "clusterid")
		if e != nil {
			return nil, e
		}
		q.clusterID, q.level = c.ID, levelCluster
	}
	if _, e := p.Bool("fetchlatest", false); e != nil {
		return nil, e
	}
	if given(p, "type") {
		t, e := p.Int("type", 0)
		if e != nil {
			return nil, e
		}
		q.hasType, q.typ = true, t
	}
	byUsage := false
	switch v := strings.TrimSpace(p.String("sortby")); {
	case v == "":
	case strings.EqualFold(v, "usage"):
		byUsage = true
		if q.level < levelCluster {
			q.level = levelCluster
		}
	default:
		return nil, ErrParam("invalid value %q for parameter sortby: the only order is usage", v)
	}
	out := computeCapacity(r.State(), newInfraNames(r.State()), q)
	if byUsage {
		sort.SliceStable(out, func(i, j int) bool { return out[i].percent > out[j].percent })
	}
	return pagedList(r, "capacity", out)
}

// computeCapacity sums the capacity of the records q selects. Entries
// exist only where at least one record contributes.
func computeCapacity(st *fsm.Store, n *infraNames, q capacityQuery) []capacityResponse {
	sums := map[capacityKey]*capacitySum{}
	add := func(typ int, zone, pod, cluster string, total, used, allocated float64) {
		if q.hasType && q.typ != typ {
			return
		}
		if q.level < levelCluster {
			cluster = ""
		}
		if q.level < levelPod {
			pod = ""
		}
		k := capacityKey{typ, zone, pod, cluster}
		s := sums[k]
		if s == nil {
			s = &capacitySum{}
			sums[k] = s
		}
		s.total += total
		s.used += used
		s.allocated += allocated
	}
	selected := func(zone, pod, cluster string) bool {
		return (q.zoneID == "" || zone == q.zoneID) && (q.podID == "" || pod == q.podID) &&
			(q.clusterID == "" || cluster == q.clusterID) && n.open(zone, pod, cluster)
	}
	hosts, _ := fsm.List[fsm.Host](st, nil, fsm.TableHosts, "create")
	for _, h := range hosts {
		if h.ResourceState != fsm.ResourceStateEnabled || !selected(h.ZoneID, h.PodID, h.ClusterID) {
			continue
		}
		cpuRatio, memRatio := n.overcommit(h.ClusterID)
		cpu := float64(h.CPUNumber) * float64(h.CPUSpeed)
		add(CapacityCPU, h.ZoneID, h.PodID, h.ClusterID, cpu*cpuRatio, float64(h.CPUAllocated), float64(h.CPUAllocated))
		add(CapacityMemory, h.ZoneID, h.PodID, h.ClusterID, float64(h.MemoryTotal)*memRatio, float64(h.MemoryAllocated), float64(h.MemoryAllocated))
	}
	pools, _ := fsm.List[fsm.StoragePool](st, nil, fsm.TableStoragePools, "create")
	for _, sp := range pools {
		if sp.State != fsm.PoolStateUp || !selected(sp.ZoneID, sp.PodID, sp.ClusterID) {
			continue
		}
		if sp.HostID != "" {
			if h := n.hostRow(sp.HostID); h == nil || h.ResourceState != fsm.ResourceStateEnabled {
				continue
			}
			add(CapacityLocalStorage, sp.ZoneID, sp.PodID, sp.ClusterID, float64(sp.CapacityBytes), float64(sp.AllocatedBytes), float64(sp.AllocatedBytes))
			continue
		}
		add(CapacityStorage, sp.ZoneID, sp.PodID, sp.ClusterID, float64(sp.CapacityBytes), float64(sp.UsedBytes), float64(sp.AllocatedBytes))
		add(CapacityStorageAllocated, sp.ZoneID, sp.PodID, sp.ClusterID, float64(sp.CapacityBytes)*sp.OverprovisionRatio(),
			float64(sp.AllocatedBytes), float64(sp.AllocatedBytes))
	}
	if q.podID == "" && q.clusterID == "" {
		stores, _ := fsm.List[fsm.ImageStore](st, nil, fsm.TableImageStores, "create")
		for _, is := range stores {
			if selected(is.ZoneID, "", "") {
				add(CapacitySecondary, is.ZoneID, "", "", float64(is.CapacityBytes), float64(is.UsedBytes), float64(is.UsedBytes))
			}
		}
	}
	out := make([]capacityResponse, 0, len(sums))
	for k, s := range sums {
		c := capacityResponse{
			Type: k.typ, Name: capacityNames[k.typ], ZoneID: k.zone, ZoneName: n.zone(k.zone),
			PodID: k.pod, PodName: n.pod(k.pod), ClusterID: k.cluster, ClusterName: n.cluster(k.cluster),
			CapacityTotal: int64(s.total), CapacityUsed: int64(s.used), CapacityAllocated: int64(s.allocated),
			PercentUsed: percentOf(s.used, s.total),
		}
		c.percent, _ = strconv.ParseFloat(c.PercentUsed, 64)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		for _, cmp := range [][2]string{{a.ZoneName, b.ZoneName}, {a.ZoneID, b.ZoneID}, {a.PodName, b.PodName}, {a.PodID, b.PodID},
			{a.ClusterName, b.ClusterName}, {a.ClusterID, b.ClusterID}} {
			if cmp[0] != cmp[1] {
				return cmp[0] < cmp[1]
			}
		}
		return a.Type < b.Type
	})
	return out
}
