package agent

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/stratus-cloud/stratus/hypervisor"
)

// spy wraps the hypervisor fake to count starts and reboots, and can play
// a guest that ignores ACPI shutdown requests.
type spy struct {
	*hypervisor.Fake
	mu             sync.Mutex
	starts         map[string]int
	reboots        map[string]int
	ignoreShutdown bool
	startErr       error // Start fails with it when set
	stopErr        error // Stop fails with it when set
	stopCalls      int
	migrateCalls   int
}

func (s *spy) Migrate(ctx context.Context, uuid, destURI string) error {
	s.mu.Lock()
	s.migrateCalls++
	s.mu.Unlock()
	return s.Fake.Migrate(ctx, uuid, destURI)
}

func newSpy(host string) *spy {
	return &spy{
		Fake:   hypervisor.NewFake(hypervisor.HostFacts{Hostname: host, CPUs: 8, MemoryBytes: 32 << 30, Arch: "x86_64"}),
		starts: map[string]int{}, reboots: map[string]int{},
	}
}

func (s *spy) Start(ctx context.Context, spec hypervisor.DomainSpec) error {
	s.mu.Lock()
	err := s.startErr
	if err == nil {
		s.starts[spec.UUID]++
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return s.Fake.Start(ctx, spec)
}

func (s *spy) Stop(ctx context.Context, uuid string) error {
	s.mu.Lock()
	s.stopCalls++
	err := s.stopErr
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return s.Fake.Stop(ctx, uuid)
}

// set changes the spy's fields under its lock.
func (s *spy) set(f func(*spy)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *spy) Reboot(ctx context.Context, uuid string) error {
	s.mu.Lock()
	s.reboots[uuid]++
	s.mu.Unlock()
	return s.Fake.Reboot(ctx, uuid)
}

func (s *spy) Shutdown(ctx context.Context, uuid string) error {
	s.mu.Lock()
	ignore := s.ignoreShutdown
	s.mu.Unlock()
	if ignore {
		return nil
	}
	return s.Fake.Shutdown(ctx, uuid)
}

func (s *spy) count(m map[string]int, uuid string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return m[uuid]
}

// power returns a domain's power, "absent" when it is not defined.
func (s *spy) power(uuid string) hypervisor.PowerState {
	st, err := s.Domain(context.Background(), uuid)
	if errors.Is(err, hypervisor.ErrNotFound) {
		return "absent"
	}
	if err != nil {
		return hypervisor.PowerUnknown
	}
	return st.Power
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// running is a started agent.
type running struct {
	*Agent
	stop func()
}

// startAgent runs an agent with test timings against servers.
func startAgent(t *testing.T, drv hypervisor.Driver, servers []string, dir string, mut func(*Config)) *running {
	t.Helper()
	cfg := Config{
		Servers: servers, DataDir: dir, Address: "10.0.0.5", Name: "kvm1", Zone: "z1", Cluster: "c1",
		Driver: drv, Version: "test",
		Logger:   hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: logWriter{t}}),
		PollWait: 2 * time.Second, ShutdownGrace: 300 * time.Millisecond,
		RetryBase: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond,
	}
	if mut != nil {
		mut(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatalf("new agent: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return &running{Agent: a, stop: stop}
}

// withHost adds host-a with its token and starts an agent for it.
func withHost(t *testing.T, c *testCloud, drv hypervisor.Driver, servers []string, mut func(*Config)) *running {
	t.Helper()
	c.addHost("host-a", "tok-a", "10.0.0.5")
	a := startAgent(t, drv, servers, t.TempDir(), func(cfg *Config) {
		cfg.Token = "tok-a"
		if mut != nil {
			mut(cfg)
		}
	})
	waitFor(t, "registration", func() bool { return a.HostID() == "host-a" })
	return a
}

func vm(id string, power string) DesiredVM {
	return DesiredVM{ID: id, Power: power, Spec: hypervisor.DomainSpec{
		UUID: id, Name: hypervisor.DomainPrefix + id, VCPUs: 1, MemoryBytes: 1 << 30,
		Disks: []hypervisor.DiskSpec{{Format: "qcow2", Device: "vda", Serial: "vol-" + id}},
	}}
}

// reported waits for the newest report of VM id to satisfy ok.
func reported(t *testing.T, c *testCloud, id, what string, ok func(VMReport) bool) VMReport {
	t.Helper()
	var last VMReport
	waitFor(t, id+" reported "+what, func() bool {
		r, found := c.lastVM(id)
		last = r
		return found && ok(r)
	})
	return last
}

// reportedEver waits for any report of VM id to satisfy ok.
func reportedEver(t *testing.T, c *testCloud, id, what string, ok func(VMReport) bool) VMReport {
	t.Helper()
	var hit VMReport
	waitFor(t, id+" reported "+what, func() bool {
		for _, r := range c.vmReports(id) {
			if ok(r) {
				hit = r
				return true
			}
		}
		return false
	})
	return hit
}

func isPower(p hypervisor.PowerState) func(VMReport) bool {
	return func(r VMReport) bool { return r.Power == p && r.Error == "" }
}

func TestRegistrationKeepsTokenAndRestartReusesIt(t *testing.T) {
	c := newCloud(t)
	srv := c.serve("s1")
	dir := t.TempDir()
	drv := newSpy("kvm1")
	a := startAgent(t, drv, []string{srv.URL}, dir, func(cfg *Config) { cfg.RegistrationToken = c.regToken })
	waitFor(t, "registration", func() bool { return a.HostID() != "" })
	id := a.HostID()
	waitFor(t, "heartbeats signed with the new token", func() bool { return c.beats(id) >= 2 })

	path := filepath.Join(dir, hostFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("host.json mode %v, want 0600", fi.Mode().Perm())
	}
	var rec hostRecord
	if err := readJSON(path, &rec); err != nil {
		t.Fatal(err)
	}
	var token string
	c.with(func() { token = c.hosts[id].token })
	if rec.HostID != id || rec.Token != token {
		t.Errorf("host.json = %+v, want host %s and the token the server issued", rec, id)
	}
	a.stop()

	// A restart with a wrong registration token works: the kept token is
	// used, not the registration token.
	a2 := startAgent(t, drv, []string{srv.URL}, dir, func(cfg *Config) { cfg.RegistrationToken = "wrong" })
	waitFor(t, "registration again", func() bool { return a2.HostID() == id })
	before := c.beats(id)
	waitFor(t, "heartbeats after the restart", func() bool { return c.beats(id) >= before+2 })
	c.with(func() {
		if len(c.regs) != 2 || c.regs[0] != "registration" || c.regs[1] != "token" {
			t.Errorf("registrations %v, want [registration token]", c.regs)
		}
	})
	if sent, ttl := a2.Lease(); sent.IsZero() || ttl != time.Second {
		t.Errorf("lease = %v, %v; want a send time and the server's 1s TTL", sent, ttl)
	}
}

func TestHostUnknownRegistersAgain(t *testing.T) {
	c := newCloud(t)
	srv := c.serve("s1")
	a := startAgent(t, newSpy("kvm1"), []string{srv.URL}, t.TempDir(), func(cfg *Config) { cfg.RegistrationToken = c.regToken })
	waitFor(t, "registration", func() bool { return a.HostID() == "host-1" })
	c.deleteHost("host-1")
	// The kept token is refused (the host is gone): the agent falls back
	// to the registration token and gets a new host.
	waitFor(t, "a new registration", func() bool { return a.HostID() == "host-2" })
	waitFor(t, "heartbeats of the new host", func() bool { return c.beats("host-2") >= 1 })
}

func TestWrongProofIgnored(t *testing.T) {
	c := newCloud(t)
	srv := c.serve("s1")
	drv := newSpy("kvm1")
	withHost(t, c, drv, []string{srv.URL}, nil)
	c.with(func() { c.badProof = true })
	c.setVM("host-a", vm("vm1", WantRunning))
	waitFor(t, "answers with a wrong proof", func() bool {
		n := 0
		c.with(func() { n = c.badSent })
		return n >= 5
	})
	if n := drv.count(drv.starts, "vm1"); n != 0 {
		t.Fatalf("started %d times on an unproven answer", n)
	}
	c.with(func() { c.badProof = false })
	reported(t, c, "vm1", "Running", isPower(hypervisor.PowerRunning))
}

func TestRunningStartsOnceWithVolumes(t *testing.T) {
	c := newCloud(t)
	srv := c.serve("s1")
	drv := newSpy("kvm1")
	withHost(t, c, drv, []string{srv.URL}, nil)
	v := vm("vm1", WantRunning)
	v.Volumes = []DesiredVolume{{ID: "vol-vm1", Pool: "primary", PoolPath: "/pools/primary", Name: "vm1-root", SizeBytes: 8 << 30, Format: "qcow2"}}
	c.setVM("host-a", v)
	reported(t, c, "vm1", "Running", isPower(hypervisor.PowerRunning))
	vol, ok := c.volume("vol-vm1")
	if !ok || vol.Path != "/pools/primary/vm1-root" || vol.SizeBytes != 8<<30 || vol.Error != "" {
		t.Fatalf("volume report %+v", vol)
	}
	spec, _ := drv.Spec("vm1")
	if len(spec.Disks) != 1 || spec.Disks[0].Path != "/pools/primary/vm1-root" {
		t.Fatalf("disk of the started domain: %+v", spec.Disks)
	}
	// More desired answers (other VMs come and go) never start vm1 again.
	for i, p := range []string{WantStopped, WantRunning, WantStopped} {
		c.setVM("host-a", vm("vm2", p))
		want := hypervisor.PowerStopped
		if p == WantRunning {
			want = hypervisor.PowerRunning
		}
		reported(t, c, "vm2", string(want)+" round "+string(rune('0'+i)), isPower(want))
	}
	if n := drv.count(drv.starts, "vm1"); n != 1 {
		t.Fatalf("vm1 started %d times, want 1", n)
	}
	if len(c.vmReports("vm1")) != 1 {
		t.Errorf("vm1 reported %d times without a change, want 1", len(c.vmReports("vm1")))
	}
}

func TestStartFailureReportedWithError(t *testing.T) {
	c := newCloud(t)
	srv := c.serve("s1")
	drv := newSpy("kvm1")
	withHost(t, c, drv, []string{srv.URL}, nil)
	drv.FailNext("Start", errors.New("no space left on device"))
	c.setVM("host-a", vm("vm1", WantRunning))
	r := reportedEver(t, c, "vm1", "an error", func(r VMReport) bool { return r.Error != "" })
	if r.Power != hypervisor.PowerStopped || r.Error != "no space left on device" {
		t.Errorf("report %+v", r)
	}
	// The agent retries after its backoff and succeeds.
	reported(t, c, "vm1", "Running", isPower(hypervisor.PowerRunning))
}

func TestStopGracefulForcedAndForceStop(t *testing.T) {
	c := newCloud(t)
	srv := c.serve("s1")
	drv := newSpy("kvm1")
	withHost(t, c, drv, []string{srv.URL}, nil)
	c.setVM("host-a", vm("vm1", WantRunning))
	c.setVM("host-a", vm("vm2", WantRunning))
	reported(t, c, "vm1", "Running", isPower(hypervisor.PowerRunning))
	reported(t, c, "vm2", "Running", isPower(hypervisor.PowerRunning))

	// A guest that obeys ACPI.
	c.editVM("host-a", "vm1", func(v *DesiredVM) { v.Power = WantStopped })
	reported(t, c, "vm1", "Stopped", isPower(hypervisor.PowerStopped))
	if p := drv.power("vm1"); p != hypervisor.PowerStopped {
		t.Fatalf("vm1 is %s", p)
	}

	// A guest that ignores it is powered off after the grace period.
	drv.mu.Lock()
	drv.ignoreShutdown = true
	drv.mu.Unlock()
	c.editVM("host-a", "vm2", func(v *DesiredVM) { v.Power = WantStopped })
	reported(t, c, "vm2", "ShuttingDown", isPower(hypervisor.PowerShutdown))
	reported(t, c, "vm2", "Stopped after the grace", isPower(hypervisor.PowerStopped))

	// ForceStop pulls the plug at once.
	c.editVM("host-a", "vm1", func(v *DesiredVM) { v.Power = WantRunning })
	reported(t, c, "vm1", "Running again", isPower(hypervisor.PowerRunning))
	c.editVM("host-a", "vm1", func(v *DesiredVM) { v.Power, v.ForceStop = WantStopped, true })
	reported(t, c, "vm1", "Stopped by force", isPower(hypervisor.PowerStopped))
	for _, r := range c.vmReports("vm1") {
		if r.Power == hypervisor.PowerShutdown {
			t.Errorf("vm1 was reported shutting down: %+v", r)
		}
	}
}

func TestRebootGeneration(t *testing.T) {
	c := newCloud(t)
	srv := c.serve("s1")
	drv := newSpy("kvm1")
	c.addHost("host-a", "tok-a", "10.0.0.5")
	dir := t.TempDir()
	a := startAgent(t, drv, []string{srv.URL}, dir, func(cfg *Config) { cfg.Token = "tok-a" })
	v := vm("vm1", WantRunning)
	v.RebootGen = 3 // reboots asked before this host ran it: a fresh boot covers them
	c.setVM("host-a", v)
	reported(t, c, "vm1", "Running", func(r VMReport) bool { return r.Power == hypervisor.PowerRunning && r.RebootGen == 3 })
	if n := drv.count(drv.reboots, "vm1"); n != 0 {
		t.Fatalf("rebooted %d times at start", n)
	}
	c.editVM("host-a", "vm1", func(v *DesiredVM) { v.RebootGen = 4 })
	reported(t, c, "vm1", "reboot 4", func(r VMReport) bool { return r.RebootGen == 4 })
	if n := drv.count(drv.reboots, "vm1"); n != 1 {
		t.Fatalf("rebooted %d times, want 1", n)
	}
	// A restarted agent remembers the generation it carried out.
	a.stop()
	reports := len(c.vmReports("vm1"))
	a2 := startAgent(t, drv, []string{srv.URL}, dir, func(cfg *Config) { cfg.Token = "tok-a" })
	waitFor(t, "registration", func() bool { return a2.HostID() == "host-a" })
	waitFor(t, "vm1 reported after the restart", func() bool { return len(c.vmReports("vm1")) > reports })
	c.editVM("host-a", "vm1", func(v *DesiredVM) { v.RebootGen = 5 })
	reported(t, c, "vm1", "reboot 5", func(r VMReport) bool { return r.RebootGen == 5 })
	if n := drv.count(drv.reboots, "vm1"); n != 2 {
		t.Fatalf("rebooted %d times, want 2", n)
	}
}

func TestAbsentAndOrphansDestroyed(t *testing.T) {
	c := newCloud(t)
	srv := c.serve("s1")
	drv := newSpy("kvm1")
	ctx := context.Background()
	// Left over from before the agent started: a managed domain nobody
	// wants, and the operator's own domain.
	if err := drv.Fake.Start(ctx, hypervisor.DomainSpec{UUID: "orphan", Name: hypervisor.DomainPrefix + "orphan"}); err != nil {
		t.Fatal(err)
	}
	drv.DefineForeign("mine", "operators-vm")
	c.with(func() { c.desiredOK = false })
	withHost(t, c, drv, []string{srv.URL}, nil)
	c.setVM("host-a", vm("vm1", WantRunning))
	waitFor(t, "failed desired-state reads", func() bool {
		n := 0
		c.with(func() { n = c.failSent })
		return n >= 3
	})
	if p := drv.power("orphan"); p != hypervisor.PowerRunning {
		t.Fatalf("orphan is %s without a desired state", p)
	}
	c.with(func() { c.desiredOK = true })
	reported(t, c, "vm1", "Running", isPower(hypervisor.PowerRunning))
	waitFor(t, "orphan destroyed", func() bool { return drv.power("orphan") == "absent" })
	if _, err := drv.Fake.Domain(ctx, "mine"); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Fatalf("foreign domain listed: %v", err)
	}
	c.editVM("host-a", "vm1", func(v *DesiredVM) { v.Power = WantAbsent })
	reported(t, c, "vm1", "Absent", func(r VMReport) bool { return r.Absent && r.Power == hypervisor.PowerStopped })
	if p := drv.power("vm1"); p != "absent" {
		t.Fatalf("vm1 is %s", p)
	}
	// A VM expunged while it ran: it leaves the desired state entirely.
	c.setVM("host-a", vm("vm2", WantRunning))
	reported(t, c, "vm2", "Running", isPower(hypervisor.PowerRunning))
	c.removeVM("host-a", "vm2")
	waitFor(t, "vm2 destroyed as an orphan", func() bool { return drv.power("vm2") == "absent" })
}

func TestColdMigrationHandOver(t *testing.T) {
	c := newCloud(t)
	srv := c.serve("s1")
	src, dst := newSpy("kvm1"), newSpy("kvm2")
	withHost(t, c, src, []string{srv.URL}, nil)
	c.addHost("host-b", "tok-b", "10.0.0.6")
	b := startAgent(t, dst, []string{srv.URL}, t.TempDir(), func(cfg *Config) { cfg.Token, cfg.Address = "tok-b", "10.0.0.6" })
	waitFor(t, "target registration", func() bool { return b.HostID() == "host-b" })

	c.setVM("host-a", vm("vm1", WantRunning))
	reported(t, c, "vm1", "Running", isPower(hypervisor.PowerRunning))
	in := vm("vm1", WantStopped)
	in.Incoming = true
	c.setVM("host-b", in)
	c.editVM("host-a", "vm1", func(v *DesiredVM) { v.MigrateTo, v.MigrateToURI = "host-b", dst.URI() })
	reported(t, c, "vm1", "MigratedOut", func(r VMReport) bool { return r.MigratedOut && r.Absent })
	if p := src.power("vm1"); p != "absent" {
		t.Fatalf("source still has vm1: %s", p)
	}
	if p := dst.power("vm1"); p != "absent" {
		t.Fatalf("target touched an incoming VM: %s", p)
	}
	// The servers make the target the VM's host.
	c.removeVM("host-a", "vm1")
	c.editVM("host-b", "vm1", func(v *DesiredVM) { v.Incoming, v.Power = false, WantRunning })
	waitFor(t, "vm1 running on the target", func() bool { return dst.power("vm1") == hypervisor.PowerRunning })
	if n := src.count(src.starts, "vm1") + dst.count(dst.starts, "vm1"); n != 2 {
		t.Errorf("%d starts over both hosts, want 2", n)
	}
}

// The servers cancel a migration at its first reported error: the agent
// must not retry it for the same desired entry (a retry that worked would
// put the domain on the target while the servers think it runs here).
func TestFailedMigrationNotRetried(t *testing.T) {
	c := newCloud(t)
	srv := c.serve("s1")
	src := newSpy("kvm1")
	withHost(t, c, src, []string{srv.URL}, nil)
	c.setVM("host-a", vm("vm1", WantRunning))
	reported(t, c, "vm1", "Running", isPower(hypervisor.PowerRunning))
	migrations := func() int {
		n := 0
		src.set(func(s *spy) { n = s.migrateCalls })
		return n
	}
	src.FailNext("Migrate", errors.New("peer hung up"))
	c.editVM("host-a", "vm1", func(v *DesiredVM) { v.MigrateTo, v.MigrateToURI = "host-b", "fake:///kvm2" })
	reportedEver(t, c, "vm1", "the migration error", func(r VMReport) bool { return r.Error != "" })

	// Passes go on (beyond any retry backoff) over the same entry.
	beats := c.beats("host-a")
	waitFor(t, "time beyond the retry backoff", func() bool { return c.beats("host-a") > beats+5 })
	c.setVM("host-a", vm("other", WantRunning))
	reported(t, c, "other", "Running", isPower(hypervisor.PowerRunning))
	if n := migrations(); n != 1 {
		t.Errorf("migration tried %d times for one desired entry, want 1", n)
	}
	if p := src.power("vm1"); p != hypervisor.PowerRunning {
		t.Fatalf("vm1 is %s here after its failed migration", p)
	}

	// The servers cancel it, then ask again: that one goes.
	c.editVM("host-a", "vm1", func(v *DesiredVM) { v.MigrateTo, v.MigrateToURI = "", "" })
	reported(t, c, "vm1", "Running without error", func(r VMReport) bool { return r.Power == hypervisor.PowerRunning && r.Error == "" })
	c.editVM("host-a", "vm1", func(v *DesiredVM) { v.MigrateTo, v.MigrateToURI = "host-b", "fake:///kvm2" })
	reported(t, c, "vm1", "MigratedOut", func(r VMReport) bool { return r.MigratedOut && r.Absent })
}

func TestServersUnreachableKeepsVMsAndFailsOver(t *testing.T) {
	c := newCloud(t)
	s1, s2 := c.serve("s1"), c.serve("s2")
	drv := newSpy("kvm1")
	withHost(t, c, drv, []string{s1.URL, s2.URL}, nil)
	c.setVM("host-a", vm("vm1", WantRunning))
	reported(t, c, "vm1", "Running", isPower(hypervisor.PowerRunning))

	// Every server down (503), open connections dropped: nothing is
	// stopped, the agent keeps trying.
	c.with(func() { c.failAll = http.StatusServiceUnavailable })
	s1.CloseClientConnections()
	s2.CloseClientConnections()
	waitFor(t, "failed requests", func() bool {
		n := 0
		c.with(func() { n = c.failSent })
		return n >= 10
	})
	if p := drv.power("vm1"); p != hypervisor.PowerRunning {
		t.Fatalf("vm1 is %s during the outage", p)
	}
	before := len(c.vmReports("vm1"))
	c.with(func() { c.failAll = 0 })
	// After the reconnect everything is reported again.
	waitFor(t, "vm1 reported again after the reconnect", func() bool { return len(c.vmReports("vm1")) > before })

	// The first server goes away for good: the agent moves to the second.
	s1.CloseClientConnections()
	s1.Close()
	var atS2 int
	c.with(func() { atS2 = c.perServer["s2"] })
	beats := c.beats("host-a")
	waitFor(t, "heartbeats through s2", func() bool {
		n := 0
		c.with(func() { n = c.perServer["s2"] })
		return n > atS2+2 && c.beats("host-a") > beats+2
	})
	c.setVM("host-a", vm("vm2", WantRunning))
	reported(t, c, "vm2", "Running through s2", isPower(hypervisor.PowerRunning))
	if p := drv.power("vm1"); p != hypervisor.PowerRunning {
		t.Fatalf("vm1 is %s after the failover", p)
	}
	if n := drv.count(drv.starts, "vm1"); n != 1 {
		t.Fatalf("vm1 started %d times", n)
	}
}

func TestCrashAndGuestShutdownReported(t *testing.T) {
	c := newCloud(t)
	srv := c.serve("s1")
	drv := newSpy("kvm1")
	// As CloudStack does: a non-HA VM that stopped by itself is marked
	// Stopped; an HA VM stays wanted Running.
	c.onReport = func(hostID string, r VMReport) {
		if r.Reason == "" {
			return
		}
		vm := c.hosts[hostID].vms[r.ID]
		if !vm.HA {
			vm.Power = WantStopped
			c.hosts[hostID].vms[r.ID] = vm
		}
	}
	withHost(t, c, drv, []string{srv.URL}, nil)
	c.setVM("host-a", vm("plain", WantRunning))
	ha := vm("ha", WantRunning)
	ha.HA = true
	c.setVM("host-a", ha)
	c.setVM("host-a", vm("quitter", WantRunning))
	for _, id := range []string{"plain", "ha", "quitter"} {
		reported(t, c, id, "Running", isPower(hypervisor.PowerRunning))
	}

	if err := drv.Crash("plain"); err != nil {
		t.Fatal(err)
	}
	r := reportedEver(t, c, "plain", "crashed", func(r VMReport) bool { return r.Reason != "" })
	if r.Reason != ReasonCrashed || r.Power != hypervisor.PowerStopped {
		t.Errorf("crash report %+v", r)
	}
	if err := drv.GuestShutdown("quitter"); err != nil {
		t.Fatal(err)
	}
	r = reportedEver(t, c, "quitter", "shut down", func(r VMReport) bool { return r.Reason != "" })
	if r.Reason != ReasonGuestShutdown {
		t.Errorf("shutdown report %+v", r)
	}
	// The HA VM is restarted once the servers have seen its crash and
	// still want it.
	if err := drv.Crash("ha"); err != nil {
		t.Fatal(err)
	}
	reportedEver(t, c, "ha", "crashed", func(r VMReport) bool { return r.Reason == ReasonCrashed })
	waitFor(t, "ha restarted", func() bool { return drv.count(drv.starts, "ha") == 2 })
	reported(t, c, "ha", "Running again", isPower(hypervisor.PowerRunning))

	// The others were not started again.
	reported(t, c, "plain", "Stopped", func(r VMReport) bool { return r.Power == hypervisor.PowerStopped && r.Reason == "" })
	if n := drv.count(drv.starts, "plain"); n != 1 {
		t.Errorf("plain started %d times", n)
	}
	if p := drv.power("quitter"); p != hypervisor.PowerStopped || drv.count(drv.starts, "quitter") != 1 {
		t.Errorf("quitter is %s after %d starts", p, drv.count(drv.starts, "quitter"))
	}
}

func TestClientRejectsWrongProof(t *testing.T) {
	c := newCloud(t)
	srv := c.serve("s1")
	c.addHost("host-a", "tok-a", "10.0.0.5")
	cl, err := NewClient(ClientConfig{Servers: []string{srv.URL}, BackoffBase: time.Millisecond, BackoffMax: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	creds := Credentials{HostID: "host-a", Key: "tok-a"}
	var hb HeartbeatResponse
	call := Call{Method: http.MethodPost, Path: PathHeartbeat, In: Heartbeat{HostID: "host-a"}, Out: &hb}
	if err := cl.Do(context.Background(), creds, call); err != nil || hb.State != "Up" {
		t.Fatalf("heartbeat: %v %+v", err, hb)
	}
	c.with(func() { c.badProof = true })
	hb = HeartbeatResponse{}
	err = cl.Do(context.Background(), creds, call)
	if !errors.Is(err, ErrBadProof) || hb.State != "" {
		t.Fatalf("answer with a wrong proof: %v, %+v", err, hb)
	}
	c.with(func() { c.badProof = false })
	err = cl.Do(context.Background(), Credentials{HostID: "host-a", Key: "wrong"}, call)
	if st, proven := statusOf(err); st != http.StatusUnauthorized || proven {
		t.Fatalf("bad signature: %v", err)
	}
	err = cl.Do(context.Background(), Credentials{HostID: "nobody", Key: "x"}, call)
	if !isNotFound(err) {
		t.Fatalf("unknown host: %v", err)
	}
}

func TestBackoffBounds(t *testing.T) {
	for attempt := range 20 {
		d := Backoff(attempt, 100*time.Millisecond, 2*time.Second)
		lim := min(100*time.Millisecond<<min(attempt, 10), 2*time.Second)
		if d < lim/2 || d > lim {
			t.Fatalf("attempt %d: %v not in [%v, %v]", attempt, d, lim/2, lim)
		}
	}
}

func TestNewValidates(t *testing.T) {
	drv := newSpy("kvm1")
	base := Config{Servers: []string{"http://127.0.0.1:1"}, DataDir: t.TempDir(), Address: "10.0.0.5", Driver: drv}
	if _, err := New(base); err == nil {
		t.Error("no token accepted")
	}
	bad := base
	bad.Servers = []string{"ftp://x"}
	bad.Token = "t"
	if _, err := New(bad); err == nil {
		t.Error("ftp server URL accepted")
	}
	// A kept token is enough.
	if err := writeJSON(filepath.Join(base.DataDir, hostFile), hostRecord{HostID: "h", Token: "t"}); err != nil {
		t.Fatal(err)
	}
	a, err := New(base)
	if err != nil || a.HostID() != "h" {
		t.Fatalf("with a kept token: %v", err)
	}
}

func TestStopSeenWithoutEventIsHeld(t *testing.T) {
	c := newCloud(t)
	srv := c.serve("s1")
	drv := newSpy("kvm1")
	withHost(t, c, drv, []string{srv.URL}, nil)
	c.setVM("host-a", vm("vm1", WantRunning))
	reported(t, c, "vm1", "Running", isPower(hypervisor.PowerRunning))
	// Powered off with no event (lost while the driver reconnected): the
	// next pass must not simply start it again.
	if err := drv.SetPower("vm1", hypervisor.PowerStopped); err != nil {
		t.Fatal(err)
	}
	c.setVM("host-a", vm("vm2", WantStopped))
	reported(t, c, "vm2", "Stopped", isPower(hypervisor.PowerStopped))
	r := reportedEver(t, c, "vm1", "stopped outside", func(r VMReport) bool { return r.Reason != "" })
	if r.Reason != ReasonStoppedOutside || r.Power != hypervisor.PowerStopped {
		t.Errorf("report %+v", r)
	}
	// The servers saw it and still want it: it runs again.
	waitFor(t, "vm1 started again", func() bool { return drv.count(drv.starts, "vm1") == 2 })
}

// A crash and a guest shutdown that a pass finds before their events (the
// libvirt event loop is slow) are reported as what they are, read from
// the domain's stop reason, not as stopped-outside; the late events
// change nothing.
func TestStopReasonWinsOverLateEvent(t *testing.T) {
	c := newCloud(t)
	srv := c.serve("s1")
	drv := newSpy("kvm1")
	withHost(t, c, drv, []string{srv.URL}, nil)
	c.setVM("host-a", vm("crasher", WantRunning))
	c.setVM("host-a", vm("quitter", WantRunning))
	c.setVM("host-a", vm("killed", WantRunning))
	for _, id := range []string{"crasher", "quitter", "killed"} {
		reported(t, c, id, "Running", isPower(hypervisor.PowerRunning))
	}
	drv.HoldEvents()
	if err := drv.Crash("crasher"); err != nil {
		t.Fatal(err)
	}
	if err := drv.GuestShutdown("quitter"); err != nil {
		t.Fatal(err)
	}
	if err := drv.Fake.Stop(context.Background(), "killed"); err != nil { // virsh destroy
		t.Fatal(err)
	}
	// A pass with every event still held back.
	c.setVM("host-a", vm("other", WantStopped))
	reported(t, c, "other", "Stopped", isPower(hypervisor.PowerStopped))
	want := map[string]string{"crasher": ReasonCrashed, "quitter": ReasonGuestShutdown, "killed": ReasonStoppedOutside}
	for id, reason := range want {
		r := reportedEver(t, c, id, "with a reason", func(r VMReport) bool { return r.Reason != "" })
		if r.Reason != reason || r.Power != hypervisor.PowerStopped {
			t.Errorf("%s: want reason %s, got report %+v", id, reason, r)
		}
	}
	drv.ReleaseEvents()
	// The servers saw the reports and still want the VMs: they run again.
	for id := range want {
		waitFor(t, id+" started again", func() bool { return drv.count(drv.starts, id) == 2 })
		reported(t, c, id, "Running again", isPower(hypervisor.PowerRunning))
	}
	for id, reason := range want {
		for _, r := range c.vmReports(id) {
			if r.Reason != "" && r.Reason != reason {
				t.Errorf("%s: reported %+v, want only reason %s", id, r, reason)
			}
		}
	}
}
