package ha

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/stratus-cloud/stratus/cluster/metrics"
	"github.com/stratus-cloud/stratus/fsm"
)

// waitCounter waits until c has grown by at least want since before: the
// controller counts right after its commit returns.
func waitCounter(t *testing.T, name string, c prometheus.Counter, before, want float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(c)-before < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s grew by %v, want %v", name, testutil.ToFloat64(c)-before, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFenceAndRestartAreCounted: a fenced host and its HA VM's restart
// move the HA counters served on /v1/metrics.
func TestFenceAndRestartAreCounted(t *testing.T) {
	fenced, restarts := testutil.ToFloat64(metrics.HostsFenced), testutil.ToFloat64(metrics.HARestarts)
	e := newEnv(t, upHosts("h-1", "h-2"))
	e.vm("ha-1", "h-1", true, 1024)
	e.establish()
	e.beat("h-1", "h-2")
	e.run(deadline, "h-2")
	e.untilHost("h-1", fsm.HostStateDown, fsm.HAStateFenced)
	waitCounter(t, "stratus_ha_hosts_fenced_total", metrics.HostsFenced, fenced, 1)
	e.until("the HA VM's start job", func(*fsm.Store) bool { return len(e.jobs("ha-1")) == 1 })
	waitCounter(t, "stratus_ha_vm_restarts_total", metrics.HARestarts, restarts, 1)
}
