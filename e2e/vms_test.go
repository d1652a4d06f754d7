package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/cloudstack-go/v2/cloudstack"
)

const (
	vmCount           = 30
	vmParallel        = 8
	vmKillAfter       = 10 // deploys acknowledged before the leader is killed
	vmTestTimeout     = 4 * time.Minute
	hostsAgreeTimeout = 30 * time.Second
	jobTimeout        = 60 * time.Second
)

// vmRun drives the VM API through HAProxy with the SDK.
type vmRun struct {
	t       *testing.T
	d       *devCloud
	cs      *cloudstack.CloudStackClient
	sampler *hostSampler

	zone, offering, template, diskOffering string
	network                                *cloudstack.Network // the zone's guest network, as listNetworks shows it

	allowRetries atomic.Bool // only while a server is being killed
	mu           sync.Mutex
	retries      retryStats
	phases       []string // "name duration", for the final log
}

func newVMRun(t *testing.T, d *devCloud, s *hostSampler) *vmRun {
	t.Helper()
	r := &vmRun{t: t, d: d, sampler: s, retries: retryStats{byKind: map[string]int{}},
		cs: newJobSDK(d.lb.apiURL(), d.c.keys)}
	var err error
	if r.zone, _, err = r.cs.Zone.GetZoneID(devZoneName); err != nil {
		t.Fatalf("zone %s: %v", devZoneName, err)
	}
	if r.offering, _, err = r.cs.ServiceOffering.GetServiceOfferingID("small"); err != nil {
		t.Fatalf("service offering small: %v", err)
	}
	if r.template, _, err = r.cs.Template.GetTemplateID("dev-template", "all", r.zone); err != nil {
		t.Fatalf("template dev-template: %v", err)
	}
	if r.diskOffering, _, err = r.cs.DiskOffering.GetDiskOfferingID("data-10g"); err != nil {
		t.Fatalf("disk offering data-10g: %v", err)
	}
	// As Terraform finds a network_id before it deploys: listNetworks
	// in the zone, then by ID with projectid=-1.
	lp := r.cs.Network.NewListNetworksParams()
	lp.SetZoneid(r.zone)
	nets, err := r.cs.Network.ListNetworks(lp)
	if err != nil || nets.Count != 1 {
		t.Fatalf("listNetworks zoneid=%s: %v, %+v; want the zone's one guest network", r.zone, err, nets)
	}
	if r.network, _, err = r.cs.Network.GetNetworkByID(nets.Networks[0].Id, cloudstack.WithProject("-1")); err != nil {
		t.Fatalf("network %s: %v", nets.Networks[0].Id, err)
	}
	return r
}

const devZoneName = "dev-zone"

// phase records how long a phase took.
func (r *vmRun) phase(name string, start time.Time) {
	d := time.Since(start).Round(time.Millisecond)
	r.phases = append(r.phases, fmt.Sprintf("%s %s", name, d))
	r.t.Logf("e2e: phase %s done in %s", name, d)
}

// call runs f, retrying retriable errors (counted) while a server is
// being killed; at any other time a retriable error is returned, so it
// fails the test: nothing should fail over then.
func (r *vmRun) call(what string, f func() error) error {
	first, streak := time.Now(), 0
	for {
		err := f()
		if err == nil {
			return nil
		}
		ok, kind := retriable(err)
		if !ok || !r.allowRetries.Load() {
			return fmt.Errorf("%s: %w", what, err)
		}
		streak++
		r.mu.Lock()
		r.retries.total++
		r.retries.byKind[kind]++
		if d := time.Since(first); streak > r.retries.longest || (streak == r.retries.longest && d > r.retries.longestFor) {
			r.retries.longest, r.retries.longestFor, r.retries.longestOnZone = streak, d, what
		}
		r.mu.Unlock()
		if time.Since(first) > maxRetryStreak {
			return fmt.Errorf("%s still fails after %s and %d attempts: %w", what, maxRetryStreak, streak, err)
		}
		time.Sleep(min(25*time.Millisecond<<min(streak, 5), 500*time.Millisecond)) // backoff, not a wait for a condition
	}
}

// retrySummary says how many retriable errors the calls absorbed.
func (r *vmRun) retrySummary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("%d retriable errors %v, longest streak %d over %s (%s)", r.retries.total, r.retries.byKind,
		r.retries.longest, r.retries.longestFor.Round(time.Millisecond), r.retries.longestOnZone)
}

// jobOutcome is one async command and how its job ended.
type jobOutcome struct {
	item, id, jobID string // what it was for, the object ID the command answered, the job
	res             *cloudstack.QueryAsyncJobResultResponse
	err             error
	acceptedAt      time.Time // when the job ID came back
	doneAt          time.Time // when the test saw the job done
}

// waitJob polls queryAsyncJobResult until the job is done.
func (r *vmRun) waitJob(ctx context.Context, jobID string) (*cloudstack.QueryAsyncJobResultResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, jobTimeout)
	defer cancel()
	for {
		var res *cloudstack.QueryAsyncJobResultResponse
		err := r.call("queryAsyncJobResult "+jobID, func() (err error) {
			res, err = r.cs.Asyncjob.QueryAsyncJobResult(r.cs.Asyncjob.NewQueryAsyncJobResultParams(jobID))
			return err
		})
		if err != nil {
			return nil, err
		}
		if res.Jobstatus != 0 {
			return res, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("job %s (%s) not done within %s", jobID, res.Cmd, jobTimeout)
		case <-time.After(hostPollEvery):
		}
	}
}

// runJobs submits one async command per item, par at a time, and waits for
// each job. accepted, if set, is called when a job ID comes back.
func (r *vmRun) runJobs(ctx context.Context, items []string, par int, submit func(item string) (id, jobID string, err error), accepted func()) []jobOutcome {
	out := make([]jobOutcome, len(items))
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range min(par, len(items)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(items) || ctx.Err() != nil {
					return
				}
				o := &out[i]
				o.item = items[i]
				o.err = r.call("submit for "+items[i], func() (err error) {
					o.id, o.jobID, err = submit(items[i])
					return err
				})
				if o.err != nil {
					continue
				}
				if o.jobID == "" {
					o.err = fmt.Errorf("the command for %s answered no job ID", items[i])
					continue
				}
				o.acceptedAt = time.Now()
				if accepted != nil {
					accepted()
				}
				o.res, o.err = r.waitJob(ctx, o.jobID)
				o.doneAt = time.Now()
			}
		})
	}
	wg.Wait()
	return out
}

// requireJobsOK fails the test unless every job succeeded.
func (r *vmRun) requireJobsOK(phase string, outs []jobOutcome) {
	r.t.Helper()
	var bad []string
	for _, o := range outs {
		switch {
		case o.err != nil:
			bad = append(bad, fmt.Sprintf("%s: %v", o.item, o.err))
		case o.res == nil:
			bad = append(bad, fmt.Sprintf("%s: never submitted", o.item))
		case o.res.Jobstatus != 1:
			bad = append(bad, fmt.Sprintf("%s: job %s status %d code %d: %s", o.item, o.jobID, o.res.Jobstatus, o.res.Jobresultcode, o.res.Jobresult))
		}
	}
	if len(bad) > 0 {
		r.t.Fatalf("%s: %d of %d jobs failed:\n  %s", phase, len(bad), len(outs), strings.Join(bad[:min(len(bad), 10)], "\n  "))
	}
}

// deploy starts one VM named name with the small offering.
func (r *vmRun) deploy(name string) (string, string, error) {
	p := r.cs.VirtualMachine.NewDeployVirtualMachineParams(r.offering, r.template, r.zone)
	p.SetName(name)
	p.SetNetworkids([]string{r.network.Id})
	v, err := r.cs.VirtualMachine.DeployVirtualMachine(p)
	if err != nil {
		return "", "", err
	}
	return v.Id, v.JobID, nil
}

// deployVMs deploys n VMs named prefix-NN and returns their IDs and jobs.
func (r *vmRun) deployVMs(ctx context.Context, phase, prefix string, n int, accepted func()) ([]string, []jobOutcome) {
	r.t.Helper()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%02d", prefix, i)
	}
	outs := r.runJobs(ctx, names, vmParallel, r.deploy, accepted)
	r.requireJobsOK(phase, outs)
	ids := make([]string, n)
	for i, o := range outs {
		if o.id == "" {
			r.t.Fatalf("%s: deployVirtualMachine %s answered no VM id", phase, o.item)
		}
		ids[i] = o.id
	}
	return ids, outs
}

// vmJob submits one VM command per VM ID and requires every job to succeed.
func (r *vmRun) vmJob(ctx context.Context, phase string, ids []string, submit func(id string) (string, error)) {
	r.t.Helper()
	outs := r.runJobs(ctx, ids, vmParallel, func(id string) (string, string, error) {
		jobID, err := submit(id)
		return id, jobID, err
	}, nil)
	r.requireJobsOK(phase, outs)
}

func (r *vmRun) stop(id string) (string, error) {
	v, err := r.cs.VirtualMachine.StopVirtualMachine(r.cs.VirtualMachine.NewStopVirtualMachineParams(id))
	if err != nil {
		return "", err
	}
	return v.JobID, nil
}

func (r *vmRun) start(id string) (string, error) {
	v, err := r.cs.VirtualMachine.StartVirtualMachine(r.cs.VirtualMachine.NewStartVirtualMachineParams(id))
	if err != nil {
		return "", err
	}
	return v.JobID, nil
}

func (r *vmRun) reboot(id string) (string, error) {
	v, err := r.cs.VirtualMachine.RebootVirtualMachine(r.cs.VirtualMachine.NewRebootVirtualMachineParams(id))
	if err != nil {
		return "", err
	}
	return v.JobID, nil
}

func (r *vmRun) destroy(expunge bool) func(id string) (string, error) {
	return func(id string) (string, error) {
		p := r.cs.VirtualMachine.NewDestroyVirtualMachineParams(id)
		p.SetExpunge(expunge)
		v, err := r.cs.VirtualMachine.DestroyVirtualMachine(p)
		if err != nil {
			return "", err
		}
		return v.JobID, nil
	}
}

// listVMs lists every VM (listall), or those on host hostID.
func (r *vmRun) listVMs(hostID string) (map[string]*cloudstack.VirtualMachine, error) {
	p := r.cs.VirtualMachine.NewListVirtualMachinesParams()
	p.SetListall(true)
	p.SetPage(1)
	p.SetPagesize(500)
	if hostID != "" {
		p.SetHostid(hostID)
	}
	var resp *cloudstack.ListVirtualMachinesResponse
	if err := r.call("listVirtualMachines", func() (err error) {
		resp, err = r.cs.VirtualMachine.ListVirtualMachines(p)
		return err
	}); err != nil {
		return nil, err
	}
	if resp.Count != len(resp.VirtualMachines) {
		return nil, fmt.Errorf("listVirtualMachines hostid=%q: count %d but %d VMs", hostID, resp.Count, len(resp.VirtualMachines))
	}
	out := make(map[string]*cloudstack.VirtualMachine, len(resp.VirtualMachines))
	for _, v := range resp.VirtualMachines {
		out[v.Id] = v
	}
	return out, nil
}

// expectVMs fails the test unless every VM of ids is in state and has a
// host exactly when it is Running; gone means not listed at all.
func (r *vmRun) expectVMs(phase string, ids []string, state string) map[string]*cloudstack.VirtualMachine {
	r.t.Helper()
	all, err := r.listVMs("")
	if err != nil {
		r.t.Fatalf("%s: %v", phase, err)
	}
	var bad []string
	for _, id := range ids {
		v := all[id]
		switch {
		case state == "gone" && v != nil:
			bad = append(bad, fmt.Sprintf("%s (%s) is still listed, %s", v.Name, id, v.State))
		case state == "gone":
		case v == nil:
			bad = append(bad, fmt.Sprintf("%s is not listed", id))
		case v.State != state:
			bad = append(bad, fmt.Sprintf("%s (%s) is %s", v.Name, id, v.State))
		case (v.Hostid != "") != (state == "Running"):
			bad = append(bad, fmt.Sprintf("%s (%s) is %s with hostid %q", v.Name, id, v.State, v.Hostid))
		}
	}
	if len(bad) > 0 {
		r.t.Fatalf("%s: %d of %d VMs are not %s:\n  %s", phase, len(bad), len(ids), state, strings.Join(bad[:min(len(bad), 10)], "\n  "))
	}
	return all
}

// requireUniqueIPs fails the test unless every listed VM has a NIC with
// an address no other VM has.
func (r *vmRun) requireUniqueIPs(phase string, vms map[string]*cloudstack.VirtualMachine) {
	r.t.Helper()
	owner := map[string]string{}
	for _, v := range vms {
		if len(v.Nic) == 0 || v.Nic[0].Ipaddress == "" {
			r.t.Fatalf("%s: VM %s (%s) has no nic[0].ipaddress: %+v", phase, v.Name, v.Id, v.Nic)
		}
		ip := v.Nic[0].Ipaddress
		if o, dup := owner[ip]; dup {
			r.t.Fatalf("%s: VMs %s and %s both have address %s", phase, o, v.Name, ip)
		}
		owner[ip] = v.Name
	}
}

// requireOnNetwork fails the test unless every VM's NIC is on the guest
// network the VMs were deployed in, with an address of its CIDR other than
// its gateway, and the gateway and netmask the network lists.
func (r *vmRun) requireOnNetwork(phase string, vms map[string]*cloudstack.VirtualMachine) {
	r.t.Helper()
	n := r.network
	cidr, err := netip.ParsePrefix(n.Cidr)
	if err != nil {
		r.t.Fatalf("network %s: cidr %q: %v", n.Id, n.Cidr, err)
	}
	for _, v := range vms {
		nic := v.Nic[0]
		ip, err := netip.ParseAddr(nic.Ipaddress)
		if nic.Networkid != n.Id || nic.Networkname != n.Name || err != nil || !cidr.Contains(ip) ||
			nic.Ipaddress == n.Gateway || nic.Gateway != n.Gateway || nic.Netmask != n.Netmask {
			r.t.Fatalf("%s: VM %s's NIC %+v is not on network %s (%s, cidr %s, gateway %s, netmask %s)",
				phase, v.Name, nic, n.Id, n.Name, n.Cidr, n.Gateway, n.Netmask)
		}
	}
}

// checkHostsMatchAPI waits until, for every host, the VMs the API places
// on it (listVirtualMachines hostid=H) are exactly the domains its agent
// reports, every one Running on both sides, and the host's allocated CPU
// and memory (listHosts) are the sum of those VMs; it fails with the
// difference when they do not agree within hostsAgreeTimeout. It also
// fails for any VM the sampler saw on two hosts at once.
func checkHostsMatchAPI(t *testing.T, r *vmRun, phase string) {
	t.Helper()
	deadline := time.Now().Add(hostsAgreeTimeout)
	for {
		diff, err := r.hostsDiff()
		if err == nil && len(diff) == 0 {
			break
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Fatalf("%s: hosts and API not compared within %s: %v", phase, hostsAgreeTimeout, err)
			}
			t.Fatalf("%s: hosts and API still disagree after %s:\n  %s", phase, hostsAgreeTimeout, strings.Join(diff, "\n  "))
		}
		time.Sleep(hostPollEvery) // polling the condition above, with its deadline
	}
	r.sampler.check(t, phase)
	if t.Failed() {
		t.FailNow()
	}
}

// hostsDiff compares every host's domains with the API once.
func (r *vmRun) hostsDiff() ([]string, error) {
	hp := r.cs.Host.NewListHostsParams()
	hp.SetZoneid(r.zone)
	hp.SetType("Routing")
	var hosts *cloudstack.ListHostsResponse
	if err := r.call("listHosts", func() (err error) { hosts, err = r.cs.Host.ListHosts(hp); return err }); err != nil {
		return nil, err
	}
	byID := map[string]*cloudstack.Host{}
	for _, h := range hosts.Hosts {
		byID[h.Id] = h
	}
	var diff []string
	for _, sh := range r.d.hosts {
		api, err := r.listVMs(sh.id)
		if err != nil {
			return nil, err
		}
		st, err := sh.status(r.d.probe)
		if err != nil {
			diff = append(diff, fmt.Sprintf("%s: agent status: %v", sh.name, err))
			continue
		}
		if st.HostID != sh.id {
			diff = append(diff, fmt.Sprintf("%s: agent says host_id %s, want %s", sh.name, st.HostID, sh.id))
		}
		doms := map[string]string{}
		for _, dom := range st.Domains {
			doms[dom.UUID] = dom.Power
		}
		var cpu, mem int64
		for _, id := range sortedKeys(api) {
			v := api[id]
			cpu += int64(v.Cpunumber) * int64(v.Cpuspeed)
			mem += int64(v.Memory) << 20
			switch power, ok := doms[id]; {
			case v.State != "Running":
				diff = append(diff, fmt.Sprintf("%s: API lists %s (%s) on it as %s", sh.name, v.Name, id, v.State))
			case !ok:
				diff = append(diff, fmt.Sprintf("%s: API has %s (%s) Running here; the host has no such domain", sh.name, v.Name, id))
			case power != "Running":
				diff = append(diff, fmt.Sprintf("%s: %s (%s) is Running in the API, %s on the host", sh.name, v.Name, id, power))
			}
		}
		for _, id := range sortedKeys(doms) {
			if api[id] == nil {
				diff = append(diff, fmt.Sprintf("%s: domain %s (%s) runs here; the API places no such VM here", sh.name, id, doms[id]))
			}
		}
		h := byID[sh.id]
		switch {
		case h == nil:
			diff = append(diff, fmt.Sprintf("%s: listHosts does not list host %s", sh.name, sh.id))
		case h.Cpuallocatedvalue != cpu || h.Memoryallocated != mem:
			diff = append(diff, fmt.Sprintf("%s: allocated %d MHz / %d bytes, but its %d VMs hold %d MHz / %d bytes",
				sh.name, h.Cpuallocatedvalue, h.Memoryallocated, len(api), cpu, mem))
		case h.State != "Up":
			diff = append(diff, fmt.Sprintf("%s: host is %s", sh.name, h.State))
		}
	}
	return diff, nil
}

// vmsOn returns the IDs of the VMs the API says run on host hostID.
func (r *vmRun) vmsOn(hostID string) []string {
	r.t.Helper()
	vms, err := r.listVMs(hostID)
	if err != nil {
		r.t.Fatal(err)
	}
	return sortedKeys(vms)
}

// TestVMLifecycleOnSimulatedHosts runs `stratus dev --servers 3 --hosts 3`
// and drives VMs through HAProxy with the Go SDK, comparing after every
// phase the API with the domain lists the agents read from libvirt: 30
// deploys; stop, start, reboot, migrate, data volumes and a snapshot;
// destroy, recover, expunge; 30 more deploys while the Raft leader is
// killed with SIGKILL; and an agent killed and restarted under its VMs.
// A sampler watches every host all along for a VM on two hosts at once.
func TestVMLifecycleOnSimulatedHosts(t *testing.T) {
	bin := requireE2E(t)
	begin := time.Now()
	d := startDevCloud(t, bin, 3)
	ctx, cancel := context.WithTimeout(context.Background(), vmTestTimeout)
	defer cancel()
	sampler := newHostSampler(d.hosts)
	sctx, stopSampler := context.WithCancel(ctx)
	var swg sync.WaitGroup
	swg.Go(func() { sampler.run(sctx) })
	defer func() { stopSampler(); swg.Wait() }()
	r := newVMRun(t, d, sampler)
	r.phases = append(r.phases, fmt.Sprintf("setup %s", time.Since(begin).Round(time.Millisecond)))

	vmLifecyclePhases(ctx, r)
	vmLeaderKillPhase(ctx, r)
	vmAgentRestartPhase(ctx, r)

	sampler.check(t, "end")
	t.Logf("e2e: phases: %s", strings.Join(r.phases, ", "))
	t.Logf("e2e: host sampler: %s; API retries: %s", sampler, r.retrySummary())
	t.Logf("e2e: whole test %s", time.Since(begin).Round(time.Millisecond))
	d.c.checkNoCrash()
}

// vmLifecyclePhases deploys 30 VMs and takes them through every command.
func vmLifecyclePhases(ctx context.Context, r *vmRun) {
	t := r.t
	t0 := time.Now()
	ids, _ := r.deployVMs(ctx, "deploy", "vm", vmCount, nil)
	deployed := r.expectVMs("deploy", ids, "Running")
	r.requireUniqueIPs("deploy", deployed)
	r.requireOnNetwork("deploy", deployed)
	checkHostsMatchAPI(t, r, "deploy")
	r.phase("deploy", t0)

	t0 = time.Now()
	stopped := ids[0:10]
	r.vmJob(ctx, "stop", stopped, r.stop)
	r.expectVMs("stop", stopped, "Stopped")
	checkHostsMatchAPI(t, r, "stop")
	r.vmJob(ctx, "start", stopped, r.start)
	r.expectVMs("start", stopped, "Running")
	checkHostsMatchAPI(t, r, "start")
	r.phase("stop+start", t0)

	t0 = time.Now()
	rebooted := ids[10:15]
	before := r.expectVMs("reboot", rebooted, "Running")
	r.vmJob(ctx, "reboot", rebooted, r.reboot)
	after := r.expectVMs("reboot", rebooted, "Running")
	reboots := r.agentLogVMs(domainRebootedRE)
	for _, id := range rebooted {
		if after[id].Hostid != before[id].Hostid {
			t.Fatalf("reboot moved %s from host %s to %s", id, before[id].Hostid, after[id].Hostid)
		}
		if len(reboots[id]) != 1 || r.d.hostByID(after[id].Hostid).name != reboots[id][0] {
			t.Fatalf("reboot: VM %s on %s was rebooted by the agents of %v, want its own host once", id, after[id].Hostname, reboots[id])
		}
	}
	checkHostsMatchAPI(t, r, "reboot")
	r.phase("reboot", t0)

	t0 = time.Now()
	migrateVMs(ctx, r, ids[15:20])
	r.phase("migrate", t0)

	t0 = time.Now()
	volumesAndSnapshot(ctx, r, ids[20:23])
	r.phase("volumes+snapshot", t0)

	t0 = time.Now()
	destroyed := ids[20:30]
	r.vmJob(ctx, "destroy", destroyed, r.destroy(false))
	r.expectVMs("destroy", destroyed, "Destroyed")
	checkHostsMatchAPI(t, r, "destroy")
	recovered := destroyed[:2]
	for _, id := range recovered {
		if err := r.call("recoverVirtualMachine", func() error {
			_, err := r.cs.VirtualMachine.RecoverVirtualMachine(r.cs.VirtualMachine.NewRecoverVirtualMachineParams(id))
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	r.expectVMs("recover", recovered, "Stopped")
	r.expectVMs("recover", destroyed[2:], "Destroyed")
	r.vmJob(ctx, "expunge", ids, r.destroy(true))
	r.expectVMs("expunge", ids, "gone")
	checkHostsMatchAPI(t, r, "expunge")
	for _, h := range r.d.hosts {
		if left := r.vmsOn(h.id); len(left) > 0 {
			t.Fatalf("expunge: host %s still holds VMs %v", h.name, left)
		}
	}
	r.phase("destroy+recover+expunge", t0)
}

// migrateVMs moves each VM to a host findHostsForMigration offers and
// checks it runs there and its old host's domain list no longer has it.
func migrateVMs(ctx context.Context, r *vmRun, ids []string) {
	t := r.t
	before := r.expectVMs("migrate", ids, "Running")
	target := map[string]string{}
	for _, id := range ids {
		var resp *cloudstack.FindHostsForMigrationResponse
		if err := r.call("findHostsForMigration", func() (err error) {
			resp, err = r.cs.Host.FindHostsForMigration(r.cs.Host.NewFindHostsForMigrationParams(id))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		for _, h := range resp.Host {
			if h.Id == before[id].Hostid {
				t.Fatalf("findHostsForMigration of %s offers its own host %s", id, h.Name)
			}
			if h.Suitableformigration && target[id] == "" {
				target[id] = h.Id
			}
		}
		if target[id] == "" {
			t.Fatalf("findHostsForMigration of %s offers no suitable host: %d hosts", id, resp.Count)
		}
	}
	r.vmJob(ctx, "migrate", ids, func(id string) (string, error) {
		p := r.cs.VirtualMachine.NewMigrateVirtualMachineParams(id)
		p.SetHostid(target[id])
		v, err := r.cs.VirtualMachine.MigrateVirtualMachine(p)
		if err != nil {
			return "", err
		}
		return v.JobID, nil
	})
	after := r.expectVMs("migrate", ids, "Running")
	for _, id := range ids {
		if after[id].Hostid != target[id] {
			t.Fatalf("migrate: %s is on host %s, asked for %s", id, after[id].Hostid, target[id])
		}
	}
	checkHostsMatchAPI(t, r, "migrate")
	// checkHostsMatchAPI saw each old host without the VM; say so plainly.
	for _, id := range ids {
		for _, h := range r.d.hosts {
			if h.id != before[id].Hostid {
				continue
			}
			st, err := h.status(r.d.probe)
			if err != nil {
				t.Fatal(err)
			}
			for _, dom := range st.Domains {
				if dom.UUID == id {
					t.Fatalf("migrate: %s left host %s but its domain is still there (%s)", id, h.name, dom.Power)
				}
			}
		}
	}
}

// volumesAndSnapshot creates a data volume for each VM and attaches it,
// restarts the first VM so its agent boots it with the new disk, and
// snapshots the second VM's root volume.
func volumesAndSnapshot(ctx context.Context, r *vmRun, vms []string) {
	t := r.t
	names := make([]string, len(vms))
	for i := range vms {
		names[i] = fmt.Sprintf("data-%02d", i)
	}
	created := r.runJobs(ctx, names, vmParallel, func(name string) (string, string, error) {
		p := r.cs.Volume.NewCreateVolumeParams()
		p.SetName(name)
		p.SetDiskofferingid(r.diskOffering)
		p.SetZoneid(r.zone)
		v, err := r.cs.Volume.CreateVolume(p)
		if err != nil {
			return "", "", err
		}
		return v.Id, v.JobID, nil
	}, nil)
	r.requireJobsOK("createVolume", created)
	volOf := map[string]string{}
	for i, o := range created {
		volOf[vms[i]] = o.id
	}
	r.vmJob(ctx, "attachVolume", vms, func(vm string) (string, error) {
		v, err := r.cs.Volume.AttachVolume(r.cs.Volume.NewAttachVolumeParams(volOf[vm], vm))
		if err != nil {
			return "", err
		}
		return v.JobID, nil
	})
	for _, vm := range vms {
		vols := r.volumesOf(vm)
		var types []string
		for _, v := range vols {
			types = append(types, v.Type)
			if v.Type == "DATADISK" && v.Id != volOf[vm] {
				t.Fatalf("attachVolume: VM %s has data disk %s, attached %s", vm, v.Id, volOf[vm])
			}
		}
		sort.Strings(types)
		if strings.Join(types, ",") != "DATADISK,ROOT" {
			t.Fatalf("attachVolume: VM %s lists volumes %v, want ROOT and DATADISK", vm, types)
		}
	}
	// A disk attached to a running VM reaches it at its next start.
	r.vmJob(ctx, "stop with a data disk", vms[:1], r.stop)
	r.vmJob(ctx, "start with a data disk", vms[:1], r.start)
	r.expectVMs("start with a data disk", vms, "Running")
	checkHostsMatchAPI(t, r, "volumes")

	var root string
	for _, v := range r.volumesOf(vms[1]) {
		if v.Type == "ROOT" {
			root = v.Id
		}
	}
	snaps := r.runJobs(ctx, []string{root}, 1, func(vol string) (string, string, error) {
		s, err := r.cs.Snapshot.CreateSnapshot(r.cs.Snapshot.NewCreateSnapshotParams(vol))
		if err != nil {
			return "", "", err
		}
		return s.Id, s.JobID, nil
	}, nil)
	r.requireJobsOK("createSnapshot", snaps)
	lp := r.cs.Snapshot.NewListSnapshotsParams()
	lp.SetVolumeid(root)
	lp.SetListall(true)
	var ls *cloudstack.ListSnapshotsResponse
	if err := r.call("listSnapshots", func() (err error) { ls, err = r.cs.Snapshot.ListSnapshots(lp); return err }); err != nil {
		t.Fatal(err)
	}
	if ls.Count != 1 || len(ls.Snapshots) != 1 || ls.Snapshots[0].Id != snaps[0].id || ls.Snapshots[0].Volumeid != root {
		t.Fatalf("listSnapshots volumeid=%s: %d snapshots %+v, want the one just taken (%s)", root, ls.Count, ls.Snapshots, snaps[0].id)
	}
	t.Logf("e2e: snapshot %s of root volume %s is %s", ls.Snapshots[0].Id, root, ls.Snapshots[0].State)
	r.expectVMs("snapshot", vms, "Running")
	checkHostsMatchAPI(t, r, "snapshot")
}

// volumesOf lists the volumes attached to a VM.
func (r *vmRun) volumesOf(vm string) []*cloudstack.Volume {
	r.t.Helper()
	p := r.cs.Volume.NewListVolumesParams()
	p.SetVirtualmachineid(vm)
	p.SetListall(true)
	var resp *cloudstack.ListVolumesResponse
	if err := r.call("listVolumes", func() (err error) { resp, err = r.cs.Volume.ListVolumes(p); return err }); err != nil {
		r.t.Fatal(err)
	}
	return resp.Volumes
}
