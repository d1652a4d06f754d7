package ha

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/hypervisor/fence"
)

// Cluster is what the controller needs of the replicated core.
type Cluster interface {
	State() *fsm.Store
	Apply(ctx context.Context, t fsm.MessageType, body any) (uint64, error)
	// IsLeader says whether this node leads right now; leader-only
	// actions check it again when they act (timers fire late).
	IsLeader() bool
}

// Config configures a Controller. Only Cluster is required.
type Config struct {
	Cluster Cluster
	// Fencers returns the fence driver of a provider (fsm.HAProvider*);
	// cmd wires the drivers of hypervisor/fence. Nil knows only lease.
	Fencers func(provider string) (fence.Fencer, error)
	Clock   Clock // nil: the wall clock
	Logger  hclog.Logger
	// FenceTimeout bounds one fence attempt (default 60 s), FenceAttempts
	// is how many attempts an out-of-band fence gets (default 3), with
	// FenceBackoff (default 5 s) before the second, doubling after.
	FenceTimeout  time.Duration
	FenceAttempts int
	FenceBackoff  time.Duration
	// RetryInterval is how often HA VMs that could not be restarted yet
	// (HAPending, Stopped: no capacity) are tried again (default 10 s).
	RetryInterval time.Duration
}

// Controller keeps the hosts' lease timers while this node leads, fences
// hosts whose lease ran out and restarts their HA VMs elsewhere. Only
// changes of state go through raft; the timers live in memory and a new
// leader re-arms them with the failover grace.
type Controller struct {
	cl      Cluster
	fencers func(string) (fence.Fencer, error)
	clock   Clock
	logger  hclog.Logger
	cfg     Config

	mu      sync.Mutex
	leading bool
	term    uint64 // counts establishments; callbacks of an older term do nothing
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	timers  map[string]*hostTimer
	fencing map[string]context.CancelFunc // hosts whose fence is under way
	kick    chan struct{}                 // wakes the restarter
	tuning  tuning                        // the timing granted to agents (timing.go)
	group   *groupCommitter               // host changes go to raft in groups (group.go)
}

// hostTimer is one host's lease timer and the deadline it was armed for.
// Its epoch counts the host's heartbeats this term; mu orders a heartbeat
// and the commits of an expiry, so an expiry commits nothing once a
// heartbeat came after its timer fired (see quiet).
type hostTimer struct {
	timer    Timer
	deadline time.Time
	// floor is the latest deadline of a lease the host may still hold:
	// received + TTL + margin of every answer, and at the start of a term
	// the longest lease a previous leader may have granted. It only moves
	// later: an answer with a shorter lease than an earlier one may be
	// lost, and the agent then still holds the earlier lease.
	floor time.Time
	ttl   time.Duration // the lease granted in the last answer
	epoch uint64
	// heard is when the last heartbeat of this term arrived; the term's
	// start until the host heartbeats (its last one may have reached the
	// previous leader just before it left).
	heard time.Time
	// upWanted: a heartbeat asked for the host's Up check (the one with
	// the latest sent time, upSent) and no holder of mu has run it yet.
	upWanted bool
	upSent   time.Time
	mu       sync.Mutex
}

// New returns a controller; it does nothing until Establish.
func New(cfg Config) *Controller {
	if cfg.Clock == nil {
		cfg.Clock = RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Fencers == nil {
		cfg.Fencers = leaseOnly
	}
	if cfg.FenceTimeout <= 0 {
		cfg.FenceTimeout = time.Minute
	}
	if cfg.FenceAttempts <= 0 {
		cfg.FenceAttempts = 3
	}
	if cfg.FenceBackoff <= 0 {
		cfg.FenceBackoff = 5 * time.Second
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = 10 * time.Second
	}
	return &Controller{cl: cfg.Cluster, fencers: cfg.Fencers, clock: cfg.Clock, logger: cfg.Logger.Named("ha"), cfg: cfg,
		timers: map[string]*hostTimer{}, fencing: map[string]context.CancelFunc{}, group: &groupCommitter{cl: cfg.Cluster}}
}

// leaseFencer trusts the agent's self-fence: by the time the leader's
// deadline passes, the agent's own has passed and it killed its HA guests.
type leaseFencer struct{}

func (leaseFencer) Name() string                              { return fsm.HAProviderLease }
func (leaseFencer) Fence(context.Context, fence.Target) error { return nil }

func leaseOnly(provider string) (fence.Fencer, error) {
	if provider == fsm.HAProviderLease {
		return leaseFencer{}, nil
	}
	return nil, fmt.Errorf("fence provider %s: %w", provider, fence.ErrNotConfigured)
}

// Provider returns the fence provider in force for a host, or "" when an
// operator disabled HA for it. The rule: a host whose HA was never
// configured (no provider) takes part in HA by default, with the lease
// provider when its agent self-fences and none otherwise, so VM HA works
// without any host HA setup; a configured host uses its provider while HA
// is enabled; a configured host whose HA an operator disabled
// (disableHAForHost: HAEnabled false, provider kept) is never fenced.
func Provider(h *fsm.Host) string {
	switch {
	case h.HAProvider == "" && h.SelfFence:
		return fsm.HAProviderLease
	case h.HAProvider == "":
		return fsm.HAProviderNone
	case !h.HAEnabled:
		return ""
	}
	return h.HAProvider
}

// healthyHAState is the HA state a heartbeating host shows.
func healthyHAState(h *fsm.Host) string {
	if Provider(h) == "" {
		return fsm.HAStateDisabled
	}
	return fsm.HAStateAvailable
}

func seconds(st *fsm.Store, name string) time.Duration {
	return time.Duration(max(0, st.SettingInt(name))) * time.Second
}

// graceOf is the failover grace in force for a cloud of hosts hosts:
// never shorter than the deadline of the longest lease any leader may have
// granted (host.lease.granted, the settings' lease, the scaled lease for
// this many hosts) plus the margin, or a new leader could declare a host
// lost while a lease the old leader granted still runs. It is read from
// the replicated state only, never from this node's memory.
func graceOf(st *fsm.Store, hosts int) time.Duration {
	return max(seconds(st, fsm.SettingFailoverGrace), leaseBound(st, hosts))
}

// leaseBound is how long after a leader took over a lease granted by a
// previous one may still run, plus the margin.
func leaseBound(st *fsm.Store, hosts int) time.Duration {
	base := st.BaseLeaseTiming()
	return max(st.LeaseGranted(), base.TTL, st.LeaseTimingFor(hosts).TTL) + base.Margin
}

// Establish arms every live host's timer with the failover grace (plus up
// to a tenth of it in jitter, so the hosts of a big cloud do not all come
// due at once) and starts the restarter; it is a cluster.EstablishFunc,
// called after the barrier, so the state read here is current.
func (c *Controller) Establish(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leading {
		return nil
	}
	st := c.cl.State()
	hosts, err := fsm.List[fsm.Host](st, nil, fsm.TableHosts, "id")
	if err != nil {
		return fmt.Errorf("ha: list hosts: %w", err)
	}
	c.leading = true
	c.term++
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.kick = make(chan struct{}, 1)
	grace, bound := graceOf(st, len(hosts)), leaseBound(st, len(hosts))
	now := c.clock.Now()
	c.tuning = tuning{lowerAfter: now.Add(grace)}
	c.tuneLocked(now)
	for _, h := range hosts {
		if !watched(h) {
			continue
		}
		jitter := time.Duration(0)
		if g := int64(grace / 10); g > 0 {
			jitter = time.Duration(rand.Int64N(g))
		}
		t := c.armLocked(h.ID, now.Add(grace+jitter))
		t.heard, t.floor = now, now.Add(bound)
	}
	c.wg.Add(1)
	go c.restarter(c.ctx, c.term)
	c.logger.Info("host HA established", "hosts_armed", len(c.timers), "grace", grace)
	return nil
}

// watched says whether a host's liveness is tracked from the start of a
// term: it is Up, or its fence was under way when the last leader left.
// Hosts in maintenance, down, or never connected wait for a heartbeat.
func watched(h *fsm.Host) bool {
	if h.ResourceState == fsm.ResourceStateMaintenance {
		return false
	}
	return h.State == fsm.HostStateUp || resumable(h)
}

// resumable says whether a host's fence was started and not finished: it
// is Disconnected and Suspect or Fencing, or Disconnected with HA disabled
// by an operator (it still goes to Alert).
func resumable(h *fsm.Host) bool {
	return h.State == fsm.HostStateDisconnected &&
		(h.HAState == fsm.HAStateSuspect || h.HAState == fsm.HAStateFencing || Provider(h) == "")
}

// Revoke stops every timer, fence and restart of this term and waits for
// them; it is a cluster.RevokeFunc.
func (c *Controller) Revoke() {
	c.mu.Lock()
	if !c.leading {
		c.mu.Unlock()
		return
	}
	c.leading = false
	c.term++
	for id, t := range c.timers {
		t.timer.Stop()
		delete(c.timers, id)
	}
	c.cancel()
	c.mu.Unlock()
	c.wg.Wait()
	c.mu.Lock()
	c.tuning = tuning{}
	c.mu.Unlock()
	c.logger.Info("host HA revoked")
}

// Heartbeat renews a host's lease on the leader and returns the timing to
// answer it with: the host's timer is armed for received + the granted
// TTL + margin (or kept, if it was due later). The answer must carry
// exactly that timing's TTL. It returns false when this node does not lead
// (the API then relays the heartbeat). A heartbeat of a host that is not
// Up (or not showing its healthy HA state) commits it Up and calls off a
// fence under way: the host is alive.
//
// The lease is renewed before the host's lock is taken, and only one
// heartbeat of a host at a time waits for that lock. An expiry holds the
// lock across its commit; when commits are slow (thousands of leases ran
// out together, the leader is loaded), heartbeats that renewed only once
// they had the lock let leases run out while they waited, and every retry
// of every agent added a handler blocked on the same lock, each holding a
// connection: at 10,000 hosts a new leader had 10,500 such handlers and
// ran out of file descriptors. A heartbeat that finds the lock held leaves
// its Up check to the holder, which runs it once it is done (settleUp), so
// a host that heartbeats once after a fence still comes back Up.
func (c *Controller) Heartbeat(hostID string, sent, received time.Time) (fsm.LeaseTiming, bool) {
	c.mu.Lock()
	if !c.leading || !c.cl.IsLeader() {
		c.mu.Unlock()
		return fsm.LeaseTiming{}, false
	}
	c.tuneLocked(c.clock.Now())
	g := c.tuning.grant
	d := received.Add(g.Deadline())
	t := c.timers[hostID]
	if t != nil && t.floor.After(d) {
		d = t.floor
	}
	t = c.armLocked(hostID, d)
	t.floor, t.ttl = d, g.TTL
	// A new epoch: an expiry that has not yet committed a step now commits
	// nothing (quiet), one committing now is undone below.
	t.epoch++
	t.heard = received
	if stop := c.fencing[hostID]; stop != nil {
		stop()
	}
	if !t.upWanted || sent.After(t.upSent) {
		t.upSent = sent
	}
	t.upWanted = true
	term := c.term
	c.mu.Unlock()
	if !c.settleUp(term, hostID, t) {
		return fsm.LeaseTiming{}, false // the term ended meanwhile: relay it
	}
	return g, true
}

// settleUp runs the Up check a heartbeat asked for (t.upWanted): if the
// host is not Up, or not in its healthy HA state, it commits it Up. It runs
// it only when it gets the host's lock at once; otherwise the holder (an
// expiry's commit, or another heartbeat's Up commit) calls settleUp once it
// lets the lock go, and sees the request. It reports false when it took
// the lock and found that term no longer leads with this timer.
func (c *Controller) settleUp(term uint64, hostID string, t *hostTimer) bool {
	for c.upWanted(t) {
		if !t.mu.TryLock() {
			return true
		}
		c.mu.Lock()
		want, sent := t.upWanted, t.upSent
		t.upWanted = false
		current := c.leading && c.term == term && c.timers[hostID] == t
		ctx := c.ctx
		c.mu.Unlock()
		if want && current {
			st := c.cl.State()
			h, err := fsm.Get[fsm.Host](st, nil, fsm.TableHosts, hostID)
			if err == nil && h != nil && (h.State != fsm.HostStateUp || h.HAState != healthyHAState(h)) {
				ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				c.markUp(ctx, term, hostID, sent)
				cancel()
			}
		}
		t.mu.Unlock()
		if !current {
			return false
		}
		// A heartbeat that came while the lock was held left its check:
		// the loop runs it.
	}
	return true
}

// upWanted reads t.upWanted under the controller's lock.
func (c *Controller) upWanted(t *hostTimer) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return t.upWanted
}

// armLocked (re)arms a host's timer for deadline. c.mu is held.
func (c *Controller) armLocked(hostID string, deadline time.Time) *hostTimer {
	d := deadline.Sub(c.clock.Now())
	if t := c.timers[hostID]; t != nil {
		t.deadline = deadline
		t.timer.Reset(d)
		return t
	}
	term := c.term
	t := &hostTimer{deadline: deadline}
	t.timer = c.clock.AfterFunc(d, func() { c.fired(term, hostID) })
	c.timers[hostID] = t
	return t
}

// fired runs when a host's timer comes due. The timer may have been
// re-armed meanwhile (a heartbeat raced it): then it is only armed again.
func (c *Controller) fired(term uint64, hostID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.timers[hostID]
	if !c.leading || c.term != term || t == nil {
		return
	}
	if left := t.deadline.Sub(c.clock.Now()); left > 0 {
		t.timer.Reset(left)
		return
	}
	epoch := t.epoch
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.expire(term, hostID, epoch)
	}()
}

// quiet runs commit, holding the host's lock, only if no heartbeat of the
// host came since epoch and this term still leads; it reports whether it
// ran. Every commit of an expiry (Disconnected, Fencing, Fenced, Alert)
// goes through it.
func (c *Controller) quiet(term uint64, hostID string, epoch uint64, commit func()) bool {
	c.mu.Lock()
	t := c.timers[hostID]
	c.mu.Unlock()
	if t == nil {
		return false
	}
	t.mu.Lock()
	c.mu.Lock()
	ok := c.leading && c.term == term && c.timers[hostID] == t && t.epoch == epoch
	c.mu.Unlock()
	if ok {
		commit()
	}
	t.mu.Unlock()
	// Heartbeats that came during the commit left their Up check to us.
	c.settleUp(term, hostID, t)
	return ok
}

// acting says whether this term still leads: checked again right before
// every leader-only action, since timers and fences finish late.
func (c *Controller) acting(term uint64) bool {
	c.mu.Lock()
	ok := c.leading && c.term == term
	c.mu.Unlock()
	return ok && c.cl.IsLeader()
}

// wake asks the restarter to look again.
func (c *Controller) wake() {
	c.mu.Lock()
	k := c.kick
	c.mu.Unlock()
	if k != nil {
		select {
		case k <- struct{}{}:
		default:
		}
	}
}

// errSkip ends a host mutation without a commit.
var errSkip = errors.New("nothing to change")

// mutateHost reads the host, lets change edit a copy (returning extra ops
// to commit with it, or errSkip) and commits the host with compare-and-set,
// reading again when another write got there first. The commit may share
// a raft entry with other hosts' changes (group.go).
func (c *Controller) mutateHost(ctx context.Context, term uint64, hostID string, change func(st *fsm.Store, h *fsm.Host) ([]fsm.TxnOp, error)) error {
	for attempt := 0; ; attempt++ {
		if !c.acting(term) {
			return errSkip
		}
		st := c.cl.State()
		h, err := fsm.Get[fsm.Host](st, nil, fsm.TableHosts, hostID)
		if err != nil {
			return fmt.Errorf("read host %s: %w", hostID, err)
		}
		if h == nil {
			return errSkip
		}
		h = h.Copy()
		extra, err := change(st, h)
		if err != nil {
			return err
		}
		ops := append([]fsm.TxnOp{fsm.Update(fsm.TableHosts, h)}, extra...)
		err = c.group.commit(ctx, ops)
		if err == nil {
			return nil
		}
		if !errors.Is(err, fsm.ErrStale) || attempt >= 10 {
			return fmt.Errorf("commit host %s: %w", hostID, err)
		}
	}
}

// markUp commits a heartbeating host Up with its healthy HA state. Its
// agent, reading its desired state, destroys its copies of VMs that were
// restarted elsewhere meanwhile; nothing else changes here.
func (c *Controller) markUp(ctx context.Context, term uint64, hostID string, sent time.Time) {
	var was string
	err := c.mutateHost(ctx, term, hostID, func(st *fsm.Store, h *fsm.Host) ([]fsm.TxnOp, error) {
		if h.State == fsm.HostStateUp && h.HAState == healthyHAState(h) {
			return nil, errSkip
		}
		was = h.State + "/" + h.HAState
		back := h.State != fsm.HostStateUp
		h.State, h.HAState, h.LastPinged = fsm.HostStateUp, healthyHAState(h), c.clock.Now().UTC()
		if !back {
			return nil, nil
		}
		return []fsm.TxnOp{c.hostEvent(st, h, "HOST.RECONNECT", fsm.EventInfo,
			"host %s heartbeats again (it was %s); it is Up. Its agent destroys its copies of VMs that run elsewhere now", h.Name, was)}, nil
	})
	switch {
	case err == nil:
		c.logger.Info("host is up", "host_id", hostID, "was", was, "sent", sent)
	case !errors.Is(err, errSkip):
		c.logger.Warn("cannot mark host up", "host_id", hostID, "error", err)
	}
}

// adminOwner returns the account and domain of the cloud's first admin,
// the owner of events about infrastructure, or empty strings.
func adminOwner(st *fsm.Store) (account, domain string) {
	m, _ := st.Meta(nil)
	if m == nil || m.AdminUserID == "" {
		return "", ""
	}
	u, _ := st.User(nil, m.AdminUserID)
	if u == nil {
		return "", ""
	}
	return u.AccountID, u.DomainID
}

// hostEvent returns the op recording an event about host h.
func (c *Controller) hostEvent(st *fsm.Store, h *fsm.Host, typ, level, format string, args ...any) fsm.TxnOp {
	account, domain := adminOwner(st)
	return fsm.Create(fsm.TableEvents, &fsm.Event{
		ID: newID(), Type: typ, Level: level, State: "Completed", Description: fmt.Sprintf(format, args...),
		AccountID: account, DomainID: domain, ResourceType: "Host", ResourceID: h.ID, Created: c.clock.Now().UTC(),
	})
}

// peerDecisionWindow bounds how long after its lease ran out an agent
// takes to ask its peers and decide (its check period plus the peer
// timeout, with room to spare; see hypervisor/agent lease.go).
const peerDecisionWindow = 2 * time.Second

// leasePeerHeard says whether a peer of h that the agent of h would have
// asked held a lease while that agent decided to fence or hold on: the
// peer is Up and this leader heard it after h's agent had decided (its
// lease, ttl after its last heartbeat, plus the decision window). A peer
// lost at the same moment as h was heard last about when h was, so a
// cluster cut off as a whole never passes. peer names that host; ok is
// true too when h has no peers (its agent then fences by itself).
//
// The agent's lease ended by its timer's floor less the margin (the
// floor bounds every lease the host may hold), which is where need, the
// time a peer must have been heard after, is counted from.
func (c *Controller) leasePeerHeard(st *fsm.Store, h *fsm.Host) (peer string, ok bool, need time.Time) {
	hosts, err := fsm.List[fsm.Host](st, nil, fsm.TableHosts, "cluster", h.ClusterID)
	if err != nil {
		return "", false, need
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.timers[h.ID]; t != nil {
		need = t.floor.Add(-c.tuning.grant.Margin + peerDecisionWindow)
	}
	peers := 0
	for _, p := range hosts {
		if p.ID == h.ID || p.StatusURL == "" {
			continue
		}
		peers++
		if t := c.timers[p.ID]; p.State == fsm.HostStateUp && t != nil && !t.heard.Before(need) {
			return p.Name, true, need
		}
	}
	return "", peers == 0, need
}
