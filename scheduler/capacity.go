package scheduler

import (
	"fmt"
	"sort"

	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/scheduler/placement"
)

// Capacity is accounted in the replicated state: a VM holding a host adds
// its CPU (cores x MHz) and memory to the host's allocated figures, and a
// placed volume adds its size to its pool's. Every change goes through an
// Update op, which is compare-and-set on the row's ModifyIndex, so two
// placements racing for the last bytes of a host can never both commit:
// the second is refused as stale, reads again and places again.

// vmCPU returns the MHz a VM reserves.
func vmCPU(v *fsm.VM) int64 { return int64(v.CPUNumber) * int64(v.CPUSpeed) }

// vmMemory returns the bytes a VM reserves.
func vmMemory(v *fsm.VM) int64 { return int64(v.MemoryMiB) << 20 }

// reserveHost returns the op that adds v to host h's allocation (sign 1) or
// takes it away (sign -1).
func reserveHost(h *fsm.Host, v *fsm.VM, sign int64) fsm.TxnOp {
	return fsm.ReserveHost(h.ID, sign*vmCPU(v), sign*vmMemory(v))
}

// ReserveHost is reserveHost for the HA controller, which gives a fenced
// host's capacity back when it restarts the host's VMs elsewhere.
func ReserveHost(h *fsm.Host, v *fsm.VM, sign int64) fsm.TxnOp { return reserveHost(h, v, sign) }

// storeView adapts a store snapshot to placement.State.
type storeView struct{ st *fsm.Store }

func (v storeView) Zone(id string) *fsm.Zone {
	z, _ := v.st.Zone(nil, id)
	return z
}

func (v storeView) Pod(id string) *fsm.Pod {
	p, _ := fsm.Get[fsm.Pod](v.st, nil, fsm.TablePods, id)
	return p
}

func (v storeView) Cluster(id string) *fsm.Cluster {
	c, _ := fsm.Get[fsm.Cluster](v.st, nil, fsm.TableClusters, id)
	return c
}

func (v storeView) Host(id string) *fsm.Host {
	h, _ := fsm.Get[fsm.Host](v.st, nil, fsm.TableHosts, id)
	return h
}

// HostsFrom walks the hosts table's index on the narrowest field scope
// sets. A read error (a programming error: the index names are fixed)
// ends the walk, as the other methods' errors read as "none".
func (v storeView) HostsFrom(scope placement.Scope, start string, visit func(*fsm.Host) bool) {
	by, id := "zone", scope.ZoneID
	switch {
	case scope.ClusterID != "":
		by, id = "cluster", scope.ClusterID
	case scope.PodID != "":
		by, id = "pod", scope.PodID
	}
	_ = v.st.HostsFrom(by, id, start, visit)
}

func (v storeView) Hosts(zoneID string) []*fsm.Host {
	hs, _ := fsm.List[fsm.Host](v.st, nil, fsm.TableHosts, "zone", zoneID)
	return hs
}

func (v storeView) Pools(zoneID string) []*fsm.StoragePool {
	ps, _ := fsm.List[fsm.StoragePool](v.st, nil, fsm.TableStoragePools, "zone", zoneID)
	return ps
}

func (v storeView) Overcommit(c *fsm.Cluster) (float64, float64) { return v.st.Overcommit(c) }

// NewView returns the placement view of a store; the API's
// findHostsForMigration uses it too.
func NewView(st *fsm.Store) placement.State { return storeView{st: st} }

// PlacementRequest builds the allocator's request for VM v with its
// volumes: the offering's host tags, the affinity groups' hosts, and each
// volume's size, tags and pool when it has one.
func PlacementRequest(st *fsm.Store, v *fsm.VM, vols []*fsm.Volume) (placement.Request, error) {
	req := placement.Request{ZoneID: v.ZoneID, CPUs: v.CPUNumber, CPUMHz: int64(v.CPUSpeed), MemoryBytes: vmMemory(v), SpreadKey: v.ID}
	off, err := fsm.Get[fsm.ServiceOffering](st, nil, fsm.TableServiceOfferings, v.ServiceOfferingID)
	if err != nil {
		return req, err
	}
	if off != nil {
		req.HostTags = off.HostTags
	}
	for _, vol := range vols {
		req.Volumes = append(req.Volumes, placement.Volume{ID: vol.ID, SizeBytes: vol.SizeBytes, StorageTags: vol.StorageTags,
			Local: vol.Local, PoolID: vol.PoolID})
	}
	for _, gid := range v.AffinityGroupIDs {
		g, err := fsm.Get[fsm.AffinityGroup](st, nil, fsm.TableAffinityGroups, gid)
		if err != nil {
			return req, err
		}
		if g == nil {
			continue
		}
		members, err := fsm.List[fsm.VM](st, nil, fsm.TableVMs, "affinity", gid)
		if err != nil {
			return req, err
		}
		for _, m := range members {
			if m.ID == v.ID {
				continue
			}
			for _, h := range []string{m.HostID, m.MigrateTo} {
				if h == "" {
					continue
				}
				if g.Type == fsm.AffinityHost {
					req.AffinityHosts = append(req.AffinityHosts, h)
				} else {
					req.AntiAffinityHosts = append(req.AntiAffinityHosts, h)
				}
			}
		}
	}
	return req, nil
}

// vmVolumes returns the volumes attached to a VM, by device ID.
func vmVolumes(st *fsm.Store, vmID string) ([]*fsm.Volume, error) {
	vols, err := fsm.List[fsm.Volume](st, nil, fsm.TableVolumes, "vm", vmID)
	if err != nil {
		return nil, fmt.Errorf("volumes of %s: %w", vmID, err)
	}
	SortByDevice(vols)
	return vols, nil
}

// SortByDevice orders a VM's volumes by device ID, root first.
func SortByDevice(vols []*fsm.Volume) {
	sort.SliceStable(vols, func(i, j int) bool { return vols[i].DeviceID < vols[j].DeviceID })
}

// reservePools returns the ops that add each newly placed volume to its
// pool and record the pool on the volume.
func reservePools(st *fsm.Store, vols []*fsm.Volume, pools map[string]string) ([]fsm.TxnOp, error) {
	placed, reserve, err := poolReservations(vols, pools)
	if err != nil {
		return nil, err
	}
	var ops []fsm.TxnOp
	for i, nv := range placed {
		if nv != vols[i] {
			ops = append(ops, fsm.Update(fsm.TableVolumes, nv))
		}
	}
	return append(ops, reserve...), nil
}

// poolReservations returns vols with each volume that has no pool yet
// replaced by a copy on the pool the plan gave it, and the ops that add
// their sizes to those pools.
func poolReservations(vols []*fsm.Volume, pools map[string]string) ([]*fsm.Volume, []fsm.TxnOp, error) {
	placed := make([]*fsm.Volume, len(vols))
	bytes := map[string]int64{}
	var order []string
	for i, vol := range vols {
		placed[i] = vol
		if vol.PoolID != "" {
			continue
		}
		pid := pools[vol.ID]
		if pid == "" {
			return nil, nil, fmt.Errorf("placement gave volume %s no pool", vol.ID)
		}
		if _, seen := bytes[pid]; !seen {
			order = append(order, pid)
		}
		bytes[pid] += vol.SizeBytes
		nv := vol.Copy()
		nv.PoolID = pid
		placed[i] = nv
	}
	var ops []fsm.TxnOp
	for _, pid := range order {
		ops = append(ops, fsm.ReservePool(pid, bytes[pid]))
	}
	return placed, ops, nil
}

// releasePool returns the op that takes a volume's size back from its pool.
func releasePool(st *fsm.Store, vol *fsm.Volume) (*fsm.TxnOp, error) {
	if vol.PoolID == "" {
		return nil, nil
	}
	p, err := fsm.Get[fsm.StoragePool](st, nil, fsm.TableStoragePools, vol.PoolID)
	if err != nil || p == nil {
		return nil, err
	}
	op := fsm.ReservePool(p.ID, -vol.SizeBytes)
	return &op, nil
}

// Candidates judges every host of the VM's zone for req, for
// findHostsForMigration.
func Candidates(st *fsm.Store, req placement.Request) []placement.Candidate {
	return placement.Candidates(NewView(st), req)
}
