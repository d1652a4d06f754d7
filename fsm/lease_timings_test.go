package fsm

import (
	"testing"
	"time"
)

var smallCloud = LeaseTiming{Interval: 2 * time.Second, TTL: 10 * time.Second, Margin: 4 * time.Second}

func TestScaledTimingsKeepSmallCloudsAsConfigured(t *testing.T) {
	for _, hosts := range []int{0, 1, 10, 1999, 2000} {
		if got := smallCloud.Scaled(hosts, 1000, 0); got != smallCloud {
			t.Errorf("%d hosts at 1000/s: %+v, want the settings' %+v", hosts, got, smallCloud)
		}
	}
	if got := smallCloud.Scaled(1_000_000, 0, 0); got != smallCloud {
		t.Errorf("rate 0 (scaling off): %+v", got)
	}
}

func TestScaledTimingsGrowWithHosts(t *testing.T) {
	s := time.Second
	for _, c := range []struct {
		hosts              int
		interval, ttl, ddl time.Duration
	}{
		{2001, 3 * s, 11 * s, 15 * s},   // just past two seconds' worth: whole seconds, rounded up
		{5000, 5 * s, 13 * s, 17 * s},   // slack stays 8 s while the interval is shorter
		{8000, 8 * s, 16 * s, 20 * s},   // slack equal to the interval
		{10000, 10 * s, 20 * s, 24 * s}, // the target: a lease of two intervals
		{100000, 100 * s, 200 * s, 204 * s},
	} {
		got := smallCloud.Scaled(c.hosts, 1000, 0)
		if got.Interval != c.interval || got.TTL != c.ttl || got.Margin != smallCloud.Margin || got.Deadline() != c.ddl {
			t.Errorf("%d hosts: %+v (deadline %s), want interval %s ttl %s deadline %s", c.hosts, got, got.Deadline(), c.interval, c.ttl, c.ddl)
		}
		if got.TTL-got.Interval < smallCloud.TTL-smallCloud.Interval || got.TTL < 2*got.Interval {
			t.Errorf("%d hosts: slack %s below the settings' or one interval", c.hosts, got.TTL-got.Interval)
		}
	}
}

// TestScaledIntervalHasHysteresis: the interval steps up at once, but
// steps down only once 10 % fewer hosts would still fit the shorter one.
func TestScaledIntervalHasHysteresis(t *testing.T) {
	cur := smallCloud.Scaled(10000, 1000, 0).Interval
	if cur != 10*time.Second {
		t.Fatalf("10,000 hosts: %s", cur)
	}
	for _, c := range []struct {
		hosts int
		want  time.Duration
	}{
		{10001, 11 * time.Second}, // up at once
		{9999, 11 * time.Second},  // one host fewer: stays
		{9100, 11 * time.Second},  // 9100 × 1.1 = 10010: still more than 10 s worth
		{9090, 10 * time.Second},  // 9090 × 1.1 = 9999: down one step
		{2500, 3 * time.Second},   // far fewer: down to where the count with hysteresis fits
		{100, 2 * time.Second},    // never below the setting
	} {
		cur = smallCloud.Scaled(c.hosts, 1000, cur).Interval
		if cur != c.want {
			t.Fatalf("%d hosts: interval %s, want %s", c.hosts, cur, c.want)
		}
	}
}

// TestWithinNeverExceedsTheRecord: while the record of granted leases is
// lower than the target's lease, the grant is the longest interval whose
// lease fits the record.
func TestWithinNeverExceedsTheRecord(t *testing.T) {
	s := time.Second
	target := smallCloud.Scaled(10000, 1000, 0)
	if got := smallCloud.Within(target.Interval, 20*s); got != target {
		t.Errorf("record 20 s: %+v, want the target %+v", got, target)
	}
	if got := smallCloud.Within(target.Interval, 16*s); got.Interval != 8*s || got.TTL != 16*s {
		t.Errorf("record 16 s: %+v, want 8 s / 16 s", got)
	}
	if got := smallCloud.Within(target.Interval, 10*s); got != smallCloud {
		t.Errorf("record 10 s: %+v, want the settings'", got)
	}
	// The settings' lease itself above the record (an operator raised
	// host.lease.ttl): cut to the record, a shorter lease being safe.
	raised := LeaseTiming{Interval: 2 * s, TTL: 30 * s, Margin: 4 * s}
	if got := raised.Within(2*s, 10*s); got.TTL != 10*s || got.Interval != 2*s {
		t.Errorf("settings above the record: %+v, want 2 s / 10 s", got)
	}
}

func TestLeaseGrantedRecord(t *testing.T) {
	f := seeded(t)
	if got := f.State().LeaseGranted(); got != 0 {
		t.Fatalf("nothing recorded: %s", got)
	}
	if err := apply(t, f, 10, ConfigSetRequestType, ConfigSetRequest{Setting: Setting{Name: SettingLeaseGranted, Value: "20"}}); err != nil {
		t.Fatal(err)
	}
	if got := f.State().LeaseGranted(); got != 20*time.Second {
		t.Fatalf("recorded 20: %s", got)
	}
	if got := f.State().LeaseTimingFor(10000); got.Interval != 10*time.Second || got.TTL != 20*time.Second {
		t.Fatalf("default rate, 10,000 hosts: %+v", got)
	}
}
