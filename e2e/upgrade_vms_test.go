package e2e

// The VM side of the rolling upgrade: host agents of the previous build on
// libvirt's test driver serve a zone seeded through the SDK, and a VM
// workload (deploy, stop, start) runs through HAProxy beside the zone,
// read and tag load of upgrade_test.go, with the same retry accounting.
//
// The agents are not upgraded here: agents are upgraded separately, host
// by host, like servers (an agent restart on the test driver loses its
// guests, which vms_failover_test.go covers). What this proves is that
// agents of the previous build keep their hosts Up and their VMs where the
// API says while every server under them is replaced by the new build.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/cloudstack-go/v2/cloudstack"

	"github.com/stratus-cloud/stratus/hypervisor"
	"github.com/stratus-cloud/stratus/hypervisor/agent"
	"github.com/stratus-cloud/stratus/ops"
)

const (
	upgVMZone     = "upg-vm-zone"
	upgVMPod      = "upg-vm-pod"
	upgVMCluster  = "upg-vm-cluster"
	upgVMPrefix   = "upg-vm-"
	upgVMHosts    = 3
	upgVMMax      = 8 // VMs the workload deploys at most; then it only stops and starts
	upgVMWorkers  = 2 // VM commands in flight at once
	upgVMProgress = 2 // VM jobs finished after each replaced server is back
)

// upgradeVMs is the VM workload of the rolling upgrade and its hosts.
type upgradeVMs struct {
	l       *upgradeLoad // retries and failures are counted with the rest of the load
	cs      *cloudstack.CloudStackClient
	hosts   []*simHost
	agents  []*proc
	sampler *hostSampler

	zone, offering, template string

	mu       sync.Mutex
	order    []string            // VM ids in deploy order
	names    map[string]string   // VM id -> name
	want     map[string]string   // VM id -> the state last asked for (Running, Stopped)
	busy     map[string]bool     // VM id -> a command of the workload is on it
	deploys  int                 // deploys submitted (names used)
	jobs     map[string]string   // job id -> what it is for
	jobsDone map[string]bool     // job id -> finished with success
	done     int                 // VM jobs finished with success
	notUp    []string            // host states other than Up seen during the load
	history  map[string][]string // VM id -> the workload's commands and their outcomes, printed on failure
	hostObs  int                 // listHosts answers looked at
}

// startUpgradeVMs seeds the VM zone through HAProxy, starts an agent of
// bin (the previous build) for each host and waits until every host is Up
// and the template is downloaded.
func startUpgradeVMs(t *testing.T, c *testCluster, lb *haproxyProc, bin string, l *upgradeLoad) *upgradeVMs {
	t.Helper()
	start := time.Now()
	v := &upgradeVMs{l: l, cs: newJobSDK(lb.apiURL(), c.keys), names: map[string]string{}, want: map[string]string{},
		busy: map[string]bool{}, jobs: map[string]string{}, jobsDone: map[string]bool{}, history: map[string][]string{}}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		for _, id := range v.order {
			t.Logf("e2e: history of %s (%s):\n\t%s", v.names[id], id, strings.Join(v.history[id], "\n\t"))
		}
	})
	admin := newSDK(lb.apiURL(), c.keys)
	images := newImageServer(t)
	images.sendHalf() // nothing is held: the download only has to finish
	images.sendRest()
	if _, err := admin.Configuration.UpdateConfiguration(allowInternalSites(admin, "127.0.0.0/8")); err != nil {
		t.Fatalf("allow loopback image downloads: %v", err)
	}
	zp := admin.Zone.NewCreateZoneParams("8.8.8.8", "10.0.0.1", upgVMZone, "Advanced")
	zp.SetGuestcidraddress("10.1.0.0/16")
	zp.SetAllocationstate("Enabled")
	z, err := admin.Zone.CreateZone(zp)
	if err != nil {
		t.Fatalf("createZone %s: %v", upgVMZone, err)
	}
	v.zone = z.Id
	pp := admin.Pod.NewCreatePodParams(upgVMPod, z.Id)
	pp.SetGateway("10.0.0.1")
	pp.SetNetmask("255.255.255.0")
	pp.SetStartip("10.0.0.100")
	pp.SetEndip("10.0.0.200")
	pod, err := admin.Pod.CreatePod(pp)
	if err != nil {
		t.Fatalf("createPod: %v", err)
	}
	cl, err := admin.Cluster.AddCluster(admin.Cluster.NewAddClusterParams(upgVMCluster, "CloudManaged", "KVM", pod.Id, z.Id))
	if err != nil {
		t.Fatalf("addCluster: %v", err)
	}
	sp := admin.Pool.NewCreateStoragePoolParams("upg-primary", "nfs://127.0.0.1/export/upg-primary", z.Id)
	sp.SetScope("cluster")
	sp.SetPodid(pod.Id)
	sp.SetClusterid(cl.Id)
	sp.SetCapacitybytes(int64(4) << 40)
	if _, err := admin.Pool.CreateStoragePool(sp); err != nil {
		t.Fatalf("createStoragePool: %v", err)
	}
	ip := admin.ImageStore.NewAddImageStoreParams("NFS")
	ip.SetName("upg-secondary")
	ip.SetUrl("nfs://127.0.0.1/export/upg-secondary")
	ip.SetZoneid(z.Id)
	if _, err := admin.ImageStore.AddImageStore(ip); err != nil {
		t.Fatalf("addImageStore: %v", err)
	}
	op := admin.ServiceOffering.NewCreateServiceOfferingParams("1 CPU, 512 MiB", "small")
	op.SetCpunumber(1)
	op.SetCpuspeed(1000)
	op.SetMemory(512)
	o, err := admin.ServiceOffering.CreateServiceOffering(op)
	if err != nil {
		t.Fatalf("createServiceOffering small: %v", err)
	}
	v.offering = o.Id
	types, err := admin.GuestOS.ListOsTypes(admin.GuestOS.NewListOsTypesParams())
	if err != nil {
		t.Fatalf("listOsTypes: %v", err)
	}
	var osType string
	for _, ot := range types.OsTypes {
		if strings.Contains(ot.Description, "Ubuntu") {
			osType = ot.Id
			break
		}
	}
	tp := admin.Template.NewRegisterTemplateParams("a small qcow2 for the upgrade's VMs", "QCOW2", "KVM", "upg-template",
		images.add("upg.qcow2", testQcow2()))
	tp.SetZoneid(z.Id)
	tp.SetOstypeid(osType)
	tp.SetIspublic(true)
	tp.SetIsfeatured(true)
	r, err := admin.Template.RegisterTemplate(tp)
	if err != nil || len(r.RegisterTemplate) != 1 {
		t.Fatalf("registerTemplate: %+v, %v", r, err)
	}
	v.template = r.RegisterTemplate[0].Id

	v.startAgents(t, c, "http://"+lb.addr, bin)
	checkTemplateDownloaded(t, "upgrade template", waitTemplateSettled(t, admin, "all", v.template, z.Id))
	// Every host registers and comes Up; its agent then knows its host ID.
	waitFor(t, "hosts of "+upgVMZone+" Up", func() (int, error) {
		hosts, err := v.listHosts()
		if err != nil {
			return 0, err
		}
		up := 0
		for _, h := range hosts {
			if h.State == "Up" {
				up++
			}
		}
		return up, nil
	}, func(n int) bool { return n == upgVMHosts })
	for _, h := range v.hosts {
		h := h
		st := waitFor(t, "agent status of "+h.name, func() (*agentStatusBody, error) { return h.status(c.probe) },
			func(st *agentStatusBody) bool { return st.HostID != "" })
		if st.Name != h.name {
			t.Fatalf("agent %s: status names %q", h.name, st.Name)
		}
		h.id = st.HostID
	}
	v.sampler = newHostSampler(v.hosts)
	t.Logf("e2e: VM zone seeded and %d agents (%s) Up in %s", upgVMHosts, previousVersion, time.Since(start).Round(time.Millisecond))
	return v
}

// startAgents starts one agent of bin per simulated host, talking to the
// servers through the load balancer at base.
func (v *upgradeVMs) startAgents(t *testing.T, c *testCluster, base, bin string) {
	t.Helper()
	ports, err := ops.FreeLoopbackPorts(upgVMHosts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, p := range v.agents {
			p.kill9()
		}
		if t.Failed() {
			for _, p := range v.agents {
				t.Logf("e2e: log of %s (last %d lines):\n%s", p.name, logTailOnError, p.logTail(logTailOnError))
			}
		}
	})
	for i := 1; i <= upgVMHosts; i++ {
		name := fmt.Sprintf("upg-host-%d", i)
		hdir := filepath.Join(c.dir, "hosts", name)
		if err := os.MkdirAll(hdir, 0o700); err != nil {
			t.Fatal(err)
		}
		xml := filepath.Join(hdir, "host.xml")
		if err := hypervisor.WriteTestHost(xml, hypervisor.TestHost{Name: name, CPUs: 16, MHz: 2000, MemoryMiB: 32768}); err != nil {
			t.Fatal(err)
		}
		statusAddr := fmt.Sprintf("127.0.0.1:%d", ports[i-1])
		p := &proc{name: "agent-" + name, logPath: filepath.Join(hdir, "agent.log"),
			args: []string{"agent", "-servers", base, "-data-dir", hdir, "-libvirt-uri", "test://" + xml,
				"-name", name, "-address", fmt.Sprintf("10.0.0.%d", 10+i),
				"-zone", upgVMZone, "-pod", upgVMPod, "-cluster", upgVMCluster, "-status-addr", statusAddr},
			env: []string{"STRATUS_AGENT_REGISTRATION_TOKEN=" + agent.RegistrationToken(testSecret)}}
		v.agents = append(v.agents, p)
		if err := p.start(bin); err != nil {
			t.Fatal(err)
		}
		v.hosts = append(v.hosts, &simHost{name: name, statusURL: "http://" + statusAddr + "/v1/status", logPath: p.logPath})
	}
}

// listHosts lists the routing hosts of the VM zone, retrying as the load does.
func (v *upgradeVMs) listHosts() ([]*cloudstack.Host, error) {
	p := v.cs.Host.NewListHostsParams()
	p.SetZoneid(v.zone)
	p.SetType("Routing")
	var r *cloudstack.ListHostsResponse
	if err := v.l.call("listHosts", func() (err error) { r, err = v.cs.Host.ListHosts(p); return err }); err != nil {
		return nil, err
	}
	return r.Hosts, nil
}

// listVMs lists every VM, retrying as the load does.
func (v *upgradeVMs) listVMs() (map[string]*cloudstack.VirtualMachine, error) {
	p := v.cs.VirtualMachine.NewListVirtualMachinesParams()
	p.SetListall(true)
	p.SetPage(1)
	p.SetPagesize(500)
	var r *cloudstack.ListVirtualMachinesResponse
	if err := v.l.call("listVirtualMachines", func() (err error) { r, err = v.cs.VirtualMachine.ListVirtualMachines(p); return err }); err != nil {
		return nil, err
	}
	out := map[string]*cloudstack.VirtualMachine{}
	for _, vm := range r.VirtualMachines {
		out[vm.Id] = vm
	}
	return out, nil
}

// watchHosts lists the hosts every 250 ms until ctx ends and records any
// that is not Up: agents of the previous build must stay Up throughout.
func (v *upgradeVMs) watchHosts(ctx context.Context) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		hosts, err := v.listHosts()
		if err != nil {
			v.l.fail(err)
			continue
		}
		v.mu.Lock()
		v.hostObs++
		if len(hosts) != upgVMHosts {
			v.notUp = append(v.notUp, fmt.Sprintf("%s: listHosts lists %d hosts", time.Now().Format("15:04:05.000"), len(hosts)))
		}
		for _, h := range hosts {
			if h.State != "Up" {
				v.notUp = append(v.notUp, fmt.Sprintf("%s: %s is %s", time.Now().Format("15:04:05.000"), h.Name, h.State))
			}
		}
		v.mu.Unlock()
	}
}

// pick chooses the next command: a deploy while fewer than upgVMMax
// VMs were deployed (every other turn), else a stop of a Running VM or a
// start of a Stopped one, the longest untouched first. It marks the VM
// busy; it returns "" when every VM is busy.
func (v *upgradeVMs) pick(turn int) (op, id, name string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.deploys < upgVMMax && (turn%2 == 0 || len(v.order) == 0) {
		v.deploys++
		return "deploy", "", fmt.Sprintf("%s%02d", upgVMPrefix, v.deploys)
	}
	for i, id := range v.order {
		if v.busy[id] {
			continue
		}
		v.busy[id] = true
		v.order = append(append(v.order[:i:i], v.order[i+1:]...), id) // to the back
		if v.want[id] == "Running" {
			return "stop", id, v.names[id]
		}
		return "start", id, v.names[id]
	}
	return "", "", ""
}

// worker runs VM commands one after the other until ctx ends, each to
// the end of its job.
func (v *upgradeVMs) worker(ctx context.Context) {
	for turn := 0; ctx.Err() == nil; turn++ {
		op, id, name := v.pick(turn)
		if op == "" {
			select {
			case <-ctx.Done():
				return
			case <-time.After(hostPollEvery): // every VM is busy with the other worker
			}
			continue
		}
		v.command(ctx, op, id, name)
	}
}

// command submits one VM command through HAProxy and polls its job.
func (v *upgradeVMs) command(ctx context.Context, op, id, name string) {
	what := op + " " + name
	var jobID string
	err := v.l.call(what, func() error {
		var err error
		switch op {
		case "deploy":
			p := v.cs.VirtualMachine.NewDeployVirtualMachineParams(v.offering, v.template, v.zone)
			p.SetName(name)
			var r *cloudstack.DeployVirtualMachineResponse
			if r, err = v.cs.VirtualMachine.DeployVirtualMachine(p); err == nil {
				id, jobID = r.Id, r.JobID
			}
		case "stop":
			var r *cloudstack.StopVirtualMachineResponse
			if r, err = v.cs.VirtualMachine.StopVirtualMachine(v.cs.VirtualMachine.NewStopVirtualMachineParams(id)); err == nil {
				jobID = r.JobID
			}
		case "start":
			var r *cloudstack.StartVirtualMachineResponse
			if r, err = v.cs.VirtualMachine.StartVirtualMachine(v.cs.VirtualMachine.NewStartVirtualMachineParams(id)); err == nil {
				jobID = r.JobID
			}
		}
		if err == nil && (jobID == "" || id == "") {
			return fmt.Errorf("%s answered job id %q, VM id %q", what, jobID, id)
		}
		return err
	})
	wantState := map[string]string{"deploy": "Running", "stop": "Stopped", "start": "Running"}[op]
	v.mu.Lock()
	if id != "" {
		// Asked for, whatever the answer: a retried command that failed
		// may still have committed, and the end checks say so.
		if _, ok := v.names[id]; !ok {
			v.order = append(v.order, id)
			v.names[id] = name
			// A deployed VM is busy with its deploy job like any other:
			// the other worker must not stop it while it is Starting.
			v.busy[id] = true
		}
		v.want[id] = wantState
	}
	if err == nil {
		v.jobs[jobID] = what
	}
	v.record(id, "%s: job %s, error %v", op, jobID, err)
	v.mu.Unlock()
	defer func() {
		v.mu.Lock()
		delete(v.busy, id)
		v.mu.Unlock()
	}()
	if err != nil {
		v.l.fail(err)
		return
	}
	deadline := time.Now().Add(jobTimeout)
	for {
		var res *cloudstack.QueryAsyncJobResultResponse
		err := v.l.call("queryAsyncJobResult "+jobID, func() (err error) {
			res, err = v.cs.Asyncjob.QueryAsyncJobResult(v.cs.Asyncjob.NewQueryAsyncJobResultParams(jobID))
			return err
		})
		if err != nil {
			v.l.fail(err)
			return
		}
		if res.Jobstatus == 1 {
			v.mu.Lock()
			v.jobsDone[jobID] = true
			v.done++
			v.record(id, "%s: job %s succeeded", op, jobID)
			v.mu.Unlock()
			return
		}
		if res.Jobstatus != 0 {
			v.l.fail(fmt.Errorf("job %s (%s) ended with status %d code %d: %s", jobID, what, res.Jobstatus, res.Jobresultcode, res.Jobresult))
			return
		}
		if time.Now().After(deadline) {
			v.l.fail(fmt.Errorf("job %s (%s) not done within %s", jobID, what, jobTimeout))
			return
		}
		select {
		case <-ctx.Done():
			return // finished after the load stops: checked at the end
		case <-time.After(hostPollEvery):
		}
	}
}

// record notes an event of the VM id's history; v.mu is held.
func (v *upgradeVMs) record(id, format string, args ...any) {
	if id != "" {
		v.history[id] = append(v.history[id], time.Now().UTC().Format("15:04:05.000000 ")+fmt.Sprintf(format, args...))
	}
}

// jobsFinished is the number of VM jobs finished with success.
func (v *upgradeVMs) jobsFinished() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.done
}

// waitJobs waits until n VM jobs have finished with success.
func (v *upgradeVMs) waitJobs(t *testing.T, ctx context.Context, n int) {
	t.Helper()
	for v.jobsFinished() < n {
		select {
		case <-ctx.Done():
			t.Fatalf("only %d of %d VM jobs finished: %v (failures: %v)", v.jobsFinished(), n, ctx.Err(), v.l.failures)
		case <-time.After(hostPollEvery):
		}
	}
}

// finish runs after the load stopped: every VM job that got an id ends
// with success, every VM is in the state last asked for, each Running VM
// runs on the host the API names and on no other, no Stopped VM runs
// anywhere, no VM was ever seen on two hosts at once, and every host
// stayed Up.
func (v *upgradeVMs) finish(t *testing.T, ctx context.Context, probe *http.Client) {
	t.Helper()
	for _, id := range sortedKeys(v.jobs) {
		if v.jobsDone[id] {
			continue
		}
		what := v.jobs[id]
		res := waitFor(t, "job "+id+" ("+what+")", func() (*cloudstack.QueryAsyncJobResultResponse, error) {
			return v.cs.Asyncjob.QueryAsyncJobResult(v.cs.Asyncjob.NewQueryAsyncJobResultParams(id))
		}, func(r *cloudstack.QueryAsyncJobResultResponse) bool { return r.Jobstatus != 0 })
		if res.Jobstatus != 1 {
			t.Errorf("job %s (%s) ended with status %d code %d: %s", id, what, res.Jobstatus, res.Jobresultcode, res.Jobresult)
			continue
		}
		v.jobsDone[id] = true
		v.done++
	}
	deadline := time.Now().Add(hostsAgreeTimeout)
	var diff []string
	for {
		var err error
		if diff, err = v.diff(probe); err != nil {
			t.Fatalf("after the rolling upgrade: %v", err)
		}
		if len(diff) == 0 || ctx.Err() != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(hostPollEvery) // polling the condition above, with its deadline
	}
	for _, d := range diff {
		t.Errorf("after the rolling upgrade: %s", d)
	}
	v.sampler.check(t, "rolling upgrade")
	for _, s := range v.notUp {
		t.Errorf("during the rolling upgrade a host was not Up: %s", s)
	}
	for _, p := range v.agents {
		if !p.running() {
			t.Errorf("%s exited: %v", p.name, p.crashed())
		}
	}
	running := 0
	for _, s := range v.want {
		if s == "Running" {
			running++
		}
	}
	t.Logf("e2e: %d VMs (%d Running), %d VM jobs done, %d listHosts looked at, sampler: %s",
		len(v.want), running, v.done, v.hostObs, v.sampler)
	if v.done < len(v.jobs) || len(v.want) == 0 || v.hostObs == 0 {
		t.Errorf("the VM load did too little or did not finish: %d of %d jobs done, %d VMs, %d host lists", v.done, len(v.jobs), len(v.want), v.hostObs)
	}
}

// diff compares the API's VMs with what the agents run, once.
func (v *upgradeVMs) diff(probe *http.Client) ([]string, error) {
	all, err := v.listVMs()
	if err != nil {
		return nil, err
	}
	var diff []string
	// Deploys retried after a lost answer may have made VMs the workload
	// never got an id for: they were asked to run too.
	want := map[string]string{}
	for id, s := range v.want {
		want[id] = s
	}
	for id, vm := range all {
		if _, ok := want[id]; !ok && strings.HasPrefix(vm.Name, upgVMPrefix) {
			want[id] = "Running"
		}
	}
	domsOn := map[string]map[string]string{} // host id -> VM id -> power
	for _, h := range v.hosts {
		st, err := h.status(probe)
		if err != nil {
			diff = append(diff, fmt.Sprintf("%s: agent status: %v", h.name, err))
			continue
		}
		if st.HostID != h.id {
			diff = append(diff, fmt.Sprintf("%s: agent says host_id %s, want %s", h.name, st.HostID, h.id))
		}
		doms := map[string]string{}
		for _, d := range st.Domains {
			doms[d.UUID] = d.Power
		}
		domsOn[h.id] = doms
	}
	for _, id := range sortedKeys(want) {
		vm := all[id]
		if vm == nil {
			diff = append(diff, fmt.Sprintf("VM %s (%s) is not listed", v.names[id], id))
			continue
		}
		if vm.State != want[id] {
			diff = append(diff, fmt.Sprintf("VM %s (%s) is %s, the test last asked for %s", vm.Name, id, vm.State, want[id]))
		}
		if (vm.Hostid != "") != (want[id] == "Running") {
			diff = append(diff, fmt.Sprintf("VM %s (%s) is %s with hostid %q", vm.Name, id, vm.State, vm.Hostid))
		}
		var on []string
		for _, h := range v.hosts {
			if _, ok := domsOn[h.id][id]; ok {
				on = append(on, h.name)
			}
		}
		switch {
		case want[id] == "Running" && (len(on) != 1 || domsOn[vm.Hostid][id] != "Running"):
			diff = append(diff, fmt.Sprintf("VM %s (%s) is Running on host %s in the API; agents report it on %v (power there %q)",
				vm.Name, id, vm.Hostid, on, domsOn[vm.Hostid][id]))
		case want[id] != "Running" && len(on) != 0:
			diff = append(diff, fmt.Sprintf("VM %s (%s) is %s in the API; agents report it on %v", vm.Name, id, vm.State, on))
		}
	}
	for _, h := range v.hosts {
		for _, id := range sortedKeys(domsOn[h.id]) {
			if _, ok := want[id]; !ok {
				diff = append(diff, fmt.Sprintf("%s runs domain %s the workload never asked for", h.name, id))
			}
		}
	}
	slices.Sort(diff)
	return diff, nil
}
