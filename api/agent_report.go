package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/hypervisor"
	"github.com/stratus-cloud/stratus/hypervisor/agent"
	"github.com/stratus-cloud/stratus/scheduler"
)

// agentReport commits what an agent observed. Reports about VMs the host
// no longer holds are dropped: its next desired state tells it to let go.
func (s *Server) agentReport(c *agentCall) (any, *agentError) {
	var rep agent.Report
	if e := decodeAgent(c.body, &rep); e != nil {
		return nil, e
	}
	now := s.now().UTC()
	// unrecorded counts the reports of the last build that change
	// nothing by this server's state (a VM missing or placed elsewhere,
	// a volume missing, or a row that already says so). That state may
	// lag behind the one the agent acted on.
	unrecorded := 0
	build := func(st *fsm.Store) ([]fsm.TxnOp, error) {
		var ops []fsm.TxnOp
		unrecorded = 0
		for _, r := range rep.VMs {
			more, err := vmReportOps(st, c.host.ID, r, now)
			if err != nil {
				return nil, err
			}
			if len(more) == 0 {
				unrecorded++
			}
			ops = append(ops, more...)
		}
		for _, r := range rep.Volumes {
			vol, err := fsm.Get[fsm.Volume](st, nil, fsm.TableVolumes, r.ID)
			if err != nil {
				return nil, err
			}
			if vol == nil || r.Error != "" || (vol.Path == r.Path && vol.State == fsm.VolumeReady) {
				unrecorded++
				continue
			}
			nv := vol.Copy()
			nv.Path, nv.State = r.Path, fsm.VolumeReady
			ops = append(ops, fsm.Update(fsm.TableVolumes, nv))
		}
		return ops, nil
	}
	idx, err := s.agentCommit(c.req.Context(), build)
	if err == nil && unrecorded > 0 {
		// Reports this server's state says nothing to record for, when
		// that state may lag behind the one the agent acted on (a
		// desired answer from another server: a VM just placed on this
		// host is missing or looks placed elsewhere here), even when
		// other reports of the batch were recorded. The agent never
		// sends an acknowledged report again, so decide once more on a
		// consistent read before dropping them; what was just recorded
		// changes nothing then.
		if err = s.c.ConsistentRead(c.req.Context()); err == nil {
			var again uint64
			again, err = s.agentCommit(c.req.Context(), build)
			if again > 0 {
				s.logger.Info("agent report recorded after a consistent read: this server lagged behind the state the agent acted on",
					"host_id", c.host.ID, "index", again, "others_recorded_first", idx > 0)
			}
			idx = max(idx, again)
		}
		// A consistent read covers every write acknowledged so far, but
		// not always what another server already applied and answered
		// the agent with (a leader's state machine may trail the commits
		// its followers apply). The agent says which state it acted on:
		// a VM it reports and this server does not show on the host is
		// decided once this server has applied that state.
		if err == nil && rep.Index > 0 && len(s.notOnHost(c.host.ID, rep.VMs)) > 0 {
			if applied := s.c.Status().AppliedIndex; applied < rep.Index {
				reached := s.waitApplied(c.req.Context(), rep.Index)
				var again uint64
				again, err = s.agentCommit(c.req.Context(), build)
				idx = max(idx, again)
				s.logger.Info("agent report waited for the desired state the agent acted on", "host_id", c.host.ID,
					"report_index", rep.Index, "applied_before", applied, "reached", reached, "recorded", again > 0)
				if err == nil && !reached {
					err = fmt.Errorf("this server has not applied index %d, which the agent acted on, within %s", rep.Index, agentReportLag)
				}
			}
		}
	}
	if err != nil {
		return nil, agentErr(http.StatusServiceUnavailable, "could not record the report: %v", err)
	}
	if idx == 0 {
		idx = s.c.Status().AppliedIndex
	}
	return agent.ReportResponse{Index: idx}, nil
}

// agentReportLag bounds how long a report waits for this server to apply
// the desired-state index the agent acted on.
const agentReportLag = 10 * time.Second

// notOnHost returns the reports of VMs this server's state does not show
// on the host.
func (s *Server) notOnHost(hostID string, reps []agent.VMReport) []agent.VMReport {
	st := s.c.State()
	var out []agent.VMReport
	for _, r := range reps {
		v, err := fsm.Get[fsm.VM](st, nil, fsm.TableVMs, r.ID)
		if err == nil && (v == nil || v.HostID != hostID) {
			out = append(out, r)
		}
	}
	return out
}

// waitApplied waits, at most agentReportLag, until this server applied
// index; it reports whether it got there.
func (s *Server) waitApplied(ctx context.Context, index uint64) bool {
	ctx, cancel := context.WithTimeout(ctx, agentReportLag)
	defer cancel()
	for s.c.Status().AppliedIndex < index {
		changed, err := s.c.State().Watch(fsm.TableVMs)
		if err != nil {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-changed:
		case <-time.After(20 * time.Millisecond): // entries that change no VM
		}
	}
	return true
}

// vmReportOps turns one VM report into changes of the VM row.
func vmReportOps(st *fsm.Store, hostID string, r agent.VMReport, now time.Time) ([]fsm.TxnOp, error) {
	v, err := fsm.Get[fsm.VM](st, nil, fsm.TableVMs, r.ID)
	if err != nil || v == nil || v.HostID != hostID {
		return nil, err
	}
	power := ""
	switch r.Power {
	case hypervisor.PowerRunning, hypervisor.PowerPaused:
		power = fsm.PowerOn
	case hypervisor.PowerStopped:
		power = fsm.PowerOff
	}
	if r.Absent {
		power = fsm.PowerOff
	}
	nv := v.Copy()
	nv.ObservedHostID, nv.ObservedPower, nv.ObservedRebootGen, nv.ObservedError = hostID, power, r.RebootGen, r.Error
	if r.MigratedOut && v.MigrateTo != "" {
		nv.MigratedOut = true
	}
	var ops []fsm.TxnOp
	// A VM that stopped by itself (crash, shut down from inside) while it
	// was meant to run is Stopped, as CloudStack's power state sync does:
	// its capacity is given back and it stays where it is asked to be.
	if r.Reason != "" && power == fsm.PowerOff && v.State == fsm.VMRunning && v.Power == fsm.PowerOn && v.MigrateTo == "" {
		h, err := fsm.Get[fsm.Host](st, nil, fsm.TableHosts, hostID)
		if err != nil {
			return nil, err
		}
		nv.State, nv.Power, nv.LastHostID, nv.HostID, nv.PodID, nv.ClusterID = fsm.VMStopped, fsm.PowerOff, hostID, "", "", ""
		nv.ObservedHostID, nv.ObservedPower = "", ""
		if h != nil {
			ops = append(ops, fsm.ReserveHost(h.ID, -int64(v.CPUNumber)*int64(v.CPUSpeed), -int64(v.MemoryMiB)<<20))
		}
		ops = append(ops, fsm.Create(fsm.TableEvents, &fsm.Event{
			ID: uuid.NewString(), Type: "VM.STOP", Level: fsm.EventInfo, State: "Completed", AccountID: v.AccountID, DomainID: v.DomainID,
			Description:  fmt.Sprintf("virtual machine %s stopped on host %s without being asked (%s)", v.Name, hostID, r.Reason),
			ResourceType: resVM, ResourceID: v.ID, Created: now,
		}))
	}
	// A non-HA VM of a host that went Down is shown Stopped but keeps its
	// host and desired power (the HA controller does that): when the host
	// reports it running again, it is Running again.
	if power == fsm.PowerOn && v.State == fsm.VMStopped && v.Power == fsm.PowerOn && v.MigrateTo == "" {
		nv.State = fsm.VMRunning
	}
	if nv.ObservedHostID == v.ObservedHostID && nv.ObservedPower == v.ObservedPower && nv.ObservedRebootGen == v.ObservedRebootGen &&
		nv.ObservedError == v.ObservedError && nv.MigratedOut == v.MigratedOut && nv.State == v.State && len(ops) == 0 {
		return nil, nil
	}
	nv.ObservedAt = now
	// A start this report completes is finished in the same commit.
	started, err := scheduler.StartedOnReport(st, nv, now)
	if err != nil {
		return nil, err
	}
	if started != nil {
		return append(ops, started...), nil
	}
	return append(ops, fsm.Update(fsm.TableVMs, nv)), nil
}
