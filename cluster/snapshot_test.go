package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stratus-cloud/stratus/fsm"
)

func setSetting(t *testing.T, n *testNode, name, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := n.Apply(ctx, fsm.ConfigSetRequestType, fsm.ConfigSetRequest{Setting: fsm.Setting{Name: name, Value: value}}); err != nil {
		t.Fatalf("set %s on %s: %v", name, n.ID(), err)
	}
}

// waitSetting waits until every node holds name=value.
func waitSetting(t *testing.T, nodes []*testNode, name, value string) {
	t.Helper()
	waitFor(t, 10*time.Second, fmt.Sprintf("%s=%s on every node", name, value), func() error {
		for _, n := range nodes {
			if got := n.State().SettingValue(name); got != value {
				return fmt.Errorf("%s has %s=%q", n.ID(), name, got)
			}
		}
		return nil
	})
}

func TestSnapshotSaveRestoreIntoAnotherCluster(t *testing.T) {
	src := startCluster(t, 3)
	leader := leaderOf(t, src)
	for i := 0; i < 20; i++ {
		setSetting(t, leader, fmt.Sprintf("test.k%d", i), fmt.Sprint(i))
	}
	// Save through a follower: its consistent read must see every write.
	var buf bytes.Buffer
	applied, err := followers(src, leader)[0].SaveSnapshot(context.Background(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	if applied == 0 || buf.Len() == 0 {
		t.Fatalf("applied %d, %d bytes", applied, buf.Len())
	}

	dst := startCluster(t, 3)
	dl := leaderOf(t, dst)
	setSetting(t, dl, "test.only-in-dst", "x")
	if _, err := followers(dst, dl)[0].RestoreSnapshot(context.Background(), bytes.NewReader(buf.Bytes()), int64(buf.Len())); !errors.Is(err, ErrRestoreNotLeader) {
		t.Fatalf("restore on a follower: %v, want ErrRestoreNotLeader", err)
	}
	if _, err := dl.RestoreSnapshot(context.Background(), bytes.NewReader([]byte("garbage")), 7); !errors.Is(err, ErrSnapshotInvalid) {
		t.Fatalf("restore of garbage: %v, want ErrSnapshotInvalid", err)
	}
	if _, err := dl.RestoreSnapshot(context.Background(), bytes.NewReader(buf.Bytes()), int64(buf.Len())); err != nil {
		t.Fatalf("restore: %v", err)
	}
	waitSetting(t, dst, "test.k19", "19")
	waitSetting(t, dst, "test.only-in-dst", "")
	// The restored cluster keeps working, and every node applies new writes
	// (the FSM's applied index moves on past the restored one).
	waitFor(t, 15*time.Second, "a leader after the restore", func() error {
		for _, n := range dst {
			if n.Established() {
				return nil
			}
		}
		return fmt.Errorf("no established leader")
	})
	setSetting(t, leaderOf(t, dst), "test.after", "yes")
	waitSetting(t, dst, "test.after", "yes")
}
