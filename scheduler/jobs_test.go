package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratus-cloud/stratus/fsm"
)

// memCluster applies commands straight to an FSM: the runner's logic without
// raft. The real cluster runs it in the e2e tests.
type memCluster struct {
	mu    sync.Mutex
	f     *fsm.FSM
	index uint64
	// failNext makes the next n applies fail with a transient error.
	failNext atomic.Int32
}

func newMemCluster() *memCluster { return &memCluster{f: fsm.New(nil)} }

func (m *memCluster) State() *fsm.Store { return m.f.State() }

func (m *memCluster) Apply(_ context.Context, t fsm.MessageType, body any) (uint64, error) {
	if m.failNext.Load() > 0 {
		m.failNext.Add(-1)
		return 0, errors.New("no leader (test)")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.index++
	return m.index, m.f.ApplyCommand(m.index, t, body)
}

func (m *memCluster) submit(t testing.TB, cmd string, params map[string]string) string {
	t.Helper()
	j := &fsm.AsyncJob{ID: "job-" + cmd + "-" + time.Now().Format("150405.000000000"), Cmd: cmd, AccountID: "a", DomainID: "d", UserID: "u", Params: params, Created: time.Now()}
	if _, err := m.Apply(context.Background(), fsm.TxnRequestType, fsm.TxnRequest{Ops: []fsm.TxnOp{fsm.Create(fsm.TableJobs, j)}}); err != nil {
		t.Fatalf("submit job: %v", err)
	}
	return j.ID
}

func waitJob(t testing.TB, m *memCluster, id string) *fsm.AsyncJob {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := m.State()
		watch, _ := st.Watch(fsm.TableJobs)
		j, _ := fsm.Get[fsm.AsyncJob](st, nil, fsm.TableJobs, id)
		if j != nil && j.Status != fsm.JobPending {
			return j
		}
		select {
		case <-watch:
		case <-time.After(time.Until(deadline)):
			t.Fatalf("job %s did not finish: %+v", id, j)
		}
	}
}

func zone(id string) *fsm.Zone {
	return &fsm.Zone{ID: id, Name: id, NetworkType: "Advanced", AllocationState: fsm.AllocationEnabled, ZoneToken: "t"}
}

// twoSteps creates zone <id>-1 in step one and <id>-2 in step two. Running a
// step twice would fail the job (the zone exists), so success proves each
// step ran once.
func twoSteps(calls *atomic.Int32) Handler {
	return func(_ context.Context, _ *fsm.Store, j *fsm.AsyncJob) (Step, error) {
		calls.Add(1)
		switch j.Step {
		case "":
			return Step{Ops: []fsm.TxnOp{fsm.Create("zones", zone(j.Params["id"]+"-1"))}, Next: "second"}, nil
		case "second":
			return Succeed(map[string]any{"zone": map[string]string{"id": j.Params["id"] + "-2"}},
				fsm.Create("zones", zone(j.Params["id"]+"-2"))), nil
		}
		return Fail(530, "unexpected step %q", j.Step), nil
	}
}

func TestRunnerRunsStepsToTheEnd(t *testing.T) {
	m := newMemCluster()
	r := NewRunner(m, nil)
	var calls atomic.Int32
	r.Handle("twoSteps", twoSteps(&calls))
	_ = r.Establish(context.Background())
	defer r.Revoke()
	id := m.submit(t, "twoSteps", map[string]string{"id": "z"})
	j := waitJob(t, m, id)
	if j.Status != fsm.JobSucceeded || j.ResultCode != 0 || j.ResultType != "object" || j.Completed.IsZero() {
		t.Fatalf("job = %+v", j)
	}
	var res map[string]map[string]string
	if err := json.Unmarshal(j.Result, &res); err != nil || res["zone"]["id"] != "z-2" {
		t.Fatalf("result = %s (%v)", j.Result, err)
	}
	for _, z := range []string{"z-1", "z-2"} {
		if got, _ := m.State().Zone(nil, z); got == nil {
			t.Errorf("step's zone %s missing", z)
		}
	}
	if calls.Load() != 2 {
		t.Errorf("handler called %d times, want 2", calls.Load())
	}
}

func TestRunnerRetriesTransientFailures(t *testing.T) {
	m := newMemCluster()
	r := NewRunner(m, nil)
	var calls atomic.Int32
	r.Handle("twoSteps", twoSteps(&calls))
	id := m.submit(t, "twoSteps", map[string]string{"id": "r"})
	m.failNext.Store(3) // the first three commits find no leader
	_ = r.Establish(context.Background())
	defer r.Revoke()
	if j := waitJob(t, m, id); j.Status != fsm.JobSucceeded {
		t.Fatalf("job after transient failures = %+v", j)
	}
}

func TestRunnerReportsFailures(t *testing.T) {
	m := newMemCluster()
	r := NewRunner(m, nil)
	r.Handle("refuse", func(context.Context, *fsm.Store, *fsm.AsyncJob) (Step, error) {
		return Fail(431, "resource %s is busy", "x"), nil
	})
	r.Handle("conflict", func(_ context.Context, _ *fsm.Store, j *fsm.AsyncJob) (Step, error) {
		return Succeed(nil, fsm.Create("zones", zone("dup")), fsm.Create("zones", &fsm.Zone{ID: "dup2", Name: "DUP"})), nil
	})
	_ = r.Establish(context.Background())
	defer r.Revoke()
	for cmd, want := range map[string]struct {
		code int
		text string
	}{
		"refuse":   {431, "resource x is busy"},
		"conflict": {431, "already exists"},
		"unknown":  {530, "does not know how to run unknown jobs"},
	} {
		j := waitJob(t, m, m.submit(t, cmd, nil))
		var res JobError
		_ = json.Unmarshal(j.Result, &res)
		if j.Status != fsm.JobFailed || j.ResultCode != want.code || res.Code != want.code || !strings.Contains(res.Text, want.text) {
			t.Errorf("%s: job = status %d code %d result %s; want failure %d containing %q", cmd, j.Status, j.ResultCode, j.Result, want.code, want.text)
		}
	}
	if z, _ := m.State().Zone(nil, "dup"); z != nil {
		t.Error("a failed step left its changes behind")
	}
}

// TestNewRunnerResumesFromLastStep stops the runner (leadership lost) after
// the first step and starts another (the next leader): the job finishes and
// the first step is not run again.
func TestNewRunnerResumesFromLastStep(t *testing.T) {
	m := newMemCluster()
	block := make(chan struct{})
	var calls atomic.Int32
	inner := twoSteps(&calls)
	first := NewRunner(m, nil)
	first.Handle("twoSteps", func(ctx context.Context, st *fsm.Store, j *fsm.AsyncJob) (Step, error) {
		if j.Step == "second" {
			select { // the old leader never gets to step two
			case <-block:
			case <-ctx.Done():
				return Step{}, ctx.Err()
			}
		}
		return inner(ctx, st, j)
	})
	id := m.submit(t, "twoSteps", map[string]string{"id": "h"})
	_ = first.Establish(context.Background())
	deadline := time.Now().Add(5 * time.Second)
	for {
		j, _ := fsm.Get[fsm.AsyncJob](m.State(), nil, fsm.TableJobs, id)
		if j.Step == "second" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("step one never committed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	first.Revoke()

	second := NewRunner(m, nil)
	second.Handle("twoSteps", inner)
	_ = second.Establish(context.Background())
	defer second.Revoke()
	if j := waitJob(t, m, id); j.Status != fsm.JobSucceeded {
		t.Fatalf("resumed job = %+v (result %s)", j, j.Result)
	}
	if got, _ := m.State().Zone(nil, "h-2"); got == nil {
		t.Fatal("step two's zone missing")
	}
}
