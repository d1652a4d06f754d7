package api

import (
	"context"
	"testing"

	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/scheduler"
)

func TestHostMaintenance(t *testing.T) {
	in := newInfra(t)
	s := in.s
	id := in.addHost(t, "10.1.0.60", nil)["id"].(string)
	wantError(t, call(t, s, map[string]string{"command": "cancelHostMaintenance", "id": id}),
		"cancelhostmaintenanceresponse", 431, "is Enabled, not in maintenance")

	// No runner yet: the host is PrepareForMaintenance as soon as the
	// command answers.
	jobID := must(t, s, map[string]string{"command": "prepareHostForMaintenance", "id": id})["jobid"].(string)
	if rs := listedHost(t, s, id)["resourcestate"]; rs != "PrepareForMaintenance" {
		t.Errorf("resource state %v, want PrepareForMaintenance", rs)
	}
	wantError(t, call(t, s, map[string]string{"command": "prepareHostForMaintenance", "id": id}),
		"preparehostformaintenanceresponse", 431, "already being prepared")

	r := scheduler.NewRunner(in.c, nil)
	scheduler.RegisterVMJobs(r)
	scheduler.RegisterMaintenanceJobs(r)
	if err := r.Establish(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Revoke)
	job := waitForJob(t, s, jobID)
	host, _ := job["jobresult"].(map[string]any)["host"].(map[string]any)
	if job["jobstatus"] != float64(1) || host["id"] != id || host["resourcestate"] != "Maintenance" {
		t.Fatalf("maintenance job %v", job)
	}
	if rs := listedHost(t, s, id)["resourcestate"]; rs != "Maintenance" {
		t.Errorf("resource state %v, want Maintenance", rs)
	}
	wantError(t, call(t, s, map[string]string{"command": "prepareHostForMaintenance", "id": id}),
		"preparehostformaintenanceresponse", 431, "already in maintenance")
	wantError(t, call(t, s, map[string]string{"command": "updateHost", "id": id, "allocationstate": "Enable"}),
		"updatehostresponse", 431, "cancel its maintenance")

	res := jobOK(t, s, map[string]string{"command": "cancelHostMaintenance", "id": id})["host"].(map[string]any)
	if res["id"] != id || res["resourcestate"] != "Enabled" {
		t.Errorf("cancelHostMaintenance result %v", res)
	}
	if rs := listedHost(t, s, id)["resourcestate"]; rs != "Enabled" {
		t.Errorf("resource state %v, want Enabled", rs)
	}
	wantEvents(t, s, id, "HOST.CREATE", "MAINT.PREPARE", "MAINT.PREPARE", "MAINT.CANCEL")
	wantError(t, call(t, s, map[string]string{"command": "prepareHostForMaintenance", "id": missingID}),
		"preparehostformaintenanceresponse", 431, notFoundText("id"))
}

func TestDeclareHostAsDegraded(t *testing.T) {
	in := newInfra(t)
	s := in.s
	id := in.addHost(t, "10.1.0.60", nil)["id"].(string)
	in.changeHost(t, id, func(h *fsm.Host) { h.State = fsm.HostStateUp })
	wantError(t, call(t, s, map[string]string{"command": "declareHostAsDegraded", "id": id}),
		"declarehostasdegradedresponse", 431, "only a Disconnected or Alert host can be declared degraded")
	wantError(t, call(t, s, map[string]string{"command": "cancelHostAsDegraded", "id": id}),
		"cancelhostasdegradedresponse", 431, "not Degraded")

	in.changeHost(t, id, func(h *fsm.Host) {
		h.State, h.HAEnabled, h.HAProvider, h.HAState = fsm.HostStateAlert, true, "none", fsm.HAStateIneligible
	})
	res := jobOK(t, s, map[string]string{"command": "declareHostAsDegraded", "id": id})["host"].(map[string]any)
	if res["state"] != "Down" || res["resourcestate"] != "Degraded" || res["hostha"].(map[string]any)["hastate"] != "Fenced" {
		t.Errorf("declareHostAsDegraded result %v", res)
	}
	h := listedHost(t, s, id)
	if h["state"] != "Down" || h["resourcestate"] != "Degraded" || h["hostha"].(map[string]any)["hastate"] != "Fenced" {
		t.Errorf("declared host %v", h)
	}
	wantError(t, call(t, s, map[string]string{"command": "declareHostAsDegraded", "id": id}),
		"declarehostasdegradedresponse", 431, "already declared degraded")
	wantError(t, call(t, s, map[string]string{"command": "prepareHostForMaintenance", "id": id}),
		"preparehostformaintenanceresponse", 431, "is Degraded")

	res = jobOK(t, s, map[string]string{"command": "cancelHostAsDegraded", "id": id})["host"].(map[string]any)
	if res["state"] != "Disconnected" || res["resourcestate"] != "Enabled" || res["hostha"].(map[string]any)["hastate"] != "Available" {
		t.Errorf("cancelHostAsDegraded result %v", res)
	}
	wantEvents(t, s, id, "HOST.CREATE", "HOST.DECLARE.DEGRADED", "HOST.CANCEL.DEGRADED")
}
