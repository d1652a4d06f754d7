package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stratus-cloud/stratus/fsm"
)

func scrape(t *testing.T, s *Server) string {
	t.Helper()
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, PathMetrics, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s: status %d: %s", PathMetrics, rec.Code, rec.Body.String())
	}
	return rec.Body.String()
}

// sampleValue returns the value of the sample whose name and labels start
// with prefix (e.g. `stratus_raft_state{state="leader"}`), or -1.
func sampleValue(body, prefix string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, prefix+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, prefix)), 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

func TestMetricsEndpoint(t *testing.T) {
	s, _ := newTestServer(t)
	createTestZone(t, s, "metrics-zone")
	body := scrape(t, s)
	for _, name := range []string{
		"stratus_raft_state", "stratus_raft_term", "stratus_raft_commit_index", "stratus_fsm_applied_index",
		"stratus_raft_commit_duration_seconds", "stratus_fsm_apply_duration_seconds",
		"stratus_api_request_duration_seconds", "stratus_ha_hosts_fenced_total", "stratus_ha_vm_restarts_total",
		"go_goroutines",
	} {
		if !regexp.MustCompile(`(?m)^# TYPE ` + name + ` `).MatchString(body) {
			t.Errorf("metric %s missing from /v1/metrics", name)
		}
	}
	if v := sampleValue(body, `stratus_raft_state{state="leader"}`); v != 1 {
		t.Errorf("raft state leader = %v, want 1", v)
	}
	if v := sampleValue(body, `stratus_raft_state{state="follower"}`); v != 0 {
		t.Errorf("raft state follower = %v, want 0", v)
	}

	const listZones = `stratus_api_request_duration_seconds_count{code="2xx",command="listZones"}`
	before := sampleValue(scrape(t, s), listZones)
	if before < 0 {
		before = 0
	}
	if rec := call(t, s, map[string]string{"command": "listZones"}); rec.Code != http.StatusOK {
		t.Fatalf("listZones: %d %s", rec.Code, rec.Body.String())
	}
	if after := sampleValue(scrape(t, s), listZones); after != before+1 {
		t.Errorf("listZones requests counted %v after one more call, want %v", after, before+1)
	}

	// Names that are not commands share one label value.
	call(t, s, map[string]string{"command": "noSuchCommandXYZ"})
	body = scrape(t, s)
	if strings.Contains(body, "noSuchCommandXYZ") {
		t.Error("an unknown command name became a label value")
	}
	if v := sampleValue(body, `stratus_api_request_duration_seconds_count{code="4xx",command="unknown"}`); v < 1 {
		t.Errorf("unknown command not counted as unknown: %v", v)
	}
}

// TestMetricsCountJobsByState: the jobs gauge is read from the state at
// scrape time, by command and state.
func TestMetricsCountJobsByState(t *testing.T) {
	s, c := newTestServer(t)
	const acct, dom, user = "33333333-3333-4333-8333-333333333333", "22222222-2222-4222-8222-222222222222", "11111111-1111-4111-8111-111111111111"
	var ops []fsm.TxnOp
	for i, st := range []int{fsm.JobPending, fsm.JobFailed, fsm.JobFailed, fsm.JobSucceeded} {
		ops = append(ops, fsm.Create(fsm.TableJobs, &fsm.AsyncJob{ID: "aaaaaaaa-0000-4000-8000-00000000000" + string(rune('1'+i)), Cmd: "createTags",
			AccountID: acct, DomainID: dom, UserID: user, Status: st, Created: fixedNow}))
	}
	if _, err := c.Apply(context.Background(), fsm.TxnRequestType, fsm.TxnRequest{Ops: ops}); err != nil {
		t.Fatal(err)
	}
	body := scrape(t, s)
	for state, want := range map[string]float64{"pending": 1, "failed": 2, "succeeded": 1} {
		if v := sampleValue(body, `stratus_jobs{cmd="createTags",state="`+state+`"}`); v != want {
			t.Errorf("stratus_jobs createTags %s = %v, want %v", state, v, want)
		}
	}
}
