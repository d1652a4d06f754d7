package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/raft"

	"github.com/stratus-cloud/stratus/cluster/metrics"
	"github.com/stratus-cloud/stratus/fsm"
)

// maxCatchUpWait bounds how long a follower waits to apply its own forwarded
// write before answering anyway (the write is committed either way).
const maxCatchUpWait = 30 * time.Second

// Apply commits a command through raft and returns its index. On a follower
// it forwards to the leader and then waits until this node has applied the
// entry, so the caller reads its own write here. While there is no leader it
// waits up to the hold timeout, then fails with ErrNoLeader. A business
// failure comes back as a *fsm.StateError together with the index.
//
// The command travels wrapped with a fresh request ID (fsm.OnceRequestType),
// so when the leader dies with the request in flight Apply sends it again
// to the next leader: the state machine applies it at most once and answers
// the repeat with the first outcome.
func (n *Node) Apply(ctx context.Context, t fsm.MessageType, body any) (uint64, error) {
	data, err := fsm.WrapOnce(uuid.NewString(), time.Now().UTC(), t, body)
	if err != nil {
		return 0, err
	}
	return n.ApplyRaw(ctx, data)
}

// ApplyRaw is Apply for an already encoded log entry. Only entries wrapped
// by fsm.WrapOnce are retried after an uncertain outcome.
func (n *Node) ApplyRaw(ctx context.Context, data []byte) (uint64, error) {
	if err := n.RequireCommandVersion(entryCommandVersion(data)); err != nil {
		return 0, err // never propose what a voter could not apply (version.go)
	}
	deadline := time.Now().Add(n.cfg.HoldTimeout)
	var lastErr error = ErrNoLeader
	once := fsm.IsOnce(data)
	for {
		idx, err, retry := n.tryApply(ctx, data)
		if !retry && once && Retriable(err) && ctx.Err() == nil && !n.shuttingDown() {
			// Lost in flight, or the leader stopped while applying it:
			// sending the same request again cannot apply it twice.
			n.logger.Debug("write outcome unknown; sending it again", "error", err)
			retry = true
		}
		if !retry {
			return idx, err
		}
		lastErr = err
		if !n.holdOn(ctx, deadline) {
			if ctx.Err() != nil {
				return 0, fmt.Errorf("apply: %w", ctx.Err())
			}
			return 0, fmt.Errorf("%w (last: %v)", ErrNoLeader, lastErr)
		}
	}
}

// tryApply makes one attempt. retry is true only when the attempt certainly
// did not commit anything.
func (n *Node) tryApply(ctx context.Context, data []byte) (uint64, error, bool) {
	select {
	case <-n.shutdownCh:
		return 0, ErrShutdown, false
	default:
	}
	if n.IsLeader() {
		idx, err := n.applyLocal(data)
		if errors.Is(err, ErrNotLeader) {
			return 0, err, true
		}
		return idx, err, false
	}
	leaderURL := n.leaderAPI()
	if leaderURL == "" {
		return 0, ErrNoLeader, true
	}
	var reply applyReply
	err := n.call(ctx, leaderURL, PathApply, data, &reply)
	switch {
	case errors.Is(err, errNotSent), errors.Is(err, ErrNotLeader), errors.Is(err, ErrNoLeader):
		return 0, err, true
	case err != nil && ctx.Err() == nil && !Retriable(err):
		// The request left this node and the reply never came: the leader
		// may have committed it.
		return 0, fmt.Errorf("%w: %w", ErrUncertain, err), false
	case err != nil:
		return 0, err, false
	}
	waitCtx, cancel := context.WithTimeout(ctx, maxCatchUpWait)
	defer cancel()
	if werr := n.fsm.WaitForIndex(waitCtx, reply.Index); werr != nil {
		n.logger.Warn("forwarded write committed but not yet applied here", "index", reply.Index, "error", werr)
	}
	if reply.Error != nil {
		return reply.Index, reply.Error, false
	}
	return reply.Index, nil, false
}

// applyLocal commits on this node, which must be the leader.
func (n *Node) applyLocal(data []byte) (uint64, error) {
	start := time.Now()
	f := n.gather.propose(data)
	err := f.Error()
	n.gather.done()
	if err == nil {
		metrics.CommitLatency.Observe(time.Since(start).Seconds())
	}
	if err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout):
			return 0, ErrNotLeader
		case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrLeadershipTransferInProgress):
			return 0, fmt.Errorf("%w: %w", ErrUncertain, err)
		case errors.Is(err, raft.ErrRaftShutdown):
			return 0, ErrShutdown
		}
		return 0, fmt.Errorf("raft apply: %w", err)
	}
	if se, ok := f.Response().(*fsm.StateError); ok && se != nil {
		return f.Index(), se
	}
	return f.Index(), nil
}

func (n *Node) shuttingDown() bool {
	select {
	case <-n.shutdownCh:
		return true
	default:
		return false
	}
}

// holdOn sleeps a little (with jitter) while the cluster has no usable
// leader; false means the hold is over.
func (n *Node) holdOn(ctx context.Context, deadline time.Time) bool {
	wait := 20*time.Millisecond + rand.N(30*time.Millisecond)
	if time.Until(deadline) < wait {
		return false
	}
	select {
	case <-ctx.Done():
		return false
	case <-n.shutdownCh:
		return false
	case <-time.After(wait):
		return true
	}
}

// leaderAPI returns the current leader's API URL from gossip, or "".
func (n *Node) leaderAPI() string {
	_, id := n.raft.LeaderWithID()
	if id == "" {
		return ""
	}
	if m, ok := n.member(string(id)); ok && m.Status == "alive" {
		return m.APIURL
	}
	return ""
}
