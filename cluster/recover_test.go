package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Two of three servers are lost for good; the survivor is recovered with
// peers.json as a single-voter cluster, serves its data, and new servers
// join it.
func TestRecoverFromPeersFile(t *testing.T) {
	nodes := startCluster(t, 3)
	leader := leaderOf(t, nodes)
	for i := 0; i < 10; i++ {
		setSetting(t, leader, fmt.Sprintf("test.k%d", i), fmt.Sprint(i))
	}
	waitSetting(t, nodes, "test.k9", "9")
	survivor := followers(nodes, leader)[0]
	for _, n := range nodes {
		n.stop() // the two others are destroyed: their data dirs are never used again
	}

	cfg := survivor.cfg
	peers, _ := json.Marshal([]map[string]any{{"id": cfg.NodeID, "address": cfg.RaftBind, "non_voter": false}})
	path := filepath.Join(cfg.DataDir, "raft", PeersFile)
	if err := os.WriteFile(path, peers, 0o600); err != nil {
		t.Fatal(err)
	}
	ok, err := RecoverFromPeersFile(cfg)
	if err != nil || !ok {
		t.Fatalf("recover: %v %v", ok, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("peers.json still there after recovery: %v", err)
	}
	if ok, err := RecoverFromPeersFile(cfg); ok || err != nil {
		t.Fatalf("second recovery without a file: %v %v", ok, err)
	}

	cfg.Join = nil
	cfg.Logger = testLogger(t, cfg.NodeID+"-recovered")
	rec := startTestNode(t, cfg)
	waitFor(t, 15*time.Second, "the recovered server to lead alone", func() error {
		if !rec.Established() {
			return fmt.Errorf("role %s", rec.Status().Role)
		}
		return nil
	})
	waitSetting(t, []*testNode{rec}, "test.k9", "9")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rec.ConsistentRead(ctx); err != nil {
		t.Fatalf("consistent read on the recovered server: %v", err)
	}
	setSetting(t, rec, "test.after", "recovered")

	// Two brand-new servers join it and get all the data.
	grown := []*testNode{rec}
	for i := 0; i < 2; i++ {
		n := startTestNode(t, newTestConfig(t, fmt.Sprintf("new%d", i), 0, []string{rec.GossipAddr()}))
		grown = append(grown, n)
	}
	waitFor(t, 20*time.Second, "three voters", func() error {
		f := rec.raft.GetConfiguration()
		if err := f.Error(); err != nil {
			return err
		}
		if v := countVoters(f.Configuration()); v != 3 {
			return fmt.Errorf("%d voters: %+v", v, f.Configuration().Servers)
		}
		return nil
	})
	waitSetting(t, grown, "test.k0", "0")
	waitSetting(t, grown, "test.after", "recovered")
	setSetting(t, grown[2], "test.via-new", "ok")
	waitSetting(t, grown, "test.via-new", "ok")
}
