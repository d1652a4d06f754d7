package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Config configures a Node.
type Config struct {
	// NodeID names this server for good; it is kept in the data dir.
	NodeID string
	// DataDir holds raft.db (log and stable store) and snapshots/.
	DataDir string
	// ClusterName keeps clusters that share a network apart: gossip peers
	// with another name are never added as voters.
	ClusterName string

	// RaftBind is the TCP address raft listens on; RaftAdvertise the one
	// peers dial (defaults to the bound address).
	RaftBind      string
	RaftAdvertise string
	// GossipBind is memberlist's address (TCP and UDP).
	GossipBind      string
	GossipAdvertise string
	// GossipKey, if set (16, 24 or 32 bytes), encrypts gossip.
	GossipKey []byte
	// APIAdvertise is this node's API base URL (http://host:port); other
	// nodes forward writes and read-index requests to it.
	APIAdvertise string

	// Join lists gossip addresses of other servers; joining is retried in
	// the background until one answers.
	Join []string
	// BootstrapExpect is how many servers to wait for before bootstrapping a
	// new cluster; 0 means never bootstrap (join an existing cluster).
	BootstrapExpect int

	// Secret authenticates internal endpoints (HMAC of each request).
	Secret string
	// HoldTimeout is how long a write or consistent read waits for a leader
	// before failing with ErrNoLeader.
	HoldTimeout time.Duration

	// GatherWindow is how long the leader may hold a write that arrives
	// while others are in flight, to hand it to raft with the writes that
	// arrive meanwhile (gather.go); 0 takes DefaultGatherWindow, a
	// negative value turns gathering off.
	GatherWindow time.Duration

	// Version is the build version gossiped to peers.
	Version string

	// Raft timing; zero values take hashicorp/raft's defaults.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	// SnapshotThreshold is how many log entries trigger a snapshot in a
	// small store; a larger one waits for more, up to 4 times as many
	// (snapshot_threshold.go).
	SnapshotThreshold uint64
	// SnapshotInterval is how often raft checks for SnapshotThreshold new
	// entries (it waits one to two intervals at random). Under sustained
	// writes this, not the threshold, decides how long the log grows
	// between compactions, and so raft.db's size and the part of it
	// resident in memory; see DefaultSnapshotInterval.
	SnapshotInterval time.Duration

	// RaftTLS, when set, runs the raft transport over TLS with this
	// listener configuration (its ClientAuth decides whether peers must
	// present certificates); RaftTLSClient is used to dial peers and must
	// trust their certificates (and carry this server's when required).
	RaftTLS, RaftTLSClient *tls.Config

	Logger     hclog.Logger
	HTTPClient *http.Client
}

// DefaultHoldTimeout is how long writes wait for a leader by default.
const DefaultHoldTimeout = 5 * time.Second

// DefaultSnapshotInterval is a quarter of raft's 120 s. At 500 entries/s
// raft's check found 60,000 to 120,000 new entries at 120 s, so the log
// (kept in raft.db, which never shrinks, and mapped into memory) reached
// 70,000 entries and more: a 290 MB raft.db, 240 to 260 MB of it
// resident. At 30 s it is 25,000 to 40,000 entries: a raft.db of 116 to
// 176 MB, 100 to 160 MB resident (BenchmarkLogStore, docs/benchmarks.md
// "Raft log store"). The price is
// up to four times as many snapshots under sustained writes; a store
// large enough that a snapshot is costly (about 3.5 KB per VM, 35 MB at
// 10,000 VMs) raises its threshold instead (snapshot_threshold.go), and a
// quiet cluster still snapshots only every SnapshotThreshold entries.
//
// TrailingLogs, the entries a compaction keeps, stays at raft's 10,240:
// a follower further behind than that gets the whole snapshot instead,
// and restoring one at 100,000 VMs takes 9 to 17 s, in which a busy
// leader appends thousands of entries; a shorter tail risks a follower
// that never catches up, for 25 MB saved (at 4,096).
const DefaultSnapshotInterval = 30 * time.Second

// DefaultGatherWindow is the leader's default gather window (gather.go).
const DefaultGatherWindow = 2 * time.Millisecond

func (c *Config) validate() error {
	var errs []error
	if c.NodeID == "" {
		errs = append(errs, errors.New("node id is required"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir is required"))
	}
	if c.RaftBind == "" {
		errs = append(errs, errors.New("raft bind address is required"))
	}
	if c.GossipBind == "" {
		errs = append(errs, errors.New("gossip bind address is required"))
	}
	if c.APIAdvertise == "" {
		errs = append(errs, errors.New("api advertise url is required"))
	}
	if len(c.Secret) < 16 {
		errs = append(errs, errors.New("cluster secret must be at least 16 characters"))
	}
	if c.RaftTLS != nil && c.RaftTLSClient == nil {
		errs = append(errs, errors.New("raft TLS needs a client configuration too"))
	}
	if n := len(c.GossipKey); n != 0 && n != 16 && n != 24 && n != 32 {
		errs = append(errs, fmt.Errorf("gossip key must be 16, 24 or 32 bytes, got %d", n))
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	if c.ClusterName == "" {
		c.ClusterName = "stratus"
	}
	if c.HoldTimeout <= 0 {
		c.HoldTimeout = DefaultHoldTimeout
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	c.HTTPClient = PooledClient(c.HTTPClient, InternalIdleConns, 30*time.Second)
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
	if c.SnapshotInterval <= 0 {
		c.SnapshotInterval = DefaultSnapshotInterval
	}
	if c.GatherWindow == 0 {
		c.GatherWindow = DefaultGatherWindow
	}
}
