package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/stratus-cloud/stratus/fsm"
)

func TestDeadServersToRemove(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	const threshold = 30 * time.Second
	leader := ServerHealth{ID: "s1", Voter: true, Self: true, Gossip: "alive", LastSeen: now}
	alive := func(id string) ServerHealth { return ServerHealth{ID: id, Voter: true, Gossip: "alive", LastSeen: now} }
	dead := func(id string, for_ time.Duration) ServerHealth {
		return ServerHealth{ID: id, Voter: true, Gossip: "dead", LastSeen: ago(for_)}
	}
	cases := []struct {
		name      string
		servers   []ServerHealth
		minQuorum int
		want      []string
	}{
		{"all alive", []ServerHealth{leader, alive("s2"), alive("s3")}, 3, nil},
		{"three voters, one dead long: no replacement yet", []ServerHealth{leader, alive("s2"), dead("s3", time.Hour)}, 3, nil},
		{"replacement joined: the dead one goes", []ServerHealth{leader, alive("s2"), dead("s3", time.Minute), alive("s4")}, 3, []string{"s3"}},
		{"replacement joined but dead not long enough", []ServerHealth{leader, alive("s2"), dead("s3", 29*time.Second), alive("s4")}, 3, nil},
		{"exactly the threshold", []ServerHealth{leader, alive("s2"), dead("s3", threshold), alive("s4")}, 3, []string{"s3"}},
		{"left counts as gone", []ServerHealth{leader, alive("s2"), {ID: "s3", Voter: true, Gossip: "left", LastSeen: ago(time.Minute)}, alive("s4")}, 3, []string{"s3"}},
		{"unknown to gossip counts as gone", []ServerHealth{leader, alive("s2"), {ID: "s3", Voter: true, LastSeen: ago(time.Minute)}, alive("s4")}, 3, []string{"s3"}},
		{"suspect is not dead", []ServerHealth{leader, alive("s2"), {ID: "s3", Voter: true, Gossip: "suspect", LastSeen: ago(time.Minute)}, alive("s4")}, 3, nil},
		{"the leader itself never", []ServerHealth{{ID: "s1", Voter: true, Self: true, Gossip: "dead", LastSeen: ago(time.Hour)}, alive("s2"), alive("s3"), alive("s4")}, 3, nil},
		{"min quorum 2 lets three shrink to two", []ServerHealth{leader, alive("s2"), dead("s3", time.Minute)}, 2, []string{"s3"}},
		{"two dead of five, min quorum 3: both, oldest first",
			[]ServerHealth{leader, alive("s2"), dead("s3", time.Minute), alive("s4"), dead("s5", time.Hour)}, 3, []string{"s5", "s3"}},
		{"two dead of five, min quorum 4: only the oldest",
			[]ServerHealth{leader, dead("s2", time.Minute), dead("s3", time.Hour), alive("s4"), alive("s5")}, 4, []string{"s3"}},
		{"three dead of five: quorum lost, nothing (the change could not commit anyway)",
			[]ServerHealth{leader, alive("s2"), dead("s3", time.Hour), dead("s4", time.Hour), dead("s5", time.Hour)}, 1, nil},
		{"half the voters dead: quorum not healthy, nothing",
			[]ServerHealth{leader, dead("s2", time.Hour), dead("s3", time.Hour), alive("s4")}, 1, nil},
		{"two dead of five, min quorum 1: both",
			[]ServerHealth{leader, dead("s2", time.Hour), dead("s3", time.Minute), alive("s4"), alive("s5")}, 1, []string{"s2", "s3"}},
		{"dead non-voter goes regardless of quorum",
			[]ServerHealth{leader, alive("s2"), alive("s3"), {ID: "n1", Gossip: "dead", LastSeen: ago(time.Minute)}}, 3, []string{"n1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := DeadServersToRemove(tc.servers, now, threshold, tc.minQuorum)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("DeadServersToRemove = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCheckRemoval(t *testing.T) {
	leader := ServerHealth{ID: "s1", Voter: true, Self: true, Gossip: "alive"}
	alive := func(id string) ServerHealth { return ServerHealth{ID: id, Voter: true, Gossip: "alive"} }
	dead := func(id string) ServerHealth { return ServerHealth{ID: id, Voter: true, Gossip: "dead"} }
	cases := []struct {
		name      string
		servers   []ServerHealth
		id        string
		minQuorum int
		want      error
	}{
		{"unknown id", []ServerHealth{leader, alive("s2"), alive("s3")}, "nope", 3, ErrPeerNotFound},
		{"the leader", []ServerHealth{leader, alive("s2"), alive("s3"), alive("s4")}, "s1", 3, ErrRemoveLeader},
		{"last voter", []ServerHealth{{ID: "s1", Voter: true, Gossip: "alive"}}, "s1", 0, ErrLastVoter},
		{"below min quorum", []ServerHealth{leader, alive("s2"), alive("s3")}, "s2", 3, ErrBelowMinQuorum},
		{"fine with four", []ServerHealth{leader, alive("s2"), alive("s3"), alive("s4")}, "s4", 3, nil},
		{"dead with four", []ServerHealth{leader, alive("s2"), alive("s3"), dead("s4")}, "s4", 3, nil},
		{"alive one while two are dead: quorum unsafe", []ServerHealth{leader, alive("s2"), dead("s3"), dead("s4")}, "s2", 1, ErrQuorumUnsafe},
		{"a non-voter always", []ServerHealth{leader, {ID: "n1", Gossip: "alive"}}, "n1", 3, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := checkRemoval(tc.servers, tc.id, tc.minQuorum)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("checkRemoval(%s) = %v, want %v", tc.id, err, tc.want)
			}
		})
	}
}

func voterIDs(t *testing.T, n *testNode) []string {
	t.Helper()
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			ids = append(ids, string(s.ID))
		}
	}
	slices.Sort(ids)
	return ids
}

// TestAutopilotReplacesDeadServer: of three servers one stops for good;
// autopilot keeps it while only two would remain, and removes it once a
// fourth has joined as a voter. RemovePeer refuses the leader and going
// below the minimum quorum.
func TestAutopilotReplacesDeadServer(t *testing.T) {
	nodes := startCluster(t, 3)
	const threshold = 500 * time.Millisecond
	for _, n := range nodes {
		ap := NewAutopilot(n.Node, AutopilotConfig{MinQuorum: 3, DeadServerThreshold: threshold, Interval: 50 * time.Millisecond})
		// Hooks registered after the first election: start the one of
		// the current leader by hand as well.
		n.AddLeadershipHooks("autopilot", ap.Establish, ap.Revoke)
		if n.IsLeader() {
			if err := ap.Establish(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(ap.Revoke)
		}
	}
	leader := leaderOf(t, nodes)
	ctx := context.Background()
	if _, err := leader.RemovePeer(ctx, leader.ID(), 3); !errors.Is(err, ErrRemoveLeader) {
		t.Fatalf("remove the leader: %v, want ErrRemoveLeader", err)
	}
	victim := followers(nodes, leader)[0]
	if _, err := leader.RemovePeer(ctx, victim.ID(), 3); !errors.Is(err, ErrBelowMinQuorum) {
		t.Fatalf("remove a follower of three: %v, want ErrBelowMinQuorum", err)
	}
	if _, err := victim.RemovePeer(ctx, leader.ID(), 3); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("remove on a follower: %v, want ErrNotLeader", err)
	}

	victim.stop()
	waitFor(t, 10*time.Second, "gossip to report the stopped server gone", func() error {
		if m, ok := leader.member(victim.ID()); ok && m.Status == "alive" {
			return fmt.Errorf("%s still %s", victim.ID(), m.Status)
		}
		return nil
	})
	// Well past the threshold, and still three voters: no replacement yet.
	deadline := time.Now().Add(4 * threshold)
	for time.Now().Before(deadline) {
		if got := voterIDs(t, leader); len(got) != 3 {
			t.Fatalf("voters without a replacement: %v, want the three", got)
		}
		time.Sleep(50 * time.Millisecond)
	}

	cfg := newTestConfig(t, "node3", 0, []string{leader.GossipAddr()})
	repl := startTestNode(t, cfg)
	want := []string{}
	for _, n := range nodes {
		if n != victim {
			want = append(want, n.ID())
		}
	}
	want = append(want, repl.ID())
	slices.Sort(want)
	waitFor(t, 15*time.Second, "the dead server replaced", func() error {
		if got := voterIDs(t, leader); !slices.Equal(got, want) {
			return fmt.Errorf("voters %v, want %v", got, want)
		}
		return nil
	})
	// Writes commit in the new configuration.
	if _, err := repl.Apply(ctx, fsm.ZoneUpsertRequestType, zoneReq("z-after", "z-after")); err != nil {
		t.Fatalf("write through the replacement: %v", err)
	}
	if err := repl.ConsistentRead(ctx); err != nil {
		t.Fatalf("consistent read on the replacement: %v", err)
	}

	// With a lower minimum quorum an operator may shrink to two; the
	// answer is the configuration without the server. (It is stopped
	// first: the leader adds any server that gossips alive back as a voter.)
	leader = leaderOf(t, []*testNode{nodes[0], nodes[1], nodes[2], repl})
	if leader == repl {
		t.Skip("the replacement became leader; the shrink check needs it to be a follower")
	}
	repl.stop()
	peers, err := leader.RemovePeer(ctx, repl.ID(), 2)
	if err != nil {
		t.Fatalf("remove %s with min quorum 2: %v", repl.ID(), err)
	}
	var ids []string
	for _, p := range peers {
		ids = append(ids, p.ID)
	}
	if len(ids) != 2 || slices.Contains(ids, repl.ID()) || slices.Contains(ids, victim.ID()) {
		t.Fatalf("configuration after remove-peer: %v", ids)
	}
	if _, err := leader.RemovePeer(ctx, repl.ID(), 2); !errors.Is(err, ErrPeerNotFound) {
		t.Fatalf("remove %s again: %v, want ErrPeerNotFound", repl.ID(), err)
	}
}
