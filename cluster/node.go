package cluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/stratus-cloud/stratus/cluster/metrics"
	"github.com/stratus-cloud/stratus/fsm"
)

// Node is one management server's place in the cluster.
type Node struct {
	cfg    Config
	logger hclog.Logger

	fsm       *fsm.FSM
	raft      *raft.Raft
	store     *raftboltdb.BoltStore
	snaps     raft.SnapshotStore
	volume    logVolume // entries applied, for the snapshot threshold
	transport *raft.NetworkTransport
	gossip    *memberlist.Memberlist
	events    chan struct{} // a gossip member joined, changed or left

	membersMu sync.Mutex
	members   map[string]Member // gossip name -> copy taken under memberlist's lock

	leadership *leadership
	reads      *batcher  // read-index round trips, shared by concurrent reads
	gather     *gatherer // the leader's writes, handed to raft in groups

	bootstrapMu  sync.Mutex
	bootstrapped bool

	shutdownOnce sync.Once
	shutdownCh   chan struct{}
	wg           sync.WaitGroup
}

// New opens the node's stores and starts raft and gossip. Call Shutdown to
// stop it.
func New(cfg Config) (*Node, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("cluster config: %w", err)
	}
	n := &Node{
		cfg:        cfg,
		logger:     cfg.Logger.Named("cluster"),
		fsm:        fsm.New(cfg.Logger),
		events:     make(chan struct{}, 1),
		members:    make(map[string]Member),
		shutdownCh: make(chan struct{}),
	}
	n.leadership = newLeadership(n)
	n.reads = newBatcher(n.fetchReadIndex)
	n.gather = newGatherer(func(data []byte) raft.ApplyFuture { return n.raft.Apply(data, n.cfg.HoldTimeout) },
		n.cfg.GatherWindow, n.shutdownCh)
	if err := n.setupRaft(); err != nil {
		n.closeStores()
		return nil, err
	}
	if err := n.setupGossip(); err != nil {
		_ = n.raft.Shutdown().Error()
		n.closeStores()
		return nil, err
	}
	n.wg.Add(6)
	go func() {
		defer n.wg.Done()
		n.gather.run()
	}()
	go n.watchLeaderCrash()
	go n.adaptSnapshots()
	go n.leadership.monitor()
	go n.handleEvents()
	go n.joinLoop()
	return n, nil
}

func (n *Node) setupRaft() error {
	raftDir := filepath.Join(n.cfg.DataDir, "raft")
	if err := os.MkdirAll(raftDir, 0o700); err != nil {
		return fmt.Errorf("create raft dir: %w", err)
	}
	store, err := openLogStore(raftDir)
	if err != nil {
		return err
	}
	n.store = store
	snaps, err := raft.NewFileSnapshotStoreWithLogger(raftDir, 2, n.logger.Named("snapshots"))
	if err != nil {
		return fmt.Errorf("open snapshot store: %w", err)
	}
	n.snaps = snaps
	var advertise net.Addr
	if n.cfg.RaftAdvertise != "" {
		if advertise, err = net.ResolveTCPAddr("tcp", n.cfg.RaftAdvertise); err != nil {
			return fmt.Errorf("raft advertise address: %w", err)
		}
	}
	if n.cfg.RaftTLS != nil {
		var layer *tlsStreamLayer
		if layer, err = newTLSStreamLayer(n.cfg.RaftBind, advertise, n.cfg.RaftTLS, n.cfg.RaftTLSClient); err == nil {
			n.transport = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
				Stream: layer, MaxPool: 5, Timeout: 10 * time.Second, Logger: n.logger.Named("transport"),
			})
		}
	} else {
		n.transport, err = raft.NewTCPTransportWithLogger(n.cfg.RaftBind, advertise, 5, 10*time.Second, n.logger.Named("transport"))
	}
	if err != nil {
		return fmt.Errorf("raft transport: %w", err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.cfg.NodeID)
	rc.Logger = n.cfg.Logger.Named("raft")
	rc.SnapshotThreshold = n.cfg.SnapshotThreshold
	rc.SnapshotInterval = n.cfg.SnapshotInterval
	tuneRaftForWrites(rc)
	if n.cfg.HeartbeatTimeout > 0 {
		rc.HeartbeatTimeout = n.cfg.HeartbeatTimeout
	}
	if n.cfg.ElectionTimeout > 0 {
		rc.ElectionTimeout = n.cfg.ElectionTimeout
	}
	if n.cfg.LeaderLeaseTimeout > 0 {
		rc.LeaderLeaseTimeout = n.cfg.LeaderLeaseTimeout
	}
	notify := make(chan bool, 1)
	rc.NotifyCh = notify
	n.leadership.notify = notify

	has, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		return fmt.Errorf("check raft state: %w", err)
	}
	n.bootstrapped = has
	logs, err := raft.NewLogCache(raftLogCacheSize, countedLogStore{store})
	if err != nil {
		return fmt.Errorf("raft log cache: %w", err)
	}
	n.raft, err = raft.NewRaft(rc, timedFSM{n.fsm, &n.volume}, logs, store, snaps, n.transport)
	if err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	return nil
}

func (n *Node) closeStores() {
	if n.transport != nil {
		_ = n.transport.Close()
	}
	if n.store != nil {
		_ = n.store.Close()
	}
}

// Shutdown leaves gossip, stops raft and closes the stores. It does not
// transfer leadership; call TransferLeadership first for a planned stop.
func (n *Node) Shutdown() error {
	var err error
	n.shutdownOnce.Do(func() {
		close(n.shutdownCh)
		if n.gossip != nil {
			_ = n.gossip.Leave(time.Second)
			_ = n.gossip.Shutdown()
		}
		err = n.raft.Shutdown().Error()
		n.wg.Wait()
		n.closeStores()
	})
	if err != nil {
		return fmt.Errorf("shutdown raft: %w", err)
	}
	return nil
}

// TransferLeadership hands leadership to another voter if this node leads.
func (n *Node) TransferLeadership() error {
	if n.raft.State() != raft.Leader {
		return nil
	}
	if err := n.raft.LeadershipTransfer().Error(); err != nil {
		return fmt.Errorf("transfer leadership: %w", err)
	}
	return nil
}

// ID is this node's ID.
func (n *Node) ID() string { return n.cfg.NodeID }

// FSM returns the node's state machine.
func (n *Node) FSM() *fsm.FSM { return n.fsm }

// State returns the current state store for reads.
func (n *Node) State() *fsm.Store { return n.fsm.State() }

// IsLeader reports whether this node is the raft leader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Config returns the node's configuration (secrets included: do not log it).
func (n *Node) Config() Config { return n.cfg }

// RaftAddr is the raft address peers dial.
func (n *Node) RaftAddr() string { return string(n.transport.LocalAddr()) }

// GossipAddr is the address other servers can -join.
func (n *Node) GossipAddr() string {
	ln := n.gossip.LocalNode()
	return net.JoinHostPort(ln.Addr.String(), fmt.Sprint(ln.Port))
}

// WaitForLeader blocks until a leader is known or ctx ends.
func (n *Node) WaitForLeader(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if _, id := n.raft.LeaderWithID(); id != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for leader: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// openLogStore opens DATA_DIR/raft/raft.db, raft's log and stable store.
func openLogStore(raftDir string) (*raftboltdb.BoltStore, error) {
	store, err := raftboltdb.New(logStoreOptions(filepath.Join(raftDir, "raft.db")))
	if err != nil {
		return nil, fmt.Errorf("open raft bolt store: %w", err)
	}
	return store, nil
}

// logStoreOptions are the options raft.db is opened with: bbolt's
// defaults, measured against the alternatives (BenchmarkLogStore,
// docs/benchmarks.md "Raft log store"). bbolt itself keeps under 6 MB of
// heap for a 290 MB raft.db. NoFreelistSync saves writing the list of free
// pages at each commit (1 to 10 % of the bytes the store allocates) but
// makes bbolt walk every live page at open: 0.5 s for a log of 18,000
// entries and 3 to 5 s for 40,000 on a cold page cache, against 2 ms with
// the list on disk. The map freelist and a large InitialMmapSize changed
// nothing measurable.
func logStoreOptions(path string) raftboltdb.Options {
	return raftboltdb.Options{Path: path}
}

// countedLogStore is raft's log store with the size of each write
// observed (stratus_raft_log_store_batch_entries): how well writes share
// the store's per-transaction cost (an fsync, bbolt's freelist).
type countedLogStore struct{ raft.LogStore }

func (s countedLogStore) StoreLog(l *raft.Log) error {
	metrics.LogStoreBatch.Observe(1)
	return s.LogStore.StoreLog(l)
}

func (s countedLogStore) StoreLogs(logs []*raft.Log) error {
	metrics.LogStoreBatch.Observe(float64(len(logs)))
	return s.LogStore.StoreLogs(logs)
}

// raftLogCacheSize is how many of the newest entries raft.NewLogCache
// keeps in memory in front of raft.db. Raft reads back every entry it
// stores: a follower to hand it to its FSM, the leader once per follower
// to replicate it. Without the cache each read decodes a fresh copy from
// bbolt (a quarter of the bytes and half the allocations the log store
// costs per entry); with it, the entry raft already holds is handed out
// again. 512 entries of a few KB are under 2 MB.
const raftLogCacheSize = 512

// raftMaxAppendEntries is how many entries the leader gathers into one
// write of its log (one fsync), one AppendEntries RPC and one batch of the
// FSM (fsm.FSM.ApplyBatch). Under load every write of a batch shares those
// fixed costs, so a larger batch raises the write rate without making a
// quiet cluster slower (a batch is whatever is ready, never waited for).
//
// It also bounds what a server whose FSM falls behind holds in memory:
// raft queues committed entries for the FSM on a channel of 128 batches
// (fixed inside raft), each of up to this many entries, read back from
// raft.db. BenchmarkFollowerApplyBacklog: at 256 a stalled follower held
// about 30,000 entries (110 MB of 2-4 KB entries), at 128 half that, and
// the leader committed as fast at 128 as at 256 (26,000 entries/s); at
// raft's default of 64 it was 25 % slower.
const raftMaxAppendEntries = 128

// tuneRaftForWrites sets raft's batching. BatchApplyCh buffers the channel
// of proposals to MaxAppendEntries, so proposers hand their entries over
// without waiting for the leader loop to take each one, and the loop's
// group commit finds them all ready.
func tuneRaftForWrites(rc *raft.Config) {
	rc.MaxAppendEntries = raftMaxAppendEntries
	rc.BatchApplyCh = true
}

// ApplyBatch applies a batch raft committed (fsm.FSM.ApplyBatch), timing
// it for stratus_fsm_apply_duration_seconds: each entry is observed with
// its share of the batch's time, so the histogram still counts entries.
func (t timedFSM) ApplyBatch(logs []*raft.Log) []any {
	t.volume.add(logs...)
	start := time.Now()
	resps := t.FSM.ApplyBatch(logs)
	if len(logs) > 0 {
		metrics.FSMBatch.Observe(float64(len(logs)))
		share := time.Since(start).Seconds() / float64(len(logs))
		for range logs {
			metrics.FSMApply.Observe(share)
		}
	}
	return resps
}
