package cluster

import (
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// The read index names the newest entry up to the commit index that the
// FSM is handed, skipping no-ops and barriers (which it never sees), and
// never goes below what the leader applied.
func TestReadIndexSkipsEntriesTheFSMNeverSees(t *testing.T) {
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(t.TempDir(), "raft.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	types := []raft.LogType{raft.LogNoop, raft.LogCommand, raft.LogCommand, raft.LogConfiguration, raft.LogCommand, raft.LogNoop, raft.LogBarrier}
	var logs []*raft.Log
	for i, typ := range types {
		logs = append(logs, &raft.Log{Index: uint64(i + 1), Term: 1, Type: typ})
	}
	if err := store.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	n := &Node{store: store}
	for _, c := range []struct{ commit, applied, want uint64 }{
		{7, 3, 5}, // past the barrier and the no-op, to the last command
		{7, 5, 5}, // nothing the FSM sees above what it applied
		{4, 2, 4}, // a configuration change is handed to the FSM
		{3, 0, 3},
		{1, 0, 0}, // only a no-op: what was applied
		{9, 3, 3}, // entries the log does not hold: what was applied
	} {
		if got := n.readIndexAt(c.commit, c.applied); got != c.want {
			t.Errorf("readIndexAt(commit %d, applied %d) = %d, want %d", c.commit, c.applied, got, c.want)
		}
	}
}
