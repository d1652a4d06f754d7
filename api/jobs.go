package api

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/stratus-cloud/stratus/fsm"
)

// Async commands commit an AsyncJob and answer its id at once; the leader's
// job runner (scheduler) does the work and commits the result, which
// queryAsyncJobResult reads on any node.

// submitJob commits a pending job together with ops (say, a new object in
// its first state and the event of the request) and returns the job's id.
func (r *Request) submitJob(instanceType, instanceID string, params map[string]string, ops ...fsm.TxnOp) (string, *Error) {
	j := &fsm.AsyncJob{
		ID: newID(), Cmd: r.Params.Cmd, AccountID: r.Account.ID, DomainID: r.Account.DomainID, UserID: r.Caller.ID,
		Params: params, Status: fsm.JobPending, InstanceType: instanceType, InstanceID: instanceID, Created: r.srv.now().UTC(),
	}
	if e := r.commit(append(ops, fsm.Create(fsm.TableJobs, j))...); e != nil {
		return "", e
	}
	return j.ID, nil
}

// jobAccepted is the immediate answer of an async command; id is set for
// async create commands.
func jobAccepted(jobID, id string) any {
	if id != "" {
		return map[string]any{"id": id, "jobid": jobID}
	}
	return map[string]any{"jobid": jobID}
}

// jobResponse is an async job as queryAsyncJobResult and listAsyncJobs show it.
type jobResponse struct {
	AccountID       string          `json:"accountid"`
	Account         string          `json:"account,omitempty"`
	DomainID        string          `json:"domainid"`
	DomainPath      string          `json:"domainpath,omitempty"`
	UserID          string          `json:"userid"`
	Cmd             string          `json:"cmd"`
	JobStatus       int             `json:"jobstatus"` // always present: cmk type-asserts it
	JobProcStatus   int             `json:"jobprocstatus"`
	JobResultCode   int             `json:"jobresultcode"`
	JobResultType   string          `json:"jobresulttype,omitempty"` // absent while pending
	JobResult       json.RawMessage `json:"jobresult,omitempty"`
	JobInstanceType string          `json:"jobinstancetype,omitempty"`
	JobInstanceID   string          `json:"jobinstanceid,omitempty"`
	Created         string          `json:"created"`
	Completed       string          `json:"completed,omitempty"`
	JobID           string          `json:"jobid"`
	ManagementID    string          `json:"managementserverid,omitempty"`
}

// jobClass names the command the way CloudStack's cmd field does: some
// clients print it, none parse it.
func jobClass(cmd string) string {
	if cmd == "" {
		return ""
	}
	return "org.apache.cloudstack.api.command." + strings.ToUpper(cmd[:1]) + cmd[1:] + "Cmd"
}

func toJobResponse(r *Request, j *fsm.AsyncJob) jobResponse {
	acct, _ := r.ownerNames(j.AccountID, j.DomainID)
	out := jobResponse{
		AccountID: j.AccountID, Account: acct, DomainID: j.DomainID, DomainPath: r.domainPath(j.DomainID),
		UserID: j.UserID, Cmd: jobClass(j.Cmd), JobStatus: j.Status, JobProcStatus: j.ProcStatus,
		JobResultCode: j.ResultCode, JobInstanceType: j.InstanceType, JobInstanceID: j.InstanceID,
		Created: FormatTime(j.Created), JobID: j.ID,
	}
	if j.Status != fsm.JobPending {
		out.JobResultType, out.JobResult, out.Completed = j.ResultType, expandJobResult(r, j), FormatTime(j.Completed)
	}
	return out
}

// expandJobResult renders the object of a finished job as it is now: the
// runner commits only {"virtualmachine":{"id":...}} (or volume, snapshot,
// affinity group, host), because the names an answer carries (zone,
// template, offering, owner) are the API's to fill.
func expandJobResult(r *Request, j *fsm.AsyncJob) json.RawMessage {
	if b, ok := expandComputeResult(r, j); ok {
		return b
	}
	return j.Result
}

var jobResponseFields = []ResponseField{
	{Name: "jobid", Type: "string", Description: "ID of the job."},
	{Name: "accountid", Type: "string", Description: "Account that started the job."},
	{Name: "account", Type: "string", Description: "Name of that account."},
	{Name: "domainid", Type: "string", Description: "Domain of that account."},
	{Name: "domainpath", Type: "string", Description: "Path of that domain."},
	{Name: "userid", Type: "string", Description: "User that started the job."},
	{Name: "cmd", Type: "string", Description: "The command the job runs."},
	{Name: "jobstatus", Type: "integer", Description: "0 while pending, 1 when it succeeded, 2 when it failed."},
	{Name: "jobprocstatus", Type: "integer", Description: "Progress marker of a running job."},
	{Name: "jobresultcode", Type: "integer", Description: "0 on success, else the error code."},
	{Name: "jobresulttype", Type: "string", Description: "Kind of result: object; absent while pending."},
	{Name: "jobresult", Type: "responseobject", Description: "The command's result object, or errorcode and errortext on failure."},
	{Name: "jobinstancetype", Type: "string", Description: "Type of the object the job works on."},
	{Name: "jobinstanceid", Type: "string", Description: "ID of the object the job works on."},
	{Name: "created", Type: "date", Description: "When the job was started."},
	{Name: "completed", Type: "date", Description: "When the job ended."},
}

func init() {
	registerCommands(func(*Server) []*Command {
		return []*Command{
			{
				Name: "queryAsyncJobResult", Description: "Returns the status of an async job and, once it has ended, its result.",
				Access: AccessUser, Related: "listAsyncJobs", Response: jobResponseFields,
				Params:  []ParamSpec{{Name: "jobid", Type: "uuid", Required: true, Description: "ID of the job."}},
				Handler: queryAsyncJobResult,
			},
			{
				Name: "listAsyncJobs", Description: "Lists async jobs, newest last.", Access: AccessUser,
				ObjectName: "asyncjobs", Related: "queryAsyncJobResult", Response: jobResponseFields,
				Params: withPaging(scopeParams(
					ParamSpec{Name: "startdate", Type: "date", Description: "Only jobs started at or after this time."},
				)...),
				Handler: listAsyncJobs,
			},
		}
	})
}

// scopeParams adds the account scoping parameters of list commands.
func scopeParams(specs ...ParamSpec) []ParamSpec {
	return append(specs,
		ParamSpec{Name: "account", Type: "string", Description: "Only objects of this account; needs domainid unless it is in your domain."},
		ParamSpec{Name: "domainid", Type: "uuid", Description: "Only objects of accounts in this domain.", Related: "listDomains"},
		ParamSpec{Name: "isrecursive", Type: "boolean", Description: "With domainid or listall, include the domains below."},
		ParamSpec{Name: "listall", Type: "boolean", Description: "For admins: every account you manage instead of only your own."},
	)
}

func queryAsyncJobResult(r *Request) (any, *Error) {
	j, e := lookup(r, fsm.TableJobs, "jobid", func(j *fsm.AsyncJob) bool { return r.canAccess(j.AccountID, j.DomainID) })
	if e != nil {
		return nil, e
	}
	return toJobResponse(r, j), nil
}

func listAsyncJobs(r *Request) (any, *Error) {
	p := r.Params
	pg, e := pageParams[*fsm.AsyncJob](r)
	if e != nil {
		return nil, e
	}
	q, e := r.listScopeQuery()
	if e != nil {
		return nil, e
	}
	var since time.Time
	if p.Has("startdate") {
		t, err := ParseDate(p.String("startdate"))
		if err != nil {
			return nil, ErrInvalidParamValue(p.Cmd, "startdate", p.String("startdate"))
		}
		since = t
	}
	jobs, err := scopedRows[fsm.AsyncJob](r, q, fsm.TableJobs, false)
	if err != nil {
		return nil, ErrInternal("job scan failed")
	}
	words := newKeywordMatcher(strings.ToLower(p.String("keyword")))
	for j := range jobs {
		if !q.keep(j.AccountID, j.DomainID) || (words.kw != "" && !words.match(j.Cmd)) || j.Created.Before(since) {
			continue
		}
		pg.add(j)
	}
	out := make([]jobResponse, 0, len(pg.page))
	for _, j := range pg.page {
		out = append(out, toJobResponse(r, j))
	}
	return ListBody("asyncjobs", pg.total, out), nil
}
