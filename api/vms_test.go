package api

import (
	"strings"
	"testing"

	"github.com/stratus-cloud/stratus/fsm"
)

// readyTemplate registers a public template as root and marks its copy in
// zone one downloaded (the leader's download controller is not running
// in these tests).
func (f *computeFixture) readyTemplate(t *testing.T, name string) string {
	t.Helper()
	tmpl := f.registerAs(t, f.root, name, "ispublic", "true")["id"].(string)
	copies, _ := fsm.List[fsm.TemplateZone](f.c.State(), nil, fsm.TableTemplateZones, "template", tmpl)
	for _, c := range copies {
		n := c.Copy()
		n.DownloadState, n.IsReady, n.Size = fsm.DownloadDownloaded, true, 2*testGiB
		f.commit(t, fsm.Update(fsm.TableTemplateZones, n))
	}
	return tmpl
}

func TestDeployVirtualMachineRefusesBadInput(t *testing.T) {
	f := newComputeFixture(t)
	notReady := f.registerAs(t, f.root, "not-ready", "ispublic", "true")["id"].(string)
	ready := f.readyTemplate(t, "ready")
	base := func(tmpl string, extra ...string) map[string]string {
		return catParams(map[string]string{"command": "deployVirtualMachine", "zoneid": f.zone1, "serviceofferingid": f.serviceOfferingID,
			"templateid": tmpl}, extra...)
	}
	cases := []struct {
		name   string
		caller ident
		params map[string]string
		code   int
		text   string
	}{
		{"template not downloaded", f.alice, base(notReady), 431, "is not ready in zone"},
		{"data disk of a size that overflows", f.alice, base(ready, "diskofferingid", f.custom, "size", "8589934592"), 431, "parameter size"},
		{"negative data disk", f.alice, base(ready, "diskofferingid", f.custom, "size", "-5"), 431, "parameter size"},
		{"root disk of a size that overflows", f.alice, base(ready, "rootdisksize", "17179869194"), 431, "parameter rootdisksize"},
		{"root disk smaller than the template", f.alice, base(ready, "rootdisksize", "1"), 431, "at least the template's 2 GiB"},
		{"host name with a space", f.alice, base(ready, "name", "web 1"), 431, "parameter name"},
		{"user data not base64", f.alice, base(ready, "userdata", "!!!"), 431, "userdata"},
		{"a user choosing the host", f.alice, base(ready, "hostid", f.host), 531, "hostid"},
		{"an address outside the guest network", f.alice, base(ready, "ipaddress", "192.0.2.7"), 431, "ipaddress"},
	}
	for _, c := range cases {
		rec := c.caller.do(t, f.s, c.params)
		if rec.Code != c.code || !strings.Contains(rec.Body.String(), c.text) {
			t.Errorf("%s: %d %s; want %d mentioning %q", c.name, rec.Code, rec.Body.String(), c.code, c.text)
		}
	}
	vms, _ := fsm.List[fsm.VM](f.c.State(), nil, fsm.TableVMs, "create")
	if len(vms) != 3 {
		t.Fatalf("%d VMs after refused deploys, want the fixture's 3", len(vms))
	}
}

func TestRecoverAndExpungeNeedAdminsOrTheSetting(t *testing.T) {
	f := newComputeFixture(t)
	v, _ := fsm.Get[fsm.VM](f.c.State(), nil, fsm.TableVMs, f.aliceStop)
	d := v.Copy()
	d.State, d.Destroyed = fsm.VMDestroyed, fixedNow
	f.commit(t, fsm.Update(fsm.TableVMs, d))
	for _, params := range []map[string]string{
		{"command": "recoverVirtualMachine", "id": f.aliceStop},
		{"command": "expungeVirtualMachine", "id": f.aliceStop},
		{"command": "destroyVirtualMachine", "id": f.aliceStop, "expunge": "true"},
	} {
		if rec := f.alice.do(t, f.s, params); rec.Code != 531 || !strings.Contains(rec.Body.String(), "allow.user.expunge.recover.vm") {
			t.Errorf("alice %v: %d %s; want 531 naming the setting", params, rec.Code, rec.Body.String())
		}
	}
	f.root.ok(t, f.s, map[string]string{"command": "updateConfiguration", "name": "allow.user.expunge.recover.vm", "value": "true"})
	body := f.alice.ok(t, f.s, map[string]string{"command": "recoverVirtualMachine", "id": f.aliceStop})
	if got := body["virtualmachine"].(map[string]any)["state"]; got != fsm.VMStopped {
		t.Fatalf("recovered VM state = %v, want Stopped", got)
	}
}

func TestDomainAdminListsDoNotShowRootAdminAccounts(t *testing.T) {
	f := newComputeFixture(t)
	// A root admin account placed inside dadmin's subtree.
	ops := f.newAccount(t, f.root, "eng-ops", f.engID, map[string]string{"accounttype": "1"})
	id := newID()
	v, _ := fsm.Get[fsm.VM](f.c.State(), nil, fsm.TableVMs, f.aliceStop)
	n := v.Copy()
	n.ID, n.Name, n.DisplayName, n.InstanceName, n.AccountID, n.UserID = id, "admins-vm", "admins-vm", "i-"+id, ops.accountID, ops.userID
	n.IPAddress, n.NICs = "", nil
	f.commit(t, fsm.Create(fsm.TableVMs, n))
	for _, params := range []map[string]string{
		{"command": "listVirtualMachines", "listall": "true"},
		{"command": "listVirtualMachines", "domainid": f.engID},
		{"command": "listVirtualMachines", "domainid": f.engID, "isrecursive": "true"},
	} {
		got := names(f.dadmin.ok(t, f.s, params), "virtualmachine", "name")
		if strings.Contains(strings.Join(got, ","), "admins-vm") {
			t.Errorf("dadmin %v lists the root admin account's VM: %v", params, got)
		}
		if !strings.Contains(strings.Join(got, ","), f.aliceStopName) {
			t.Errorf("dadmin %v does not list alice's VM: %v", params, got)
		}
	}
	if rec := f.dadmin.do(t, f.s, map[string]string{"command": "listVirtualMachines", "id": id}); rec.Code != 431 {
		t.Errorf("dadmin asking for the admin's VM by id: %d, want 431 (does not exist)", rec.Code)
	}
	if got := names(f.root.ok(t, f.s, map[string]string{"command": "listVirtualMachines", "listall": "true"}), "virtualmachine", "name"); !strings.Contains(strings.Join(got, ","), "admins-vm") {
		t.Errorf("root does not see the admin's VM: %v", got)
	}
}
