package api

import (
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
)

// Who may see and change what:
//   - the root admin: everything;
//   - a domain admin: everything owned in its domain and the domains below;
//   - a user: what its own account owns.
// Resources are owned by an account and that account's domain.

func (r *Request) isRootAdmin() bool   { return r.Account.Type == fsm.AccountTypeAdmin }
func (r *Request) isDomainAdmin() bool { return r.Account.Type == fsm.AccountTypeDomainAdmin }

// domainPath returns the path of a domain ("ROOT/eng"), or "" if unknown.
func (r *Request) domainPath(id string) string {
	if d, _ := r.State().Domain(nil, id); d != nil {
		return d.Path
	}
	return ""
}

// inSubtree reports whether path is root or below it.
func inSubtree(path, root string) bool {
	if path == "" || root == "" {
		return false
	}
	p, rt := strings.ToLower(path), strings.ToLower(root)
	return p == rt || strings.HasPrefix(p, rt+"/")
}

// canManageDomain reports whether the caller administers the domain.
func (r *Request) canManageDomain(domainID string) bool {
	switch {
	case r.isRootAdmin():
		return true
	case r.isDomainAdmin():
		return inSubtree(r.domainPath(domainID), r.domainPath(r.Account.DomainID))
	}
	return false
}

// canAccess reports whether the caller may see and change a resource owned
// by accountID in domainID.
func (r *Request) canAccess(accountID, domainID string) bool {
	switch {
	case accountID == r.Account.ID || r.isRootAdmin():
		return true
	case r.isDomainAdmin() && r.canManageDomain(domainID):
		// A root admin's account placed inside the subtree stays out of reach.
		a, _ := r.State().Account(nil, accountID)
		return a == nil || a.Type != fsm.AccountTypeAdmin
	}
	return false
}

// ownerFilter says whether a resource owned by (accountID, domainID) is in a
// list command's scope.
type ownerFilter func(accountID, domainID string) bool

// listScope reads the scoping parameters of an account-owned list command,
// CloudStack style:
//   - account + domainid: that account (the caller must manage it);
//   - domainid: that domain, and its subdomains with isrecursive=true;
//   - listall=true: everything the caller manages (admins), else its own;
//   - nothing: the caller's own account.
func (r *Request) listScope() (ownerFilter, *Error) {
	q, e := r.listScopeQuery()
	return q.keep, e
}

// scopeQuery is a list's scope and what it is made of, so that a list can
// walk only the rows of the accounts in scope (see scopedRows).
type scopeQuery struct {
	keep ownerFilter
	// all: every account may be in scope (a root admin's listall); else
	// only rows of accounts are (each account at most once).
	all      bool
	accounts []string
}

func (r *Request) listScopeQuery() (scopeQuery, *Error) {
	q, e := r.listScopeFilter()
	if e != nil || !r.isDomainAdmin() {
		return q, e
	}
	// A domain admin's subtree may hold a root admin's account, which
	// canAccess keeps out of reach: lists must not show it either.
	allowed := map[string]bool{}
	f := q.keep
	q.keep = func(a, d string) bool {
		if !f(a, d) {
			return false
		}
		ok, seen := allowed[a]
		if !seen {
			ok = r.canAccess(a, d)
			allowed[a] = ok
		}
		return ok
	}
	kept := q.accounts[:0:0]
	for _, a := range q.accounts {
		if acct, _ := r.State().Account(nil, a); acct == nil || r.canAccess(a, acct.DomainID) {
			kept = append(kept, a)
		}
	}
	q.accounts = kept
	return q, nil
}

func (r *Request) listScopeFilter() (scopeQuery, *Error) {
	p := r.Params
	listAll, e := p.Bool("listall", false)
	if e != nil {
		return scopeQuery{}, e
	}
	recursive, e := p.Bool("isrecursive", false)
	if e != nil {
		return scopeQuery{}, e
	}
	admin := r.isRootAdmin() || r.isDomainAdmin()
	domainID := strings.ToLower(p.String("domainid"))
	if domainID != "" {
		if d, _ := r.State().Domain(nil, domainID); d == nil || !(r.canManageDomain(domainID) || (!admin && domainID == r.Account.DomainID)) {
			return scopeQuery{}, ErrEntityNotFound(p.Cmd, "domainid", p.String("domainid"))
		}
	}
	if name := p.String("account"); name != "" {
		if domainID == "" {
			domainID = r.Account.DomainID
		}
		acct := r.accountByName(domainID, name)
		if acct == nil || !r.canAccess(acct.ID, acct.DomainID) {
			return scopeQuery{}, ErrParam("unable to find account %s in domain %s, or you may not use it", name, domainID)
		}
		return scopeQuery{keep: func(a, _ string) bool { return a == acct.ID }, accounts: []string{acct.ID}}, nil
	}
	own := scopeQuery{keep: func(a, _ string) bool { return a == r.Account.ID }, accounts: []string{r.Account.ID}}
	if !admin {
		return own, nil
	}
	switch {
	case domainID != "" && recursive:
		return r.subtreeScope(r.domainPath(domainID)), nil
	case domainID != "":
		return scopeQuery{keep: func(_, d string) bool { return d == domainID }, accounts: r.accountsIn(func(d *fsm.Domain) bool { return d.ID == domainID })}, nil
	case listAll || recursive:
		if r.isRootAdmin() {
			return scopeQuery{keep: func(string, string) bool { return true }, all: true}, nil
		}
		return r.subtreeScope(r.domainPath(r.Account.DomainID)), nil
	}
	return own, nil
}

// subtreeScope is the scope of the domain at path root and the domains
// below it. Each row's domain is looked up once per request.
func (r *Request) subtreeScope(root string) scopeQuery {
	in := map[string]bool{}
	return scopeQuery{
		keep: func(_, d string) bool {
			ok, seen := in[d]
			if !seen {
				ok = inSubtree(r.domainPath(d), root)
				in[d] = ok
			}
			return ok
		},
		accounts: r.accountsIn(func(d *fsm.Domain) bool { return inSubtree(d.Path, root) }),
	}
}

// accountsIn lists the IDs of the accounts of the domains that match.
func (r *Request) accountsIn(match func(*fsm.Domain) bool) []string {
	st := r.State()
	domains, err := fsm.Rows[fsm.Domain](st, nil, fsm.TableDomains, "create")
	if err != nil {
		return nil
	}
	var out []string
	for d := range domains {
		if !match(d) {
			continue
		}
		if accts, err := fsm.Rows[fsm.Account](st, nil, fsm.TableAccounts, "domain", d.ID); err == nil {
			for a := range accts {
				out = append(out, a.ID)
			}
		}
	}
	return out
}

// accountByName finds an account by name in a domain, or nil.
func (r *Request) accountByName(domainID, name string) *fsm.Account {
	accts, err := fsm.List[fsm.Account](r.State(), nil, "accounts", "name", domainID, name)
	if err != nil || len(accts) == 0 {
		return nil
	}
	return accts[0]
}

// owner resolves who a new resource belongs to: the caller's account, or,
// for an admin, the account named by account + domainid.
func (r *Request) owner() (accountID, domainID string, e *Error) {
	p := r.Params
	name := p.String("account")
	if name == "" {
		return r.Account.ID, r.Account.DomainID, nil
	}
	domainID = strings.ToLower(p.String("domainid"))
	if domainID == "" {
		return "", "", ErrParam("parameter domainid is required with account: name the account's domain")
	}
	acct := r.accountByName(domainID, name)
	if acct == nil || !r.canAccess(acct.ID, acct.DomainID) {
		return "", "", ErrParam("unable to find account %s in domain %s, or you may not act for it", name, domainID)
	}
	return acct.ID, acct.DomainID, nil
}

// ownerNames returns the account name, domain id and domain name for a
// response's account/domainid/domain fields.
func (r *Request) ownerNames(accountID, domainID string) (account, domain string) {
	if a, _ := r.State().Account(nil, accountID); a != nil {
		account = a.Name
	}
	if d, _ := r.State().Domain(nil, domainID); d != nil {
		domain = d.Name
	}
	return account, domain
}
