package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/stratus-cloud/stratus/fsm"
)

func voter(id string) raft.Server {
	return raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(id + ":1"), Suffrage: raft.Voter}
}

func gossiped(id, build string, cv uint16, status string) Member {
	return Member{MemberMeta: MemberMeta{ID: id, Version: build, CommandVersion: cv}, Status: status}
}

func TestClusterCommandVersionIsTheLowestVoter(t *testing.T) {
	nonvoter := raft.Server{ID: "server-9", Address: "x:1", Suffrage: raft.Nonvoter}
	tests := []struct {
		name    string
		servers []raft.Server
		members []Member
		want    uint16
	}{
		{"all new", []raft.Server{voter("server-1"), voter("server-2")},
			[]Member{gossiped("server-1", "b2", 2, "alive"), gossiped("server-2", "b2", 2, "alive")}, 2},
		{"one old", []raft.Server{voter("server-1"), voter("server-2"), voter("server-3")},
			[]Member{gossiped("server-1", "b2", 2, "alive"), gossiped("server-2", "b1", 1, "alive"), gossiped("server-3", "b2", 2, "alive")}, 1},
		{"a stopped old voter still counts", []raft.Server{voter("server-1"), voter("server-2")},
			[]Member{gossiped("server-1", "b2", 2, "alive"), gossiped("server-2", "b1", 1, "left")}, 1},
		{"a voter missing from gossip counts as the baseline", []raft.Server{voter("server-1"), voter("server-2")},
			[]Member{gossiped("server-1", "b3", 3, "alive")}, BaseCommandVersion},
		{"gossip without a command version counts as the baseline", []raft.Server{voter("server-1")},
			[]Member{gossiped("server-1", "b0", 0, "alive")}, BaseCommandVersion},
		{"non-voters and strangers do not hold it back", []raft.Server{voter("server-1"), nonvoter},
			[]Member{gossiped("server-1", "b3", 3, "alive"), gossiped("server-9", "b1", 1, "alive"), gossiped("server-7", "b1", 1, "alive")}, 3},
		{"no configuration yet: this build", nil, nil, fsm.CommandVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := lowestCommandVersion(voterVersions(tt.servers, tt.members)); got != tt.want {
				t.Fatalf("cluster command version = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestCheckCommandVersionNamesTheServersToUpgrade(t *testing.T) {
	voters := voterVersions([]raft.Server{voter("server-1"), voter("server-2"), voter("server-3")},
		[]Member{gossiped("server-1", "1.1.0", 2, "alive"), gossiped("server-2", "1.0.0", 1, "alive")})
	if err := checkCommandVersion(voters, 1); err != nil {
		t.Fatalf("the baseline is gated: %v", err)
	}
	err := checkCommandVersion(voters, 2)
	if !errors.Is(err, ErrVersionGate) {
		t.Fatalf("version 2 with two servers behind: err = %v, want ErrVersionGate", err)
	}
	for _, want := range []string{"every server at command version 2", "server-2 is at 1 (build 1.0.0)",
		"server-3 is at 1 (build unknown: not seen in gossip)", "upgrade them first"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "server-1") {
		t.Errorf("error %q names server-1, which is up to date", err)
	}
	up := voterVersions([]raft.Server{voter("server-1")}, []Member{gossiped("server-1", "1.1.0", 2, "alive")})
	if err := checkCommandVersion(up, 2); err != nil {
		t.Fatalf("every voter at 2: %v", err)
	}
}

func TestEntryCommandVersionLooksInsideOnceWrapper(t *testing.T) {
	plain, _ := fsm.EncodeVersion(fsm.NoopRequestType, false, 5, struct{}{})
	if v := entryCommandVersion(plain); v != 5 {
		t.Fatalf("plain entry: version %d, want 5", v)
	}
	inner, _ := fsm.EncodeVersion(fsm.NoopRequestType, false, 7, struct{}{})
	wrapped, _ := fsm.Encode(fsm.OnceRequestType, false, fsm.OnceRequest{ID: "r", Time: time.Now(), Entry: inner})
	if v := entryCommandVersion(wrapped); v != 7 {
		t.Fatalf("wrapped entry: version %d, want the inner 7", v)
	}
	normal, _ := fsm.WrapOnce("r", time.Now(), fsm.NoopRequestType, struct{}{})
	if v := entryCommandVersion(normal); v != BaseCommandVersion {
		t.Fatalf("ordinary entry: version %d, want the baseline %d", v, BaseCommandVersion)
	}
}

func TestVersionGateAndLeadershipTransferOnACluster(t *testing.T) {
	nodes := startCluster(t, 3)
	leader := leaderOf(t, nodes)
	waitFor(t, 10*time.Second, "every node sees every voter in gossip", func() error {
		for _, n := range nodes {
			for _, v := range n.VoterVersions() {
				if !v.Seen || v.Version != "test" {
					return fmt.Errorf("%s sees %+v", n.ID(), v)
				}
			}
			if got := n.ClusterCommandVersion(); got != fsm.CommandVersion {
				return fmt.Errorf("%s: cluster command version %d", n.ID(), got)
			}
		}
		return nil
	})

	// An entry newer than anyone knows is refused before it is proposed,
	// on the leader and on a follower alike.
	for _, n := range []*testNode{leader, followers(nodes, leader)[0]} {
		before := leader.Status().LastIndex
		newer, _ := fsm.EncodeVersion(fsm.NoopRequestType, false, fsm.CommandVersion+1, struct{}{})
		if _, err := n.ApplyRaw(context.Background(), newer); !errors.Is(err, ErrVersionGate) {
			t.Fatalf("%s: apply at version %d: err = %v, want ErrVersionGate", n.ID(), fsm.CommandVersion+1, err)
		}
		if after := leader.Status().LastIndex; after != before {
			t.Fatalf("%s: the refused entry reached the log (last index %d -> %d)", n.ID(), before, after)
		}
	}
	if _, err := nodes[1].Apply(context.Background(), fsm.NoopRequestType, struct{}{}); err != nil {
		t.Fatalf("a current-version command: %v", err)
	}

	// Transfers: a follower refuses; the leader hands over to the one named.
	f := followers(nodes, leader)
	if err := f[0].TransferLeadershipTo(""); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("transfer on follower %s: err = %v, want ErrNotLeader", f[0].ID(), err)
	}
	if err := leader.TransferLeadershipTo("nobody"); err == nil {
		t.Fatal("transfer to a server not in the configuration succeeded")
	}
	target := f[1]
	if err := leader.TransferLeadershipTo(target.ID()); err != nil {
		t.Fatalf("transfer to %s: %v", target.ID(), err)
	}
	waitFor(t, 10*time.Second, target.ID()+" leads", func() error {
		for _, n := range nodes {
			if st := n.Status(); st.LeaderID != target.ID() {
				return fmt.Errorf("%s sees leader %q", n.ID(), st.LeaderID)
			}
		}
		return nil
	})
}
