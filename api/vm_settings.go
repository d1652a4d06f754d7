package api

import (
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
)

// Settings of a stopped VM that take effect at its next start: its SSH key
// pairs and its affinity groups. Terraform changes either by stopping the
// VM, calling these, and starting it again. CloudStack runs them as async
// jobs; here each completes in the commit that changes the VM, so the job
// a client polls has already succeeded.

func init() {
	registerCommands(func(*Server) []*Command {
		return []*Command{
			vmJobCommand("resetSSHKeyForVirtualMachine", "Replaces the SSH key pairs of a stopped VM; the guest gets them at its next start.", resetSSHKeyVM,
				ParamSpec{Name: "keypair", Type: "string", Description: "Name of an SSH key pair of the VM's owner."},
				ParamSpec{Name: "keypairs", Type: "list", Description: "Names of SSH key pairs of the VM's owner."},
				ParamSpec{Name: "account", Type: "string", Description: "Owner of the key pairs (admins), with domainid: it must own the VM."},
				ParamSpec{Name: "domainid", Type: "uuid", Description: "Domain of that account.", Related: "listDomains"},
				ParamSpec{Name: "projectid", Type: "uuid", Description: "Project of the VM; there are no projects."}),
			vmJobCommand("updateVMAffinityGroup", "Replaces the affinity groups of a stopped VM; the allocator honours them from its next start.", updateVMAffinity,
				ParamSpec{Name: "affinitygroupids", Type: "list", Description: "The VM's new affinity groups, by ID; empty removes them all.", Related: "listAffinityGroups"},
				ParamSpec{Name: "affinitygroupnames", Type: "list", Description: "The VM's new affinity groups, by name; empty removes them all."}),
		}
	})
}

// stoppedVM looks the VM up and refuses one that is not Stopped or that a
// job is working on.
func stoppedVM(r *Request, what string) (*fsm.VM, *Error) {
	v, e := lookupVM(r, "id")
	if e != nil {
		return nil, e
	}
	if e := busyVM(r, v); e != nil {
		return nil, e
	}
	if v.State != fsm.VMStopped {
		return nil, ErrParam("virtual machine %s is %s; stop it first: %s changes only a stopped VM", v.Name, v.State, what)
	}
	return v, nil
}

func resetSSHKeyVM(r *Request) (any, *Error) {
	p := r.Params
	if e := noProject(p); e != nil {
		return nil, e
	}
	v, e := stoppedVM(r, "resetSSHKeyForVirtualMachine")
	if e != nil {
		return nil, e
	}
	if p.String("account") != "" {
		acctID, _, e := r.owner()
		if e != nil {
			return nil, e
		}
		if acctID != v.AccountID {
			return nil, ErrParam("account %s does not own virtual machine %s", p.String("account"), v.Name)
		}
	}
	names, e := keyPairsParam(r, v.AccountID)
	if e != nil {
		return nil, e
	}
	if len(names) == 0 {
		return nil, ErrParam("give the new SSH key pairs in keypair or keypairs")
	}
	nv := v.Copy()
	nv.KeyPairs = names
	ops := []fsm.TxnOp{fsm.Update(fsm.TableVMs, nv)}
	return r.finishedJob(vmInstanceType, v.ID, map[string]any{"virtualmachine": newVMRenderer(r).render(nv, false)}, ops,
		"VM.RESETSSHKEY", "set the SSH key pairs of virtual machine %s to %s", v.Name, strings.Join(names, ", "))
}

func updateVMAffinity(r *Request) (any, *Error) {
	p := r.Params
	byID, byName := p.Has("affinitygroupids"), p.Has("affinitygroupnames")
	if byID == byName {
		return nil, ErrParam("give exactly one of affinitygroupids and affinitygroupnames (empty to remove every group)")
	}
	v, e := stoppedVM(r, "updateVMAffinityGroup")
	if e != nil {
		return nil, e
	}
	ids, checks, e := affinityParam(r, v.AccountID)
	if e != nil {
		return nil, e
	}
	nv := v.Copy()
	nv.AffinityGroupIDs = ids
	ops := append(checks, fsm.Update(fsm.TableVMs, nv))
	return r.finishedJob(vmInstanceType, v.ID, map[string]any{"virtualmachine": newVMRenderer(r).render(nv, false)}, ops,
		"VM.AFFINITY.GROUP.UPDATE", "set the affinity groups of virtual machine %s (%d)", v.Name, len(ids))
}
