package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// ConsistentRead returns once this node's state includes every write that
// was acknowledged before the call: it learns the leader's commit index
// (leadership confirmed by a quorum), then waits until it has applied it.
// Concurrent callers share one round trip. It holds like Apply while there
// is no leader.
func (n *Node) ConsistentRead(ctx context.Context) error {
	deadline := time.Now().Add(n.cfg.HoldTimeout)
	for {
		idx, err := n.reads.do(ctx)
		if err == nil {
			return n.fsm.WaitForIndex(ctx, idx)
		}
		if !(Retriable(err) || errors.Is(err, errNotSent)) || !n.holdOn(ctx, deadline) {
			if ctx.Err() != nil {
				return fmt.Errorf("consistent read: %w", ctx.Err())
			}
			if Retriable(err) || errors.Is(err, errNotSent) {
				return fmt.Errorf("%w (last: %v)", ErrNoLeader, err)
			}
			return fmt.Errorf("consistent read: %w", err)
		}
	}
}

// fetchReadIndex does one read-index round trip: on the leader a quorum
// check, on a follower a call to the leader.
func (n *Node) fetchReadIndex(ctx context.Context) (uint64, error) {
	if n.IsLeader() {
		if !n.Established() {
			return 0, ErrNotReady
		}
		// The commit index, as the read-index protocol has it: a follower
		// may already have applied, and answered from, entries this leader's
		// FSM has not reached yet, and a read must not go back behind what
		// any read saw. Raft hands the FSM no no-ops or barriers, though, so
		// the index read is the newest entry up to the commit index that the
		// FSM will report applied.
		idx := n.readIndexAt(n.raft.CommitIndex(), n.fsm.AppliedIndex())
		if err := n.raft.VerifyLeader().Error(); err != nil {
			return 0, fmt.Errorf("%w: %w", ErrNotLeader, err)
		}
		return idx, nil
	}
	leaderURL := n.leaderAPI()
	if leaderURL == "" {
		return 0, ErrNoLeader
	}
	var reply readIndexReply
	if err := n.call(ctx, leaderURL, PathReadIndex, nil, &reply); err != nil {
		if ctx.Err() == nil && !Retriable(err) && !errors.Is(err, errNotSent) {
			// Asking for the read index changes nothing: a call that failed
			// on the way (the leader died mid-answer) is retried like one
			// that was never sent, while the hold timeout lasts.
			return 0, fmt.Errorf("%w: %w", errNotSent, err)
		}
		return 0, err
	}
	return reply.Index, nil
}

// readIndexAt returns the newest log entry at or below commit that the
// FSM is handed (a command or a configuration change), and applied when
// none above it is (or the log no longer holds them: a compacted entry is
// at or below the last snapshot, so at or below applied).
func (n *Node) readIndexAt(commit, applied uint64) uint64 {
	for i := commit; i > applied; i-- {
		var l raft.Log
		if err := n.store.GetLog(i, &l); err != nil {
			return applied
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return i
		}
	}
	return applied
}

// batcher runs fn for many concurrent callers at once. A caller that arrives
// while a round is in flight waits for the next round, never reusing a
// round that started before it asked (that would break linearizability).
type batcher struct {
	fn func(context.Context) (uint64, error)

	mu      sync.Mutex
	pending *round
	running bool
	waiting int // callers waiting for a round
}

type round struct {
	done chan struct{}
	idx  uint64
	err  error
}

func newBatcher(fn func(context.Context) (uint64, error)) *batcher {
	return &batcher{fn: fn}
}

func (b *batcher) do(ctx context.Context) (uint64, error) {
	b.mu.Lock()
	if b.pending == nil {
		b.pending = &round{done: make(chan struct{})}
	}
	r := b.pending
	if !b.running {
		b.running = true
		go b.loop()
	}
	b.waiting++
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.waiting--
		b.mu.Unlock()
	}()
	select {
	case <-r.done:
		return r.idx, r.err
	case <-ctx.Done():
		return 0, fmt.Errorf("read index: %w", ctx.Err())
	}
}

// waiters returns how many callers wait for a round.
func (b *batcher) waiters() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.waiting
}

func (b *batcher) loop() {
	for {
		b.mu.Lock()
		r := b.pending
		b.pending = nil
		if r == nil {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r.idx, r.err = b.fn(ctx)
		cancel()
		close(r.done)
	}
}
