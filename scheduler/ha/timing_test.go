package ha

import (
	"fmt"
	"testing"
	"time"

	"github.com/stratus-cloud/stratus/fsm"
)

// heartbeatAt sends one heartbeat of host received at received and
// returns the timing it was answered with.
func (e *env) heartbeatAt(host string, received time.Time) fsm.LeaseTiming {
	e.t.Helper()
	g, ok := e.c.Heartbeat(host, received, received)
	if !ok {
		e.t.Fatalf("heartbeat of %s refused on the leader", host)
	}
	if rec := e.m.State().LeaseGranted(); g.TTL > max(rec, 10*time.Second) {
		e.t.Fatalf("granted a lease of %s above the record %s", g.TTL, rec)
	}
	return g
}

// untilRecorded waits until the state holds ttl as the longest lease
// granted and the leader has taken note that its commit returned: grants
// wait for the record while it is being committed, and the state shows it
// a moment before the commit's caller hears back.
func (e *env) untilRecorded(ttl time.Duration) {
	e.t.Helper()
	e.until(fmt.Sprintf("the lease of %s recorded", ttl), func(st *fsm.Store) bool { return st.LeaseGranted() == ttl })
	// The flag is the controller's, not the state's: poll it briefly.
	deadline := time.Now().Add(5 * time.Second)
	for {
		e.c.mu.Lock()
		recording := e.c.tuning.recording
		e.c.mu.Unlock()
		if !recording {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("the leader still records the lease of %s", ttl)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestTimingScalesAfterTheRecord: with more hosts than the rate allows
// at the configured interval, the leader first records the longer lease
// in the replicated state and only then grants it.
func TestTimingScalesAfterTheRecord(t *testing.T) {
	e := newEnv(t, upHosts("h-1", "h-2", "h-3"))
	e.setting(fsm.SettingHeartbeatRate, "1") // 3 hosts at 1/s: every 3 s, a lease of 3 + 8 s
	e.establish()
	e.untilRecorded(11 * time.Second)
	g := e.heartbeatAt("h-1", e.clk.Now())
	if g.Interval != 3*time.Second || g.TTL != 11*time.Second || g.Margin != 4*time.Second {
		t.Fatalf("granted %+v, want 3 s / 11 s / 4 s", g)
	}
}

// TestShorterLeaseNeverShortensTheDeadline: when the timing comes down
// (hosts removed, or the rate raised), an answer with the shorter lease
// does not pull the host's deadline before that of the longer lease it
// got just before (that answer may be lost, and the agent hold the longer
// lease), and the record of granted leases comes down only once every
// longer lease has run out.
func TestShorterLeaseNeverShortensTheDeadline(t *testing.T) {
	e := newEnv(t, upHosts("h-1", "h-2", "h-3"))
	e.setting(fsm.SettingHeartbeatRate, "1")
	e.establish()
	e.untilRecorded(11 * time.Second)
	e.clk.Advance(tuneEvery)
	long := e.clk.Now()
	if g := e.heartbeatAt("h-1", long); g.TTL != 11*time.Second {
		t.Fatalf("granted %+v, want a lease of 11 s", g)
	}
	e.setting(fsm.SettingHeartbeatRate, "0") // scaling off: 2 s and 10 s again
	e.clk.Advance(tuneEvery)
	dropped := e.clk.Now()
	// A heartbeat received right after the long answer (the received
	// time stands for one that raced it) gets the short lease.
	if g := e.heartbeatAt("h-1", long); g.TTL != 10*time.Second || g.Interval != 2*time.Second {
		t.Fatalf("granted %+v after scaling was turned off, want 2 s / 10 s", g)
	}
	if !e.clk.WaitDue(long.Add(11*time.Second+4*time.Second), 5*time.Second) {
		t.Fatal("the host's deadline moved before that of the 11 s lease it was granted")
	}
	// The record stays at 11 s until every 11 s lease has run out (with
	// the margin) after the drop.
	e.run(11*time.Second+4*time.Second-time.Second, "h-1", "h-2", "h-3")
	if got := e.m.State().LeaseGranted(); got != 11*time.Second {
		t.Fatalf("record lowered to %s while an 11 s lease could still run", got)
	}
	e.run(2*time.Second, "h-1", "h-2", "h-3")
	e.until("the record lowered to 10 s", func(st *fsm.Store) bool { return st.LeaseGranted() == 10*time.Second })
	if now := e.clk.Now(); now.Before(dropped.Add(15 * time.Second)) {
		t.Fatalf("record lowered %s after the drop", now.Sub(dropped))
	}
}

// TestNewLeaderCoversTheRecordedLease: a new leader's grace covers the
// longest lease any leader recorded, and so does every host's deadline
// until that lease has run out, even when it now grants shorter ones.
func TestNewLeaderCoversTheRecordedLease(t *testing.T) {
	e := newEnv(t, upHosts("h-1"))
	e.setting(fsm.SettingLeaseGranted, "40")
	if g := graceOf(e.m.State(), 1); g != 44*time.Second {
		t.Fatalf("grace with a recorded lease of 40 s: %s, want 44 s", g)
	}
	e.establish()
	start := e.clk.Now()
	if g := e.heartbeatAt("h-1", start); g.TTL != 10*time.Second {
		t.Fatalf("granted %+v, want the settings' 10 s", g)
	}
	if !e.clk.WaitDue(start.Add(44*time.Second), 5*time.Second) {
		t.Fatal("a heartbeat pulled the deadline before the recorded lease's")
	}
}
