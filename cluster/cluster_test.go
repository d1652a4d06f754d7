package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratus-cloud/stratus/fsm"
)

func zoneReq(id, name string) fsm.ZoneUpsertRequest {
	return fsm.ZoneUpsertRequest{Create: true, Zone: fsm.Zone{ID: id, Name: name, NetworkType: "Advanced", AllocationState: fsm.AllocationEnabled}}
}

func TestClusterFormsAndForwardsWrites(t *testing.T) {
	nodes := startCluster(t, 3)
	leader := leaderOf(t, nodes)
	for _, n := range nodes {
		st := n.Status()
		if len(st.Peers) != 3 || st.LeaderID != leader.ID() {
			t.Fatalf("%s status: %+v", n.ID(), st)
		}
	}
	// A write on each follower is forwarded, and the follower reads it back
	// from its own memory at once (read-your-writes).
	for i, f := range followers(nodes, leader) {
		id := fmt.Sprintf("zone-%d", i)
		idx, err := f.Apply(context.Background(), fsm.ZoneUpsertRequestType, zoneReq(id, id))
		if err != nil {
			t.Fatalf("apply on follower %s: %v", f.ID(), err)
		}
		if f.FSM().AppliedIndex() < idx {
			t.Fatalf("follower answered before applying its write: applied %d < %d", f.FSM().AppliedIndex(), idx)
		}
		if z, _ := f.State().Zone(nil, id); z == nil {
			t.Fatalf("follower %s does not see its own write", f.ID())
		}
	}
	// A business failure comes back through forwarding as a StateError.
	f := followers(nodes, leader)[0]
	_, err := f.Apply(context.Background(), fsm.ZoneUpsertRequestType, zoneReq("zone-x", "zone-0"))
	if !errors.Is(err, fsm.ErrConflict) {
		t.Fatalf("duplicate name through a follower: err = %v, want a conflict", err)
	}
}

func TestConsistentReadOnFollowerSeesLeaderWrite(t *testing.T) {
	nodes := startCluster(t, 3)
	leader := leaderOf(t, nodes)
	for i := 0; i < 20; i++ {
		id := fmt.Sprintf("z%d", i)
		if _, err := leader.Apply(context.Background(), fsm.ZoneUpsertRequestType, zoneReq(id, id)); err != nil {
			t.Fatal(err)
		}
		for _, f := range followers(nodes, leader) {
			if err := f.ConsistentRead(context.Background()); err != nil {
				t.Fatalf("consistent read on %s: %v", f.ID(), err)
			}
			if z, _ := f.State().Zone(nil, id); z == nil {
				t.Fatalf("consistent read on %s missed write %s", f.ID(), id)
			}
		}
	}
}

func TestConcurrentReadsShareRoundTrips(t *testing.T) {
	var calls atomic.Int32
	release := make(chan struct{})
	b := newBatcher(func(context.Context) (uint64, error) {
		calls.Add(1)
		<-release
		return 7, nil
	})
	var wg sync.WaitGroup
	results := make(chan uint64, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			idx, err := b.do(context.Background())
			if err != nil {
				t.Error(err)
			}
			results <- idx
		}()
	}
	// Let every caller join a round (the first is in flight, the rest
	// wait for the next), then let rounds finish.
	waitFor(t, 5*time.Second, "all callers waiting", func() error {
		if n := b.waiters(); calls.Load() == 0 || n < 50 {
			return fmt.Errorf("%d of 50 callers waiting, %d rounds", n, calls.Load())
		}
		return nil
	})
	close(release)
	wg.Wait()
	close(results)
	for idx := range results {
		if idx != 7 {
			t.Fatalf("got index %d", idx)
		}
	}
	if c := calls.Load(); c > 2 {
		t.Fatalf("50 concurrent reads took %d round trips, want at most 2", c)
	}
}

func TestLeaderLossHoldsWritesThenSucceeds(t *testing.T) {
	nodes := startCluster(t, 3)
	leader := leaderOf(t, nodes)
	fs := followers(nodes, leader)
	leader.stop()
	// The write starts while there is no leader: it must wait for the
	// election instead of failing.
	idx, err := fs[0].Apply(context.Background(), fsm.ZoneUpsertRequestType, zoneReq("after", "after"))
	if err != nil {
		t.Fatalf("write during election: %v", err)
	}
	newLeader := leaderOf(t, fs)
	if newLeader == leader {
		t.Fatalf("old leader still leads")
	}
	for _, f := range fs {
		if err := f.FSM().WaitForIndex(context.Background(), idx); err != nil {
			t.Fatal(err)
		}
		if z, _ := f.State().Zone(nil, "after"); z == nil {
			t.Fatalf("%s lost the write", f.ID())
		}
	}
}

func TestNoQuorumFailsAfterHoldWithRetriableError(t *testing.T) {
	nodes := startCluster(t, 3)
	leader := leaderOf(t, nodes)
	fs := followers(nodes, leader)
	leader.stop()
	fs[1].stop()
	survivor := fs[0]
	start := time.Now()
	_, err := survivor.Apply(context.Background(), fsm.ZoneUpsertRequestType, zoneReq("lost", "lost"))
	if !errors.Is(err, ErrNoLeader) || !Retriable(err) {
		t.Fatalf("write without quorum: err = %v, want retriable ErrNoLeader", err)
	}
	if held := time.Since(start); held < survivor.cfg.HoldTimeout-100*time.Millisecond {
		t.Fatalf("failed after %s, before the %s hold", held, survivor.cfg.HoldTimeout)
	}
	if err := survivor.ConsistentRead(context.Background()); !errors.Is(err, ErrNoLeader) {
		t.Fatalf("consistent read without quorum: %v", err)
	}
}

func TestFollowerRestartsFromBoltAndSnapshot(t *testing.T) {
	var nodes []*testNode
	var join []string
	for i := 0; i < 3; i++ {
		cfg := newTestConfig(t, fmt.Sprintf("node%d", i), 3, join)
		cfg.SnapshotThreshold = 16 // snapshot often so restart restores one
		n := startTestNode(t, cfg)
		nodes = append(nodes, n)
		if i == 0 {
			join = []string{n.GossipAddr()}
		}
	}
	leader := leaderOf(t, nodes)
	f := followers(nodes, leader)[0]
	for i := 0; i < 40; i++ {
		id := fmt.Sprintf("before-%d", i)
		if _, err := leader.Apply(context.Background(), fsm.ZoneUpsertRequestType, zoneReq(id, id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.ConsistentRead(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := f.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot on follower: %v", err)
	}
	cfg := f.cfg
	f.stop()
	for i := 0; i < 40; i++ {
		id := fmt.Sprintf("while-down-%d", i)
		if _, err := leader.Apply(context.Background(), fsm.ZoneUpsertRequestType, zoneReq(id, id)); err != nil {
			t.Fatal(err)
		}
	}
	// Same ID, same data dir, same raft address: a restarted process.
	cfg.Join = []string{leader.GossipAddr()}
	cfg.BootstrapExpect = 0
	restarted := startTestNode(t, cfg)
	waitFor(t, 15*time.Second, "restarted follower ready", func() error {
		if ok, why := restarted.Ready(context.Background()); !ok {
			return errors.New(why)
		}
		return nil
	})
	if err := restarted.ConsistentRead(context.Background()); err != nil {
		t.Fatal(err)
	}
	zones, _ := restarted.State().Zones(nil)
	if len(zones) != 80 {
		t.Fatalf("restarted follower has %d zones, want 80", len(zones))
	}
}

func TestInternalEndpointsRequireClusterSecret(t *testing.T) {
	nodes := startCluster(t, 3)
	leader := leaderOf(t, nodes)
	data, _ := fsm.Encode(fsm.NoopRequestType, false, struct{}{})
	for name, sign := range map[string]func(*http.Request){
		"unsigned": func(*http.Request) {},
		"wrong secret": func(r *http.Request) {
			r.Header.Set(authHeader, signInternal("not-the-secret-at-all", "POST", PathApply, time.Now().Unix(), data))
		},
		"stale": func(r *http.Request) {
			r.Header.Set(authHeader, signInternal(testSecret, "POST", PathApply, time.Now().Add(-time.Hour).Unix(), data))
		},
		"other body": func(r *http.Request) {
			r.Header.Set(authHeader, signInternal(testSecret, "POST", PathApply, time.Now().Unix(), []byte("x")))
		},
	} {
		req, _ := http.NewRequest(http.MethodPost, leader.cfg.APIAdvertise+PathApply, bytes.NewReader(data))
		sign(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s: status %d, want 401", name, resp.StatusCode)
		}
	}
}

// TestWritesInFlightSurviveLeaderLoss keeps writers busy on a follower while
// the leader stops: every write must succeed (an election is latency, not an
// error) and every zone must exist exactly once, though some requests were
// in flight to the dying leader and had to be sent again.
func TestWritesInFlightSurviveLeaderLoss(t *testing.T) {
	nodes := startCluster(t, 3)
	leader := leaderOf(t, nodes)
	via := followers(nodes, leader)[0]
	const writers = 8
	var (
		mu      sync.Mutex
		acked   []string
		errs    []error
		stop    = make(chan struct{})
		wg      sync.WaitGroup
		started sync.WaitGroup
	)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		started.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				if i == 3 {
					started.Done()
				}
				select {
				case <-stop:
					if i < 3 {
						started.Done()
					}
					return
				default:
				}
				id := fmt.Sprintf("w%d-%d", w, i)
				z := testZoneObj(id)
				_, err := via.Apply(context.Background(), fsm.TxnRequestType, fsm.TxnRequest{Ops: []fsm.TxnOp{fsm.Create("zones", &z)}})
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("zone %s: %w", id, err))
				} else {
					acked = append(acked, id)
				}
				mu.Unlock()
			}
		}()
	}
	started.Wait() // every writer has written a few zones
	leader.stop()
	newLeader := leaderOf(t, followers(nodes, leader))
	// Keep writing through the new term for a moment, then stop.
	waitFor(t, 10*time.Second, "writes after the election", func() error {
		idx := newLeader.FSM().AppliedIndex()
		if err := via.FSM().WaitForIndex(context.Background(), idx); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if len(acked) < writers*10 {
			return fmt.Errorf("%d writes acknowledged", len(acked))
		}
		return nil
	})
	close(stop)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d writes failed across the leader loss, first: %v", len(errs), errs[0])
	}
	for _, n := range followers(nodes, leader) {
		if err := n.FSM().WaitForIndex(context.Background(), newLeader.FSM().AppliedIndex()); err != nil {
			t.Fatal(err)
		}
		zones, _ := n.State().Zones(nil)
		seen := map[string]int{}
		for _, z := range zones {
			seen[z.ID]++
		}
		for _, id := range acked {
			if seen[id] != 1 {
				t.Fatalf("%s holds acknowledged zone %s %d times", n.ID(), id, seen[id])
			}
		}
	}
	t.Logf("%d writes acknowledged across the leader loss, none failed", len(acked))
}

func testZoneObj(id string) fsm.Zone {
	return fsm.Zone{ID: id, Name: "zone-" + id, NetworkType: "Advanced", AllocationState: fsm.AllocationEnabled, ZoneToken: "t-" + id}
}
