package api

import (
	"context"
	"strings"
	"testing"

	"github.com/stratus-cloud/stratus/scheduler"
)

const bmcPassword = "Bmc-Pa55word-xyz"

func configureOOBM(extra map[string]string) map[string]string {
	p := map[string]string{"command": "configureOutOfBandManagement", "driver": "ipmitool", "address": "10.9.0.5",
		"port": "623", "username": "admin", "password": bmcPassword}
	for k, v := range extra {
		p[k] = v
	}
	return p
}

func TestOutOfBandManagement(t *testing.T) {
	in := newInfra(t)
	s := in.s
	id := in.addHost(t, "10.1.0.60", nil)["id"].(string)
	if o := listedHost(t, s, id)["outofbandmanagement"].(map[string]any); o["enabled"] != false || o["powerstate"] != "Disabled" {
		t.Errorf("unconfigured host's outofbandmanagement %v", o)
	}
	for _, tc := range []struct{ param, value, text string }{
		{"driver", "redfish", `invalid value "redfish" for parameter driver: use ipmitool`},
		{"port", "ipmi", "parameter port"},
		{"port", "70000", "parameter port"},
		{"address", "not an address!", "parameter address"},
		{"username", " ", "username must not be blank"},
	} {
		wantError(t, call(t, s, configureOOBM(map[string]string{"hostid": id, tc.param: tc.value})),
			"configureoutofbandmanagementresponse", 431, tc.text)
	}
	wantError(t, call(t, s, map[string]string{"command": "enableOutOfBandManagementForHost", "hostid": id}),
		"enableoutofbandmanagementforhostresponse", 431, "configure it with configureOutOfBandManagement first")

	rec := call(t, s, configureOOBM(map[string]string{"hostid": id}))
	if strings.Contains(rec.Body.String(), bmcPassword) {
		t.Fatalf("configureOutOfBandManagement answers the password: %s", rec.Body.String())
	}
	o := decode(t, rec, "configureoutofbandmanagementresponse")["outofbandmanagement"].(map[string]any)
	if o["hostid"] != id || o["driver"] != "ipmitool" || o["address"] != "10.9.0.5" || o["port"] != "623" || o["username"] != "admin" ||
		o["enabled"] != false || o["status"] != true {
		t.Errorf("configure answer %v", o)
	}
	res := jobOK(t, s, map[string]string{"command": "enableOutOfBandManagementForHost", "hostid": id})["outofbandmanagement"].(map[string]any)
	if res["enabled"] != true || res["powerstate"] != "Unknown" {
		t.Errorf("enable result %v", res)
	}
	o = listedHost(t, s, id)["outofbandmanagement"].(map[string]any)
	if o["enabled"] != true || o["address"] != "10.9.0.5" || o["port"] != "623" || o["username"] != "admin" || o["powerstate"] != "Unknown" {
		t.Errorf("listHosts outofbandmanagement %v", o)
	}
	if _, ok := o["password"]; ok {
		t.Error("listHosts shows a password field")
	}
	other := in.addHost(t, "10.1.0.61", nil)["id"].(string)
	if got := listed(t, s, map[string]string{"command": "listHosts", "outofbandmanagementenabled": "true"}, "host", "id"); len(got) != 1 || got[0] != id {
		t.Errorf("hosts with out-of-band management on: %v", got)
	}
	if got := listed(t, s, map[string]string{"command": "listHosts", "outofbandmanagementenabled": "false"}, "host", "id"); len(got) != 1 || got[0] != other {
		t.Errorf("hosts with out-of-band management off: %v", got)
	}

	// Reconfiguring keeps it enabled.
	must(t, s, configureOOBM(map[string]string{"hostid": id, "port": "6230"}))
	if o := listedHost(t, s, id)["outofbandmanagement"].(map[string]any); o["enabled"] != true || o["port"] != "6230" {
		t.Errorf("after reconfiguring: %v", o)
	}

	// An ipmi-fenced host with HA on keeps its out-of-band management.
	jobOK(t, s, map[string]string{"command": "configureHAForHost", "hostid": id, "provider": "ipmi"})
	jobOK(t, s, map[string]string{"command": "enableHAForHost", "hostid": id})
	wantError(t, call(t, s, map[string]string{"command": "disableOutOfBandManagementForHost", "hostid": id}),
		"disableoutofbandmanagementforhostresponse", 431, "ipmi provider")
	jobOK(t, s, map[string]string{"command": "disableHAForHost", "hostid": id})
	res = jobOK(t, s, map[string]string{"command": "disableOutOfBandManagementForHost", "hostid": id})["outofbandmanagement"].(map[string]any)
	if res["enabled"] != false || res["powerstate"] != "Disabled" {
		t.Errorf("disable result %v", res)
	}
	wantError(t, call(t, s, map[string]string{"command": "issueOutOfBandManagementPowerAction", "hostid": id, "action": "STATUS"}),
		"issueoutofbandmanagementpoweractionresponse", 431, "disabled")
	wantEvents(t, s, id, "HOST.CREATE", "HOST.OOBM.CONFIGURE", "HOST.OOBM.ENABLE", "HOST.OOBM.CONFIGURE", "HA.RESOURCE.CONFIGURE",
		"HA.RESOURCE.ENABLE", "HA.RESOURCE.DISABLE", "HOST.OOBM.DISABLE")
	if body := call(t, s, map[string]string{"command": "listEvents", "listall": "true"}).Body.String(); strings.Contains(body, bmcPassword) {
		t.Fatal("an event shows the password")
	}
	if body := call(t, s, map[string]string{"command": "listAsyncJobs", "listall": "true"}).Body.String(); strings.Contains(body, bmcPassword) {
		t.Fatal("a job shows the password")
	}
}

// TestPowerActionRunsAsALeaderJob runs a power action through the real
// job runner. ipmitool is not there (or no BMC answers at 10.9.0.5), so
// the job fails; its error names the action and never the password.
func TestPowerActionRunsAsALeaderJob(t *testing.T) {
	in := newInfra(t)
	s := in.s
	r := scheduler.NewRunner(in.c, nil)
	scheduler.RegisterMaintenanceJobs(r)
	if err := r.Establish(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Revoke)
	id := in.addHost(t, "10.1.0.60", nil)["id"].(string)
	wantError(t, call(t, s, map[string]string{"command": "issueOutOfBandManagementPowerAction", "hostid": id, "action": "STATUS"}),
		"issueoutofbandmanagementpoweractionresponse", 431, "no out-of-band management")
	must(t, s, configureOOBM(map[string]string{"hostid": id, "address": "127.0.0.1", "port": "9"}))
	jobOK(t, s, map[string]string{"command": "enableOutOfBandManagementForHost", "hostid": id})
	wantError(t, call(t, s, map[string]string{"command": "issueOutOfBandManagementPowerAction", "hostid": id, "action": "EXPLODE"}),
		"issueoutofbandmanagementpoweractionresponse", 431, "use one of ON, OFF, CYCLE, RESET, SOFT, STATUS")
	wantError(t, call(t, s, map[string]string{"command": "issueOutOfBandManagementPowerAction", "hostid": id, "action": "STATUS", "timeout": "-1"}),
		"issueoutofbandmanagementpoweractionresponse", 431, "parameter timeout")
	job := runJob(t, s, map[string]string{"command": "issueOutOfBandManagementPowerAction", "hostid": id, "action": "status", "timeout": "2"})
	res, _ := job["jobresult"].(map[string]any)
	text, _ := res["errortext"].(string)
	if job["jobstatus"] != float64(2) || !strings.Contains(text, "power action STATUS on host 10.1.0.60 failed") {
		t.Fatalf("power action job %v", job)
	}
	if strings.Contains(text, bmcPassword) {
		t.Fatalf("the error shows the password: %s", text)
	}
}
