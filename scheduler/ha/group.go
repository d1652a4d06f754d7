package ha

import (
	"context"
	"errors"
	"sync"

	"github.com/stratus-cloud/stratus/fsm"
)

// Group commit of host state changes.
//
// When many leases run out at once (a rack loses power, or a leader
// change leaves thousands of agents without an answer for a moment), each
// host's expiry commits Disconnected and then Alert or Fenced, and each
// returning host's heartbeat commits it Up. One raft entry per host made
// such a burst tens of thousands of entries: every server's state machine
// fell behind, the heartbeats that wait for their host's Up commit waited
// on that backlog, and more leases ran out. So the commits of host changes
// queue here and go to raft together: while one group is being committed
// the next one gathers, so a lone change is committed at once and a burst
// of them takes a few entries.
//
// A group is one transaction. Each change keeps its compare-and-set on the
// host row, so a group fails as a whole when one of its hosts changed
// since it was read; its changes are then committed one by one (at the
// same time, so raft still batches them), and only the stale one is read
// again by its caller. The callers hold their host's lock while they wait,
// exactly as they held it around their own commit before (see quiet).

// maxGroup bounds a group: a host row and its event are a few KB, so a
// group stays an entry of well under a MB.
const maxGroup = 128

// hostWrite is one host's change waiting in the queue.
type hostWrite struct {
	ops  []fsm.TxnOp
	done chan error // gets the outcome once
}

// groupCommitter queues host changes and commits them in groups.
type groupCommitter struct {
	cl Cluster

	mu      sync.Mutex
	queue   []*hostWrite
	running bool // a goroutine is draining the queue
}

// commit commits ops, alone or in a group with other hosts' changes, and
// returns the outcome of ops' own transaction. It waits for the outcome
// even after ctx ends, as a leader's raft apply does: the caller holds its
// host's lock, which must not be released while its commit may still land.
func (g *groupCommitter) commit(ctx context.Context, ops []fsm.TxnOp) error {
	w := &hostWrite{ops: ops, done: make(chan error, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, w)
	if !g.running {
		g.running = true
		go g.drain(context.WithoutCancel(ctx))
	}
	g.mu.Unlock()
	return <-w.done
}

// drain commits the queue group by group until it is empty.
func (g *groupCommitter) drain(ctx context.Context) {
	for {
		g.mu.Lock()
		n := min(len(g.queue), maxGroup)
		if n == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		group := g.queue[:n:n]
		g.queue = g.queue[n:]
		g.mu.Unlock()
		g.commitGroup(ctx, group)
	}
}

// commitGroup commits a group in one transaction, or each of its changes
// alone when the transaction is refused.
func (g *groupCommitter) commitGroup(ctx context.Context, group []*hostWrite) {
	if len(group) == 1 {
		group[0].done <- g.apply(ctx, group[0].ops)
		return
	}
	var ops []fsm.TxnOp
	for _, w := range group {
		ops = append(ops, w.ops...)
	}
	err := g.apply(ctx, ops)
	var se *fsm.StateError
	if err == nil || !errors.As(err, &se) {
		// Committed, or not committed for a reason that is not about one
		// host (no leader, shutting down): the same outcome for every one.
		for _, w := range group {
			w.done <- err
		}
		return
	}
	// One change was refused (most likely a host changed since its
	// caller read it) and the transaction with it: commit each alone.
	var wg sync.WaitGroup
	for _, w := range group {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.done <- g.apply(ctx, w.ops)
		}()
	}
	wg.Wait()
}

func (g *groupCommitter) apply(ctx context.Context, ops []fsm.TxnOp) error {
	_, err := g.cl.Apply(ctx, fsm.TxnRequestType, fsm.TxnRequest{Ops: ops})
	return err
}
