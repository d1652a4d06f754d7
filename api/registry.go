package api

import (
	"context"
	"sort"

	"github.com/stratus-cloud/stratus/fsm"
)

// Access is the lowest account type allowed to call a command.
type Access int

// Access levels, from most to least privileged.
const (
	AccessRootAdmin Access = iota
	AccessDomainAdmin
	AccessUser
)

// ResponseField describes one field of a command's response for listApis.
type ResponseField struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Type        string          `json:"type"`
	Response    []ResponseField `json:"response,omitempty"`
}

// Command is one API command: its listApis description and its handler.
type Command struct {
	Name        string
	Description string
	Since       string
	Related     string
	Async       bool
	// Write marks commands that change state: they go through raft, and
	// with enforce.post.requests.and.timestamps they must come as POST.
	Write    bool
	Access   Access
	Params   []ParamSpec
	Response []ResponseField
	// ObjectName is the key of the returned object ("zone", "user"), used by
	// listApis' response description and by async job results later.
	ObjectName string
	Handler    func(*Request) (any, *Error)
}

// Request is one authenticated API call as a handler sees it.
type Request struct {
	Ctx     context.Context
	Params  Params
	Caller  *fsm.User
	Account *fsm.Account
	Format  string
	srv     *Server
	state   *fsm.Store
}

// State is the store the handler reads from: for reads it already includes
// every write acknowledged before the request (unless consistency=stale).
func (r *Request) State() *fsm.Store { return r.state }

// registry holds every command by name.
type registry map[string]*Command

func (reg registry) add(cmds ...*Command) {
	for _, c := range cmds {
		if _, dup := reg[c.Name]; dup {
			panic("api: command registered twice: " + c.Name)
		}
		reg[c.Name] = c
	}
}

func (reg registry) sorted() []*Command {
	out := make([]*Command, 0, len(reg))
	for _, c := range reg {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// allowed reports whether an account's type reaches c's access level: the
// ceiling of what any role of that type may call. Server.permitted adds the
// account's role on top.
func (c *Command) allowed(acct *fsm.Account) bool {
	return accessAllows(c.Access, fsm.RoleTypeOfAccount(acct.Type))
}

// Paging parameters shared by every list command.
var pagingParams = []ParamSpec{
	{Name: "keyword", Type: "string", Description: "Free-text filter on the object's name (and description where it has one)."},
	{Name: "page", Type: "integer", Description: "Page number, counting from 1; needs pagesize."},
	{Name: "pagesize", Type: "integer", Description: "Items per page, at most default.page.size; needs page, except -1 (no limit) which must come alone."},
}

func withPaging(specs ...ParamSpec) []ParamSpec {
	return append(specs, pagingParams...)
}

// Fields common to every response object.
var jobFields = []ResponseField{
	{Name: "jobid", Type: "string", Description: "ID of the async job working on this object, if one is."},
	{Name: "jobstatus", Type: "integer", Description: "Status of that async job."},
}

func withJobFields(fields ...ResponseField) []ResponseField {
	return append(fields, jobFields...)
}

var successResponse = withJobFields(
	ResponseField{Name: "success", Type: "boolean", Description: "True when the operation succeeded."},
	ResponseField{Name: "displaytext", Type: "string", Description: "Any text the operation returned."},
)

// successBody is the body of a success-only response.
func successBody() any { return map[string]any{"success": true} }
