package cluster

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/stratus-cloud/stratus/fsm"
)

// Autopilot removes dead servers from the raft configuration, on the leader
// only, once it is safe: a voter that gossip has not reported alive for
// DeadServerThreshold goes, but only while the voters left number at least
// MinQuorum (so a dead server stays until its replacement has joined) and
// the voters still alive make a majority of the smaller configuration.
//
// Why this shape: reconcileMembers adds every gossiping server as a voter,
// so a replacement grows the configuration (3 -> 4 with one dead) and the
// dead server's vote keeps counting against the majority until it goes. A
// server that is merely restarting must keep its vote, hence the threshold;
// and with the default MinQuorum of 3 a three-server cluster never shrinks
// to two by itself, however long a server stays down.
type Autopilot struct {
	n    *Node
	cfg  AutopilotConfig
	task *LeaderTask
	log  hclog.Logger
}

// AutopilotConfig configures an Autopilot.
type AutopilotConfig struct {
	// MinQuorum is the fewest voters autopilot (and RemovePeer) leaves in
	// the configuration; default DefaultMinQuorum.
	MinQuorum int
	// DeadServerThreshold is how long a voter must have gone unseen in
	// gossip (dead, left or absent) before it is removed; default
	// DefaultDeadServerThreshold.
	DeadServerThreshold time.Duration
	// Interval is how often the leader checks; default a tenth of the
	// threshold, between 100 ms and 5 s.
	Interval time.Duration
	Logger   hclog.Logger
}

// Autopilot defaults.
const (
	DefaultMinQuorum           = 3
	DefaultDeadServerThreshold = 30 * time.Second
)

// Sentinel errors of RemovePeer.
var (
	// ErrPeerNotFound means the ID is not in the raft configuration.
	ErrPeerNotFound = errors.New("no such server in the raft configuration")
	// ErrRemoveLeader means the leader was asked to remove itself.
	ErrRemoveLeader = errors.New("the server is the current leader: transfer leadership first (stratus operator raft transfer-leadership), then remove it")
	// ErrLastVoter means removing the server would leave no voter.
	ErrLastVoter = errors.New("the server is the last voter: removing it would destroy the cluster")
	// ErrBelowMinQuorum means removing the server would leave fewer voters
	// than the minimum quorum.
	ErrBelowMinQuorum = errors.New("removing the server would leave fewer voters than the minimum quorum")
	// ErrQuorumUnsafe means the voters alive would not make a majority of
	// the configuration without the server.
	ErrQuorumUnsafe = errors.New("the voters alive would not make a majority of the configuration without the server")
)

// NewAutopilot returns the autopilot of n; wire Establish and Revoke as
// leadership hooks.
func NewAutopilot(n *Node, cfg AutopilotConfig) *Autopilot {
	if cfg.MinQuorum <= 0 {
		cfg.MinQuorum = DefaultMinQuorum
	}
	if cfg.DeadServerThreshold <= 0 {
		cfg.DeadServerThreshold = DefaultDeadServerThreshold
	}
	if cfg.Interval <= 0 {
		cfg.Interval = min(max(cfg.DeadServerThreshold/10, 100*time.Millisecond), 5*time.Second)
	}
	if cfg.Logger == nil {
		cfg.Logger = n.cfg.Logger
	}
	a := &Autopilot{n: n, cfg: cfg, log: cfg.Logger.Named("autopilot")}
	a.task = NewLeaderTask(a.run)
	return a
}

// Establish starts the leader loop (an EstablishFunc).
func (a *Autopilot) Establish(ctx context.Context) error { return a.task.Establish(ctx) }

// Revoke stops the leader loop and waits for it (a RevokeFunc).
func (a *Autopilot) Revoke() { a.task.Revoke() }

// MinQuorum is the configured minimum quorum.
func (a *Autopilot) MinQuorum() int { return a.cfg.MinQuorum }

// ServerHealth is what the autopilot decision knows of one server of the
// raft configuration.
type ServerHealth struct {
	ID     string
	Voter  bool
	Self   bool   // the leader deciding; never removed
	Gossip string // alive, suspect, dead, left, or "" when gossip does not know it
	// LastSeen is when the leader last saw it alive in gossip (or when this
	// term of leadership began, if it has not seen it since).
	LastSeen time.Time
}

func (s ServerHealth) alive() bool { return s.Gossip == "alive" || s.Gossip == "suspect" }

// DeadServersToRemove decides which servers autopilot removes now, in
// order: those not alive for at least threshold, oldest first, as long as
// the voters alive make a majority of the configuration now and every
// removal keeps at least minQuorum voters and the voters alive a majority
// of the configuration left. Non-voters do not count towards
// either and go once dead for threshold. It is a pure function of its
// arguments.
func DeadServersToRemove(servers []ServerHealth, now time.Time, threshold time.Duration, minQuorum int) []string {
	voters, aliveVoters := 0, 0
	var dead []ServerHealth
	for _, s := range servers {
		if s.Voter {
			voters++
			if s.alive() || s.Self {
				aliveVoters++
			}
		}
		if !s.Self && !s.alive() && now.Sub(s.LastSeen) >= threshold {
			dead = append(dead, s)
		}
	}
	sort.SliceStable(dead, func(i, j int) bool {
		if !dead[i].LastSeen.Equal(dead[j].LastSeen) {
			return dead[i].LastSeen.Before(dead[j].LastSeen)
		}
		return dead[i].ID < dead[j].ID
	})
	if aliveVoters < voters/2+1 {
		return nil // quorum is not healthy now: change nothing
	}
	var out []string
	for _, s := range dead {
		if s.Voter {
			if voters-1 < minQuorum || aliveVoters < (voters-1)/2+1 {
				continue
			}
			voters--
		}
		out = append(out, s.ID)
	}
	return out
}

// checkRemoval says why server id may not be removed from the
// configuration by hand, or nil. Only the leader's own liveness is
// certain; the others' comes from gossip.
func checkRemoval(servers []ServerHealth, id string, minQuorum int) error {
	var target *ServerHealth
	voters, aliveVoters := 0, 0
	for i, s := range servers {
		if s.ID == id {
			target = &servers[i]
		}
		if s.Voter {
			voters++
			if s.alive() || s.Self {
				aliveVoters++
			}
		}
	}
	switch {
	case target == nil:
		return fmt.Errorf("%w: %s", ErrPeerNotFound, id)
	case target.Self:
		return fmt.Errorf("%w: %s", ErrRemoveLeader, id)
	case !target.Voter:
		return nil
	case voters <= 1:
		return fmt.Errorf("%w: %s", ErrLastVoter, id)
	case voters-1 < minQuorum:
		return fmt.Errorf("%w: %d voters would remain, the minimum quorum is %d (start a replacement server first, or restart the servers with a lower -min-quorum)",
			ErrBelowMinQuorum, voters-1, minQuorum)
	}
	if target.alive() {
		aliveVoters--
	}
	if need := (voters-1)/2 + 1; aliveVoters < need {
		return fmt.Errorf("%w: %d of %d voters would be alive, %d needed", ErrQuorumUnsafe, aliveVoters, voters-1, need)
	}
	return nil
}

// health joins the raft configuration with gossip; lastSeen gives the
// time each server was last seen alive (missing entries mean since).
func (n *Node) health(lastSeen map[string]time.Time, since time.Time) ([]ServerHealth, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("read raft configuration: %w", err)
	}
	gossip := map[string]string{}
	for _, m := range n.Members() {
		gossip[m.ID] = m.Status
	}
	var out []ServerHealth
	for _, s := range f.Configuration().Servers {
		id := string(s.ID)
		seen, ok := lastSeen[id]
		if !ok {
			seen = since
		}
		out = append(out, ServerHealth{ID: id, Voter: s.Suffrage == raft.Voter, Self: id == n.cfg.NodeID,
			Gossip: gossip[id], LastSeen: seen})
	}
	return out, nil
}

// RemovePeer removes server id from the raft configuration on the leader
// after the checks of checkRemoval (minQuorum <= 0 means
// DefaultMinQuorum), and returns the configuration that results. On a
// follower it fails with ErrNotLeader.
func (n *Node) RemovePeer(ctx context.Context, id string, minQuorum int) ([]Peer, error) {
	if minQuorum <= 0 {
		minQuorum = DefaultMinQuorum
	}
	if !n.IsLeader() {
		return nil, ErrNotLeader
	}
	servers, err := n.health(nil, time.Now())
	if err != nil {
		return nil, err
	}
	if err := checkRemoval(servers, id, minQuorum); err != nil {
		return nil, err
	}
	if err := n.removeServer(ctx, id); err != nil {
		return nil, err
	}
	n.logger.Info("server removed from the raft configuration by an operator", "node_id", id)
	return n.configPeers()
}

// configPeers is Status().Peers limited to the raft configuration (Status
// lists gossip-only servers too).
func (n *Node) configPeers() ([]Peer, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("read raft configuration: %w", err)
	}
	in := map[string]bool{}
	for _, s := range f.Configuration().Servers {
		in[string(s.ID)] = true
	}
	var out []Peer
	for _, p := range n.Status().Peers {
		if in[p.ID] {
			out = append(out, p)
		}
	}
	return out, nil
}

// removeServer commits the removal of id from the raft configuration.
func (n *Node) removeServer(ctx context.Context, id string) error {
	timeout := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if err := n.raft.RemoveServer(raft.ServerID(id), 0, timeout).Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return fmt.Errorf("%w: %w", ErrNotLeader, err)
		}
		return fmt.Errorf("remove server %s: %w", id, err)
	}
	return nil
}

// run is the leader loop: track when each server was last alive and
// remove those autopilot decides to.
func (a *Autopilot) run(ctx context.Context) {
	since := time.Now()
	lastSeen := map[string]time.Time{}
	t := time.NewTicker(a.cfg.Interval)
	defer t.Stop()
	for {
		a.step(ctx, lastSeen, since, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (a *Autopilot) step(ctx context.Context, lastSeen map[string]time.Time, since, now time.Time) {
	servers, err := a.n.health(lastSeen, since)
	if err != nil {
		a.log.Warn("cannot read cluster health", "error", err)
		return
	}
	inConfig := map[string]bool{}
	for _, s := range servers {
		inConfig[s.ID] = true
		if s.alive() || s.Self {
			lastSeen[s.ID] = now
		}
	}
	for id := range lastSeen {
		if !inConfig[id] {
			delete(lastSeen, id)
		}
	}
	for _, id := range DeadServersToRemove(servers, now, a.cfg.DeadServerThreshold, a.cfg.MinQuorum) {
		// Timers fire late: act only while still leading.
		if ctx.Err() != nil || !a.n.IsLeader() {
			return
		}
		seen := since
		if t, ok := lastSeen[id]; ok {
			seen = t
		}
		if err := a.n.removeServer(ctx, id); err != nil {
			a.log.Warn("cannot remove dead server", "node_id", id, "error", err)
			return
		}
		delete(lastSeen, id)
		a.log.Info("removed dead server from the raft configuration", "node_id", id,
			"unseen_for", now.Sub(seen).Round(time.Second).String(), "min_quorum", a.cfg.MinQuorum)
		a.recordRemoval(ctx, id, now.Sub(seen))
	}
}

// recordRemoval commits a SERVER.REMOVE event owned by the cloud's admin
// (if the cloud has been seeded), so listEvents shows it.
func (a *Autopilot) recordRemoval(ctx context.Context, id string, unseen time.Duration) {
	st := a.n.State()
	m, _ := st.Meta(nil)
	if m == nil || m.AdminUserID == "" {
		return
	}
	u, _ := st.User(nil, m.AdminUserID)
	if u == nil {
		return
	}
	ev := &fsm.Event{
		ID: uuid.NewString(), Type: "SERVER.REMOVE", Level: fsm.EventInfo, State: "Completed",
		Description: fmt.Sprintf("autopilot removed management server %s from the raft configuration: not seen alive for %s, and %d voters remain (minimum quorum %d)",
			id, unseen.Round(time.Second), a.voters(), a.cfg.MinQuorum),
		AccountID: u.AccountID, DomainID: u.DomainID, ResourceType: "ManagementServer", ResourceID: id, Created: time.Now().UTC(),
	}
	if _, err := a.n.Apply(ctx, fsm.TxnRequestType, fsm.TxnRequest{Ops: []fsm.TxnOp{fsm.Create(fsm.TableEvents, ev)}}); err != nil {
		a.log.Warn("cannot record server removal event", "node_id", id, "error", err)
	}
}

func (a *Autopilot) voters() int {
	f := a.n.raft.GetConfiguration()
	if f.Error() != nil {
		return 0
	}
	v := 0
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			v++
		}
	}
	return v
}
