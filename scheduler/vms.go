package scheduler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	memdb "github.com/hashicorp/go-memdb"

	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/scheduler/placement"
)

// VM jobs. Each job moves one VM through CloudStack's states in steps; a
// step reads the VM and commits the next change with compare-and-set, so a
// new leader resuming the job from its last committed step never repeats
// one. Agents do the host side: they watch the VM's desired power state and
// report what they observe (ObservedHostID, ObservedPower, ...), and the
// waiting steps below move on when the report matches.

// Parameters of VM jobs, as the API commits them.
const (
	VMParamID      = "vm"
	VMParamHost    = "hostid" // deploy or migrate to this host
	VMParamPod     = "podid"  // deploy in this pod
	VMParamCluster = "clusterid"
	VMParamForced  = "forced"  // stop: power off at once
	VMParamExpunge = "expunge" // destroy: expunge at once
	VMParamAvoid   = "avoid"   // hosts that failed to start the VM, comma separated
	VMParamGen     = "gen"     // reboot generation waited for
	VMParamDeploy  = "deploy"  // "true" for deployVirtualMachine's start
	VMParamSource  = "source"  // migration: the host the VM leaves
	VMParamStartVM = "startvm" // deploy: "false" leaves the new VM Stopped
	// VMParamHARestart marks the start job of an HA restart: it ends
	// without placing the VM when the owner stopped it meanwhile.
	VMParamHARestart = "ha_restart"
	// migration: why the target could not start the VM after the source
	// let go; the job then starts it again elsewhere
	VMParamMigrateError = "migrateerror"
	// VMParamPlaced marks a deploy whose VM the API placed in the very
	// commit that created it (PlaceNew): until the job commits a step of
	// its own, it is where a placement step would have left it, waiting
	// for the host to start the VM.
	VMParamPlaced = "placed"
)

// maxStartHosts is how many hosts a start tries before it gives up.
const maxStartHosts = 3

// stepWait is how long a waiting step sleeps before it looks again when
// nothing wakes it.
const stepWait = 30 * time.Second

// Codes of VM job failures, as CloudStack numbers them.
const (
	codeParam        = 431
	codeCapacity     = 533
	codeResourceFail = 530
)

// RegisterVMJobs adds the VM job kinds.
func RegisterVMJobs(r *Runner) {
	for _, cmd := range startCommands {
		r.Handle(cmd, startStep)
	}
	r.Handle("stopVirtualMachine", stopStep)
	r.Handle("rebootVirtualMachine", rebootStep)
	r.Handle("destroyVirtualMachine", destroyStep)
	r.Handle("expungeVirtualMachine", expungeStep)
	r.Handle("migrateVirtualMachine", migrateStep)
	r.Handle("migrateVirtualMachineWithVolume", migrateStep)
}

// startCommands are the jobs startStep runs, which an agent's report may
// finish (StartedOnReport).
var startCommands = []string{"deployVirtualMachine", "startVirtualMachine"}

// VMResult is the result every VM job commits: the API renders the VM as
// it is when the result is read.
func VMResult(id string) any { return map[string]any{"virtualmachine": map[string]string{"id": id}} }

// jobRow reads the row a job works on, with ws (may be nil) watching it.
// A missing row ends the job: the Step says so.
func jobRow[T any](st *fsm.Store, ws memdb.WatchSet, table, id, noun string) (*T, *Step, error) {
	row, err := fsm.Get[T](st, ws, table, id)
	if err != nil {
		return nil, nil, err
	}
	if row == nil {
		s := Fail(codeParam, "%s %s no longer exists", noun, id)
		return nil, &s, nil
	}
	return row, nil, nil
}

// jobVM reads the job's VM with ws watching it. A missing VM ends the job.
func jobVM(st *fsm.Store, ws memdb.WatchSet, j *fsm.AsyncJob) (*fsm.VM, *Step, error) {
	return jobRow[fsm.VM](st, ws, fsm.TableVMs, j.Params[VMParamID], "virtual machine")
}

// jobEvent records the completion of a VM job in listEvents.
func jobEvent(j *fsm.AsyncJob, typ string, v *fsm.VM, format string, args ...any) fsm.TxnOp {
	return fsm.Create(fsm.TableEvents, &fsm.Event{
		ID: uuid.NewSHA1(uuid.NameSpaceURL, []byte("stratus:event:"+j.ID+":"+typ)).String(), Type: typ, Level: fsm.EventInfo,
		State: "Completed", Description: fmt.Sprintf(format, args...), AccountID: j.AccountID, DomainID: j.DomainID, UserID: j.UserID,
		ResourceType: "VirtualMachine", ResourceID: v.ID, JobID: j.ID, Created: time.Now().UTC(),
	})
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// startStep drives deployVirtualMachine and startVirtualMachine: place the
// VM (host, pools, address), wait until its host's agent reports it
// running, and try another host when the agent reports it cannot.
func startStep(_ context.Context, st *fsm.Store, j *fsm.AsyncJob) (Step, error) {
	ws := memdb.NewWatchSet()
	v, end, err := jobVM(st, ws, j)
	if end != nil || err != nil {
		return deref(end), err
	}
	if j.Step == "starting" || placedAtDeploy(j) {
		return waitStarted(st, ws, j, v)
	}
	if j.Params[VMParamStartVM] == "false" {
		return Succeed(VMResult(v.ID), jobEvent(j, "VM.CREATE", v, "created virtual machine %s, stopped", v.Name)), nil
	}
	if j.Params[VMParamHARestart] == "true" && !v.HAPending && v.HostID == "" {
		// An HA restart the owner called off (stopped the VM) meanwhile.
		return Succeed(VMResult(v.ID)), nil
	}
	switch {
	case v.HostID != "" && v.State == fsm.VMRunning:
		return Succeed(VMResult(v.ID)), nil
	case v.HostID != "":
		return Step{Next: "starting"}, nil // placed by an earlier step
	case v.State != fsm.VMStopped && v.State != fsm.VMStarting:
		return Fail(codeParam, "virtual machine %s is %s; only a Stopped VM can be started", v.Name, v.State), nil
	}
	return place(st, j, v)
}

// placedAtDeploy reports whether the job's VM was placed by the commit
// that created the job and no step was committed since (every commit of
// a step counts in Attempts; one that gives up a host and places again
// is such a step).
func placedAtDeploy(j *fsm.AsyncJob) bool {
	return j.Step == "" && j.Attempts == 0 && j.Params[VMParamPlaced] == "true"
}

func deref(s *Step) Step {
	if s == nil {
		return Step{}
	}
	return *s
}

func place(st *fsm.Store, j *fsm.AsyncJob, v *fsm.VM) (Step, error) {
	// Plan and read the rows the plan changes from one snapshot: read
	// afresh, a host could already hold what another placement committed
	// since the plan was made, and the compare-and-set of its update would
	// not notice.
	st = st.Snapshot()
	vols, err := vmVolumes(st, v.ID)
	if err != nil {
		return Step{}, err
	}
	req, err := PlacementRequest(st, v, vols)
	if err != nil {
		return Step{}, err
	}
	req.HostID, req.AvoidHosts = j.Params[VMParamHost], split(j.Params[VMParamAvoid])
	req.PodID, req.ClusterID = j.Params[VMParamPod], j.Params[VMParamCluster]
	plan, err := placement.Place(NewView(st), req)
	if err != nil {
		if errors.Is(err, placement.ErrInsufficientCapacity) {
			return failStart(j, v, codeCapacity, "%v", err), nil
		}
		if errors.Is(err, placement.ErrUnknownZone) {
			return failStart(j, v, codeParam, "the zone of %s no longer exists", v.Name), nil
		}
		return Step{}, err
	}
	host, err := fsm.Get[fsm.Host](st, nil, fsm.TableHosts, plan.HostID)
	if err != nil || host == nil {
		return Step{}, fmt.Errorf("planned host %s: %w", plan.HostID, err)
	}
	ops, err := reservePools(st, vols, plan.Pools)
	if err != nil {
		return Step{}, err
	}
	nv := v.Copy()
	placeOn(nv, plan)
	if nv.IPAddress == "" {
		if e := assignAddress(st, nv); e != nil {
			return failStart(j, v, codeCapacity, "%s", e.Error()), nil
		}
	}
	ops = append(ops, reserveHost(host, v, 1), fsm.Update(fsm.TableVMs, nv))
	return Step{Ops: ops, Next: "starting"}, nil
}

// placeOn sets a VM's placement from a plan and asks for it to run.
func placeOn(v *fsm.VM, plan placement.Plan) {
	v.HostID, v.PodID, v.ClusterID = plan.HostID, plan.PodID, plan.ClusterID
	v.State, v.Power, v.ForceStop = fsm.VMStarting, fsm.PowerOn, false
	v.ObservedHostID, v.ObservedPower, v.ObservedError = "", "", ""
}

// PlaceNew places a VM that deployVirtualMachine is about to create, so
// the commit that creates it carries its placement too and the job has no
// placement step to commit (one Raft commit less per deploy, and no wait
// for the leader's runner to pick the job up). It plans against st, which
// may lag the leader: the reserve ops it returns are checked by the
// applier in log order (room left, host still Up) and the VM's address by
// the table's unique key, so a plan that lost a race makes the whole
// commit fail cleanly, and the caller commits the VM unplaced for the job
// to place. On success v (host, pod, cluster, state, address) and vols
// (pools) are filled in and params marked (VMParamPlaced); ok is false,
// and nothing is changed, when no host fits (the job then fails the
// deploy as it always has). A VM in affinity groups is left to the job:
// nothing in the commit would notice that another member was placed
// meanwhile by another server.
func PlaceNew(st *fsm.Store, v *fsm.VM, vols []*fsm.Volume, params map[string]string) (ops []fsm.TxnOp, ok bool, err error) {
	if len(v.AffinityGroupIDs) > 0 {
		return nil, false, nil
	}
	req, err := PlacementRequest(st, v, vols)
	if err != nil {
		return nil, false, err
	}
	req.HostID, req.PodID, req.ClusterID = params[VMParamHost], params[VMParamPod], params[VMParamCluster]
	plan, err := placement.Place(NewView(st), req)
	if err != nil {
		return nil, false, nil
	}
	host, err := fsm.Get[fsm.Host](st, nil, fsm.TableHosts, plan.HostID)
	if err != nil || host == nil {
		return nil, false, err
	}
	placed, ops, err := poolReservations(vols, plan.Pools)
	if err != nil {
		return nil, false, err
	}
	nv := v.Copy()
	placeOn(nv, plan)
	if nv.IPAddress == "" {
		if assignAddress(st, nv) != nil {
			return nil, false, nil
		}
	}
	*v = *nv
	for i, vol := range placed {
		*vols[i] = *vol
	}
	params[VMParamPlaced] = "true"
	return append(ops, reserveHost(host, v, 1)), true, nil
}

// failStart ends a start that could not place the VM: a new VM goes to
// Error, as in CloudStack; a stopped one stays Stopped.
func failStart(j *fsm.AsyncJob, v *fsm.VM, code int, format string, args ...any) Step {
	s := Fail(code, format, args...)
	nv := v.Copy()
	nv.State, nv.Power = fsm.VMStopped, fsm.PowerOff
	if j.Params[VMParamDeploy] == "true" {
		nv.State = fsm.VMError
	}
	s.Ops = []fsm.TxnOp{fsm.Update(fsm.TableVMs, nv)}
	return s
}

func waitStarted(st *fsm.Store, ws memdb.WatchSet, j *fsm.AsyncJob, v *fsm.VM) (Step, error) {
	if v.HostID == "" {
		return Fail(codeResourceFail, "virtual machine %s was stopped before it started", v.Name), nil
	}
	if v.ObservedHostID == v.HostID && v.ObservedPower == fsm.PowerOn {
		nv := v.Copy()
		nv.State, nv.HAPending = fsm.VMRunning, false // an HA restart is done
		typ := "VM.START"
		if j.Params[VMParamDeploy] == "true" {
			typ = "VM.CREATE"
		}
		return Succeed(VMResult(v.ID), fsm.Update(fsm.TableVMs, nv), jobEvent(j, typ, v, "started virtual machine %s on host %s", v.Name, v.HostID)), nil
	}
	if v.ObservedHostID == v.HostID && v.ObservedError != "" {
		return startFailedOnHost(st, j, v)
	}
	return Step{Wait: st.Changed(ws, stepWait), WaitMax: stepWait}, nil
}

// StartedOnReport returns the operations that finish the pending deploy
// or start of a VM whose host's agent just reported it running: nv is the
// VM as the report leaves it (a copy of the row read, observed fields
// set). They replace the report's own update of the VM: the VM Running,
// its event and the job's success, one commit instead of the report's and
// then the job runner's. nil when nv does not finish a start (not
// Starting, not observed running where it is placed, or no start job
// waiting for exactly that); the runner then goes on as before. Both
// paths update the job only if it is unchanged since it was read, so
// whichever commits first finishes it and the other is refused as stale.
func StartedOnReport(st *fsm.Store, nv *fsm.VM, now time.Time) ([]fsm.TxnOp, error) {
	if nv.State != fsm.VMStarting || nv.HostID == "" || nv.MigrateTo != "" ||
		nv.ObservedHostID != nv.HostID || nv.ObservedPower != fsm.PowerOn {
		return nil, nil
	}
	jobs, err := fsm.List[fsm.AsyncJob](st, nil, fsm.TableJobs, "pending_instance", nv.ID)
	if err != nil || len(jobs) != 1 {
		return nil, err // none pending, or more than one: leave it to the runner
	}
	job := jobs[0]
	if !slices.Contains(startCommands, job.Cmd) ||
		job.Params[VMParamID] != nv.ID || (job.Step != "starting" && !placedAtDeploy(job)) {
		return nil, nil
	}
	step, err := waitStarted(st, nil, job, nv)
	if err != nil || !step.Done || step.Err != nil {
		return nil, err
	}
	return stepOps(stepJob(job, step, now), step), nil
}

// startFailedOnHost gives the host's capacity back and places the VM again
// elsewhere, up to maxStartHosts hosts.
func startFailedOnHost(st *fsm.Store, j *fsm.AsyncJob, v *fsm.VM) (Step, error) {
	host, err := fsm.Get[fsm.Host](st, nil, fsm.TableHosts, v.HostID)
	if err != nil {
		return Step{}, err
	}
	nv := v.Copy()
	nv.LastHostID, nv.HostID, nv.PodID, nv.ClusterID = v.HostID, "", "", ""
	nv.State, nv.Power, nv.ObservedHostID, nv.ObservedPower = fsm.VMStarting, fsm.PowerOff, "", ""
	var ops []fsm.TxnOp
	if host != nil {
		ops = append(ops, reserveHost(host, v, -1))
	}
	avoid := append(split(j.Params[VMParamAvoid]), v.HostID)
	if len(avoid) >= maxStartHosts {
		s := failStart(j, nv, codeResourceFail, "virtual machine %s could not start on %d hosts; the last said: %s", v.Name, len(avoid), v.ObservedError)
		s.Ops = append(ops, s.Ops...)
		return s, nil
	}
	ops = append(ops, fsm.Update(fsm.TableVMs, nv))
	return Step{Ops: ops, Next: "", Params: map[string]string{VMParamAvoid: strings.Join(avoid, ",")}}, nil
}

// stopStep asks the VM's host to power it off, waits for the agent to
// confirm, then gives the host's capacity back.
func stopStep(_ context.Context, st *fsm.Store, j *fsm.AsyncJob) (Step, error) {
	ws := memdb.NewWatchSet()
	v, end, err := jobVM(st, ws, j)
	if end != nil || err != nil {
		return deref(end), err
	}
	if j.Step == "stopping" {
		return waitStopped(st, ws, j, v, func(nv *fsm.VM) (Step, error) {
			return Succeed(VMResult(v.ID), fsm.Update(fsm.TableVMs, nv), jobEvent(j, "VM.STOP", v, "stopped virtual machine %s", v.Name)), nil
		})
	}
	if v.State == fsm.VMStopped && v.HostID == "" {
		if v.HAPending { // the owner's stop calls off a pending HA restart
			nv := v.Copy()
			nv.HAPending = false
			return Succeed(VMResult(v.ID), fsm.Update(fsm.TableVMs, nv)), nil
		}
		return Succeed(VMResult(v.ID)), nil
	}
	if v.State != fsm.VMRunning && v.State != fsm.VMStarting && v.State != fsm.VMStopping && v.State != fsm.VMError {
		return Fail(codeParam, "virtual machine %s is %s; only a Running VM can be stopped", v.Name, v.State), nil
	}
	return askStop(v, j.Params[VMParamForced] == "true", "stopping")
}

func askStop(v *fsm.VM, forced bool, next string) (Step, error) {
	nv := v.Copy()
	nv.Power, nv.ForceStop = fsm.PowerOff, forced
	nv.HAPending = false // the owner wants it off: no HA restart any more
	if nv.HostID != "" {
		nv.State = fsm.VMStopping
	}
	return Step{Ops: []fsm.TxnOp{fsm.Update(fsm.TableVMs, nv)}, Next: next}, nil
}

// waitStopped waits until the VM's host reports it off, then releases the
// host and calls done with the VM as it must be committed (Stopped, no
// host).
func waitStopped(st *fsm.Store, ws memdb.WatchSet, j *fsm.AsyncJob, v *fsm.VM, done func(*fsm.VM) (Step, error)) (Step, error) {
	if v.HostID == "" {
		nv := v.Copy()
		nv.State = fsm.VMStopped
		return done(nv)
	}
	host, err := fsm.Get[fsm.Host](st, ws, fsm.TableHosts, v.HostID)
	if err != nil {
		return Step{}, err
	}
	if v.ObservedHostID == v.HostID && v.ObservedPower == fsm.PowerOff {
		nv := v.Copy()
		nv.LastHostID, nv.HostID, nv.PodID, nv.ClusterID = v.HostID, "", "", ""
		nv.State, nv.ObservedHostID, nv.ObservedPower, nv.ForceStop = fsm.VMStopped, "", "", false
		s, err := done(nv)
		if host != nil {
			s.Ops = append([]fsm.TxnOp{reserveHost(host, v, -1)}, s.Ops...)
		}
		return s, err
	}
	if host != nil && host.State != fsm.HostStateUp && j.Params[VMParamForced] == "true" {
		// Nobody can confirm the VM is off: keep it where it is.
		nv := v.Copy()
		nv.State, nv.Power, nv.ForceStop = fsm.VMRunning, fsm.PowerOn, false
		s := Fail(codeResourceFail, "host %s is %s, so nothing can confirm that %s is off; it stays Running. Retry when the host is back",
			host.Name, host.State, v.Name)
		s.Ops = []fsm.TxnOp{fsm.Update(fsm.TableVMs, nv)}
		return s, nil
	}
	return Step{Wait: st.Changed(ws, stepWait), WaitMax: stepWait}, nil
}

// rebootStep asks for one more reboot and waits for the agent to report it
// done.
func rebootStep(_ context.Context, st *fsm.Store, j *fsm.AsyncJob) (Step, error) {
	ws := memdb.NewWatchSet()
	v, end, err := jobVM(st, ws, j)
	if end != nil || err != nil {
		return deref(end), err
	}
	if j.Step == "rebooting" {
		gen, _ := strconv.Atoi(j.Params[VMParamGen])
		if v.ObservedHostID == v.HostID && v.ObservedRebootGen >= gen {
			return Succeed(VMResult(v.ID), jobEvent(j, "VM.REBOOT", v, "rebooted virtual machine %s", v.Name)), nil
		}
		if v.State != fsm.VMRunning {
			return Fail(codeResourceFail, "virtual machine %s went %s before it rebooted", v.Name, v.State), nil
		}
		return Step{Wait: st.Changed(ws, stepWait), WaitMax: stepWait}, nil
	}
	if v.State != fsm.VMRunning {
		return Fail(codeParam, "virtual machine %s is %s; only a Running VM can be rebooted", v.Name, v.State), nil
	}
	nv := v.Copy()
	nv.RebootGen++
	return Step{Ops: []fsm.TxnOp{fsm.Update(fsm.TableVMs, nv)}, Next: "rebooting",
		Params: map[string]string{VMParamGen: strconv.Itoa(nv.RebootGen)}}, nil
}

// destroyStep stops the VM if it runs, marks it Destroyed (recoverable
// until expunged) and expunges it at once when asked.
func destroyStep(_ context.Context, st *fsm.Store, j *fsm.AsyncJob) (Step, error) {
	ws := memdb.NewWatchSet()
	v, end, err := jobVM(st, ws, j)
	if end != nil || err != nil {
		return deref(end), err
	}
	expunge := j.Params[VMParamExpunge] == "true"
	switch {
	case j.Step == "stopping":
		return waitStopped(st, ws, j, v, func(nv *fsm.VM) (Step, error) {
			nv.State, nv.Destroyed = fsm.VMDestroyed, time.Now().UTC()
			ops := []fsm.TxnOp{fsm.Update(fsm.TableVMs, nv), jobEvent(j, "VM.DESTROY", v, "destroyed virtual machine %s", v.Name)}
			if expunge {
				return Step{Ops: ops, Next: "expunge"}, nil
			}
			return Succeed(VMResult(v.ID), ops...), nil
		})
	case j.Step == "expunge" || (v.State == fsm.VMDestroyed && expunge):
		return expungeVM(st, j, v)
	case v.State == fsm.VMDestroyed:
		return Succeed(VMResult(v.ID)), nil
	case v.State == fsm.VMMigrating:
		return Fail(codeParam, "virtual machine %s is migrating; destroy it once it is Running", v.Name), nil
	}
	return askStop(v, true, "stopping")
}

// expungeStep removes a destroyed VM for good.
func expungeStep(_ context.Context, st *fsm.Store, j *fsm.AsyncJob) (Step, error) {
	v, end, err := jobVM(st, nil, j)
	if end != nil || err != nil {
		return deref(end), err
	}
	if v.State != fsm.VMDestroyed {
		return Fail(codeParam, "virtual machine %s is %s; destroy it first", v.Name, v.State), nil
	}
	return expungeVM(st, j, v)
}

// expungeVM deletes the VM's root volume (giving its pool space back),
// detaches its data volumes, deletes its tags and then the VM itself.
func expungeVM(st *fsm.Store, j *fsm.AsyncJob, v *fsm.VM) (Step, error) {
	vols, err := vmVolumes(st, v.ID)
	if err != nil {
		return Step{}, err
	}
	var ops []fsm.TxnOp
	for _, vol := range vols {
		if vol.Type != fsm.VolumeRoot {
			nv := vol.Copy()
			nv.VMID, nv.DeviceID, nv.Attached = "", 0, time.Time{}
			ops = append(ops, fsm.Update(fsm.TableVolumes, nv))
			continue
		}
		if op, err := releasePool(st, vol); err != nil {
			return Step{}, err
		} else if op != nil {
			ops = append(ops, *op)
		}
		ops = append(ops, fsm.Delete(fsm.TableVolumes, vol.ID))
	}
	tags, err := fsm.List[fsm.Tag](st, nil, fsm.TableTags, "resource", v.ID)
	if err != nil {
		return Step{}, err
	}
	for _, t := range tags {
		ops = append(ops, fsm.Delete(fsm.TableTags, t.ID))
	}
	ops = append(ops, fsm.Check(fsm.TableVMs, v), fsm.Delete(fsm.TableVMs, v.ID), jobEvent(j, "VM.EXPUNGE", v, "expunged virtual machine %s", v.Name))
	return Succeed(map[string]any{"success": true}, ops...), nil
}

// migrateStep moves a running VM to another host: reserve the target, ask
// the source to let go (live migration, or a cold hand-over where the
// driver cannot migrate), then give the source's capacity back and wait
// for the target to report the VM running.
func migrateStep(ctx context.Context, st *fsm.Store, j *fsm.AsyncJob) (Step, error) {
	ws := memdb.NewWatchSet()
	v, end, err := jobVM(st, ws, j)
	if end != nil || err != nil {
		return deref(end), err
	}
	switch j.Step {
	case "migrating":
		return waitMigratedOut(st, ws, j, v)
	case "arriving":
		if v.ObservedHostID == v.HostID && v.ObservedPower == fsm.PowerOn {
			nv := v.Copy()
			nv.State = fsm.VMRunning
			return Succeed(VMResult(v.ID), fsm.Update(fsm.TableVMs, nv),
				jobEvent(j, "VM.MIGRATE", v, "migrated virtual machine %s from host %s to host %s", v.Name, j.Params[VMParamSource], v.HostID)), nil
		}
		if v.ObservedHostID == v.HostID && v.ObservedError != "" {
			// The source let go but the target cannot run the VM: start it
			// again on any other host, as startVirtualMachine would, rather
			// than leave it on none.
			s, err := startFailedOnHost(st, j, v)
			if err == nil && !s.Done {
				s.Params[VMParamHost] = ""
				s.Params[VMParamMigrateError] = fmt.Sprintf("host %s could not start it: %s", v.HostID, v.ObservedError)
			}
			return s, err
		}
		return Step{Wait: st.Changed(ws, stepWait), WaitMax: stepWait}, nil
	case "starting":
		s, err := startStep(ctx, st, j)
		if err == nil && s.Done && s.Err == nil {
			// Running again, but not where it was sent.
			f := Fail(codeResourceFail, "the migration of %s failed (%s); it was started again on host %s",
				v.Name, j.Params[VMParamMigrateError], v.HostID)
			f.Ops = s.Ops
			return f, nil
		}
		return s, err
	}
	if j.Params[VMParamMigrateError] != "" {
		return startStep(ctx, st, j) // placing again after a failed arrival
	}
	if v.State != fsm.VMRunning || v.HostID == "" {
		return Fail(codeParam, "virtual machine %s is %s; only a Running VM can be migrated", v.Name, v.State), nil
	}
	st = st.Snapshot() // plan and reserve from one view, as place does
	vols, err := vmVolumes(st, v.ID)
	if err != nil {
		return Step{}, err
	}
	req, err := PlacementRequest(st, v, vols)
	if err != nil {
		return Step{}, err
	}
	req.HostID, req.AvoidHosts = j.Params[VMParamHost], []string{v.HostID}
	if req.HostID == v.HostID {
		return Fail(codeParam, "virtual machine %s already runs on host %s", v.Name, v.HostID), nil
	}
	plan, err := placement.Place(NewView(st), req)
	if err != nil {
		if errors.Is(err, placement.ErrInsufficientCapacity) {
			return Fail(codeCapacity, "%v", err), nil
		}
		return Step{}, err
	}
	target, err := fsm.Get[fsm.Host](st, nil, fsm.TableHosts, plan.HostID)
	if err != nil || target == nil {
		return Step{}, fmt.Errorf("planned host %s: %w", plan.HostID, err)
	}
	nv := v.Copy()
	nv.MigrateTo, nv.MigratedOut, nv.State, nv.ObservedError = plan.HostID, false, fsm.VMMigrating, ""
	return Step{Ops: []fsm.TxnOp{reserveHost(target, v, 1), fsm.Update(fsm.TableVMs, nv)}, Next: "migrating",
		Params: map[string]string{VMParamSource: v.HostID}}, nil
}

func waitMigratedOut(st *fsm.Store, ws memdb.WatchSet, j *fsm.AsyncJob, v *fsm.VM) (Step, error) {
	if v.MigrateTo == "" {
		return Fail(codeResourceFail, "the migration of %s was called off", v.Name), nil
	}
	source, err := fsm.Get[fsm.Host](st, nil, fsm.TableHosts, v.HostID)
	if err != nil {
		return Step{}, err
	}
	if v.MigratedOut {
		nv := v.Copy()
		nv.LastHostID, nv.HostID, nv.MigrateTo, nv.MigratedOut = v.HostID, v.MigrateTo, "", false
		nv.ObservedHostID, nv.ObservedPower, nv.ObservedError = "", "", ""
		if t, err := fsm.Get[fsm.Host](st, nil, fsm.TableHosts, v.MigrateTo); err == nil && t != nil {
			nv.PodID, nv.ClusterID = t.PodID, t.ClusterID
		}
		ops := []fsm.TxnOp{fsm.Update(fsm.TableVMs, nv)}
		if source != nil {
			ops = append([]fsm.TxnOp{reserveHost(source, v, -1)}, ops...)
		}
		return Step{Ops: ops, Next: "arriving"}, nil
	}
	if v.ObservedHostID == v.HostID && v.ObservedError != "" {
		target, err := fsm.Get[fsm.Host](st, nil, fsm.TableHosts, v.MigrateTo)
		if err != nil {
			return Step{}, err
		}
		nv := v.Copy()
		nv.MigrateTo, nv.State = "", fsm.VMRunning
		s := Fail(codeResourceFail, "host %s could not migrate %s: %s", v.HostID, v.Name, v.ObservedError)
		s.Ops = []fsm.TxnOp{fsm.Update(fsm.TableVMs, nv)}
		if target != nil {
			s.Ops = append(s.Ops, reserveHost(target, v, -1))
		}
		return s, nil
	}
	return Step{Wait: st.Changed(ws, stepWait), WaitMax: stepWait}, nil
}
