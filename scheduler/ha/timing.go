package ha

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/stratus-cloud/stratus/fsm"
)

// How the leader chooses the heartbeat timing it grants (docs/ha.md,
// "Heartbeats at scale").
//
// The timing follows the number of hosts (fsm.LeaseTiming.Scaled), with
// hysteresis kept here, in the leader's memory: what the last answers
// said. Every answer carries the TTL its host's timer was armed with, and
// a timer's deadline only moves later, so the leader never counts a lease
// shorter than one it granted.
//
// A new leader knows nothing of its predecessor's answers, so the longest
// lease any leader may have granted is recorded in the replicated state
// (host.lease.granted) before it is granted: a leader grants a TTL above
// the record only after committing the higher record, and lowers the
// record only once every lease above the new value has run out (its
// grace has passed, and TTL + margin since it last granted more). A new
// leader's grace covers the record (graceOf).

// tuneEvery is how often the timing is computed again (at a heartbeat:
// no heartbeats, nothing to tune).
const tuneEvery = 2 * time.Second

// tuning is the controller's timing state, under Controller.mu.
type tuning struct {
	grant      fsm.LeaseTiming // what heartbeats are answered with
	tunedAt    time.Time
	lowerAfter time.Time // the record may come down to grant.TTL from then on
	recording  bool      // a commit of the record is under way
}

// tuneLocked computes the timing again when it is due. c.mu is held.
func (c *Controller) tuneLocked(now time.Time) {
	tn := &c.tuning
	if tn.recording || (!tn.tunedAt.IsZero() && now.Sub(tn.tunedAt) < tuneEvery) {
		return // while the record changes, grants wait for it
	}
	tn.tunedAt = now
	st := c.cl.State()
	base := st.BaseLeaseTiming()
	hosts, err := st.Count(fsm.TableHosts, "id")
	if err != nil {
		hosts = len(c.timers)
	}
	target := base.Scaled(hosts, st.HeartbeatRate(), tn.grant.Interval)
	recorded := st.LeaseGranted()
	limit := recorded
	if limit == 0 {
		// Nothing recorded yet (a cloud from before scaling, or a new
		// one): the settings' lease, as leaders granted it then.
		limit = base.TTL
	}
	g := base.Within(target.Interval, limit)
	if g != tn.grant {
		if tn.grant.TTL > g.TTL {
			tn.lowerAfter = later(tn.lowerAfter, now.Add(tn.grant.Deadline()))
		}
		if tn.grant != (fsm.LeaseTiming{}) {
			c.logger.Info("heartbeat timing changed", "hosts", hosts, "interval", g.Interval, "ttl", g.TTL,
				"was_interval", tn.grant.Interval, "was_ttl", tn.grant.TTL)
		}
		tn.grant = g
	}
	switch {
	case target.TTL > recorded:
		c.recordLocked(target.TTL)
	case recorded > g.TTL && !now.Before(tn.lowerAfter):
		c.recordLocked(g.TTL)
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// recordLocked commits host.lease.granted = ttl in the background; the
// timing is computed again at the next heartbeat after it committed.
// c.mu is held.
func (c *Controller) recordLocked(ttl time.Duration) {
	c.tuning.recording = true
	term, ctx := c.term, c.ctx
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		err := errSkip
		if c.acting(term) {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err = c.cl.Apply(cctx, fsm.ConfigSetRequestType, fsm.ConfigSetRequest{Setting: fsm.Setting{
				Name: fsm.SettingLeaseGranted, Value: strconv.Itoa(int(ttl / time.Second)), Updated: c.clock.Now().UTC()}})
			cancel()
		}
		c.mu.Lock()
		if c.term == term {
			c.tuning.recording = false
			c.tuning.tunedAt = time.Time{}
		}
		c.mu.Unlock()
		if err != nil {
			if !errors.Is(err, errSkip) {
				c.logger.Warn("cannot record the longest lease granted", "ttl", ttl, "error", err)
			}
			return
		}
		c.logger.Info("longest lease granted recorded", "ttl", ttl)
	}()
}
