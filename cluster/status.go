package cluster

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/hashicorp/raft"
)

// Peer is one server as the cluster status reports it: raft's view joined
// with gossip's.
type Peer struct {
	ID             string `json:"id"`
	RaftAddr       string `json:"raft_addr,omitempty"`
	APIURL         string `json:"api_url,omitempty"`
	GossipAddr     string `json:"gossip_addr,omitempty"`
	Version        string `json:"version,omitempty"`
	CommandVersion uint16 `json:"command_version,omitempty"`
	Voter          bool   `json:"voter"`
	Leader         bool   `json:"leader"`
	Gossip         string `json:"gossip"` // alive, suspect, dead, left, unknown
}

// Status is this node's view of the cluster, served on /v1/status.
type Status struct {
	ID           string `json:"id"`
	Role         string `json:"role"` // leader, follower, candidate, shutdown
	LeaderID     string `json:"leader_id"`
	Term         uint64 `json:"term"`
	AppliedIndex uint64 `json:"applied_index"`
	CommitIndex  uint64 `json:"commit_index"`
	LastIndex    uint64 `json:"last_index"`
	Version      string `json:"version"`
	Peers        []Peer `json:"peers"`
}

// Status reports the node's role, indexes and peers.
func (n *Node) Status() Status {
	_, leaderID := n.raft.LeaderWithID()
	st := Status{
		ID:           n.cfg.NodeID,
		Role:         roleName(n.raft.State()),
		LeaderID:     string(leaderID),
		Term:         n.raft.CurrentTerm(),
		AppliedIndex: n.fsm.AppliedIndex(),
		CommitIndex:  n.raft.CommitIndex(),
		LastIndex:    n.raft.LastIndex(),
		Version:      n.cfg.Version,
	}
	peers := map[string]*Peer{}
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			peers[string(s.ID)] = &Peer{ID: string(s.ID), RaftAddr: string(s.Address), Voter: s.Suffrage == raft.Voter, Gossip: "unknown"}
		}
	}
	for _, m := range n.Members() {
		p, ok := peers[m.ID]
		if !ok {
			p = &Peer{ID: m.ID, RaftAddr: m.RaftAddr}
			peers[m.ID] = p
		}
		p.APIURL, p.GossipAddr, p.Version, p.CommandVersion, p.Gossip = m.APIURL, m.GossipAddr, m.Version, m.CommandVersion, m.Status
	}
	for _, p := range peers {
		p.Leader = p.ID == st.LeaderID
		st.Peers = append(st.Peers, *p)
	}
	sort.Slice(st.Peers, func(i, j int) bool { return st.Peers[i].ID < st.Peers[j].ID })
	return st
}

func roleName(s raft.RaftState) string {
	switch s {
	case raft.Leader:
		return "leader"
	case raft.Follower:
		return "follower"
	case raft.Candidate:
		return "candidate"
	}
	return "shutdown"
}

// readyWait bounds how long a readiness check waits to catch up.
const readyWait = time.Second

// Ready reports whether the node should take traffic: it is a member of the
// raft configuration, a leader is known (and established, if it is this
// node), and it can serve a consistent read within a second, i.e. it has
// caught up. The reason says what is missing.
func (n *Node) Ready(ctx context.Context) (bool, string) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return false, fmt.Sprintf("raft configuration unavailable: %v", err)
	}
	member := false
	for _, s := range f.Configuration().Servers {
		member = member || s.ID == raft.ServerID(n.cfg.NodeID)
	}
	if !member {
		return false, "not yet a member of the cluster's raft configuration"
	}
	if _, id := n.raft.LeaderWithID(); id == "" {
		return false, "no leader known"
	}
	if n.IsLeader() && !n.Established() {
		return false, "leader is still establishing leadership"
	}
	ctx, cancel := context.WithTimeout(ctx, readyWait)
	defer cancel()
	idx, err := n.reads.do(ctx)
	if err != nil {
		return false, fmt.Sprintf("cannot reach the leader for a read index: %v", err)
	}
	if err := n.fsm.WaitForIndex(ctx, idx); err != nil {
		return false, fmt.Sprintf("catching up: applied %d of %d", n.fsm.AppliedIndex(), idx)
	}
	return true, "ready"
}
