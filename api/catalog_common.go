package api

import (
	"sort"
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
)

// The catalog: service and disk offerings (offerings.go), templates and
// ISOs (templates.go, catalog_images.go) and the built-in OS types
// (ostypes.go). Offerings are the root admin's and may be limited to some
// domains and zones; templates and ISOs belong to accounts. Every change
// commits an event with it.

// Resource types of the catalog's events.
const (
	resServiceOffering = "ServiceOffering"
	resDiskOffering    = "DiskOffering"
	resTemplate        = "Template"
	resISO             = "Iso"
)

// catalogZonesTable is the zones table's name (the zone commands predate
// registered table constants).
const catalogZonesTable = "zones"

// catalogExists is an op that makes a commit fail unless the row id of
// table still exists, whatever changed in it since it was read: offerings
// list domains and zones that the transaction applier cannot check itself.
func catalogExists(table, id string) fsm.TxnOp {
	return fsm.TxnOp{Verb: fsm.VerbCheck, Table: table, ID: id}
}

// catalogScopeList reads a list of domain or zone IDs (the domainid and
// zoneid parameters of offerings). Every ID must name an existing row, or
// the answer is CloudStack's "entity does not exist" error. word, when not
// empty, is the value that means "no limit" ("public" for domains, "all"
// for zones, as the update commands take them): it gives set with no IDs.
// set is false when the parameter was not sent.
func catalogScopeList(r *Request, param, table, word string) (ids []string, set bool, e *Error) {
	p := r.Params
	if !p.Has(param) {
		return nil, false, nil
	}
	values := p.List(param)
	if len(values) == 0 {
		return nil, true, nil
	}
	if word != "" && len(values) == 1 && strings.EqualFold(values[0], word) {
		return nil, true, nil
	}
	seen := map[string]bool{}
	for _, v := range values {
		id := strings.ToLower(v)
		if !IsUUID(v) {
			return nil, false, ErrEntityNotFound(p.Cmd, param, v)
		}
		obj, err := r.State().GetObject(table, id)
		if err != nil {
			return nil, false, ErrInternal(table + " lookup failed")
		}
		if obj == nil {
			return nil, false, ErrEntityNotFound(p.Cmd, param, v)
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids, true, nil
}

// catalogScopeChecks returns the ops that keep an offering's domains and
// zones from vanishing before the commit lands.
func catalogScopeChecks(domainIDs, zoneIDs []string) []fsm.TxnOp {
	var ops []fsm.TxnOp
	for _, id := range domainIDs {
		ops = append(ops, catalogExists(fsm.TableDomains, id))
	}
	for _, id := range zoneIDs {
		ops = append(ops, catalogExists(catalogZonesTable, id))
	}
	return ops
}

// offeringUsable reports whether the caller may see and use an offering
// limited to domainIDs: the root admin always; everyone when it is public
// (no domains); else accounts of a listed domain or of a domain below one,
// and domain admins also for offerings of domains below their own.
func (r *Request) offeringUsable(domainIDs []string) bool {
	if r.isRootAdmin() || len(domainIDs) == 0 {
		return true
	}
	mine := r.domainPath(r.Account.DomainID)
	for _, id := range domainIDs {
		p := r.domainPath(id)
		if inSubtree(mine, p) || (r.isDomainAdmin() && inSubtree(p, mine)) {
			return true
		}
	}
	return false
}

// offeringScopeFilter reads the domainid, isrecursive and zoneid filters
// of the offering list commands and returns a predicate over an offering's
// domains and zones. An unknown or unreachable domain or zone is the
// "entity does not exist" error.
func offeringScopeFilter(r *Request) (func(domainIDs, zoneIDs []string) bool, *Error) {
	p := r.Params
	recursive, e := p.Bool("isrecursive", false)
	if e != nil {
		return nil, e
	}
	domainID, zoneID := strings.ToLower(p.String("domainid")), strings.ToLower(p.String("zoneid"))
	domainPath := ""
	if domainID != "" {
		d, _ := r.State().Domain(nil, domainID)
		if d == nil || !(r.canManageDomain(domainID) || inSubtree(r.domainPath(r.Account.DomainID), d.Path)) {
			return nil, ErrEntityNotFound(p.Cmd, "domainid", p.String("domainid"))
		}
		domainPath = d.Path
	}
	if zoneID != "" {
		if z, _ := r.State().Zone(nil, zoneID); z == nil {
			return nil, ErrEntityNotFound(p.Cmd, "zoneid", p.String("zoneid"))
		}
	}
	return func(domainIDs, zoneIDs []string) bool {
		if zoneID != "" && len(zoneIDs) > 0 && !catalogContainsFold(zoneIDs, zoneID) {
			return false
		}
		if domainID == "" {
			return true
		}
		for _, d := range domainIDs {
			if d == domainID || (recursive && inSubtree(r.domainPath(d), domainPath)) {
				return true
			}
		}
		return false
	}, nil
}

// catalogScopeNames renders an offering's domains or zones the way
// CloudStack does: IDs and names, each comma separated; "" when public.
func catalogScopeNames(r *Request, table string, ids []string) (idList, names string) {
	if len(ids) == 0 {
		return "", ""
	}
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		name := id
		switch table {
		case fsm.TableDomains:
			if d, _ := r.State().Domain(nil, id); d != nil {
				name = d.Name
			}
		default:
			if z, _ := r.State().Zone(nil, id); z != nil {
				name = z.Name
			}
		}
		out = append(out, name)
	}
	return strings.Join(ids, ","), strings.Join(out, ",")
}

// catalogContainsFold reports whether list holds s, ignoring case.
func catalogContainsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// catalogName reads a name-like parameter that must not be blank when
// sent; required ones are already known to be present.
func catalogName(p Params, param string) (string, *Error) {
	v := strings.TrimSpace(p.String(param))
	if v == "" {
		return "", ErrParam("parameter %s must not be blank", param)
	}
	return v, nil
}

// catalogPositive reads an integer parameter that must be at least min
// when sent; def when it was not.
func catalogPositive(p Params, param string, min, def int) (int, *Error) {
	n, e := p.Int(param, def)
	if e != nil {
		return 0, e
	}
	if catalogGiven(p, param) && n < min {
		return 0, ErrParam("invalid value %d for parameter %s: it must be %d or more", n, param, min)
	}
	return n, nil
}

// catalogGiven reports whether a parameter was sent with a value; optional
// parameters sent empty count as not sent, as Params.Validate treats them.
func catalogGiven(p Params, param string) bool { return strings.TrimSpace(p.String(param)) != "" }

// catalogChoice reads a parameter that takes one of a few values, in any
// case; it answers the canonical spelling, or def when not sent.
func catalogChoice(p Params, param, def string, choices ...string) (string, *Error) {
	v := strings.TrimSpace(p.String(param))
	if v == "" {
		return def, nil
	}
	for _, c := range choices {
		if strings.EqualFold(v, c) {
			return c, nil
		}
	}
	return "", ErrParam("invalid value %q for parameter %s: use one of %s", v, param, strings.Join(choices, ", "))
}

// catalogMatch reports whether kw (any case) is empty or found in one of
// the fields, ignoring case.
func catalogMatch(kw string, fields ...string) bool {
	kw = strings.ToLower(strings.TrimSpace(kw))
	if kw == "" {
		return true
	}
	for _, f := range fields {
		if strings.Contains(strings.ToLower(f), kw) {
			return true
		}
	}
	return false
}

// catalogPage answers a list command with the page asked for of items.
func catalogPage[T any](r *Request, item string, items []T) (any, *Error) {
	start, limit, e := r.Params.Page(r.State().SettingInt(fsm.SettingDefaultPageSize))
	if e != nil {
		return nil, e
	}
	return ListBody(item, len(items), Paginate(items, start, limit)), nil
}

// catalogSortByKey orders rows by their sort key, keeping the creation order of
// rows with the same key, as CloudStack orders catalog lists.
func catalogSortByKey[T any](rows []*T, key func(*T) int) {
	sort.SliceStable(rows, func(i, j int) bool { return key(rows[i]) < key(rows[j]) })
}

// catalogLabels applies an update's name, displaytext and sortkey.
func catalogLabels(p Params, name, text *string, sortKey *int) *Error {
	var e *Error
	if p.Has("name") {
		if *name, e = catalogName(p, "name"); e != nil {
			return e
		}
	}
	if p.Has("displaytext") {
		if *text, e = catalogName(p, "displaytext"); e != nil {
			return e
		}
	}
	*sortKey, e = p.Int("sortkey", *sortKey)
	return e
}

// catalogScopeNew reads a create's domainid and zoneid limits.
func catalogScopeNew(r *Request) (domainIDs, zoneIDs []string, e *Error) {
	if domainIDs, _, e = catalogScopeList(r, "domainid", fsm.TableDomains, ""); e != nil {
		return nil, nil, e
	}
	if zoneIDs, _, e = catalogScopeList(r, "zoneid", catalogZonesTable, ""); e != nil {
		return nil, nil, e
	}
	return domainIDs, zoneIDs, nil
}

// catalogScopeUpdate applies an update's domainid ("public" lifts the
// limit) and zoneid ("all" lifts it) where they are given.
func catalogScopeUpdate(r *Request, domainIDs, zoneIDs *[]string) *Error {
	if ids, set, e := catalogScopeList(r, "domainid", fsm.TableDomains, "public"); e != nil {
		return e
	} else if set {
		*domainIDs = ids
	}
	if ids, set, e := catalogScopeList(r, "zoneid", catalogZonesTable, "all"); e != nil {
		return e
	} else if set {
		*zoneIDs = ids
	}
	return nil
}
