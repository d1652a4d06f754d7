package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/stratus-cloud/stratus/cluster/metrics"
	"github.com/stratus-cloud/stratus/fsm"
)

// TestCrashedLeaderIsReplacedBeforeTheHeartbeatTimeout stops the leader
// (its raft port closes, as when its process dies) in a cluster whose
// heartbeat timeout is 2 s. Raft alone cannot elect anyone within that
// time: a follower gives up on its leader only after a whole timeout of
// silence and refuses votes until then. A survivor that finds the port
// refusing stands at half the timeout, so a new leader is established,
// and a write through the other survivor commits, within it.
func TestCrashedLeaderIsReplacedBeforeTheHeartbeatTimeout(t *testing.T) {
	const hb = 2 * time.Second
	var nodes []*testNode
	var join []string
	for i := range 3 {
		cfg := newTestConfig(t, fmt.Sprintf("node%d", i), 3, join)
		cfg.HeartbeatTimeout, cfg.ElectionTimeout = hb, hb
		nodes = append(nodes, startTestNode(t, cfg))
		if i == 0 {
			join = []string{nodes[0].GossipAddr()}
		}
	}
	leader := leaderOf(t, nodes)
	fs := followers(nodes, leader)
	before := testutil.ToFloat64(metrics.EarlyElections)

	leader.stop()
	stopped := time.Now()
	var next *testNode
	for next == nil && time.Since(stopped) < hb {
		for _, f := range fs {
			if f.IsLeader() && f.Established() {
				next = f
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if next == nil {
		t.Fatalf("no leader established %s after the leader stopped; the survivors waited for raft's timers", hb)
	}
	if got := testutil.ToFloat64(metrics.EarlyElections) - before; got < 1 {
		t.Fatalf("a leader was elected, but no survivor counted an early election (%v)", got)
	}
	other := fs[0]
	if other == next {
		other = fs[1]
	}
	ctx, cancel := context.WithTimeout(context.Background(), hb)
	defer cancel()
	if _, err := other.Apply(ctx, fsm.ZoneUpsertRequestType, zoneReq("after-crash", "after-crash")); err != nil {
		t.Fatalf("write through %s after the crash: %v", other.ID(), err)
	}
}

// TestStandRankOrdersTheSurvivors: the voters other than the dead leader
// stand in ID order; a non-voter never stands.
func TestStandRankOrdersTheSurvivors(t *testing.T) {
	cfg := raft.Configuration{Servers: []raft.Server{
		{ID: "c", Suffrage: raft.Voter}, {ID: "a", Suffrage: raft.Voter},
		{ID: "b", Suffrage: raft.Voter}, {ID: "d", Suffrage: raft.Nonvoter},
	}}
	for _, tc := range []struct {
		self, leader raft.ServerID
		rank         int
		ok           bool
	}{
		{"a", "b", 0, true}, {"c", "b", 1, true}, {"b", "a", 0, true}, {"c", "a", 1, true},
		{"d", "a", -1, false}, {"x", "a", -1, false},
	} {
		rank, ok := standRank(cfg, tc.self, tc.leader)
		if rank != tc.rank || ok != tc.ok {
			t.Errorf("standRank(%s, leader %s) = %d, %v; want %d, %v", tc.self, tc.leader, rank, ok, tc.rank, tc.ok)
		}
	}
	w := &crashWatch{hb: time.Second}
	if w.due(499*time.Millisecond, 0) || !w.due(500*time.Millisecond, 0) || w.due(900*time.Millisecond, 1) || !w.due(time.Second, 1) {
		t.Errorf("due: rank 0 stands after half a heartbeat timeout of silence, rank 1 after a whole one")
	}
}

// TestCrashCheckRefused tells a closed port (refused) from a listening one.
func TestCrashCheckRefused(t *testing.T) {
	open := freeAddr(t) // released: nothing listens there now
	if !crashCheckRefused(open, time.Second) {
		t.Errorf("a port nobody listens on was not reported refused")
	}
	nodes := startCluster(t, 1)
	if crashCheckRefused(nodes[0].RaftAddr(), time.Second) {
		t.Errorf("a listening raft port was reported refused")
	}
}
