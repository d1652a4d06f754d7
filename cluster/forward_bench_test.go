package cluster

import (
	"context"
	"fmt"
	"testing"

	"github.com/stratus-cloud/stratus/fsm"
)

// BenchmarkForwardedWrite is one client writing through a follower, one
// write after the other, on a 3-node cluster of real raft over TCP with
// raft.db files: what a tool behind a load balancer waits for per write
// on a quiet cluster. The follower forwards to the leader and answers once
// it has applied the write itself, which it can do only when the leader
// tells it the commit index: on a quiet cluster only after raft's
// CommitTimeout (docs/design-notes.md).
func BenchmarkForwardedWrite(b *testing.B) {
	nodes := startCluster(b, 3)
	f := followers(nodes, leaderOf(b, nodes))[0]
	i := 0
	for b.Loop() {
		id := fmt.Sprintf("zone-%d", i)
		i++
		if _, err := f.Apply(context.Background(), fsm.ZoneUpsertRequestType, zoneReq(id, id)); err != nil {
			b.Fatal(err)
		}
	}
}
