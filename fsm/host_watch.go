package fsm

import (
	"sync"
	"sync/atomic"

	memdb "github.com/hashicorp/go-memdb"
)

// Per-host change notification, for the agents' desired-state polls.
//
// A host's desired state is the rows of the VMs placed on it, migrating to
// it or last on it. memdb can watch a row it found exactly, but not the
// absence of one: a lookup of a host's VMs that finds none hands out the
// channel of the nearest radix node above the host's key, which closes when
// VMs of nearby hosts change. With thousands of hosts and few VMs each,
// every placement then woke hundreds of idle polls at once (a burst of
// runnable goroutines that starved Raft's heartbeats on a small machine).
//
// Instead every write transaction tracks its changes, and at commit the
// store closes the channel of each host a changed VM names, before or
// after the change, as its host, migration target or last host, and of
// each host whose own row changed. A poll takes its host's channel before
// it reads, so a commit it did not see always closes the channel it holds.

// hostWatches hands out one channel per watched host; a commit that
// touches the host closes it and forgets it, the next watcher makes a new
// one. Hosts nobody watches cost nothing.
type hostWatches struct {
	mu    sync.Mutex
	chans map[string]chan struct{}
	// gens are the clusters' membership generations (see PeersGen).
	gens map[string]uint64
	base uint64
	// states is closed at a commit that changes some host's state (see
	// HostStatesChanged); nil until someone asks.
	states chan struct{}
}

// genSeq numbers membership generations across every store of the
// process, so a generation read from a store a restore replaced never
// equals one of the new store.
var genSeq atomic.Uint64

func newHostWatches() *hostWatches {
	return &hostWatches{chans: map[string]chan struct{}{}, gens: map[string]uint64{}, base: genSeq.Add(1)}
}

// PeersGen returns the membership generation of a cluster: it changes at
// every commit that adds a host to the cluster, removes one, or changes a
// host's name or status URL (what an agent's peer list holds), and at
// nothing else, so a list of the cluster's peers built after reading the
// generation stays current while it is unchanged. Generations are only
// compared within one process.
func (s *Store) PeersGen(clusterID string) uint64 {
	w := s.hosts
	w.mu.Lock()
	defer w.mu.Unlock()
	if g, ok := w.gens[clusterID]; ok {
		return g
	}
	return w.base
}

// HostStatesChanged returns a channel closed at the next commit that
// adds or removes a host or changes a host's State, HAState or
// ResourceState; not at the far more frequent changes of its allocated
// capacity. For the HA controller, which acts on hosts going Down and
// being fenced. A restore does not close it: wait on Abandoned too.
func (s *Store) HostStatesChanged() <-chan struct{} {
	w := s.hosts
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.states == nil {
		w.states = make(chan struct{})
	}
	return w.states
}

// stateFieldsDiffer reports whether a host change is one HostStatesChanged
// signals.
func stateFieldsDiffer(before, after *Host) bool {
	return before == nil || after == nil || before.State != after.State ||
		before.HAState != after.HAState || before.ResourceState != after.ResourceState
}

// peerFieldsDiffer reports whether a host change matters to peer lists.
func peerFieldsDiffer(before, after *Host) bool {
	return before == nil || after == nil || before.ClusterID != after.ClusterID ||
		before.Name != after.Name || before.StatusURL != after.StatusURL
}

// HostChanged returns a channel closed at the next commit that changes a
// VM row naming hostID (as host, migration target or last host) or the
// host's own row. Take it before reading the state it guards. A restore
// does not close it: wait on Abandoned too.
func (s *Store) HostChanged(hostID string) <-chan struct{} {
	w := s.hosts
	w.mu.Lock()
	defer w.mu.Unlock()
	ch, ok := w.chans[hostID]
	if !ok {
		ch = make(chan struct{})
		w.chans[hostID] = ch
	}
	return ch
}

// notify closes the channels of the hosts named in changes.
func (w *hostWatches) notify(changes memdb.Changes) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wake := func(id string) {
		if id == "" {
			return
		}
		if ch, ok := w.chans[id]; ok {
			close(ch)
			delete(w.chans, id)
		}
	}
	for _, c := range changes {
		switch c.Table {
		case TableVMs:
			for _, o := range []any{c.Before, c.After} {
				if v, ok := o.(*VM); ok && v != nil {
					wake(v.HostID)
					wake(v.MigrateTo)
					wake(v.LastHostID)
				}
			}
		case TableHosts:
			before, _ := c.Before.(*Host)
			after, _ := c.After.(*Host)
			for _, h := range []*Host{before, after} {
				if h != nil {
					wake(h.ID)
					if peerFieldsDiffer(before, after) {
						w.gens[h.ClusterID] = genSeq.Add(1)
					}
				}
			}
			if w.states != nil && stateFieldsDiffer(before, after) {
				close(w.states)
				w.states = nil
			}
		}
	}
}

// writeTxn opens a write transaction whose commit notifies the hosts it
// touched. Every write to the store goes through it.
func (s *Store) writeTxn() *memdb.Txn {
	txn := s.db.Txn(true)
	txn.TrackChanges()
	w := s.hosts
	txn.Defer(func() { w.notify(txn.Changes()) })
	return txn
}
