package ha

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/stratus-cloud/stratus/cluster/metrics"
	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/hypervisor/fence"
)

func newID() string { return uuid.NewString() }

// expire handles a host whose lease timer ran out: an Up host is committed
// Disconnected (HA state Suspect) and then fenced through its provider; a
// host whose fence the previous leader left unfinished is fenced again.
// Anything else (Down, Alert, gone) needs nothing: Alert waits for an
// operator, Down for the restarter.
func (c *Controller) expire(term uint64, hostID string, epoch uint64) {
	if !c.acting(term) {
		return
	}
	c.mu.Lock()
	ctx := c.ctx
	c.mu.Unlock()
	h, err := fsm.Get[fsm.Host](c.cl.State(), nil, fsm.TableHosts, hostID)
	if err != nil || h == nil {
		return
	}
	switch {
	case h.State == fsm.HostStateUp:
		if !c.disconnect(ctx, term, hostID, epoch) {
			return
		}
	case resumable(h):
	default:
		return
	}
	c.fence(ctx, term, hostID, epoch)
}

// disconnect commits an Up host Disconnected and reports whether it did
// and the host is to be fenced.
func (c *Controller) disconnect(ctx context.Context, term uint64, hostID string, epoch uint64) bool {
	fenceIt := false
	c.mu.Lock()
	ttl, margin := c.tuning.grant.TTL, c.tuning.grant.Margin
	if t := c.timers[hostID]; t != nil && t.ttl > 0 {
		ttl = t.ttl
	}
	c.mu.Unlock()
	err := c.expiryCommit(ctx, term, hostID, epoch, func(st *fsm.Store, h *fsm.Host) ([]fsm.TxnOp, error) {
		if h.State != fsm.HostStateUp {
			return nil, errSkip
		}
		now := c.clock.Now().UTC()
		h.State, h.Disconnected = fsm.HostStateDisconnected, now
		if h.ResourceState == fsm.ResourceStateMaintenance {
			// A host in maintenance holds no VMs: nothing to fence.
			fenceIt = false
			return []fsm.TxnOp{c.hostEvent(st, h, "HOST.DISCONNECT", fsm.EventInfo,
				"host %s (in maintenance) stopped heartbeating; it is Disconnected", h.Name)}, nil
		}
		fenceIt = true
		if Provider(h) != "" {
			h.HAState = fsm.HAStateSuspect
		}
		return []fsm.TxnOp{c.hostEvent(st, h, "HOST.DISCONNECT", fsm.EventError,
			"host %s stopped heartbeating: its lease ran out (%s + %s margin after the last heartbeat); it is Disconnected and will be fenced through provider %s",
			h.Name, ttl, margin, providerName(h))}, nil
	})
	if err != nil {
		if !errors.Is(err, errSkip) {
			c.logger.Error("cannot mark host disconnected", "host_id", hostID, "error", err)
		}
		return false
	}
	c.logger.Warn("host lease lost", "host_id", hostID)
	return fenceIt
}

func providerName(h *fsm.Host) string {
	if p := Provider(h); p != "" {
		return p
	}
	return "(HA disabled)"
}

// fence makes sure a Disconnected host can run nothing before its VMs are
// started elsewhere, then commits it Down + Fenced (the restarter takes it
// from there), or Alert when that cannot be made sure. A heartbeat of the
// host calls the fence off (its context ends).
func (c *Controller) fence(parent context.Context, term uint64, hostID string, epoch uint64) {
	c.mu.Lock()
	if c.fencing[hostID] != nil || !c.leading || c.term != term {
		c.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(parent)
	c.fencing[hostID] = cancel
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.fencing, hostID)
		c.mu.Unlock()
		cancel()
	}()

	h, err := fsm.Get[fsm.Host](c.cl.State(), nil, fsm.TableHosts, hostID)
	if err != nil || h == nil || !resumable(h) {
		return
	}
	provider := Provider(h)
	switch provider {
	case "":
		c.alert(ctx, term, epoch, hostID, fsm.HAStateDisabled, "HA is disabled for host %s, so it is not fenced and its VMs are not restarted. "+
			"If it is down, confirm it with declareHostAsDegraded and its HA VMs restart elsewhere; or enable HA with enableHAForHost", h.Name)
		return
	case fsm.HAProviderNone:
		c.alert(ctx, term, epoch, hostID, fsm.HAStateIneligible, "host %s has HA provider none, which never fences it, so its VMs are not restarted. "+
			"Make sure it is off, then confirm with declareHostAsDegraded and its HA VMs restart elsewhere", h.Name)
		return
	case fsm.HAProviderLease:
		if !h.SelfFence {
			c.alert(ctx, term, epoch, hostID, fsm.HAStateIneligible, "the agent of host %s does not self-fence (no watchdog), so the lease provider cannot fence it "+
				"and its VMs are not restarted. Configure an ipmi or command provider (configureHAForHost), or make sure the host is off "+
				"and confirm with declareHostAsDegraded", h.Name)
			return
		}
		if peer, ok := c.awaitLeasePeer(ctx, h); !ok {
			c.alert(ctx, term, epoch, hostID, fsm.HAStateIneligible, "no other host of host %s's cluster has a lease either, so it may be cut off "+
				"together with them rather than down; its agent keeps its VMs while none of its peers has a lease, and restarting them "+
				"elsewhere could run them twice. Make sure the host is off, then confirm with declareHostAsDegraded", h.Name)
			return
		} else if peer != "" {
			c.logger.Debug("lease fence trusted: a peer holds a lease", "host_id", hostID, "peer", peer)
		}
		// The lease fence needs no action and no wait. The leader's deadline
		// is received + ttl + margin; the agent's is sent + ttl of the same
		// heartbeat (or of a later one the leader also saw, since the
		// leader re-arms on every heartbeat it gets). sent < received, so
		// the agent's deadline passed at least margin ago, measured by
		// clocks that run at nearly the same rate, and the agent, finding
		// it could not renew, killed its HA guests then (a hung or dead
		// agent's watchdog reset the host). docs/ha.md has the argument.
		c.tryFence(ctx, term, epoch, h, provider, 1)
		return
	}
	err = c.expiryCommit(ctx, term, hostID, epoch, func(_ *fsm.Store, h *fsm.Host) ([]fsm.TxnOp, error) {
		if !resumable(h) {
			return nil, errSkip
		}
		if h.HAState == fsm.HAStateFencing {
			return nil, errSkip
		}
		h.HAState = fsm.HAStateFencing
		return nil, nil
	})
	if err != nil {
		if !errors.Is(err, errSkip) {
			c.logger.Error("cannot mark host fencing", "host_id", hostID, "error", err)
			return
		}
		if h, _ := fsm.Get[fsm.Host](c.cl.State(), nil, fsm.TableHosts, hostID); h == nil || h.HAState != fsm.HAStateFencing || ctx.Err() != nil {
			return // it heartbeats again, or is gone
		}
	}
	c.tryFence(ctx, term, epoch, h, provider, c.cfg.FenceAttempts)
}

// awaitLeasePeer is leasePeerHeard, waiting for a peer that was not heard
// yet since the host's agent decided: a peer heartbeating every interval
// may be heard up to an interval after that (heartbeats are far apart in
// a big cloud). It gives up one interval and a second after need, or when
// ctx ends (the host heartbeats again).
func (c *Controller) awaitLeasePeer(ctx context.Context, h *fsm.Host) (string, bool) {
	peer, ok, need := c.leasePeerHeard(c.cl.State(), h)
	c.mu.Lock()
	until := need.Add(c.tuning.grant.Interval + time.Second)
	c.mu.Unlock()
	for !ok {
		left := until.Sub(c.clock.Now())
		if left <= 0 || !c.sleep(ctx, min(left, time.Second)) {
			return "", false
		}
		peer, ok, _ = c.leasePeerHeard(c.cl.State(), h)
	}
	return peer, ok
}

// tryFence runs the provider's fence up to attempts times with backoff and
// commits the outcome.
func (c *Controller) tryFence(ctx context.Context, term, epoch uint64, h *fsm.Host, provider string, attempts int) {
	f, err := c.fencers(provider)
	if err != nil {
		c.alert(ctx, term, epoch, h.ID, fsm.HAStateIneligible, "host %s cannot be fenced: provider %s is not available on this management server (%v), "+
			"so its VMs are not restarted. Fix the provider's configuration, or make sure the host is off and confirm with declareHostAsDegraded",
			h.Name, provider, err)
		return
	}
	target := targetOf(h)
	backoff := c.cfg.FenceBackoff
	n := 0
	for n < attempts {
		n++
		actx, cancel := context.WithTimeout(ctx, c.cfg.FenceTimeout)
		err = f.Fence(actx, target)
		cancel()
		if ctx.Err() != nil || !c.acting(term) {
			return // the host heartbeats again, or this node lost the lead
		}
		if err == nil {
			c.fenced(ctx, term, epoch, h.ID, provider, n)
			return
		}
		c.logger.Warn("fence attempt failed", "host_id", h.ID, "provider", provider, "attempt", n, "error", err)
		if errors.Is(err, fence.ErrManual) || errors.Is(err, fence.ErrNotConfigured) {
			break // trying again cannot help
		}
		if n < attempts && !c.sleep(ctx, backoff) {
			return
		}
		backoff *= 2
	}
	what := "make sure the host is off"
	if errors.Is(err, fence.ErrNotConfigured) {
		what = "configure it (configureOutOfBandManagement, or the servers' -fence-command), or make sure the host is off"
	} else if !errors.Is(err, fence.ErrManual) {
		what = "check the host's out-of-band management or fence command, make sure the host is off"
	}
	c.alert(ctx, term, epoch, h.ID, fsm.HAStateIneligible, "fencing host %s through provider %s failed (%d attempt(s)): %v. Its VMs are not restarted: %s, "+
		"then confirm with declareHostAsDegraded", h.Name, provider, n, err, what)
}

// expiryCommit is mutateHost for the commits of an expiry: it commits
// nothing (errSkip) once a heartbeat of the host came after the timer
// fired, so a host that answers late is never fenced for the lapse.
func (c *Controller) expiryCommit(ctx context.Context, term uint64, hostID string, epoch uint64, change func(st *fsm.Store, h *fsm.Host) ([]fsm.TxnOp, error)) error {
	err := errSkip
	c.quiet(term, hostID, epoch, func() { err = c.mutateHost(ctx, term, hostID, change) })
	return err
}

// sleep waits d on the controller's clock; false when ctx ended first.
func (c *Controller) sleep(ctx context.Context, d time.Duration) bool {
	done := make(chan struct{})
	t := c.clock.AfterFunc(d, func() { close(done) })
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-done:
		return true
	}
}

func targetOf(h *fsm.Host) fence.Target {
	t := fence.Target{HostID: h.ID, Name: h.Name, Address: h.IPAddress}
	if o := h.OutOfBand; o != nil && o.Enabled {
		t.IPMI = &fence.IPMIConfig{Address: o.Address, Port: o.Port, Username: o.Username, Password: o.Password}
	}
	return t
}

// fenced commits a host Down + Fenced; its HA VMs may then run elsewhere.
func (c *Controller) fenced(ctx context.Context, term, epoch uint64, hostID, provider string, attempts int) {
	err := c.expiryCommit(ctx, term, hostID, epoch, func(st *fsm.Store, h *fsm.Host) ([]fsm.TxnOp, error) {
		if !resumable(h) {
			return nil, errSkip // it came back meanwhile
		}
		h.State, h.HAState = fsm.HostStateDown, fsm.HAStateFenced
		how := fmt.Sprintf("its agent's lease ran out %ds before the leader's deadline, and its agent kills its HA guests then", st.SettingInt(fsm.SettingLeaseMargin))
		if provider != fsm.HAProviderLease {
			how = fmt.Sprintf("provider %s powered it off (attempt %d)", provider, attempts)
		}
		return []fsm.TxnOp{c.hostEvent(st, h, "HOST.FENCE", fsm.EventInfo, "host %s is fenced: %s; it is Down and its HA VMs restart elsewhere", h.Name, how)}, nil
	})
	if err != nil {
		if !errors.Is(err, errSkip) {
			c.logger.Error("cannot mark host fenced", "host_id", hostID, "error", err)
		}
		return
	}
	c.logger.Warn("host fenced", "host_id", hostID, "provider", provider)
	metrics.HostsFenced.Inc()
	c.wake()
}

// alert commits a host that cannot be fenced: State Alert, the given HA
// state, and an event saying why and what the operator can do.
func (c *Controller) alert(ctx context.Context, term, epoch uint64, hostID, haState, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	err := c.expiryCommit(ctx, term, hostID, epoch, func(st *fsm.Store, h *fsm.Host) ([]fsm.TxnOp, error) {
		if h.State != fsm.HostStateDisconnected {
			return nil, errSkip
		}
		h.State, h.HAState = fsm.HostStateAlert, haState
		return []fsm.TxnOp{c.hostEvent(st, h, "HOST.ALERT", fsm.EventError, "%s", msg)}, nil
	})
	if err != nil {
		if !errors.Is(err, errSkip) {
			c.logger.Error("cannot mark host alert", "host_id", hostID, "error", err)
		}
		return
	}
	c.logger.Warn("host cannot be fenced", "host_id", hostID, "reason", msg)
	metrics.HostsAlert.Inc()
}
