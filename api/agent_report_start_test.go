package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/hypervisor"
	"github.com/stratus-cloud/stratus/hypervisor/agent"
	"github.com/stratus-cloud/stratus/scheduler"
)

// TestReportFinishesTheStartItCompletes: an agent reports running a VM
// its deploy placed on the host: the one commit of the report makes the
// VM Running, records its event and ends the deploy job with the VM as
// result, so the job runner has nothing left to commit. A VM whose start
// job has not placed it yet (the job's own step is due) is only observed:
// its job stays the runner's.
func TestReportFinishesTheStartItCompletes(t *testing.T) {
	f := newPollFixture(t, 2)
	h := f.hosts[0]
	newVM := func(id, name string) *fsm.VM {
		v := f.vms[h.ID].Copy()
		v.ID, v.Name, v.DisplayName, v.InstanceName = id, name, name, "i-"+name
		v.State, v.Indexes = fsm.VMStarting, fsm.Indexes{}
		return v
	}
	deployed := newVM("aaaaaaaa-2222-4000-8000-000000000001", "deployed")
	early := newVM("aaaaaaaa-2222-4000-8000-000000000002", "early")
	job := func(id, cmd string, v *fsm.VM, params map[string]string) *fsm.AsyncJob {
		params[scheduler.VMParamID] = v.ID
		return &fsm.AsyncJob{ID: id, Cmd: cmd, AccountID: v.AccountID, DomainID: v.DomainID, UserID: v.UserID, Params: params,
			Status: fsm.JobPending, InstanceType: "VirtualMachine", InstanceID: v.ID, Created: fixedNow}
	}
	deployJob := job("bbbbbbbb-2222-4000-8000-000000000001", "deployVirtualMachine", deployed,
		map[string]string{scheduler.VMParamDeploy: "true", scheduler.VMParamPlaced: "true"})
	startJob := job("bbbbbbbb-2222-4000-8000-000000000002", "startVirtualMachine", early, map[string]string{})
	if _, err := f.c.Apply(context.Background(), fsm.TxnRequestType, fsm.TxnRequest{Ops: []fsm.TxnOp{
		fsm.Create(fsm.TableVMs, deployed), fsm.Create(fsm.TableVMs, early),
		fsm.Create(fsm.TableJobs, deployJob), fsm.Create(fsm.TableJobs, startJob)}}); err != nil {
		t.Fatal(err)
	}
	before := f.c.index

	body, err := json.Marshal(agent.Report{HostID: h.ID, VMs: []agent.VMReport{
		{ID: deployed.ID, Power: hypervisor.PowerRunning}, {ID: early.ID, Power: hypervisor.PowerRunning}}})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	f.s.ServeHTTP(rec, agentRequest(context.Background(), h, http.MethodPost, agent.PathReport, body, "report-start-1"))
	if rec.Code != http.StatusOK {
		t.Fatalf("report: %d %s", rec.Code, rec.Body.String())
	}
	if n := f.c.index - before; n != 1 {
		t.Errorf("the report took %d commits, want 1", n)
	}
	st := f.c.State()
	v, _ := fsm.Get[fsm.VM](st, nil, fsm.TableVMs, deployed.ID)
	if v == nil || v.State != fsm.VMRunning || v.ObservedHostID != h.ID || v.ObservedPower != fsm.PowerOn {
		t.Fatalf("deployed VM after the report: %+v", v)
	}
	j, _ := fsm.Get[fsm.AsyncJob](st, nil, fsm.TableJobs, deployJob.ID)
	if j == nil || j.Status != fsm.JobSucceeded || !strings.Contains(string(j.Result), deployed.ID) || j.Completed.IsZero() {
		t.Fatalf("deploy job after the report: %+v", j)
	}
	events, _ := fsm.List[fsm.Event](st, nil, fsm.TableEvents, "create")
	created := 0
	for _, e := range events {
		if e.Type == "VM.CREATE" && e.ResourceID == deployed.ID && e.JobID == deployJob.ID {
			created++
		}
	}
	if created != 1 {
		t.Errorf("%d VM.CREATE events of the deployed VM, want 1", created)
	}
	e, _ := fsm.Get[fsm.VM](st, nil, fsm.TableVMs, early.ID)
	sj, _ := fsm.Get[fsm.AsyncJob](st, nil, fsm.TableJobs, startJob.ID)
	if e == nil || e.State != fsm.VMStarting || e.ObservedPower != fsm.PowerOn || sj == nil || sj.Status != fsm.JobPending {
		t.Fatalf("VM whose start job has not placed it: VM %+v, job %+v; want observed, still Starting, job pending", e, sj)
	}
	// The runner, had it read the deploy job before the report, is
	// refused as stale: the job is finished once.
	late := deployJob.Copy()
	late.Status = fsm.JobFailed
	late.ModifyIndex = before // as read after its creation
	if _, err := f.c.Apply(context.Background(), fsm.TxnRequestType, fsm.TxnRequest{Ops: []fsm.TxnOp{fsm.Update(fsm.TableJobs, late)}}); err == nil {
		t.Error("a job update read before the report was not refused")
	}
}
