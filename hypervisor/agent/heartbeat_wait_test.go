package agent

import (
	"testing"
	"time"
)

// TestHeartbeatWaitRetriesSoonAfterAFailure: after a failed heartbeat the
// agent tries again after its backoff, not a whole (large cloud's)
// interval; without failures it waits the interval, spread by at most a
// tenth.
func TestHeartbeatWaitRetriesSoonAfterAFailure(t *testing.T) {
	backoff := func(attempt int) time.Duration { return Backoff(attempt, 500*time.Millisecond, 30*time.Second) }
	for range 100 {
		if w := heartbeatWait(10*time.Second, 0, backoff); w > 10*time.Second || w < 9*time.Second {
			t.Fatalf("no failure: waited %s, want 9 to 10 s", w)
		}
		if w := heartbeatWait(10*time.Second, 1, backoff); w > 500*time.Millisecond || w < 250*time.Millisecond {
			t.Fatalf("one failure: waited %s, want the first backoff (250 to 500 ms)", w)
		}
		if w := heartbeatWait(10*time.Second, 3, backoff); w > 2*time.Second || w < time.Second {
			t.Fatalf("three failures: waited %s, want 1 to 2 s", w)
		}
		if w := heartbeatWait(2*time.Second, 8, backoff); w > 2*time.Second {
			t.Fatalf("many failures: waited %s, longer than the 2 s interval", w)
		}
	}
}
