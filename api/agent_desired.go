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
		w := newDesiredWatch()
		st := s.c.State()
		d, err := desiredOf(st, w, c.host.ID)
		if err != nil {
			return nil, agentErr(http.StatusInternalServerError, "desired state: %v", err)
		}
		if d.Index > since || !w.wait(ctx, st, c.host.ID) {
			return d, nil
		}
	}
}

// desiredWatch is what a desired-state poll waits on. An idle poll costs
// its request's goroutine and this set: no goroutine of its own while the
// set holds at most 32 channels (memdb watches those in the caller's
// goroutine), which is a host with up to about 25 VMs.
//
// The rows of the host's desired state are watched exactly. A lookup of
// one of the host's VM indexes that finds nothing cannot be: memdb's radix
// tree has no node for the host's key, so it hands out the channel of the
// nearest node above it, which closes at changes of other hosts' VMs (for
// the migrate_to index, nearly empty, the whole index's root: every
// migration anywhere). Those channels go to coarse. When only a coarse one
// closed, the poll looks the empty indexes up again, which is cheap, and
// goes back to sleep unless the host has rows there now; it recomputes
// its desired state only for changes of its own rows.
type desiredWatch struct {
	exact  memdb.WatchSet
	coarse memdb.WatchSet
	empty  []string // the VM indexes that found no row of the host
}

func newDesiredWatch() *desiredWatch {
	return &desiredWatch{exact: memdb.NewWatchSet(), coarse: memdb.NewWatchSet()}
}

// desiredReads counts the desired states computed, so a test can tell
// which polls a change woke.
var desiredReads atomic.Uint64

// desiredIndexes are the VM indexes a host's desired state is read by.
var desiredIndexes = []string{"host", "migrate_to", "last_host"}

// wait blocks until a row of the host's desired state may have changed
// (true), or ctx ends (false). A restore of the store wakes it too.
func (w *desiredWatch) wait(ctx context.Context, st *fsm.Store, hostID string) bool {
	for {
		all := memdb.NewWatchSet()
		for ch := range w.exact {
			all.Add(ch)
		}
		for ch := range w.coarse {
			all.Add(ch)
		}
		all.Add(st.Abandoned())
		if err := all.WatchCtx(ctx); err != nil {
			return false
		}
		if closed(st.Abandoned()) || anyClosed(w.exact) {
			return true
		}
		coarse := memdb.NewWatchSet()
		for _, index := range w.empty {
			vms, err := fsm.List[fsm.VM](st, coarse, fsm.TableVMs, index, hostID)
			if err != nil || len(vms) > 0 {
				return true
			}
		}
		w.coarse = coarse
	}
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func anyClosed(ws memdb.WatchSet) bool {
	for ch := range ws {
		if closed(ch) {
			return true
		}
	}
	return false
}

// desiredOf reads the desired state of a host; w (nil: nothing watched)
// gets the channels that close when it changes.
func desiredOf(st *fsm.Store, w *desiredWatch, hostID string) (*agent.Desired, error) {
	desiredReads.Add(1)
	var ws memdb.WatchSet
	if w != nil {
		ws = w.exact
	}
	h, err := fsm.Get[fsm.Host](st, ws, fsm.TableHosts, hostID)
	if err != nil || h == nil {
		return nil, err
	}
	d := &agent.Desired{Index: h.ModifyIndex, HostState: h.State, ResourceState: h.ResourceState, VMs: []agent.DesiredVM{}}
	// Peers are read without watching them and do not move the index: a
	// peer's row changes with every placement on it (its allocated
	// figures), and waking every agent of the cluster for that would cost
	// far more than it is worth. An agent needs its peers only once its
	// lease is lost, and any desired answer carries the current list.
	peers, err := fsm.List[fsm.Host](st, nil, fsm.TableHosts, "cluster", h.ClusterID)
	if err != nil {
		return nil, err
	}
	for _, p := range peers {
		if p.ID != h.ID && p.StatusURL != "" {
			d.Peers = append(d.Peers, agent.Peer{HostID: p.ID, Name: p.Name, StatusURL: p.StatusURL})
		}
	}
	seen := map[string]bool{}
	for _, index := range desiredIndexes {
		var lws memdb.WatchSet
		if w != nil {
			lws = memdb.NewWatchSet()
		}
		vms, err := fsm.List[fsm.VM](st, lws, fsm.TableVMs, index, hostID)
		if err != nil {
			return nil, err
		}
		if w != nil {
			into := w.exact
			if len(vms) == 0 {
				into, w.empty = w.coarse, append(w.empty, index)
			}
			for ch := range lws {
				into.Add(ch)
			}
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
