package cluster

import (
	"errors"
	"net"
	"slices"
	"syscall"
	"time"

	"github.com/hashicorp/raft"

	"github.com/stratus-cloud/stratus/cluster/metrics"
)

// A crashed leader, found sooner.
//
// hashicorp/raft's follower gives up on its leader only when its heartbeat
// timer fires, one to two heartbeat timeouts after the timer was last
// armed, so one to three timeouts after the leader's last word; and until
// then it refuses to vote for anyone else. So after a leader dies the
// election waits for the last surviving follower's timer: with the 1 s
// default, up to 3 s with nothing committed (docs/benchmarks.md has the
// election timelines).
//
// When the leader's process is gone (a crash, kill -9, the OOM killer) and
// its machine is up, its raft port refuses connections at once. A
// follower that has not heard from its leader for half a heartbeat timeout
// dials that port; on a refusal it stands for election at once, through
// the TimeoutNow request raft's own leadership transfer sends, whose vote
// requests the other voters grant although they still believe in the dead
// leader (term and log checks still apply, so this can only speed an
// election up, never elect a node raft would refuse). The voters stand in
// turn, ordered by ID, half a heartbeat timeout apart, so two of them do not
// split the vote. A leader that is alive but unreachable (a partition that
// drops packets, a dead machine, a pause) refuses nothing, and raft's
// timers decide as before. A firewall that rejects the follower's packets
// with a reset looks like a crash: the follower stands, and wins only if a
// majority grants it, which leaves the leadership with a server that
// reaches a majority.

// crashCheckRefused reports whether nothing listens at addr: the dial was
// refused, not timed out or unreachable.
func crashCheckRefused(addr string, timeout time.Duration) bool {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err == nil {
		_ = conn.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// standRank is this node's place among the voters that may succeed leader
// (every voter but it, by ID); ok is false when this node is no voter.
func standRank(cfg raft.Configuration, self, leader raft.ServerID) (int, bool) {
	var ids []raft.ServerID
	for _, s := range cfg.Servers {
		if s.Suffrage == raft.Voter && s.ID != leader {
			ids = append(ids, s.ID)
		}
	}
	slices.Sort(ids)
	i := slices.Index(ids, self)
	return i, i >= 0
}

// crashWatch is the follower's side of the above: the leader it found gone
// and when it last dialled.
type crashWatch struct {
	hb     time.Duration // raft's heartbeat timeout
	gone   raft.ServerID // the leader whose port refused, "" while none
	dialed time.Time
}

// due reports whether a follower silent for silent (since its leader's
// last contact) and rank-th in line stands now; the leader must have been
// found gone first.
func (w *crashWatch) due(silent time.Duration, rank int) bool {
	return silent >= w.hb/2+time.Duration(rank)*(w.hb/2)
}

// watchLeaderCrash runs on every node for its life.
func (n *Node) watchLeaderCrash() {
	w := &crashWatch{hb: n.raft.ReloadableConfig().HeartbeatTimeout}
	n.every(w.hb/10, func() { n.checkLeaderCrash(w) })
}

// checkLeaderCrash makes one check of the watch.
func (n *Node) checkLeaderCrash(w *crashWatch) {
	addr, leader := n.raft.LeaderWithID()
	silent := time.Since(n.raft.LastContact())
	if n.raft.State() != raft.Follower || addr == "" || silent < w.hb/2 {
		w.gone = ""
		return
	}
	if w.gone != leader {
		if time.Since(w.dialed) < w.hb/4 {
			return
		}
		w.dialed = time.Now()
		if !crashCheckRefused(string(addr), w.hb/4) {
			return
		}
		w.gone = leader
		n.logger.Warn("the leader's raft port refuses connections: its process is gone",
			"leader", leader, "silent", silent.Round(time.Millisecond))
	}
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	self := raft.ServerID(n.cfg.NodeID)
	rank, ok := standRank(f.Configuration(), self, leader)
	if !ok || !w.due(silent, rank) {
		return
	}
	n.logger.Warn("standing for election now instead of waiting for the heartbeat timer",
		"dead_leader", leader, "silent", silent.Round(time.Millisecond), "rank", rank)
	local := n.transport.LocalAddr()
	req := &raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{
		ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(self), Addr: n.transport.EncodePeer(self, local),
	}}
	if err := n.transport.TimeoutNow(self, local, req, &raft.TimeoutNowResponse{}); err != nil {
		n.logger.Warn("could not stand for election", "error", err)
	} else {
		metrics.EarlyElections.Inc()
	}
	w.gone = "" // once: if it loses, raft's timers go on as before
}
