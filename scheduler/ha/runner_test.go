package ha

import (
	"context"
	"testing"
	"time"

	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/scheduler"
)

// fakeAgents reports every VM placed on one of hosts and meant to run as
// running there, as a host's agent would once it started it.
func fakeAgents(t *testing.T, m *memCluster, hosts ...string) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	on := map[string]bool{}
	for _, h := range hosts {
		on[h] = true
	}
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			st := m.State()
			changed, _ := st.Watch(fsm.TableVMs)
			vms, _ := fsm.List[fsm.VM](st, nil, fsm.TableVMs, "id")
			for _, v := range vms {
				if on[v.HostID] && v.Power == fsm.PowerOn && (v.ObservedHostID != v.HostID || v.ObservedPower != fsm.PowerOn) {
					nv := v.Copy()
					nv.ObservedHostID, nv.ObservedPower = v.HostID, fsm.PowerOn
					_, _ = m.Apply(ctx, fsm.TxnRequestType, fsm.TxnRequest{Ops: []fsm.TxnOp{fsm.Update(fsm.TableVMs, nv)}})
				}
			}
			select {
			case <-ctx.Done():
			case <-changed:
			case <-time.After(time.Second):
			}
		}
	}()
}

// TestRestartRunsThroughTheJobRunner: the job runner places the restarted
// HA VM on a healthy host; once it runs there it is no longer HAPending,
// and the fenced host holds nothing of it.
func TestRestartRunsThroughTheJobRunner(t *testing.T) {
	e := newEnv(t, upHosts("h-1", "h-2"))
	e.vm("ha-1", "h-1", true, 2048)
	r := scheduler.NewRunner(e.m, nil)
	scheduler.RegisterVMJobs(r)
	_ = r.Establish(context.Background())
	t.Cleanup(r.Revoke)
	fakeAgents(t, e.m, "h-2")
	e.establish()
	e.beat("h-1", "h-2")
	e.run(deadline+2*time.Second, "h-2")
	e.untilHost("h-1", fsm.HostStateDown, fsm.HAStateFenced)
	e.until("the HA VM running on h-2", func(*fsm.Store) bool {
		v := e.getVM("ha-1")
		return v.State == fsm.VMRunning && v.HostID == "h-2"
	})
	v := e.getVM("ha-1")
	if v.HAPending || v.LastHostID != "h-1" {
		t.Errorf("restarted VM: pending %v last host %q", v.HAPending, v.LastHostID)
	}
	if h1, h2 := e.host("h-1"), e.host("h-2"); h1.MemoryAllocated != 0 || h2.MemoryAllocated != 2048<<20 {
		t.Errorf("allocated memory: fenced host %d, new host %d", h1.MemoryAllocated, h2.MemoryAllocated)
	}
	if j := e.jobs("ha-1")[0]; j.Status != fsm.JobSucceeded {
		t.Errorf("restart job = %+v (%s)", j, j.Result)
	}
}
