package agent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/stratus-cloud/stratus/hypervisor"
)

// heartbeatLoop renews the host's lease every heartbeat interval until ctx
// ends. A 404 ends the session so that Run registers again.
func (a *Agent) heartbeatLoop(ctx context.Context) {
	for failures := 0; ; {
		// After a lease loss (and at start) no heartbeat goes out before
		// the recovery pass: the first one may bring the host Up.
		err := a.recoverLease(ctx)
		if err == nil {
			err = a.heartbeat(ctx)
		}
		switch {
		case ctx.Err() != nil:
			return
		case isNotFound(err):
			a.markLost()
			return
		case err != nil:
			failures++
			a.log.Warn("heartbeat failed", "failures", failures, "error", err)
		default:
			if failures > 0 {
				a.log.Info("heartbeat renewed again", "failures", failures)
				a.reconnected()
			}
			failures = 0
			if gen, due := a.startsDue(); due {
				if err := a.readForStarts(ctx, gen); err != nil && ctx.Err() == nil {
					a.log.Warn("cannot read the desired state after the renewal, no VM starts yet", "error", err)
				}
			}
		}
		a.mu.Lock()
		interval := a.interval
		a.mu.Unlock()
		if !sleep(ctx, heartbeatWait(interval, failures, a.retryWait)) {
			return
		}
	}
}

// heartbeatWait is the pause before the next heartbeat: the interval
// (spread), but after a failure the backoff when it is shorter. A large
// cloud's interval (10 s at 10,000 hosts) leaves its lease room for about
// one missed heartbeat: waiting a whole interval after one refused while
// the servers elected a leader lost the lease of every host that tried
// then. The backoff is jittered and grows, so the retries of many hosts
// spread out.
func heartbeatWait(interval time.Duration, failures int, backoff func(int) time.Duration) time.Duration {
	wait := spread(interval)
	if failures > 0 {
		wait = min(wait, backoff(failures-1))
	}
	return wait
}

// spread shortens an interval by up to a tenth at random, so the
// heartbeats of many hosts started together (a power cut, a restart of
// every agent) drift apart instead of reaching the leader in bursts.
// Shorter is always safe: the lease only gets renewed sooner.
func spread(d time.Duration) time.Duration {
	if j := int64(d / 10); j > 0 {
		return d - time.Duration(rand.Int64N(j))
	}
	return d
}

// heartbeat sends one heartbeat. The lease counts from the moment the
// heartbeat was first sent (before any retry), which errs on the safe side
// for self-fencing.
func (a *Agent) heartbeat(ctx context.Context) error {
	facts, err := a.driver.Facts(ctx)
	a.mu.Lock()
	if err == nil {
		a.facts = facts
	} else {
		facts = a.facts
	}
	memUsed := a.memUsed
	a.mu.Unlock()
	if err != nil {
		a.log.Debug("host facts unavailable, sending the last ones", "error", err)
	}
	// No domain list: the servers learn VM states from reports, and a
	// list in every heartbeat (1,000 a second in a large cloud) cost the
	// agent a hypervisor call and the leader its decoding for nothing.
	hb := Heartbeat{Facts: facts, MemoryUsedBytes: memUsed}
	if a.cfg.Usage != nil {
		hb.CPUUsedPercent, hb.MemoryUsedBytes = a.cfg.Usage(ctx)
	}
	creds := a.creds()
	hb.HostID = creds.HostID
	a.mu.Lock()
	gen, ready := a.ls.lossGen, a.ls.recoveredGen == a.ls.lossGen
	a.mu.Unlock()
	if !ready {
		return errRecoveryDue
	}
	sent := a.now()
	hb.SentAt = sent.UTC()
	// A heartbeat must not reach the servers after the lease it would
	// renew ran out (the client retries for a while): by then the agent
	// may have fenced itself, and a late heartbeat would bring the host
	// Up before the recovery pass. So its tries end with the current
	// lease, or, when there is none, one TTL after it was sent.
	a.mu.Lock()
	valid, left := a.leaseValidLocked(sent)
	limit := a.leaseTTL
	a.mu.Unlock()
	if valid {
		limit = left
	}
	hctx := ctx
	if limit > 0 {
		var cancel context.CancelFunc
		hctx, cancel = context.WithTimeout(ctx, limit)
		defer cancel()
	}
	var resp HeartbeatResponse
	if err := a.client.Do(hctx, creds, Call{Method: http.MethodPost, Path: PathHeartbeat, In: hb, Out: &resp}); err != nil {
		return err
	}
	a.mu.Lock()
	if a.ls.lossGen != gen {
		// The lease was declared lost while this heartbeat was on its
		// way: it renews nothing before a recovery pass.
		a.mu.Unlock()
		return errLostInFlight
	}
	if resp.State != a.state {
		a.log.Info("host state changed", "host_id", hb.HostID, "state", resp.State, "was", a.state)
		a.state = resp.State
	}
	if d := resp.HeartbeatInterval.Duration(); d > 0 {
		a.interval = d
	}
	if resp.State != hostStateUp {
		// The servers took the heartbeat but did not (or could not) make
		// the host Up: the leader may still treat it as lost and restart
		// its VMs elsewhere. It renews nothing; the next one is retried.
		a.mu.Unlock()
		return fmt.Errorf("%w (state %q)", errNotUp, resp.State)
	}
	wasValid, _ := a.leaseValidLocked(sent)
	wasLost := a.ls.lost
	a.lastSent = sent
	a.ls.lost, a.ls.decision = false, decisionNone
	if d := resp.LeaseTTL.Duration(); d > 0 {
		a.leaseTTL = d
	}
	ttl := a.leaseTTL
	a.mu.Unlock()
	a.saveLease(sent, ttl)
	if wasLost {
		a.log.Info("lease renewed after it was lost: VMs may start again after a full desired state read", "host_id", hb.HostID)
	}
	if !wasValid {
		// Starts were held while the lease was not valid.
		poke(a.kick)
	}
	return nil
}

// Errors of heartbeat that only say it must wait for a recovery pass.
var (
	errRecoveryDue  = errors.New("a recovery pass must run before the next heartbeat")
	errLostInFlight = errors.New("the lease was declared lost while the heartbeat was sent; recovering first")
	errNotUp        = errors.New("heartbeat answered, but the host is not Up: the lease is not renewed")
)

// hostStateUp is the host state in which a heartbeat renews the lease.
const hostStateUp = "Up"

// watchDesired long-polls the host's desired state and hands every
// verified answer to the reconciler, until ctx ends. After a failure it
// backs off; the first answer after failures counts as a reconnect, after
// which everything is reported again.
func (a *Agent) watchDesired(ctx context.Context) {
	var index uint64
	failures := 0
	wait := a.cfg.PollWait
	for {
		q := url.Values{}
		q.Set("index", strconv.FormatUint(index, 10))
		q.Set("wait", strconv.FormatInt(int64(MillisOf(wait)), 10))
		if tag := a.heldPeersTag(); tag != "" {
			q.Set("peers", tag)
		}
		var d Desired
		err := a.client.Do(ctx, a.creds(), Call{Method: http.MethodGet, Path: PathDesired, Query: q, Out: &d, Timeout: wait + 15*time.Second})
		switch {
		case ctx.Err() != nil:
			return
		case isNotFound(err):
			a.markLost()
			return
		case err != nil:
			a.log.Warn("cannot read the desired state", "failures", failures+1, "error", err)
			if !sleep(ctx, a.retryWait(failures)) {
				return
			}
			failures++
			continue
		}
		if failures > 0 {
			a.log.Info("desired state reachable again", "failures", failures, "index", d.Index)
			a.reconnected()
			failures = 0
		}
		if d.Index > index {
			index = d.Index
		}
		a.offerDesired(&d)
	}
}

// heldPeersTag is the tag of the peer list the agent holds, "" before a
// desired answer named one.
func (a *Agent) heldPeersTag() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ls.peersTag
}

// reconnected makes the agent report everything again after the servers
// were unreachable: they may have missed reports or lost them in a
// failover.
func (a *Agent) reconnected() {
	a.rep.resetSent()
	poke(a.kick)
}

// offerDesired hands d to the reconciler, replacing an answer it has not
// taken yet.
func (a *Agent) offerDesired(d *Desired) {
	a.noteDesired(d)
	a.desiredMu.Lock()
	a.desired = d
	a.desiredMu.Unlock()
	poke(a.desiredNote)
}

// takeDesired returns the newest answer not yet taken, or nil.
func (a *Agent) takeDesired() *Desired {
	a.desiredMu.Lock()
	defer a.desiredMu.Unlock()
	d := a.desired
	a.desired = nil
	return d
}

// poke signals a channel of capacity one without blocking.
func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// watchEvents forwards the driver's lifecycle events to out until ctx
// ends, subscribing again when the driver's channel closes early.
func (a *Agent) watchEvents(ctx context.Context, out chan<- hypervisor.DomainEvent) {
	for attempt := 0; ctx.Err() == nil; {
		ch, err := a.driver.Events(ctx)
		if err != nil {
			a.log.Warn("cannot subscribe to domain events", "error", err)
			if !sleep(ctx, a.retryWait(attempt)) {
				return
			}
			attempt++
			continue
		}
		attempt = 0
		for ev := range ch {
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
		}
		if ctx.Err() == nil {
			a.log.Warn("domain event stream ended, subscribing again")
			if !sleep(ctx, a.retryWait(0)) {
				return
			}
		}
	}
}

// reporter batches VM and volume reports and delivers them, remembering
// what the servers acknowledged so that only changes are sent. After a
// (re)connect resetSent makes the next pass report everything again.
type reporter struct {
	a    *Agent
	note chan struct{}

	mu         sync.Mutex
	pending    map[string]VMReport
	pendingVol map[string]VolumeReport
	sent       map[string]VMReport
	sentVol    map[string]VolumeReport
	acks       map[string]uint64 // VM ID → index of its acknowledged report with a Reason
}

func newReporter(a *Agent) *reporter {
	r := &reporter{a: a, note: make(chan struct{}, 1), acks: map[string]uint64{}}
	r.pending, r.pendingVol = map[string]VMReport{}, map[string]VolumeReport{}
	r.resetSent()
	return r
}

// resetSent forgets what was delivered, so that everything is sent again.
func (r *reporter) resetSent() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent, r.sentVol = map[string]VMReport{}, map[string]VolumeReport{}
}

// offer queues the reports that differ from what was last delivered.
func (r *reporter) offer(vms []VMReport, vols []VolumeReport) {
	r.mu.Lock()
	changed := false
	for _, v := range vms {
		if s, ok := r.sent[v.ID]; ok && s == v {
			delete(r.pending, v.ID)
			continue
		}
		if p, ok := r.pending[v.ID]; !ok || p != v {
			r.pending[v.ID] = v
			changed = true
		}
	}
	for _, v := range vols {
		if s, ok := r.sentVol[v.ID]; ok && s == v {
			delete(r.pendingVol, v.ID)
			continue
		}
		if p, ok := r.pendingVol[v.ID]; !ok || p != v {
			r.pendingVol[v.ID] = v
			changed = true
		}
	}
	r.mu.Unlock()
	if changed {
		poke(r.note)
	}
}

// ack returns the index of the acknowledged report with a Reason of VM id.
func (r *reporter) ack(id string) (uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i, ok := r.acks[id]
	return i, ok
}

// clearAck forgets the acknowledgement of VM id.
func (r *reporter) clearAck(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.acks, id)
}

// batch returns the pending reports in ID order.
func (r *reporter) batch() ([]VMReport, []VolumeReport) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var vms []VMReport
	for _, v := range r.pending {
		vms = append(vms, v)
	}
	var vols []VolumeReport
	for _, v := range r.pendingVol {
		vols = append(vols, v)
	}
	sort.Slice(vms, func(i, j int) bool { return vms[i].ID < vms[j].ID })
	sort.Slice(vols, func(i, j int) bool { return vols[i].ID < vols[j].ID })
	return vms, vols
}

// delivered records an acknowledged batch.
func (r *reporter) delivered(vms []VMReport, vols []VolumeReport, index uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, v := range vms {
		r.sent[v.ID] = v
		if r.pending[v.ID] == v {
			delete(r.pending, v.ID)
		}
		if v.Reason != "" {
			r.acks[v.ID] = index
		}
	}
	for _, v := range vols {
		r.sentVol[v.ID] = v
		if r.pendingVol[v.ID] == v {
			delete(r.pendingVol, v.ID)
		}
	}
}

// drop removes a batch from the pending reports without recording it.
func (r *reporter) drop(vms []VMReport, vols []VolumeReport) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, v := range vms {
		if r.pending[v.ID] == v {
			delete(r.pending, v.ID)
		}
	}
	for _, v := range vols {
		if r.pendingVol[v.ID] == v {
			delete(r.pendingVol, v.ID)
		}
	}
}

// run delivers pending reports until ctx ends, retrying with backoff.
func (r *reporter) run(ctx context.Context) {
	a := r.a
	for attempt := 0; ; {
		vms, vols := r.batch()
		if len(vms) == 0 && len(vols) == 0 {
			attempt = 0
			select {
			case <-ctx.Done():
				return
			case <-r.note:
			}
			continue
		}
		creds := a.creds()
		if creds.HostID == "" {
			// Not registered yet: wait for the session to start.
			if !sleep(ctx, a.retryWait(0)) {
				return
			}
			continue
		}
		var resp ReportResponse
		err := a.client.Do(ctx, creds, Call{Method: http.MethodPost, Path: PathReport,
			In: Report{HostID: creds.HostID, VMs: vms, Volumes: vols, Index: a.seenIndex.Load()}, Out: &resp})
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			r.delivered(vms, vols, resp.Index)
			a.log.Debug("reported", "vms", len(vms), "volumes", len(vols), "index", resp.Index)
			attempt = 0
			continue
		case isNotFound(err):
			a.markLost()
		case isRejected(err):
			// The servers will never take this batch: drop it rather
			// than block every later report behind it.
			a.log.Error("report rejected, dropping it", "vms", len(vms), "volumes", len(vols), "error", err)
			r.drop(vms, vols)
			continue
		}
		a.log.Warn("report failed", "vms", len(vms), "volumes", len(vols), "attempt", attempt+1, "error", err)
		if !sleep(ctx, a.retryWait(attempt)) {
			return
		}
		attempt++
	}
}
