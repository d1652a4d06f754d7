package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/cloudstack-go/v2/cloudstack"
)

// Helpers of the host HA tests (ha_test.go, soak_test.go, bench_ha_test.go):
// VMs of the HA offering, host and event lookups, the sampler's full
// timeline, and the partition of one host's agent.

const (
	haOfferingName = "medium-ha" // offerha=true in the dev zone
	haWaitTimeout  = 60 * time.Second
	// observerAddr is the source address of the test's own requests to
	// the agents' status endpoints: the partition rule drops everything a
	// cut agent sends except its answers to this address, so the test
	// keeps seeing its domain list while servers and peers do not reach it.
	observerAddr = "127.0.0.2"
)

// haRun is a vmRun with the HA offering and the sampler's timeline.
type haRun struct {
	*vmRun
	haOffering string
	tl         *timeline
	isHA       map[string]bool // VM ID -> deployed with the HA offering
}

func newHARun(t *testing.T, d *devCloud, s *hostSampler, tl *timeline) *haRun {
	t.Helper()
	h := &haRun{vmRun: newVMRun(t, d, s), tl: tl, isHA: map[string]bool{}}
	var err error
	if h.haOffering, _, err = h.cs.ServiceOffering.GetServiceOfferingID(haOfferingName); err != nil {
		t.Fatalf("service offering %s: %v", haOfferingName, err)
	}
	return h
}

// startHASampler starts the double-run sampler over every host with the
// observer's source address and a full timeline; stop ends it.
func startHASampler(d *devCloud) (s *hostSampler, tl *timeline, stop func()) {
	s = newHostSampler(d.hosts)
	s.client = observerClient(time.Second)
	tl = &timeline{}
	s.observe = tl.add
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.run(ctx) })
	return s, tl, func() { cancel(); wg.Wait() }
}

// observerClient is an HTTP client whose connections come from
// observerAddr.
func observerClient(timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(observerAddr)}}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: dialer.DialContext, MaxIdleConnsPerHost: 4}}
}

// timeline keeps every sample the sampler took, for questions about order
// (when a VM was last seen on one host and first on another).
type timeline struct {
	mu      sync.Mutex
	samples []hostSample
}

func (tl *timeline) add(s hostSample) {
	tl.mu.Lock()
	tl.samples = append(tl.samples, s)
	tl.mu.Unlock()
}

// of returns the samples of host taken in [from, to] (to zero: now).
func (tl *timeline) of(host string, from, to time.Time) []hostSample {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var out []hostSample
	for _, s := range tl.samples {
		if (host == "" || s.host == host) && !s.at.Before(from) && (to.IsZero() || !s.at.After(to)) {
			out = append(out, s)
		}
	}
	return out
}

// caughtUp waits up to within for a sample of every host in hosts taken
// at or after at, so that questions about order asked of the timeline see
// at least what the test's own observer saw at that time.
func (tl *timeline) caughtUp(hosts []string, at time.Time, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		var missing []string
		for _, h := range hosts {
			if len(tl.of(h, at, time.Time{})) == 0 {
				missing = append(missing, h)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the host sampler took no sample of %s in the %s after %s", strings.Join(missing, ", "), within, at.Format("15:04:05.000"))
		}
		time.Sleep(hostPollEvery)
	}
}

// firstElsewhere returns the first sample taken after from, of a host
// other than not, that holds VM id.
func (tl *timeline) firstElsewhere(id, not string, from time.Time) (hostSample, bool) {
	for _, s := range tl.of("", from, time.Time{}) {
		if s.host != not && s.domains[id] {
			return s, true
		}
	}
	return hostSample{}, false
}

// hostsByID lists the dev zone's hosts.
func (r *haRun) hostsByID() (map[string]*cloudstack.Host, error) {
	p := r.cs.Host.NewListHostsParams()
	p.SetZoneid(r.zone)
	p.SetType("Routing")
	var resp *cloudstack.ListHostsResponse
	if err := r.call("listHosts", func() (err error) { resp, err = r.cs.Host.ListHosts(p); return err }); err != nil {
		return nil, err
	}
	out := map[string]*cloudstack.Host{}
	for _, h := range resp.Hosts {
		out[h.Id] = h
	}
	return out, nil
}

// hostState is "State/hastate/resourcestate" of a host, for messages.
func hostState(h *cloudstack.Host) string {
	if h == nil {
		return "not listed"
	}
	return h.State + "/" + h.Hostha.Hastate + "/" + h.Resourcestate
}

// setSettings changes global settings with updateConfiguration.
func (r *haRun) setSettings(kv [][2]string) {
	r.t.Helper()
	if err := updateSettings(r.cs, kv, r.call); err != nil {
		r.t.Fatal(err)
	}
}

// updateSettings sets global settings (name, value) with
// updateConfiguration, one call each, made through call (which may retry
// it, or log it).
func updateSettings(cs *cloudstack.CloudStackClient, kv [][2]string, call func(what string, f func() error) error) error {
	for _, s := range kv {
		p := cs.Configuration.NewUpdateConfigurationParams(s[0])
		p.SetValue(s[1])
		if err := call("updateConfiguration "+s[0]+"="+s[1], func() error { _, err := cs.Configuration.UpdateConfiguration(p); return err }); err != nil {
			return err
		}
	}
	return nil
}

// waitLeaseTTL waits until every running agent holds a lease of at most
// ttl: it has had a heartbeat answered with the new timings.
func (r *haRun) waitLeaseTTL(ttl time.Duration) {
	r.t.Helper()
	c := observerClient(time.Second)
	r.waitFor("agents renew with the new lease TTL", haWaitTimeout, func() (bool, string) {
		for _, h := range r.d.hosts {
			ls, err := leaseOf(c, h)
			if err != nil {
				return false, fmt.Sprintf("%s: %v", h.name, err)
			}
			if !ls.Valid || time.Duration(ls.ExpiresIn)*time.Millisecond > ttl {
				return false, fmt.Sprintf("%s: lease valid=%v expires in %d ms", h.name, ls.Valid, ls.ExpiresIn)
			}
		}
		return true, ""
	})
}

type leaseAnswer struct {
	HostID    string `json:"host_id"`
	Valid     bool   `json:"valid"`
	ExpiresIn int64  `json:"expires_in_ms"`
}

// leaseOf asks an agent what it answers its peers: GET /v1/lease.
func leaseOf(c *http.Client, h *simHost) (*leaseAnswer, error) {
	resp, err := c.Get(strings.TrimSuffix(h.statusURL, "/v1/status") + "/v1/lease")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var ls leaseAnswer
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return &ls, json.NewDecoder(resp.Body).Decode(&ls)
}

// waitFor polls cond every hostPollEvery until it holds; after timeout it
// fails the test with what cond last said.
func (r *haRun) waitFor(what string, timeout time.Duration, cond func() (bool, string)) time.Duration {
	r.t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		ok, detail := cond()
		if ok {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: not within %s: %s", what, timeout, detail)
		}
		time.Sleep(hostPollEvery) // polling cond, with its deadline
	}
}

// deployWith deploys n VMs named prefix-NN with a service offering and
// returns their IDs; every job must succeed.
func (r *haRun) deployWith(ctx context.Context, phase, prefix, offering string, n int) []string {
	r.t.Helper()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%02d", prefix, i)
	}
	outs := r.runJobs(ctx, names, vmParallel, func(name string) (string, string, error) {
		p := r.cs.VirtualMachine.NewDeployVirtualMachineParams(offering, r.template, r.zone)
		p.SetName(name)
		v, err := r.cs.VirtualMachine.DeployVirtualMachine(p)
		if err != nil {
			return "", "", err
		}
		return v.Id, v.JobID, nil
	}, nil)
	r.requireJobsOK(phase, outs)
	ids := make([]string, n)
	for i, o := range outs {
		ids[i] = o.id
		r.isHA[o.id] = offering == r.haOffering
	}
	return ids
}

// onHost splits the VMs the API places on a host into HA and non-HA ones.
func (r *haRun) onHost(all map[string]*cloudstack.VirtualMachine, hostID string) (ha, plain []string) {
	for _, id := range sortedKeys(all) {
		v := all[id]
		if v.Hostid != hostID || v.State != "Running" {
			continue
		}
		if v.Haenable {
			ha = append(ha, id)
		} else {
			plain = append(plain, id)
		}
	}
	return ha, plain
}

// busiestHost returns the host with the most HA VMs that also runs a
// non-HA VM when wantPlain is set (nil when there is none), skipping
// hosts in skip.
func (r *haRun) busiestHost(wantPlain bool, skip ...*simHost) (*simHost, []string, []string) {
	r.t.Helper()
	all, err := r.listVMs("")
	if err != nil {
		r.t.Fatal(err)
	}
	var best *simHost
	var bestHA, bestPlain []string
	for _, h := range r.d.hosts {
		if slices.Contains(skip, h) {
			continue
		}
		ha, plain := r.onHost(all, h.id)
		if wantPlain && len(plain) == 0 {
			continue
		}
		if best == nil || len(ha) > len(bestHA) {
			best, bestHA, bestPlain = h, ha, plain
		}
	}
	return best, bestHA, bestPlain
}

// domainSet is the set of domain UUIDs an agent reports, with power.
func domainSet(st *agentStatusBody) map[string]string {
	out := map[string]string{}
	for _, d := range st.Domains {
		out[d.UUID] = d.Power
	}
	return out
}

// movedOff says, for each VM of ids, whether the API shows it Running on a
// host other than from and that host's agent runs it; it returns the
// first VM that is not, described.
func (r *haRun) movedOff(ids []string, from string, all map[string]*cloudstack.VirtualMachine, doms map[string]map[string]string) (bool, string) {
	for _, id := range ids {
		v := all[id]
		switch {
		case v == nil:
			return false, fmt.Sprintf("VM %s is not listed", id)
		case v.State != "Running" || v.Hostid == "" || v.Hostid == from:
			return false, fmt.Sprintf("VM %s (%s) is %s on host %q", v.Name, id, v.State, v.Hostname)
		case doms[v.Hostid] == nil:
			return false, fmt.Sprintf("VM %s: no domain list of host %s", v.Name, v.Hostname)
		case doms[v.Hostid][id] != "Running":
			return false, fmt.Sprintf("VM %s is Running on %s in the API, %q in its domain list", v.Name, v.Hostname, doms[v.Hostid][id])
		}
	}
	return true, ""
}

// allDomains reads every reachable agent's domain list, by host ID.
func (r *haRun) allDomains(c *http.Client) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, h := range r.d.hosts {
		if st, err := h.status(c); err == nil {
			out[h.id] = domainSet(st)
		}
	}
	return out
}

// events returns the events about a resource, newest first.
func (r *haRun) events(resourceID string) []*cloudstack.Event {
	r.t.Helper()
	p := r.cs.Event.NewListEventsParams()
	p.SetListall(true)
	p.SetResourceid(resourceID)
	p.SetPage(1)
	p.SetPagesize(500)
	var resp *cloudstack.ListEventsResponse
	if err := r.call("listEvents", func() (err error) { resp, err = r.cs.Event.ListEvents(p); return err }); err != nil {
		r.t.Fatal(err)
	}
	return resp.Events
}

// requireEvents fails the test unless resource has an event of each type
// that is not in before (event IDs seen earlier).
func (r *haRun) requireEvents(phase, resourceID string, before map[string]bool, types ...string) {
	r.t.Helper()
	got := map[string]bool{}
	for _, e := range r.events(resourceID) {
		if !before[e.Id] {
			got[e.Type] = true
		}
	}
	for _, typ := range types {
		if !got[typ] {
			r.t.Errorf("%s: no new %s event about %s (new event types: %v)", phase, typ, resourceID, sortedKeys(got))
		}
	}
}

// eventIDs returns the IDs of the events about resources so far.
func (r *haRun) eventIDs(resources ...string) map[string]bool {
	out := map[string]bool{}
	for _, id := range resources {
		for _, e := range r.events(id) {
			out[e.Id] = true
		}
	}
	return out
}

// dataDirOf reads -data-dir from an agent's command line.
func dataDirOf(p *proc) string {
	for i, a := range p.args {
		if (a == "-data-dir" || a == "--data-dir") && i+1 < len(p.args) {
			return p.args[i+1]
		}
		if v, ok := strings.CutPrefix(a, "-data-dir="); ok {
			return v
		}
	}
	return ""
}

// restartAgentAs restarts a host's agent (kill -9, same command line and
// environment) running as uid, with its data dir given to uid and the
// directories above it searchable.
func (r *haRun) restartAgentAs(h *simHost, uid int) {
	r.t.Helper()
	p, bin, err := r.d.killAgent(h)
	if err != nil {
		r.t.Fatal(err)
	}
	dir := dataDirOf(p)
	if dir == "" {
		r.t.Fatalf("agent %s: no -data-dir in %v", h.name, p.args)
	}
	err = filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, uid)
	})
	if err != nil {
		r.t.Fatalf("chown %s: %v", dir, err)
	}
	for up := filepath.Dir(dir); up != "/" && up != "."; up = filepath.Dir(up) {
		fi, err := os.Stat(up)
		if err != nil {
			r.t.Fatal(err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(up, fi.Mode().Perm()|0o011); err != nil {
				r.t.Fatal(err)
			}
		}
	}
	p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}
	if err := r.d.startAgent(h, p, bin); err != nil {
		r.t.Fatal(err)
	}
}

// partition cuts the agents running as uid off everything on loopback
// but the test's observer address: their requests to the servers and
// their answers to their peers' lease questions. The first packet an
// agent's socket sends marks its connection (conntrack), and every packet
// of a marked connection is dropped, both ways: also those a closed
// (orphaned) socket still retransmits, which an owner match alone would
// let through (a request the agent gave up on would arrive late). heal
// removes the rules (also registered with t.Cleanup).
type partition struct {
	rules [][]string // table, then the rule
	mu    sync.Mutex
	on    int // rules inserted
}

func cutUID(t *testing.T, uid int) *partition {
	t.Helper()
	mark := fmt.Sprintf("0x%x", 0x5a000000|uid)
	p := &partition{rules: [][]string{
		{"mangle", "OUTPUT", "-o", "lo", "-m", "owner", "--uid-owner", fmt.Sprint(uid), "-j", "CONNMARK", "--set-mark", mark},
		{"filter", "OUTPUT", "-o", "lo", "-m", "connmark", "--mark", mark, "!", "-s", observerAddr, "!", "-d", observerAddr, "-j", "DROP"},
	}}
	t.Cleanup(func() {
		if err := p.heal(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.rules {
		if out, err := exec.Command("iptables", append([]string{"-t", r[0], "-I"}, r[1:]...)...).CombinedOutput(); err != nil {
			t.Fatalf("iptables -t %s -I %s: %v: %s", r[0], strings.Join(r[1:], " "), err, out)
		}
		p.on++
	}
	return p
}

func (p *partition) heal() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.on > 0 {
		r := p.rules[p.on-1]
		if out, err := exec.Command("iptables", append([]string{"-t", r[0], "-D"}, r[1:]...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("iptables -t %s -D %s: %v: %s", r[0], strings.Join(r[1:], " "), err, out)
		}
		p.on--
	}
	return nil
}

// canPartition says why this process cannot cut a host off, or "".
func canPartition() string {
	if os.Geteuid() != 0 {
		return fmt.Sprintf("running as uid %d: cutting a host off needs root (an iptables owner-match DROP rule and the agent run under another uid)", os.Geteuid())
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		return "no iptables on PATH: cannot cut a host off"
	}
	if out, err := exec.Command("iptables", "-L", "OUTPUT", "-n").CombinedOutput(); err != nil {
		return fmt.Sprintf("iptables does not work here (%v: %s)", err, strings.TrimSpace(string(out)))
	}
	return ""
}

// uidOf reads the real uid of a process.
func uidOf(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Uid:"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				return f[0]
			}
		}
	}
	return "?"
}

// durations sorts ds and returns p50, p99, min and max.
func durStats(ds []time.Duration) (p50, p99, lo, hi time.Duration) {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return
	}
	return percentile(s, 0.50), percentile(s, 0.99), s[0], s[len(s)-1]
}
