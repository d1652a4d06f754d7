package e2e

import (
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
)

// metricValue returns the sample value of the line that starts with
// prefix plus a space, or -1 when there is none.
func metricValue(body, prefix string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, prefix+" "); ok {
			if v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64); err == nil {
				return v
			}
		}
	}
	return -1
}

func (c *testCluster) metrics(t *testing.T, s *server) string {
	t.Helper()
	resp, err := c.probe.Get(s.baseURL() + "/v1/metrics")
	if err != nil {
		t.Fatalf("%s /v1/metrics: %v", s.id, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s /v1/metrics: HTTP %d: %s", s.id, resp.StatusCode, b)
	}
	return string(b)
}

// TestMetrics scrapes /v1/metrics of every server of a 3-server cluster:
// exactly one says leader, each reports an applied index that reaches the
// leader's after a write, and the write shows in the API counters.
func TestMetrics(t *testing.T) {
	bin := requireE2E(t)
	c := newCluster(t, bin, 3)
	c.startAll()

	cs := newSDK(c.servers[1].apiURL(), c.keys)
	p := cs.Zone.NewCreateZoneParams("8.8.8.8", "10.0.0.1", "metrics-zone", "Advanced")
	if _, err := cs.Zone.CreateZone(p); err != nil {
		t.Fatalf("createZone through %s: %v", c.servers[1].id, err)
	}

	leaders := 0
	var leaderApplied float64
	for _, s := range c.servers {
		body := c.metrics(t, s)
		l := metricValue(body, `stratus_raft_state{state="leader"}`)
		f := metricValue(body, `stratus_raft_state{state="follower"}`)
		if l < 0 || f < 0 {
			t.Fatalf("%s: no stratus_raft_state samples", s.id)
		}
		if l+f != 1 {
			t.Errorf("%s: leader %v + follower %v, want one role set", s.id, l, f)
		}
		if l == 1 {
			leaders++
			leaderApplied = metricValue(body, "stratus_fsm_applied_index")
		}
		for _, name := range []string{"stratus_fsm_applied_index", "stratus_raft_commit_index", "stratus_raft_term"} {
			if v := metricValue(body, name); v <= 0 {
				t.Errorf("%s: %s = %v, want > 0", s.id, name, v)
			}
		}
	}
	if leaders != 1 {
		t.Fatalf("%d servers report leader, want 1", leaders)
	}
	// Followers catch up with the leader's applied index.
	deadline := time.Now().Add(10 * time.Second)
	for _, s := range c.servers {
		for {
			v := metricValue(c.metrics(t, s), "stratus_fsm_applied_index")
			if v >= leaderApplied {
				t.Logf("%s: stratus_fsm_applied_index %v (leader had %v)", s.id, v, leaderApplied)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: applied index %v stays below the leader's %v", s.id, v, leaderApplied)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	body := c.metrics(t, c.servers[1])
	if v := metricValue(body, `stratus_api_request_duration_seconds_count{code="2xx",command="createZone"}`); v < 1 {
		t.Errorf("%s: createZone not counted in stratus_api_request_duration_seconds: %v", c.servers[1].id, v)
	}
	if !strings.Contains(body, "stratus_cluster_forwarded_requests_total") && c.leader() != c.servers[1] {
		t.Errorf("%s: a follower forwarded a write but stratus_cluster_forwarded_requests_total is missing", c.servers[1].id)
	}
}
