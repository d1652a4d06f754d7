package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// asyncJob is the part of queryAsyncJobResult the test checks.
type asyncJob struct {
	JobID         string          `json:"jobid"`
	JobStatus     *int            `json:"jobstatus"`
	JobResultCode int             `json:"jobresultcode"`
	JobResult     json.RawMessage `json:"jobresult"`
	Completed     string          `json:"completed"`
}

// apiCall sends a signed GET to one server and decodes the inner object.
func apiCall(client *http.Client, s *server, k adminKeys, command string, params url.Values, out any) error {
	if params == nil {
		params = url.Values{}
	}
	params.Set("response", "json")
	resp, err := client.Get(s.apiURL() + "?" + signedQuery(command, params, k, signV3))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var top map[string]json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&top); err != nil {
		return fmt.Errorf("%s on %s: HTTP %d, body not JSON: %w", command, s.id, resp.StatusCode, err)
	}
	for _, inner := range top {
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s on %s: HTTP %d: %s", command, s.id, resp.StatusCode, inner)
		}
		return json.Unmarshal(inner, out)
	}
	return fmt.Errorf("%s on %s: empty response", command, s.id)
}

// TestJobSurvivesLeaderKill starts an async job through a follower, kills
// the leader with SIGKILL the moment the job id comes back, and checks that
// the job finishes under the next leader with the same result on every
// server, the killed one included once it is back.
func TestJobSurvivesLeaderKill(t *testing.T) {
	bin := requireE2E(t)
	c := newCluster(t, bin, 3)
	c.startAll()
	client := &http.Client{Timeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	leader, _, err := c.findLeader(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var via *server
	for _, s := range c.servers {
		if s != leader {
			via = s
			break
		}
	}
	var zone struct {
		Zone struct {
			ID string `json:"id"`
		} `json:"zone"`
	}
	if err := apiCall(client, via, c.keys, "createZone", url.Values{"name": {"jobs-zone"}, "networktype": {"Advanced"},
		"dns1": {"8.8.8.8"}, "internaldns1": {"10.0.0.1"}}, &zone); err != nil {
		t.Fatal(err)
	}
	var accepted struct {
		JobID string `json:"jobid"`
	}
	if err := apiCall(client, via, c.keys, "createTags", url.Values{"resourcetype": {"Zone"}, "resourceids": {zone.Zone.ID},
		"tags[0].key": {"owner"}, "tags[0].value": {"e2e"}}, &accepted); err != nil {
		t.Fatal(err)
	}
	leader.kill9()
	var before asyncJob
	if err := apiCall(client, via, c.keys, "queryAsyncJobResult", url.Values{"jobid": {accepted.JobID}, "consistency": {"stale"}}, &before); err == nil && before.JobStatus != nil {
		t.Logf("e2e: job %s had status %d on %s right after killing leader %s", accepted.JobID, *before.JobStatus, via.id, leader.id)
	}

	waitDone := func(s *server) asyncJob {
		t.Helper()
		for {
			var j asyncJob
			err := apiCall(client, s, c.keys, "queryAsyncJobResult", url.Values{"jobid": {accepted.JobID}}, &j)
			if err == nil && j.JobStatus == nil {
				t.Fatalf("%s: queryAsyncJobResult without jobstatus", s.id)
			}
			if err == nil && *j.JobStatus != 0 {
				return j
			}
			select {
			case <-ctx.Done():
				t.Fatalf("job %s not finished on %s: last error %v", accepted.JobID, s.id, err)
			case <-time.After(pollEvery):
			}
		}
	}
	var results []asyncJob
	for _, s := range c.servers {
		if s != leader {
			results = append(results, waitDone(s))
		}
	}
	if err := leader.start(c.bin); err != nil {
		t.Fatal(err)
	}
	if err := c.waitReady(ctx, leader); err != nil {
		t.Fatal(err)
	}
	results = append(results, waitDone(leader))
	for i, j := range results {
		if *j.JobStatus != 1 || j.JobResultCode != 0 || string(j.JobResult) != `{"success":true}` || j.Completed == "" {
			t.Fatalf("job on server %d: status %d code %d result %s", i, *j.JobStatus, j.JobResultCode, j.JobResult)
		}
		if j.Completed != results[0].Completed {
			t.Fatalf("servers disagree on the job's completion: %s vs %s", j.Completed, results[0].Completed)
		}
	}
	for _, s := range c.servers {
		var tags struct {
			Count int `json:"count"`
		}
		if err := apiCall(client, s, c.keys, "listTags", url.Values{"resourceid": {zone.Zone.ID}}, &tags); err != nil {
			t.Fatal(err)
		}
		if tags.Count != 1 {
			t.Fatalf("%s lists %d tags on the zone, want exactly 1", s.id, tags.Count)
		}
	}
	t.Logf("e2e: job %s started on %s, leader %s killed, finished with the same result on all 3 servers", accepted.JobID, via.id, leader.id)
	c.checkNoCrash()
}
