package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stratus-cloud/stratus/fsm"
)

// runJob calls an async command and returns the finished job's body.
func runJob(t *testing.T, s *Server, params map[string]string) map[string]any {
	t.Helper()
	id, _ := must(t, s, params)["jobid"].(string)
	if id == "" {
		t.Fatalf("%s answered no jobid", params["command"])
	}
	return waitForJob(t, s, id)
}

// jobOK runs an async command that must succeed and returns its result.
func jobOK(t *testing.T, s *Server, params map[string]string) map[string]any {
	t.Helper()
	job := runJob(t, s, params)
	if job["jobstatus"] != float64(1) {
		t.Fatalf("%s job failed: %v", params["command"], job)
	}
	res, _ := job["jobresult"].(map[string]any)
	return res
}

// changeHost changes a stored host row, as an agent or the HA controller
// would.
func (in *infra) changeHost(t *testing.T, id string, change func(*fsm.Host)) {
	t.Helper()
	h, err := fsm.Get[fsm.Host](in.c.State(), nil, fsm.TableHosts, id)
	if err != nil || h == nil {
		t.Fatalf("host %s: %v", id, err)
	}
	nh := h.Copy()
	change(nh)
	in.commitRow(t, fsm.Update(fsm.TableHosts, nh))
}

func listedHost(t *testing.T, s *Server, id string) map[string]any {
	t.Helper()
	return item(t, must(t, s, map[string]string{"command": "listHosts", "id": id}), "host")
}

func TestHostHAConfigureEnableDisable(t *testing.T) {
	in := newInfra(t)
	s := in.s
	id := in.addHost(t, "10.1.0.60", nil)["id"].(string)

	wantError(t, call(t, s, map[string]string{"command": "configureHAForHost", "hostid": id, "provider": "stonith"}),
		"configurehaforhostresponse", 431, `invalid value "stonith" for parameter provider: use one of lease, ipmi, command, none`)
	wantError(t, call(t, s, map[string]string{"command": "enableHAForHost", "hostid": id}),
		"enablehaforhostresponse", 431, "has no HA provider")
	wantError(t, call(t, s, map[string]string{"command": "enableHAForHost", "hostid": missingID}),
		"enablehaforhostresponse", 431, notFoundText("hostid"))
	if body := must(t, s, map[string]string{"command": "listHostHAResources"}); len(body) != 0 {
		t.Errorf("no host has HA configured, yet listHostHAResources says %v", body)
	}

	res := jobOK(t, s, map[string]string{"command": "configureHAForHost", "hostid": id, "provider": "NONE"})["hostha"].(map[string]any)
	if res["hostid"] != id || res["haprovider"] != "none" || res["haenable"] != false || res["hastate"] != "Disabled" || res["status"] != true {
		t.Errorf("configureHAForHost result %v", res)
	}
	res = jobOK(t, s, map[string]string{"command": "enableHAForHost", "hostid": id})["hostha"].(map[string]any)
	if res["haenable"] != true || res["hastate"] != "Available" {
		t.Errorf("enableHAForHost result %v", res)
	}
	ha := listedHost(t, s, id)["hostha"].(map[string]any)
	if ha["haenable"] != true || ha["haprovider"] != "none" || ha["hastate"] != "Available" {
		t.Errorf("listHosts hostha %v", ha)
	}
	r := item(t, must(t, s, map[string]string{"command": "listHostHAResources", "hostid": id}), "hostha")
	if r["hostid"] != id || r["haprovider"] != "none" || r["haenable"] != true {
		t.Errorf("listHostHAResources item %v", r)
	}

	// With HA on, the new provider must qualify.
	wantError(t, call(t, s, map[string]string{"command": "configureHAForHost", "hostid": id, "provider": "lease"}),
		"configurehaforhostresponse", 431, "has not said it self-fences")
	wantError(t, call(t, s, map[string]string{"command": "configureHAForHost", "hostid": id, "provider": "kvmhaprovider"}),
		"configurehaforhostresponse", 431, "no out-of-band management for the ipmi provider")
	in.changeHost(t, id, func(h *fsm.Host) { h.SelfFence = true })
	res = jobOK(t, s, map[string]string{"command": "configureHAForHost", "hostid": id, "provider": "lease"})["hostha"].(map[string]any)
	if res["haprovider"] != "lease" || res["haenable"] != true {
		t.Errorf("configure lease result %v", res)
	}

	res = jobOK(t, s, map[string]string{"command": "disableHAForHost", "hostid": id})["hostha"].(map[string]any)
	if res["haenable"] != false || res["hastate"] != "Disabled" {
		t.Errorf("disableHAForHost result %v", res)
	}
	// kvmhaprovider is ipmi; with HA off it can be set before out-of-band
	// management is.
	res = jobOK(t, s, map[string]string{"command": "configureHAForHost", "hostid": id, "provider": "kvmhaprovider"})["hostha"].(map[string]any)
	if res["haprovider"] != "ipmi" {
		t.Errorf("kvmhaprovider stored as %v, want ipmi", res["haprovider"])
	}
	wantError(t, call(t, s, map[string]string{"command": "enableHAForHost", "hostid": id}), "enablehaforhostresponse", 431, "no out-of-band management")

	// A Fenced host stays Fenced when HA goes off.
	in.changeHost(t, id, func(h *fsm.Host) { h.HAProvider, h.HAEnabled, h.HAState = "none", true, fsm.HAStateFenced })
	if res := jobOK(t, s, map[string]string{"command": "disableHAForHost", "hostid": id})["hostha"].(map[string]any); res["hastate"] != "Fenced" {
		t.Errorf("disabling HA of a fenced host made it %v", res["hastate"])
	}
	wantEvents(t, s, id, "HOST.CREATE", "HA.RESOURCE.CONFIGURE", "HA.RESOURCE.ENABLE", "HA.RESOURCE.CONFIGURE",
		"HA.RESOURCE.DISABLE", "HA.RESOURCE.CONFIGURE", "HA.RESOURCE.DISABLE")
}

func TestHostHAForClusterAndZone(t *testing.T) {
	in := newInfra(t)
	s := in.s
	a := in.addHost(t, "10.1.0.61", nil)["id"].(string)
	b := in.addHost(t, "10.1.0.62", nil)["id"].(string)
	jobOK(t, s, map[string]string{"command": "configureHAForHost", "hostid": a, "provider": "command"})
	res := jobOK(t, s, map[string]string{"command": "enableHAForCluster", "clusterid": in.cluster})
	text, _ := res["displaytext"].(string)
	if res["success"] != true || !strings.Contains(text, "enabled host HA on 1 hosts") || !strings.Contains(text, "10.1.0.62 has no HA provider") {
		t.Errorf("enableHAForCluster result %v", res)
	}
	if listedHost(t, s, a)["hostha"].(map[string]any)["haenable"] != true || listedHost(t, s, b)["hostha"].(map[string]any)["haenable"] != false {
		t.Error("enableHAForCluster did not enable exactly the configured host")
	}
	if items := must(t, s, map[string]string{"command": "listHostHAResources"})["hostha"].([]any); len(items) != 1 {
		t.Errorf("listHostHAResources lists %d hosts, want the configured one", len(items))
	}
	jobOK(t, s, map[string]string{"command": "disableHAForZone", "zoneid": in.zone})
	if listedHost(t, s, a)["hostha"].(map[string]any)["haenable"] != false {
		t.Error("disableHAForZone left HA on")
	}
	jobOK(t, s, map[string]string{"command": "enableHAForZone", "zoneid": in.zone})
	jobOK(t, s, map[string]string{"command": "disableHAForCluster", "clusterid": in.cluster})
	wantEvents(t, s, a, "HOST.CREATE", "HA.RESOURCE.CONFIGURE", "HA.RESOURCE.ENABLE", "HA.RESOURCE.DISABLE", "HA.RESOURCE.ENABLE", "HA.RESOURCE.DISABLE")
	wantError(t, call(t, s, map[string]string{"command": "enableHAForCluster", "clusterid": missingID}),
		"enablehaforclusterresponse", 431, notFoundText("clusterid"))
}

func TestListHostHAProviders(t *testing.T) {
	s, _ := newTestServer(t)
	got := listed(t, s, map[string]string{"command": "listHostHAProviders", "hypervisor": "KVM"}, "haprovider", "haprovider")
	if strings.Join(got, ",") != "lease,ipmi,command,none" {
		t.Errorf("providers %v", got)
	}
	wantError(t, call(t, s, map[string]string{"command": "listHostHAProviders", "hypervisor": "VMware"}),
		"listhosthaprovidersresponse", 431, "KVM hosts only")
}

var hostHACommands = []string{"configureHAForHost", "enableHAForHost", "disableHAForHost", "enableHAForCluster", "disableHAForCluster",
	"enableHAForZone", "disableHAForZone", "listHostHAResources", "listHostHAProviders", "configureOutOfBandManagement",
	"enableOutOfBandManagementForHost", "disableOutOfBandManagementForHost", "issueOutOfBandManagementPowerAction",
	"prepareHostForMaintenance", "cancelHostMaintenance", "declareHostAsDegraded", "cancelHostAsDegraded"}

func TestHostHACommandsAreRootAdminOnly(t *testing.T) {
	f := newIdentityFixture(t)
	for _, cmd := range hostHACommands {
		for _, who := range []ident{f.dadmin, f.alice} {
			rec := who.do(t, f.s, map[string]string{"command": cmd})
			if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), notAvailable) {
				t.Errorf("%s by %s: %d %s", cmd, who.name, rec.Code, rec.Body.String())
			}
		}
	}
}
