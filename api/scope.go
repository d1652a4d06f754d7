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
	f, e := r.listScopeFilter()
	if e != nil || !r.isDomainAdmin() {
		return f, e
	}
	// A domain admin's subtree may hold a root admin's account, which
	// canAccess keeps out of reach: lists must not show it either.
	allowed := map[string]bool{}
	return func(a, d string) bool {
		if !f(a, d) {
			return false
		}
		ok, seen := allowed[a]
		if !seen {
			ok = r.canAccess(a, d)
			allowed[a] = ok
		}
		return ok
	}, nil
}

func (r *Request) listScopeFilter() (ownerFilter, *Error) {
	p := r.Params
	listAll, e := p.Bool("listall", false)
	if e != nil {
		return nil, e
	}
	recursive, e := p.Bool("isrecursive", false)
	if e != nil {
		return nil, e
	}
	admin := r.isRootAdmin() || r.isDomainAdmin()
	domainID := strings.ToLower(p.String("domainid"))
	if domainID != "" {
		if d, _ := r.State().Domain(nil, domainID); d == nil || !(r.canManageDomain(domainID) || (!admin && domainID == r.Account.DomainID)) {
			return nil, ErrEntityNotFound(p.Cmd, "domainid", p.String("domainid"))
		}
	}
	if name := p.String("account"); name != "" {
		if domainID == "" {
			domainID = r.Account.DomainID
		}
		acct := r.accountByName(domainID, name)
		if acct == nil || !r.canAccess(acct.ID, acct.DomainID) {
			return nil, ErrParam("unable to find account %s in domain %s, or you may not use it", name, domainID)
		}
		return func(a, _ string) bool { return a == acct.ID }, nil
	}
	if !admin {
		return func(a, _ string) bool { return a == r.Account.ID }, nil
	}
	switch {
	case domainID != "" && recursive:
		root := r.domainPath(domainID)
		return func(_, d string) bool { return inSubtree(r.domainPath(d), root) }, nil
	case domainID != "":
		return func(_, d string) bool { return d == domainID }, nil
	case listAll || recursive:
		if r.isRootAdmin() {
			return func(string, string) bool { return true }, nil
		}
		root := r.domainPath(r.Account.DomainID)
		return func(_, d string) bool { return inSubtree(r.domainPath(d), root) }, nil
	}
	return func(a, _ string) bool { return a == r.Account.ID }, nil
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
