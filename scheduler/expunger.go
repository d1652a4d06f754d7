package scheduler

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"

	"github.com/stratus-cloud/stratus/cluster"
	"github.com/stratus-cloud/stratus/fsm"
)

// Expunger is the leader's clean-up of destroyed VMs: a VM Destroyed for
// longer than expunge.delay gets an expungeVirtualMachine job (which the
// job runner carries out), so recoverVirtualMachine works until then.
type Expunger struct {
	*cluster.LeaderTask // Establish and Revoke are leadership hooks
	c                   Cluster
	logger              hclog.Logger
	now                 func() time.Time
}

// NewExpunger returns the controller; cmd starts it on the leader.
func NewExpunger(c Cluster, logger hclog.Logger) *Expunger {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	e := &Expunger{c: c, logger: logger.Named("expunger"), now: time.Now}
	e.LeaderTask = cluster.NewLeaderTask(e.loop)
	return e
}

func (e *Expunger) loop(ctx context.Context) {
	for {
		e.sweep(ctx)
		interval := time.Duration(e.c.State().SettingInt(fsm.SettingExpungeInterval)) * time.Second
		if interval <= 0 {
			interval = time.Minute
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// sweep submits an expunge job for every VM destroyed long enough ago that
// no job works on yet. The job's ID is derived from the VM, so a sweep
// repeated by a new leader proposes the same job and the second is refused
// as a duplicate.
func (e *Expunger) sweep(ctx context.Context) {
	st := e.c.State()
	delay := time.Duration(st.SettingInt(fsm.SettingExpungeDelay)) * time.Second
	vms, err := fsm.List[fsm.VM](st, nil, fsm.TableVMs, "create")
	if err != nil {
		e.logger.Error("cannot list VMs", "error", err)
		return
	}
	for _, v := range vms {
		if v.State != fsm.VMDestroyed || v.Destroyed.IsZero() || e.now().Sub(v.Destroyed) < delay {
			continue
		}
		id := uuid.NewSHA1(uuid.NameSpaceURL, []byte("stratus:expunge:"+v.ID+":"+v.Destroyed.Format(time.RFC3339Nano))).String()
		if j, _ := fsm.Get[fsm.AsyncJob](st, nil, fsm.TableJobs, id); j != nil {
			continue
		}
		if busy, _ := fsm.List[fsm.AsyncJob](st, nil, fsm.TableJobs, "pending_instance", v.ID); len(busy) > 0 {
			continue // an operator's expunge is already at work on it
		}
		job := &fsm.AsyncJob{ID: id, Cmd: "expungeVirtualMachine", AccountID: v.AccountID, DomainID: v.DomainID,
			Params: map[string]string{VMParamID: v.ID}, Status: fsm.JobPending, InstanceType: "VirtualMachine", InstanceID: v.ID,
			Created: e.now().UTC()}
		if _, err := e.c.Apply(ctx, fsm.TxnRequestType, fsm.TxnRequest{Ops: []fsm.TxnOp{fsm.Claim(fsm.TableVMs, v), fsm.Create(fsm.TableJobs, job)}}); err != nil {
			e.logger.Warn("cannot submit expunge job", "vm", v.ID, "error", err)
			continue
		}
		e.logger.Info("expunging destroyed VM", "vm", v.ID, "destroyed", v.Destroyed)
	}
}
