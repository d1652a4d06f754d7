package scheduler

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/scheduler/placement"
)

// Tests of the VM jobs on a memCluster, with fakeAgents playing the hosts'
// agents (vm_fixture_test.go).

func TestDeployPlacesAndStartsVM(t *testing.T) {
	e := newVMEnv(t, 2)
	e.startRunner()
	poolBefore := e.pool().AllocatedBytes

	id, jobID := e.deploy("web1")
	j := e.wait(jobID)
	vmJobOK(t, j)
	var res map[string]map[string]string
	if err := json.Unmarshal(j.Result, &res); err != nil || len(res) != 1 || len(res["virtualmachine"]) != 1 || res["virtualmachine"]["id"] != id {
		t.Errorf("job result = %s (%v); want {\"virtualmachine\":{\"id\":%q}}", j.Result, err, id)
	}

	v := e.vm(id)
	if v.State != fsm.VMRunning || v.Power != fsm.PowerOn {
		t.Errorf("VM state %s power %s; want Running, Running", v.State, v.Power)
	}
	h := e.host(v.HostID) // fails the test when the VM names no existing host
	if v.PodID != h.PodID || v.ClusterID != h.ClusterID {
		t.Errorf("VM in pod %s cluster %s; its host is in pod %s cluster %s", v.PodID, v.ClusterID, h.PodID, h.ClusterID)
	}
	e.wantHost(v.HostID, 1)
	for _, other := range e.hosts {
		if other != v.HostID {
			e.wantHost(other, 0)
		}
	}
	if got := e.pool().AllocatedBytes - poolBefore; got != fxRootSize {
		t.Errorf("pool allocation grew by %d bytes; want the root volume's %d", got, fxRootSize)
	}
	if root := e.root(id); root == nil || root.PoolID != fxPool {
		t.Errorf("root volume = %+v; want it on pool %s", root, fxPool)
	}

	subnet := netip.MustParsePrefix(fxGuestCIDR)
	ip, err := netip.ParseAddr(v.IPAddress)
	if err != nil || !subnet.Contains(ip) || ip == subnet.Addr() || ip.String() == "10.1.0.1" || ip.String() == "10.1.0.255" {
		t.Errorf("VM address %q; want a host address of %s other than the gateway", v.IPAddress, subnet)
	}
	if len(v.NICs) != 1 {
		t.Fatalf("VM NICs = %+v; want one", v.NICs)
	}
	if n := v.NICs[0]; n.IPAddress != v.IPAddress || n.Gateway != "10.1.0.1" || n.Netmask != "255.255.255.0" || !n.IsDefault {
		t.Errorf("nic[0] = %+v; want the VM's address %s, gateway 10.1.0.1, netmask 255.255.255.0, default", n, v.IPAddress)
	}
	e.wantAccounting()
}

func TestDeployWithStartVMFalseLeavesVMStopped(t *testing.T) {
	e := newVMEnv(t, 2)
	e.startRunner()
	id, _, ops := deployOps("cold")
	// As the API does for startvm=false: the VM is recorded Stopped.
	vm := &fsm.VM{}
	_ = json.Unmarshal(ops[0].Obj, vm)
	vm.State = fsm.VMStopped
	ops[0] = fsm.Create(fsm.TableVMs, vm)
	j := newJob("deployVirtualMachine", id, map[string]string{VMParamDeploy: "true", VMParamStartVM: "false"})
	ops[2] = fsm.Create(fsm.TableJobs, j)
	e.apply(ops...)
	vmJobOK(t, e.wait(j.ID))
	if v := e.vm(id); v.State != fsm.VMStopped || v.HostID != "" {
		t.Errorf("VM = state %s host %q; want Stopped on no host", v.State, v.HostID)
	}
	for _, h := range e.hosts {
		e.wantHost(h, 0)
	}
	e.wantAccounting()
}

func TestStopStartReboot(t *testing.T) {
	e := newVMEnv(t, 2)
	e.startRunner()
	v := e.running("web1")
	first := v.HostID

	vmJobOK(t, e.run("stopVirtualMachine", v.ID, map[string]string{VMParamForced: "false"}))
	v = e.vm(v.ID)
	if v.State != fsm.VMStopped || v.HostID != "" || v.LastHostID != first || v.Power != fsm.PowerOff {
		t.Errorf("stopped VM = state %s host %q last host %q power %s; want Stopped, no host, last host %s, power off",
			v.State, v.HostID, v.LastHostID, v.Power, first)
	}
	for _, h := range e.hosts {
		e.wantHost(h, 0)
	}
	poolAfterStop := e.pool().AllocatedBytes
	if poolAfterStop != fxRootSize {
		t.Errorf("pool allocates %d bytes after stop; the stopped VM's root volume still takes %d", poolAfterStop, fxRootSize)
	}

	// Stopping a stopped VM is a no-op success.
	vmJobOK(t, e.run("stopVirtualMachine", v.ID, nil))

	vmJobOK(t, e.run("startVirtualMachine", v.ID, nil))
	v = e.vm(v.ID)
	if v.State != fsm.VMRunning || v.HostID == "" || v.ObservedHostID != v.HostID || v.ObservedPower != fsm.PowerOn {
		t.Errorf("restarted VM = %+v; want Running on a host that reports it on", v)
	}
	e.wantHost(v.HostID, 1)
	if got := e.pool().AllocatedBytes; got != poolAfterStop {
		t.Errorf("start changed the pool allocation from %d to %d; the root volume was placed already", poolAfterStop, got)
	}
	e.wantAccounting()

	// Starting a running VM succeeds: it is already what was asked.
	vmJobOK(t, e.run("startVirtualMachine", v.ID, nil))

	// Reboot: the job waits for the agent to report the new generation.
	e.agents.hold()
	jobID := e.submit("rebootVirtualMachine", v.ID, nil)
	e.jobAt(jobID, "rebooting")
	if got := e.vm(v.ID); got.RebootGen != v.RebootGen+1 {
		t.Fatalf("reboot asked for generation %d; want %d", got.RebootGen, v.RebootGen+1)
	}
	e.stillPending(jobID, 300*time.Millisecond)
	e.agents.release()
	vmJobOK(t, e.wait(jobID))
	got := e.vm(v.ID)
	if got.ObservedRebootGen != v.RebootGen+1 || got.State != fsm.VMRunning || got.HostID != v.HostID {
		t.Errorf("rebooted VM = gen %d observed %d state %s host %s; want generation %d observed, Running on %s",
			got.RebootGen, got.ObservedRebootGen, got.State, got.HostID, v.RebootGen+1, v.HostID)
	}
	e.wantHost(v.HostID, 1)

	// A stopped VM cannot be rebooted.
	vmJobOK(t, e.run("stopVirtualMachine", v.ID, nil))
	vmJobFailed(t, e.run("rebootVirtualMachine", v.ID, nil), codeParam, "Stopped")
}

func TestMigrate(t *testing.T) {
	e := newVMEnv(t, 2)
	e.startRunner()
	v := e.running("web1")
	source := v.HostID

	vmJobOK(t, e.run("migrateVirtualMachine", v.ID, nil))
	got := e.vm(v.ID)
	if got.State != fsm.VMRunning || got.HostID == source || got.HostID == "" || got.LastHostID != source || got.MigrateTo != "" {
		t.Fatalf("migrated VM = state %s host %q last %q migrate-to %q; want Running on the other host, last host %s",
			got.State, got.HostID, got.LastHostID, got.MigrateTo, source)
	}
	e.wantHost(source, 0)
	e.wantHost(got.HostID, 1)
	if got.IPAddress != v.IPAddress {
		t.Errorf("migration changed the VM's address from %s to %s", v.IPAddress, got.IPAddress)
	}
	e.wantAccounting()

	// To the host it runs on: refused, nothing changes.
	target := got.HostID
	vmJobFailed(t, e.run("migrateVirtualMachine", v.ID, map[string]string{VMParamHost: target}), codeParam, "already runs on host")
	if got := e.vm(v.ID); got.State != fsm.VMRunning || got.HostID != target || got.MigrateTo != "" {
		t.Errorf("after a refused migration the VM is %s on %q (migrating to %q); want Running on %s", got.State, got.HostID, got.MigrateTo, target)
	}
	e.wantHost(target, 1)
	e.wantHost(source, 0)

	// Back to the source, named.
	vmJobOK(t, e.run("migrateVirtualMachine", v.ID, map[string]string{VMParamHost: source}))
	if got := e.vm(v.ID); got.HostID != source || got.State != fsm.VMRunning {
		t.Errorf("VM is %s on %q; want Running on %s", got.State, got.HostID, source)
	}
	e.wantHost(source, 1)
	e.wantHost(target, 0)
	e.wantAccounting()
}

func TestMigrateWithNoOtherHostFails(t *testing.T) {
	e := newVMEnv(t, 1)
	e.startRunner()
	v := e.running("web1")
	vmJobFailed(t, e.run("migrateVirtualMachine", v.ID, nil), codeCapacity, "avoided")
	if got := e.vm(v.ID); got.State != fsm.VMRunning || got.HostID != v.HostID || got.MigrateTo != "" {
		t.Errorf("VM is %s on %q (to %q); want Running where it was", got.State, got.HostID, got.MigrateTo)
	}
	e.wantHost(v.HostID, 1)
}

func TestDestroy(t *testing.T) {
	t.Run("expunge at once", func(t *testing.T) {
		e := newVMEnv(t, 2)
		e.startRunner()
		poolBefore := e.pool().AllocatedBytes
		v := e.running("web1")
		root := e.root(v.ID)
		j := e.run("destroyVirtualMachine", v.ID, map[string]string{VMParamExpunge: "true"})
		vmJobOK(t, j)
		if got := e.vm(v.ID); got != nil {
			t.Errorf("VM still there after destroy with expunge: %+v", got)
		}
		if vol, _ := fsm.Get[fsm.Volume](e.m.State(), nil, fsm.TableVolumes, root.ID); vol != nil {
			t.Errorf("root volume still there: %+v", vol)
		}
		if got := e.pool().AllocatedBytes; got != poolBefore {
			t.Errorf("pool allocates %d bytes after expunge; want %d as before the deploy", got, poolBefore)
		}
		for _, h := range e.hosts {
			e.wantHost(h, 0)
		}
		e.wantAccounting()
	})
	t.Run("destroy then expunge", func(t *testing.T) {
		e := newVMEnv(t, 2)
		e.startRunner()
		poolBefore := e.pool().AllocatedBytes
		v := e.running("web1")
		root := e.root(v.ID)

		// Expunge refuses a VM that is not destroyed.
		vmJobFailed(t, e.run("expungeVirtualMachine", v.ID, nil), codeParam, "destroy it first")

		vmJobOK(t, e.run("destroyVirtualMachine", v.ID, map[string]string{VMParamExpunge: "false"}))
		got := e.vm(v.ID)
		if got == nil || got.State != fsm.VMDestroyed || got.HostID != "" || got.Destroyed.IsZero() {
			t.Fatalf("destroyed VM = %+v; want it kept, Destroyed, on no host", got)
		}
		for _, h := range e.hosts {
			e.wantHost(h, 0)
		}
		if vol := e.root(v.ID); vol == nil || vol.PoolID != fxPool {
			t.Errorf("root volume of the destroyed VM = %+v; want it kept on its pool until expunged", vol)
		}
		e.wantAccounting()

		j := e.run("expungeVirtualMachine", v.ID, nil)
		vmJobOK(t, j)
		if string(j.Result) != `{"success":true}` {
			t.Errorf("expunge result = %s", j.Result)
		}
		if got := e.vm(v.ID); got != nil {
			t.Errorf("VM still there after expunge: %+v", got)
		}
		if vol, _ := fsm.Get[fsm.Volume](e.m.State(), nil, fsm.TableVolumes, root.ID); vol != nil {
			t.Errorf("root volume still there after expunge: %+v", vol)
		}
		if got := e.pool().AllocatedBytes; got != poolBefore {
			t.Errorf("pool allocates %d bytes after expunge; want %d", got, poolBefore)
		}
		// A later job on the expunged VM says it is gone.
		vmJobFailed(t, e.run("startVirtualMachine", v.ID, nil), codeParam, "no longer exists")
	})
}

func TestDeployUntilFull(t *testing.T) {
	e := newVMEnv(t, 3)
	e.startRunner()
	for i := range 3 * fxVMsPerHost {
		e.running(fmt.Sprintf("vm%d", i))
	}
	for _, h := range e.hosts {
		e.wantHost(h, fxVMsPerHost)
	}
	id, jobID := e.deploy("one-too-many")
	vmJobFailed(t, e.wait(jobID), codeCapacity, "no host in zone "+fxZoneName, "2048 MiB", "3 hosts have at most 0 MiB of memory free")
	v := e.vm(id)
	if v.State != fsm.VMError || v.HostID != "" || v.IPAddress != "" {
		t.Errorf("VM that did not fit = state %s host %q address %q; want Error on no host, no address", v.State, v.HostID, v.IPAddress)
	}
	if root := e.root(id); root == nil || root.PoolID != "" {
		t.Errorf("root volume of the VM that did not fit = %+v; want it unplaced", root)
	}
	for _, h := range e.hosts {
		e.wantHost(h, fxVMsPerHost)
	}
	e.wantAccounting()

	// Stopping a VM makes room for exactly one more, on its host.
	vms, _ := fsm.List[fsm.VM](e.m.State(), nil, fsm.TableVMs, "host", fxHostID(2))
	vmJobOK(t, e.run("stopVirtualMachine", vms[0].ID, nil))
	if v := e.running("fits-again"); v.HostID != fxHostID(2) {
		t.Errorf("new VM went to %s; only %s has room", v.HostID, fxHostID(2))
	}
	for _, h := range e.hosts {
		e.wantHost(h, fxVMsPerHost)
	}
	e.wantAccounting()
}

// TestConcurrentDeploysNeverOverbook deploys 12 VMs at once on two hosts
// that hold 8: the runner works the 12 jobs concurrently, the placements
// race for the same hosts, pool and addresses, and compare-and-set must
// keep every figure exact.
func TestConcurrentDeploysNeverOverbook(t *testing.T) {
	e := newVMEnv(t, 2)
	const n = 12
	var ops []fsm.TxnOp
	var vmIDs, jobIDs []string
	for i := range n {
		id, jobID, more := deployOps(fmt.Sprintf("burst%d", i))
		vmIDs, jobIDs, ops = append(vmIDs, id), append(jobIDs, jobID), append(ops, more...)
	}
	e.apply(ops...) // all pending before the runner starts: it takes them all at once
	e.startRunner()

	ok, full := 0, 0
	ips := map[string]string{}
	subnet := netip.MustParsePrefix(fxGuestCIDR)
	for i, jobID := range jobIDs {
		j := e.wait(jobID)
		v := e.vm(vmIDs[i])
		switch j.Status {
		case fsm.JobSucceeded:
			ok++
			if v.State != fsm.VMRunning || v.HostID == "" {
				t.Errorf("%s: job succeeded but VM is %s on %q", v.Name, v.State, v.HostID)
			}
			ip, err := netip.ParseAddr(v.IPAddress)
			if err != nil || !subnet.Contains(ip) {
				t.Errorf("%s: address %q outside %s", v.Name, v.IPAddress, subnet)
			}
			if other, dup := ips[v.IPAddress]; dup {
				t.Errorf("%s and %s share address %s", other, v.Name, v.IPAddress)
			}
			ips[v.IPAddress] = v.Name
		default:
			full++
			vmJobFailed(t, j, codeCapacity, "memory free")
			if v.State != fsm.VMError || v.HostID != "" {
				t.Errorf("%s: did not fit but is %s on %q", v.Name, v.State, v.HostID)
			}
		}
	}
	if ok != 2*fxVMsPerHost || full != n-2*fxVMsPerHost {
		t.Errorf("%d deploys succeeded and %d failed; want %d and %d", ok, full, 2*fxVMsPerHost, n-2*fxVMsPerHost)
	}
	for _, h := range e.hosts {
		e.wantHost(h, fxVMsPerHost)
	}
	if got := e.pool().AllocatedBytes; got != int64(ok)*fxRootSize {
		t.Errorf("pool allocates %d bytes; want %d root volumes' worth", got, ok)
	}
	e.wantAccounting()
}

// TestStartRetriesOnAnotherHost: the agent of the first host chosen cannot
// start the VM; the job gives that host's capacity back and starts the VM
// elsewhere.
func TestStartRetriesOnAnotherHost(t *testing.T) {
	e := newVMEnv(t, 3)
	id, jobID := e.deploy("web1")
	// The host placement picks first for this VM is the one that fails.
	st := e.m.State()
	v0 := e.vm(id)
	vols, _ := vmVolumes(st, id)
	req, err := PlacementRequest(st, v0, vols)
	if err != nil {
		t.Fatal(err)
	}
	first, err := placement.Place(NewView(st), req)
	if err != nil {
		t.Fatal(err)
	}
	bad := first.HostID
	e.agents.failOn(bad, "no space left")
	e.startRunner()
	vmJobOK(t, e.wait(jobID))
	if e.agents.failedStarts(bad) != 1 {
		t.Fatalf("host %s reported %d failed starts; the test means the VM to be tried there first, once", bad, e.agents.failedStarts(bad))
	}
	v := e.vm(id)
	if v.State != fsm.VMRunning || v.HostID == "" || v.HostID == bad || v.ObservedError != "" {
		t.Errorf("VM = state %s host %q error %q; want Running on a host other than %s", v.State, v.HostID, v.ObservedError, bad)
	}
	e.wantHost(bad, 0)
	e.wantHost(v.HostID, 1)
	if got := e.pool().AllocatedBytes; got != fxRootSize {
		t.Errorf("pool allocates %d bytes; want the root volume once, %d", got, fxRootSize)
	}
	e.wantAccounting()
}

// TestStartFailsOnEveryHost: when no agent can start the VM the job gives
// up after maxStartHosts hosts and no host keeps capacity for the VM.
func TestStartFailsOnEveryHost(t *testing.T) {
	t.Run("deploy", func(t *testing.T) {
		e := newVMEnv(t, maxStartHosts+1)
		e.startRunner()
		for _, h := range e.hosts {
			e.agents.failOn(h, "no space left")
		}
		id, jobID := e.deploy("web1")
		vmJobFailed(t, e.wait(jobID), codeResourceFail, fmt.Sprintf("could not start on %d hosts", maxStartHosts), "no space left")
		tried := 0
		for _, h := range e.hosts {
			tried += e.agents.failedStarts(h)
			e.wantHost(h, 0)
		}
		if tried != maxStartHosts {
			t.Errorf("the VM was tried on %d hosts; want %d", tried, maxStartHosts)
		}
		if v := e.vm(id); v.State != fsm.VMError || v.HostID != "" || v.Power != fsm.PowerOff {
			t.Errorf("VM = state %s host %q power %s; want Error on no host, off", v.State, v.HostID, v.Power)
		}
		e.wantAccounting()
	})
	t.Run("start", func(t *testing.T) {
		e := newVMEnv(t, maxStartHosts)
		e.startRunner()
		v := e.running("web1")
		vmJobOK(t, e.run("stopVirtualMachine", v.ID, nil))
		for _, h := range e.hosts {
			e.agents.failOn(h, "no space left")
		}
		vmJobFailed(t, e.run("startVirtualMachine", v.ID, nil), codeResourceFail, fmt.Sprintf("could not start on %d hosts", maxStartHosts))
		if got := e.vm(v.ID); got.State != fsm.VMStopped || got.HostID != "" || got.Power != fsm.PowerOff {
			t.Errorf("VM = state %s host %q power %s; want Stopped on no host, off", got.State, got.HostID, got.Power)
		}
		for _, h := range e.hosts {
			e.wantHost(h, 0)
		}
		e.wantAccounting()
	})
}

// TestResumedJobsFinishOnce stops the runner (leadership lost) while a job
// waits for an agent and starts another (the next leader): the job ends
// as if it had run on one, with capacity counted once.
func TestResumedJobsFinishOnce(t *testing.T) {
	t.Run("deploy", func(t *testing.T) {
		e := newVMEnv(t, 2)
		first := e.startRunner()
		e.agents.hold()
		id, jobID := e.deploy("web1")
		e.jobAt(jobID, "starting")
		placed := e.vm(id)
		if placed.HostID == "" || placed.State != fsm.VMStarting {
			t.Fatalf("after placement the VM is %s on %q", placed.State, placed.HostID)
		}
		first.Revoke()
		e.wantHost(placed.HostID, 1)

		e.startRunner()
		e.agents.release()
		vmJobOK(t, e.wait(jobID))
		v := e.vm(id)
		if v.State != fsm.VMRunning || v.HostID != placed.HostID || v.IPAddress != placed.IPAddress {
			t.Errorf("VM = %s on %q at %s; want Running where the first leader placed it, %s at %s",
				v.State, v.HostID, v.IPAddress, placed.HostID, placed.IPAddress)
		}
		e.wantHost(v.HostID, 1)
		if got := e.pool().AllocatedBytes; got != fxRootSize {
			t.Errorf("pool allocates %d bytes; want the root volume once, %d", got, fxRootSize)
		}
		events, _ := fsm.List[fsm.Event](e.m.State(), nil, fsm.TableEvents, "id")
		created := 0
		for _, ev := range events {
			if ev.ResourceID == id && ev.Type == "VM.CREATE" {
				created++
			}
		}
		if created != 1 {
			t.Errorf("%d VM.CREATE events for the VM; want 1", created)
		}
		e.wantAccounting()
	})
	t.Run("migrate", func(t *testing.T) {
		e := newVMEnv(t, 2)
		first := e.startRunner()
		v := e.running("web1")
		e.agents.hold()
		jobID := e.submit("migrateVirtualMachine", v.ID, nil)
		e.jobAt(jobID, "migrating")
		first.Revoke()
		e.wantAccounting() // source and target both reserved meanwhile

		e.startRunner()
		e.agents.release()
		vmJobOK(t, e.wait(jobID))
		got := e.vm(v.ID)
		if got.State != fsm.VMRunning || got.HostID == v.HostID || got.MigrateTo != "" {
			t.Errorf("VM = %s on %q (to %q); want Running on the other host", got.State, got.HostID, got.MigrateTo)
		}
		e.wantHost(v.HostID, 0)
		e.wantHost(got.HostID, 1)
		e.wantAccounting()
	})
	t.Run("stop", func(t *testing.T) {
		e := newVMEnv(t, 2)
		first := e.startRunner()
		v := e.running("web1")
		e.agents.hold()
		jobID := e.submit("stopVirtualMachine", v.ID, nil)
		e.jobAt(jobID, "stopping")
		first.Revoke()
		e.wantHost(v.HostID, 1)

		e.startRunner()
		e.agents.release()
		vmJobOK(t, e.wait(jobID))
		if got := e.vm(v.ID); got.State != fsm.VMStopped || got.HostID != "" {
			t.Errorf("VM = %s on %q; want Stopped", got.State, got.HostID)
		}
		for _, h := range e.hosts {
			e.wantHost(h, 0)
		}
		e.wantAccounting()
	})
}

// TestConcurrentStartsNeverOverbook starts 12 stopped VMs at once on the
// two enabled hosts that hold 8. Their volumes are placed already, so
// nothing but the hosts' own compare-and-set keeps two starts from taking
// the same last slot.
func TestConcurrentStartsNeverOverbook(t *testing.T) {
	e := newVMEnv(t, 3)
	e.startRunner()
	const n = 3 * fxVMsPerHost
	var vms []*fsm.VM
	for i := range n {
		vms = append(vms, e.running(fmt.Sprintf("vm%d", i)))
	}
	var stops []string
	for _, v := range vms {
		stops = append(stops, e.submit("stopVirtualMachine", v.ID, nil))
	}
	for _, id := range stops {
		vmJobOK(t, e.wait(id))
	}
	h3 := e.host(fxHostID(3))
	h3.ResourceState = fsm.ResourceStateDisabled
	var ops []fsm.TxnOp
	var jobIDs []string
	for _, v := range vms {
		j := newJob("startVirtualMachine", v.ID, nil)
		ops, jobIDs = append(ops, fsm.Create(fsm.TableJobs, j)), append(jobIDs, j.ID)
	}
	e.apply(append(ops, fsm.Update(fsm.TableHosts, h3))...)

	ok := 0
	for i, id := range jobIDs {
		j := e.wait(id)
		v := e.vm(vms[i].ID)
		if j.Status == fsm.JobSucceeded {
			ok++
			if v.State != fsm.VMRunning || v.HostID == fxHostID(3) {
				t.Errorf("%s: started but is %s on %q", v.Name, v.State, v.HostID)
			}
			continue
		}
		vmJobFailed(t, j, codeCapacity, "1 host is disabled, 2 have at most 0 MiB of memory free")
		if v.State != fsm.VMStopped || v.HostID != "" {
			t.Errorf("%s: did not fit but is %s on %q; want Stopped", v.Name, v.State, v.HostID)
		}
	}
	if ok != 2*fxVMsPerHost {
		t.Errorf("%d starts succeeded; want %d", ok, 2*fxVMsPerHost)
	}
	e.wantHost(fxHostID(1), fxVMsPerHost)
	e.wantHost(fxHostID(2), fxVMsPerHost)
	e.wantHost(fxHostID(3), 0)
	e.wantAccounting()
}

// TestMigrateTargetCannotStartVM: the source lets go of the VM but the
// target's agent cannot start it. The VM must not be stranded between
// hosts: it is started again on a host that can run it, and the job says
// the migration failed.
func TestMigrateTargetCannotStartVM(t *testing.T) {
	e := newVMEnv(t, 2)
	e.startRunner()
	v := e.running("web1")
	target := fxHostID(2) // the host the VM is not on
	if v.HostID == target {
		target = fxHostID(1)
	}
	e.agents.failOn(target, "no space left")
	j := e.run("migrateVirtualMachine", v.ID, map[string]string{VMParamHost: target})
	if e.agents.failedStarts(target) != 1 {
		t.Fatalf("%s reported %d failed starts; want the arrival to fail once", target, e.agents.failedStarts(target))
	}
	vmJobFailed(t, j, codeResourceFail, "migration of web1 failed", "host "+target+" could not start it: no space left",
		"started again on host "+v.HostID)
	got := e.vm(v.ID)
	if got.State != fsm.VMRunning || got.HostID != v.HostID || got.ObservedHostID != v.HostID || got.ObservedPower != fsm.PowerOn {
		t.Errorf("VM = %s on %q (observed %q %s); want Running again on %s, the one host that can run it",
			got.State, got.HostID, got.ObservedHostID, got.ObservedPower, v.HostID)
	}
	e.wantHost(target, 0)
	e.wantHost(v.HostID, 1)
	e.wantAccounting()
}

// TestMigrateNoHostCanStartVM: after the source let go nothing can start
// the VM; it ends Stopped, holding no host.
func TestMigrateNoHostCanStartVM(t *testing.T) {
	e := newVMEnv(t, 2)
	e.startRunner()
	v := e.running("web1")
	target := fxHostID(2) // the host the VM is not on
	if v.HostID == target {
		target = fxHostID(1)
	}
	e.agents.failOn(target, "no space left")
	e.agents.failOn(v.HostID, "no space left") // a running VM stays running: the agent fails only starts
	if got := e.vm(v.ID); got.State != fsm.VMRunning {
		t.Fatalf("VM is %s", got.State)
	}
	j := e.run("migrateVirtualMachine", v.ID, map[string]string{VMParamHost: target})
	if j.Status != fsm.JobFailed {
		t.Fatalf("migration job = %+v (%s); want failure", j, j.Result)
	}
	if got := e.vm(v.ID); got.State != fsm.VMStopped || got.HostID != "" || got.MigrateTo != "" || got.Power != fsm.PowerOff {
		t.Errorf("VM = %s on %q (to %q, power %s); want Stopped on no host", got.State, got.HostID, got.MigrateTo, got.Power)
	}
	for _, h := range e.hosts {
		e.wantHost(h, 0)
	}
	e.wantAccounting()
}

// TestStartFailsOnFewerHostsThanTries: with only two hosts, both failing,
// the start runs out of hosts before maxStartHosts; the VM still ends on
// no host.
func TestStartFailsOnFewerHostsThanTries(t *testing.T) {
	e := newVMEnv(t, 2)
	e.startRunner()
	for _, h := range e.hosts {
		e.agents.failOn(h, "no space left")
	}
	id, jobID := e.deploy("web1")
	if j := e.wait(jobID); j.Status != fsm.JobFailed {
		t.Fatalf("deploy = %+v (%s); want failure", j, j.Result)
	}
	if v := e.vm(id); v.State != fsm.VMError || v.HostID != "" {
		t.Errorf("VM = %s on %q; want Error on no host", v.State, v.HostID)
	}
	for _, h := range e.hosts {
		if e.agents.failedStarts(h) != 1 {
			t.Errorf("host %s reported %d failed starts; want 1", h, e.agents.failedStarts(h))
		}
		e.wantHost(h, 0)
	}
	e.wantAccounting()
}

// TestOwnerStopCallsOffAPendingHARestart: an HA VM whose host failed waits
// for its restart (HAPending, no host); its owner stops it. The HA start
// job that comes after must leave it Stopped, not start it.
func TestOwnerStopCallsOffAPendingHARestart(t *testing.T) {
	e := newVMEnv(t, 2)
	e.startRunner()
	v := e.running("web1")
	host := e.host(v.HostID)
	// What the HA controller commits for a VM of a fenced host.
	nv := v.Copy()
	nv.LastHostID, nv.HostID, nv.PodID, nv.ClusterID = v.HostID, "", "", ""
	nv.State, nv.Power, nv.HAPending, nv.ObservedHostID, nv.ObservedPower = fsm.VMStarting, fsm.PowerOff, true, "", ""
	e.apply(reserveHost(host, v, -1), fsm.Update(fsm.TableVMs, nv))
	vmJobOK(t, e.run("stopVirtualMachine", v.ID, nil))
	if got := e.vm(v.ID); got.State != fsm.VMStopped || got.HAPending {
		t.Fatalf("after the owner's stop: %s pending %v", got.State, got.HAPending)
	}
	vmJobOK(t, e.run("startVirtualMachine", v.ID, map[string]string{VMParamHARestart: "true", VMParamAvoid: v.HostID}))
	if got := e.vm(v.ID); got.State != fsm.VMStopped || got.HostID != "" {
		t.Fatalf("the HA restart ran after the owner stopped the VM: %s on %q", got.State, got.HostID)
	}
	for _, h := range e.hosts {
		e.wantHost(h, 0)
	}
	e.wantAccounting()
}
