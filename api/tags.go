package api

import (
	"encoding/json"
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/scheduler"
)

type tagResponse struct {
	Key          string `json:"key"`
	Value        string `json:"value"`
	ResourceType string `json:"resourcetype"`
	ResourceID   string `json:"resourceid"`
	Account      string `json:"account,omitempty"`
	DomainID     string `json:"domainid"`
	Domain       string `json:"domain,omitempty"`
	Customer     string `json:"customer,omitempty"`
}

var tagFields = []ResponseField{
	{Name: "key", Type: "string", Description: "Tag key."},
	{Name: "value", Type: "string", Description: "Tag value."},
	{Name: "resourcetype", Type: "string", Description: "Type of the tagged resource."},
	{Name: "resourceid", Type: "string", Description: "ID of the tagged resource."},
	{Name: "account", Type: "string", Description: "Account owning the tag (the resource's owner)."},
	{Name: "domainid", Type: "string", Description: "Domain of that account."},
	{Name: "domain", Type: "string", Description: "Name of that domain."},
	{Name: "customer", Type: "string", Description: "Free-form customer reference given at creation."},
}

func init() {
	registerCommands(func(*Server) []*Command {
		resourceParams := []ParamSpec{
			{Name: "resourcetype", Type: "string", Required: true, Description: "Type of the resources, e.g. Zone, Template, UserVm."},
			{Name: "resourceids", Type: "list", Required: true, Description: "IDs of the resources, comma separated."},
		}
		return []*Command{
			{
				Name: "createTags", Description: "Adds key/value tags to resources.", Async: true, Write: true,
				Access: AccessUser, Related: "listTags,deleteTags", Response: successResponse,
				Params: append(resourceParams,
					ParamSpec{Name: "tags", Type: "map", Required: true, Description: "The tags, as tags[0].key=k&tags[0].value=v."},
					ParamSpec{Name: "customer", Type: "string", Description: "Free-form customer reference stored with the tags."},
				),
				Handler: createTags,
			},
			{
				Name: "deleteTags", Description: "Removes tags from resources: the given keys (or key=value pairs), or all of them.",
				Async: true, Write: true, Access: AccessUser, Related: "listTags,createTags", Response: successResponse,
				Params: append(resourceParams,
					ParamSpec{Name: "tags", Type: "map", Description: "Tags to remove, as tags[0].key=k (and optionally tags[0].value=v); none removes all."},
				),
				Handler: deleteTags,
			},
			{
				Name: "listTags", Description: "Lists tags.", Access: AccessUser, ObjectName: "tag",
				Related: "createTags", Response: tagFields,
				Params: withPaging(scopeParams(
					ParamSpec{Name: "resourcetype", Type: "string", Description: "Only tags on this type of resource."},
					ParamSpec{Name: "resourceid", Type: "string", Description: "Only tags on this resource."},
					ParamSpec{Name: "key", Type: "string", Description: "Only tags with this key."},
					ParamSpec{Name: "value", Type: "string", Description: "Only tags with this value."},
					ParamSpec{Name: "customer", Type: "string", Description: "Only tags with this customer reference."},
				)...),
				Handler: listTags,
			},
		}
	})
}

// tagTargets checks the resources of a tag command: they exist, the caller
// may change them, and returns the canonical type name and the ids.
func tagTargets(r *Request) (string, []string, *Error) {
	p := r.Params
	name, table, ok := fsm.TaggableTable(p.String("resourcetype"))
	if !ok {
		return "", nil, ErrParam("invalid value %q for parameter resourcetype: use one of %s", p.String("resourcetype"), strings.Join(fsm.TaggableTypes(), ", "))
	}
	var ids []string
	for _, raw := range p.List("resourceids") {
		obj, err := r.State().GetObject(table, strings.ToLower(raw))
		if err != nil {
			return "", nil, ErrInternal("resource lookup failed")
		}
		visible := obj != nil
		if o, owned := obj.(fsm.Owned); visible && owned {
			visible = r.canAccess(o.Owner())
		} else if visible {
			visible = r.isRootAdmin() // operators' resources
		}
		if !visible {
			return "", nil, ErrEntityNotFound(p.Cmd, "resourceids", raw)
		}
		ids = append(ids, obj.GetID())
	}
	if len(ids) == 0 {
		return "", nil, ErrParam("parameter resourceids must name at least one resource")
	}
	return name, ids, nil
}

func tagPairs(r *Request, needValue bool) ([]scheduler.TagPair, *Error) {
	var out []scheduler.TagPair
	seen := map[string]bool{}
	for _, m := range r.Params.Map("tags") {
		k := strings.TrimSpace(m["key"])
		if k == "" {
			return nil, ErrParam("every entry of parameter tags needs a key, as tags[0].key=name")
		}
		if needValue && m["value"] == "" {
			return nil, ErrParam("tag %q has no value: give tags[N].value", k)
		}
		if len(k) > 255 || len(m["value"]) > 255 {
			return nil, ErrParam("tag %q: keys and values are at most 255 characters", k)
		}
		if seen[strings.ToLower(k)] {
			return nil, ErrParam("tag key %q is given twice", k)
		}
		seen[strings.ToLower(k)] = true
		out = append(out, scheduler.TagPair{Key: k, Value: m["value"]})
	}
	return out, nil
}

func submitTagJob(r *Request, needValue bool, eventType string) (any, *Error) {
	name, ids, e := tagTargets(r)
	if e != nil {
		return nil, e
	}
	pairs, e := tagPairs(r, needValue)
	if e != nil {
		return nil, e
	}
	if needValue && len(pairs) == 0 {
		return nil, ErrMissingParam(r.Params.Cmd, "tags")
	}
	if needValue {
		// Refuse a key the resource already has now, rather than in the job.
		for _, id := range ids {
			for _, t := range pairs {
				if n, _ := r.State().Count(fsm.TableTags, "key", id, t.Key); n > 0 {
					return nil, ErrParam("%s %s already has a tag with key %q; delete it first", name, id, t.Key)
				}
			}
		}
	}
	tags, _ := json.Marshal(pairs)
	params := map[string]string{
		scheduler.TagParamType: name, scheduler.TagParamIDs: strings.Join(ids, ","), scheduler.TagParamTags: string(tags),
		scheduler.TagParamCustomer:  r.Params.String("customer"),
		scheduler.TagParamAccountID: r.Account.ID, scheduler.TagParamDomainID: r.Account.DomainID,
	}
	ev := r.event(eventType, name, ids[0], "%s on %s %s", eventType, name, strings.Join(ids, ","))
	jobID, e := r.submitJob(name, ids[0], params, ev)
	if e != nil {
		return nil, e
	}
	return jobAccepted(jobID, ""), nil
}

func createTags(r *Request) (any, *Error) { return submitTagJob(r, true, "CREATE_TAGS") }
func deleteTags(r *Request) (any, *Error) { return submitTagJob(r, false, "DELETE_TAGS") }

func listTags(r *Request) (any, *Error) {
	p := r.Params
	start, limit, e := p.Page(r.State().SettingInt(fsm.SettingDefaultPageSize))
	if e != nil {
		return nil, e
	}
	scope, e := r.listScope()
	if e != nil {
		return nil, e
	}
	var tags []*fsm.Tag
	var err error
	if id := strings.ToLower(p.String("resourceid")); id != "" {
		tags, err = fsm.List[fsm.Tag](r.State(), nil, fsm.TableTags, "resource", id)
	} else {
		tags, err = fsm.List[fsm.Tag](r.State(), nil, fsm.TableTags, "create")
	}
	if err != nil {
		return nil, ErrInternal("tag scan failed")
	}
	typ, key, val, cust := p.String("resourcetype"), p.String("key"), p.String("value"), p.String("customer")
	kw := strings.ToLower(p.String("keyword"))
	var out []tagResponse
	for _, t := range tags {
		if !scope(t.AccountID, t.DomainID) || (typ != "" && !strings.EqualFold(t.ResourceType, typ)) ||
			(key != "" && !strings.EqualFold(t.Key, key)) || (val != "" && t.Value != val) || (cust != "" && t.Customer != cust) ||
			(kw != "" && !strings.Contains(strings.ToLower(t.Key+" "+t.Value), kw)) {
			continue
		}
		acct, dom := r.ownerNames(t.AccountID, t.DomainID)
		out = append(out, tagResponse{Key: t.Key, Value: t.Value, ResourceType: t.ResourceType, ResourceID: t.ResourceID,
			Account: acct, DomainID: t.DomainID, Domain: dom, Customer: t.Customer})
	}
	return ListBody("tag", len(out), Paginate(out, start, limit)), nil
}
