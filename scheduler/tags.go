package scheduler

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/google/uuid"

	"github.com/stratus-cloud/stratus/fsm"
)

// Parameters of tag jobs, as the API commits them.
const (
	TagParamType      = "resourcetype" // canonical resource type
	TagParamIDs       = "resourceids"  // comma separated
	TagParamTags      = "tags"         // JSON array of {"key","value"}
	TagParamCustomer  = "customer"
	TagParamAccountID = "caller_account" // owner of tags on unowned resources
	TagParamDomainID  = "caller_domain"
)

// TagPair is one key/value of a tag job.
type TagPair struct {
	Key   string `json:"key"`
	Value string `json:"value,omitempty"`
}

// RegisterTagJobs adds the createTags and deleteTags job kinds.
func RegisterTagJobs(r *Runner) {
	r.Handle("createTags", createTagsStep)
	r.Handle("deleteTags", deleteTagsStep)
}

func tagJobInput(j *fsm.AsyncJob) (string, string, []string, []TagPair, *Step) {
	name, table, ok := fsm.TaggableTable(j.Params[TagParamType])
	if !ok {
		s := Fail(431, "resource type %s cannot be tagged", j.Params[TagParamType])
		return "", "", nil, nil, &s
	}
	var tags []TagPair
	if raw := j.Params[TagParamTags]; raw != "" {
		if err := json.Unmarshal([]byte(raw), &tags); err != nil {
			s := Fail(530, "the job's tags do not decode: %v", err)
			return "", "", nil, nil, &s
		}
	}
	return name, table, strings.Split(j.Params[TagParamIDs], ","), tags, nil
}

// tagID is derived from the job, the resource and the key, so a retried
// step proposes the same rows.
func tagID(jobID, resourceID, key string) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("stratus:tag:"+jobID+":"+resourceID+":"+strings.ToLower(key))).String()
}

func createTagsStep(_ context.Context, st *fsm.Store, j *fsm.AsyncJob) (Step, error) {
	name, table, ids, tags, fail := tagJobInput(j)
	if fail != nil {
		return *fail, nil
	}
	var ops []fsm.TxnOp
	for _, id := range ids {
		obj, err := st.GetObject(table, id)
		if err != nil {
			return Step{}, err
		}
		if obj == nil {
			return Fail(431, "%s %s no longer exists", name, id), nil
		}
		acct, dom := j.Params[TagParamAccountID], j.Params[TagParamDomainID]
		if o, ok := obj.(fsm.Owned); ok {
			acct, dom = o.Owner()
		}
		// Check pins the resource: if it is deleted or changed meanwhile,
		// the step is read again instead of tagging a stale row.
		ops = append(ops, fsm.Check(table, obj))
		for _, t := range tags {
			ops = append(ops, fsm.Create(fsm.TableTags, &fsm.Tag{
				ID: tagID(j.ID, id, t.Key), Key: t.Key, Value: t.Value, ResourceType: name, ResourceID: id,
				AccountID: acct, DomainID: dom, Customer: j.Params[TagParamCustomer], Created: j.Created,
			}))
		}
	}
	return Succeed(nil, ops...), nil
}

func deleteTagsStep(_ context.Context, st *fsm.Store, j *fsm.AsyncJob) (Step, error) {
	_, _, ids, tags, fail := tagJobInput(j)
	if fail != nil {
		return *fail, nil
	}
	var ops []fsm.TxnOp
	for _, id := range ids {
		existing, err := fsm.List[fsm.Tag](st, nil, fsm.TableTags, "resource", id)
		if err != nil {
			return Step{}, err
		}
		for _, t := range existing {
			if matchesAny(t, tags) {
				ops = append(ops, fsm.Check(fsm.TableTags, t), fsm.Delete(fsm.TableTags, t.ID))
			}
		}
	}
	return Succeed(nil, ops...), nil
}

// matchesAny: no pairs selects every tag; a pair without value selects the
// key; with a value, only that key=value.
func matchesAny(t *fsm.Tag, pairs []TagPair) bool {
	if len(pairs) == 0 {
		return true
	}
	for _, p := range pairs {
		if strings.EqualFold(p.Key, t.Key) && (p.Value == "" || p.Value == t.Value) {
			return true
		}
	}
	return false
}
