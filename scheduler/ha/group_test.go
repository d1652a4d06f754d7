package ha

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stratus-cloud/stratus/fsm"
)

// gatedCluster is a memCluster whose Apply of a transaction holds while
// the gate is closed, and which counts the transactions that change hosts.
type gatedCluster struct {
	*memCluster
	gate chan struct{} // nil or closed: Apply goes through

	mu         sync.Mutex
	hostTxns   int   // committed or refused transactions carrying host updates
	hostCounts []int // host updates per such transaction
}

func (g *gatedCluster) Apply(ctx context.Context, t fsm.MessageType, body any) (uint64, error) {
	if req, ok := body.(fsm.TxnRequest); ok {
		n := 0
		for _, op := range req.Ops {
			if op.Table == fsm.TableHosts && op.Verb == fsm.VerbUpdate {
				n++
			}
		}
		if n > 0 {
			g.mu.Lock()
			gate := g.gate
			g.hostTxns++
			g.hostCounts = append(g.hostCounts, n)
			g.mu.Unlock()
			if gate != nil {
				<-gate
			}
		}
	}
	return g.memCluster.Apply(ctx, t, body)
}

func (g *gatedCluster) counts() (int, []int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.hostTxns, append([]int(nil), g.hostCounts...)
}

// open lets every held Apply through, and all later ones.
func (g *gatedCluster) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gate != nil {
		close(g.gate)
		g.gate = nil
	}
}

// queued is how many changes wait in the committer's queue.
func (gc *groupCommitter) queued() int {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	return len(gc.queue)
}

// poll waits until cond holds: what it watches (a queue, a count of
// calls) has no channel to wait on.
func poll(t *testing.T, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // generous: the machine may be busy
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf(format, args...)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitQueued waits until n changes wait in the queue.
func waitQueued(t *testing.T, gc *groupCommitter, n int) {
	t.Helper()
	poll(t, func() bool { return gc.queued() >= n }, "fewer than %d changes queued", n)
}

// waitHeld waits until the first commit reached raft (and holds at its
// gate).
func waitHeld(t *testing.T, gc *gatedCluster) {
	t.Helper()
	poll(t, func() bool { n, _ := gc.counts(); return n > 0 }, "the first change never reached raft")
}

// renamed returns an update of a host with a new name, read at its index.
func renamed(st *fsm.Store, id, name string) fsm.TxnOp {
	h, _ := fsm.Get[fsm.Host](st, nil, fsm.TableHosts, id)
	h = h.Copy()
	h.Name = name
	return fsm.Update(fsm.TableHosts, h)
}

func hostIDs(n int) []string {
	var ids []string
	for i := range n {
		ids = append(ids, fmt.Sprintf("h-%02d", i))
	}
	return ids
}

// TestGroupCommitGathersChangesWhileOneIsCommitted: changes that arrive
// while a commit is under way go to raft together, in one transaction,
// and every caller learns its own change committed.
func TestGroupCommitGathersChangesWhileOneIsCommitted(t *testing.T) {
	ids := hostIDs(21)
	e := newEnv(t, upHosts(ids...))
	gc := &gatedCluster{memCluster: e.m, gate: make(chan struct{})}
	t.Cleanup(gc.open) // before the controller's cleanup: nothing stays held
	g := &groupCommitter{cl: gc}
	st := e.m.State()

	errs := make(chan error, len(ids))
	go func() { errs <- g.commit(context.Background(), []fsm.TxnOp{renamed(st, ids[0], "first")}) }()
	// The first change is alone in its commit, which holds at the gate.
	waitHeld(t, gc)
	for _, id := range ids[1:] {
		go func() { errs <- g.commit(context.Background(), []fsm.TxnOp{renamed(st, id, "renamed-"+id)}) }()
	}
	waitQueued(t, g, len(ids)-1)
	gc.open()
	for range ids {
		if err := <-errs; err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	txns, counts := gc.counts()
	if txns != 2 || counts[0] != 1 || counts[1] != len(ids)-1 {
		t.Fatalf("transactions = %d with %v host updates, want 2: the first alone, then the other %d together", txns, counts, len(ids)-1)
	}
	for _, id := range ids[1:] {
		if h := e.host(id); h.Name != "renamed-"+id {
			t.Errorf("host %s name = %q after its change committed", id, h.Name)
		}
	}
}

// TestGroupCommitRefusesOnlyTheStaleChange: when a host changed after its
// caller read it, the group is committed change by change, so only that
// caller is told to read again and every other change still lands.
func TestGroupCommitRefusesOnlyTheStaleChange(t *testing.T) {
	ids := hostIDs(6)
	e := newEnv(t, upHosts(ids...))
	gc := &gatedCluster{memCluster: e.m, gate: make(chan struct{})}
	t.Cleanup(gc.open)
	g := &groupCommitter{cl: gc}
	st := e.m.State()
	stale := renamed(st, ids[3], "too-late") // read before the change below
	e.apply(renamed(st, ids[3], "changed-meanwhile"))

	type result struct {
		id  string
		err error
	}
	results := make(chan result, len(ids))
	go func() {
		results <- result{ids[0], g.commit(context.Background(), []fsm.TxnOp{renamed(st, ids[0], "first")})}
	}()
	waitHeld(t, gc)
	for _, id := range ids[1:] {
		op := renamed(st, id, "renamed-"+id)
		if id == ids[3] {
			op = stale
		}
		go func() { results <- result{id, g.commit(context.Background(), []fsm.TxnOp{op})} }()
	}
	waitQueued(t, g, len(ids)-1)
	gc.open()
	for range ids {
		r := <-results
		switch {
		case r.id == ids[3] && !errors.Is(r.err, fsm.ErrStale):
			t.Errorf("the stale change of %s: err = %v, want ErrStale", r.id, r.err)
		case r.id != ids[3] && r.err != nil:
			t.Errorf("the change of %s was refused with the stale one: %v", r.id, r.err)
		}
	}
	if h := e.host(ids[3]); h.Name != "changed-meanwhile" {
		t.Errorf("the stale change overwrote a newer one: name %q", h.Name)
	}
	for _, id := range []string{ids[1], ids[2], ids[4], ids[5]} {
		if h := e.host(id); h.Name != "renamed-"+id {
			t.Errorf("host %s name = %q: its change was lost with the stale one", id, h.Name)
		}
	}
}

// TestLeasesLostTogetherCommitTogether: when many hosts' leases run out at
// the same moment, their Disconnected commits share raft entries instead
// of taking one each, and every host still ends where its HA says.
func TestLeasesLostTogetherCommitTogether(t *testing.T) {
	ids := hostIDs(40)
	e := newEnv(t, upHosts(ids...))
	gc := &gatedCluster{memCluster: e.m}
	e.c.cl, e.c.group.cl = gc, gc
	t.Cleanup(gc.open)
	e.establish()
	e.beat(ids...)

	e.untilHost(ids[len(ids)-1], fsm.HostStateUp, fsm.HAStateAvailable)
	gc.mu.Lock()
	gc.gate = make(chan struct{})
	gc.hostTxns, gc.hostCounts = 0, nil // count the expiries only
	gc.mu.Unlock()
	e.clk.Advance(graceMax) // every lease runs out now
	// The first group's commit holds at the gate (it took the expiries
	// queued when it started); the others gather behind it.
	poll(t, func() bool {
		_, counts := gc.counts()
		return len(counts) == 1 && counts[0]+e.c.group.queued() == len(ids)
	}, "not all %d expiries held or queued", len(ids))
	gc.open()
	for _, id := range ids {
		e.untilHost(id, fsm.HostStateDown, fsm.HAStateFenced)
	}
	// The Disconnected commits of all 40 took the first two transactions:
	// the one held, then one with every change queued behind it (and
	// maybe some first hosts' Fenced commits already).
	_, counts := gc.counts()
	if len(counts) < 2 || counts[1] < len(ids)-counts[0] {
		t.Fatalf("host updates per transaction = %v: the %d expiries that waited were not committed together", counts, len(ids))
	}
}

// TestHeartbeatsDuringASlowExpiryAreAnswered: while a host's Disconnected
// commit waits on a slow raft (holding the host's lock), heartbeats of that
// host are answered at once: they renew the lease rather than queue behind
// the lock, each holding its agent's connection. The expiry goes no
// further than the commit it had begun (no fence), and a later heartbeat
// brings the host back Up.
func TestHeartbeatsDuringASlowExpiryAreAnswered(t *testing.T) {
	e := newEnv(t, upHosts("h-1"))
	gc := &gatedCluster{memCluster: e.m}
	e.c.cl, e.c.group.cl = gc, gc
	t.Cleanup(gc.open)
	e.establish()
	e.beat("h-1")
	e.untilHost("h-1", fsm.HostStateUp, fsm.HAStateAvailable)
	gc.mu.Lock()
	gc.gate = make(chan struct{})
	gc.hostTxns, gc.hostCounts = 0, nil
	gc.mu.Unlock()
	e.clk.Advance(graceMax) // the lease runs out
	waitHeld(t, gc)         // its Disconnected commit holds at the gate

	answered := make(chan error, 1)
	go func() {
		for i := range 5 {
			if _, ok := e.c.Heartbeat("h-1", e.clk.Now(), e.clk.Now()); !ok {
				answered <- fmt.Errorf("heartbeat %d refused on the leader", i)
				return
			}
		}
		answered <- nil
	}()
	select {
	case err := <-answered:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("heartbeats of a host wait for the commit of its expiry")
	}

	gc.open()
	e.until("the held Disconnected commit to land", func(*fsm.Store) bool {
		return len(e.events("HOST.DISCONNECT", "h-1")) == 1
	})
	// No heartbeat after it: those answered during the commit left their
	// Up check to the expiry, which runs it once it lets the host go.
	e.untilHost("h-1", fsm.HostStateUp, fsm.HAStateAvailable)
	if n := len(e.events("HOST.RECONNECT", "h-1")); n != 1 {
		t.Errorf("%d HOST.RECONNECT events; want the one of the Up commit after the expiry", n)
	}
	e.c.Revoke() // waits for the expiry to end
	if n := len(e.events("HOST.FENCE", "h-1")); n != 0 {
		t.Fatalf("a host heartbeating during its expiry was fenced (%d HOST.FENCE events)", n)
	}
	if h := e.host("h-1"); h.State != fsm.HostStateUp || h.HAState != fsm.HAStateAvailable {
		t.Fatalf("host = %s/%s after the expiry ended, want Up/Available", h.State, h.HAState)
	}
}
