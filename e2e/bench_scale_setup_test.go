package e2e

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/cloudstack-go/v2/cloudstack"
)

// Names of the scale benchmark's zone.
const (
	scaleZone    = "scale-zone"
	scalePod     = "scale-pod"
	scaleCluster = "scale-cluster-%d"
)

// scaleZoneIDs is what the deploys need, and the tenant that deploys too.
type scaleZoneIDs struct {
	zone, offering, template string
	tenant                   adminKeys
}

// setupScaleZone makes the zone through the API as an operator would: a
// zone and pod, one zone-wide primary pool big enough for every VM, an
// image store, a tiny offering (1 CPU, 128 MiB: ten VMs per host use
// little of a 64-CPU, 256 GiB simulated host), a template served from
// loopback and downloaded, and a tenant account with keys. The clusters
// come from stratus sim itself (it adds them with the admin keys).
func setupScaleZone(t *testing.T, c *testCluster, api *scaleAPI) *scaleZoneIDs {
	t.Helper()
	start := time.Now()
	cs := newSDK(c.servers[0].apiURL(), c.keys)
	images := newImageServer(t)
	images.sendHalf()
	images.sendRest()
	if _, err := cs.Configuration.UpdateConfiguration(allowInternalSites(cs, "127.0.0.0/8")); err != nil {
		t.Fatalf("allow loopback image downloads: %v", err)
	}
	zp := cs.Zone.NewCreateZoneParams("8.8.8.8", "10.0.0.1", scaleZone, "Advanced")
	// A /16 holds 65,533 guest addresses, fewer than the benchmark's
	// 100,000 VMs; a /12 (10.64.0.0 to 10.79.255.255) holds a million,
	// apart from the pod's 10.0.0.0/24 and the hosts' 10.128.0.0 onwards.
	zp.SetGuestcidraddress("10.64.0.0/12")
	zp.SetAllocationstate("Enabled")
	zone, err := cs.Zone.CreateZone(zp)
	if err != nil {
		t.Fatalf("createZone %s: %v", scaleZone, err)
	}
	pp := cs.Pod.NewCreatePodParams(scalePod, zone.Id)
	pp.SetGateway("10.0.0.1")
	pp.SetNetmask("255.255.255.0")
	pp.SetStartip("10.0.0.100")
	pp.SetEndip("10.0.0.200")
	if _, err := cs.Pod.CreatePod(pp); err != nil {
		t.Fatalf("createPod: %v", err)
	}
	sp := cs.Pool.NewCreateStoragePoolParams("scale-primary", "nfs://127.0.0.1/export/scale-primary", zone.Id)
	sp.SetScope("zone")
	sp.SetHypervisor("KVM")
	sp.SetCapacitybytes(int64(1) << 50)
	if _, err := cs.Pool.CreateStoragePool(sp); err != nil {
		t.Fatalf("createStoragePool scope=zone: %v", err)
	}
	ip := cs.ImageStore.NewAddImageStoreParams("NFS")
	ip.SetName("scale-secondary")
	ip.SetUrl("nfs://127.0.0.1/export/scale-secondary")
	ip.SetZoneid(zone.Id)
	if _, err := cs.ImageStore.AddImageStore(ip); err != nil {
		t.Fatalf("addImageStore: %v", err)
	}
	op := cs.ServiceOffering.NewCreateServiceOfferingParams("1 CPU, 128 MiB", "scale-tiny")
	op.SetCpunumber(1)
	op.SetCpuspeed(500)
	op.SetMemory(128)
	off, err := cs.ServiceOffering.CreateServiceOffering(op)
	if err != nil {
		t.Fatalf("createServiceOffering scale-tiny: %v", err)
	}
	z := &scaleZoneIDs{zone: zone.Id, offering: off.Id}
	z.template = registerScaleTemplate(t, cs, images, zone.Id)
	z.tenant = createScaleTenant(t, cs)
	t.Logf("e2e: scale zone set up in %s", time.Since(start).Round(time.Millisecond))
	return z
}

func registerScaleTemplate(t *testing.T, cs *cloudstack.CloudStackClient, images *imageServer, zoneID string) string {
	t.Helper()
	types, err := cs.GuestOS.ListOsTypes(cs.GuestOS.NewListOsTypesParams())
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
	tp := cs.Template.NewRegisterTemplateParams("a small qcow2 for the scale benchmark", "QCOW2", "KVM", "scale-template",
		images.add("scale.qcow2", testQcow2()))
	tp.SetZoneid(zoneID)
	tp.SetOstypeid(osType)
	tp.SetIspublic(true)
	tp.SetIsfeatured(true)
	r, err := cs.Template.RegisterTemplate(tp)
	if err != nil || len(r.RegisterTemplate) != 1 {
		t.Fatalf("registerTemplate: %+v, %v", r, err)
	}
	id := r.RegisterTemplate[0].Id
	checkTemplateDownloaded(t, "scale template", waitTemplateSettled(t, cs, "all", id, zoneID))
	return id
}

// createScaleTenant makes a user account in ROOT with its own keys.
func createScaleTenant(t *testing.T, cs *cloudstack.CloudStackClient) adminKeys {
	t.Helper()
	roots, err := cs.Domain.ListDomains(cs.Domain.NewListDomainsParams())
	if err != nil || len(roots.Domains) == 0 {
		t.Fatalf("listDomains: %+v, %v", roots, err)
	}
	p := cs.Account.NewCreateAccountParams("tenant@example.com", "Scale", "Tenant", "scale-tenant-password-1", "scaletenant")
	p.SetAccount("scale-tenant")
	p.SetDomainid(roots.Domains[0].Id)
	p.SetAccounttype(0)
	a, err := cs.Account.CreateAccount(p)
	if err != nil || len(a.User) != 1 {
		t.Fatalf("createAccount scale-tenant: %+v, %v", a, err)
	}
	k, err := cs.User.RegisterUserKeys(cs.User.NewRegisterUserKeysParams(a.User[0].Id))
	if err != nil || k.Apikey == "" || k.Secretkey == "" {
		t.Fatalf("registerUserKeys scaletenant: %+v, %v", k, err)
	}
	return adminKeys{APIKey: k.Apikey, SecretKey: k.Secretkey}
}

// setScaleSettings sets global settings with updateConfiguration before
// the hosts register, so they start on the timings those settings give.
func setScaleSettings(t *testing.T, c *testCluster, settings [][2]string) {
	t.Helper()
	err := updateSettings(newSDK(c.servers[0].apiURL(), c.keys), settings, func(what string, f func() error) error {
		if err := f(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		t.Logf("e2e: %s", what)
		return nil
	})
	if err != nil {
		t.Fatalf("STRATUS_SCALE_SETTINGS: %v", err)
	}
}

// simHostsPerProc is how many hosts one `stratus sim` process of the
// benchmark plays; more hosts take more processes, each with its own
// range (-first) and clusters. All 10,000 in one process shared one HTTP
// transport: at 46,000 VMs 13,858 of its goroutines waited on the
// transport's idle-pool lock, heartbeats missed their leases and the
// servers disconnected hosts that were alive (docs/benchmarks.md). Real
// hosts do not share a client, and one transport per host, or per group
// of hosts in one process, ran the process out of its 20,000 open files.
// Processes of 2,500 hosts divide both the lock's traffic and the
// descriptors.
const simHostsPerProc = 2500

// scaleSims are the benchmark's `stratus sim` processes; together they
// play cfg.hosts hosts. The report counts them as one "sim": their CPU
// and RSS are summed.
type scaleSims []*proc

// crashed is the first sim process that exited.
func (s scaleSims) crashed() error {
	for _, p := range s {
		if err := p.crashed(); err != nil {
			return err
		}
	}
	return nil
}

// stop stops every sim process with SIGTERM.
func (s scaleSims) stop() error {
	var errs []error
	for _, p := range s {
		errs = append(errs, p.stop())
	}
	return errors.Join(errs...)
}

// simProcShares splits hosts over processes of about perProc hosts, as
// evenly as the clusters allow: every process but the last plays a whole
// number of clusters, so no cluster spans two processes (a cluster larger
// than perProc makes a process larger too).
func simProcShares(hosts, perProc, perCluster int) []int {
	procs := (hosts + perProc - 1) / perProc
	if procs <= 1 {
		return []int{hosts}
	}
	clusters := (hosts + perCluster - 1) / perCluster
	per := (clusters + procs - 1) / procs * perCluster
	var shares []int
	for left := hosts; left > 0; left -= per {
		shares = append(shares, min(per, left))
	}
	return shares
}

// startScaleSim starts `stratus sim` processes for every host
// (simProcShares), each talking to all three servers (each host starts at
// a different one) and adding its own clusters; the ramp is shared
// between them.
func startScaleSim(t *testing.T, c *testCluster, z *scaleZoneIDs, cfg scaleConfig) scaleSims {
	t.Helper()
	var urls []string
	for _, s := range c.servers {
		urls = append(urls, s.baseURL())
	}
	perProc := cfg.simPerProc
	if perProc == 0 {
		perProc = simHostsPerProc
	}
	shares := simProcShares(cfg.hosts, perProc, cfg.perCluster)
	ramp, err := strconv.ParseFloat(cfg.simRamp, 64)
	if err != nil || ramp <= 0 {
		t.Fatalf("STRATUS_SCALE_RAMP %q: want hosts per second, a positive number", cfg.simRamp)
	}
	var sims scaleSims
	first := 1
	for i, n := range shares {
		name, clusterFmt := "sim", scaleCluster
		if len(shares) > 1 {
			name, clusterFmt = fmt.Sprintf("sim-%d", i+1), fmt.Sprintf("scale-g%d-cluster-%%d", i+1)
		}
		p := &proc{name: "stratus-" + name, logPath: filepath.Join(c.dir, name+".log"),
			env: []string{"STRATUS_CLUSTER_SECRET=" + testSecret, "STRATUS_API_KEY=" + c.keys.APIKey, "STRATUS_SECRET_KEY=" + c.keys.SecretKey},
			args: []string{"sim", "-hosts", fmt.Sprint(n), "-first", fmt.Sprint(first), "-servers", strings.Join(urls, ","),
				"-zone", scaleZone, "-pod", scalePod, "-cluster", clusterFmt, "-hosts-per-cluster", fmt.Sprint(cfg.perCluster),
				"-host-cpus", fmt.Sprint(cfg.hostCPUs), "-host-memory-gib", fmt.Sprint(cfg.hostMemGiB),
				"-ramp", strconv.FormatFloat(ramp*float64(n)/float64(cfg.hosts), 'f', -1, 64), "-progress", "5s",
				"-data-dir", scaleSimDataDir(t, c, name), "-pprof-addr", "127.0.0.1:0"},
			nice: cfg.simNice}
		t.Cleanup(func() {
			p.kill9()
			if t.Failed() {
				t.Logf("e2e: log of %s (last %d lines):\n%s", p.name, logTailOnError, p.logTail(logTailOnError))
			}
		})
		if err := p.start(c.bin); err != nil {
			t.Fatal(err)
		}
		sims = append(sims, p)
		first += n
	}
	if len(sims) > 1 {
		t.Logf("e2e: %d hosts in %d sim processes of %v hosts", cfg.hosts, len(sims), shares)
	}
	return sims
}

// scaleSimDataDir is a sim process's data dir: on tmpfs (/dev/shm) when
// there is one, as stratus sim's own default, since every agent fsyncs
// its lease file at each heartbeat, and on the servers' disk those fsyncs
// would be charged to the servers' raft log. The profiler finds the
// process's pprof-addr file through c.dir/NAME, a link to it.
func scaleSimDataDir(t *testing.T, c *testCluster, name string) string {
	t.Helper()
	link := filepath.Join(c.dir, name)
	dir, err := os.MkdirTemp("/dev/shm", "stratus-scale-"+name+"-")
	if err != nil {
		return link // no tmpfs: the test's own dir
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Symlink(dir, link); err != nil {
		t.Fatalf("link the sim's data dir: %v", err)
	}
	return dir
}

// waitScaleHostsUp waits until every simulated host is Up in the API and
// returns how long that took from the sim's start.
func waitScaleHostsUp(t *testing.T, c *testCluster, api *scaleAPI, z *scaleZoneIDs, sim scaleSims, cfg scaleConfig) time.Duration {
	t.Helper()
	start := time.Now()
	limit := 2*time.Minute + time.Duration(cfg.hosts)*30*time.Millisecond
	last, lastLog := -1, time.Now()
	for {
		if err := sim.crashed(); err != nil {
			t.Fatal(err)
		}
		n, err := api.count(c.servers[0], c.keys, "listHosts", url.Values{"zoneid": {z.zone}, "state": {"Up"}, "type": {"Routing"}})
		if err == nil && n >= cfg.hosts {
			d := time.Since(start)
			t.Logf("e2e: all %d simulated hosts Up in %s", cfg.hosts, d.Round(time.Millisecond))
			return d
		}
		if err == nil && (n != last && time.Since(lastLog) > 10*time.Second) {
			t.Logf("e2e: %d of %d hosts Up after %s", n, cfg.hosts, time.Since(start).Round(time.Second))
			last, lastLog = n, time.Now()
		}
		if time.Since(start) > limit {
			t.Fatalf("only %d of %d hosts Up after %s (last error %v)", n, cfg.hosts, limit, err)
		}
		time.Sleep(time.Second)
	}
}
