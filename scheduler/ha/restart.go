package ha

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/stratus-cloud/stratus/cluster/metrics"
	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/scheduler"
	"github.com/stratus-cloud/stratus/scheduler/placement"
)

// The restarter reacts to committed state: any host that is Down and
// Fenced, whether this controller fenced it or an operator confirmed it
// (declareHostAsDegraded), gets its VMs dealt with:
//
//   - an HA VM meant to run (Power On) is taken off the host in one commit
//     per VM: the host's capacity back, HostID cleared, LastHostID the
//     host, State Starting, HAPending, plus a startVirtualMachine job that
//     avoids the host, so the job runner places and starts it as it does
//     any start (capacity, tags and anti-affinity respected). A VM that was
//     migrating off the host goes to its migration target instead, whose
//     capacity it already holds: it may already run there.
//   - a VM meant to be off (a stop under way) is off: it is let go of the
//     host, so its stop job finishes.
//   - a non-HA VM is shown Stopped but keeps its host and desired power:
//     when the host returns with it running it is Running again.
//
// Restarts go in priority order, the VMs with the most memory first (the
// hardest to fit get the free capacity first; first-fit decreasing), then
// by age, at most ha.restart.rate per second across the cloud. HA VMs
// whose start failed (HAPending, Stopped: no capacity then) are tried
// again every RetryInterval once a dry run of the allocator finds room,
// and with backoff when their jobs keep failing anyway.

// maxRetryBackoff caps the pause between restart jobs of one HA VM whose
// jobs keep failing although the allocator finds room.
const maxRetryBackoff = 5 * time.Minute

// limiter lets at most rate restarts happen per second of the clock.
type limiter struct {
	window time.Time
	used   int
}

func (l *limiter) take(now time.Time, rate int) (bool, time.Time) {
	rate = max(rate, 1)
	if now.Before(l.window) || now.Sub(l.window) >= time.Second {
		l.window, l.used = now, 0
	}
	if l.used < rate {
		l.used++
		return true, time.Time{}
	}
	return false, l.window.Add(time.Second)
}

// retryState is the backoff of one HA VM's restart retries.
type retryState struct {
	next  time.Time
	pause time.Duration
}

type restarter struct {
	c       *Controller
	term    uint64
	lim     limiter
	retryAt time.Time
	retries map[string]*retryState
}

// restarter runs while this term leads: a pass now, at every change of a
// host's state (not of its allocated capacity, which every placement
// changes: a pass reads every host), when the rate limit or the retry
// interval allows more, and when the fencing code asks.
func (c *Controller) restarter(ctx context.Context, term uint64) {
	defer c.wg.Done()
	c.mu.Lock()
	kick := c.kick
	c.mu.Unlock()
	r := &restarter{c: c, term: term, retryAt: c.clock.Now().Add(c.cfg.RetryInterval), retries: map[string]*retryState{}}
	var wake Timer
	defer func() {
		if wake != nil {
			wake.Stop()
		}
	}()
	for ctx.Err() == nil {
		st := c.cl.State()
		changed, abandoned := st.HostStatesChanged(), st.Abandoned()
		now := c.clock.Now()
		retry := !now.Before(r.retryAt)
		blocked := r.pass(ctx, retry)
		if retry && blocked.IsZero() {
			r.retryAt = now.Add(c.cfg.RetryInterval)
		}
		at := r.retryAt
		if !blocked.IsZero() && blocked.Before(at) {
			at = blocked
		}
		if wake != nil {
			wake.Stop()
		}
		wake = c.clock.AfterFunc(at.Sub(c.clock.Now()), c.wake)
		select {
		case <-ctx.Done():
		case <-changed:
		case <-abandoned: // a restore swapped the store
		case <-kick:
		case <-time.After(5 * time.Second): // and now and then regardless
		}
	}
}

type restartWork struct {
	vm   *fsm.VM
	host string
}

// pass deals with every Down + Fenced host's VMs and, when retry is set,
// with the HA VMs still pending. It returns when the rate limit allows the
// next restart, or the zero time when nothing waits for it.
func (r *restarter) pass(ctx context.Context, retry bool) time.Time {
	c := r.c
	st := c.cl.State().Snapshot()
	hosts, err := fsm.List[fsm.Host](st, nil, fsm.TableHosts, "id")
	if err != nil {
		c.logger.Error("cannot list hosts", "error", err)
		return time.Time{}
	}
	var work []restartWork
	for _, h := range hosts {
		if h.State != fsm.HostStateDown || h.HAState != fsm.HAStateFenced {
			continue
		}
		vms, err := fsm.List[fsm.VM](st, nil, fsm.TableVMs, "host", h.ID)
		if err != nil {
			c.logger.Error("cannot list a host's VMs", "host_id", h.ID, "error", err)
			continue
		}
		for _, v := range vms {
			switch {
			case v.State == fsm.VMDestroyed || v.State == fsm.VMExpunging:
			case v.Power != fsm.PowerOn && (v.HAEnabled || poweredOff(h)):
				// Meant to be off and certainly off: its stop can end.
				r.let(ctx, h.ID, v.ID, false)
			case v.Power != fsm.PowerOn:
				// A non-HA VM being stopped on a host fenced by its lease may
				// still run (the self-fence kills only HA guests): it keeps
				// its host until the host returns and stops it.
			case v.HAEnabled:
				work = append(work, restartWork{vm: v, host: h.ID})
			case v.State != fsm.VMStopped:
				r.let(ctx, h.ID, v.ID, true)
			}
		}
	}
	sort.SliceStable(work, func(i, j int) bool {
		a, b := work[i].vm, work[j].vm
		if a.MemoryMiB != b.MemoryMiB {
			return a.MemoryMiB > b.MemoryMiB
		}
		return a.CreateIndex < b.CreateIndex
	})
	rate := st.SettingInt(fsm.SettingHARestartRate)
	for _, w := range work {
		if !c.acting(r.term) {
			return time.Time{}
		}
		ok, next := r.lim.take(c.clock.Now(), rate)
		if !ok {
			return next
		}
		r.restart(ctx, w.host, w.vm.ID)
	}
	if !retry {
		return time.Time{}
	}
	return r.retryPending(ctx, st, rate)
}

// change reads a VM and its host afresh, lets edit build the ops (nil:
// nothing to do) and commits them, reading again on a lost
// compare-and-set.
func (r *restarter) change(ctx context.Context, hostID, vmID string, edit func(st *fsm.Store, h *fsm.Host, v *fsm.VM) []fsm.TxnOp) (bool, error) {
	for attempt := 0; ; attempt++ {
		if !r.c.acting(r.term) {
			return false, nil
		}
		st := r.c.cl.State()
		v, err := fsm.Get[fsm.VM](st, nil, fsm.TableVMs, vmID)
		if err != nil || v == nil {
			return false, err
		}
		var h *fsm.Host
		if hostID != "" {
			if h, err = fsm.Get[fsm.Host](st, nil, fsm.TableHosts, hostID); err != nil || h == nil {
				return false, err
			}
		}
		ops := edit(st, h, v)
		if ops == nil {
			return false, nil
		}
		_, err = r.c.cl.Apply(ctx, fsm.TxnRequestType, fsm.TxnRequest{Ops: ops})
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, fsm.ErrStale) || attempt >= 10 {
			return false, err
		}
	}
}

func fencedHost(h *fsm.Host) bool {
	return h != nil && h.State == fsm.HostStateDown && h.HAState == fsm.HAStateFenced
}

// restart takes an HA VM off its fenced host and commits its start job.
func (r *restarter) restart(ctx context.Context, hostID, vmID string) {
	c := r.c
	var to string
	done, err := r.change(ctx, hostID, vmID, func(st *fsm.Store, h *fsm.Host, v *fsm.VM) []fsm.TxnOp {
		if !fencedHost(h) || v.HostID != hostID || !v.HAEnabled || v.Power != fsm.PowerOn {
			return nil
		}
		nv := v.Copy()
		nv.LastHostID, nv.HostID, nv.PodID, nv.ClusterID = hostID, "", "", ""
		nv.State, nv.Power, nv.ForceStop, nv.HAPending = fsm.VMStarting, fsm.PowerOff, false, true
		nv.ObservedHostID, nv.ObservedPower, nv.ObservedError = "", "", ""
		if v.MigrateTo != "" {
			// Its migration target holds its capacity already and may run it.
			if t, _ := fsm.Get[fsm.Host](st, nil, fsm.TableHosts, v.MigrateTo); t != nil {
				nv.HostID, nv.PodID, nv.ClusterID, nv.Power = t.ID, t.PodID, t.ClusterID, fsm.PowerOn
			}
			nv.MigrateTo, nv.MigratedOut = "", false
		}
		to = nv.HostID
		now := c.clock.Now().UTC()
		job := startJob(v, hostID, now)
		where := "elsewhere"
		if to != "" {
			where = "on host " + to + ", where it was migrating"
		}
		return []fsm.TxnOp{
			// Check: if the host came back Up meanwhile (its agent may now
			// run the VM), the restart is stale and read again.
			fsm.Check(fsm.TableHosts, h),
			scheduler.ReserveHost(h, v, -1), fsm.Update(fsm.TableVMs, nv), fsm.Create(fsm.TableJobs, job),
			fsm.Create(fsm.TableEvents, &fsm.Event{
				ID: newID(), Type: "VM.HA.RESTART", Level: fsm.EventInfo, State: "Scheduled",
				Description: fmt.Sprintf("host %s of HA virtual machine %s is fenced; starting it %s", h.Name, v.Name, where),
				AccountID:   v.AccountID, DomainID: v.DomainID, UserID: v.UserID,
				ResourceType: "VirtualMachine", ResourceID: v.ID, JobID: job.ID, Created: now,
			}),
		}
	})
	switch {
	case err != nil:
		c.logger.Error("cannot restart HA VM", "vm_id", vmID, "host_id", hostID, "error", err)
	case done:
		c.logger.Info("restarting HA VM", "vm_id", vmID, "fenced_host", hostID, "to", to)
		metrics.HARestarts.Inc()
	}
}

// startJob is the startVirtualMachine job of an HA restart, owned by the
// VM's owner.
func startJob(v *fsm.VM, avoid string, now time.Time) *fsm.AsyncJob {
	params := map[string]string{scheduler.VMParamID: v.ID, scheduler.VMParamHARestart: "true"}
	if avoid != "" {
		params[scheduler.VMParamAvoid] = avoid
	}
	return &fsm.AsyncJob{ID: newID(), Cmd: "startVirtualMachine", AccountID: v.AccountID, DomainID: v.DomainID, UserID: v.UserID,
		Params: params, InstanceType: "VirtualMachine", InstanceID: v.ID, Created: now}
}

// let deals with a VM of a fenced host that is not restarted: one meant to
// be off is let go of the host (it is off: the host is fenced), so the
// stop waiting for it ends; a non-HA one (show) is shown Stopped and keeps
// its host and desired power.
func (r *restarter) let(ctx context.Context, hostID, vmID string, show bool) {
	_, err := r.change(ctx, hostID, vmID, func(_ *fsm.Store, h *fsm.Host, v *fsm.VM) []fsm.TxnOp {
		if !fencedHost(h) || v.HostID != hostID {
			return nil
		}
		nv := v.Copy()
		if show {
			if v.HAEnabled || v.Power != fsm.PowerOn || v.State == fsm.VMStopped {
				return nil
			}
			nv.State = fsm.VMStopped
			return []fsm.TxnOp{fsm.Check(fsm.TableHosts, h), fsm.Update(fsm.TableVMs, nv)}
		}
		if v.Power == fsm.PowerOn {
			return nil
		}
		nv.LastHostID, nv.HostID, nv.PodID, nv.ClusterID = hostID, "", "", ""
		nv.ObservedHostID, nv.ObservedPower, nv.MigrateTo, nv.MigratedOut = "", "", "", false
		if v.State != fsm.VMDestroyed && v.State != fsm.VMError {
			nv.State = fsm.VMStopped
		}
		return []fsm.TxnOp{scheduler.ReserveHost(h, v, -1), fsm.Update(fsm.TableVMs, nv)}
	})
	if err != nil {
		r.c.logger.Error("cannot update a VM of a fenced host", "vm_id", vmID, "host_id", hostID, "error", err)
	}
}

// pendingRestart says whether v is an HA VM still waiting to run again
// with no host and no job under way.
func pendingRestart(v *fsm.VM) bool {
	return v.HAEnabled && v.HAPending && v.HostID == "" && (v.State == fsm.VMStopped || v.State == fsm.VMStarting)
}

// retryPending commits a new start job for each pending HA VM that has no
// job under way, whose backoff has passed and for which the allocator
// finds room now.
func (r *restarter) retryPending(ctx context.Context, st *fsm.Store, rate int) time.Time {
	c := r.c
	vms, err := fsm.List[fsm.VM](st, nil, fsm.TableVMs, "id")
	if err != nil {
		c.logger.Error("cannot list VMs", "error", err)
		return time.Time{}
	}
	jobs, err := fsm.List[fsm.AsyncJob](st, nil, fsm.TableJobs, "status", fsm.JobPending)
	if err != nil {
		c.logger.Error("cannot list jobs", "error", err)
		return time.Time{}
	}
	busy := map[string]bool{}
	for _, j := range jobs {
		busy[j.InstanceID], busy[j.Params[scheduler.VMParamID]] = true, true
	}
	now := c.clock.Now()
	seen := map[string]bool{}
	for _, v := range vms {
		if !pendingRestart(v) {
			continue
		}
		seen[v.ID] = true
		rs := r.retries[v.ID]
		if busy[v.ID] || rs != nil && now.Before(rs.next) || !fits(st, v) {
			continue
		}
		ok, next := r.lim.take(now, rate)
		if !ok {
			return next
		}
		if rs == nil {
			rs = &retryState{pause: c.cfg.RetryInterval}
			r.retries[v.ID] = rs
		}
		rs.next, rs.pause = now.Add(rs.pause), min(2*rs.pause, maxRetryBackoff)
		done, err := r.change(ctx, "", v.ID, func(_ *fsm.Store, _ *fsm.Host, v *fsm.VM) []fsm.TxnOp {
			if !pendingRestart(v) {
				return nil
			}
			nv := v.Copy()
			nv.State, nv.Power = fsm.VMStarting, fsm.PowerOff
			return []fsm.TxnOp{fsm.Update(fsm.TableVMs, nv), fsm.Create(fsm.TableJobs, startJob(v, v.LastHostID, now.UTC()))}
		})
		switch {
		case err != nil:
			c.logger.Error("cannot retry HA VM restart", "vm_id", v.ID, "error", err)
		case done:
			c.logger.Info("retrying HA VM restart", "vm_id", v.ID)
		}
	}
	for id := range r.retries {
		if !seen[id] {
			delete(r.retries, id)
		}
	}
	return time.Time{}
}

// fits dry-runs the allocator for a pending VM: a new start job is only
// worth committing when some host has room.
func fits(st *fsm.Store, v *fsm.VM) bool {
	vols, err := fsm.List[fsm.Volume](st, nil, fsm.TableVolumes, "vm", v.ID)
	if err != nil {
		return false
	}
	scheduler.SortByDevice(vols)
	req, err := scheduler.PlacementRequest(st, v, vols)
	if err != nil {
		return false
	}
	if v.LastHostID != "" {
		req.AvoidHosts = []string{v.LastHostID}
	}
	_, err = placement.Place(scheduler.NewView(st), req)
	return err == nil
}

// poweredOff says whether a fenced host is known to run nothing at all:
// fenced by power (ipmi, command) or declared down by an operator. A host
// fenced by its lease killed only its HA guests.
func poweredOff(h *fsm.Host) bool {
	if h.ResourceState == fsm.ResourceStateDegraded {
		return true
	}
	switch Provider(h) {
	case fsm.HAProviderIPMI, fsm.HAProviderCommand:
		return true
	}
	return false
}
