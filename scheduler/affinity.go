package scheduler

import (
	"context"
	"time"

	"github.com/stratus-cloud/stratus/fsm"
)

// Affinity group jobs: createAffinityGroup and deleteAffinityGroup (both
// async in CloudStack 4.18). The allocator honours a VM's groups through
// PlacementRequest.

// Parameters of affinity group jobs, as the API commits them.
const (
	AffinityParamID          = "group"
	AffinityParamName        = "name"
	AffinityParamType        = "type"
	AffinityParamDescription = "description"
	AffinityParamAccountID   = "owner_account"
	AffinityParamDomainID    = "owner_domain"
)

// RegisterAffinityJobs adds the affinity group job kinds.
func RegisterAffinityJobs(r *Runner) {
	r.Handle("createAffinityGroup", createAffinityGroupStep)
	r.Handle("deleteAffinityGroup", deleteAffinityGroupStep)
}

// AffinityGroupResult is the result of createAffinityGroup: the API
// renders the group as it is when the result is read.
func AffinityGroupResult(id string) any {
	return map[string]any{"affinitygroup": map[string]string{"id": id}}
}

// createAffinityGroupStep creates the group the API validated. A name taken
// meanwhile fails the job (the runner turns the refused commit into 431).
func createAffinityGroupStep(_ context.Context, st *fsm.Store, j *fsm.AsyncJob) (Step, error) {
	id := j.Params[AffinityParamID]
	g, err := fsm.Get[fsm.AffinityGroup](st, nil, fsm.TableAffinityGroups, id)
	if err != nil {
		return Step{}, err
	}
	if g != nil {
		return Succeed(AffinityGroupResult(id)), nil
	}
	created := j.Created
	if created.IsZero() {
		created = time.Now().UTC()
	}
	g = &fsm.AffinityGroup{
		ID: id, Name: j.Params[AffinityParamName], Type: j.Params[AffinityParamType], Description: j.Params[AffinityParamDescription],
		AccountID: j.Params[AffinityParamAccountID], DomainID: j.Params[AffinityParamDomainID], Created: created,
	}
	return Succeed(AffinityGroupResult(id), fsm.Create(fsm.TableAffinityGroups, g)), nil
}

// deleteAffinityGroupStep deletes a group no VM is in any more.
func deleteAffinityGroupStep(_ context.Context, st *fsm.Store, j *fsm.AsyncJob) (Step, error) {
	id := j.Params[AffinityParamID]
	g, err := fsm.Get[fsm.AffinityGroup](st, nil, fsm.TableAffinityGroups, id)
	if err != nil {
		return Step{}, err
	}
	if g == nil {
		return Succeed(nil), nil
	}
	members, err := fsm.List[fsm.VM](st, nil, fsm.TableVMs, "affinity", id)
	if err != nil {
		return Step{}, err
	}
	if len(members) > 0 {
		return Fail(volCodeInUse, "affinity group %s still has virtual machine %s (and %d more) in it; remove them from the group first",
			g.Name, members[0].Name, len(members)-1), nil
	}
	return Succeed(nil, fsm.Check(fsm.TableAffinityGroups, g), fsm.Delete(fsm.TableAffinityGroups, id)), nil
}
