package cluster

import (
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Gathering writes on the leader.
//
// Raft's leader loop writes its log once per pass, in one bbolt
// transaction and one fsync, for every entry waiting at that moment, then
// replicates them in one message per follower, and each server's FSM
// applies what one commit made final in one batch. That group commit only
// groups the writes that queue while the previous pass is busy: when
// writes arrive one at a time faster than a pass takes, each pass finds
// one entry, and every entry pays a disk write, a replication message and
// an FSM batch of its own (stratus_raft_log_store_batch_entries near 1).
//
// The gatherer trades a little latency for sharing those costs under
// load: a write that arrives while other writes of this leader are still
// in flight is held for up to the gather window, with whatever else
// arrives meanwhile, and the lot is handed to raft back to back so that
// one pass takes them all. A write that arrives while none is in flight
// goes to raft at once, so a quiet cluster's latency is unchanged. A
// window of zero or less turns gathering off (Config.GatherWindow takes 0
// for its default and a negative value for off; the server's
// -raft-gather-window 0 is off).

// gatherMax bounds a gathered batch: raft's pass takes at most
// MaxAppendEntries entries, and BatchApplyCh buffers as many.
const gatherMax = raftMaxAppendEntries

// gatherer holds writes of a busy leader for up to window.
type gatherer struct {
	apply  func(data []byte) raft.ApplyFuture
	window time.Duration
	stop   <-chan struct{}
	in     chan *proposal
	// inflight counts the writes handed to propose whose outcome their
	// caller has not yet had (done not yet called); kick tells run that
	// one ended.
	inflight atomic.Int64
	kick     chan struct{}
	// onBatch, when set, is told the size of each batch handed to raft.
	onBatch func(n int)
}

// proposal is one held write.
type proposal struct {
	data  []byte
	f     raft.ApplyFuture
	ready chan struct{}
}

func newGatherer(apply func([]byte) raft.ApplyFuture, window time.Duration, stop <-chan struct{}) *gatherer {
	return &gatherer{apply: apply, window: window, stop: stop, in: make(chan *proposal), kick: make(chan struct{}, 1)}
}

// propose hands data to raft, at once or with the writes gathered with
// it; the caller must call done once it has the future's outcome.
func (g *gatherer) propose(data []byte) raft.ApplyFuture {
	if g.inflight.Add(1) == 1 || g.window <= 0 {
		return g.apply(data)
	}
	p := &proposal{data: data, ready: make(chan struct{})}
	select {
	case g.in <- p:
	case <-g.stop:
		return g.apply(data) // raft is shutting down too: it answers ErrRaftShutdown
	}
	<-p.ready
	return p.f
}

// done ends a write handed to propose.
func (g *gatherer) done() {
	g.inflight.Add(-1)
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// alone reports whether the n held writes are all the writes in flight:
// raft then has nothing else to do, and holding them longer would only
// make them wait.
func (g *gatherer) alone(n int) bool { return g.inflight.Load() <= int64(n) }

// run gathers until stop is closed. A batch is handed over when the
// window since its first write has passed, when it is full, or when no
// other write is in flight any more (the batch is all there is: waiting
// longer would gather nothing).
func (g *gatherer) run() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	batch := make([]*proposal, 0, gatherMax)
	for {
		var first *proposal
		select {
		case first = <-g.in:
		case <-g.stop:
			return
		}
		batch = append(batch[:0], first)
		timer.Reset(g.window)
	gather:
		for len(batch) < gatherMax && !g.alone(len(batch)) {
			select {
			case p := <-g.in:
				batch = append(batch, p)
			case <-g.kick: // a write ended: see whether these are all that is left
			case <-timer.C:
				break gather
			case <-g.stop:
				break gather
			}
		}
		timer.Stop()
		if g.onBatch != nil {
			g.onBatch(len(batch))
		}
		for _, p := range batch {
			p.f = g.apply(p.data)
			close(p.ready)
		}
		clear(batch)
	}
}
