package api

import (
	"strconv"
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
)

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
	RoleType    string `json:"roletype"`
	Domain      string `json:"domain"`
	DomainID    string `json:"domainid"`
	Created     string `json:"created"`
	APIKey      string `json:"apikey,omitempty"`
	IsDefault   bool   `json:"isdefault"`
	UserSource  string `json:"usersource"`
}

func toUserResponse(st *fsm.Store, u *fsm.User) userResponse {
	r := userResponse{
		ID: u.ID, Username: u.Username, FirstName: u.FirstName, LastName: u.LastName, Email: u.Email,
		State: u.State, AccountID: u.AccountID, DomainID: u.DomainID, Created: FormatTime(u.Created),
		APIKey: u.APIKey, UserSource: "native",
	}
	if a, _ := st.Account(nil, u.AccountID); a != nil {
		r.Account, r.AccountType, r.RoleType = a.Name, a.Type, a.RoleType
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
	ResponseField{Name: "state", Type: "string", Description: "enabled or disabled."},
	ResponseField{Name: "account", Type: "string", Description: "Name of the user's account."},
	ResponseField{Name: "accountid", Type: "string", Description: "ID of the user's account."},
	ResponseField{Name: "accounttype", Type: "integer", Description: "0 user, 1 root admin, 2 domain admin."},
	ResponseField{Name: "roletype", Type: "string", Description: "Admin, DomainAdmin or User."},
	ResponseField{Name: "domain", Type: "string", Description: "Name of the user's domain."},
	ResponseField{Name: "domainid", Type: "string", Description: "ID of the user's domain."},
	ResponseField{Name: "created", Type: "date", Description: "When the user was created."},
	ResponseField{Name: "apikey", Type: "string", Description: "The user's API key, if it has one; the secret key is never listed."},
	ResponseField{Name: "isdefault", Type: "boolean", Description: "True for the admin user made when the cloud was first started."},
	ResponseField{Name: "usersource", Type: "string", Description: "Where the user's identity comes from: native."},
)

var userKeysFields = withJobFields(
	ResponseField{Name: "apikey", Type: "string", Description: "New API key."},
	ResponseField{Name: "secretkey", Type: "string", Description: "New secret key, shown this once; keep it safe."},
)

func userCommands() []*Command {
	list := &Command{
		Name: "listUsers", Description: "Lists users with their accounts and domains.",
		Access: AccessUser, ObjectName: "user", Response: userFields,
		Params: withPaging(
			ParamSpec{Name: "id", Type: "uuid", Description: "Only the user with this ID.", Related: "listUsers"},
			ParamSpec{Name: "username", Type: "string", Description: "Only the user with this login name."},
			ParamSpec{Name: "account", Type: "string", Description: "Only users of the account with this name."},
			ParamSpec{Name: "domainid", Type: "uuid", Description: "Only users of this domain.", Related: "listDomains"},
			ParamSpec{Name: "state", Type: "string", Description: "Only users in this state."},
			ParamSpec{Name: "accounttype", Type: "integer", Description: "Only users of accounts of this type."},
			ParamSpec{Name: "listall", Type: "boolean", Description: "For admins: users of every account they manage, not just their own."},
		),
		Handler: listUsers,
	}
	register := &Command{
		Name: "registerUserKeys", Description: "Makes a new API key pair for a user, replacing any old pair.",
		Write: true, Access: AccessUser, ObjectName: "userkeys", Response: userKeysFields,
		Params:  []ParamSpec{{Name: "id", Type: "uuid", Required: true, Description: "ID of the user.", Related: "listUsers"}},
		Handler: registerUserKeys,
	}
	return []*Command{list, register}
}

// visibleUser reports whether the caller may see or change u. Issue-level
// identity (domain admins, users) grows with the accounts work; today an
// admin sees everyone and anyone else only itself.
func visibleUser(r *Request, u *fsm.User) bool {
	return r.Account.Type == fsm.AccountTypeAdmin || u.AccountID == r.Account.ID
}

func listUsers(r *Request) (any, *Error) {
	p := r.Params
	start, limit, e := p.Page(r.State().SettingInt(fsm.SettingDefaultPageSize))
	if e != nil {
		return nil, e
	}
	if p.Has("id") {
		if u, _ := r.State().User(nil, strings.ToLower(p.String("id"))); u == nil {
			return nil, ErrEntityNotFound(p.Cmd, "id", p.String("id"))
		}
	}
	acctType := -1
	if p.Has("accounttype") {
		v, e := p.Int("accounttype", -1)
		if e != nil {
			return nil, e
		}
		acctType = v
	}
	users, err := r.State().Users(nil)
	if err != nil {
		return nil, ErrInternal("user scan failed")
	}
	id, name, acct := strings.ToLower(p.String("id")), p.String("username"), p.String("account")
	dom, state, kw := strings.ToLower(p.String("domainid")), p.String("state"), strings.ToLower(p.String("keyword"))
	var out []userResponse
	for _, u := range users {
		if !visibleUser(r, u) || (id != "" && u.ID != id) || (name != "" && u.Username != name) ||
			(dom != "" && u.DomainID != dom) || (state != "" && !strings.EqualFold(u.State, state)) {
			continue
		}
		ur := toUserResponse(r.State(), u)
		if (acct != "" && ur.Account != acct) || (acctType >= 0 && ur.AccountType != acctType) {
			continue
		}
		if kw != "" && !strings.Contains(strings.ToLower(u.Username+" "+u.FirstName+" "+u.LastName+" "+u.Email), kw) {
			continue
		}
		out = append(out, ur)
	}
	return ListBody("user", len(out), Paginate(out, start, limit)), nil
}

func registerUserKeys(r *Request) (any, *Error) {
	raw := r.Params.String("id")
	u, _ := r.State().User(nil, strings.ToLower(raw))
	if u == nil || !visibleUser(r, u) {
		return nil, ErrEntityNotFound(r.Params.Cmd, "id", raw)
	}
	req := fsm.UserKeysSetRequest{UserID: u.ID, APIKey: fsm.NewKey(64), SecretKey: fsm.NewKey(64)}
	if e := r.apply(fsm.UserKeysSetRequestType, req); e != nil {
		return nil, e
	}
	return map[string]any{"userkeys": map[string]string{"apikey": req.APIKey, "secretkey": req.SecretKey}}, nil
}

func atoiOr(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return def
}
