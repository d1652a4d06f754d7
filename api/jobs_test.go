package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/scheduler"
)

// withRunner starts the leader's job runner over the fake cluster, as the
// establish-leadership hook does on a real leader.
func withRunner(t testing.TB, c *fakeCluster) {
	t.Helper()
	r := scheduler.NewRunner(c, nil)
	scheduler.RegisterTagJobs(r)
	if err := r.Establish(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Revoke)
}

// signedAs sends params signed with another user's keys.
func signedAs(t *testing.T, s *Server, key, secret string, params map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	v := url.Values{}
	for k, val := range params {
		v.Set(k, val)
	}
	v.Set("apiKey", key)
	v.Set("response", "json")
	v.Set("signature", Sign(v, secret))
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/client/api?"+v.Encode(), nil))
	return rec
}

// waitForJob polls queryAsyncJobResult, as clients do, until the job ends.
func waitForJob(t *testing.T, s *Server, jobID string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec := call(t, s, map[string]string{"command": "queryAsyncJobResult", "jobid": jobID})
		if rec.Code != http.StatusOK {
			t.Fatalf("queryAsyncJobResult: %d %s", rec.Code, rec.Body.String())
		}
		body := decode(t, rec, "queryasyncjobresultresponse")
		status, ok := body["jobstatus"].(float64)
		if !ok {
			t.Fatalf("jobstatus missing or not a number: %s", rec.Body.String())
		}
		if status != 0 {
			return body
		}
		if _, has := body["jobresulttype"]; has {
			t.Fatalf("a pending job shows jobresulttype: %s", rec.Body.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still pending: %s", jobID, rec.Body.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTagsThroughAsyncJobs(t *testing.T) {
	s, c := newTestServer(t)
	withRunner(t, c)
	zone := createTestZone(t, s, "tagged")
	zid := zone["id"].(string)

	rec := call(t, s, map[string]string{"command": "createTags", "resourcetype": "zone", "resourceids": zid,
		"tags[0].key": "env", "tags[0].value": "prod", "tags[1].key": "team", "tags[1].value": "infra web"})
	if rec.Code != http.StatusOK {
		t.Fatalf("createTags: %d %s", rec.Code, rec.Body.String())
	}
	accepted := decode(t, rec, "createtagsresponse")
	jobID, _ := accepted["jobid"].(string)
	if !IsUUID(jobID) || len(accepted) != 1 {
		t.Fatalf("createTags answered %v, want only a jobid", accepted)
	}
	job := waitForJob(t, s, jobID)
	if job["jobstatus"].(float64) != 1 || job["jobresultcode"].(float64) != 0 || job["jobresulttype"] != "object" {
		t.Fatalf("job = %v", job)
	}
	if res, _ := job["jobresult"].(map[string]any); res["success"] != true {
		t.Fatalf("jobresult = %v, want {success:true}", job["jobresult"])
	}
	for _, f := range []string{"accountid", "userid", "cmd", "created", "completed", "jobid", "jobinstancetype", "jobinstanceid", "jobprocstatus"} {
		if _, ok := job[f]; !ok {
			t.Errorf("job lacks field %s: %v", f, job)
		}
	}

	list := decode(t, call(t, s, map[string]string{"command": "listTags", "resourceid": zid}), "listtagsresponse")
	if list["count"].(float64) != 2 {
		t.Fatalf("listTags = %v", list)
	}
	tag := list["tag"].([]any)[0].(map[string]any)
	for _, f := range []string{"key", "value", "resourcetype", "resourceid", "account", "domainid", "domain"} {
		if _, ok := tag[f]; !ok {
			t.Errorf("tag lacks field %s: %v", f, tag)
		}
	}
	if tag["resourcetype"] != "Zone" {
		t.Errorf("resourcetype = %v, want the canonical Zone", tag["resourcetype"])
	}

	// The same key again is refused up front, naming the key.
	wantError(t, call(t, s, map[string]string{"command": "createTags", "resourcetype": "Zone", "resourceids": zid,
		"tags[0].key": "ENV", "tags[0].value": "x"}), "createtagsresponse", 431, `key "ENV"`)

	// deleteTags of one key leaves the other.
	rec = call(t, s, map[string]string{"command": "deleteTags", "resourcetype": "Zone", "resourceids": zid, "tags[0].key": "env"})
	if job := waitForJob(t, s, decode(t, rec, "deletetagsresponse")["jobid"].(string)); job["jobstatus"].(float64) != 1 {
		t.Fatalf("deleteTags job = %v", job)
	}
	list = decode(t, call(t, s, map[string]string{"command": "listTags", "resourceid": zid}), "listtagsresponse")
	if list["count"].(float64) != 1 || list["tag"].([]any)[0].(map[string]any)["key"] != "team" {
		t.Fatalf("after deleteTags: %v", list)
	}
	// A tagged zone cannot be deleted while tags point at it? Tags do not
	// hold zones: CloudStack removes them with the resource. Here they stay
	// listed until deleted; see the closing note of the tags work.

	// Every change left an event, newest first.
	events := decode(t, call(t, s, map[string]string{"command": "listEvents", "resourceid": zid}), "listeventsresponse")
	if events["count"].(float64) < 2 {
		t.Fatalf("listEvents = %v", events)
	}
	first := events["event"].([]any)[0].(map[string]any)
	if first["type"] != "DELETE_TAGS" || first["username"] != "admin" || first["state"] != "Completed" {
		t.Fatalf("newest event = %v", first)
	}

	jobs := decode(t, call(t, s, map[string]string{"command": "listAsyncJobs"}), "listasyncjobsresponse")
	if jobs["count"].(float64) != 2 || len(jobs["asyncjobs"].([]any)) != 2 {
		t.Fatalf("listAsyncJobs = %v", jobs)
	}
}

func TestTagParameterErrors(t *testing.T) {
	s, c := newTestServer(t)
	withRunner(t, c)
	zid := createTestZone(t, s, "z")["id"].(string)
	for name, tc := range map[string]struct {
		params map[string]string
		text   string
	}{
		"bad type":     {map[string]string{"resourcetype": "Spaceship", "resourceids": zid, "tags[0].key": "a", "tags[0].value": "b"}, "parameter resourcetype"},
		"unknown id":   {map[string]string{"resourcetype": "Zone", "resourceids": "9b1f3f9c-1111-4111-8111-111111111111", "tags[0].key": "a", "tags[0].value": "b"}, "entity does not exist"},
		"no value":     {map[string]string{"resourcetype": "Zone", "resourceids": zid, "tags[0].key": "a"}, "has no value"},
		"no tags":      {map[string]string{"resourcetype": "Zone", "resourceids": zid}, "missing parameter tags"},
		"duplicate":    {map[string]string{"resourcetype": "Zone", "resourceids": zid, "tags[0].key": "a", "tags[0].value": "1", "tags[1].key": "A", "tags[1].value": "2"}, "given twice"},
		"key no value": {map[string]string{"resourcetype": "Zone", "resourceids": zid, "tags[0].value": "1"}, "needs a key"},
	} {
		p := map[string]string{"command": "createTags"}
		for k, v := range tc.params {
			p[k] = v
		}
		rec := call(t, s, p)
		if rec.Code != 431 || !strings.Contains(rec.Body.String(), tc.text) {
			t.Errorf("%s: %d %s, want 431 mentioning %q", name, rec.Code, rec.Body.String(), tc.text)
		}
	}
	wantError(t, call(t, s, map[string]string{"command": "queryAsyncJobResult", "jobid": "9b1f3f9c-1111-4111-8111-111111111111"}),
		"queryasyncjobresultresponse", 431, "entity does not exist")
}

// TestJobsAndTagsAreScopedToTheAccount: another account cannot see the
// admin's job, tag the admin's resources or read its events.
func TestJobsAndTagsAreScopedToTheAccount(t *testing.T) {
	s, c := newTestServer(t)
	withRunner(t, c)
	zid := createTestZone(t, s, "z")["id"].(string)
	rec := call(t, s, map[string]string{"command": "createTags", "resourcetype": "Zone", "resourceids": zid, "tags[0].key": "a", "tags[0].value": "b"})
	jobID := decode(t, rec, "createtagsresponse")["jobid"].(string)
	waitForJob(t, s, jobID)

	root := "22222222-2222-4222-8222-222222222222"
	acct := &fsm.Account{ID: "44444444-4444-4444-8444-444444444444", Name: "alice", DomainID: root, Type: fsm.AccountTypeUser, RoleType: "User", State: fsm.StateEnabled}
	user := &fsm.User{ID: "55555555-5555-4555-8555-555555555555", AccountID: acct.ID, DomainID: root, Username: "alice", State: fsm.StateEnabled, APIKey: "alice-key", SecretKey: "alice-secret"}
	if _, err := c.Apply(context.Background(), fsm.TxnRequestType, fsm.TxnRequest{Ops: []fsm.TxnOp{fsm.Create("accounts", acct), fsm.Create("users", user)}}); err != nil {
		t.Fatal(err)
	}
	rec = signedAs(t, s, "alice-key", "alice-secret", map[string]string{"command": "queryAsyncJobResult", "jobid": jobID})
	if rec.Code != 431 || !strings.Contains(rec.Body.String(), "entity does not exist") {
		t.Fatalf("alice reading the admin's job: %d %s", rec.Code, rec.Body.String())
	}
	rec = signedAs(t, s, "alice-key", "alice-secret", map[string]string{"command": "createTags", "resourcetype": "Zone", "resourceids": zid, "tags[0].key": "x", "tags[0].value": "y"})
	if rec.Code != 431 || !strings.Contains(rec.Body.String(), "entity does not exist") {
		t.Fatalf("alice tagging a zone: %d %s", rec.Code, rec.Body.String())
	}
	for cmd, key := range map[string]string{"listEvents": "listeventsresponse", "listTags": "listtagsresponse", "listAsyncJobs": "listasyncjobsresponse"} {
		rec = signedAs(t, s, "alice-key", "alice-secret", map[string]string{"command": cmd, "listall": "true"})
		var top map[string]map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &top)
		if rec.Code != 200 || len(top[key]) != 0 {
			t.Errorf("alice %s listall=true: %d %s, want an empty list", cmd, rec.Code, rec.Body.String())
		}
	}
}
