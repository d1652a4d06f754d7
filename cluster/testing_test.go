package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

const testSecret = "test-cluster-secret-0123456789"

// logWriter sends a node's logs to the test log until the test ends.
type logWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Helper()
		w.t.Log(string(p[:len(p)-1]))
	}
	return len(p), nil
}

func testLogger(t testing.TB, name string) hclog.Logger {
	w := &logWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return hclog.New(&hclog.LoggerOptions{Name: name, Output: w, Level: hclog.Warn})
}

// testNode is a full node on loopback: real raft over TCP, real BoltDB and
// snapshot files in a temp dir, gossip, and an HTTP server for the internal
// endpoints.
type testNode struct {
	*Node
	cfg     Config
	httpSrv *http.Server
	handler atomic.Pointer[http.Handler]
}

func (tn *testNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*tn.handler.Load()).ServeHTTP(w, r)
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// fresh says whether a node's data dir holds no state yet, so the node
// is new and no peer knows its raft address.
func fresh(dir string) bool {
	entries, err := os.ReadDir(dir)
	return err == nil && len(entries) == 0
}

func newTestConfig(t testing.TB, id string, expect int, join []string) Config {
	return Config{
		NodeID: id, DataDir: t.TempDir(), RaftBind: freeAddr(t), GossipBind: "127.0.0.1:0",
		BootstrapExpect: expect, Join: join, Secret: testSecret, HoldTimeout: 3 * time.Second,
		Version: "test", HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond,
		LeaderLeaseTimeout: 150 * time.Millisecond, Logger: testLogger(t, id),
	}
}

// startTestNode starts a node with cfg; the API listener is created first so
// the node can gossip its URL.
func startTestNode(t testing.TB, cfg Config) *testNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.APIAdvertise = "http://" + ln.Addr().String()
	tn := &testNode{cfg: cfg}
	nf := http.NotFoundHandler()
	tn.handler.Store(&nf)
	tn.httpSrv = &http.Server{Handler: tn}
	go func() { _ = tn.httpSrv.Serve(ln) }()
	isNew := fresh(cfg.DataDir)
	n, err := New(cfg)
	for try := 0; err != nil && errors.Is(err, syscall.EADDRINUSE) && isNew && try < 5; try++ {
		// freeAddr's port was taken between its release and raft's bind
		// (by another listener of this machine); a new node may take any.
		cfg.RaftBind = freeAddr(t)
		tn.cfg = cfg
		n, err = New(cfg)
	}
	if err != nil {
		_ = tn.httpSrv.Close()
		t.Fatalf("start node %s: %v", cfg.NodeID, err)
	}
	tn.Node = n
	ih := n.InternalHandler()
	tn.handler.Store(&ih)
	t.Cleanup(func() { tn.stop() })
	return tn
}

func (tn *testNode) stop() {
	_ = tn.httpSrv.Close()
	_ = tn.Shutdown()
}

// startCluster starts n nodes that bootstrap together.
func startCluster(t testing.TB, size int) []*testNode {
	t.Helper()
	var nodes []*testNode
	var join []string
	for i := 0; i < size; i++ {
		cfg := newTestConfig(t, fmt.Sprintf("node%d", i), size, join)
		n := startTestNode(t, cfg)
		nodes = append(nodes, n)
		if i == 0 {
			join = []string{n.GossipAddr()}
		}
	}
	waitFor(t, 15*time.Second, "a leader established with every node ready", func() error {
		for _, n := range nodes {
			if ok, why := n.Ready(context.Background()); !ok {
				return fmt.Errorf("%s: %s", n.ID(), why)
			}
		}
		return nil
	})
	return nodes
}

// waitFor polls cond until it returns nil or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
}

func leaderOf(t testing.TB, nodes []*testNode) *testNode {
	t.Helper()
	var leader *testNode
	waitFor(t, 10*time.Second, "an established leader", func() error {
		for _, n := range nodes {
			if n.Node != nil && n.IsLeader() && n.Established() {
				leader = n
				return nil
			}
		}
		return fmt.Errorf("none yet")
	})
	return leader
}

func followers(nodes []*testNode, leader *testNode) []*testNode {
	var out []*testNode
	for _, n := range nodes {
		if n != leader {
			out = append(out, n)
		}
	}
	return out
}
