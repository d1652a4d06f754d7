package api

import (
	"fmt"
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
)

// Accounts own resources and group users. Each account has a role; its type
// (accounttype 0 user, 1 root admin, 2 domain admin) follows the role's
// type. createAccount makes the account together with its first user.

type accountResponse struct {
	ID            string         `json:"id"`
	Name          string         `json:"name"`
	AccountType   int            `json:"accounttype"`
	RoleID        string         `json:"roleid,omitempty"`
	RoleName      string         `json:"rolename,omitempty"`
	RoleType      string         `json:"roletype,omitempty"`
	DomainID      string         `json:"domainid"`
	Domain        string         `json:"domain,omitempty"`
	DomainPath    string         `json:"domainpath,omitempty"`
	State         string         `json:"state"`
	NetworkDomain string         `json:"networkdomain,omitempty"`
	Users         []userResponse `json:"user"`
	Created       string         `json:"created,omitempty"`
	IsDefault     bool           `json:"isdefault"`
}

var accountFields = withJobFields(
	ResponseField{Name: "id", Type: "string", Description: "Account ID."},
	ResponseField{Name: "name", Type: "string", Description: "Account name."},
	ResponseField{Name: "accounttype", Type: "integer", Description: "0 user, 1 root admin, 2 domain admin."},
	ResponseField{Name: "roleid", Type: "string", Description: "ID of the account's role."},
	ResponseField{Name: "rolename", Type: "string", Description: "Name of the account's role."},
	ResponseField{Name: "roletype", Type: "string", Description: "Type of the account's role: Admin, DomainAdmin or User."},
	ResponseField{Name: "domainid", Type: "string", Description: "ID of the account's domain."},
	ResponseField{Name: "domain", Type: "string", Description: "Name of the account's domain."},
	ResponseField{Name: "domainpath", Type: "string", Description: "Path of the account's domain."},
	ResponseField{Name: "state", Type: "string", Description: "enabled, disabled or locked."},
	ResponseField{Name: "networkdomain", Type: "string", Description: "DNS suffix of the account's guest networks."},
	ResponseField{Name: "user", Type: "list", Description: "The account's users.", Response: userFields},
	ResponseField{Name: "created", Type: "date", Description: "When the account was created."},
	ResponseField{Name: "isdefault", Type: "boolean", Description: "True for the admin account made when the cloud was first started."},
)

func init() {
	registerCommands(func(*Server) []*Command {
		target := []ParamSpec{
			{Name: "id", Type: "uuid", Description: "ID of the account; or give account and domainid.", Related: "listAccounts"},
			{Name: "account", Type: "string", Description: "Name of the account, with domainid."},
			{Name: "domainid", Type: "uuid", Description: "Domain of the named account; the caller's own when absent.", Related: "listDomains"},
		}
		return []*Command{
			{
				Name: "createAccount", Description: "Creates an account and its first user.", Write: true, Access: AccessDomainAdmin,
				ObjectName: "account", Related: "listAccounts", Response: accountFields,
				Params: append(userDetailParams(true),
					ParamSpec{Name: "account", Type: "string", Description: "Name of the account; the username when absent."},
					ParamSpec{Name: "accounttype", Type: "integer", Description: "0 user, 1 root admin, 2 domain admin; gives the built-in role of that type. Give this or roleid."},
					ParamSpec{Name: "roleid", Type: "uuid", Description: "Role of the account. Give this or accounttype.", Related: "listRoles"},
					ParamSpec{Name: "domainid", Type: "uuid", Description: "Domain of the account; the caller's own when absent.", Related: "listDomains"},
					ParamSpec{Name: "networkdomain", Type: "string", Description: "DNS suffix for the account's guest networks."},
					ParamSpec{Name: "accountid", Type: "string", Description: "UUID to give the account, e.g. when copying it from another cloud."},
					ParamSpec{Name: "userid", Type: "string", Description: "UUID to give the first user."},
				),
				Handler: createAccount,
			},
			{
				Name: "listAccounts", Description: "Lists accounts with their users.", Access: AccessUser,
				ObjectName: "account", Related: "createAccount", Response: accountFields,
				Params: withPaging(
					ParamSpec{Name: "id", Type: "uuid", Description: "Only the account with this ID.", Related: "listAccounts"},
					ParamSpec{Name: "name", Type: "string", Description: "Only accounts with this name."},
					ParamSpec{Name: "accounttype", Type: "integer", Description: "Only accounts of this type."},
					ParamSpec{Name: "state", Type: "string", Description: "Only accounts in this state."},
					ParamSpec{Name: "domainid", Type: "uuid", Description: "Only accounts of this domain.", Related: "listDomains"},
					ParamSpec{Name: "isrecursive", Type: "boolean", Description: "With domainid, include the domains below."},
					ParamSpec{Name: "listall", Type: "boolean", Description: "For admins: every account they manage, in every domain below theirs."},
				),
				Handler: listAccounts,
			},
			{
				Name: "updateAccount", Description: "Renames an account, or changes its role or network domain.", Write: true, Access: AccessDomainAdmin,
				ObjectName: "account", Related: "listAccounts", Response: accountFields,
				Params: append(append([]ParamSpec(nil), target...),
					ParamSpec{Name: "newname", Type: "string", Description: "New name of the account."},
					ParamSpec{Name: "roleid", Type: "uuid", Description: "New role, of the same type as the old one.", Related: "listRoles"},
					ParamSpec{Name: "networkdomain", Type: "string", Description: "New DNS suffix for the account's guest networks."},
				),
				Handler: updateAccount,
			},
			{
				Name: "disableAccount", Description: "Disables or locks an account: its users can no longer sign in or use their keys.",
				Write: true, Async: true, Access: AccessDomainAdmin, ObjectName: "account", Related: "listAccounts", Response: accountFields,
				Params: append(append([]ParamSpec(nil), target...),
					ParamSpec{Name: "lock", Type: "boolean", Required: true, Description: "true locks the account, false disables it."},
				),
				Handler: disableAccount,
			},
			{
				Name: "lockAccount", Description: "Locks an account: its users can no longer sign in or use their keys.",
				Write: true, Access: AccessDomainAdmin, ObjectName: "account", Related: "listAccounts", Response: accountFields,
				Params: []ParamSpec{
					{Name: "account", Type: "string", Required: true, Description: "Name of the account."},
					{Name: "domainid", Type: "uuid", Required: true, Description: "Domain of the account.", Related: "listDomains"},
				},
				Handler: func(r *Request) (any, *Error) { return setAccountState(r, fsm.StateLocked, false) },
			},
			{
				Name: "enableAccount", Description: "Enables a disabled or locked account.", Write: true, Access: AccessDomainAdmin,
				ObjectName: "account", Related: "listAccounts", Response: accountFields,
				Params:  append([]ParamSpec(nil), target...),
				Handler: func(r *Request) (any, *Error) { return setAccountState(r, fsm.StateEnabled, false) },
			},
			{
				Name: "deleteAccount", Description: "Deletes an account with its users and their keys and sessions, if nothing else of it remains.",
				Write: true, Async: true, Access: AccessDomainAdmin, Response: successResponse,
				Params:  []ParamSpec{{Name: "id", Type: "uuid", Required: true, Description: "ID of the account.", Related: "listAccounts"}},
				Handler: deleteAccount,
			},
		}
	})
}

// roleOf returns an account's role, falling back to the built-in role
// definitions before they are seeded.
func roleOf(st *fsm.Store, a *fsm.Account) *fsm.Role {
	id := fsm.RoleOf(a)
	if role, _ := fsm.Get[fsm.Role](st, nil, fsm.TableRoles, id); role != nil {
		return role
	}
	for _, b := range fsm.BuiltinRoles() {
		if b.ID == id {
			return &b
		}
	}
	return nil
}

func toAccountResponse(st *fsm.Store, a *fsm.Account) accountResponse {
	out := accountResponse{
		ID: a.ID, Name: a.Name, AccountType: a.Type, RoleType: a.RoleType, DomainID: a.DomainID, State: a.State,
		NetworkDomain: a.NetworkDomain, Created: FormatTime(a.Created), Users: []userResponse{},
	}
	if role := roleOf(st, a); role != nil {
		out.RoleID, out.RoleName, out.RoleType = role.ID, role.Name, role.Type
	}
	if d, _ := st.Domain(nil, a.DomainID); d != nil {
		out.Domain, out.DomainPath = d.Name, d.Path
	}
	users, _ := fsm.List[fsm.User](st, nil, fsm.TableUsers, "account", a.ID)
	for _, u := range users {
		out.Users = append(out.Users, toUserResponse(st, u))
	}
	if m, _ := st.Meta(nil); m != nil {
		for _, u := range users {
			out.IsDefault = out.IsDefault || u.ID == m.AdminUserID
		}
	}
	return out
}

// isDefaultAccount reports whether a is the admin account made at bootstrap.
func isDefaultAccount(st *fsm.Store, a *fsm.Account) bool {
	m, _ := st.Meta(nil)
	if m == nil {
		return false
	}
	u, _ := st.User(nil, m.AdminUserID)
	return u != nil && u.AccountID == a.ID
}

// canManageAccount reports whether the caller may see and change account
// a: its own account; for a domain admin the accounts of its subtree except
// root admins'; for the root admin every account.
func (r *Request) canManageAccount(a *fsm.Account) bool {
	switch {
	case r.isRootAdmin(), a.ID == r.Account.ID:
		return true
	case r.isDomainAdmin():
		return a.Type != fsm.AccountTypeAdmin && r.canManageDomain(a.DomainID)
	}
	return false
}

// targetAccount resolves the account a command acts on: by id, or by
// account name in domainid (the caller's domain when absent). Accounts the
// caller may not manage do not exist for it.
func targetAccount(r *Request) (*fsm.Account, *Error) {
	p := r.Params
	if p.Has("id") {
		return lookup(r, fsm.TableAccounts, "id", r.canManageAccount)
	}
	name := p.String("account")
	if name == "" {
		return nil, ErrParam("give the account's id, or its name in account (with domainid)")
	}
	domainID := r.Account.DomainID
	if p.Has("domainid") {
		d, e := lookupDomain(r, "domainid")
		if e != nil {
			return nil, e
		}
		domainID = d.ID
	}
	a := r.accountByName(domainID, name)
	if a == nil || !r.canManageAccount(a) {
		return nil, ErrParam("unable to find account %s in domain %s", name, domainID)
	}
	return a, nil
}

// accountFilter decides which accounts a list command shows.
type accountFilter func(*fsm.Account) bool

// identityScope reads the scoping parameters of listAccounts and listUsers
// the way CloudStack does: a user sees its own account; an admin sees the
// accounts of its own domain, of domainid (and below with isrecursive), or
// with listall of every domain it manages; account narrows to one account.
// Domain admins never see root admin accounts.
func (r *Request) identityScope() (accountFilter, *Error) {
	p := r.Params
	listAll, e := p.Bool("listall", false)
	if e != nil {
		return nil, e
	}
	recursive, e := p.Bool("isrecursive", false)
	if e != nil {
		return nil, e
	}
	domainID := r.Account.DomainID
	if p.Has("domainid") {
		d, e := lookupDomain(r, "domainid")
		if e != nil {
			return nil, e
		}
		domainID = d.ID
	}
	if name := p.String("account"); name != "" {
		a := r.accountByName(domainID, name)
		if a == nil || !r.canManageAccount(a) {
			return nil, ErrParam("unable to find account %s in domain %s", name, domainID)
		}
		return func(x *fsm.Account) bool { return x.ID == a.ID }, nil
	}
	if !r.isRootAdmin() && !r.isDomainAdmin() {
		return func(x *fsm.Account) bool { return x.ID == r.Account.ID }, nil
	}
	visible := func(x *fsm.Account) bool { return r.isRootAdmin() || x.Type != fsm.AccountTypeAdmin }
	if recursive || (listAll && !p.Has("domainid")) {
		root := r.domainPath(domainID)
		return func(x *fsm.Account) bool { return visible(x) && inSubtree(r.domainPath(x.DomainID), root) }, nil
	}
	return func(x *fsm.Account) bool { return visible(x) && x.DomainID == domainID }, nil
}

// pickRole resolves the role of a new account from roleid or accounttype,
// and checks the caller may hand it out: nobody gives a role more
// privileged than its own.
func pickRole(r *Request) (*fsm.Role, *Error) {
	p := r.Params
	var role *fsm.Role
	switch {
	case p.Has("roleid"):
		ro, e := lookupRole(r, "roleid")
		if e != nil {
			return nil, e
		}
		role = ro
		if p.Has("accounttype") {
			t, e := p.Int("accounttype", -1)
			if e != nil {
				return nil, e
			}
			if t != fsm.AccountTypeOfRole(role.Type) {
				return nil, ErrParam("accounttype %d does not match the type %s of role %s", t, role.Type, role.Name)
			}
		}
	case p.Has("accounttype"):
		t, e := p.Int("accounttype", -1)
		if e != nil {
			return nil, e
		}
		if t != fsm.AccountTypeUser && t != fsm.AccountTypeAdmin && t != fsm.AccountTypeDomainAdmin {
			return nil, ErrParam("invalid value %d for parameter accounttype: use 0 (user), 1 (root admin) or 2 (domain admin)", t)
		}
		role = roleOf(r.State(), &fsm.Account{Type: t})
	default:
		return nil, ErrParam("give either roleid or accounttype for the new account")
	}
	if !r.canSeeRole(role) {
		return nil, ErrPermissionDenied(fmt.Sprintf("you may not give accounts the role %s", role.Name))
	}
	return role, nil
}

// roleTouch returns the op that bumps a custom role's index when an account
// starts using it, so that a deleteRole racing with this write fails its
// compare-and-set instead of leaving the account with a deleted role.
func roleTouch(r *Request, role *fsm.Role) []fsm.TxnOp {
	if role.BuiltIn {
		return nil
	}
	stored, _ := fsm.Get[fsm.Role](r.State(), nil, fsm.TableRoles, role.ID)
	if stored == nil {
		return nil
	}
	c := *stored
	return []fsm.TxnOp{fsm.Update(fsm.TableRoles, &c)}
}

// optionalUUID reads a caller-chosen UUID parameter of type string.
func optionalUUID(p Params, name string) (string, *Error) {
	v := p.String(name)
	if v == "" {
		return newID(), nil
	}
	if !IsUUID(v) {
		return "", ErrInvalidParamValue(p.Cmd, name, v)
	}
	return strings.ToLower(v), nil
}

func createAccount(r *Request) (any, *Error) {
	p := r.Params
	domainID := r.Account.DomainID
	if p.Has("domainid") {
		d, e := managedDomain(r, "domainid")
		if e != nil {
			return nil, e
		}
		domainID = d.ID
	}
	role, e := pickRole(r)
	if e != nil {
		return nil, e
	}
	name := strings.TrimSpace(p.String("account"))
	if name == "" {
		name = strings.TrimSpace(p.String("username"))
	}
	if e := validName("account", name); e != nil {
		return nil, e
	}
	if a := r.accountByName(domainID, name); a != nil {
		return nil, ErrParam("an account named %s already exists in domain %s", name, r.domainPath(domainID))
	}
	acctID, e := optionalUUID(p, "accountid")
	if e != nil {
		return nil, e
	}
	now := r.srv.now().UTC()
	a := &fsm.Account{
		ID: acctID, Name: name, DomainID: domainID, Type: fsm.AccountTypeOfRole(role.Type), RoleType: role.Type,
		RoleID: role.ID, State: fsm.StateEnabled, NetworkDomain: p.String("networkdomain"), Created: now,
	}
	u, e := newUser(r, a)
	if e != nil {
		return nil, e
	}
	ops := append(roleTouch(r, role), fsm.Create(fsm.TableAccounts, a), fsm.Create(fsm.TableUsers, u),
		r.event("ACCOUNT.CREATE", "Account", a.ID, "created account %s in domain %s", a.Name, r.domainPath(domainID)),
		r.event("USER.CREATE", "User", u.ID, "created user %s of account %s", u.Username, a.Name))
	if e := r.commit(ops...); e != nil {
		return nil, e
	}
	return accountBody(r, a.ID)
}

func accountBody(r *Request, id string) (any, *Error) {
	a, _ := r.State().Account(nil, id)
	if a == nil {
		return nil, ErrInternal("account " + id + " was committed but cannot be read back")
	}
	return map[string]any{"account": toAccountResponse(r.State(), a)}, nil
}

// validName checks an account or user name: not blank, not too long, no
// control characters.
func validName(what, name string) *Error {
	if name == "" {
		return ErrParam("the %s name must not be blank", what)
	}
	if len(name) > 255 {
		return ErrParam("the %s name is at most 255 characters", what)
	}
	for _, c := range name {
		if c < 0x20 || c == 0x7f {
			return ErrParam("the %s name may not contain control characters", what)
		}
	}
	return nil
}

func listAccounts(r *Request) (any, *Error) {
	p := r.Params
	start, limit, e := p.Page(r.State().SettingInt(fsm.SettingDefaultPageSize))
	if e != nil {
		return nil, e
	}
	acctType := -1
	if p.Has("accounttype") {
		if acctType, e = p.Int("accounttype", -1); e != nil {
			return nil, e
		}
	}
	var accts []*fsm.Account
	scope := func(*fsm.Account) bool { return true }
	if p.Has("id") {
		a, e := lookup(r, fsm.TableAccounts, "id", r.canManageAccount)
		if e != nil {
			return nil, e
		}
		accts = []*fsm.Account{a}
	} else {
		if scope, e = r.identityScope(); e != nil {
			return nil, e
		}
		var err error
		if accts, err = fsm.List[fsm.Account](r.State(), nil, fsm.TableAccounts, "create"); err != nil {
			return nil, ErrInternal("account scan failed")
		}
	}
	name, state, kw := p.String("name"), p.String("state"), strings.ToLower(p.String("keyword"))
	var out []accountResponse
	for _, a := range accts {
		if !scope(a) || (name != "" && !strings.EqualFold(a.Name, name)) || (state != "" && !strings.EqualFold(a.State, state)) ||
			(acctType >= 0 && a.Type != acctType) || (kw != "" && !strings.Contains(strings.ToLower(a.Name), kw)) {
			continue
		}
		out = append(out, toAccountResponse(r.State(), a))
	}
	return ListBody("account", len(out), Paginate(out, start, limit)), nil
}

func updateAccount(r *Request) (any, *Error) {
	p := r.Params
	a, e := targetAccount(r)
	if e != nil {
		return nil, e
	}
	c := *a
	var ops []fsm.TxnOp
	if p.Has("newname") {
		c.Name = strings.TrimSpace(p.String("newname"))
		if e := validName("account", c.Name); e != nil {
			return nil, e
		}
		if other := r.accountByName(a.DomainID, c.Name); other != nil && other.ID != a.ID {
			return nil, ErrParam("an account named %s already exists in domain %s", c.Name, r.domainPath(a.DomainID))
		}
	}
	if p.Has("networkdomain") {
		c.NetworkDomain = p.String("networkdomain")
	}
	if p.Has("roleid") {
		role, e := lookupRole(r, "roleid")
		if e != nil {
			return nil, e
		}
		if fsm.AccountTypeOfRole(role.Type) != a.Type {
			return nil, ErrParam("role %s is of type %s; the account's new role must be of its current type %s",
				role.Name, role.Type, fsm.RoleTypeOfAccount(a.Type))
		}
		c.RoleID, c.RoleType = role.ID, role.Type
		ops = append(ops, roleTouch(r, role)...)
	}
	ops = append(ops, fsm.Update(fsm.TableAccounts, &c), r.event("ACCOUNT.UPDATE", "Account", a.ID, "updated account %s", c.Name))
	if e := r.commit(ops...); e != nil {
		return nil, e
	}
	return accountBody(r, a.ID)
}

// setAccountState moves an account to enabled, disabled or locked; async
// commands answer with a finished job.
func setAccountState(r *Request, state string, async bool) (any, *Error) {
	a, e := targetAccount(r)
	if e != nil {
		return nil, e
	}
	if state != fsm.StateEnabled {
		if a.ID == r.Account.ID {
			return nil, ErrParam("you may not disable or lock your own account")
		}
		if isDefaultAccount(r.State(), a) {
			return nil, ErrParam("the default admin account cannot be disabled or locked")
		}
	}
	c := *a
	c.State = state
	evType := map[string]string{fsm.StateEnabled: "ACCOUNT.ENABLE", fsm.StateDisabled: "ACCOUNT.DISABLE", fsm.StateLocked: "ACCOUNT.LOCK"}[state]
	ops := []fsm.TxnOp{fsm.Update(fsm.TableAccounts, &c)}
	if async {
		body := map[string]any{"account": toAccountResponse(r.State(), &c)}
		return r.finishedJob("Account", a.ID, body, ops, evType, "account %s is now %s", a.Name, state)
	}
	if e := r.commit(append(ops, r.event(evType, "Account", a.ID, "account %s is now %s", a.Name, state))...); e != nil {
		return nil, e
	}
	return accountBody(r, a.ID)
}

func disableAccount(r *Request) (any, *Error) {
	lock, e := r.Params.Bool("lock", false)
	if e != nil {
		return nil, e
	}
	if lock {
		return setAccountState(r, fsm.StateLocked, true)
	}
	return setAccountState(r, fsm.StateDisabled, true)
}

func deleteAccount(r *Request) (any, *Error) {
	a, e := lookup(r, fsm.TableAccounts, "id", r.canManageAccount)
	if e != nil {
		return nil, e
	}
	if a.ID == r.Account.ID {
		return nil, ErrParam("you may not delete your own account")
	}
	if isDefaultAccount(r.State(), a) {
		return nil, ErrParam("the default admin account cannot be deleted")
	}
	ops, e := accountDeleteOps(r, a)
	if e != nil {
		return nil, e
	}
	return r.finishedJob("Account", a.ID, successBody(), ops, "ACCOUNT.DELETE", "deleted account %s", a.Name)
}

// accountDeleteOps removes an account with its users, their sessions and
// the tags on them. Anything else still owned by the account makes the
// commit fail with an in-use error naming it.
func accountDeleteOps(r *Request, a *fsm.Account) ([]fsm.TxnOp, *Error) {
	users, err := fsm.List[fsm.User](r.State(), nil, fsm.TableUsers, "account", a.ID)
	if err != nil {
		return nil, ErrInternal("user scan failed")
	}
	var ops []fsm.TxnOp
	for _, u := range users {
		ops = append(ops, userDeleteOps(r, u)...)
	}
	ops = append(ops, tagDeleteOps(r, a.ID)...)
	return append(ops, fsm.Delete(fsm.TableAccounts, a.ID)), nil
}

// finishedJob commits ops together with an event and an async job that has
// already succeeded with result, and answers the job's id: the identity
// commands CloudStack runs as jobs complete in one commit here, and clients
// polling queryAsyncJobResult see the result at once.
func (r *Request) finishedJob(instanceType, instanceID string, result any, ops []fsm.TxnOp, evType, format string, args ...any) (any, *Error) {
	res, err := marshalCompact(result)
	if err != nil {
		return nil, ErrInternal("could not encode the job result")
	}
	now := r.srv.now().UTC()
	j := &fsm.AsyncJob{
		ID: newID(), Cmd: r.Params.Cmd, AccountID: r.Account.ID, DomainID: r.Account.DomainID, UserID: r.Caller.ID,
		Status: fsm.JobSucceeded, ResultType: "object", Result: res, InstanceType: instanceType, InstanceID: instanceID,
		Created: now, Completed: now,
	}
	ev := r.newEvent(evType, instanceType, instanceID, fmt.Sprintf(format, args...))
	ev.JobID = j.ID
	ops = append(ops, fsm.Create(fsm.TableEvents, ev), fsm.Create(fsm.TableJobs, j))
	if e := r.commit(ops...); e != nil {
		return nil, e
	}
	return jobAccepted(j.ID, ""), nil
}
