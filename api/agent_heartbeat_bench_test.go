package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/hypervisor"
	"github.com/stratus-cloud/stratus/hypervisor/agent"
	"github.com/stratus-cloud/stratus/scheduler/ha"
)

// leaderCluster is the fake cluster as the HA controller sees it: the
// leader.
type leaderCluster struct{ *fakeCluster }

func (leaderCluster) IsLeader() bool { return true }

// heartbeatFixture is a leader with the HA controller established over
// hosts hosts in a real store, and an API server answering heartbeats.
func heartbeatFixture(b *testing.B, hosts int) (*pollFixture, *Server, *ha.Controller) {
	b.Helper()
	f := newPollFixture(b, hosts)
	ctrl := ha.New(ha.Config{Cluster: leaderCluster{f.c}, Clock: ha.NewFakeClock(fixedNow)})
	if err := ctrl.Establish(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(ctrl.Revoke)
	s := New(Config{Cluster: f.c, Version: "test", Now: func() time.Time { return fixedNow }, Heartbeats: ctrl})
	return f, s, ctrl
}

// BenchmarkLeaderHeartbeat is one agent heartbeat on the leader, from the
// signed request to the signed answer (authentication, replay check, the
// HA controller's timer, the no-write check of the host's facts), with
// 10,000 hosts registered. The requests are built outside the timer.
func BenchmarkLeaderHeartbeat(b *testing.B) {
	const hosts = 10000
	f, s, _ := heartbeatFixture(b, hosts)
	body := func(h *fsm.Host) []byte {
		bs, _ := json.Marshal(agent.Heartbeat{HostID: h.ID, SentAt: fixedNow, Domains: []hypervisor.DomainStatus{}})
		return bs
	}
	bodies := make([][]byte, hosts)
	for i, h := range f.hosts {
		bodies[i] = body(h)
	}
	const batch = 1000
	reqs := make([]*http.Request, batch)
	recs := make([]*httptest.ResponseRecorder, batch)
	b.ReportAllocs()
	b.ResetTimer()
	var served time.Duration
	for done := 0; done < b.N; done += batch {
		b.StopTimer()
		n := min(batch, b.N-done)
		for j := range n {
			k := (done + j) % hosts
			reqs[j] = agentRequest(context.Background(), f.hosts[k], http.MethodPost, agent.PathHeartbeat, bodies[k], fmt.Sprintf("hb-%d", done+j))
			recs[j] = httptest.NewRecorder()
		}
		b.StartTimer()
		c0 := cpuTime()
		for j := range n {
			s.ServeHTTP(recs[j], reqs[j])
		}
		served += cpuTime() - c0
		b.StopTimer()
		for j := range n {
			if recs[j].Code != http.StatusOK {
				b.Fatalf("heartbeat: %d %s", recs[j].Code, recs[j].Body.String())
			}
		}
		b.StartTimer()
	}
	b.StopTimer()
	// The machine is shared: wall time per op includes other processes'
	// turns, so the CPU this process spent serving is the figure to read.
	b.ReportMetric(float64(served.Microseconds())/float64(b.N), "cpu-µs/op")
	var resp agent.HeartbeatResponse
	_ = json.Unmarshal(recs[0].Body.Bytes(), &resp)
	b.ReportMetric(resp.HeartbeatInterval.Duration().Seconds(), "s-interval")
	b.ReportMetric(resp.LeaseTTL.Duration().Seconds(), "s-ttl")
}

// cpuTime is the CPU time (user + system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkControllerHeartbeat is the HA controller's share of a
// heartbeat alone, with 10,000 hosts armed.
func BenchmarkControllerHeartbeat(b *testing.B) {
	const hosts = 10000
	f, _, ctrl := heartbeatFixture(b, hosts)
	b.ReportAllocs()
	i := 0
	c0 := cpuTime()
	for b.Loop() {
		if _, ok := ctrl.Heartbeat(f.hosts[i%hosts].ID, fixedNow, fixedNow); !ok {
			b.Fatal("heartbeat refused on the leader")
		}
		i++
	}
	b.ReportMetric(float64((cpuTime()-c0).Microseconds())/float64(i), "cpu-µs/op")
}
