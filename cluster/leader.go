package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// EstablishFunc runs on the leader after the barrier, before it serves as an
// established leader. ctx ends when leadership is lost. A returned error
// makes the node give up leadership.
type EstablishFunc func(ctx context.Context) error

// RevokeFunc runs when leadership is lost, in reverse order of establish.
type RevokeFunc func()

// reconcileInterval is how often the leader re-checks gossip against the
// raft configuration even without gossip events.
const reconcileInterval = 5 * time.Second

type leadership struct {
	n      *Node
	notify chan bool

	hooksMu sync.Mutex
	hooks   []hookPair

	established atomic.Bool
	kickCh      chan struct{}
}

type hookPair struct {
	name      string
	establish EstablishFunc
	revoke    RevokeFunc
}

func newLeadership(n *Node) *leadership {
	return &leadership{n: n, kickCh: make(chan struct{}, 1)}
}

// AddLeadershipHooks registers work that runs while this node leads: cmd
// wires the scheduler's controllers in here, so cluster never imports them.
// Register hooks before the node can win an election (right after New).
func (n *Node) AddLeadershipHooks(name string, establish EstablishFunc, revoke RevokeFunc) {
	l := n.leadership
	l.hooksMu.Lock()
	defer l.hooksMu.Unlock()
	l.hooks = append(l.hooks, hookPair{name: name, establish: establish, revoke: revoke})
}

// Established reports whether this node leads and has finished
// establishing leadership (barrier done, hooks run).
func (n *Node) Established() bool { return n.leadership.established.Load() }

func (l *leadership) kick() {
	select {
	case l.kickCh <- struct{}{}:
	default:
	}
}

// monitor turns raft's leadership notifications into a lifecycle: a
// leaderLoop per term of leadership, stopped and revoked when it ends.
func (l *leadership) monitor() {
	defer l.n.wg.Done()
	var (
		stop chan struct{}
		done chan struct{}
	)
	for {
		select {
		case <-l.n.shutdownCh:
			if stop != nil {
				close(stop)
				<-done
			}
			return
		case isLeader := <-l.notify:
			switch {
			case isLeader && stop == nil:
				stop, done = make(chan struct{}), make(chan struct{})
				go func(stop, done chan struct{}) {
					defer close(done)
					l.leaderLoop(stop)
				}(stop, done)
				l.n.logger.Info("cluster leadership acquired")
			case !isLeader && stop != nil:
				close(stop)
				<-done
				stop, done = nil, nil
				l.n.logger.Info("cluster leadership lost")
			}
		}
	}
}

func (l *leadership) leaderLoop(stop chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
		case <-ctx.Done():
		}
		cancel()
	}()

	// Everything committed by earlier leaders must be applied here before
	// this node acts on the state or answers read-index requests.
	var established []hookPair
	for {
		err := l.n.raft.Barrier(time.Minute).Error()
		if err == nil {
			break
		}
		l.n.logger.Error("leader barrier failed", "error", err)
		select {
		case <-stop:
			return
		case <-time.After(time.Second):
		}
	}
	l.hooksMu.Lock()
	hooks := append([]hookPair(nil), l.hooks...)
	l.hooksMu.Unlock()
	var failed error
	for _, h := range hooks {
		if h.establish != nil {
			if err := h.establish(ctx); err != nil {
				failed = fmt.Errorf("establish %s: %w", h.name, err)
				break
			}
		}
		established = append(established, h)
	}
	defer func() {
		l.established.Store(false)
		for i := len(established) - 1; i >= 0; i-- {
			if established[i].revoke != nil {
				established[i].revoke()
			}
		}
	}()
	if failed != nil {
		l.n.logger.Error("failed to establish leadership; stepping down", "error", failed)
		if err := l.n.raft.LeadershipTransfer().Error(); err != nil && !errors.Is(err, raft.ErrNotLeader) {
			l.n.logger.Error("leadership transfer after failed establish", "error", err)
		}
		<-stop
		return
	}
	l.established.Store(true)
	l.n.logger.Info("cluster leadership established")

	t := time.NewTicker(reconcileInterval)
	defer t.Stop()
	for {
		l.reconcileMembers()
		select {
		case <-stop:
			return
		case <-t.C:
		case <-l.kickCh:
		}
	}
}

// reconcileMembers adds every alive gossiping server of this cluster that
// raft does not know yet as a voter. It never removes anyone: a server
// that is merely down must keep its vote; autopilot (autopilot.go) removes
// dead servers once a replacement keeps the quorum safe, and operators use
// remove-peer.
func (l *leadership) reconcileMembers() {
	n := l.n
	future := n.raft.GetConfiguration()
	if err := future.Error(); err != nil {
		n.logger.Warn("read raft configuration", "error", err)
		return
	}
	known := map[raft.ServerID]raft.ServerAddress{}
	for _, s := range future.Configuration().Servers {
		known[s.ID] = s.Address
	}
	for _, m := range n.Members() {
		if m.Status != "alive" || m.RaftAddr == "" {
			continue
		}
		id := raft.ServerID(m.ID)
		if addr, ok := known[id]; ok && addr == raft.ServerAddress(m.RaftAddr) {
			continue
		}
		n.logger.Info("adding server as voter", "node_id", m.ID, "raft_addr", m.RaftAddr, "version", m.Version)
		if err := n.raft.AddVoter(id, raft.ServerAddress(m.RaftAddr), 0, 10*time.Second).Error(); err != nil {
			n.logger.Warn("add voter", "node_id", m.ID, "error", err)
		}
	}
}
