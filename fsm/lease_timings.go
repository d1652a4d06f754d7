package fsm

import (
	"strconv"
	"time"
)

// Heartbeat and lease timings, and how they scale with the number of
// hosts (docs/ha.md has the argument).
//
// A small cloud runs on the settings as they are: host.heartbeat.interval,
// host.lease.ttl and host.lease.margin. A cloud with more hosts than
// host.heartbeat.rate × host.heartbeat.interval would send the leader more
// than host.heartbeat.rate heartbeats a second, so its agents heartbeat
// less often: every hosts / rate seconds, rounded up to a whole second.
// The lease grows with the interval, keeping at least the configured slack
// past the interval (the time a heartbeat may take, retries included,
// before the lease runs out) and at least one whole interval of it.

// LeaseTiming is one set of heartbeat and lease figures: what an agent is
// told, and what the leader counts by for that agent.
type LeaseTiming struct {
	Interval time.Duration // between an agent's heartbeats
	TTL      time.Duration // the agent's lease, from when it sent the heartbeat
	Margin   time.Duration // the leader's wait past the lease, from when it received it
}

// Deadline is how long after it received a heartbeat the leader waits
// before it takes the host as lost.
func (t LeaseTiming) Deadline() time.Duration { return t.TTL + t.Margin }

// LeaseTimings returns the heartbeat interval, the lease TTL and the
// leader's margin of the settings, made consistent: at least a second
// between heartbeats, a lease longer than the interval (five intervals
// when the setting is not), and a margin of at least a second. These are
// the timings of a small cloud; BaseLeaseTiming().Scaled gives a big
// one's.
func (s *Store) LeaseTimings() (interval, ttl, margin time.Duration) {
	interval = time.Duration(max(1, s.SettingInt(SettingHeartbeatInterval))) * time.Second
	ttl = time.Duration(s.SettingInt(SettingLeaseTTL)) * time.Second
	if ttl <= interval {
		ttl = 5 * interval
	}
	margin = time.Duration(max(1, s.SettingInt(SettingLeaseMargin))) * time.Second
	return interval, ttl, margin
}

// BaseLeaseTiming is LeaseTimings as a LeaseTiming.
func (s *Store) BaseLeaseTiming() LeaseTiming {
	i, t, m := s.LeaseTimings()
	return LeaseTiming{Interval: i, TTL: t, Margin: m}
}

// HeartbeatRate is host.heartbeat.rate: the heartbeats per second the
// leader is meant to take at most; 0 or less turns scaling off.
func (s *Store) HeartbeatRate() int { return s.SettingInt(SettingHeartbeatRate) }

// LeaseGranted is host.lease.granted: the longest lease TTL any leader
// may have granted and not seen run out, as the leaders recorded it; 0
// when none was recorded yet.
func (s *Store) LeaseGranted() time.Duration {
	o, err := s.SettingOverride(nil, SettingLeaseGranted)
	if err != nil || o == nil {
		return 0
	}
	n, err := strconv.Atoi(o.Value)
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}

// LeaseTimingFor is the scaled timing for a cloud of hosts hosts, without
// hysteresis: what a server with no history tells a registering agent.
func (s *Store) LeaseTimingFor(hosts int) LeaseTiming {
	return s.BaseLeaseTiming().Scaled(hosts, s.HeartbeatRate(), 0)
}

// hysteresis: the interval steps down only once hosts × 11/10 fit a
// shorter one, so a cloud near a step does not flap between two intervals
// while hosts come and go.
const (
	hysteresisNum = 11
	hysteresisDen = 10
)

// Scaled returns the timing for hosts hosts at rate heartbeats a second,
// t being the configured (small-cloud) timing and current the interval
// in force (0: none yet). The interval is a whole number of seconds, at
// least t.Interval; it steps up as soon as hosts/rate passes it and down
// only with 10 % of hysteresis. Below rate × t.Interval hosts the result
// is t itself.
func (t LeaseTiming) Scaled(hosts, rate int, current time.Duration) LeaseTiming {
	if rate <= 0 || hosts <= 0 {
		return t
	}
	up := max(t.Interval, ceilSeconds(hosts, rate))
	interval := up
	if current > up {
		// Step down only as far as the count with hysteresis allows.
		interval = min(current, max(t.Interval, ceilSeconds(hosts*hysteresisNum, rate*hysteresisDen)))
	}
	return t.WithInterval(interval)
}

// WithInterval is the timing for heartbeats every interval: t itself at
// or below t.Interval, else a lease of interval plus the larger of t's
// slack (TTL − Interval) and one interval.
func (t LeaseTiming) WithInterval(interval time.Duration) LeaseTiming {
	if interval <= t.Interval {
		return t
	}
	return LeaseTiming{Interval: interval, TTL: interval + max(t.TTL-t.Interval, interval), Margin: t.Margin}
}

// Within returns the timing with the longest interval, at most upTo, whose
// TTL is at most ttlMax: what a leader grants while the record of granted
// leases (host.lease.granted) is not yet raised to upTo's TTL. When even
// t's TTL is above ttlMax, t with its TTL cut to ttlMax, if that still
// leaves it above the interval (a shorter lease is always safe), else t.
func (t LeaseTiming) Within(upTo, ttlMax time.Duration) LeaseTiming {
	for i := upTo.Truncate(time.Second); i > t.Interval; i -= time.Second {
		if c := t.WithInterval(i); c.TTL <= ttlMax {
			return c
		}
	}
	if t.TTL > ttlMax && ttlMax > t.Interval {
		t.TTL = ttlMax
	}
	return t
}

// ceilSeconds is ⌈a/b⌉ seconds.
func ceilSeconds(a, b int) time.Duration {
	return time.Duration((a+b-1)/b) * time.Second
}
