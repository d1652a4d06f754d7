package api

import (
	"slices"
	"testing"

	"github.com/stratus-cloud/stratus/fsm"
)

func (f *computeFixture) vm(t *testing.T, id string) *fsm.VM {
	t.Helper()
	v, err := fsm.Get[fsm.VM](f.c.State(), nil, fsm.TableVMs, id)
	if err != nil || v == nil {
		t.Fatalf("VM %s: %v", id, err)
	}
	return v
}

// finished runs a command that completes in its own commit and returns the
// job's result.
func (f *computeFixture) finished(t *testing.T, id ident, params map[string]string) map[string]any {
	t.Helper()
	j := waitForJob(t, f.s, id.ok(t, f.s, params)["jobid"].(string))
	if j["jobstatus"] != 1.0 {
		t.Fatalf("%v: job %v", params, j)
	}
	return j["jobresult"].(map[string]any)
}

func TestResetSSHKeyForVirtualMachine(t *testing.T) {
	f := newComputeFixture(t)
	s, alice := f.s, f.alice
	alice.ok(t, s, map[string]string{"command": "createSSHKeyPair", "name": "k1"})
	alice.ok(t, s, map[string]string{"command": "createSSHKeyPair", "name": "k2"})
	res := f.finished(t, alice, map[string]string{"command": "resetSSHKeyForVirtualMachine", "id": f.aliceStop, "keypair": "k1", "keypairs": "k2"})
	if got := res["virtualmachine"].(map[string]any)["id"]; got != f.aliceStop {
		t.Fatalf("job result = %v", res)
	}
	if got := f.vm(t, f.aliceStop).KeyPairs; !slices.Equal(got, []string{"k1", "k2"}) {
		t.Fatalf("key pairs = %v, want [k1 k2]", got)
	}
	reset := func(extra ...string) map[string]string {
		return catParams(map[string]string{"command": "resetSSHKeyForVirtualMachine", "id": f.aliceStop}, extra...)
	}
	catFail(t, alice, s, reset(), 431, "give the new SSH key pairs")
	catFail(t, alice, s, reset("keypair", "nope"), 431, "no SSH key pair named nope")
	catFail(t, alice, s, catParams(reset("keypair", "k1"), "id", f.aliceRun), 431, "stop it first")
	catFail(t, alice, s, catParams(reset("keypair", "k1"), "id", f.bobStop), 431, "entity does not exist")
	catFail(t, alice, s, reset("keypair", "k1", "projectid", newID()), 431, "parameter projectid")
	if got := f.vm(t, f.aliceStop).KeyPairs; !slices.Equal(got, []string{"k1", "k2"}) {
		t.Fatalf("refused requests changed the key pairs to %v", got)
	}
}

func TestUpdateVMAffinityGroup(t *testing.T) {
	f := newComputeFixture(t)
	s, alice := f.s, f.alice
	g1 := f.newGroup(t, alice, "spread", "host anti-affinity")
	f.newGroup(t, alice, "pack", "host affinity")
	f.finished(t, alice, map[string]string{"command": "updateVMAffinityGroup", "id": f.aliceStop, "affinitygroupids": g1})
	if got := f.vm(t, f.aliceStop).AffinityGroupIDs; !slices.Equal(got, []string{g1}) {
		t.Fatalf("groups = %v, want [%s]", got, g1)
	}
	// A group with a member cannot be deleted.
	catFail(t, alice, s, map[string]string{"command": "deleteAffinityGroup", "id": g1}, 536, f.aliceStopName)
	res := f.finished(t, alice, map[string]string{"command": "updateVMAffinityGroup", "id": f.aliceStop, "affinitygroupnames": "pack"})
	if groups, _ := res["virtualmachine"].(map[string]any)["affinitygroup"].([]any); len(groups) != 1 || groups[0].(map[string]any)["name"] != "pack" {
		t.Fatalf("job result's groups = %v, want pack", res)
	}
	f.finished(t, alice, map[string]string{"command": "updateVMAffinityGroup", "id": f.aliceStop, "affinitygroupids": ""})
	if got := f.vm(t, f.aliceStop).AffinityGroupIDs; len(got) != 0 {
		t.Fatalf("groups after an empty list = %v, want none", got)
	}
	upd := func(extra ...string) map[string]string {
		return catParams(map[string]string{"command": "updateVMAffinityGroup", "id": f.aliceStop}, extra...)
	}
	catFail(t, alice, s, upd(), 431, "exactly one of affinitygroupids and affinitygroupnames")
	catFail(t, alice, s, upd("affinitygroupids", g1, "affinitygroupnames", "pack"), 431, "exactly one of")
	catFail(t, alice, s, upd("affinitygroupnames", "nope"), 431, "no affinity group named nope")
	catFail(t, alice, s, catParams(upd("affinitygroupids", g1), "id", f.aliceRun), 431, "stop it first")
}
