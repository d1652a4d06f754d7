package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	memdb "github.com/hashicorp/go-memdb"

	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/hypervisor/fence"
)

// Host jobs: prepareHostForMaintenance, which empties a host, and
// issueOutOfBandManagementPowerAction, which runs a power action on a
// host's BMC from the leader.
//
// prepareHostForMaintenance does not move VMs itself: it commits one
// migrateVirtualMachine job per running VM of the host (a few at a time),
// which this same runner executes with migrateStep, and waits for them.
// The API has already set the host PrepareForMaintenance in the commit
// that made the job, so the allocator sends nothing new there (and a
// placement planned before that commit fails its compare-and-set on the
// host row and plans again). The host reaches Maintenance once no VM is on
// it or on its way to it; ErrorInMaintenance when a VM cannot leave, and
// the job's error then names each such VM and why (the allocator's
// insufficient-capacity text, the agent's migration error). The child
// jobs' IDs derive from the maintenance job's and the VM's, so a new leader
// resuming the job finds the migrations the old one started.

// Parameters of host jobs, as the API commits them.
const (
	HostParamID      = "hostid"
	HostParamAction  = "action"  // power action: ON, OFF, CYCLE, RESET, SOFT, STATUS
	HostParamTimeout = "timeout" // power action: seconds
	hostParamPower   = "powerstate"
)

// Job commands of host jobs.
const (
	CmdPrepareMaintenance = "prepareHostForMaintenance"
	CmdPowerAction        = "issueOutOfBandManagementPowerAction"
	cmdMigrateVM          = "migrateVirtualMachine"
)

// maintenanceParallel is how many of a host's VMs migrate at once while it
// is prepared for maintenance.
const maintenanceParallel = 2

// DefaultPowerActionTimeout bounds a power action whose job gives no
// timeout (CloudStack's outofbandmanagement.action.timeout).
const DefaultPowerActionTimeout = 60 * time.Second

// RegisterMaintenanceJobs adds the host job kinds; power actions run
// ipmitool for real.
func RegisterMaintenanceJobs(r *Runner) { registerHostJobs(r, fence.ExecRunner) }

func registerHostJobs(r *Runner, run fence.Runner) {
	r.Handle(CmdPrepareMaintenance, maintenanceStep)
	r.Handle(CmdPowerAction, powerStep(run))
}

// HostResult is the result of a host job: the host as the job left it, in
// the field names of CloudStack's host response.
func HostResult(h *fsm.Host) any {
	ha := h.HAState
	if ha == "" {
		ha = fsm.HAStateDisabled
	}
	return map[string]any{"host": map[string]any{
		"id": h.ID, "name": h.Name, "state": h.State, "resourcestate": h.ResourceState, "type": h.Type,
		"hypervisor": h.HypervisorType, "ipaddress": h.IPAddress, "zoneid": h.ZoneID, "podid": h.PodID, "clusterid": h.ClusterID,
		"hostha": map[string]any{"haenable": h.HAEnabled, "haprovider": h.HAProvider, "hastate": ha},
	}}
}

// hostEvent records a host job's outcome in listEvents.
func hostEvent(j *fsm.AsyncJob, typ, level string, h *fsm.Host, format string, args ...any) fsm.TxnOp {
	return fsm.Create(fsm.TableEvents, &fsm.Event{
		ID: uuid.NewSHA1(uuid.NameSpaceURL, []byte("stratus:event:"+j.ID+":"+typ+":"+level)).String(), Type: typ, Level: level,
		State: "Completed", Description: fmt.Sprintf(format, args...), AccountID: j.AccountID, DomainID: j.DomainID, UserID: j.UserID,
		ResourceType: "Host", ResourceID: h.ID, JobID: j.ID, Created: time.Now().UTC(),
	})
}

// migrationJobID is the ID of the migration a maintenance job starts for
// a VM.
func migrationJobID(maintenanceJob, vmID string) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("stratus:maintenance:"+maintenanceJob+":"+vmID)).String()
}

// jobHost reads the host of a host job.
func jobHost(st *fsm.Store, ws memdb.WatchSet, j *fsm.AsyncJob) (*fsm.Host, *Step, error) {
	return jobRow[fsm.Host](st, ws, fsm.TableHosts, j.Params[HostParamID], "host")
}

// watchTables adds the tables' change channels to ws.
func watchTables(st *fsm.Store, ws memdb.WatchSet, tables ...string) error {
	for _, t := range tables {
		ch, err := st.Watch(t)
		if err != nil {
			return err
		}
		ws.Add(ch)
	}
	return nil
}

// evacuation is what a maintenance step found on the host.
type evacuation struct {
	toMove   []*fsm.VM // running, no job on them yet
	inFlight int       // VMs some job is working on
	stuck    []string  // VMs that cannot leave, each with why
}

func maintenanceStep(_ context.Context, st *fsm.Store, j *fsm.AsyncJob) (Step, error) {
	ws := memdb.NewWatchSet()
	if err := watchTables(st, ws, fsm.TableVMs, fsm.TableJobs, fsm.TableHosts); err != nil {
		return Step{}, err
	}
	h, end, err := jobHost(st, nil, j)
	if end != nil || err != nil {
		return deref(end), err
	}
	if h.ResourceState != fsm.ResourceStatePrepareMaintenance {
		return Fail(codeResourceFail, "the maintenance of host %s was called off: it is now %s", h.Name, h.ResourceState), nil
	}
	ev, err := surveyHost(st, j, h)
	if err != nil {
		return Step{}, err
	}
	switch {
	case len(ev.stuck) > 0 && ev.inFlight == 0:
		nh := h.Copy()
		nh.ResourceState = fsm.ResourceStateErrorInMaintenance
		msg := fmt.Sprintf("host %s cannot enter maintenance: %s", h.Name, strings.Join(ev.stuck, "; "))
		s := Fail(codeResourceFail, "%s", msg)
		s.Ops = []fsm.TxnOp{fsm.Update(fsm.TableHosts, nh), hostEvent(j, "MAINT.PREPARE", fsm.EventError, h, "%s", msg)}
		return s, nil
	case len(ev.stuck) > 0:
		// Let the running migrations end before failing, so the host's
		// state says where every VM is.
	case len(ev.toMove) > 0 && ev.inFlight < maintenanceParallel:
		return startMigrations(j, ev.toMove[:min(len(ev.toMove), maintenanceParallel-ev.inFlight)]), nil
	case len(ev.toMove) == 0 && ev.inFlight == 0:
		return enterMaintenance(st, j, h)
	}
	return Step{Wait: st.Changed(ws, stepWait), WaitMax: stepWait}, nil
}

// surveyHost sorts the VMs on the host (or on their way to it).
func surveyHost(st *fsm.Store, j *fsm.AsyncJob, h *fsm.Host) (evacuation, error) {
	var ev evacuation
	on, err := fsm.List[fsm.VM](st, nil, fsm.TableVMs, "host", h.ID)
	if err != nil {
		return ev, err
	}
	coming, err := fsm.List[fsm.VM](st, nil, fsm.TableVMs, "migrate_to", h.ID)
	if err != nil {
		return ev, err
	}
	pending, err := fsm.List[fsm.AsyncJob](st, nil, fsm.TableJobs, "status", fsm.JobPending)
	if err != nil {
		return ev, err
	}
	busy := map[string]bool{}
	ours := map[string]bool{} // VMs whose migration this job started is still running
	for _, pj := range pending {
		if pj.ID != j.ID && pj.InstanceType == "VirtualMachine" {
			busy[pj.InstanceID] = true
			if pj.ID == migrationJobID(j.ID, pj.InstanceID) {
				ours[pj.InstanceID] = true
			}
		}
	}
	// A VM whose source let go is off the host before its migration ends;
	// wait for the end anyway, so that when the host is in maintenance its
	// VMs are running elsewhere, not still arriving.
	counted := map[string]bool{}
	for _, v := range on {
		counted[v.ID] = true
	}
	for _, v := range coming {
		counted[v.ID] = true
	}
	for id := range ours {
		if !counted[id] {
			ev.inFlight++
		}
	}
	sort.Slice(on, func(a, b int) bool { return on[a].Name < on[b].Name })
	for _, v := range on {
		if busy[v.ID] {
			ev.inFlight++
			continue
		}
		if why, err := migrationOutcome(st, j, v); err != nil {
			return ev, err
		} else if why != "" {
			ev.stuck = append(ev.stuck, fmt.Sprintf("virtual machine %s cannot leave it: %s", v.Name, why))
			continue
		}
		if v.State != fsm.VMRunning {
			ev.stuck = append(ev.stuck, fmt.Sprintf("virtual machine %s is %s on it and no job is moving it; stop or migrate it, then prepare the host again", v.Name, v.State))
			continue
		}
		ev.toMove = append(ev.toMove, v)
	}
	for _, v := range coming {
		if v.HostID == h.ID {
			continue // counted above
		}
		if busy[v.ID] {
			ev.inFlight++
			continue
		}
		ev.stuck = append(ev.stuck, fmt.Sprintf("virtual machine %s is migrating to it and no job drives that migration", v.Name))
	}
	return ev, nil
}

// migrationOutcome says why the migration this job started for v, which
// is still on the host, did not move it; "" when the job started none.
func migrationOutcome(st *fsm.Store, j *fsm.AsyncJob, v *fsm.VM) (string, error) {
	mj, err := fsm.Get[fsm.AsyncJob](st, nil, fsm.TableJobs, migrationJobID(j.ID, v.ID))
	if err != nil || mj == nil {
		return "", err
	}
	if mj.Status == fsm.JobSucceeded {
		return fmt.Sprintf("it was migrated (job %s) but is back on the host", mj.ID), nil
	}
	var res JobError
	if json.Unmarshal(mj.Result, &res) != nil || res.Text == "" {
		return fmt.Sprintf("its migration (job %s) failed", mj.ID), nil
	}
	return res.Text, nil
}

// startMigrations commits a migrateVirtualMachine job for each VM, as the
// API would for an operator's request, pinning each VM so a racing change
// makes the step read again.
func startMigrations(j *fsm.AsyncJob, vms []*fsm.VM) Step {
	var ops []fsm.TxnOp
	now := time.Now().UTC()
	for _, v := range vms {
		ops = append(ops, fsm.Claim(fsm.TableVMs, v), fsm.Create(fsm.TableJobs, &fsm.AsyncJob{
			ID: migrationJobID(j.ID, v.ID), Cmd: cmdMigrateVM, AccountID: j.AccountID, DomainID: j.DomainID, UserID: j.UserID,
			Params: map[string]string{VMParamID: v.ID}, Status: fsm.JobPending, InstanceType: "VirtualMachine", InstanceID: v.ID,
			Created: now,
		}))
	}
	return Step{Ops: ops, Next: "evacuating"}
}

// enterMaintenance puts the emptied host into Maintenance; stopped VMs
// that would prefer it for their next start forget it.
func enterMaintenance(st *fsm.Store, j *fsm.AsyncJob, h *fsm.Host) (Step, error) {
	last, err := fsm.List[fsm.VM](st, nil, fsm.TableVMs, "last_host", h.ID)
	if err != nil {
		return Step{}, err
	}
	nh := h.Copy()
	nh.ResourceState = fsm.ResourceStateMaintenance
	ops := []fsm.TxnOp{fsm.Update(fsm.TableHosts, nh)}
	for _, v := range last {
		if v.HostID == "" {
			nv := v.Copy()
			nv.LastHostID = ""
			ops = append(ops, fsm.Update(fsm.TableVMs, nv))
		}
	}
	ops = append(ops, hostEvent(j, "MAINT.PREPARE", fsm.EventInfo, h, "host %s is in maintenance: no VM is left on it", h.Name))
	return Succeed(HostResult(nh), ops...), nil
}

// powerStep runs a power action on the host's BMC, then records the power
// state the BMC reported. The action runs in the step before the one that
// commits, so a stale host row (an agent's heartbeat) never makes it run
// twice; a leader that dies between the two may leave the next leader to
// run it once more, which is harmless for every action but CYCLE and
// RESET.
func powerStep(run fence.Runner) Handler {
	return func(ctx context.Context, st *fsm.Store, j *fsm.AsyncJob) (Step, error) {
		h, end, err := jobHost(st, nil, j)
		if end != nil || err != nil {
			return deref(end), err
		}
		action := strings.ToUpper(j.Params[HostParamAction])
		if j.Step == "record" {
			state := j.Params[hostParamPower]
			nh := h.Copy()
			var ops []fsm.TxnOp
			if nh.OutOfBand != nil && nh.OutOfBand.PowerState != state {
				nh.OutOfBand.PowerState = state
				ops = append(ops, fsm.Update(fsm.TableHosts, nh))
			}
			ops = append(ops, hostEvent(j, "HOST.OOBM.POWERACTION", fsm.EventInfo, h,
				"out-of-band power action %s on host %s: power is %s", action, h.Name, state))
			return Succeed(powerResult(nh, action, state), ops...), nil
		}
		oob := h.OutOfBand
		if oob == nil || oob.Address == "" {
			return Fail(codeParam, "host %s has no out-of-band management: configure it with configureOutOfBandManagement", h.Name), nil
		}
		if !oob.Enabled {
			return Fail(codeParam, "out-of-band management is disabled for host %s: enable it with enableOutOfBandManagementForHost", h.Name), nil
		}
		timeout := DefaultPowerActionTimeout
		if s, err := strconv.Atoi(j.Params[HostParamTimeout]); err == nil && s > 0 {
			timeout = time.Duration(s) * time.Second
		}
		actx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		cfg := &fence.IPMIConfig{Address: oob.Address, Port: oob.Port, Username: oob.Username, Password: oob.Password}
		state, err := fence.PowerAction(actx, run, cfg, action)
		if err != nil {
			if ctx.Err() != nil {
				return Step{}, ctx.Err() // leadership lost: the next leader runs it
			}
			return Fail(codeResourceFail, "out-of-band power action %s on host %s failed: %v", action, h.Name, err), nil
		}
		return Step{Next: "record", Params: map[string]string{hostParamPower: state}}, nil
	}
}

// powerResult is issueOutOfBandManagementPowerAction's answer, never with
// the password.
func powerResult(h *fsm.Host, action, state string) any {
	out := map[string]any{"hostid": h.ID, "action": action, "powerstate": state, "status": true,
		"description": fmt.Sprintf("power action %s done; power is %s", action, state)}
	if o := h.OutOfBand; o != nil {
		out["enabled"], out["driver"], out["address"], out["username"] = o.Enabled, o.Driver, o.Address, o.Username
		if o.Port > 0 {
			out["port"] = strconv.Itoa(o.Port)
		}
	}
	return map[string]any{"outofbandmanagement": out}
}
