package api

import (
	"strconv"
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
)

// Users sign in (login) or sign requests (API keys) on behalf of their
// account. Everyone sees the users of its own account; admins those of the
// accounts they manage. A plain user changes only itself.

type userResponse struct {
	ID          string `json:"id"`
	Username    string `json:"username"`
	FirstName   string `json:"firstname,omitempty"`
	LastName    string `json:"lastname,omitempty"`
	Email       string `json:"email,omitempty"`
	State       string `json:"state"`
	Account     string `json:"account"`
	AccountID   string `json:"accountid"`
	AccountType int    `json:"accounttype"`
	RoleID      string `json:"roleid,omitempty"`
	RoleName    string `json:"rolename,omitempty"`
	RoleType    string `json:"roletype"`
	Domain      string `json:"domain"`
	DomainID    string `json:"domainid"`
	Timezone    string `json:"timezone,omitempty"`
	Created     string `json:"created"`
	APIKey      string `json:"apikey,omitempty"`
	IsDefault   bool   `json:"isdefault"`
	UserSource  string `json:"usersource"`
}

func toUserResponse(st *fsm.Store, u *fsm.User) userResponse {
	r := userResponse{
		ID: u.ID, Username: u.Username, FirstName: u.FirstName, LastName: u.LastName, Email: u.Email,
		State: u.State, AccountID: u.AccountID, DomainID: u.DomainID, Timezone: u.Timezone, Created: FormatTime(u.Created),
		APIKey: u.APIKey, UserSource: "native",
	}
	if a, _ := st.Account(nil, u.AccountID); a != nil {
		r.Account, r.AccountType, r.RoleType = a.Name, a.Type, a.RoleType
		if role := roleOf(st, a); role != nil {
			r.RoleID, r.RoleName, r.RoleType = role.ID, role.Name, role.Type
		}
	}
	if d, _ := st.Domain(nil, u.DomainID); d != nil {
		r.Domain = d.Name
	}
	if m, _ := st.Meta(nil); m != nil && m.AdminUserID == u.ID {
		r.IsDefault = true
	}
	return r
}

var userFields = withJobFields(
	ResponseField{Name: "id", Type: "string", Description: "User ID."},
	ResponseField{Name: "username", Type: "string", Description: "Login name."},
	ResponseField{Name: "firstname", Type: "string", Description: "Given name."},
	ResponseField{Name: "lastname", Type: "string", Description: "Family name."},
	ResponseField{Name: "email", Type: "string", Description: "Email address."},
	ResponseField{Name: "state", Type: "string", Description: "enabled, disabled or locked."},
	ResponseField{Name: "account", Type: "string", Description: "Name of the user's account."},
	ResponseField{Name: "accountid", Type: "string", Description: "ID of the user's account."},
	ResponseField{Name: "accounttype", Type: "integer", Description: "0 user, 1 root admin, 2 domain admin."},
	ResponseField{Name: "roleid", Type: "string", Description: "ID of the role of the user's account."},
	ResponseField{Name: "rolename", Type: "string", Description: "Name of that role."},
	ResponseField{Name: "roletype", Type: "string", Description: "Admin, DomainAdmin or User."},
	ResponseField{Name: "domain", Type: "string", Description: "Name of the user's domain."},
	ResponseField{Name: "domainid", Type: "string", Description: "ID of the user's domain."},
	ResponseField{Name: "timezone", Type: "string", Description: "The user's time zone, if set."},
	ResponseField{Name: "created", Type: "date", Description: "When the user was created."},
	ResponseField{Name: "apikey", Type: "string", Description: "The user's API key, if it has one; the secret key is never listed."},
	ResponseField{Name: "isdefault", Type: "boolean", Description: "True for the admin user made when the cloud was first started."},
	ResponseField{Name: "usersource", Type: "string", Description: "Where the user's identity comes from: native."},
)

var userKeysFields = withJobFields(
	ResponseField{Name: "apikey", Type: "string", Description: "The API key."},
	ResponseField{Name: "secretkey", Type: "string", Description: "The secret key; keep it safe."},
)

// userDetailParams are the personal details createAccount and createUser
// take.
func userDetailParams(required bool) []ParamSpec {
	return []ParamSpec{
		{Name: "username", Type: "string", Required: required, Description: "Login name, unique in the domain."},
		{Name: "password", Type: "string", Required: required, Description: "Password for login; stored only as a slow hash."},
		{Name: "email", Type: "string", Required: required, Description: "Email address."},
		{Name: "firstname", Type: "string", Required: required, Description: "Given name."},
		{Name: "lastname", Type: "string", Required: required, Description: "Family name."},
		{Name: "timezone", Type: "string", Description: "Time zone, e.g. Europe/Paris, for dates shown to the user."},
	}
}

func userCommands() []*Command {
	id := []ParamSpec{{Name: "id", Type: "uuid", Required: true, Description: "ID of the user.", Related: "listUsers"}}
	return []*Command{
		{
			Name: "listUsers", Description: "Lists users with their accounts and domains.",
			Access: AccessUser, ObjectName: "user", Related: "createUser", Response: userFields,
			Params: withPaging(
				ParamSpec{Name: "id", Type: "uuid", Description: "Only the user with this ID.", Related: "listUsers"},
				ParamSpec{Name: "username", Type: "string", Description: "Only the user with this login name."},
				ParamSpec{Name: "account", Type: "string", Description: "Only users of the account with this name."},
				ParamSpec{Name: "domainid", Type: "uuid", Description: "Only users of this domain.", Related: "listDomains"},
				ParamSpec{Name: "isrecursive", Type: "boolean", Description: "With domainid, include the domains below."},
				ParamSpec{Name: "state", Type: "string", Description: "Only users in this state."},
				ParamSpec{Name: "accounttype", Type: "integer", Description: "Only users of accounts of this type."},
				ParamSpec{Name: "listall", Type: "boolean", Description: "For admins: users of every account they manage, not just their own domain's."},
			),
			Handler: listUsers,
		},
		{
			Name: "createUser", Description: "Adds a user to an existing account.", Write: true, Access: AccessDomainAdmin,
			ObjectName: "user", Related: "listUsers", Response: userFields,
			Params: append(userDetailParams(true),
				ParamSpec{Name: "account", Type: "string", Required: true, Description: "Name of the account the user joins."},
				ParamSpec{Name: "domainid", Type: "uuid", Description: "Domain of that account; the caller's own when absent.", Related: "listDomains"},
				ParamSpec{Name: "userid", Type: "string", Description: "UUID to give the user, e.g. when copying it from another cloud."},
			),
			Handler: createUser,
		},
		{
			Name: "updateUser", Description: "Changes a user's names, email, time zone, login name or password.", Write: true,
			Access: AccessUser, ObjectName: "user", Related: "listUsers", Response: userFields,
			Params: append(append([]ParamSpec(nil), id...),
				ParamSpec{Name: "username", Type: "string", Description: "New login name, unique in the domain."},
				ParamSpec{Name: "password", Type: "string", Description: "New password; users other than admins must give currentpassword too."},
				ParamSpec{Name: "currentpassword", Type: "string", Description: "The user's current password, needed to change it unless the caller is an admin."},
				ParamSpec{Name: "email", Type: "string", Description: "New email address."},
				ParamSpec{Name: "firstname", Type: "string", Description: "New given name."},
				ParamSpec{Name: "lastname", Type: "string", Description: "New family name."},
				ParamSpec{Name: "timezone", Type: "string", Description: "New time zone."},
			),
			Handler: updateUser,
		},
		{
			Name: "deleteUser", Description: "Deletes a user with its keys and sessions.", Write: true, Access: AccessDomainAdmin,
			Response: successResponse, Params: id, Handler: deleteUser,
		},
		{
			Name: "disableUser", Description: "Disables a user: it can no longer sign in or use its keys.", Write: true, Async: true,
			Access: AccessDomainAdmin, ObjectName: "user", Related: "listUsers", Response: userFields, Params: id,
			Handler: func(r *Request) (any, *Error) { return setUserState(r, fsm.StateDisabled, true) },
		},
		{
			Name: "lockUser", Description: "Locks a user: it can no longer sign in or use its keys.", Write: true,
			Access: AccessDomainAdmin, ObjectName: "user", Related: "listUsers", Response: userFields, Params: id,
			Handler: func(r *Request) (any, *Error) { return setUserState(r, fsm.StateLocked, false) },
		},
		{
			Name: "enableUser", Description: "Enables a disabled or locked user.", Write: true,
			Access: AccessDomainAdmin, ObjectName: "user", Related: "listUsers", Response: userFields, Params: id,
			Handler: func(r *Request) (any, *Error) { return setUserState(r, fsm.StateEnabled, false) },
		},
		{
			Name: "registerUserKeys", Description: "Makes a new API key pair for a user, replacing any old pair.",
			Write: true, Access: AccessUser, ObjectName: "userkeys", Response: userKeysFields, Params: id,
			Handler: registerUserKeys,
		},
		{
			Name: "getUserKeys", Description: "Returns the API key pair of a user the caller manages.",
			Access: AccessUser, ObjectName: "userkeys", Response: userKeysFields, Params: id,
			Handler: getUserKeys,
		},
	}
}

// canSeeUser reports whether the caller may see u: the users of every
// account it manages, including its own account's.
func (r *Request) canSeeUser(u *fsm.User) bool {
	a, _ := r.State().Account(nil, u.AccountID)
	return a != nil && r.canManageAccount(a)
}

// canManageUser reports whether the caller may change u or read its keys:
// admins for the accounts they manage, a plain user only itself.
func (r *Request) canManageUser(u *fsm.User) bool {
	if !r.isRootAdmin() && !r.isDomainAdmin() {
		return u.ID == r.Caller.ID
	}
	return r.canSeeUser(u)
}

// managedUser resolves the id parameter to a user the caller may change: a
// user it cannot see does not exist for it; one it sees but may not change
// is permission denied.
func managedUser(r *Request) (*fsm.User, *Error) {
	u, e := lookup(r, fsm.TableUsers, "id", r.canSeeUser)
	if e != nil {
		return nil, e
	}
	if !r.canManageUser(u) {
		return nil, ErrPermissionDenied("you may not change user " + u.Username)
	}
	return u, nil
}

func listUsers(r *Request) (any, *Error) {
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
	var users []*fsm.User
	scope := func(*fsm.Account) bool { return true }
	if p.Has("id") {
		u, e := lookup(r, fsm.TableUsers, "id", r.canSeeUser)
		if e != nil {
			return nil, e
		}
		users = []*fsm.User{u}
	} else {
		if scope, e = r.identityScope(); e != nil {
			return nil, e
		}
		var err error
		if users, err = fsm.List[fsm.User](r.State(), nil, fsm.TableUsers, "create"); err != nil {
			return nil, ErrInternal("user scan failed")
		}
	}
	name, state, kw := p.String("username"), p.String("state"), strings.ToLower(p.String("keyword"))
	var out []userResponse
	for _, u := range users {
		a, _ := r.State().Account(nil, u.AccountID)
		if a == nil || !scope(a) || (name != "" && !strings.EqualFold(u.Username, name)) ||
			(state != "" && !strings.EqualFold(u.State, state)) || (acctType >= 0 && a.Type != acctType) {
			continue
		}
		if kw != "" && !strings.Contains(strings.ToLower(u.Username+" "+u.FirstName+" "+u.LastName+" "+u.Email), kw) {
			continue
		}
		out = append(out, toUserResponse(r.State(), u))
	}
	return ListBody("user", len(out), Paginate(out, start, limit)), nil
}

// newUser builds a user of account a from the request's details.
func newUser(r *Request, a *fsm.Account) (*fsm.User, *Error) {
	p := r.Params
	username := strings.TrimSpace(p.String("username"))
	if e := validName("user", username); e != nil {
		return nil, e
	}
	if other := userByName(r.State(), a.DomainID, username); other != nil {
		return nil, ErrParam("a user named %s already exists in domain %s", username, r.domainPath(a.DomainID))
	}
	hash, e := hashPassword(p.String("password"))
	if e != nil {
		return nil, e
	}
	id, e := optionalUUID(p, "userid")
	if e != nil {
		return nil, e
	}
	return &fsm.User{
		ID: id, AccountID: a.ID, DomainID: a.DomainID, Username: username, FirstName: p.String("firstname"),
		LastName: p.String("lastname"), Email: p.String("email"), Timezone: p.String("timezone"),
		State: fsm.StateEnabled, PasswordHash: hash, Created: r.srv.now().UTC(),
	}, nil
}

// userByName finds a user by login name in a domain, ignoring case.
func userByName(st *fsm.Store, domainID, username string) *fsm.User {
	users, err := fsm.List[fsm.User](st, nil, fsm.TableUsers, "username", domainID, username)
	if err != nil || len(users) == 0 {
		return nil
	}
	return users[0]
}

func createUser(r *Request) (any, *Error) {
	p := r.Params
	domainID := r.Account.DomainID
	if p.Has("domainid") {
		d, e := lookupDomain(r, "domainid")
		if e != nil {
			return nil, e
		}
		domainID = d.ID
	}
	a := r.accountByName(domainID, p.String("account"))
	if a == nil || !r.canManageAccount(a) {
		return nil, ErrParam("unable to find account %s in domain %s", p.String("account"), domainID)
	}
	u, e := newUser(r, a)
	if e != nil {
		return nil, e
	}
	// Check the account: a delete racing with this create fails one of them.
	e = r.commit(fsm.Check(fsm.TableAccounts, a), fsm.Create(fsm.TableUsers, u),
		r.event("USER.CREATE", "User", u.ID, "created user %s of account %s", u.Username, a.Name))
	if e != nil {
		return nil, e
	}
	return userBody(r, u.ID)
}

func userBody(r *Request, id string) (any, *Error) {
	u, _ := r.State().User(nil, id)
	if u == nil {
		return nil, ErrInternal("user " + id + " was committed but cannot be read back")
	}
	return map[string]any{"user": toUserResponse(r.State(), u)}, nil
}

func updateUser(r *Request) (any, *Error) {
	p := r.Params
	u, e := managedUser(r)
	if e != nil {
		return nil, e
	}
	c := *u
	if p.Has("username") {
		c.Username = strings.TrimSpace(p.String("username"))
		if e := validName("user", c.Username); e != nil {
			return nil, e
		}
		if other := userByName(r.State(), u.DomainID, c.Username); other != nil && other.ID != u.ID {
			return nil, ErrParam("a user named %s already exists in domain %s", c.Username, r.domainPath(u.DomainID))
		}
	}
	for name, dst := range map[string]*string{"firstname": &c.FirstName, "lastname": &c.LastName, "email": &c.Email, "timezone": &c.Timezone} {
		if p.Has(name) {
			*dst = p.String(name)
		}
	}
	what := "details"
	if p.Has("password") {
		if !r.isRootAdmin() && !r.isDomainAdmin() {
			if !p.Has("currentpassword") {
				return nil, ErrParam("give the current password in currentpassword to change the password")
			}
			if !passwordMatches(u, p.String("currentpassword")) {
				return nil, ErrParam("the current password is not correct")
			}
		}
		hash, e := hashPassword(p.String("password"))
		if e != nil {
			return nil, e
		}
		c.PasswordHash, what = hash, "details and password"
	}
	if e := r.commit(fsm.Update(fsm.TableUsers, &c), r.event("USER.UPDATE", "User", u.ID, "updated the %s of user %s", what, c.Username)); e != nil {
		return nil, e
	}
	return userBody(r, u.ID)
}

// userDeleteOps removes a user with its sessions and the tags on it.
func userDeleteOps(r *Request, u *fsm.User) []fsm.TxnOp {
	sessions, _ := fsm.List[fsm.Session](r.State(), nil, fsm.TableSessions, "user", u.ID)
	var ops []fsm.TxnOp
	for _, s := range sessions {
		op := fsm.Delete(fsm.TableSessions, s.ID)
		op.IfExists = true
		ops = append(ops, op)
	}
	ops = append(ops, tagDeleteOps(r, u.ID)...)
	return append(ops, fsm.Delete(fsm.TableUsers, u.ID))
}

// refuseSelfOrDefault stops callers from disabling or deleting themselves
// or the cloud's first admin, which would lock everyone out.
func refuseSelfOrDefault(r *Request, u *fsm.User, what string) *Error {
	if u.ID == r.Caller.ID {
		return ErrParam("you may not %s yourself", what)
	}
	if m, _ := r.State().Meta(nil); m != nil && m.AdminUserID == u.ID {
		return ErrParam("the default admin user cannot be %sd", strings.TrimSuffix(what, "e"))
	}
	return nil
}

func deleteUser(r *Request) (any, *Error) {
	u, e := managedUser(r)
	if e != nil {
		return nil, e
	}
	if e := refuseSelfOrDefault(r, u, "delete"); e != nil {
		return nil, e
	}
	ops := append(userDeleteOps(r, u), r.event("USER.DELETE", "User", u.ID, "deleted user %s", u.Username))
	if e := r.commit(ops...); e != nil {
		return nil, e
	}
	return successBody(), nil
}

func setUserState(r *Request, state string, async bool) (any, *Error) {
	u, e := managedUser(r)
	if e != nil {
		return nil, e
	}
	if state != fsm.StateEnabled {
		if e := refuseSelfOrDefault(r, u, "disable"); e != nil {
			return nil, e
		}
	}
	c := *u
	c.State = state
	evType := map[string]string{fsm.StateEnabled: "USER.ENABLE", fsm.StateDisabled: "USER.DISABLE", fsm.StateLocked: "USER.LOCK"}[state]
	ops := []fsm.TxnOp{fsm.Update(fsm.TableUsers, &c)}
	if async {
		body := map[string]any{"user": toUserResponse(r.State(), &c)}
		return r.finishedJob("User", u.ID, body, ops, evType, "user %s is now %s", u.Username, state)
	}
	if e := r.commit(append(ops, r.event(evType, "User", u.ID, "user %s is now %s", u.Username, state))...); e != nil {
		return nil, e
	}
	return userBody(r, u.ID)
}

func registerUserKeys(r *Request) (any, *Error) {
	u, e := managedUser(r)
	if e != nil {
		return nil, e
	}
	c := *u
	c.APIKey, c.SecretKey = fsm.NewKey(64), fsm.NewKey(64)
	if e := r.commit(fsm.Update(fsm.TableUsers, &c), r.event("REGISTER.USER.KEY", "User", u.ID, "new API keys for user %s", u.Username)); e != nil {
		return nil, e
	}
	return map[string]any{"userkeys": map[string]string{"apikey": c.APIKey, "secretkey": c.SecretKey}}, nil
}

func getUserKeys(r *Request) (any, *Error) {
	u, e := managedUser(r)
	if e != nil {
		return nil, e
	}
	keys := map[string]string{}
	if u.APIKey != "" {
		keys["apikey"], keys["secretkey"] = u.APIKey, u.SecretKey
	}
	return map[string]any{"userkeys": keys}, nil
}

func atoiOr(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return def
}
