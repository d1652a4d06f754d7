package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/raft"

	"github.com/stratus-cloud/stratus/fsm"
)

// Errors of RestoreSnapshot.
var (
	// ErrRestoreNotLeader means a restore reached a server that does not
	// lead; the operator endpoint forwards it to the leader instead.
	ErrRestoreNotLeader = errors.New("snapshot restore must run on the leader")
	// ErrSnapshotInvalid means the stream does not restore on this build;
	// nothing was changed.
	ErrSnapshotInvalid = errors.New("snapshot does not restore on this server")
)

// SaveSnapshot writes the FSM snapshot stream of this server's state to w.
// It first does a consistent read, so every write acknowledged before the
// call is in the snapshot, then streams an immutable go-memdb snapshot of
// the store: Apply keeps running, nothing touches the disk, and any server
// can serve it (the leader is not loaded with the copy). A raft user
// snapshot (raft.Snapshot on the leader) would also write it into the data
// dir and compact the log, which a backup has no reason to do.
//
// The header's applied index is read before the store is captured, so the
// state holds at least every entry up to it (an entry being applied at that
// moment may be in as well).
func (n *Node) SaveSnapshot(ctx context.Context, w io.Writer) (uint64, error) {
	if err := n.ConsistentRead(ctx); err != nil {
		return 0, err
	}
	applied := n.fsm.AppliedIndex()
	st := n.fsm.State().Snapshot()
	if err := st.WriteSnapshot(w, applied); err != nil {
		return 0, fmt.Errorf("write snapshot: %w", err)
	}
	return applied, nil
}

// RestoreSnapshot replaces the whole replicated state with an FSM snapshot
// stream of size bytes. It runs on the leader only. The stream is read
// twice: once through fsm.ReadSnapshot, so a stream this build cannot
// restore is refused before raft sees it (raft panics when its FSM fails to
// restore a user snapshot), then by raft.Restore, which installs it as a new
// snapshot at an index past both the log and the stream's applied index and
// sends it to every follower through InstallSnapshot.
//
// The controllers of the current leader were established on the old state;
// when other voters exist, leadership is handed over afterwards so the next
// leader establishes its controllers on the restored state.
func (n *Node) RestoreSnapshot(ctx context.Context, src io.ReadSeeker, size int64) (uint64, error) {
	if !n.IsLeader() {
		return 0, ErrRestoreNotLeader
	}
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("rewind snapshot: %w", err)
	}
	_, hdr, err := fsm.ReadSnapshot(src)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrSnapshotInvalid, err)
	}
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("rewind snapshot: %w", err)
	}
	timeout := 5 * time.Minute
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: hdr.AppliedIndex, Size: size}
	if err := n.raft.Restore(meta, src, timeout); err != nil {
		return 0, fmt.Errorf("raft restore: %w", err)
	}
	n.logger.Warn("restored the cluster state from an operator snapshot", "snapshot_applied_index", hdr.AppliedIndex,
		"raft_index", n.raft.LastIndex())
	if f := n.raft.GetConfiguration(); f.Error() == nil && countVoters(f.Configuration()) > 1 {
		if err := n.raft.LeadershipTransfer().Error(); err != nil {
			n.logger.Warn("leadership transfer after restore", "error", err)
		}
	}
	return hdr.AppliedIndex, nil
}

func countVoters(c raft.Configuration) int {
	v := 0
	for _, s := range c.Servers {
		if s.Suffrage == raft.Voter {
			v++
		}
	}
	return v
}

// LeaderAPIURL is the API base URL of the leader as gossip tells it, or ""
// while no leader is known.
func (n *Node) LeaderAPIURL() string { return n.leaderAPI() }
