package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/stratus-cloud/stratus/fsm"
)

// placedDeploy is what deployVirtualMachine commits when it places the VM
// itself (PlaceNew) against st: the VM on its host, its root volume on its
// pool, the reservations and the job. ok is false when no host fits.
func placedDeploy(t *testing.T, st *fsm.Store, name string) (vmID, jobID string, placed, unplaced []fsm.TxnOp, ok bool) {
	t.Helper()
	vmID, jobID, unplaced = deployOps(name)
	var vm fsm.VM
	var root fsm.Volume
	var job fsm.AsyncJob
	for i, into := range []any{&vm, &root, &job} {
		if err := json.Unmarshal(unplaced[i].Obj, into); err != nil {
			t.Fatal(err)
		}
	}
	reserve, ok, err := PlaceNew(st, &vm, []*fsm.Volume{&root}, job.Params)
	if err != nil {
		t.Fatalf("PlaceNew: %v", err)
	}
	placed = append([]fsm.TxnOp{fsm.Create(fsm.TableVMs, &vm), fsm.Create(fsm.TableVolumes, &root)}, reserve...)
	return vmID, jobID, append(placed, fsm.Create(fsm.TableJobs, &job)), unplaced, ok
}

// TestDeployPlacedByItsCommit: many deploys planned against the same state
// (as concurrent API servers do) commit with their placement; the ones
// whose plan lost the race for a host are refused whole and committed
// unplaced, for the runner to place. Nothing is overbooked, no address is
// shared, the placed ones start without a placement step, and the ones
// that do not fit fail as they always have.
func TestDeployPlacedByItsCommit(t *testing.T) {
	e := newVMEnv(t, 2)
	e.startRunner()
	const n = 12
	st := e.m.State() // every plan reads this one state
	var vmIDs, jobIDs []string
	inline := map[string]bool{}
	for i := range n {
		vmID, jobID, placed, unplaced, ok := placedDeploy(t, st, fmt.Sprintf("burst%d", i))
		vmIDs, jobIDs = append(vmIDs, vmID), append(jobIDs, jobID)
		if ok {
			_, err := e.m.Apply(context.Background(), fsm.TxnRequestType, fsm.TxnRequest{Ops: placed})
			if err == nil {
				inline[jobID] = true
				continue
			}
			var se *fsm.StateError
			if !errors.As(err, &se) || !(errors.Is(se, fsm.ErrStale) || errors.Is(se, fsm.ErrConflict)) {
				t.Fatalf("placed deploy %d: %v, want committed or refused as stale or conflicting", i, err)
			}
		}
		e.apply(unplaced...)
	}
	if len(inline) == 0 || len(inline) == n {
		t.Fatalf("%d of %d deploys committed with their placement; the test means some to win and some to lose the race", len(inline), n)
	}
	ok, full := 0, 0
	ips := map[string]bool{}
	for i, jobID := range jobIDs {
		j := e.wait(jobID)
		v := e.vm(vmIDs[i])
		if j.Status != fsm.JobSucceeded {
			full++
			vmJobFailed(t, j, codeCapacity, "memory free")
			continue
		}
		ok++
		if v.State != fsm.VMRunning || v.HostID == "" || ips[v.IPAddress] {
			t.Errorf("%s: job succeeded but VM is %s on %q with address %q (seen before: %v)", v.Name, v.State, v.HostID, v.IPAddress, ips[v.IPAddress])
		}
		ips[v.IPAddress] = true
		if inline[jobID] && j.Attempts != 1 {
			t.Errorf("%s: placed by its deploy commit, yet its job committed %d steps; want 1 (its end)", v.Name, j.Attempts)
		}
	}
	if ok != 2*fxVMsPerHost || full != n-2*fxVMsPerHost {
		t.Errorf("%d deploys succeeded and %d failed; want %d and %d", ok, full, 2*fxVMsPerHost, n-2*fxVMsPerHost)
	}
	for _, h := range e.hosts {
		e.wantHost(h, fxVMsPerHost)
	}
	e.wantAccounting()
}

// TestPlacedDeployStartsElsewhereWhenItsHostCannot: the host a deploy was
// placed on by its commit reports that it cannot start the VM; the job
// gives that host back and places the VM on another, as for a VM the job
// placed itself.
func TestPlacedDeployStartsElsewhereWhenItsHostCannot(t *testing.T) {
	e := newVMEnv(t, 3)
	vmID, jobID, placed, _, ok := placedDeploy(t, e.m.State(), "web1")
	if !ok {
		t.Fatal("no host fits one small VM")
	}
	var planned fsm.VM
	if err := json.Unmarshal(placed[0].Obj, &planned); err != nil || planned.HostID == "" {
		t.Fatalf("placed VM = %+v (%v); want a host", planned, err)
	}
	bad := planned.HostID
	e.agents.failOn(bad, "no space left")
	e.apply(placed...)
	e.startRunner()
	vmJobOK(t, e.wait(jobID))
	v := e.vm(vmID)
	if e.agents.failedStarts(bad) != 1 || v.State != fsm.VMRunning || v.HostID == bad {
		t.Fatalf("failed starts on %s: %d; VM %s on %s; want one failure there and the VM Running elsewhere", bad, e.agents.failedStarts(bad), v.State, v.HostID)
	}
	e.wantHost(bad, 0)
	e.wantHost(v.HostID, 1)
	e.wantAccounting()
}

// A placed deploy whose VM is stopped before it ever started ends without
// placing it again.
func TestPlacedDeployStoppedBeforeItStartedIsNotPlacedAgain(t *testing.T) {
	e := newVMEnv(t, 2)
	vmID, jobID, placed, _, ok := placedDeploy(t, e.m.State(), "web1")
	if !ok {
		t.Fatal("no host fits one small VM")
	}
	e.agents.hold()
	e.apply(placed...)
	// What a stop that the host confirmed leaves: no host, capacity back.
	v := e.vm(vmID)
	nv := v.Copy()
	nv.HostID, nv.PodID, nv.ClusterID, nv.State, nv.Power = "", "", "", fsm.VMStopped, fsm.PowerOff
	e.apply(fsm.Update(fsm.TableVMs, nv), reserveHost(e.host(v.HostID), v, -1))
	e.startRunner()
	j := e.wait(jobID)
	vmJobFailed(t, j, codeResourceFail, "stopped before it started")
	if v := e.vm(vmID); v.HostID != "" || v.State != fsm.VMStopped {
		t.Errorf("VM after its deploy ended: %s on %q; want Stopped on no host", v.State, v.HostID)
	}
	e.agents.release()
	e.wantAccounting()
}
