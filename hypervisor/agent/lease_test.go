package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/stratus-cloud/stratus/hypervisor"
)

// peerAgent is another host's agent as its peers see it: GET PathLease
// answers whether its lease is valid.
type peerAgent struct {
	srv   *httptest.Server
	valid atomic.Bool
	asked atomic.Int64
}

func newPeer(t *testing.T, hostID string, valid bool) *peerAgent {
	p := &peerAgent{}
	p.valid.Store(valid)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != PathLease || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		p.asked.Add(1)
		st := LeaseStatus{HostID: hostID, Valid: p.valid.Load()}
		if st.Valid {
			st.ExpiresIn = 1000
		}
		_ = json.NewEncoder(w).Encode(st)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// deadPeer is the status URL of a peer that accepts no connection.
func deadPeer(t *testing.T) string {
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	return u
}

// haVM is an HA VM wanted Running.
func haVM(id string) DesiredVM {
	v := vm(id, WantRunning)
	v.HA = true
	return v
}

// haCloud is a cloud with a short lease (300ms, heartbeats every 50ms)
// whose hosts see peers.
func haCloud(t *testing.T, peers ...Peer) (*testCloud, *httptest.Server) {
	c := newCloud(t)
	c.leaseTTL = 300
	c.peers = peers
	return c, c.serve("s1")
}

// failed is how many requests the cloud refused on purpose.
func (c *testCloud) failed() int {
	n := 0
	c.with(func() { n = c.failSent })
	return n
}

// decision is the agent's fence decision for its current loss.
func (a *Agent) decisionNow() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.ls.lost {
		return ""
	}
	return a.ls.decision
}

// leaseAnswer asks the agent's lease handler as a peer would.
func leaseAnswer(t *testing.T, url string) LeaseStatus {
	t.Helper()
	resp, err := http.Get(url + PathLease)
	if err != nil {
		t.Fatalf("GET %s: %v", PathLease, err)
	}
	defer resp.Body.Close()
	var st LeaseStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("decode lease answer: %v", err)
	}
	return st
}

func TestLeaseAnsweredToPeers(t *testing.T) {
	c, srv := haCloud(t)
	drv := newSpy("kvm1")
	var status *httptest.Server
	a := withHost(t, c, drv, []string{srv.URL}, func(cfg *Config) { cfg.StatusURL = "http://10.0.0.5:8090" })
	status = httptest.NewServer(a.LeaseHandler())
	t.Cleanup(status.Close)

	c.with(func() {
		if len(c.regReqs) == 0 || c.regReqs[0].StatusURL != "http://10.0.0.5:8090" || c.regReqs[0].SelfFence {
			t.Errorf("registration %+v: want the status URL and no self-fence (fake driver, no watchdog)", c.regReqs)
		}
	})
	waitFor(t, "a valid lease", func() bool { return leaseAnswer(t, status.URL).Valid })
	if st := leaseAnswer(t, status.URL); st.HostID != "host-a" || st.ExpiresIn <= 0 || st.ExpiresIn > 300 {
		t.Errorf("valid lease answered %+v", st)
	}
	resp, err := http.Post(status.URL+PathLease, "application/json", nil)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST %s answered %d", PathLease, resp.StatusCode)
		}
	}

	// The servers stop answering: the lease runs out 300ms after the
	// last heartbeat was sent.
	c.with(func() { c.failAll = http.StatusServiceUnavailable })
	waitFor(t, "the lease to run out", func() bool { return !leaseAnswer(t, status.URL).Valid })
	if st := leaseAnswer(t, status.URL); st.ExpiresIn != 0 || st.HostID != "host-a" {
		t.Errorf("expired lease answered %+v", st)
	}
	sent, ttl := a.Lease()
	if ttl.Milliseconds() != 300 || sent.IsZero() {
		t.Errorf("Lease() = %v, %v", sent, ttl)
	}
	c.with(func() { c.failAll = 0 })
	waitFor(t, "the lease renewed", func() bool { return leaseAnswer(t, status.URL).Valid })
}

func TestSelfFenceWhenAPeerHoldsALease(t *testing.T) {
	peer := newPeer(t, "host-b", true)
	c, srv := haCloud(t, Peer{HostID: "host-b", Name: "kvm2", StatusURL: peer.srv.URL})
	drv := newSpy("kvm1")
	a := withHost(t, c, drv, []string{srv.URL}, nil)
	c.setVM("host-a", haVM("ha1"))
	c.setVM("host-a", vm("plain1", WantRunning))
	reported(t, c, "ha1", "Running", isPower(hypervisor.PowerRunning))
	reported(t, c, "plain1", "Running", isPower(hypervisor.PowerRunning))
	// plain2 cannot start yet: it must not start while the host is fenced.
	drv.set(func(s *spy) { s.startErr = errors.New("no memory") })
	c.setVM("host-a", vm("plain2", WantRunning))
	reportedEver(t, c, "plain2", "a start error", func(r VMReport) bool { return r.Error != "" })

	c.with(func() { c.failAll = http.StatusServiceUnavailable })
	waitFor(t, "ha1 fenced", func() bool { return drv.power("ha1") == "absent" })
	if got := a.decisionNow(); got != decisionFence {
		t.Errorf("decision %q, want %q", got, decisionFence)
	}
	if peer.asked.Load() == 0 {
		t.Error("the peer was never asked")
	}
	if p := drv.power("plain1"); p != hypervisor.PowerRunning {
		t.Errorf("non-HA plain1 is %s after the self-fence, want running", p)
	}
	// plain2 could start now, but the host is fenced: nothing starts
	// while the servers stay unreachable.
	drv.set(func(s *spy) { s.startErr = nil })
	n := c.failed()
	waitFor(t, "the outage to go on", func() bool { return c.failed() > n+30 })
	if p := drv.power("plain2"); p != "absent" {
		t.Errorf("plain2 is %s while fenced", p)
	}
	if k := drv.count(drv.starts, "ha1"); k != 1 {
		t.Errorf("ha1 started %d times while fenced", k)
	}

	// Contact again, and the servers still want both here: they start.
	c.with(func() { c.failAll = 0 })
	waitFor(t, "plain2 running", func() bool { return drv.power("plain2") == hypervisor.PowerRunning })
	waitFor(t, "ha1 running again", func() bool { return drv.power("ha1") == hypervisor.PowerRunning })
	if k := drv.count(drv.starts, "plain1"); k != 1 {
		t.Errorf("plain1 started %d times, want 1", k)
	}
	// The agent's own fence is not a crash to report.
	for _, r := range c.vmReports("ha1") {
		if r.Reason != "" {
			t.Errorf("ha1 reported with reason %q", r.Reason)
		}
	}
}

func TestNoFenceWhenNoPeerHoldsALease(t *testing.T) {
	peer := newPeer(t, "host-b", false)
	peer2 := newPeer(t, "host-c", false)
	c, srv := haCloud(t, Peer{HostID: "host-b", StatusURL: peer.srv.URL}, Peer{HostID: "host-c", StatusURL: peer2.srv.URL})
	drv := newSpy("kvm1")
	a := withHost(t, c, drv, []string{srv.URL}, nil)
	c.setVM("host-a", haVM("ha1"))
	reported(t, c, "ha1", "Running", isPower(hypervisor.PowerRunning))

	// The management plane is down for everyone: every peer answers
	// without a lease. Nothing is fenced.
	c.with(func() { c.failAll = http.StatusServiceUnavailable })
	waitFor(t, "the hold decision", func() bool { return a.decisionNow() == decisionHold })
	asked := peer.asked.Load()
	waitFor(t, "the peer asked again", func() bool { return peer.asked.Load() > asked+3 })
	if p := drv.power("ha1"); p != hypervisor.PowerRunning {
		t.Fatalf("ha1 is %s while the management plane is down for all", p)
	}

	// The plane comes back for the peer, not for this host: fence.
	peer.valid.Store(true)
	waitFor(t, "ha1 fenced", func() bool { return drv.power("ha1") == "absent" })
	if got := a.decisionNow(); got != decisionFence {
		t.Errorf("decision %q, want %q", got, decisionFence)
	}
}

// A partition cut this host off with part of its cluster: the peer it
// reaches has no lease, but another it cannot reach may be heard by the
// leader, which may restart ha1 there. It must fence.
func TestFenceWhenOnlySomePeersReachable(t *testing.T) {
	peer := newPeer(t, "host-b", false)
	c, srv := haCloud(t, Peer{HostID: "host-b", StatusURL: peer.srv.URL}, Peer{HostID: "host-c", StatusURL: deadPeer(t)})
	drv := newSpy("kvm1")
	a := withHost(t, c, drv, []string{srv.URL}, nil)
	c.setVM("host-a", haVM("ha1"))
	c.setVM("host-a", vm("plain1", WantRunning))
	reported(t, c, "ha1", "Running", isPower(hypervisor.PowerRunning))
	reported(t, c, "plain1", "Running", isPower(hypervisor.PowerRunning))

	c.with(func() { c.failAll = http.StatusServiceUnavailable })
	waitFor(t, "a decision", func() bool { d := a.decisionNow(); return d == decisionFence || d == decisionHold })
	if got := a.decisionNow(); got != decisionFence {
		t.Fatalf("decision %q with one peer unreachable, want %q", got, decisionFence)
	}
	waitFor(t, "ha1 fenced", func() bool { return drv.power("ha1") == "absent" })
	if p := drv.power("plain1"); p != hypervisor.PowerRunning {
		t.Errorf("plain1 is %s", p)
	}
}

func TestFenceWhenNoPeerReachable(t *testing.T) {
	for _, tc := range []struct {
		name  string
		peers []Peer
	}{
		{"dead peers", []Peer{{HostID: "host-b", StatusURL: deadPeer(t)}, {HostID: "host-c", StatusURL: "http://127.0.0.1:1"}}},
		{"no peers", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, srv := haCloud(t, tc.peers...)
			drv := newSpy("kvm1")
			withHost(t, c, drv, []string{srv.URL}, nil)
			c.setVM("host-a", haVM("ha1"))
			c.setVM("host-a", vm("plain1", WantRunning))
			reported(t, c, "ha1", "Running", isPower(hypervisor.PowerRunning))
			reported(t, c, "plain1", "Running", isPower(hypervisor.PowerRunning))
			c.with(func() { c.failAll = http.StatusServiceUnavailable })
			waitFor(t, "ha1 fenced", func() bool { return drv.power("ha1") == "absent" })
			if p := drv.power("plain1"); p != hypervisor.PowerRunning {
				t.Errorf("plain1 is %s", p)
			}
		})
	}
}

func TestRecoveryPassBeforeTheFirstHeartbeat(t *testing.T) {
	peer := newPeer(t, "host-b", true)
	c, srv := haCloud(t, Peer{HostID: "host-b", StatusURL: peer.srv.URL})
	drv := newSpy("kvm1")
	withHost(t, c, drv, []string{srv.URL}, nil)
	for _, v := range []DesiredVM{haVM("ha1"), haVM("ha2"), haVM("ha3"), vm("plain1", WantRunning), vm("plain2", WantRunning)} {
		c.setVM("host-a", v)
		reported(t, c, v.ID, "Running", isPower(hypervisor.PowerRunning))
	}
	c.with(func() { c.failAll = http.StatusServiceUnavailable })
	waitFor(t, "the HA VMs fenced", func() bool {
		return drv.power("ha1") == "absent" && drv.power("ha2") == "absent" && drv.power("ha3") == "absent"
	})

	// Meanwhile the leader restarted ha1 and ha2 elsewhere (ha1 is listed
	// Absent here, ha2 no more), and moved plain2 away; ha3 is still
	// wanted here.
	c.editVM("host-a", "ha1", func(v *DesiredVM) { v.Power = WantAbsent })
	c.removeVM("host-a", "ha2")
	c.removeVM("host-a", "plain2")
	beats := c.beats("host-a")
	var mark int
	c.with(func() {
		mark = len(c.calls)
		c.failAll = 0
	})
	waitFor(t, "a heartbeat after the outage", func() bool { return c.beats("host-a") > beats })
	var first Heartbeat
	c.with(func() {
		first = c.hosts["host-a"].beats[beats]
		calls := c.calls[mark:]
		hb := -1
		for i, call := range calls {
			if strings.HasPrefix(call, PathHeartbeat) {
				hb = i
				break
			}
		}
		full := -1
		for i, call := range calls {
			if strings.HasPrefix(call, PathDesired+"?") && strings.Contains(call, "index=0") {
				full = i
				break
			}
		}
		if hb < 0 || full < 0 || full > hb {
			t.Errorf("calls after the outage %v: want a full desired read (index=0) before the first heartbeat", calls)
		}
	})
	for _, d := range first.Domains {
		if d.UUID == "plain2" || d.UUID == "ha1" || d.UUID == "ha2" {
			t.Errorf("the first heartbeat after the outage lists %s (%s): its copy must go first", d.UUID, d.Power)
		}
	}
	if drv.power("plain2") != "absent" {
		t.Errorf("plain2 is %s, placed elsewhere", drv.power("plain2"))
	}
	waitFor(t, "ha3 running again", func() bool { return drv.power("ha3") == hypervisor.PowerRunning })
	if drv.power("plain1") != hypervisor.PowerRunning || drv.count(drv.starts, "plain1") != 1 {
		t.Errorf("plain1 is %s after %d starts", drv.power("plain1"), drv.count(drv.starts, "plain1"))
	}
	if drv.power("ha1") != "absent" || drv.power("ha2") != "absent" {
		t.Errorf("ha1 %s, ha2 %s: both run elsewhere", drv.power("ha1"), drv.power("ha2"))
	}
	reported(t, c, "ha1", "Absent", func(r VMReport) bool { return r.Absent })
}

func TestWatchdogPettedOnlyWhileSafe(t *testing.T) {
	peer := newPeer(t, "host-b", true)
	c, srv := haCloud(t, Peer{HostID: "host-b", StatusURL: peer.srv.URL})
	drv := newSpy("kvm1")
	path := filepath.Join(t.TempDir(), "watchdog")
	wd, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wd.Close() })
	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	a := withHost(t, c, drv, []string{srv.URL}, func(cfg *Config) { cfg.Watchdog = wd })
	c.with(func() {
		if len(c.regReqs) == 0 || !c.regReqs[len(c.regReqs)-1].SelfFence {
			t.Error("registered without self_fence despite the watchdog")
		}
	})
	c.setVM("host-a", haVM("ha1"))
	reported(t, c, "ha1", "Running", isPower(hypervisor.PowerRunning))
	waitFor(t, "the watchdog petted", func() bool { return size() >= 3 })

	// The lease runs out and the HA guest cannot be powered off: the
	// watchdog is left to reset the host.
	drv.set(func(s *spy) { s.stopErr = errors.New("libvirt hangs") })
	c.with(func() { c.failAll = http.StatusServiceUnavailable })
	stops := func() int {
		n := 0
		drv.set(func(s *spy) { n = s.stopCalls })
		return n
	}
	waitFor(t, "a failed fence", func() bool { return stops() >= 1 && a.decisionNow() == decisionRetry })
	s1 := size()
	waitFor(t, "more fence attempts", func() bool { return stops() >= 6 })
	if s2 := size(); s2 != s1 {
		t.Fatalf("watchdog petted while the lease was lost and the fence failed: %d bytes, then %d", s1, s2)
	}
	if a.LeaseStatus().Valid {
		t.Fatal("lease valid during the outage")
	}

	// The fence succeeds: the HA guest is gone, nothing for the watchdog
	// to do, and resetting the host would only kill the non-HA guests.
	drv.set(func(s *spy) { s.stopErr = nil })
	waitFor(t, "ha1 fenced", func() bool { return drv.power("ha1") == "absent" })
	waitFor(t, "the watchdog petted again", func() bool { return size() > s1 })
	c.with(func() { c.failAll = 0 })
	waitFor(t, "the lease renewed", func() bool { return a.LeaseStatus().Valid })
}

func TestSelfFenceCapability(t *testing.T) {
	cases := map[string]bool{"test:///default": true, "test+unix:///default": true, "qemu:///system": false, "fake:///kvm1": false}
	for uri, want := range cases {
		a := &Agent{driver: uriDriver{Fake: hypervisor.NewFake(hypervisor.HostFacts{}), uri: uri}}
		if got := a.SelfFence(); got != want {
			t.Errorf("SelfFence on %s = %v, want %v", uri, got, want)
		}
	}
	a := &Agent{driver: uriDriver{Fake: hypervisor.NewFake(hypervisor.HostFacts{}), uri: "qemu:///system"}, cfg: Config{Watchdog: os.Stdout}}
	if !a.SelfFence() {
		t.Error("SelfFence with a watchdog = false")
	}
}

// uriDriver is the fake with another URI.
type uriDriver struct {
	*hypervisor.Fake
	uri string
}

func (d uriDriver) URI() string { return d.uri }

// A heartbeat the servers answer without bringing the host Up (the leader
// could not commit it) renews no lease and allows no start.
func TestHeartbeatNotUpRenewsNothing(t *testing.T) {
	peer := newPeer(t, "host-b", true)
	c, srv := haCloud(t, Peer{HostID: "host-b", StatusURL: peer.srv.URL})
	c.with(func() { c.hbState = "Disconnected" })
	drv := newSpy("kvm1")
	a := withHost(t, c, drv, []string{srv.URL}, nil)
	c.setVM("host-a", haVM("ha1"))
	waitFor(t, "heartbeats answered Disconnected", func() bool { return c.beats("host-a") > 5 })
	if a.LeaseStatus().Valid {
		t.Fatal("lease valid though every heartbeat was answered Disconnected")
	}
	if p := drv.power("ha1"); p != "absent" {
		t.Fatalf("ha1 is %s without the host Up", p)
	}
	c.with(func() { c.hbState = "" })
	waitFor(t, "the lease renewed", func() bool { return a.LeaseStatus().Valid })
	waitFor(t, "ha1 running", func() bool { return drv.power("ha1") == hypervisor.PowerRunning })

	// The host falls out of Up while the agent heartbeats: the lease runs
	// out and HA guests are fenced.
	c.with(func() { c.hbState = "Alert" })
	waitFor(t, "the lease lost", func() bool { return !a.LeaseStatus().Valid })
	waitFor(t, "ha1 fenced", func() bool { return drv.power("ha1") == "absent" })
}

// lease.json is read by the wall clock after a restart: a lease sent in
// the future by this clock (it stepped back) is not trusted.
func TestKeptLeaseFromTheFutureNotTrusted(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sent  time.Duration // from now
		valid bool
	}{
		{"sent in the future", 10 * time.Second, false},
		{"sent just now", -100 * time.Millisecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := writeJSON(filepath.Join(dir, leaseFile), leaseRecord{Sent: time.Now().Add(tc.sent).UTC(), TTL: 60000}); err != nil {
				t.Fatal(err)
			}
			a, err := New(Config{
				Servers: []string{"http://127.0.0.1:1"}, DataDir: dir, Address: "10.0.0.5", Name: "kvm1", Zone: "z1", Cluster: "c1",
				Driver: newSpy("kvm1"), Version: "test", Token: "tok-a",
				Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: logWriter{t}}),
			})
			if err != nil {
				t.Fatalf("new agent: %v", err)
			}
			st := a.LeaseStatus()
			if st.Valid != tc.valid || st.ExpiresIn > 60000 {
				t.Errorf("kept lease answered %+v, want valid %v", st, tc.valid)
			}
		})
	}
}

// Once fenced, the host stays fenced: an HA domain that appears later (an
// incoming live migration, a start that raced the fence), or a domain of a
// VM the last desired state does not know, is killed too; non-HA guests
// keep running.
func TestFencedHostKillsHADomainsThatAppearLater(t *testing.T) {
	peer := newPeer(t, "host-b", true)
	c, srv := haCloud(t, Peer{HostID: "host-b", StatusURL: peer.srv.URL})
	drv := newSpy("kvm1")
	a := withHost(t, c, drv, []string{srv.URL}, nil)
	c.setVM("host-a", haVM("ha1"))
	c.setVM("host-a", vm("plain1", WantRunning))
	reported(t, c, "ha1", "Running", isPower(hypervisor.PowerRunning))
	reported(t, c, "plain1", "Running", isPower(hypervisor.PowerRunning))

	c.with(func() { c.failAll = http.StatusServiceUnavailable })
	waitFor(t, "ha1 fenced", func() bool { return drv.power("ha1") == "absent" && a.decisionNow() == decisionFence })
	for _, id := range []string{"ha1", "stray1"} {
		v := vm(id, WantRunning)
		if err := drv.Fake.Start(context.Background(), v.Spec); err != nil {
			t.Fatalf("start %s behind the agent's back: %v", id, err)
		}
	}
	waitFor(t, "the late HA domain killed", func() bool { return drv.power("ha1") == "absent" })
	waitFor(t, "the unknown domain killed", func() bool { return drv.power("stray1") == "absent" })
	if p := drv.power("plain1"); p != hypervisor.PowerRunning {
		t.Errorf("non-HA plain1 is %s", p)
	}
	if got := a.decisionNow(); got != decisionFence {
		t.Errorf("decision %q, want %q", got, decisionFence)
	}
}

// The leader may move a VM away between the recovery pass's read and the
// heartbeat that brings the host Up: starts wait for a full desired state
// read after that heartbeat.
func TestStartsWaitForAFullReadAfterTheRenewal(t *testing.T) {
	peer := newPeer(t, "host-b", true)
	c, srv := haCloud(t, Peer{HostID: "host-b", StatusURL: peer.srv.URL})
	drv := newSpy("kvm1")
	withHost(t, c, drv, []string{srv.URL}, nil)
	c.setVM("host-a", haVM("ha1"))
	reported(t, c, "ha1", "Running", isPower(hypervisor.PowerRunning))
	c.with(func() { c.failAll = http.StatusServiceUnavailable })
	waitFor(t, "ha1 fenced", func() bool { return drv.power("ha1") == "absent" })

	// The recovery pass reads ha1 still wanted here; while the first
	// heartbeat is answered the leader restarts it elsewhere (a change
	// the long poll has not seen yet).
	moved := make(chan struct{})
	beats := c.beats("host-a")
	c.with(func() {
		c.onBeat = func(hostID string) {
			delete(c.hosts[hostID].vms, "ha1")
			c.onBeat = nil
			close(moved)
		}
		c.failAll = 0
	})
	<-moved
	waitFor(t, "heartbeats after the move", func() bool { return c.beats("host-a") > beats+5 })
	c.setVM("host-a", vm("plain1", WantRunning))
	reported(t, c, "plain1", "Running", isPower(hypervisor.PowerRunning))
	if p, n := drv.power("ha1"), drv.count(drv.starts, "ha1"); p != "absent" || n != 1 {
		t.Errorf("ha1 is %s after %d starts: started from the desired state read before the heartbeat", p, n)
	}
}

// TestRegistrationDoesNotStretchAHeldLease: a registration's answer
// grants no lease, so its TTL (the settings' figure, from any server)
// must not lengthen the lease the agent holds from the leader's last
// heartbeat answer, which the leader counts by the TTL it granted.
func TestRegistrationDoesNotStretchAHeldLease(t *testing.T) {
	c, srv := haCloud(t)
	a := withHost(t, c, newSpy("kvm1"), []string{srv.URL}, nil)
	waitFor(t, "the lease held", func() bool { return a.LeaseStatus().Valid })
	// From now on heartbeats renew nothing, and registrations answer a
	// lease of a minute.
	c.with(func() { c.hbState, c.leaseTTL = "Disconnected", 60000 })
	if err := a.registerOnce(context.Background()); err != nil {
		t.Fatalf("register: %v", err)
	}
	if st := a.LeaseStatus(); st.Valid && st.ExpiresIn > 300 {
		t.Fatalf("lease expires in %d ms after a registration, more than the 300 ms granted", st.ExpiresIn)
	}
	waitFor(t, "the lease run out", func() bool { return !a.LeaseStatus().Valid })
}
