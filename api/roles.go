package api

import (
	"sort"
	"strings"

	"github.com/google/uuid"

	"github.com/stratus-cloud/stratus/fsm"
)

// Roles decide which commands an account may call.
//
// The built-in roles (Root Admin, Domain Admin, User) carry no stored
// rules: each allows every command whose Access its type reaches, so a
// command added in a later version is open to the right roles at once.
// listRolePermissions shows those implicit rules, derived from the
// registry.
//
// A custom role allows what its rules say. Rules are command names or
// patterns with * ("list*"), each allow or deny, evaluated in order: the
// first rule that matches decides, and a command no rule matches is denied.
// Whatever the rules say, a role never reaches above its type: a User-type
// role cannot call a command meant for admins.

type roleResponse struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Type        string `json:"type"`
	Description string `json:"description,omitempty"`
	IsDefault   bool   `json:"isdefault"`
}

type rolePermissionResponse struct {
	ID          string `json:"id"`
	RoleID      string `json:"roleid"`
	RoleName    string `json:"rolename"`
	Rule        string `json:"rule"`
	Permission  string `json:"permission"`
	Description string `json:"description,omitempty"`
}

var roleFields = withJobFields(
	ResponseField{Name: "id", Type: "string", Description: "Role ID."},
	ResponseField{Name: "name", Type: "string", Description: "Role name."},
	ResponseField{Name: "type", Type: "string", Description: "Admin, DomainAdmin or User: the most the role can allow."},
	ResponseField{Name: "description", Type: "string", Description: "What the role is for."},
	ResponseField{Name: "isdefault", Type: "boolean", Description: "True for the built-in roles."},
)

var rolePermissionFields = withJobFields(
	ResponseField{Name: "id", Type: "string", Description: "Rule ID."},
	ResponseField{Name: "roleid", Type: "string", Description: "ID of the rule's role."},
	ResponseField{Name: "rolename", Type: "string", Description: "Name of the rule's role."},
	ResponseField{Name: "rule", Type: "string", Description: "Command name, or a pattern with *."},
	ResponseField{Name: "permission", Type: "string", Description: "allow or deny."},
	ResponseField{Name: "description", Type: "string", Description: "What the rule is for."},
)

// derivedRuleNamespace makes stable IDs for the implicit rules of the
// built-in roles.
var derivedRuleNamespace = uuid.MustParse("0f1d7f36-4a52-4f0e-8d0b-6c1e9e7b5a10")

func init() {
	registerCommands(func(s *Server) []*Command {
		roleID := ParamSpec{Name: "roleid", Type: "uuid", Required: true, Description: "ID of the role.", Related: "listRoles"}
		return []*Command{
			{
				Name: "createRole", Description: "Creates a custom role, empty or as a copy of another role's rules.",
				Write: true, Access: AccessRootAdmin, ObjectName: "role", Related: "listRoles", Response: roleFields,
				Params: []ParamSpec{
					{Name: "name", Type: "string", Required: true, Description: "Name of the role; unique."},
					{Name: "type", Type: "string", Description: "Admin, DomainAdmin or User; needed unless roleid is given."},
					{Name: "roleid", Type: "uuid", Description: "Copy the rules (and the type) of this role.", Related: "listRoles"},
					{Name: "description", Type: "string", Description: "What the role is for."},
				},
				Handler: createRole,
			},
			{
				Name: "listRoles", Description: "Lists roles the caller may hand out.", Access: AccessDomainAdmin,
				ObjectName: "role", Related: "createRole", Response: roleFields,
				Params: withPaging(
					ParamSpec{Name: "id", Type: "uuid", Description: "Only the role with this ID.", Related: "listRoles"},
					ParamSpec{Name: "name", Type: "string", Description: "Only the role with this name."},
					ParamSpec{Name: "type", Type: "string", Description: "Only roles of this type."},
				),
				Handler: listRoles,
			},
			{
				Name: "updateRole", Description: "Renames a custom role or changes its type or description.",
				Write: true, Access: AccessRootAdmin, ObjectName: "role", Related: "listRoles", Response: roleFields,
				Params: []ParamSpec{
					{Name: "id", Type: "uuid", Required: true, Description: "ID of the role.", Related: "listRoles"},
					{Name: "name", Type: "string", Description: "New name."},
					{Name: "type", Type: "string", Description: "New type; only for roles no account has."},
					{Name: "description", Type: "string", Description: "New description."},
				},
				Handler: updateRole,
			},
			{
				Name: "deleteRole", Description: "Deletes a custom role that no account has.", Write: true, Access: AccessRootAdmin,
				Response: successResponse,
				Params:   []ParamSpec{{Name: "id", Type: "uuid", Required: true, Description: "ID of the role.", Related: "listRoles"}},
				Handler:  deleteRole,
			},
			{
				Name: "createRolePermission", Description: "Adds a rule at the end of a custom role's rules.",
				Write: true, Access: AccessRootAdmin, ObjectName: "rolepermission", Related: "listRolePermissions", Response: rolePermissionFields,
				Params: []ParamSpec{
					roleID,
					{Name: "rule", Type: "string", Required: true, Description: "A command name, or a pattern where * stands for any letters, e.g. list*."},
					{Name: "permission", Type: "string", Required: true, Description: "allow or deny."},
					{Name: "description", Type: "string", Description: "What the rule is for."},
				},
				Handler: func(r *Request) (any, *Error) { return createRolePermission(r, s) },
			},
			{
				Name: "listRolePermissions", Description: "Lists the rules of a role, in the order they are evaluated; for built-in roles the rules implied by each command's access level.",
				Access: AccessRootAdmin, ObjectName: "rolepermission", Related: "createRolePermission", Response: rolePermissionFields,
				Params:  []ParamSpec{{Name: "roleid", Type: "uuid", Description: "Only the rules of this role.", Related: "listRoles"}},
				Handler: func(r *Request) (any, *Error) { return listRolePermissions(r, s) },
			},
			{
				Name: "updateRolePermission", Description: "Reorders a custom role's rules, or changes one rule's permission.",
				Write: true, Access: AccessRootAdmin, Response: successResponse,
				Params: []ParamSpec{
					roleID,
					{Name: "ruleorder", Type: "list", Description: "Every rule ID of the role, in the new order."},
					{Name: "ruleid", Type: "uuid", Description: "The rule whose permission to change.", Related: "listRolePermissions"},
					{Name: "permission", Type: "string", Description: "New permission of ruleid: allow or deny."},
				},
				Handler: updateRolePermission,
			},
			{
				Name: "deleteRolePermission", Description: "Removes a rule from a custom role.", Write: true, Access: AccessRootAdmin,
				Response: successResponse,
				Params:   []ParamSpec{{Name: "id", Type: "uuid", Required: true, Description: "ID of the rule.", Related: "listRolePermissions"}},
				Handler:  deleteRolePermission,
			},
		}
	})
}

// roleRank orders role types from most (0) to least privileged, the way
// Access orders commands.
func roleRank(roleType string) Access {
	switch roleType {
	case fsm.RoleTypeAdmin:
		return AccessRootAdmin
	case fsm.RoleTypeDomainAdmin:
		return AccessDomainAdmin
	}
	return AccessUser
}

// accessAllows reports whether a role of roleType may reach a command of
// the given access level.
func accessAllows(access Access, roleType string) bool {
	return access >= roleRank(roleType)
}

// permitted reports whether an account's role allows it to call cmd; see
// the comment at the top of this file. listApis shows only these commands.
func (s *Server) permitted(acct *fsm.Account, cmd *Command) bool {
	return permittedIn(s.c.State(), acct, cmd)
}

func permittedIn(st *fsm.Store, acct *fsm.Account, cmd *Command) bool {
	if isSessionCommand(cmd.Name) {
		return true // answered before any role check: everyone may sign in and out
	}
	if !cmd.allowed(acct) {
		return false
	}
	role := roleOf(st, acct)
	if role == nil || !accessAllows(cmd.Access, role.Type) {
		return false // a deleted custom role allows nothing
	}
	if role.BuiltIn {
		return true
	}
	for _, p := range rulesOf(st, role.ID) {
		if ruleMatches(p.Rule, cmd.Name) {
			return p.Permission == fsm.PermissionAllow
		}
	}
	return false
}

// rulesOf returns a custom role's rules in evaluation order.
func rulesOf(st *fsm.Store, roleID string) []*fsm.RolePermission {
	rules, _ := fsm.List[fsm.RolePermission](st, nil, fsm.TableRolePermissions, "role", roleID)
	sort.SliceStable(rules, func(i, j int) bool {
		if rules[i].SortOrder != rules[j].SortOrder {
			return rules[i].SortOrder < rules[j].SortOrder
		}
		return rules[i].ID < rules[j].ID
	})
	return rules
}

// ruleMatches matches a command name against a rule, where * stands for
// any run of characters. Case is ignored.
func ruleMatches(rule, name string) bool {
	rule, name = strings.ToLower(rule), strings.ToLower(name)
	ri, ni, star, mark := 0, 0, -1, 0
	for ni < len(name) {
		switch {
		case ri < len(rule) && rule[ri] == '*':
			star, mark = ri, ni
			ri++
		case ri < len(rule) && rule[ri] == name[ni]:
			ri++
			ni++
		case star >= 0:
			ri, mark = star+1, mark+1
			ni = mark
		default:
			return false
		}
	}
	for ri < len(rule) && rule[ri] == '*' {
		ri++
	}
	return ri == len(rule)
}

// canSeeRole reports whether the caller may see (and hand out) a role: one
// of its own type or a less privileged one.
func (r *Request) canSeeRole(role *fsm.Role) bool {
	return roleRank(role.Type) >= roleRank(fsm.RoleTypeOfAccount(r.Account.Type))
}

func roleTypeParam(p Params, name string) (string, *Error) {
	v := p.String(name)
	for _, t := range []string{fsm.RoleTypeAdmin, fsm.RoleTypeDomainAdmin, fsm.RoleTypeUser} {
		if strings.EqualFold(v, t) {
			return t, nil
		}
	}
	return "", ErrParam("invalid value %q for parameter %s: use Admin, DomainAdmin or User", v, name)
}

func toRoleResponse(role *fsm.Role) roleResponse {
	return roleResponse{ID: role.ID, Name: role.Name, Type: role.Type, Description: role.Description, IsDefault: role.BuiltIn}
}

func roleBody(r *Request, id string) (any, *Error) {
	role, _ := fsm.Get[fsm.Role](r.State(), nil, fsm.TableRoles, id)
	if role == nil {
		return nil, ErrInternal("role " + id + " was committed but cannot be read back")
	}
	return map[string]any{"role": toRoleResponse(role)}, nil
}

// lookupRole resolves a uuid parameter to a role the caller may see; the
// built-in roles resolve even before they are seeded.
func lookupRole(r *Request, param string) (*fsm.Role, *Error) {
	raw := r.Params.String(param)
	var role *fsm.Role
	if raw != "" {
		role = roleOf(r.State(), &fsm.Account{RoleID: strings.ToLower(raw)})
	}
	if role == nil || !r.canSeeRole(role) {
		return nil, ErrEntityNotFound(r.Params.Cmd, param, raw)
	}
	return role, nil
}

// customRole resolves a role parameter that must name a custom role.
func customRole(r *Request, param string) (*fsm.Role, *Error) {
	role, e := lookupRole(r, param)
	if e != nil {
		return nil, e
	}
	if role.BuiltIn {
		return nil, ErrParam("role %s is built in: its rules follow from each command's access level and cannot be changed; copy it with createRole roleid=%s to make a role you can change", role.Name, role.ID)
	}
	return role, nil
}

func roleNameTaken(r *Request, name, exceptID string) *Error {
	for _, other := range listAllRoles(r.State()) {
		if strings.EqualFold(other.Name, name) && other.ID != exceptID {
			return ErrParam("a role named %s already exists (id %s)", other.Name, other.ID)
		}
	}
	return nil
}

// listAllRoles returns the stored roles, oldest first, with any built-in
// role not yet seeded.
func listAllRoles(st *fsm.Store) []*fsm.Role {
	stored, _ := fsm.List[fsm.Role](st, nil, fsm.TableRoles, "create")
	have := map[string]bool{}
	for _, ro := range stored {
		have[ro.ID] = true
	}
	var out []*fsm.Role
	for _, b := range fsm.BuiltinRoles() {
		if !have[b.ID] {
			b := b
			out = append(out, &b)
		}
	}
	return append(out, stored...)
}

func createRole(r *Request) (any, *Error) {
	p := r.Params
	name := strings.TrimSpace(p.String("name"))
	if e := validName("role", name); e != nil {
		return nil, e
	}
	if e := roleNameTaken(r, name, ""); e != nil {
		return nil, e
	}
	role := &fsm.Role{ID: newID(), Name: name, Description: p.String("description"), Created: r.srv.now().UTC()}
	var from *fsm.Role
	if p.Has("roleid") {
		src, e := lookupRole(r, "roleid")
		if e != nil {
			return nil, e
		}
		from, role.Type = src, src.Type
	}
	if p.Has("type") {
		t, e := roleTypeParam(p, "type")
		if e != nil {
			return nil, e
		}
		if from != nil && t != from.Type {
			return nil, ErrParam("type %s differs from the type %s of role %s being copied; omit type", t, from.Type, from.Name)
		}
		role.Type = t
	}
	if role.Type == "" {
		return nil, ErrParam("give the new role's type, or a role to copy in roleid")
	}
	ops := []fsm.TxnOp{fsm.Create(fsm.TableRoles, role)}
	if from != nil {
		for i, src := range rulesForRole(r, r.srv, from) {
			rule := &fsm.RolePermission{ID: newID(), RoleID: role.ID, Rule: src.Rule, Permission: src.Permission,
				Description: src.Description, SortOrder: i, Created: role.Created}
			ops = append(ops, fsm.Create(fsm.TableRolePermissions, rule))
		}
	}
	ops = append(ops, r.event("ROLE.CREATE", "Role", role.ID, "created role %s of type %s", role.Name, role.Type))
	if e := r.commit(ops...); e != nil {
		return nil, e
	}
	return roleBody(r, role.ID)
}

// rulesForRole returns a role's rules: stored ones for a custom role, the
// implied ones for a built-in role.
func rulesForRole(r *Request, s *Server, role *fsm.Role) []rolePermissionResponse {
	var out []rolePermissionResponse
	if role.BuiltIn {
		for _, c := range s.cmds.sorted() {
			if accessAllows(c.Access, role.Type) {
				out = append(out, rolePermissionResponse{
					ID: uuid.NewSHA1(derivedRuleNamespace, []byte(role.ID+"/"+c.Name)).String(), RoleID: role.ID, RoleName: role.Name,
					Rule: c.Name, Permission: fsm.PermissionAllow, Description: "implied by the command's access level",
				})
			}
		}
		return out
	}
	for _, p := range rulesOf(r.State(), role.ID) {
		out = append(out, rolePermissionResponse{ID: p.ID, RoleID: role.ID, RoleName: role.Name, Rule: p.Rule,
			Permission: p.Permission, Description: p.Description})
	}
	return out
}

func listRoles(r *Request) (any, *Error) {
	p := r.Params
	start, limit, e := p.Page(r.State().SettingInt(fsm.SettingDefaultPageSize))
	if e != nil {
		return nil, e
	}
	roles := listAllRoles(r.State())
	if p.Has("id") {
		role, e := lookupRole(r, "id")
		if e != nil {
			return nil, e
		}
		roles = []*fsm.Role{role}
	}
	typ := ""
	if p.Has("type") {
		if typ, e = roleTypeParam(p, "type"); e != nil {
			return nil, e
		}
	}
	name, kw := p.String("name"), strings.ToLower(p.String("keyword"))
	var out []roleResponse
	for _, role := range roles {
		if !r.canSeeRole(role) || (typ != "" && role.Type != typ) || (name != "" && !strings.EqualFold(role.Name, name)) ||
			(kw != "" && !strings.Contains(strings.ToLower(role.Name+" "+role.Description), kw)) {
			continue
		}
		out = append(out, toRoleResponse(role))
	}
	return ListBody("role", len(out), Paginate(out, start, limit)), nil
}

// accountsWithRole returns the accounts that have a role.
func accountsWithRole(st *fsm.Store, roleID string) []*fsm.Account {
	all, _ := st.Accounts(nil)
	var out []*fsm.Account
	for _, a := range all {
		if fsm.RoleOf(a) == roleID {
			out = append(out, a)
		}
	}
	return out
}

func updateRole(r *Request) (any, *Error) {
	p := r.Params
	role, e := customRole(r, "id")
	if e != nil {
		return nil, e
	}
	c := *role
	if p.Has("name") {
		c.Name = strings.TrimSpace(p.String("name"))
		if e := validName("role", c.Name); e != nil {
			return nil, e
		}
		if e := roleNameTaken(r, c.Name, role.ID); e != nil {
			return nil, e
		}
	}
	if p.Has("description") {
		c.Description = p.String("description")
	}
	if p.Has("type") {
		t, e := roleTypeParam(p, "type")
		if e != nil {
			return nil, e
		}
		if users := accountsWithRole(r.State(), role.ID); t != role.Type && len(users) > 0 {
			return nil, ErrInUse("the type of role " + role.Name + " cannot change while accounts have it, such as " + users[0].Name)
		}
		c.Type = t
	}
	// Update is a compare-and-set on the role, which every account given
	// the role bumps (see roleTouch), so the type check above holds.
	if e := r.commit(fsm.Update(fsm.TableRoles, &c), r.event("ROLE.UPDATE", "Role", role.ID, "updated role %s", c.Name)); e != nil {
		return nil, e
	}
	return roleBody(r, role.ID)
}

func deleteRole(r *Request) (any, *Error) {
	role, e := customRole(r, "id")
	if e != nil {
		return nil, e
	}
	if users := accountsWithRole(r.State(), role.ID); len(users) > 0 {
		return nil, ErrInUse("cannot delete role " + role.Name + ": account " + users[0].Name + " still has it; give that account another role first")
	}
	var ops []fsm.TxnOp
	for _, p := range rulesOf(r.State(), role.ID) {
		ops = append(ops, fsm.Delete(fsm.TableRolePermissions, p.ID))
	}
	del := fsm.Delete(fsm.TableRoles, role.ID)
	del.IfIndex = role.ModifyIndex // fails if an account took the role meanwhile
	ops = append(ops, del, r.event("ROLE.DELETE", "Role", role.ID, "deleted role %s", role.Name))
	if e := r.commit(ops...); e != nil {
		return nil, e
	}
	return successBody(), nil
}

func permissionParam(p Params, name string) (string, *Error) {
	switch v := p.String(name); {
	case strings.EqualFold(v, fsm.PermissionAllow):
		return fsm.PermissionAllow, nil
	case strings.EqualFold(v, fsm.PermissionDeny):
		return fsm.PermissionDeny, nil
	default:
		return "", ErrParam("invalid value %q for parameter %s: use allow or deny", v, name)
	}
}

// checkRule validates a rule: letters, digits, _ and *; a rule without *
// must name a command this server has (its name is returned as registered).
func checkRule(s *Server, rule string) (string, *Error) {
	if rule == "" || len(rule) > 255 {
		return "", ErrParam("parameter rule must be 1 to 255 characters")
	}
	for _, c := range rule {
		if !(c == '*' || c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return "", ErrParam("invalid rule %q: use a command name or a pattern of letters, digits, _ and *", rule)
		}
	}
	if strings.Contains(rule, "*") {
		return rule, nil
	}
	for name := range s.cmds {
		if strings.EqualFold(name, rule) {
			return name, nil
		}
	}
	return "", ErrParam("invalid rule %q: no command has that name", rule)
}

func createRolePermission(r *Request, s *Server) (any, *Error) {
	p := r.Params
	role, e := customRole(r, "roleid")
	if e != nil {
		return nil, e
	}
	rule, e := checkRule(s, strings.TrimSpace(p.String("rule")))
	if e != nil {
		return nil, e
	}
	perm, e := permissionParam(p, "permission")
	if e != nil {
		return nil, e
	}
	rules := rulesOf(r.State(), role.ID)
	order := 0
	for _, x := range rules {
		if x.Rule == rule {
			return nil, ErrParam("role %s already has a rule for %s (id %s)", role.Name, rule, x.ID)
		}
		if x.SortOrder >= order {
			order = x.SortOrder + 1
		}
	}
	rp := &fsm.RolePermission{ID: newID(), RoleID: role.ID, Rule: rule, Permission: perm,
		Description: p.String("description"), SortOrder: order, Created: r.srv.now().UTC()}
	touch := *role
	e = r.commit(fsm.Update(fsm.TableRoles, &touch), fsm.Create(fsm.TableRolePermissions, rp),
		r.event("ROLE.PERMISSION.CREATE", "Role", role.ID, "role %s: %s %s", role.Name, perm, rule))
	if e != nil {
		return nil, e
	}
	return map[string]any{"rolepermission": rolePermissionResponse{ID: rp.ID, RoleID: role.ID, RoleName: role.Name,
		Rule: rp.Rule, Permission: rp.Permission, Description: rp.Description}}, nil
}

func listRolePermissions(r *Request, s *Server) (any, *Error) {
	roles := listAllRoles(r.State())
	if r.Params.Has("roleid") {
		role, e := lookupRole(r, "roleid")
		if e != nil {
			return nil, e
		}
		roles = []*fsm.Role{role}
	}
	var out []rolePermissionResponse
	for _, role := range roles {
		out = append(out, rulesForRole(r, s, role)...)
	}
	return ListBody("rolepermission", len(out), out), nil
}

func updateRolePermission(r *Request) (any, *Error) {
	p := r.Params
	role, e := customRole(r, "roleid")
	if e != nil {
		return nil, e
	}
	rules := rulesOf(r.State(), role.ID)
	byID := map[string]*fsm.RolePermission{}
	for _, x := range rules {
		byID[x.ID] = x
	}
	touch := *role
	ops := []fsm.TxnOp{fsm.Update(fsm.TableRoles, &touch)}
	switch {
	case p.Has("ruleorder"):
		order := p.List("ruleorder")
		seen := map[string]bool{}
		for _, id := range order {
			id = strings.ToLower(id)
			if byID[id] == nil || seen[id] {
				return nil, ErrParam("ruleorder must list each rule of role %s exactly once; %s is not one of them or repeats", role.Name, id)
			}
			seen[id] = true
		}
		if len(order) != len(rules) {
			return nil, ErrParam("ruleorder lists %d rules; role %s has %d: list them all", len(order), role.Name, len(rules))
		}
		for i, id := range order {
			c := *byID[strings.ToLower(id)]
			c.SortOrder = i
			ops = append(ops, fsm.Update(fsm.TableRolePermissions, &c))
		}
	case p.Has("ruleid"):
		x := byID[strings.ToLower(p.String("ruleid"))]
		if x == nil {
			return nil, ErrEntityNotFound(p.Cmd, "ruleid", p.String("ruleid"))
		}
		perm, e := permissionParam(p, "permission")
		if e != nil {
			return nil, e
		}
		c := *x
		c.Permission = perm
		ops = append(ops, fsm.Update(fsm.TableRolePermissions, &c))
	default:
		return nil, ErrParam("give ruleorder, or ruleid with permission")
	}
	ops = append(ops, r.event("ROLE.PERMISSION.UPDATE", "Role", role.ID, "updated the rules of role %s", role.Name))
	if e := r.commit(ops...); e != nil {
		return nil, e
	}
	return successBody(), nil
}

func deleteRolePermission(r *Request) (any, *Error) {
	rp, e := lookup[fsm.RolePermission](r, fsm.TableRolePermissions, "id", nil)
	if e != nil {
		return nil, e
	}
	role, _ := fsm.Get[fsm.Role](r.State(), nil, fsm.TableRoles, rp.RoleID)
	if role == nil {
		return nil, ErrEntityNotFound(r.Params.Cmd, "id", r.Params.String("id"))
	}
	touch := *role
	e = r.commit(fsm.Update(fsm.TableRoles, &touch), fsm.Delete(fsm.TableRolePermissions, rp.ID),
		r.event("ROLE.PERMISSION.DELETE", "Role", role.ID, "role %s: removed the rule for %s", role.Name, rp.Rule))
	if e != nil {
		return nil, e
	}
	return successBody(), nil
}
