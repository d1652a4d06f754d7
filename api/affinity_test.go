package api

import (
	"testing"

	"github.com/stratus-cloud/stratus/fsm"
)

func (f *computeFixture) newGroup(t *testing.T, id ident, name, typ string, extra ...string) string {
	t.Helper()
	accepted := id.ok(t, f.s, catParams(map[string]string{"command": "createAffinityGroup", "name": name, "type": typ}, extra...))
	j := waitForJob(t, f.s, accepted["jobid"].(string))
	if j["jobstatus"].(float64) != 1 {
		t.Fatalf("createAffinityGroup %s: %v", name, j["jobresult"])
	}
	if got := j["jobresult"].(map[string]any)["affinitygroup"].(map[string]any)["id"]; got != accepted["id"] {
		t.Fatalf("job result names %v, want %v", got, accepted["id"])
	}
	return accepted["id"].(string)
}

func TestAffinityGroupLifecycle(t *testing.T) {
	f := newComputeFixture(t)
	s, alice := f.s, f.alice
	types := alice.ok(t, s, map[string]string{"command": "listAffinityGroupTypes"})
	if types["count"] != float64(2) || len(types["affinityGroupType"].([]any)) != 2 {
		t.Fatalf("listAffinityGroupTypes = %v", types)
	}
	id := f.newGroup(t, alice, "spread", "Host Anti-Affinity", "description", "web tier")
	g := item(t, alice.ok(t, s, map[string]string{"command": "listAffinityGroups", "id": id}), "affinitygroup")
	if g["name"] != "spread" || g["type"] != fsm.AntiAffinityHost || g["description"] != "web tier" || g["account"] != "alice" ||
		g["domainid"] != f.engID || len(g["virtualmachineIds"].([]any)) != 0 {
		t.Fatalf("group = %v", g)
	}
	allowed := responseFieldsOf(t, "listAffinityGroups")
	for k := range g {
		if !allowed[k] {
			t.Errorf("affinity group field %s is not one of CloudStack's", k)
		}
	}
	catFail(t, alice, s, map[string]string{"command": "createAffinityGroup", "name": "SPREAD", "type": "host affinity"}, 431, "already exists")
	catFail(t, alice, s, map[string]string{"command": "createAffinityGroup", "name": "x", "type": "rack affinity"}, 431, "parameter type")
	catFail(t, alice, s, map[string]string{"command": "createAffinityGroup", "type": "host affinity"}, 431, "missing parameter name")

	// A VM in the group keeps it.
	vm, _ := fsm.Get[fsm.VM](f.c.State(), nil, fsm.TableVMs, f.aliceStop)
	c := vm.Copy()
	c.AffinityGroupIDs = []string{id}
	f.commit(t, fsm.Update(fsm.TableVMs, c))
	g = item(t, alice.ok(t, s, map[string]string{"command": "listAffinityGroups", "virtualmachineid": f.aliceStop}), "affinitygroup")
	if ids := g["virtualmachineIds"].([]any); len(ids) != 1 || ids[0] != f.aliceStop {
		t.Fatalf("members = %v", g["virtualmachineIds"])
	}
	catFail(t, alice, s, map[string]string{"command": "deleteAffinityGroup", "id": id}, 536, "virtual machine "+f.aliceStopName)
	vm, _ = fsm.Get[fsm.VM](f.c.State(), nil, fsm.TableVMs, f.aliceStop)
	c = vm.Copy()
	c.AffinityGroupIDs = nil
	f.commit(t, fsm.Update(fsm.TableVMs, c))

	catFail(t, f.bob, s, map[string]string{"command": "deleteAffinityGroup", "id": id}, 431, catNotFound("id", id))
	catFail(t, alice, s, map[string]string{"command": "deleteAffinityGroup"}, 431, "give id or name")
	catFail(t, alice, s, map[string]string{"command": "deleteAffinityGroup", "name": "nope"}, 431, "no affinity group named nope")
	f.jobOK(t, alice, map[string]string{"command": "deleteAffinityGroup", "name": "Spread"})
	catFail(t, alice, s, map[string]string{"command": "listAffinityGroups", "id": id}, 431, catNotFound("id", id))
	wantCatalogEvents(t, f.c, id, "AG.CREATE", "AG.DELETE")
}

func TestAffinityGroupScopingAndRoles(t *testing.T) {
	f := newComputeFixture(t)
	f.newGroup(t, f.alice, "a1", "host affinity")
	f.newGroup(t, f.carol, "c1", "host anti-affinity")
	bobs := f.newGroup(t, f.dadmin, "b1", "host affinity", "account", "bob", "domainid", f.webID)
	list := func(id ident, extra ...string) []string {
		t.Helper()
		return names(id.ok(t, f.s, catParams(map[string]string{"command": "listAffinityGroups"}, extra...)), "affinitygroup", "name")
	}
	wantNames(t, "alice", list(f.alice), "a1")
	wantNames(t, "bob", list(f.bob), "b1")
	wantNames(t, "dadmin listall", list(f.dadmin, "listall", "true"), "a1", "b1")
	wantNames(t, "root listall", list(f.root, "listall", "true"), "a1", "b1", "c1")
	wantNames(t, "type", list(f.root, "listall", "true", "type", "host affinity"), "a1", "b1")
	wantNames(t, "keyword", list(f.root, "listall", "true", "keyword", "c"), "c1")
	catFail(t, f.dadmin, f.s, map[string]string{"command": "createAffinityGroup", "name": "x", "type": "host affinity", "account": "carol",
		"domainid": f.rootDomain}, 431, "unable to find account carol")
	// The domain admin deletes bob's group by name for bob.
	f.jobOK(t, f.dadmin, map[string]string{"command": "deleteAffinityGroup", "name": "b1", "account": "bob", "domainid": f.webID})
	if g, _ := fsm.Get[fsm.AffinityGroup](f.c.State(), nil, fsm.TableAffinityGroups, bobs); g != nil {
		t.Fatal("bob's group survived")
	}
}
