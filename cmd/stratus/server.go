package main

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"

	"github.com/stratus-cloud/stratus/api"
	"github.com/stratus-cloud/stratus/cluster"
	"github.com/stratus-cloud/stratus/hypervisor/agent"
	"github.com/stratus-cloud/stratus/hypervisor/fence"
	"github.com/stratus-cloud/stratus/ops"
	"github.com/stratus-cloud/stratus/scheduler"
	"github.com/stratus-cloud/stratus/scheduler/ha"
	"github.com/stratus-cloud/stratus/storage"
)

type serverFlags struct {
	nodeID, dataDir, clusterName           string
	bind, advertise                        string
	raftBind, raftAdvertise                string
	gossipBind, gossipAdvertise, gossipKey string
	join                                   string
	bootstrapExpect                        int
	secret, secretFile                     string
	holdTimeout                            time.Duration
	heartbeatTimeout, electionTimeout      time.Duration
	leaderLeaseTimeout                     time.Duration
	gatherWindow                           time.Duration
	logLevel, logFormat                    string
	fenceCommand                           string
	minQuorum                              int
	deadServerThreshold                    time.Duration
	pprofAddr                              string
	memoryLimit                            string
	gcPercent                              int
	tls                                    tlsFlags
}

// envOr returns the environment variable STRATUS_<NAME> or def.
func envOr(name, def string) string {
	if v, ok := os.LookupEnv("STRATUS_" + name); ok {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, ok := os.LookupEnv("STRATUS_" + name); ok {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

func envInt(name string, def int) int {
	var n int
	if v, ok := os.LookupEnv("STRATUS_" + name); ok {
		if _, err := fmt.Sscan(v, &n); err == nil {
			return n
		}
	}
	return def
}

func parseServerFlags(args []string) (*serverFlags, error) {
	f := &serverFlags{}
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.StringVar(&f.nodeID, "node-id", envOr("NODE_ID", ""), "node ID; default: kept in the data dir, generated on first start (env STRATUS_NODE_ID)")
	fs.StringVar(&f.dataDir, "data-dir", envOr("DATA_DIR", ""), "directory for raft logs, snapshots and keys (env STRATUS_DATA_DIR; required)")
	fs.StringVar(&f.clusterName, "cluster-name", envOr("CLUSTER_NAME", "stratus"), "name that keeps clusters on one network apart (env STRATUS_CLUSTER_NAME)")
	fs.StringVar(&f.bind, "bind", envOr("BIND", "127.0.0.1:8080"), "API listen address (env STRATUS_BIND)")
	fs.StringVar(&f.advertise, "advertise", envOr("ADVERTISE", ""), "API base URL other servers use to reach this one; default http://<bind> (env STRATUS_ADVERTISE)")
	fs.StringVar(&f.raftBind, "raft-bind", envOr("RAFT_BIND", "127.0.0.1:8300"), "Raft TCP listen address (env STRATUS_RAFT_BIND)")
	fs.StringVar(&f.raftAdvertise, "raft-advertise", envOr("RAFT_ADVERTISE", ""), "Raft address peers dial; default the bind address (env STRATUS_RAFT_ADVERTISE)")
	fs.StringVar(&f.gossipBind, "gossip-bind", envOr("GOSSIP_BIND", "127.0.0.1:8301"), "gossip (memberlist) listen address, TCP and UDP (env STRATUS_GOSSIP_BIND)")
	fs.StringVar(&f.gossipAdvertise, "gossip-advertise", envOr("GOSSIP_ADVERTISE", ""), "gossip address peers use; default the bind address (env STRATUS_GOSSIP_ADVERTISE)")
	fs.StringVar(&f.gossipKey, "gossip-key", envOr("GOSSIP_KEY", ""), "base64 key of 16, 24 or 32 bytes to encrypt gossip (env STRATUS_GOSSIP_KEY)")
	fs.StringVar(&f.join, "join", envOr("JOIN", ""), "comma-separated gossip addresses of other servers (env STRATUS_JOIN)")
	fs.IntVar(&f.bootstrapExpect, "bootstrap-expect", envInt("BOOTSTRAP_EXPECT", 0), "servers to wait for before bootstrapping a new cluster; 0 joins an existing one (env STRATUS_BOOTSTRAP_EXPECT)")
	fs.StringVar(&f.secret, "cluster-secret", "", "shared secret of the cluster's internal endpoints; prefer env STRATUS_CLUSTER_SECRET or -cluster-secret-file, which ps does not show")
	fs.StringVar(&f.secretFile, "cluster-secret-file", envOr("CLUSTER_SECRET_FILE", ""), "file holding the cluster secret (env STRATUS_CLUSTER_SECRET_FILE)")
	fs.DurationVar(&f.holdTimeout, "hold-timeout", envDuration("HOLD_TIMEOUT", cluster.DefaultHoldTimeout), "how long writes and consistent reads wait for a leader (env STRATUS_HOLD_TIMEOUT)")
	fs.DurationVar(&f.heartbeatTimeout, "raft-heartbeat-timeout", envDuration("RAFT_HEARTBEAT_TIMEOUT", time.Second), "Raft heartbeat timeout (env STRATUS_RAFT_HEARTBEAT_TIMEOUT)")
	fs.DurationVar(&f.electionTimeout, "raft-election-timeout", envDuration("RAFT_ELECTION_TIMEOUT", time.Second), "Raft election timeout (env STRATUS_RAFT_ELECTION_TIMEOUT)")
	fs.DurationVar(&f.leaderLeaseTimeout, "raft-leader-lease-timeout", envDuration("RAFT_LEADER_LEASE_TIMEOUT", 500*time.Millisecond), "how long a leader goes without hearing a quorum before it steps down; at most the heartbeat timeout (env STRATUS_RAFT_LEADER_LEASE_TIMEOUT)")
	fs.DurationVar(&f.gatherWindow, "raft-gather-window", envDuration("RAFT_GATHER_WINDOW", cluster.DefaultGatherWindow), "how long the leader may hold a write that arrives while others are in flight, so that raft writes, replicates and applies them together; 0 turns this off (env STRATUS_RAFT_GATHER_WINDOW)")
	fs.StringVar(&f.logLevel, "log-level", envOr("LOG_LEVEL", "info"), "trace, debug, info, warn or error (env STRATUS_LOG_LEVEL)")
	fs.StringVar(&f.logFormat, "log-format", envOr("LOG_FORMAT", "text"), "text or json (env STRATUS_LOG_FORMAT)")
	fs.StringVar(&f.fenceCommand, "fence-command", envOr("FENCE_COMMAND", ""), "fence script of hosts whose HA provider is command; it must exit 0 only once the host is off (env STRATUS_FENCE_COMMAND)")
	fs.IntVar(&f.minQuorum, "min-quorum", envInt("MIN_QUORUM", cluster.DefaultMinQuorum), "fewest voters autopilot and remove-peer leave in the Raft configuration: a dead server goes only once a replacement keeps this many (env STRATUS_MIN_QUORUM)")
	fs.DurationVar(&f.deadServerThreshold, "dead-server-threshold", envDuration("DEAD_SERVER_THRESHOLD", cluster.DefaultDeadServerThreshold), "how long a voter must be unseen in gossip before autopilot removes it (env STRATUS_DEAD_SERVER_THRESHOLD)")
	fs.StringVar(&f.pprofAddr, "pprof-addr", envOr("PPROF_ADDR", ""), "serve Go's pprof profiles on this address (host:port; no host means 127.0.0.1; port 0 picks one, written to <data-dir>/pprof-addr); off when empty (env STRATUS_PPROF_ADDR)")
	fs.StringVar(&f.memoryLimit, "memory-limit", envOr("MEMORY_LIMIT", ""), "soft limit of the server's memory, such as 3GiB: the Go collector works harder near it instead of letting the heap grow to twice what is live; none when empty (env STRATUS_MEMORY_LIMIT; see docs/deploy.md)")
	fs.IntVar(&f.gcPercent, "gc-percent", envInt("GC_PERCENT", 0), "how far the heap may grow past what is live before the Go collector runs, in percent (GOGC): 300 lets it reach four times the live heap, trading memory for CPU, with -memory-limit as the cap; -1 turns the percent off and leaves only the limit; 0 keeps GOGC or Go's 100 (env STRATUS_GC_PERCENT; see docs/deploy.md)")
	f.tls.register(fs, "", true)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if err := f.tls.validate(true); err != nil {
		return nil, err
	}
	if f.secret == "" {
		f.secret = os.Getenv("STRATUS_CLUSTER_SECRET")
	}
	if f.secret == "" && f.secretFile != "" {
		b, err := os.ReadFile(f.secretFile)
		if err != nil {
			return nil, fmt.Errorf("read cluster secret file: %w", err)
		}
		f.secret = strings.TrimSpace(string(b))
	}
	if f.dataDir == "" {
		return nil, errors.New("-data-dir is required")
	}
	if f.secret == "" {
		return nil, errors.New("a cluster secret is required: set STRATUS_CLUSTER_SECRET or -cluster-secret-file (the same on every server)")
	}
	limit, err := parseByteSize(f.memoryLimit)
	if err != nil {
		return nil, fmt.Errorf("-memory-limit: %w", err)
	}
	if err := checkGCPercent(f.gcPercent, limit); err != nil {
		return nil, err
	}
	if f.logFormat != "text" && f.logFormat != "json" {
		return nil, fmt.Errorf("-log-format must be text or json, not %q", f.logFormat)
	}
	if hclog.LevelFromString(f.logLevel) == hclog.NoLevel {
		return nil, fmt.Errorf("-log-level %q is not one of trace, debug, info, warn, error", f.logLevel)
	}
	return f, nil
}

// loadNodeID returns the node ID kept in the data dir, writing the given or
// a new one on first start. A different -node-id on a used data dir is an
// error: raft knows the node by its first ID.
func loadNodeID(dataDir, want string) (string, error) {
	path := filepath.Join(dataDir, "node-id")
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		have := strings.TrimSpace(string(b))
		if want != "" && want != have {
			return "", fmt.Errorf("data dir %s belongs to node %q, not %q", dataDir, have, want)
		}
		return have, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("read node id: %w", err)
	}
	if want == "" {
		want = uuid.NewString()
	}
	if err := os.WriteFile(path, []byte(want+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write node id: %w", err)
	}
	return want, nil
}

func runServer(args []string) error {
	f, err := parseServerFlags(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	logger := hclog.New(&hclog.LoggerOptions{
		Name: "stratus", Level: hclog.LevelFromString(f.logLevel), JSONFormat: f.logFormat == "json", Output: os.Stderr,
	})
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	id, err := loadNodeID(f.dataDir, f.nodeID)
	if err != nil {
		return err
	}
	logger = logger.With("node_id", id)
	limit, _ := parseByteSize(f.memoryLimit) // checked with the flags
	applyMemoryLimit(limit, logger)
	applyGCPercent(f.gcPercent, logger)
	if f.pprofAddr != "" {
		stop, err := startPprof(f.pprofAddr, f.dataDir, logger)
		if err != nil {
			return err
		}
		defer stop()
	}
	advertise := f.advertise
	if advertise == "" {
		advertise = "http://" + f.bind
		if f.tls.enabled() {
			advertise = "https://" + f.bind
		}
	}
	// Calls to other servers (forwarded writes, read index, heartbeat
	// relay) trust -tls-ca and present this server's certificate.
	var internalClient, relayClient *http.Client
	var raftTLS, raftTLSClient *tls.Config
	if f.tls.enabled() {
		// Raft's transport too: same certificate, CA and client policy.
		if raftTLS, err = f.tls.serverConfig(); err != nil {
			return err
		}
		if raftTLSClient, err = f.tls.clientConfig(); err != nil {
			return err
		}
	}
	if f.tls.enabled() || f.tls.ca != "" {
		if internalClient, err = f.tls.httpClient(30 * time.Second); err != nil {
			return err
		}
		if relayClient, err = f.tls.httpClient(10 * time.Second); err != nil {
			return err
		}
	}
	var gossipKey []byte
	if f.gossipKey != "" {
		if gossipKey, err = base64.StdEncoding.DecodeString(f.gossipKey); err != nil {
			return fmt.Errorf("-gossip-key is not base64: %w", err)
		}
	}
	// Listen first, so a port clash fails before raft starts.
	ln, err := net.Listen("tcp", f.bind)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", f.bind, err)
	}
	if f.tls.enabled() {
		tcfg, err := f.tls.serverConfig()
		if err != nil {
			_ = ln.Close()
			return err
		}
		ln = tls.NewListener(ln, tcfg)
	}
	var join []string
	for _, j := range strings.Split(f.join, ",") {
		if j = strings.TrimSpace(j); j != "" {
			join = append(join, j)
		}
	}
	node, err := cluster.New(cluster.Config{
		NodeID: id, DataDir: f.dataDir, ClusterName: f.clusterName,
		RaftBind: f.raftBind, RaftAdvertise: f.raftAdvertise,
		GossipBind: f.gossipBind, GossipAdvertise: f.gossipAdvertise, GossipKey: gossipKey,
		APIAdvertise: advertise, Join: join, BootstrapExpect: f.bootstrapExpect,
		Secret: f.secret, HoldTimeout: f.holdTimeout, Version: version,
		HeartbeatTimeout: f.heartbeatTimeout, ElectionTimeout: f.electionTimeout, LeaderLeaseTimeout: f.leaderLeaseTimeout,
		GatherWindow: gatherWindow(f.gatherWindow), Logger: logger, HTTPClient: internalClient, RaftTLS: raftTLS, RaftTLSClient: raftTLSClient,
	})
	if err != nil {
		_ = ln.Close()
		return err
	}
	node.AddLeadershipHooks("seed", ops.SeedHook(node, f.dataDir, logger), nil)
	jobs := scheduler.NewRunner(node, logger)
	scheduler.RegisterTagJobs(jobs)
	scheduler.RegisterVMJobs(jobs)
	scheduler.RegisterVolumeJobs(jobs)
	scheduler.RegisterSnapshotJobs(jobs)
	scheduler.RegisterAffinityJobs(jobs)
	scheduler.RegisterMaintenanceJobs(jobs)
	node.AddLeadershipHooks("jobs", jobs.Establish, jobs.Revoke)
	templates := storage.NewTemplateSync(node, logger)
	node.AddLeadershipHooks("templates", templates.Establish, templates.Revoke)
	expunger := scheduler.NewExpunger(node, logger)
	node.AddLeadershipHooks("expunger", expunger.Establish, expunger.Revoke)
	purger := scheduler.NewPurger(node, logger) // job.expire.minutes, event.purge.delay
	node.AddLeadershipHooks("purger", purger.Establish, purger.Revoke)
	hosts := ha.New(ha.Config{Cluster: node, Fencers: fence.Lookup(f.fenceCommand, nil), Logger: logger})
	node.AddLeadershipHooks("host-ha", hosts.Establish, hosts.Revoke)
	startAutopilot(node, f.minQuorum, f.deadServerThreshold, logger)

	apiSrv := api.New(api.Config{Cluster: node, Logger: logger, Version: version,
		RegistrationToken: agent.RegistrationToken(f.secret), Heartbeats: hosts, ForwardClient: relayClient})
	registerOperatorEndpoints(apiSrv, node, logger)
	srv := &http.Server{
		Handler:           apiSrv,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Info("server started", "api", advertise, "raft", node.RaftAddr(), "gossip", node.GossipAddr(), "version", version)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	select {
	case sig := <-sigs:
		logger.Info("stopping", "signal", sig.String())
	case err := <-serveErr:
		logger.Error("api server failed", "error", err)
	}
	// A planned stop hands leadership over first, so the cluster does not
	// wait out an election timeout.
	if err := node.TransferLeadership(); err != nil {
		logger.Warn("leadership transfer before stop failed", "error", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	return node.Shutdown()
}

// gatherWindow turns -raft-gather-window into cluster.Config's terms, where
// 0 means the default: on the command line 0 (or less) turns gathering off.
func gatherWindow(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}
