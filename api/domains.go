package api

import (
	"sort"
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
)

// Domains form a tree under ROOT. A domain's path names it from the root
// ("ROOT/eng/web"); its level is the number of steps below ROOT. The root
// admin manages every domain, a domain admin its own domain and the ones
// below it, and a user only sees its own domain.

type domainResponse struct {
	ID               string `json:"id"`
	Name             string `json:"name"`
	Level            int    `json:"level"`
	ParentDomainID   string `json:"parentdomainid,omitempty"`
	ParentDomainName string `json:"parentdomainname,omitempty"`
	HasChild         bool   `json:"haschild"`
	Path             string `json:"path"`
	NetworkDomain    string `json:"networkdomain,omitempty"`
	State            string `json:"state"`
	Created          string `json:"created,omitempty"`
}

var domainFields = withJobFields(
	ResponseField{Name: "id", Type: "string", Description: "Domain ID."},
	ResponseField{Name: "name", Type: "string", Description: "Domain name."},
	ResponseField{Name: "level", Type: "integer", Description: "Depth below ROOT; ROOT is 0."},
	ResponseField{Name: "parentdomainid", Type: "string", Description: "ID of the parent domain."},
	ResponseField{Name: "parentdomainname", Type: "string", Description: "Name of the parent domain."},
	ResponseField{Name: "haschild", Type: "boolean", Description: "Whether the domain has subdomains."},
	ResponseField{Name: "path", Type: "string", Description: "Names from ROOT down to the domain, joined by slashes."},
	ResponseField{Name: "networkdomain", Type: "string", Description: "DNS suffix of the domain's guest networks."},
	ResponseField{Name: "state", Type: "string", Description: "Active."},
	ResponseField{Name: "created", Type: "date", Description: "When the domain was created."},
)

func domainLevel(path string) int { return strings.Count(path, "/") }

func toDomainResponse(st *fsm.Store, d *fsm.Domain) domainResponse {
	out := domainResponse{
		ID: d.ID, Name: d.Name, Level: domainLevel(d.Path), ParentDomainID: d.ParentID, Path: d.Path,
		NetworkDomain: d.NetworkDomain, State: "Active", Created: FormatTime(d.Created),
	}
	if d.ParentID != "" {
		if p, _ := st.Domain(nil, d.ParentID); p != nil {
			out.ParentDomainName = p.Name
		}
	}
	if n, _ := st.Count(fsm.TableDomains, "parent", d.ID); n > 0 {
		out.HasChild = true
	}
	return out
}

func init() {
	registerCommands(func(*Server) []*Command {
		return []*Command{
			{
				Name: "createDomain", Description: "Creates a subdomain.", Write: true, Access: AccessDomainAdmin,
				ObjectName: "domain", Related: "listDomains,listDomainChildren", Response: domainFields,
				Params: []ParamSpec{
					{Name: "name", Type: "string", Required: true, Description: "Name of the new domain; unique among its siblings, without slashes."},
					{Name: "parentdomainid", Type: "uuid", Description: "Parent of the new domain; the caller's own domain (ROOT for the root admin) when absent.", Related: "listDomains"},
					{Name: "networkdomain", Type: "string", Description: "DNS suffix for the domain's guest networks."},
					{Name: "domainid", Type: "string", Description: "UUID to give the new domain, e.g. when copying it from another cloud."},
				},
				Handler: createDomain,
			},
			{
				Name: "listDomains", Description: "Lists domains the caller can see.", Access: AccessUser,
				ObjectName: "domain", Related: "listDomainChildren", Response: domainFields,
				Params: withPaging(
					ParamSpec{Name: "id", Type: "uuid", Description: "Only the domain with this ID.", Related: "listDomains"},
					ParamSpec{Name: "name", Type: "string", Description: "Only domains with this name."},
					ParamSpec{Name: "level", Type: "integer", Description: "Only domains at this depth below ROOT."},
					ParamSpec{Name: "listall", Type: "boolean", Description: "For domain admins: the whole subtree instead of only their own domain."},
					ParamSpec{Name: "details", Type: "list", Description: "Accepted for compatibility; every domain comes with all its details."},
				),
				Handler: listDomains,
			},
			{
				Name: "listDomainChildren", Description: "Lists the subdomains of a domain.", Access: AccessDomainAdmin,
				ObjectName: "domain", Related: "listDomains", Response: domainFields,
				Params: withPaging(
					ParamSpec{Name: "id", Type: "uuid", Description: "The domain whose children to list; the caller's own domain when absent.", Related: "listDomains"},
					ParamSpec{Name: "name", Type: "string", Description: "Only children with this name."},
					ParamSpec{Name: "isrecursive", Type: "boolean", Description: "Every domain below, not just the direct children."},
					ParamSpec{Name: "listall", Type: "boolean", Description: "Same as isrecursive."},
				),
				Handler: listDomainChildren,
			},
			{
				Name: "updateDomain", Description: "Renames a domain or changes its network domain; a rename changes the paths of its whole subtree.",
				Write: true, Access: AccessDomainAdmin, ObjectName: "domain", Related: "listDomains", Response: domainFields,
				Params: []ParamSpec{
					{Name: "id", Type: "uuid", Required: true, Description: "ID of the domain.", Related: "listDomains"},
					{Name: "name", Type: "string", Description: "New name; ROOT cannot be renamed."},
					{Name: "networkdomain", Type: "string", Description: "New DNS suffix for the domain's guest networks."},
				},
				Handler: updateDomain,
			},
			{
				Name: "deleteDomain", Description: "Deletes a domain. With cleanup, also deletes its subdomains and their accounts and users, as long as nothing else uses them.",
				Write: true, Async: true, Access: AccessDomainAdmin, Response: successResponse,
				Params: []ParamSpec{
					{Name: "id", Type: "uuid", Required: true, Description: "ID of the domain.", Related: "listDomains"},
					{Name: "cleanup", Type: "boolean", Description: "Also delete everything the domain holds: subdomains, accounts and users."},
				},
				Handler: deleteDomain,
			},
		}
	})
}

// canSeeDomain reports whether the caller may see a domain: its own, or for
// admins any domain they manage.
func (r *Request) canSeeDomain(d *fsm.Domain) bool {
	return d.ID == r.Account.DomainID || r.canManageDomain(d.ID)
}

// lookupDomain resolves a uuid parameter to a domain the caller can see.
func lookupDomain(r *Request, param string) (*fsm.Domain, *Error) {
	return lookup(r, fsm.TableDomains, param, r.canSeeDomain)
}

// managedDomain resolves a uuid parameter to a domain the caller manages; a
// domain it cannot see is "entity does not exist", one it can see but not
// manage (a user's own domain) is permission denied.
func managedDomain(r *Request, param string) (*fsm.Domain, *Error) {
	d, e := lookupDomain(r, param)
	if e != nil {
		return nil, e
	}
	if !r.canManageDomain(d.ID) {
		return nil, ErrPermissionDenied("you may not change domain " + d.Path)
	}
	return d, nil
}

// validDomainName checks a new domain name: not blank, no slash (the path
// separator).
func validDomainName(name string) *Error {
	switch {
	case strings.TrimSpace(name) == "":
		return ErrParam("parameter name must not be blank")
	case strings.Contains(name, "/"):
		return ErrParam("a domain name may not contain a slash: %q", name)
	case len(name) > 255:
		return ErrParam("a domain name is at most 255 characters")
	}
	return nil
}

func createDomain(r *Request) (any, *Error) {
	p := r.Params
	name := strings.TrimSpace(p.String("name"))
	if e := validDomainName(name); e != nil {
		return nil, e
	}
	var parent *fsm.Domain
	if p.Has("parentdomainid") {
		d, e := managedDomain(r, "parentdomainid")
		if e != nil {
			return nil, e
		}
		parent = d
	} else if parent, _ = r.State().Domain(nil, r.Account.DomainID); parent == nil {
		return nil, ErrInternal("the caller's domain cannot be read")
	}
	id := newID()
	if v := p.String("domainid"); v != "" {
		if !IsUUID(v) {
			return nil, ErrInvalidParamValue(p.Cmd, "domainid", v)
		}
		id = strings.ToLower(v)
	}
	d := &fsm.Domain{
		ID: id, Name: name, Path: parent.Path + "/" + name, ParentID: parent.ID,
		NetworkDomain: p.String("networkdomain"), Created: r.srv.now().UTC(),
	}
	if existing, _ := fsm.List[fsm.Domain](r.State(), nil, fsm.TableDomains, "path", d.Path); len(existing) > 0 {
		return nil, ErrParam("domain %s already exists (id %s)", existing[0].Path, existing[0].ID)
	}
	// Check the parent: a rename of it (or above it) committed meanwhile
	// would leave the new domain with a stale path.
	e := r.commit(fsm.Check(fsm.TableDomains, parent), fsm.Create(fsm.TableDomains, d),
		r.event("DOMAIN.CREATE", "Domain", d.ID, "created domain %s", d.Path))
	if e != nil {
		return nil, e
	}
	return domainBody(r, d.ID)
}

func domainBody(r *Request, id string) (any, *Error) {
	d, _ := r.State().Domain(nil, id)
	if d == nil {
		return nil, ErrInternal("domain " + id + " was committed but cannot be read back")
	}
	return map[string]any{"domain": toDomainResponse(r.State(), d)}, nil
}

// domainsByPath returns every domain sorted by path, so a parent comes
// before its children.
func domainsByPath(st *fsm.Store) ([]*fsm.Domain, *Error) {
	all, err := st.Domains(nil)
	if err != nil {
		return nil, ErrInternal("domain scan failed")
	}
	sort.Slice(all, func(i, j int) bool { return strings.ToLower(all[i].Path) < strings.ToLower(all[j].Path) })
	return all, nil
}

// subtree returns root and every domain below it, parents first.
func subtree(st *fsm.Store, root *fsm.Domain) ([]*fsm.Domain, *Error) {
	all, e := domainsByPath(st)
	if e != nil {
		return nil, e
	}
	var out []*fsm.Domain
	for _, d := range all {
		if inSubtree(d.Path, root.Path) {
			out = append(out, d)
		}
	}
	return out, nil
}

func listDomains(r *Request) (any, *Error) {
	p := r.Params
	start, limit, e := p.Page(r.State().SettingInt(fsm.SettingDefaultPageSize))
	if e != nil {
		return nil, e
	}
	listAll, e := p.Bool("listall", false)
	if e != nil {
		return nil, e
	}
	level := -1
	if p.Has("level") {
		if level, e = p.Int("level", -1); e != nil {
			return nil, e
		}
	}
	var domains []*fsm.Domain
	switch {
	case p.Has("id"):
		d, e := lookupDomain(r, "id")
		if e != nil {
			return nil, e
		}
		domains = []*fsm.Domain{d}
	case r.isRootAdmin():
		if domains, e = domainsByPath(r.State()); e != nil {
			return nil, e
		}
	default:
		own, _ := r.State().Domain(nil, r.Account.DomainID)
		if own == nil {
			return nil, ErrInternal("the caller's domain cannot be read")
		}
		domains = []*fsm.Domain{own}
		if listAll && r.isDomainAdmin() {
			if domains, e = subtree(r.State(), own); e != nil {
				return nil, e
			}
		}
	}
	return domainList(r, domains, start, limit, level)
}

// domainList filters domains by name, keyword and level and pages them.
func domainList(r *Request, domains []*fsm.Domain, start, limit, level int) (any, *Error) {
	name, kw := r.Params.String("name"), strings.ToLower(r.Params.String("keyword"))
	var out []domainResponse
	for _, d := range domains {
		if (name != "" && !strings.EqualFold(d.Name, name)) || (level >= 0 && domainLevel(d.Path) != level) ||
			(kw != "" && !strings.Contains(strings.ToLower(d.Name), kw)) {
			continue
		}
		out = append(out, toDomainResponse(r.State(), d))
	}
	return ListBody("domain", len(out), Paginate(out, start, limit)), nil
}

func listDomainChildren(r *Request) (any, *Error) {
	p := r.Params
	start, limit, e := p.Page(r.State().SettingInt(fsm.SettingDefaultPageSize))
	if e != nil {
		return nil, e
	}
	recursive, e := p.Bool("isrecursive", false)
	if e != nil {
		return nil, e
	}
	listAll, e := p.Bool("listall", false)
	if e != nil {
		return nil, e
	}
	var parent *fsm.Domain
	if p.Has("id") {
		if parent, e = managedDomain(r, "id"); e != nil {
			return nil, e
		}
	} else if parent, _ = r.State().Domain(nil, r.Account.DomainID); parent == nil {
		return nil, ErrInternal("the caller's domain cannot be read")
	}
	var children []*fsm.Domain
	if recursive || listAll {
		all, e := subtree(r.State(), parent)
		if e != nil {
			return nil, e
		}
		children = all[1:] // without the parent itself
	} else {
		direct, err := fsm.List[fsm.Domain](r.State(), nil, fsm.TableDomains, "parent", parent.ID)
		if err != nil {
			return nil, ErrInternal("domain scan failed")
		}
		sort.Slice(direct, func(i, j int) bool { return strings.ToLower(direct[i].Path) < strings.ToLower(direct[j].Path) })
		children = direct
	}
	return domainList(r, children, start, limit, -1)
}

func updateDomain(r *Request) (any, *Error) {
	p := r.Params
	d, e := managedDomain(r, "id")
	if e != nil {
		return nil, e
	}
	c := *d
	var ops []fsm.TxnOp
	if p.Has("networkdomain") {
		c.NetworkDomain = p.String("networkdomain")
	}
	if name := strings.TrimSpace(p.String("name")); name != "" && name != d.Name {
		if d.ParentID == "" {
			return nil, ErrParam("the ROOT domain cannot be renamed")
		}
		if d.ID == r.Account.DomainID {
			return nil, ErrPermissionDenied("you may not rename your own domain")
		}
		if e := validDomainName(name); e != nil {
			return nil, e
		}
		oldPath := d.Path
		c.Name = name
		c.Path = oldPath[:strings.LastIndex(oldPath, "/")+1] + name
		if !strings.EqualFold(c.Path, oldPath) {
			if clash, _ := fsm.List[fsm.Domain](r.State(), nil, fsm.TableDomains, "path", c.Path); len(clash) > 0 {
				return nil, ErrParam("domain %s already exists (id %s)", clash[0].Path, clash[0].ID)
			}
		}
		// Every domain below gets the new prefix, in the same commit, each
		// at the index it was read at.
		below, e := subtree(r.State(), d)
		if e != nil {
			return nil, e
		}
		for _, sub := range below[1:] {
			sc := *sub
			sc.Path = c.Path + sub.Path[len(oldPath):]
			ops = append(ops, fsm.Update(fsm.TableDomains, &sc))
		}
	}
	ops = append([]fsm.TxnOp{fsm.Update(fsm.TableDomains, &c)}, ops...)
	ops = append(ops, r.event("DOMAIN.UPDATE", "Domain", d.ID, "updated domain %s", c.Path))
	if e := r.commit(ops...); e != nil {
		return nil, e
	}
	return domainBody(r, d.ID)
}

func deleteDomain(r *Request) (any, *Error) {
	d, e := managedDomain(r, "id")
	if e != nil {
		return nil, e
	}
	cleanup, e := r.Params.Bool("cleanup", false)
	if e != nil {
		return nil, e
	}
	if d.ParentID == "" {
		return nil, ErrParam("the ROOT domain cannot be deleted")
	}
	if inSubtree(r.domainPath(r.Account.DomainID), d.Path) {
		return nil, ErrPermissionDenied("you may not delete your own domain or a domain above it")
	}
	doomed := []*fsm.Domain{d}
	if cleanup {
		if doomed, e = subtree(r.State(), d); e != nil {
			return nil, e
		}
	}
	var ops []fsm.TxnOp
	if cleanup {
		for _, sub := range doomed {
			accts, err := fsm.List[fsm.Account](r.State(), nil, fsm.TableAccounts, "domain", sub.ID)
			if err != nil {
				return nil, ErrInternal("account scan failed")
			}
			for _, a := range accts {
				more, e := accountDeleteOps(r, a)
				if e != nil {
					return nil, e
				}
				ops = append(ops, more...)
			}
		}
	}
	// Children before parents: the reverse of path order.
	for i := len(doomed) - 1; i >= 0; i-- {
		ops = append(ops, tagDeleteOps(r, doomed[i].ID)...)
		ops = append(ops, fsm.Delete(fsm.TableDomains, doomed[i].ID))
	}
	return r.finishedJob("Domain", d.ID, successBody(), ops, "DOMAIN.DELETE", "deleted domain %s", d.Path)
}

// tagDeleteOps removes the tags on a resource that is being deleted.
func tagDeleteOps(r *Request, resourceID string) []fsm.TxnOp {
	tags, _ := fsm.List[fsm.Tag](r.State(), nil, fsm.TableTags, "resource", resourceID)
	ops := make([]fsm.TxnOp, 0, len(tags))
	for _, t := range tags {
		op := fsm.Delete(fsm.TableTags, t.ID)
		op.IfExists = true
		ops = append(ops, op)
	}
	return ops
}
