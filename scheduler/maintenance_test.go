package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"

	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/hypervisor/fence"
)

// startHostRunner starts a job runner with the VM and host jobs, power
// actions going to run.
func (e *vmEnv) startHostRunner(run fence.Runner) *Runner {
	r := NewRunner(e.m, hclog.New(&hclog.LoggerOptions{Output: vmTestLog{e.t}, Level: hclog.Warn}))
	RegisterVMJobs(r)
	registerHostJobs(r, run)
	_ = r.Establish(context.Background())
	e.t.Cleanup(r.Revoke)
	return r
}

// setResourceState commits a host's resource state, as updateHost or
// cancelHostMaintenance does.
func (e *vmEnv) setResourceState(hostID, state string) {
	e.t.Helper()
	h := e.host(hostID).Copy()
	h.ResourceState = state
	e.apply(fsm.Update(fsm.TableHosts, h))
}

// prepare commits what prepareHostForMaintenance does: the host
// PrepareForMaintenance and the job, in one commit.
func (e *vmEnv) prepare(hostID string) string {
	e.t.Helper()
	h := e.host(hostID).Copy()
	h.ResourceState = fsm.ResourceStatePrepareMaintenance
	j := &fsm.AsyncJob{ID: uuid.NewString(), Cmd: CmdPrepareMaintenance, AccountID: "a-admin", DomainID: fxDomain, UserID: "u-admin",
		Params: map[string]string{HostParamID: hostID}, Status: fsm.JobPending, InstanceType: "Host", InstanceID: hostID}
	e.apply(fsm.Update(fsm.TableHosts, h), fsm.Create(fsm.TableJobs, j))
	return j.ID
}

// fillHost runs n VMs on host 1 only, the others disabled meanwhile.
func (e *vmEnv) fillHost(n int, prefix string) []*fsm.VM {
	e.t.Helper()
	for _, h := range e.hosts[1:] {
		e.setResourceState(h, fsm.ResourceStateDisabled)
	}
	var vms []*fsm.VM
	for i := range n {
		v := e.running(fmt.Sprintf("%s%d", prefix, i))
		if v.HostID != e.hosts[0] {
			e.t.Fatalf("VM %s went to %s", v.Name, v.HostID)
		}
		vms = append(vms, v)
	}
	for _, h := range e.hosts[1:] {
		e.setResourceState(h, fsm.ResourceStateEnabled)
	}
	return vms
}

func (e *vmEnv) vmsOn(hostID string) []*fsm.VM {
	e.t.Helper()
	vms, err := fsm.List[fsm.VM](e.m.State(), nil, fsm.TableVMs, "host", hostID)
	if err != nil {
		e.t.Fatal(err)
	}
	return vms
}

// jobsOf lists the jobs of a command.
func (e *vmEnv) jobsOf(cmd string) []*fsm.AsyncJob {
	all, _ := fsm.List[fsm.AsyncJob](e.m.State(), nil, fsm.TableJobs, "id")
	var out []*fsm.AsyncJob
	for _, j := range all {
		if j.Cmd == cmd {
			out = append(out, j)
		}
	}
	return out
}

func (e *vmEnv) hostEvents(hostID string) []*fsm.Event {
	evs, _ := fsm.List[fsm.Event](e.m.State(), nil, fsm.TableEvents, "id")
	var out []*fsm.Event
	for _, ev := range evs {
		if ev.ResourceID == hostID {
			out = append(out, ev)
		}
	}
	return out
}

func TestMaintenanceMovesEveryVMOff(t *testing.T) {
	e := newVMEnv(t, 3)
	e.startHostRunner(nil)
	source := e.hosts[0]
	vms := e.fillHost(4, "web")
	vmJobOK(t, e.run("stopVirtualMachine", vms[3].ID, nil)) // prefers source for its next start
	if v := e.vm(vms[3].ID); v.LastHostID != source {
		t.Fatalf("stopped VM's last host %q, want %s", v.LastHostID, source)
	}

	// While the agents are held no migration can end: at most
	// maintenanceParallel run at once.
	e.agents.hold()
	jobID := e.prepare(source)
	e.jobAt(jobID, "evacuating")
	e.stillPending(jobID, 100*time.Millisecond)
	if n := len(e.jobsOf(cmdMigrateVM)); n != maintenanceParallel {
		t.Errorf("%d migrations started at once, want %d", n, maintenanceParallel)
	}
	e.agents.release()

	j := e.wait(jobID)
	vmJobOK(t, j)
	if h := e.host(source); h.ResourceState != fsm.ResourceStateMaintenance {
		t.Errorf("host is %s, want Maintenance", h.ResourceState)
	}
	if left := e.vmsOn(source); len(left) != 0 {
		t.Errorf("%d VMs still on the host", len(left))
	}
	for _, v := range vms[:3] {
		if got := e.vm(v.ID); got.State != fsm.VMRunning || got.HostID == source || got.HostID == "" {
			t.Errorf("VM %s is %s on %q; want Running elsewhere", v.Name, got.State, got.HostID)
		}
	}
	if v := e.vm(vms[3].ID); v.State != fsm.VMStopped || v.LastHostID != "" {
		t.Errorf("stopped VM = %s, last host %q; want Stopped with no preference", v.State, v.LastHostID)
	}
	e.wantHost(source, 0)
	e.wantAccounting()
	if n := len(e.jobsOf(cmdMigrateVM)); n != 3 {
		t.Errorf("%d migration jobs, want one per running VM (3)", n)
	}
	var res map[string]map[string]any
	if err := json.Unmarshal(j.Result, &res); err != nil || res["host"]["id"] != source || res["host"]["resourcestate"] != fsm.ResourceStateMaintenance {
		t.Errorf("result %s (%v)", j.Result, err)
	}
	if evs := e.hostEvents(source); !slices.ContainsFunc(evs, func(ev *fsm.Event) bool {
		return ev.Type == "MAINT.PREPARE" && ev.Level == fsm.EventInfo && ev.JobID == jobID
	}) {
		t.Errorf("no MAINT.PREPARE event: %+v", evs)
	}

	// The allocator keeps off the host now.
	if v := e.running("after"); v.HostID == source {
		t.Error("a new VM went to the host in maintenance")
	}
}

func TestMaintenanceOfAnEmptyHost(t *testing.T) {
	e := newVMEnv(t, 2)
	e.startHostRunner(nil)
	vmJobOK(t, e.wait(e.prepare(e.hosts[1])))
	if h := e.host(e.hosts[1]); h.ResourceState != fsm.ResourceStateMaintenance {
		t.Errorf("host is %s, want Maintenance", h.ResourceState)
	}
}

func TestMaintenanceErrorWhenAVMCannotMove(t *testing.T) {
	e := newVMEnv(t, 2)
	e.startHostRunner(nil)
	source, other := e.hosts[0], e.hosts[1]
	stuck := e.fillHost(fxVMsPerHost, "db")
	for i := range fxVMsPerHost { // and the other host full too
		if v := e.running(fmt.Sprintf("app%d", i)); v.HostID != other {
			t.Fatalf("VM went to %s", v.HostID)
		}
	}
	jobID := e.prepare(source)
	text := vmJobFailed(t, e.wait(jobID), codeResourceFail, "host kvm-"+source+" cannot enter maintenance", stuck[0].Name, "no host in zone")
	if h := e.host(source); h.ResourceState != fsm.ResourceStateErrorInMaintenance {
		t.Errorf("host is %s, want ErrorInMaintenance", h.ResourceState)
	}
	if strings.Count(text, "cannot leave it") != maintenanceParallel {
		t.Errorf("error %q should name the %d VMs whose migrations failed", text, maintenanceParallel)
	}
	for _, v := range stuck {
		if got := e.vm(v.ID); got.State != fsm.VMRunning || got.HostID != source || got.MigrateTo != "" {
			t.Errorf("VM %s is %s on %q (to %q); want Running where it was", v.Name, got.State, got.HostID, got.MigrateTo)
		}
	}
	e.wantAccounting()
	if evs := e.hostEvents(source); !slices.ContainsFunc(evs, func(ev *fsm.Event) bool {
		return ev.Type == "MAINT.PREPARE" && ev.Level == fsm.EventError && strings.Contains(ev.Description, stuck[0].Name)
	}) {
		t.Errorf("no error event naming the VM: %+v", evs)
	}
}

func TestMaintenanceCalledOff(t *testing.T) {
	e := newVMEnv(t, 2)
	e.startHostRunner(nil)
	e.fillHost(1, "web")
	e.agents.hold()
	jobID := e.prepare(e.hosts[0])
	e.jobAt(jobID, "evacuating")
	e.setResourceState(e.hosts[0], fsm.ResourceStateEnabled) // cancelHostMaintenance
	vmJobFailed(t, e.wait(jobID), codeResourceFail, "called off", "Enabled")
	e.agents.release()
	for _, j := range e.jobsOf(cmdMigrateVM) { // the migration under way still ends
		vmJobOK(t, e.wait(j.ID))
	}
	e.wantAccounting()
}

// TestMaintenanceResumesOnANewLeader stops the runner while migrations are
// under way; the next one finishes the job without starting them again.
func TestMaintenanceResumesOnANewLeader(t *testing.T) {
	e := newVMEnv(t, 3)
	first := e.startHostRunner(nil)
	e.fillHost(3, "web")
	e.agents.hold()
	jobID := e.prepare(e.hosts[0])
	e.jobAt(jobID, "evacuating")
	first.Revoke()
	e.agents.release()
	e.startHostRunner(nil)
	vmJobOK(t, e.wait(jobID))
	if n := len(e.jobsOf(cmdMigrateVM)); n != 3 {
		t.Errorf("%d migration jobs, want 3", n)
	}
	if left := e.vmsOn(e.hosts[0]); len(left) != 0 {
		t.Errorf("%d VMs still on the host", len(left))
	}
	e.wantAccounting()
}

// fakeIPMI answers ipmitool's chassis power commands.
type fakeIPMI struct {
	mu    sync.Mutex
	argvs []string
	envs  []string
	power string
}

func (f *fakeIPMI) run(_ context.Context, argv, env []string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.argvs = append(f.argvs, strings.Join(argv, " "))
	f.envs = append(f.envs, strings.Join(env, " "))
	switch verb := argv[len(argv)-1]; verb {
	case "status":
		return []byte("Chassis Power is " + f.power), nil
	case "off", "soft":
		f.power = "off"
	case "on", "cycle", "reset":
		f.power = "on"
	}
	return nil, nil
}

func TestPowerActionJob(t *testing.T) {
	e := newVMEnv(t, 1)
	bmc := &fakeIPMI{power: "on"}
	e.startHostRunner(bmc.run)
	hostID := e.hosts[0]
	submit := func(action string) *fsm.AsyncJob {
		j := &fsm.AsyncJob{ID: uuid.NewString(), Cmd: CmdPowerAction, AccountID: "a-admin", DomainID: fxDomain, UserID: "u-admin",
			Params: map[string]string{HostParamID: hostID, HostParamAction: action, HostParamTimeout: "5"}, Status: fsm.JobPending,
			InstanceType: "Host", InstanceID: hostID}
		e.apply(fsm.Create(fsm.TableJobs, j))
		return e.wait(j.ID)
	}
	vmJobFailed(t, submit("STATUS"), codeParam, "no out-of-band management")

	h := e.host(hostID).Copy()
	h.OutOfBand = &fsm.OutOfBand{Driver: "ipmitool", Address: "10.9.0.5", Port: 623, Username: "admin", Password: "bmc-Secret"}
	e.apply(fsm.Update(fsm.TableHosts, h))
	vmJobFailed(t, submit("STATUS"), codeParam, "disabled")

	h = e.host(hostID).Copy()
	h.OutOfBand.Enabled = true
	e.apply(fsm.Update(fsm.TableHosts, h))
	j := submit("OFF")
	vmJobOK(t, j)
	if got := e.host(hostID).OutOfBand.PowerState; got != fence.PowerOff {
		t.Errorf("recorded power state %q, want Off", got)
	}
	if strings.Contains(string(j.Result), "bmc-Secret") {
		t.Fatalf("the result shows the password: %s", j.Result)
	}
	var res map[string]map[string]any
	if err := json.Unmarshal(j.Result, &res); err != nil || res["outofbandmanagement"]["powerstate"] != "Off" ||
		res["outofbandmanagement"]["action"] != "OFF" || res["outofbandmanagement"]["hostid"] != hostID {
		t.Errorf("result %s (%v)", j.Result, err)
	}
	bmc.mu.Lock()
	for i, a := range bmc.argvs {
		if strings.Contains(a, "bmc-Secret") || !strings.HasPrefix(a, "ipmitool -I lanplus -H 10.9.0.5 -p 623 -U admin -E chassis power ") {
			t.Errorf("ipmitool argv %q", a)
		}
		if bmc.envs[i] != "IPMI_PASSWORD=bmc-Secret" {
			t.Errorf("ipmitool env %q", bmc.envs[i])
		}
	}
	bmc.mu.Unlock()
	vmJobFailed(t, submit("EXPLODE"), codeResourceFail, "unknown power action")
	vmJobOK(t, submit("ON"))
	if got := e.host(hostID).OutOfBand.PowerState; got != fence.PowerOn {
		t.Errorf("recorded power state %q, want On", got)
	}
}
