package api

import (
	"strings"
	"time"

	"github.com/stratus-cloud/stratus/fsm"
)

type eventResponse struct {
	ID           string `json:"id"`
	Username     string `json:"username,omitempty"`
	Type         string `json:"type"`
	Level        string `json:"level"`
	Description  string `json:"description"`
	Account      string `json:"account,omitempty"`
	DomainID     string `json:"domainid"`
	Domain       string `json:"domain,omitempty"`
	Created      string `json:"created"`
	State        string `json:"state"`
	ResourceType string `json:"resourcetype,omitempty"`
	ResourceID   string `json:"resourceid,omitempty"`
}

var eventFields = []ResponseField{
	{Name: "id", Type: "string", Description: "Event ID."},
	{Name: "username", Type: "string", Description: "User who caused the event."},
	{Name: "type", Type: "string", Description: "Event type, e.g. ZONE.CREATE."},
	{Name: "level", Type: "string", Description: "INFO, WARN or ERROR."},
	{Name: "description", Type: "string", Description: "What happened."},
	{Name: "account", Type: "string", Description: "Account of the user."},
	{Name: "domainid", Type: "string", Description: "Domain of that account."},
	{Name: "domain", Type: "string", Description: "Name of that domain."},
	{Name: "created", Type: "date", Description: "When it happened."},
	{Name: "state", Type: "string", Description: "Scheduled, Started or Completed."},
	{Name: "resourcetype", Type: "string", Description: "Type of the resource concerned."},
	{Name: "resourceid", Type: "string", Description: "ID of the resource concerned."},
}

func init() {
	registerCommands(func(*Server) []*Command {
		return []*Command{{
			Name: "listEvents", Description: "Lists events: who did what, to which resource, and when; newest first.",
			Access: AccessUser, ObjectName: "event", Response: eventFields,
			Params: withPaging(scopeParams(
				ParamSpec{Name: "id", Type: "uuid", Description: "Only the event with this ID."},
				ParamSpec{Name: "type", Type: "string", Description: "Only events of this type."},
				ParamSpec{Name: "level", Type: "string", Description: "Only events of this level."},
				ParamSpec{Name: "resourceid", Type: "string", Description: "Only events about this resource."},
				ParamSpec{Name: "resourcetype", Type: "string", Description: "Only events about this type of resource."},
				ParamSpec{Name: "startdate", Type: "date", Description: "Only events at or after this time."},
				ParamSpec{Name: "enddate", Type: "date", Description: "Only events at or before this time."},
			)...),
			Handler: listEvents,
		}}
	})
}

func listEvents(r *Request) (any, *Error) {
	p := r.Params
	pg, e := pageParams[*fsm.Event](r)
	if e != nil {
		return nil, e
	}
	q, e := r.listScopeQuery()
	if e != nil {
		return nil, e
	}
	scope := q.keep
	var from, to time.Time
	for name, dst := range map[string]*time.Time{"startdate": &from, "enddate": &to} {
		if p.Has(name) {
			t, err := ParseDate(p.String(name))
			if err != nil {
				return nil, ErrInvalidParamValue(p.Cmd, name, p.String(name))
			}
			*dst = t
		}
	}
	if p.Has("id") {
		if _, e := lookup(r, fsm.TableEvents, "id", func(ev *fsm.Event) bool { return scope(ev.AccountID, ev.DomainID) }); e != nil {
			return nil, e
		}
	}
	// Newest first, as CloudStack lists them.
	events, err := scopedRows[fsm.Event](r, q, fsm.TableEvents, true)
	if err != nil {
		return nil, ErrInternal("event scan failed")
	}
	id, typ, level := strings.ToLower(p.String("id")), p.String("type"), p.String("level")
	rid, rtype := strings.ToLower(p.String("resourceid")), p.String("resourcetype")
	words := newKeywordMatcher(strings.ToLower(p.String("keyword")))
	for ev := range events {
		if !scope(ev.AccountID, ev.DomainID) || (id != "" && ev.ID != id) || (typ != "" && !strings.EqualFold(ev.Type, typ)) ||
			(level != "" && !strings.EqualFold(ev.Level, level)) || (rid != "" && ev.ResourceID != rid) ||
			(rtype != "" && !strings.EqualFold(ev.ResourceType, rtype)) || (!from.IsZero() && ev.Created.Before(from)) ||
			(!to.IsZero() && ev.Created.After(to)) || (words.kw != "" && !words.match(ev.Description, ev.Type)) {
			continue
		}
		pg.add(ev)
	}
	out := make([]eventResponse, 0, len(pg.page))
	for _, ev := range pg.page {
		acct, dom := r.ownerNames(ev.AccountID, ev.DomainID)
		er := eventResponse{ID: ev.ID, Type: ev.Type, Level: ev.Level, Description: ev.Description, Account: acct,
			DomainID: ev.DomainID, Domain: dom, Created: FormatTime(ev.Created), State: ev.State,
			ResourceType: ev.ResourceType, ResourceID: ev.ResourceID}
		if u, _ := r.State().User(nil, ev.UserID); u != nil {
			er.Username = u.Username
		}
		out = append(out, er)
	}
	return ListBody("event", pg.total, out), nil
}
