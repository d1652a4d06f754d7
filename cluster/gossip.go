package cluster

import (
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"

	"github.com/stratus-cloud/stratus/fsm"
)

// MemberMeta is what each server gossips about itself.
type MemberMeta struct {
	ID             string `json:"id"`
	Cluster        string `json:"cluster"`
	RaftAddr       string `json:"raft"`
	APIURL         string `json:"api"`
	Version        string `json:"version"`
	CommandVersion uint16 `json:"cmd_version"`
}

// Member is a gossip peer as this node sees it.
type Member struct {
	MemberMeta
	GossipAddr string `json:"gossip_addr"`
	Status     string `json:"status"` // alive, suspect, dead, left
}

type delegate struct{ meta []byte }

func (d *delegate) NodeMeta(limit int) []byte {
	if len(d.meta) > limit {
		return nil
	}
	return d.meta
}
func (d *delegate) NotifyMsg([]byte)                {}
func (d *delegate) GetBroadcasts(int, int) [][]byte { return nil }
func (d *delegate) LocalState(bool) []byte          { return nil }
func (d *delegate) MergeRemoteState([]byte, bool)   {}

func splitHostPort(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("address %q: %w", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", 0, fmt.Errorf("address %q: port: %w", addr, err)
	}
	return host, p, nil
}

func (n *Node) setupGossip() error {
	mc := memberlist.DefaultLANConfig()
	mc.Name = n.cfg.NodeID
	host, port, err := splitHostPort(n.cfg.GossipBind)
	if err != nil {
		return fmt.Errorf("gossip bind: %w", err)
	}
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertiseAddr, mc.AdvertisePort = host, port
	if n.cfg.GossipAdvertise != "" {
		if mc.AdvertiseAddr, mc.AdvertisePort, err = splitHostPort(n.cfg.GossipAdvertise); err != nil {
			return fmt.Errorf("gossip advertise: %w", err)
		}
	}
	if len(n.cfg.GossipKey) > 0 {
		mc.SecretKey = n.cfg.GossipKey
	}
	meta, err := json.Marshal(MemberMeta{
		ID: n.cfg.NodeID, Cluster: n.cfg.ClusterName, RaftAddr: n.RaftAddr(),
		APIURL: n.cfg.APIAdvertise, Version: n.cfg.Version, CommandVersion: fsm.CommandVersion,
	})
	if err != nil {
		return fmt.Errorf("encode gossip meta: %w", err)
	}
	mc.Delegate = &delegate{meta: meta}
	mc.Events = &eventDelegate{n: n}
	mc.Logger = n.cfg.Logger.Named("gossip").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})
	n.gossip, err = memberlist.Create(mc)
	if err != nil {
		return fmt.Errorf("start gossip: %w", err)
	}
	return nil
}

// joinLoop joins the configured peers, retrying until one answers.
func (n *Node) joinLoop() {
	defer n.wg.Done()
	if len(n.cfg.Join) == 0 {
		return
	}
	backoff := 200 * time.Millisecond
	for {
		joined, err := n.gossip.Join(n.cfg.Join)
		if joined > 0 {
			n.logger.Info("joined gossip", "peers_contacted", joined)
			return
		}
		n.logger.Debug("gossip join failed; retrying", "error", err, "retry_in", backoff)
		select {
		case <-n.shutdownCh:
			return
		case <-time.After(backoff):
		}
		if backoff < 5*time.Second {
			backoff *= 2
		}
	}
}

// eventDelegate keeps the node's own copy of the member list. memberlist
// calls it while holding its state lock, so copying here is the one race-free
// way to read a member; the *memberlist.Node pointers returned by
// Memberlist.Members keep changing underneath their readers.
type eventDelegate struct{ n *Node }

func (d *eventDelegate) NotifyJoin(m *memberlist.Node)   { d.n.recordMember(m, "alive") }
func (d *eventDelegate) NotifyUpdate(m *memberlist.Node) { d.n.recordMember(m, "alive") }
func (d *eventDelegate) NotifyLeave(m *memberlist.Node) {
	status := "dead"
	if m.State == memberlist.StateLeft {
		status = "left"
	}
	d.n.recordMember(m, status)
}

func (n *Node) recordMember(m *memberlist.Node, status string) {
	var meta MemberMeta
	if err := json.Unmarshal(m.Meta, &meta); err != nil || meta.Cluster != n.cfg.ClusterName {
		return // another cluster's server, or not one of ours at all
	}
	n.membersMu.Lock()
	n.members[m.Name] = Member{MemberMeta: meta, GossipAddr: m.Address(), Status: status}
	n.membersMu.Unlock()
	select { // never block memberlist: one pending wake-up is enough
	case n.events <- struct{}{}:
	default:
	}
}

// handleEvents reacts to gossip changes: bootstrap when enough servers are
// here, and (on the leader) add new servers as voters.
func (n *Node) handleEvents() {
	defer n.wg.Done()
	for {
		select {
		case <-n.shutdownCh:
			return
		case <-n.events:
			n.maybeBootstrap()
			n.leadership.kick()
		}
	}
}

// Members returns the gossip view of the servers of this cluster, sorted by ID.
func (n *Node) Members() []Member {
	n.membersMu.Lock()
	out := make([]Member, 0, len(n.members))
	for _, m := range n.members {
		out = append(out, m)
	}
	n.membersMu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (n *Node) member(id string) (Member, bool) {
	for _, m := range n.Members() {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}

// maybeBootstrap bootstraps a brand-new cluster once BootstrapExpect servers
// of this cluster gossip. Every one of them computes the same configuration
// from the same member list, so it does not matter how many call it.
func (n *Node) maybeBootstrap() {
	n.bootstrapMu.Lock()
	defer n.bootstrapMu.Unlock()
	if n.bootstrapped || n.cfg.BootstrapExpect == 0 {
		return
	}
	var servers []raft.Server
	for _, m := range n.Members() {
		if m.Status != "alive" {
			continue
		}
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(m.ID), Address: raft.ServerAddress(m.RaftAddr)})
	}
	if len(servers) < n.cfg.BootstrapExpect {
		return
	}
	servers = servers[:n.cfg.BootstrapExpect]
	n.bootstrapped = true
	n.logger.Info("bootstrapping cluster", "servers", len(servers))
	if err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		n.logger.Warn("bootstrap not done", "error", err)
	}
}
