package cluster

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stratus-cloud/stratus/fsm"
)

func TestSnapshotThresholdFollowsSnapshotSize(t *testing.T) {
	for _, c := range []struct {
		snapshot int64
		mean     float64
		want     uint64
	}{
		{0, 100, 8192},              // no snapshot yet
		{1 << 20, 0, 8192},          // nothing applied yet
		{1 << 20, 1000, 8192},       // small store: the base
		{50 << 20, 1000, 26214},     // half of 50 MiB in entries of 1,000 B
		{1 << 30, 1000, 4 * 8192},   // capped
		{350 << 20, 4500, 4 * 8192}, // 100,000 VMs: capped as well
	} {
		if got := snapshotThreshold(8192, c.snapshot, c.mean); got != c.want {
			t.Errorf("snapshotThreshold(8192, %d, %.0f) = %d, want %d", c.snapshot, c.mean, got, c.want)
		}
	}
}

// TestSnapshotThresholdRisesWithTheStore checks that a running server
// hands raft a threshold from its newest snapshot: a store whose snapshot
// is many entries' worth waits for more entries before the next one.
func TestSnapshotThresholdRisesWithTheStore(t *testing.T) {
	cfg := newTestConfig(t, "node0", 1, nil)
	cfg.SnapshotThreshold = 8
	cfg.SnapshotInterval = 20 * time.Millisecond
	n := startTestNode(t, cfg)
	waitFor(t, 10*time.Second, "a leader", func() error {
		if !n.IsLeader() {
			return fmt.Errorf("not leader")
		}
		return nil
	})
	// Each entry adds a zone, and the snapshot holds them all: after 200
	// it is about 200 entries' worth, so half of it is over 4 times 8.
	long := strings.Repeat("z", 200)
	for i := range 200 {
		id := fmt.Sprintf("zone-%03d", i)
		if _, err := n.Apply(context.Background(), fsm.ZoneUpsertRequestType, zoneReq(id, id+long)); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	waitFor(t, 10*time.Second, "the threshold raised to its cap", func() error {
		if got := n.raft.ReloadableConfig().SnapshotThreshold; got != snapshotThresholdCap*8 {
			return fmt.Errorf("threshold %d, want %d", got, snapshotThresholdCap*8)
		}
		return nil
	})
	if m := n.volume.meanEntry(); m < 200 {
		t.Errorf("mean applied entry %.0f bytes, want at least the 200 of a zone's name", m)
	}
}
