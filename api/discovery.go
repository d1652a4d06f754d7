package api

import (
	"sort"
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
)

type apiParamResponse struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Type        string `json:"type"`
	Length      int    `json:"length"`
	Required    bool   `json:"required"`
	Since       string `json:"since,omitempty"`
	Related     string `json:"related,omitempty"`
}

type apiResponse struct {
	Name        string             `json:"name"`
	Description string             `json:"description"`
	Since       string             `json:"since,omitempty"`
	IsAsync     bool               `json:"isasync"`
	Related     string             `json:"related,omitempty"`
	Params      []apiParamResponse `json:"params"`
	Response    []ResponseField    `json:"response"`
	Type        string             `json:"type,omitempty"`
}

func describeCommand(c *Command) apiResponse {
	out := apiResponse{
		Name: c.Name, Description: c.Description, Since: c.Since, IsAsync: c.Async, Related: c.Related,
		Params: []apiParamResponse{}, Response: c.Response,
	}
	if out.Response == nil {
		out.Response = []ResponseField{}
	}
	for _, p := range c.Params {
		length := p.Length
		if length == 0 {
			length = 255
		}
		out.Params = append(out.Params, apiParamResponse{
			Name: p.Name, Description: p.Description, Type: p.Type, Length: length,
			Required: p.Required, Since: p.Since, Related: p.Related,
		})
	}
	sort.Slice(out.Params, func(i, j int) bool { return out.Params[i].Name < out.Params[j].Name })
	return out
}

var apiFields = withJobFields(
	ResponseField{Name: "name", Type: "string", Description: "Command name."},
	ResponseField{Name: "description", Type: "string", Description: "What the command does."},
	ResponseField{Name: "since", Type: "string", Description: "CloudStack version that added the command."},
	ResponseField{Name: "isasync", Type: "boolean", Description: "True when the command answers with a job ID to poll."},
	ResponseField{Name: "related", Type: "string", Description: "Commands that return the same kind of object."},
	ResponseField{Name: "type", Type: "string", Description: "Type of the response, where it is a single value."},
	ResponseField{Name: "params", Type: "set", Description: "The command's parameters.", Response: []ResponseField{
		{Name: "name", Type: "string", Description: "Parameter name."},
		{Name: "description", Type: "string", Description: "What the parameter does."},
		{Name: "type", Type: "string", Description: "Value type."},
		{Name: "length", Type: "integer", Description: "Longest accepted value."},
		{Name: "required", Type: "boolean", Description: "True when the parameter must be given."},
		{Name: "since", Type: "string", Description: "Version that added the parameter."},
		{Name: "related", Type: "string", Description: "Commands that list the objects this parameter names."},
	}},
	ResponseField{Name: "response", Type: "set", Description: "Fields of the command's response.", Response: []ResponseField{
		{Name: "name", Type: "string", Description: "Field name."},
		{Name: "description", Type: "string", Description: "What the field holds."},
		{Name: "type", Type: "string", Description: "Value type."},
		{Name: "response", Type: "list", Description: "Fields of a nested object."},
	}},
)

func discoveryCommands(s *Server) []*Command {
	listApis := &Command{
		Name: "listApis", Description: "Lists the API commands the caller may use, with their parameters and response fields.",
		Access: AccessUser, ObjectName: "api", Response: apiFields,
		Params: []ParamSpec{{Name: "name", Type: "string", Description: "Only the command with this name."}},
		Handler: func(r *Request) (any, *Error) {
			name := r.Params.String("name")
			var out []apiResponse
			for _, c := range s.cmds.sorted() {
				if s.permitted(r.Account, c) && (name == "" || c.Name == name) {
					out = append(out, describeCommand(c))
				}
			}
			if name != "" && len(out) == 0 {
				return nil, ErrParam("API command %s does not exist or is not available to this account", name)
			}
			return ListBody("api", len(out), out), nil
		},
	}
	caps := &Command{
		Name: "listCapabilities", Description: "Reports what this cloud supports and a few limits clients adapt to.",
		Access: AccessUser, ObjectName: "capability", Response: capabilityFields,
		Handler: func(r *Request) (any, *Error) {
			return map[string]any{"capability": capabilities(r.State(), s.ver)}, nil
		},
	}
	return []*Command{listApis, caps}
}

var capabilityFields = withJobFields(
	ResponseField{Name: "cloudstackversion", Type: "string", Description: "CloudStack API version this server speaks."},
	ResponseField{Name: "stratusversion", Type: "string", Description: "Build version of the Stratus server that answered."},
	ResponseField{Name: "securitygroupsenabled", Type: "boolean", Description: "Whether any zone uses security groups."},
	ResponseField{Name: "userpublictemplateenabled", Type: "boolean", Description: "Whether users may publish templates."},
	ResponseField{Name: "dynamicrolesenabled", Type: "boolean", Description: "Whether roles carry per-command permissions."},
	ResponseField{Name: "allowusercreateprojects", Type: "boolean", Description: "Whether users may create projects."},
	ResponseField{Name: "defaultuipagesize", Type: "long", Description: "Page size used when a list command gives none."},
	ResponseField{Name: "apilimitinterval", Type: "integer", Description: "Window of the API rate limit, in seconds."},
	ResponseField{Name: "apilimitmax", Type: "integer", Description: "Requests allowed per window; 0 when unlimited."},
	ResponseField{Name: "customdiskofferingminsize", Type: "long", Description: "Smallest custom disk in GiB."},
	ResponseField{Name: "customdiskofferingmaxsize", Type: "long", Description: "Largest custom disk in GiB."},
	ResponseField{Name: "kvmsnapshotenabled", Type: "boolean", Description: "Whether KVM volume snapshots are allowed."},
	ResponseField{Name: "projectinviterequired", Type: "boolean", Description: "Whether joining a project needs an invitation."},
	ResponseField{Name: "allowuserviewdestroyedvm", Type: "boolean", Description: "Whether users see their destroyed VMs."},
	ResponseField{Name: "allowuserexpungerecovervm", Type: "boolean", Description: "Whether users may expunge or recover their VMs."},
)

func capabilities(st *fsm.Store, version string) map[string]any {
	sg := false
	if zones, err := st.Zones(nil); err == nil {
		for _, z := range zones {
			sg = sg || z.SecurityGroups
		}
	}
	return map[string]any{
		"cloudstackversion":         CloudStackVersion,
		"stratusversion":            strings.TrimSpace(version),
		"securitygroupsenabled":     sg,
		"userpublictemplateenabled": true,
		"dynamicrolesenabled":       true,
		"allowusercreateprojects":   true,
		"defaultuipagesize":         st.SettingInt(fsm.SettingDefaultPageSize),
		"apilimitinterval":          1,
		"apilimitmax":               0,
		"customdiskofferingminsize": 1,
		"customdiskofferingmaxsize": 1024,
		"kvmsnapshotenabled":        true,
		"projectinviterequired":     false,
		"allowuserviewdestroyedvm":  true,
		"allowuserexpungerecovervm": false,
	}
}
