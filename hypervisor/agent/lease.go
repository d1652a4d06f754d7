package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stratus-cloud/stratus/hypervisor"
)

// Host HA on the agent's side (see docs/ha.md for the timing argument).
//
// The lease runs from when the last successful heartbeat was sent for the
// TTL the servers gave. A monitor goroutine checks it every LeaseCheck
// (by the agent's clock). When it runs out the monitor declares it lost
// and decides, by asking the peers of the last desired state, whether to
// self-fence: power off and undefine the domain of every HA VM (non-HA
// guests keep running; the leader never restarts those elsewhere). From
// the loss on, the agent starts no domain until it is back in contact:
// before its next heartbeat (the one that would bring the host Up) it
// reads a full desired state (index 0, a consistent read on the server)
// and reconciles it, destroying the copies of VMs placed elsewhere; only
// a heartbeat accepted after that pass (answered Up) renews the lease.
// The leader may have moved VMs away between that read and the heartbeat,
// so after it the agent reads a full desired state again, and only that
// one (or a newer one) lets the reconciler start domains.

// Defaults of the HA tunables in Config.
const (
	DefaultPeerTimeout = time.Second
	maxLeaseCheck      = 200 * time.Millisecond
	minLeaseCheck      = 5 * time.Millisecond
	maxPetInterval     = time.Second
)

// Files of the lease state in the data dir.
const (
	leaseFile = "lease.json" // the current lease, so a restarted agent knows it
	fenceFile = "fence.json" // peers and HA VMs of the last desired state
)

// leaseRecord is lease.json.
type leaseRecord struct {
	Sent time.Time `json:"sent"`
	TTL  Millis    `json:"ttl_ms"`
}

// fenceRecord is fence.json: what a restarted agent needs to self-fence
// before it has read a desired state.
type fenceRecord struct {
	Peers []Peer   `json:"peers"`
	HA    []string `json:"ha"` // domain UUIDs (and VM IDs) of HA VMs
	// Known: domain UUIDs (and VM IDs) of every VM of that desired state;
	// a domain of none of them cannot be proven non-HA. Absent in records
	// of older agents.
	Known []string `json:"known,omitempty"`
}

// Fence decisions, as logged.
const (
	decisionFence = "fence"        // isolated: HA guests killed
	decisionHold  = "hold"         // the management plane is down for everyone
	decisionRetry = "fence-failed" // could not kill every HA guest: retried
	decisionNone  = "none"         // no decision yet for this loss
)

// leaseState is the agent's HA state, under Agent.mu.
type leaseState struct {
	lost         bool            // the monitor declared the lease lost; cleared by an accepted heartbeat
	lossGen      uint64          // grows at every loss (and is 1 at start)
	recoveredGen uint64          // the loss whose recovery pass is done
	startsGen    uint64          // the loss after whose first renewal a full desired state was read and taken for starts
	decision     string          // the monitor's last decision for the current loss
	fencedDoms   map[string]bool // domains the agent killed in a self-fence
	peers        []Peer
	peersTag     string // the servers' tag of peers (Desired.PeersTag)
	ha           map[string]bool
	known        map[string]bool // every VM of the last desired state; nil: not recorded
}

// leaseValidLocked reports whether the lease runs at now. Callers hold a.mu.
func (a *Agent) leaseValidLocked(now time.Time) (bool, time.Duration) {
	if a.ls.lost || a.lastSent.IsZero() || a.leaseTTL <= 0 {
		return false, 0
	}
	left := a.lastSent.Add(a.leaseTTL).Sub(now)
	return left > 0, max(left, 0)
}

// LeaseStatus answers a peer's question: is this agent's lease valid?
func (a *Agent) LeaseStatus() LeaseStatus {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	valid, left := a.leaseValidLocked(now)
	st := LeaseStatus{HostID: a.hostID, Valid: valid}
	if valid {
		st.ExpiresIn = max(MillisOf(left), 1)
	}
	return st
}

// LeaseHandler serves GET PathLease with LeaseStatus. It is what the
// agent's status server mounts; peers call it unauthenticated.
func (a *Agent) LeaseHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, "GET only", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(a.LeaseStatus())
	})
}

// SelfFence reports whether this agent can fence itself: with a watchdog
// armed, or on libvirt's test driver, whose guests die with the agent.
func (a *Agent) SelfFence() bool {
	if a.cfg.Watchdog != nil {
		return true
	}
	uri := a.driver.URI()
	scheme, _, ok := strings.Cut(uri, ":")
	if !ok {
		return false
	}
	scheme, _, _ = strings.Cut(scheme, "+") // test+unix://... is still the test driver
	return scheme == "test"
}

// mayStart reports whether the reconciler may start a domain: only with a
// valid lease whose loss, if any, has been recovered from, and once the
// reconciler works from a full desired state read after the heartbeat
// that renewed it (the leader may have moved VMs away between the
// recovery pass's read and that heartbeat).
func (a *Agent) mayStart() bool {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	valid, _ := a.leaseValidLocked(now)
	return valid && a.ls.recoveredGen == a.ls.lossGen && a.ls.startsGen == a.ls.lossGen
}

// startsDue reports the loss whose post-renewal full read is due, if any:
// the lease was renewed after it, and no such read was taken yet.
func (a *Agent) startsDue() (uint64, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	gen := a.ls.lossGen
	return gen, !a.ls.lost && a.ls.recoveredGen == gen && a.ls.startsGen != gen
}

// allowStarts records that the reconciler took the full desired state
// read after the renewal ending loss gen. The reconciler calls it.
func (a *Agent) allowStarts(gen uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ls.lossGen == gen {
		a.ls.startsGen = gen
	}
}

// readForStarts reads a full desired state after the first heartbeat that
// renewed the lease following loss gen, and has the reconciler take it,
// and only it or newer, for starts.
func (a *Agent) readForStarts(ctx context.Context, gen uint64) error {
	q := url.Values{}
	q.Set("index", "0")
	q.Set("wait", "0")
	var d Desired
	if err := a.client.Do(ctx, a.creds(), Call{Method: http.MethodGet, Path: PathDesired, Query: q, Out: &d}); err != nil {
		return fmt.Errorf("full desired state after the renewal: %w", err)
	}
	a.noteDesired(&d)
	if err := a.rec.syncPassFor(ctx, &d, gen); err != nil {
		return err
	}
	a.log.Info("full desired state read after the renewal: VMs may start again",
		"host_id", a.HostID(), "index", d.Index, "vms", len(d.VMs), "loss", strconv.FormatUint(gen, 10))
	return nil
}

// wasFenced reports whether the agent itself killed uuid in a self-fence.
func (a *Agent) wasFenced(uuid string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ls.fencedDoms[uuid]
}

// clearFenced forgets that uuid was fenced (it was started or removed).
func (a *Agent) clearFenced(uuid string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.ls.fencedDoms, uuid)
}

// loadLease restores the lease and fence records of an earlier run.
func (a *Agent) loadLease() error {
	var lr leaseRecord
	switch err := readJSON(filepath.Join(a.cfg.DataDir, leaseFile), &lr); {
	case err == nil:
		// The kept lease is compared by the wall clock, which may have
		// stepped back across the restart: a lease sent "in the future",
		// or one with more than its TTL left, is not trusted.
		now, ttl := a.now(), lr.TTL.Duration()
		a.leaseTTL = ttl
		if left := lr.Sent.Add(ttl).Sub(now); lr.Sent.After(now) || left > ttl {
			a.log.Warn("kept lease not trusted: sent in the future by this clock", "sent", lr.Sent, "now", now, "ttl", ttl)
		} else {
			a.lastSent = lr.Sent
		}
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	var fr fenceRecord
	switch err := readJSON(filepath.Join(a.cfg.DataDir, fenceFile), &fr); {
	case err == nil:
		a.ls.peers = fr.Peers
		a.ls.ha = map[string]bool{}
		for _, id := range fr.HA {
			a.ls.ha[id] = true
		}
		if fr.Known != nil {
			a.ls.known = map[string]bool{}
			for _, id := range fr.Known {
				a.ls.known[id] = true
			}
			for id := range a.ls.ha {
				a.ls.known[id] = true
			}
		}
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	return nil
}

// saveLease keeps the current lease for a restarted agent.
func (a *Agent) saveLease(sent time.Time, ttl time.Duration) {
	if err := writeJSON(filepath.Join(a.cfg.DataDir, leaseFile), leaseRecord{Sent: sent.UTC(), TTL: MillisOf(ttl)}); err != nil {
		a.log.Warn("cannot keep the lease", "error", err)
	}
}

// noteDesired remembers the peers and HA VMs of a desired state: the
// monitor fences by them when the lease runs out. It also raises the
// index reports carry to d's.
func (a *Agent) noteDesired(d *Desired) {
	for {
		seen := a.seenIndex.Load()
		if d.Index <= seen || a.seenIndex.CompareAndSwap(seen, d.Index) {
			break
		}
	}
	ha, known := map[string]bool{}, map[string]bool{}
	for i := range d.VMs {
		vm := &d.VMs[i]
		known[domainUUID(vm)], known[vm.ID] = true, true
		if vm.HA {
			ha[domainUUID(vm)], ha[vm.ID] = true, true
		}
	}
	peers := append([]Peer(nil), d.Peers...)
	a.mu.Lock()
	if d.PeersSame {
		// The servers' list is still the one this agent holds (it sent
		// its tag): keep it.
		peers = a.ls.peers
	} else {
		a.ls.peersTag = d.PeersTag
	}
	same := samePeers(a.ls.peers, peers) && sameSet(a.ls.ha, ha) && a.ls.known != nil && sameSet(a.ls.known, known)
	a.ls.peers, a.ls.ha, a.ls.known = peers, ha, known
	a.mu.Unlock()
	if same {
		return
	}
	rec := fenceRecord{Peers: peers, HA: []string{}, Known: []string{}}
	for id := range ha {
		rec.HA = append(rec.HA, id)
	}
	for id := range known {
		rec.Known = append(rec.Known, id)
	}
	if err := writeJSON(filepath.Join(a.cfg.DataDir, fenceFile), rec); err != nil {
		a.log.Warn("cannot keep the peers and HA VMs", "error", err)
	}
}

func samePeers(a, b []Peer) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func sameSet(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// leaseCheck is the monitor's period: small against the TTL.
func (a *Agent) leaseCheck() time.Duration {
	if a.cfg.LeaseCheck > 0 {
		return a.cfg.LeaseCheck
	}
	a.mu.Lock()
	ttl := a.leaseTTL
	a.mu.Unlock()
	if ttl <= 0 {
		return maxLeaseCheck
	}
	return min(max(ttl/20, minLeaseCheck), maxLeaseCheck)
}

// monitorLease watches the lease until ctx ends: it declares it lost when
// it runs out, decides whether to self-fence and pets the watchdog. It
// runs for the agent's whole life, across sessions.
func (a *Agent) monitorLease(ctx context.Context) {
	var lastPet time.Time
	for {
		a.checkLease(ctx)
		if a.cfg.Watchdog != nil {
			now := a.now()
			a.mu.Lock()
			interval := min(a.interval, maxPetInterval)
			a.mu.Unlock()
			if now.Sub(lastPet) >= interval && a.petAllowed(now) {
				if _, err := a.cfg.Watchdog.Write([]byte{'1'}); err != nil {
					a.log.Error("cannot pet the watchdog", "error", err)
				} else {
					lastPet = now
				}
			}
		}
		if !sleep(ctx, a.leaseCheck()) {
			return
		}
	}
}

// petAllowed says whether the watchdog may be petted: while the lease is
// valid; and after a loss, only while the agent, alive, has made a safe
// decision: it killed its HA guests (nothing left the
// leader may restart elsewhere), or the management plane is down for
// every host (no leader can restart anything; resetting every host of the
// cloud would take all guests down for a management outage). It is not
// petted while a loss is undecided or a fence failed: then the watchdog
// does the fencing. The monitor re-decides a hold at every check, and it
// is the monitor that pets: a hung or dead agent pets nothing.
func (a *Agent) petAllowed(now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if valid, _ := a.leaseValidLocked(now); valid {
		return true
	}
	return a.ls.lost && (a.ls.decision == decisionFence || a.ls.decision == decisionHold)
}

func (a *Agent) peerTimeout() time.Duration {
	if a.cfg.PeerTimeout > 0 {
		return a.cfg.PeerTimeout
	}
	return DefaultPeerTimeout
}

// checkLease is one pass of the monitor.
func (a *Agent) checkLease(ctx context.Context) {
	now := a.now()
	a.mu.Lock()
	valid, _ := a.leaseValidLocked(now)
	if !valid && !a.ls.lost {
		// Also at a start without a lease (none kept, or it ran out while
		// the agent was down): the agent then decides like after a loss,
		// fencing by the HA VMs it kept, and so pets an armed watchdog
		// instead of reset-looping a host that boots during an outage.
		a.ls.lost = true
		a.ls.lossGen++
		a.ls.decision = decisionNone
		if a.lastSent.IsZero() {
			a.log.Info("no lease yet: no VM starts until the servers are reached", "host_id", a.hostID)
		} else {
			a.log.Warn("lease ran out: no VM starts until the servers are reached again",
				"host_id", a.hostID, "sent", a.lastSent, "ttl", a.leaseTTL)
		}
	}
	lost, decision, gen := a.ls.lost, a.ls.decision, a.ls.lossGen
	a.mu.Unlock()
	switch {
	case !lost:
	case decision == decisionFence:
		a.refence(ctx, gen)
	default:
		a.decide(ctx)
	}
}

// refence kills, while the host stays fenced, any HA domain that
// appeared after the fence (an incoming live migration, a start that
// raced it): the leader may restart that VM elsewhere too.
func (a *Agent) refence(ctx context.Context, gen uint64) {
	fenced, err := a.fence(ctx, gen, true)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		a.setDecision(gen, decisionRetry)
		a.log.Error("self-fenced host: cannot kill an HA guest that appeared since, retrying (the watchdog, if armed, is no longer petted)",
			"host_id", a.HostID(), "fenced_vms", fenced, "error", err)
		return
	}
	if len(fenced) > 0 {
		a.log.Warn("self-fenced host: HA guests that appeared since the fence powered off", "host_id", a.HostID(), "fenced_vms", fenced)
	}
}

// peerAnswer is what one peer said.
type peerAnswer struct {
	peer      Peer
	reachable bool
	valid     bool
	err       error
}

// askPeers asks every peer, concurrently, whether its lease is valid.
func (a *Agent) askPeers(ctx context.Context, peers []Peer) []peerAnswer {
	out := make([]peerAnswer, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() {
			out[i] = a.askPeer(ctx, p)
		})
	}
	wg.Wait()
	return out
}

func (a *Agent) askPeer(ctx context.Context, p Peer) peerAnswer {
	ans := peerAnswer{peer: p}
	ctx, cancel := context.WithTimeout(ctx, a.peerTimeout())
	defer cancel()
	u, err := url.Parse(strings.TrimRight(p.StatusURL, "/") + PathLease)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		ans.err = fmt.Errorf("bad status url %q", p.StatusURL)
		return ans
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		ans.err = err
		return ans
	}
	resp, err := a.peerHTTP.Do(req)
	if err != nil {
		ans.err = err
		return ans
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		ans.err = err
		return ans
	}
	if resp.StatusCode != http.StatusOK {
		ans.err = fmt.Errorf("peer answered %d", resp.StatusCode)
		return ans
	}
	var st LeaseStatus
	if err := json.Unmarshal(body, &st); err != nil {
		ans.err = fmt.Errorf("decode peer answer: %w", err)
		return ans
	}
	if p.HostID != "" && st.HostID != "" && st.HostID != p.HostID {
		// Another agent answers at that address: it says nothing about
		// the peer we asked for.
		ans.err = fmt.Errorf("answered by host %s", st.HostID)
		return ans
	}
	ans.reachable, ans.valid = true, st.Valid
	return ans
}

// decide asks the peers and fences or holds. It runs on the monitor.
func (a *Agent) decide(ctx context.Context) {
	a.mu.Lock()
	peers := append([]Peer(nil), a.ls.peers...)
	hostID, gen := a.hostID, a.ls.lossGen
	a.mu.Unlock()
	answers := a.askPeers(ctx, peers)
	if ctx.Err() != nil {
		return
	}
	reachable, valid := 0, 0
	var validNames, unreachable []string
	for _, ans := range answers {
		if ans.reachable {
			reachable++
		} else {
			unreachable = append(unreachable, ans.peer.HostID+": "+errString(ans.err))
		}
		if ans.valid {
			valid++
			validNames = append(validNames, ans.peer.HostID)
		}
	}
	// Hold only when every peer answered and none has a lease: a peer
	// that did not answer may be heard by the leader (a partition that
	// cut this host off with only part of its cluster), which may then
	// restart this host's HA VMs elsewhere. No peers at all: fence.
	fence := valid > 0 || reachable < len(peers) || len(peers) == 0
	a.mu.Lock()
	stale := a.ls.lossGen != gen || !a.ls.lost
	prev := a.ls.decision
	a.mu.Unlock()
	if stale {
		return // contact came back while the peers were asked
	}
	if !fence {
		a.setDecision(gen, decisionHold)
		if prev != decisionHold {
			a.log.Warn("lease lost, but every peer answered and none holds a lease: the management plane is down for every host, keeping every VM running",
				"host_id", hostID, "peers_asked", len(peers), "peers_reachable", reachable, "peers_valid", 0, "fenced_vms", []string{})
		}
		return
	}
	fenced, err := a.fence(ctx, gen, false)
	if ctx.Err() != nil {
		return
	}
	why := "a peer holds a valid lease: this host is cut off"
	switch {
	case valid > 0:
	case reachable == 0:
		why = "no peer reachable: this host is isolated"
	default:
		why = "some peers unreachable: the leader may hear them"
	}
	if err != nil {
		a.setDecision(gen, decisionRetry)
		a.log.Error("self-fence failed, retrying (the watchdog, if armed, is no longer petted)",
			"host_id", hostID, "reason", why, "peers_asked", len(peers), "peers_reachable", reachable,
			"peers_valid", valid, "valid_peers", validNames, "fenced_vms", fenced, "error", err)
		return
	}
	a.setDecision(gen, decisionFence)
	a.log.Warn("lease lost, self-fenced: HA guests powered off, non-HA guests left running; no VM starts until the servers are reached again",
		"host_id", hostID, "reason", why, "peers_asked", len(peers), "peers_reachable", reachable,
		"peers_valid", valid, "valid_peers", validNames, "unreachable_peers", unreachable, "fenced_vms", fenced)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// setDecision records the monitor's decision for loss gen.
func (a *Agent) setDecision(gen uint64, d string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ls.lossGen == gen && a.ls.lost {
		a.ls.decision = d
	}
}

// fence powers off and undefines every domain of an HA VM, and of a VM
// unknown to the last desired state (it cannot be proven non-HA) when
// that state's VMs are known. It holds startMu, so no start runs
// meanwhile (and none can follow: the lease is lost). It returns the VM
// domains it killed. It does nothing once loss gen is over. live: only
// domains not powered off (the checks after the fence).
func (a *Agent) fence(ctx context.Context, gen uint64, live bool) ([]string, error) {
	a.startMu.Lock()
	defer a.startMu.Unlock()
	a.mu.Lock()
	if !a.ls.lost || a.ls.lossGen != gen {
		a.mu.Unlock()
		return []string{}, nil // contact came back: the reconciler decides
	}
	ha := make(map[string]bool, len(a.ls.ha))
	for k := range a.ls.ha {
		ha[k] = true
	}
	var known map[string]bool
	if a.ls.known != nil {
		known = make(map[string]bool, len(a.ls.known))
		for k := range a.ls.known {
			known[k] = true
		}
	}
	a.mu.Unlock()
	doms, err := a.driver.Domains(ctx)
	if err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	fenced := []string{}
	var errs []error
	for _, d := range doms {
		if !ha[d.UUID] && (known == nil || known[d.UUID]) {
			continue
		}
		if live && d.Power == hypervisor.PowerStopped {
			continue
		}
		a.mu.Lock()
		if a.ls.fencedDoms == nil {
			a.ls.fencedDoms = map[string]bool{}
		}
		a.ls.fencedDoms[d.UUID] = true // excuses its stop events
		a.mu.Unlock()
		if err := a.driver.Stop(ctx, d.UUID); err != nil && !errors.Is(err, hypervisor.ErrNotFound) {
			errs = append(errs, fmt.Errorf("power off %s: %w", d.UUID, err))
			continue
		}
		if err := a.driver.Destroy(ctx, d.UUID); err != nil {
			// Powered off is what matters; the definition goes at the
			// recovery pass.
			a.log.Warn("fenced domain powered off but not undefined", "uuid", d.UUID, "error", err)
		}
		fenced = append(fenced, d.UUID)
	}
	return fenced, errors.Join(errs...)
}

// recoverLease runs the recovery pass of a lease loss (or of the start) if it
// is due: a full desired state read and a reconcile pass over it, before
// any heartbeat may bring the host Up again.
func (a *Agent) recoverLease(ctx context.Context) error {
	a.mu.Lock()
	gen, done := a.ls.lossGen, a.ls.recoveredGen
	hostID := a.hostID
	a.mu.Unlock()
	if gen == done || hostID == "" {
		return nil
	}
	q := url.Values{}
	q.Set("index", "0")
	q.Set("wait", "0")
	var d Desired
	if err := a.client.Do(ctx, a.creds(), Call{Method: http.MethodGet, Path: PathDesired, Query: q, Out: &d}); err != nil {
		return fmt.Errorf("full desired state: %w", err)
	}
	a.noteDesired(&d)
	if err := a.rec.syncPass(ctx, &d); err != nil {
		return err
	}
	a.mu.Lock()
	if a.ls.lossGen == gen {
		a.ls.recoveredGen = gen
	}
	a.mu.Unlock()
	a.log.Info("recovery pass done: full desired state reconciled before the next heartbeat",
		"host_id", hostID, "index", d.Index, "vms", len(d.VMs), "loss", strconv.FormatUint(gen, 10))
	return nil
}
