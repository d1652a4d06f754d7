package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/hypervisor"
	"github.com/stratus-cloud/stratus/hypervisor/agent"
	"github.com/stratus-cloud/stratus/scheduler"
)

// agentDesired answers the desired state of the calling host: every VM
// placed on it, every VM migrating to it, and every VM that last ran on it
// and must not be there any more. It blocks until that state's index
// passes the agent's or the wait ends.
func (s *Server) agentDesired(c *agentCall) (any, *agentError) {
	q := c.req.URL.Query()
	since, _ := strconv.ParseUint(q.Get("index"), 10, 64)
	wait := agentMaxWait
	if ms, err := strconv.Atoi(q.Get("wait")); err == nil && ms >= 0 {
		wait = min(time.Duration(ms)*time.Millisecond, agentMaxWait)
	}
	if since == 0 {
		// A full answer lets the agent destroy domains it does not list:
		// it must not come from a server that lags behind.
		if err := s.c.ConsistentRead(c.req.Context()); err != nil {
			return nil, agentErr(http.StatusServiceUnavailable, "cannot read the current state: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(c.req.Context(), wait)
	defer cancel()
	for {
		// The host's channel is taken before the state is read: a commit
		// this read misses closes it.
		st := s.c.State()
		ws := memdb.NewWatchSet()
		ws.Add(st.HostChanged(c.host.ID))
		ws.Add(st.Abandoned())
		d, err := s.desiredOf(st, ws, c.host.ID, q.Get("peers"))
		if err != nil {
			return nil, agentErr(http.StatusInternalServerError, "desired state: %v", err)
		}
		if d.Index > since || ws.WatchCtx(ctx) != nil {
			return d, nil
		}
	}
}

// An idle desired-state poll costs its request's goroutine and a watch
// set of a few channels, which memdb waits on in that goroutine: the
// store's channel for the host (fsm.Store.HostChanged: closed by a commit
// that changes a VM placed on, migrating to or last on the host, or the
// host's row) and the rows of the VMs' volumes. A change elsewhere in the
// cloud wakes no poll but those of the hosts it names.

// desiredReads counts the desired states computed, so a test can tell
// which polls a change woke.
var desiredReads atomic.Uint64

// desiredIndexes are the VM indexes a host's desired state is read by.
var desiredIndexes = []string{"host", "migrate_to", "last_host"}

// desiredOf reads the desired state of a host; ws (nil: nothing watched)
// gets the channels of the volume rows it read. Changes of the host's VMs
// are the host's channel's to signal (see above). peersTag is the tag of
// the peer list the agent holds: when it is current the answer says so
// instead of listing the peers.
func (s *Server) desiredOf(st *fsm.Store, ws memdb.WatchSet, hostID, peersTag string) (*agent.Desired, error) {
	desiredReads.Add(1)
	h, err := fsm.Get[fsm.Host](st, nil, fsm.TableHosts, hostID)
	if err != nil || h == nil {
		return nil, err
	}
	d := &agent.Desired{Index: h.ModifyIndex, HostState: h.State, ResourceState: h.ResourceState, VMs: []agent.DesiredVM{}}
	// Peers do not move the index: a change of them wakes no poll, and
	// an agent needs them only once its lease is lost; any answer carries
	// the current list.
	members, tag, err := s.peers.of(s.c.State, h.ClusterID)
	if err != nil {
		return nil, err
	}
	d.PeersTag = tag
	if peersTag != "" && peersTag == tag {
		d.PeersSame = true
	} else {
		for _, p := range members {
			if p.HostID != h.ID {
				d.Peers = append(d.Peers, p)
			}
		}
	}
	seen := map[string]bool{}
	for _, index := range desiredIndexes {
		vms, err := fsm.List[fsm.VM](st, nil, fsm.TableVMs, index, hostID)
		if err != nil {
			return nil, err
		}
		for _, v := range vms {
			if seen[v.ID] {
				continue
			}
			seen[v.ID] = true
			dv, idx, err := desiredVM(st, ws, v, hostID)
			if err != nil {
				return nil, err
			}
			d.Index = max(d.Index, idx)
			d.VMs = append(d.VMs, dv)
		}
	}
	return d, nil
}

// desiredVM is one VM as host hostID must make it, with the highest index
// of the rows it was built from.
func desiredVM(st *fsm.Store, ws memdb.WatchSet, v *fsm.VM, hostID string) (agent.DesiredVM, uint64, error) {
	spec := hypervisor.DomainSpec{UUID: v.ID, Name: hypervisor.DomainPrefix + v.InstanceName}
	dv := agent.DesiredVM{ID: v.ID, Power: agent.WantAbsent, Spec: spec, HA: v.HAEnabled}
	idx := v.ModifyIndex
	switch {
	case v.HostID == hostID:
		dv.Power, dv.ForceStop, dv.RebootGen = agent.WantStopped, v.ForceStop, v.RebootGen
		if v.Power == fsm.PowerOn {
			dv.Power = agent.WantRunning
		}
		if v.MigrateTo != "" {
			dv.MigrateTo = v.MigrateTo
			if t, _ := fsm.Get[fsm.Host](st, nil, fsm.TableHosts, v.MigrateTo); t != nil {
				dv.MigrateToURI = t.Details[hostDetailURI]
			}
		}
	case v.MigrateTo == hostID:
		dv.Power, dv.Incoming = agent.WantStopped, true
	default:
		return dv, idx, nil // moved away or stopped: no domain here
	}
	dv.Spec.VCPUs, dv.Spec.CPUMHz, dv.Spec.MemoryBytes = v.CPUNumber, int64(v.CPUSpeed), int64(v.MemoryMiB)<<20
	for _, n := range v.NICs {
		dv.Spec.NICs = append(dv.Spec.NICs, hypervisor.NICSpec{MAC: n.MAC})
	}
	vols, err := fsm.List[fsm.Volume](st, ws, fsm.TableVolumes, "vm", v.ID)
	if err != nil {
		return dv, idx, err
	}
	scheduler.SortByDevice(vols)
	for _, vol := range vols {
		idx = max(idx, vol.ModifyIndex)
		if vol.PoolID == "" {
			continue
		}
		p, err := fsm.Get[fsm.StoragePool](st, nil, fsm.TableStoragePools, vol.PoolID)
		if err != nil || p == nil {
			return dv, idx, err
		}
		pool, path := libvirtPool(p)
		format := strings.ToLower(vol.Format)
		if format != "raw" {
			format = "qcow2"
		}
		name := vol.ID + "." + format
		dv.Volumes = append(dv.Volumes, agent.DesiredVolume{ID: vol.ID, Pool: pool, PoolPath: path, Name: name,
			SizeBytes: vol.SizeBytes, Format: format})
		dv.Spec.Disks = append(dv.Spec.Disks, hypervisor.DiskSpec{Path: path + "/" + name, Format: format,
			Device: "vd" + string(rune('a'+min(vol.DeviceID, 25))), Serial: strings.ReplaceAll(vol.ID, "-", "")[:20]})
	}
	return dv, idx, nil
}

// libvirtPool names a primary pool as agents define it in libvirt, and
// where it lives on the host: NFS pools are mounted under /mnt/<pool id>,
// as CloudStack's KVM agent does.
func libvirtPool(p *fsm.StoragePool) (name, path string) {
	name = "stratus-" + p.ID
	switch p.Type {
	case fsm.PoolTypeNFS:
		return name, "/mnt/" + p.ID
	default:
		return name, strings.TrimRight(p.Path, "/")
	}
}
