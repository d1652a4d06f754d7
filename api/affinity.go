package api

import (
	"fmt"
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/scheduler"
)

// Affinity groups keep their VMs on one host ("host affinity") or on
// different hosts ("host anti-affinity"). deployVirtualMachine puts a VM in
// groups; the allocator honours them (scheduler.PlacementRequest). Creating
// and deleting a group are async in CloudStack 4.18, so they are jobs here
// too (scheduler/affinity.go).

// resAffinityGroup is the resource and job instance type of affinity groups.
const resAffinityGroup = "AffinityGroup"

// affinityGroupTypes are the group types, as listAffinityGroupTypes lists them.
var affinityGroupTypes = []string{fsm.AntiAffinityHost, fsm.AffinityHost}

type affinityGroupResponse struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Type        string   `json:"type"`
	Description string   `json:"description,omitempty"`
	Account     string   `json:"account"`
	DomainID    string   `json:"domainid"`
	Domain      string   `json:"domain"`
	VMIDs       []string `json:"virtualmachineIds"`
}

var affinityGroupFields = withJobFields(
	ResponseField{Name: "id", Type: "string", Description: "Group ID."},
	ResponseField{Name: "name", Type: "string", Description: "Group name, unique in its account."},
	ResponseField{Name: "type", Type: "string", Description: "host affinity or host anti-affinity."},
	ResponseField{Name: "description", Type: "string", Description: "Free-form description."},
	ResponseField{Name: "account", Type: "string", Description: "Owning account."},
	ResponseField{Name: "domainid", Type: "string", Description: "Domain of the owning account."},
	ResponseField{Name: "domain", Type: "string", Description: "Name of that domain."},
	ResponseField{Name: "virtualmachineIds", Type: "list", Description: "IDs of the VMs in the group."},
)

func init() {
	registerCommands(func(*Server) []*Command {
		owner := []ParamSpec{
			{Name: "account", Type: "string", Description: "Owning account (admins), with domainid."},
			{Name: "domainid", Type: "uuid", Related: "listDomains", Description: "Domain of that account."},
		}
		return []*Command{
			{
				Name: "createAffinityGroup", Description: "Creates an affinity group: its VMs go to one host (host affinity) or to different hosts (host anti-affinity).",
				Async: true, Write: true, Access: AccessUser, ObjectName: "affinitygroup", Related: "listAffinityGroups", Response: affinityGroupFields,
				Handler: createAffinityGroup,
				Params: append([]ParamSpec{
					{Name: "name", Type: "string", Required: true, Length: 255, Description: "Name of the group; unique in the account."},
					{Name: "type", Type: "string", Required: true, Description: "host affinity or host anti-affinity (see listAffinityGroupTypes)."},
					{Name: "description", Type: "string", Length: 4096, Description: "Free-form description."},
				}, owner...),
			},
			{
				Name: "deleteAffinityGroup", Description: "Deletes an affinity group no VM is in.", Async: true, Write: true, Access: AccessUser,
				Related: "listAffinityGroups", Response: successResponse, Handler: deleteAffinityGroup,
				Params: append([]ParamSpec{
					{Name: "id", Type: "uuid", Related: "listAffinityGroups", Description: "ID of the group; or give name."},
					{Name: "name", Type: "string", Description: "Name of the group in the account (the caller's, or account with domainid)."},
				}, owner...),
			},
			{
				Name: "listAffinityGroups", Description: "Lists affinity groups, oldest first.", Access: AccessUser, ObjectName: "affinitygroup",
				Related: "createAffinityGroup", Response: affinityGroupFields, Handler: listAffinityGroups,
				Params: withPaging(scopeParams(
					ParamSpec{Name: "id", Type: "uuid", Related: "listAffinityGroups", Description: "Only the group with this ID."},
					ParamSpec{Name: "name", Type: "string", Description: "Only groups with this name."},
					ParamSpec{Name: "type", Type: "string", Description: "Only groups of this type."},
					ParamSpec{Name: "virtualmachineid", Type: "uuid", Related: "listVirtualMachines", Description: "Only the groups of this VM."},
				)...),
			},
			{
				Name: "listAffinityGroupTypes", Description: "Lists the affinity group types.", Access: AccessUser, ObjectName: "affinityGroupType",
				Response: withJobFields(ResponseField{Name: "type", Type: "string", Description: "The type's name, for createAffinityGroup."}),
				Handler:  listAffinityGroupTypes, Params: pagingParams,
			},
		}
	})
}

func renderAffinityGroup(r *Request, g *fsm.AffinityGroup) affinityGroupResponse {
	acct, dom := r.ownerNames(g.AccountID, g.DomainID)
	out := affinityGroupResponse{ID: g.ID, Name: g.Name, Type: g.Type, Description: g.Description, Account: acct,
		DomainID: g.DomainID, Domain: dom, VMIDs: []string{}}
	vms, _ := fsm.List[fsm.VM](r.State(), nil, fsm.TableVMs, "affinity", g.ID)
	for _, v := range vms {
		out.VMIDs = append(out.VMIDs, v.ID)
	}
	return out
}

// affinityType reads a group type in any case and answers its canonical
// spelling.
func affinityType(p Params, param string) (string, *Error) {
	v := strings.TrimSpace(p.String(param))
	for _, t := range affinityGroupTypes {
		if strings.EqualFold(v, t) {
			return t, nil
		}
	}
	return "", ErrParam("invalid value %q for parameter %s: use one of %s (see listAffinityGroupTypes)", v, param, strings.Join(affinityGroupTypes, ", "))
}

// affinityGroupNamed returns the account's group of that name, or nil.
func affinityGroupNamed(r *Request, accountID, name string) *fsm.AffinityGroup {
	gs, err := fsm.List[fsm.AffinityGroup](r.State(), nil, fsm.TableAffinityGroups, "name", accountID, name)
	if err != nil || len(gs) == 0 {
		return nil
	}
	return gs[0]
}

func createAffinityGroup(r *Request) (any, *Error) {
	p := r.Params
	name, e := requiredName(p, "name")
	if e != nil {
		return nil, e
	}
	typ, e := affinityType(p, "type")
	if e != nil {
		return nil, e
	}
	acctID, domID, e := r.owner()
	if e != nil {
		return nil, e
	}
	if affinityGroupNamed(r, acctID, name) != nil {
		return nil, ErrParam("an affinity group named %s already exists in the account", name)
	}
	id := newID()
	params := map[string]string{
		scheduler.AffinityParamID: id, scheduler.AffinityParamName: name, scheduler.AffinityParamType: typ,
		scheduler.AffinityParamDescription: strings.TrimSpace(p.String("description")),
		scheduler.AffinityParamAccountID:   acctID, scheduler.AffinityParamDomainID: domID,
	}
	jobID, e := r.submitJob(resAffinityGroup, id, params,
		r.event("AG.CREATE", resAffinityGroup, id, "creating %s group %s", typ, name))
	if e != nil {
		return nil, e
	}
	return jobAccepted(jobID, id), nil
}

// affinityGroupTarget resolves deleteAffinityGroup's group: id, or name in
// the caller's account (or account + domainid).
func affinityGroupTarget(r *Request) (*fsm.AffinityGroup, *Error) {
	p := r.Params
	if given(p, "id") {
		return lookup(r, fsm.TableAffinityGroups, "id", func(g *fsm.AffinityGroup) bool { return r.canAccess(g.AccountID, g.DomainID) })
	}
	if !given(p, "name") {
		return nil, ErrParam("give id or name to name the affinity group to delete")
	}
	acctID, _, e := r.owner()
	if e != nil {
		return nil, e
	}
	g := affinityGroupNamed(r, acctID, strings.TrimSpace(p.String("name")))
	if g == nil {
		return nil, ErrParam("the account has no affinity group named %s", p.String("name"))
	}
	return g, nil
}

func deleteAffinityGroup(r *Request) (any, *Error) {
	g, e := affinityGroupTarget(r)
	if e != nil {
		return nil, e
	}
	members, err := fsm.List[fsm.VM](r.State(), nil, fsm.TableVMs, "affinity", g.ID)
	if err != nil {
		return nil, ErrInternal("virtual machine scan failed")
	}
	if len(members) > 0 {
		return nil, ErrInUse(fmt.Sprintf("affinity group %s still has virtual machine %s (and %d more) in it; remove them from the group first",
			g.Name, members[0].Name, len(members)-1))
	}
	jobID, e := r.submitJob(resAffinityGroup, g.ID, map[string]string{scheduler.AffinityParamID: g.ID}, fsm.Claim(fsm.TableAffinityGroups, g),
		r.event("AG.DELETE", resAffinityGroup, g.ID, "deleting affinity group %s", g.Name))
	if e != nil {
		return nil, e
	}
	return jobAccepted(jobID, ""), nil
}

func listAffinityGroups(r *Request) (any, *Error) {
	p := r.Params
	scope, e := r.listScope()
	if e != nil {
		return nil, e
	}
	var groups []*fsm.AffinityGroup
	byID := given(p, "id")
	if byID {
		g, e := lookup(r, fsm.TableAffinityGroups, "id", func(g *fsm.AffinityGroup) bool { return r.canAccess(g.AccountID, g.DomainID) })
		if e != nil {
			return nil, e
		}
		groups = []*fsm.AffinityGroup{g}
	} else {
		var err error
		if groups, err = fsm.List[fsm.AffinityGroup](r.State(), nil, fsm.TableAffinityGroups, "create"); err != nil {
			return nil, ErrInternal("affinity group scan failed")
		}
	}
	var vmGroups map[string]bool
	if given(p, "virtualmachineid") {
		vm, e := lookupVolumeVM(r, "virtualmachineid")
		if e != nil {
			return nil, e
		}
		vmGroups = map[string]bool{}
		for _, id := range vm.AffinityGroupIDs {
			vmGroups[id] = true
		}
	}
	name, typ, kw := p.String("name"), strings.TrimSpace(p.String("type")), strings.ToLower(p.String("keyword"))
	var out []affinityGroupResponse
	for _, g := range groups {
		if (!byID && vmGroups == nil && !scope(g.AccountID, g.DomainID)) || (vmGroups != nil && !vmGroups[g.ID]) ||
			(name != "" && !strings.EqualFold(g.Name, name)) || !eqFold(typ, g.Type) || !keywordMatch(kw, g.Name, g.Description) {
			continue
		}
		out = append(out, renderAffinityGroup(r, g))
	}
	return catalogPage(r, "affinitygroup", out)
}

func listAffinityGroupTypes(r *Request) (any, *Error) {
	kw := strings.ToLower(r.Params.String("keyword"))
	var out []map[string]string
	for _, t := range affinityGroupTypes {
		if keywordMatch(kw, t) {
			out = append(out, map[string]string{"type": t})
		}
	}
	return catalogPage(r, "affinityGroupType", out)
}
