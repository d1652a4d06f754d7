package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stratus-cloud/stratus/cluster"
	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/hypervisor"
	"github.com/stratus-cloud/stratus/hypervisor/agent"
)

// laggingCluster is a follower's view of a fakeCluster: commits go to the
// leader's FSM at once, but this server's state (State) applies them only
// when a consistent read asks it to catch up, as a follower that lags
// behind the leader does.
type laggingCluster struct {
	*fakeCluster
	follower *fsm.FSM

	mu     sync.Mutex
	behind []laggedEntry // committed on the leader, not applied here yet
	// readTrails makes a consistent read catch up with nothing, as one
	// answered by a leader whose state machine trails the commits its
	// followers applied.
	readTrails bool
}

type laggedEntry struct {
	index uint64
	t     fsm.MessageType
	body  any
}

// snapshotSink keeps a raft snapshot in memory.
type snapshotSink struct{ bytes.Buffer }

func (*snapshotSink) ID() string    { return "test" }
func (*snapshotSink) Cancel() error { return nil }
func (*snapshotSink) Close() error  { return nil }

// newLaggingCluster returns a follower of c that holds c's state as of now.
func newLaggingCluster(t testing.TB, c *fakeCluster) *laggingCluster {
	t.Helper()
	snap, err := c.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &snapshotSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	follower := fsm.New(nil)
	if err := follower.Restore(io.NopCloser(&sink.Buffer)); err != nil {
		t.Fatal(err)
	}
	return &laggingCluster{fakeCluster: c, follower: follower}
}

func (l *laggingCluster) Apply(ctx context.Context, t fsm.MessageType, body any) (uint64, error) {
	idx, err := l.fakeCluster.Apply(ctx, t, body)
	l.mu.Lock()
	l.behind = append(l.behind, laggedEntry{idx, t, body})
	l.mu.Unlock()
	return idx, err
}

func (l *laggingCluster) ConsistentRead(ctx context.Context) error {
	if !l.readTrails {
		l.catchUp()
	}
	return l.fakeCluster.ConsistentRead(ctx)
}

// catchUp applies every entry the leader committed.
func (l *laggingCluster) catchUp() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.behind {
		_ = l.follower.ApplyCommand(e.index, e.t, e.body) // refused entries are refused here too
	}
	l.behind = nil
}

func (l *laggingCluster) State() *fsm.Store { return l.follower.State() }

func (l *laggingCluster) Status() cluster.Status {
	return cluster.Status{ID: "fake", Role: "follower", AppliedIndex: l.follower.AppliedIndex()}
}

// TestReportOnLaggingServerKeepsNewVM: a host's agent reports three VMs
// it just started, in one batch, to a server that lags behind the leader
// (the agent read its desired state from another server): that server
// knows the first VM as the leader does, does not know the second,
// placed a moment ago, and shows the third as already seen running there
// (the leader has since started it on the host again). Every report must
// be recorded: the agent never sends an acknowledged report again, so a
// dropped one would leave that VM's deploy or start job waiting for ever.
func TestReportOnLaggingServerKeepsNewVM(t *testing.T) {
	f := newPollFixture(t, 2)
	h := f.hosts[0]
	known := f.vms[h.ID]
	// A VM that ran on h and was seen there: the lagging server keeps
	// that, the leader starts it on h again (its observed state cleared).
	again := known.Copy()
	again.ID, again.Name, again.DisplayName, again.InstanceName = "eeeeeeee-1111-4000-8000-000000000000", "vm-again", "vm-again", "i-again"
	again.ObservedHostID, again.ObservedPower, again.Indexes = h.ID, fsm.PowerOn, fsm.Indexes{}
	f.commit(t, fsm.Create(fsm.TableVMs, again))
	lag := newLaggingCluster(t, f.c)
	s := New(Config{Cluster: lag, Version: "test", Now: func() time.Time { return fixedNow }})

	// Placed on h by the leader; the lagging server has not seen it yet.
	placed := known.Copy()
	placed.ID, placed.Name, placed.DisplayName, placed.InstanceName = "ffffffff-1111-4000-8000-000000000000", "vm-new", "vm-new", "i-new"
	placed.State, placed.Indexes = fsm.VMStarting, fsm.Indexes{}
	restarted, _ := fsm.Get[fsm.VM](f.c.State(), nil, fsm.TableVMs, again.ID)
	restarted = restarted.Copy()
	restarted.State, restarted.ObservedHostID, restarted.ObservedPower = fsm.VMStarting, "", ""
	if _, err := lag.Apply(context.Background(), fsm.TxnRequestType, fsm.TxnRequest{Ops: []fsm.TxnOp{
		fsm.Create(fsm.TableVMs, placed), fsm.Update(fsm.TableVMs, restarted)}}); err != nil {
		t.Fatal(err)
	}
	if v, _ := fsm.Get[fsm.VM](lag.State(), nil, fsm.TableVMs, placed.ID); v != nil {
		t.Fatal("the lagging server already has the new VM")
	}

	body, err := json.Marshal(agent.Report{HostID: h.ID, VMs: []agent.VMReport{
		{ID: known.ID, Power: hypervisor.PowerRunning},
		{ID: placed.ID, Power: hypervisor.PowerRunning},
		{ID: again.ID, Power: hypervisor.PowerRunning},
	}})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, agentRequest(context.Background(), h, http.MethodPost, agent.PathReport, body, "report-1"))
	if rec.Code != http.StatusOK {
		t.Fatalf("report: %d %s", rec.Code, rec.Body.String())
	}
	for _, id := range []string{known.ID, placed.ID, again.ID} {
		v, err := fsm.Get[fsm.VM](f.c.State(), nil, fsm.TableVMs, id)
		if err != nil || v == nil {
			t.Fatalf("VM %s on the leader: %v", id, err)
		}
		if v.ObservedHostID != h.ID || v.ObservedPower != fsm.PowerOn {
			t.Errorf("VM %s after the report: observed on %q power %q, want %s and %s", id, v.ObservedHostID, v.ObservedPower, h.ID, fsm.PowerOn)
		}
	}
}

// TestReportWaitsForTheStateTheAgentActedOn: the agent started a VM
// another server had just placed on its host and reports it, with the
// desired-state index it acted on, to a server that has not applied that
// placement yet and whose consistent read does not bring it either (the
// read index came from a leader whose state machine trails what its
// followers applied). The server waits until it applied the agent's
// index and records the report instead of dropping it.
func TestReportWaitsForTheStateTheAgentActedOn(t *testing.T) {
	f := newPollFixture(t, 2)
	h := f.hosts[0]
	lag := newLaggingCluster(t, f.c)
	lag.readTrails = true
	s := New(Config{Cluster: lag, Version: "test", Now: func() time.Time { return fixedNow }})

	placed := f.vms[h.ID].Copy()
	placed.ID, placed.Name, placed.DisplayName, placed.InstanceName = "ffffffff-1111-4000-8000-000000000000", "vm-new", "vm-new", "i-new"
	placed.State, placed.Indexes = fsm.VMStarting, fsm.Indexes{}
	index, err := lag.Apply(context.Background(), fsm.TxnRequestType, fsm.TxnRequest{Ops: []fsm.TxnOp{fsm.Create(fsm.TableVMs, placed)}})
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(agent.Report{HostID: h.ID, Index: index, VMs: []agent.VMReport{{ID: placed.ID, Power: hypervisor.PowerRunning}}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan *httptest.ResponseRecorder)
	go func() {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, agentRequest(context.Background(), h, http.MethodPost, agent.PathReport, body, "report-1"))
		done <- rec
	}()
	// The server catches up once the report went through its consistent
	// read, which brought nothing.
	waitFor(t, "the report's consistent read", func() bool {
		lag.fakeCluster.mu.Lock()
		defer lag.fakeCluster.mu.Unlock()
		return lag.fakeCluster.reads > 0
	})
	lag.catchUp()
	rec := <-done
	if rec.Code != http.StatusOK {
		t.Fatalf("report: %d %s", rec.Code, rec.Body.String())
	}
	v, err := fsm.Get[fsm.VM](f.c.State(), nil, fsm.TableVMs, placed.ID)
	if err != nil || v == nil {
		t.Fatalf("VM on the leader: %v", err)
	}
	if v.ObservedHostID != h.ID || v.ObservedPower != fsm.PowerOn {
		t.Errorf("VM after the report: observed on %q power %q, want %s and %s", v.ObservedHostID, v.ObservedPower, h.ID, fsm.PowerOn)
	}
}
