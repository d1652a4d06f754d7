package scheduler

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/stratus-cloud/stratus/cluster"
	"github.com/stratus-cloud/stratus/fsm"
)

// Purger is the leader's retention of async jobs and events: every
// PurgeInterval it removes finished jobs that ended more than
// job.expire.minutes ago and events older than event.purge.delay days, in
// transactions of at most purgeBatch deletes. Every server holds the whole
// store in memory; without this, jobs and events (a deploy writes one job
// and two events) would grow with every command ever run. Pending jobs are
// never removed. The leader's clock decides what is old; the deletes are
// ordinary committed operations, the same on every replica.
type Purger struct {
	*cluster.LeaderTask // Establish and Revoke are leadership hooks
	c                   Cluster
	logger              hclog.Logger
	now                 func() time.Time
}

// PurgeInterval is how often the purger sweeps.
const PurgeInterval = time.Minute

const (
	purgeBatch      = 500 // deletes per transaction
	purgeMaxBatches = 40  // transactions per table and sweep; the rest waits for the next
)

// NewPurger returns the controller; cmd starts it on the leader.
func NewPurger(c Cluster, logger hclog.Logger) *Purger {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	p := &Purger{c: c, logger: logger.Named("purger"), now: time.Now}
	p.LeaderTask = cluster.NewLeaderTask(p.loop)
	return p
}

func (p *Purger) loop(ctx context.Context) {
	for {
		p.sweep(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(PurgeInterval):
		}
	}
}

// sweep removes what has expired now. It returns how many jobs and events
// it removed.
func (p *Purger) sweep(ctx context.Context) (jobs, events int) {
	st := p.c.State()
	now := p.now()
	if m := st.SettingInt(fsm.SettingJobExpireMinutes); m > 0 {
		cutoff := now.Add(-time.Duration(m) * time.Minute)
		jobs = p.purge(ctx, fsm.TableJobs, func(st *fsm.Store, visit func(string, bool) bool) error {
			return fsm.Each(st, nil, fsm.TableJobs, "create", nil, func(j *fsm.AsyncJob) bool {
				ended := j.Completed
				if ended.IsZero() {
					ended = j.Created
				}
				return visit(j.ID, j.Status != fsm.JobPending && ended.Before(cutoff))
			})
		})
	}
	if d := st.SettingInt(fsm.SettingEventPurgeDelay); d > 0 {
		cutoff := now.AddDate(0, 0, -d)
		events = p.purge(ctx, fsm.TableEvents, func(st *fsm.Store, visit func(string, bool) bool) error {
			return fsm.Each(st, nil, fsm.TableEvents, "create", nil, func(ev *fsm.Event) bool {
				return visit(ev.ID, ev.Created.Before(cutoff))
			})
		})
	}
	return jobs, events
}

// purge deletes, batch by batch, the rows of table that walk reports
// expired (walk calls visit with each row's ID and whether it expired,
// and stops when visit returns false). Each batch is found on the state
// as it is after the one before.
func (p *Purger) purge(ctx context.Context, table string, walk func(*fsm.Store, func(string, bool) bool) error) int {
	removed := 0
	for range purgeMaxBatches {
		var ops []fsm.TxnOp
		err := walk(p.c.State(), func(id string, expired bool) bool {
			if expired {
				op := fsm.Delete(table, id)
				op.IfExists = true // a new leader's sweep may repeat one
				ops = append(ops, op)
			}
			return len(ops) < purgeBatch
		})
		if err != nil {
			p.logger.Error("cannot scan for expired rows", "table", table, "error", err)
			return removed
		}
		if len(ops) == 0 || ctx.Err() != nil {
			return removed
		}
		if _, err := p.c.Apply(ctx, fsm.TxnRequestType, fsm.TxnRequest{Ops: ops}); err != nil {
			p.logger.Warn("cannot remove expired rows", "table", table, "rows", len(ops), "error", err)
			return removed
		}
		removed += len(ops)
		p.logger.Debug("removed expired rows", "table", table, "rows", len(ops))
		if len(ops) < purgeBatch {
			return removed
		}
	}
	return removed
}
