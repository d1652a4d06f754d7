package scheduler

import (
	"context"
	"testing"
	"time"

	"github.com/stratus-cloud/stratus/fsm"
)

// TestExpungerRemovesOnlyVMsDestroyedLongEnoughAgo destroys two VMs, moves
// the expunger's clock past the delay for one of them, and checks that
// one is expunged and the other stays recoverable; a second sweep (as by a
// new leader) submits nothing twice.
func TestExpungerRemovesOnlyVMsDestroyedLongEnoughAgo(t *testing.T) {
	e := newVMEnv(t, 1)
	e.startRunner()
	// Running first: a destroy submitted while the deploy's job still
	// works on the VM races it (the API refuses one, busyVM; this test
	// submits jobs directly), and the stop it asks for can be undone by
	// the start.
	old, recent := e.running("old").ID, e.running("recent").ID
	for _, id := range []string{old, recent} {
		vmJobOK(t, e.run("destroyVirtualMachine", id, nil))
	}
	// Backdate the first VM's destruction by two days.
	v := e.vm(old).Copy()
	v.Destroyed = v.Destroyed.Add(-48 * time.Hour)
	e.apply(fsm.Update(fsm.TableVMs, v))

	x := NewExpunger(e.m, nil)
	x.sweep(context.Background())
	x.sweep(context.Background()) // repeated: no second job
	e.eventually("the old VM expunged", func(st *fsm.Store) bool {
		gone, _ := fsm.Get[fsm.VM](st, nil, fsm.TableVMs, old)
		return gone == nil
	})
	if got := e.vm(recent); got == nil || got.State != fsm.VMDestroyed {
		t.Fatalf("recently destroyed VM = %+v, want kept Destroyed", got)
	}
	jobs, _ := fsm.List[fsm.AsyncJob](e.m.State(), nil, fsm.TableJobs, "create")
	n := 0
	for _, j := range jobs {
		if j.Cmd == "expungeVirtualMachine" {
			n++
			if j.InstanceID != old {
				t.Errorf("expunge job for %s, want only %s", j.InstanceID, old)
			}
		}
	}
	if n != 1 {
		t.Fatalf("%d expunge jobs, want 1", n)
	}
	if e.root(old) != nil {
		t.Fatalf("the expunged VM's root volume is still there")
	}
	e.wantAccounting()
}

// TestExpungerLeavesVMsWithAJobAlone: a VM destroyed long ago whose
// expunge an operator already asked for gets no second expunge job from
// the sweep (two jobs would race each other's steps); one with no job
// gets its job.
func TestExpungerLeavesVMsWithAJobAlone(t *testing.T) {
	e := newVMEnv(t, 1) // no runner: jobs stay pending
	var ids []string
	for _, name := range []string{"asked", "forgotten"} {
		id, deployJob, ops := deployOps(name)
		e.apply(ops...)
		j, _ := fsm.Get[fsm.AsyncJob](e.m.State(), nil, fsm.TableJobs, deployJob)
		done := j.Copy()
		done.Status = fsm.JobSucceeded
		v := e.vm(id).Copy()
		v.State, v.Destroyed = fsm.VMDestroyed, time.Now().Add(-48*time.Hour)
		e.apply(fsm.Update(fsm.TableJobs, done), fsm.Update(fsm.TableVMs, v))
		ids = append(ids, id)
	}
	asked := e.submit("expungeVirtualMachine", ids[0], nil)

	NewExpunger(e.m, nil).sweep(context.Background())
	for i, id := range ids {
		jobs, err := fsm.List[fsm.AsyncJob](e.m.State(), nil, fsm.TableJobs, "pending_instance", id)
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs) != 1 || (i == 0 && jobs[0].ID != asked) {
			t.Errorf("VM %d: %d pending jobs (%+v), want exactly one (the operator's for the first)", i, len(jobs), jobs)
		}
	}
}
