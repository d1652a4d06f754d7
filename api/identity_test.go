package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/ops"
)

func init() {
	// Hashes name their own work factor; tests need not pay for the real one.
	passwordIterations = 1000
}

// ident is a caller of the identity tests.
type ident struct {
	name, key, secret, userID, accountID string
}

func (id ident) do(t *testing.T, s *Server, params map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	return signedAs(t, s, id.key, id.secret, params)
}

// ok asserts a 200 answer and returns its inner object.
func (id ident) ok(t *testing.T, s *Server, params map[string]string) map[string]any {
	t.Helper()
	rec := id.do(t, s, params)
	if rec.Code != http.StatusOK {
		t.Fatalf("%s %v: %d %s", id.name, params, rec.Code, rec.Body.String())
	}
	return decode(t, rec, strings.ToLower(params["command"])+"response")
}

// fixture is a small cloud: domains ROOT/eng and ROOT/eng/web; a domain
// admin of ROOT/eng; user alice in ROOT/eng, bob in ROOT/eng/web and carol
// in ROOT, each in its own account with API keys.
type fixture struct {
	s                          *Server
	c                          *fakeCluster
	root, dadmin, alice, bob   ident
	carol                      ident
	rootDomain, engID, webID   string
	alicePassword, rootAdminID string
}

const testPassword = "correct horse"

func newIdentityFixture(t *testing.T) *fixture {
	t.Helper()
	s, c := newTestServer(t)
	f := &fixture{s: s, c: c, root: ident{name: "root", key: adminKey, secret: adminSecret,
		userID: "11111111-1111-4111-8111-111111111111", accountID: "33333333-3333-4333-8333-333333333333"},
		rootDomain: "22222222-2222-4222-8222-222222222222", alicePassword: testPassword}
	f.engID = f.root.ok(t, s, map[string]string{"command": "createDomain", "name": "eng"})["domain"].(map[string]any)["id"].(string)
	f.webID = f.root.ok(t, s, map[string]string{"command": "createDomain", "name": "web", "parentdomainid": f.engID})["domain"].(map[string]any)["id"].(string)
	f.dadmin = f.newAccount(t, f.root, "dadmin", f.engID, map[string]string{"accounttype": "2"})
	f.alice = f.newAccount(t, f.root, "alice", f.engID, map[string]string{"accounttype": "0"})
	f.bob = f.newAccount(t, f.dadmin, "bob", f.webID, map[string]string{"accounttype": "0"})
	f.carol = f.newAccount(t, f.root, "carol", f.rootDomain, map[string]string{"accounttype": "0"})
	return f
}

// newAccount creates an account whose first user is called name, as
// caller, and gives the user API keys.
func (f *fixture) newAccount(t *testing.T, caller ident, name, domainID string, extra map[string]string) ident {
	t.Helper()
	params := map[string]string{"command": "createAccount", "username": name, "password": testPassword, "email": name + "@example.com",
		"firstname": strings.ToUpper(name[:1]) + name[1:], "lastname": "Tester", "domainid": domainID}
	for k, v := range extra {
		params[k] = v
	}
	acct := caller.ok(t, f.s, params)["account"].(map[string]any)
	userID := acct["user"].([]any)[0].(map[string]any)["id"].(string)
	keys := caller.ok(t, f.s, map[string]string{"command": "registerUserKeys", "id": userID})["userkeys"].(map[string]any)
	return ident{name: name, key: keys["apikey"].(string), secret: keys["secretkey"].(string), userID: userID, accountID: acct["id"].(string)}
}

// names lists a field of every item of a list response.
func names(body map[string]any, item, field string) []string {
	var out []string
	items, _ := body[item].([]any)
	for _, it := range items {
		out = append(out, it.(map[string]any)[field].(string))
	}
	sort.Strings(out)
	return out
}

func wantNames(t *testing.T, who string, got []string, want ...string) {
	t.Helper()
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%s sees %v, want %v", who, got, want)
	}
}

const notAvailable = "does not exist or is not available for the account"

// TestIdentityRoleMatrix: which commands the root admin, a domain admin of
// ROOT/eng and users of two accounts may call.
func TestIdentityRoleMatrix(t *testing.T) {
	f := newIdentityFixture(t)
	s := f.s

	// Command access by role.
	access := []struct {
		cmd                        map[string]string
		root, dadmin, alice, carol bool
	}{
		{map[string]string{"command": "listDomains"}, true, true, true, true},
		{map[string]string{"command": "listDomainChildren"}, true, true, false, false},
		{map[string]string{"command": "listAccounts"}, true, true, true, true},
		{map[string]string{"command": "listUsers"}, true, true, true, true},
		{map[string]string{"command": "listRoles"}, true, true, false, false},
		{map[string]string{"command": "listRolePermissions"}, true, false, false, false},
		{map[string]string{"command": "createRole", "name": "x", "type": "User"}, true, false, false, false},
		{map[string]string{"command": "updateConfiguration", "name": "session.timeout", "value": "1800"}, true, false, false, false},
		{map[string]string{"command": "createUser", "account": "nobody", "username": "u", "password": "p", "email": "e", "firstname": "f", "lastname": "l"}, true, true, false, false},
	}
	for _, a := range access {
		for _, c := range []struct {
			id      ident
			allowed bool
		}{{f.root, a.root}, {f.dadmin, a.dadmin}, {f.alice, a.alice}, {f.carol, a.carol}} {
			rec := c.id.do(t, s, a.cmd)
			denied := rec.Code == 401 && strings.Contains(rec.Body.String(), notAvailable)
			if denied == c.allowed {
				t.Errorf("%s calling %s: %d %s (want allowed=%v)", c.id.name, a.cmd["command"], rec.Code, rec.Body.String(), c.allowed)
			}
		}
	}
}

// TestIdentityVisibility: which domains, accounts and users each caller
// sees; a user reading another account's user by id gets "entity does not
// exist".
func TestIdentityVisibility(t *testing.T) {
	f := newIdentityFixture(t)
	s := f.s
	// The domain admin creates domains only below its own.
	f.dadmin.ok(t, s, map[string]string{"command": "createDomain", "name": "api", "parentdomainid": f.engID})
	wantError(t, f.dadmin.do(t, s, map[string]string{"command": "createDomain", "name": "x", "parentdomainid": f.rootDomain}),
		"createdomainresponse", 431, "entity does not exist")

	// Domains each caller sees.
	doms := func(id ident, extra map[string]string) []string {
		p := map[string]string{"command": "listDomains"}
		for k, v := range extra {
			p[k] = v
		}
		return names(id.ok(t, s, p), "domain", "path")
	}
	wantNames(t, "root", doms(f.root, nil), "ROOT", "ROOT/eng", "ROOT/eng/web", "ROOT/eng/api")
	wantNames(t, "dadmin", doms(f.dadmin, nil), "ROOT/eng")
	wantNames(t, "dadmin listall", doms(f.dadmin, map[string]string{"listall": "true"}), "ROOT/eng", "ROOT/eng/web", "ROOT/eng/api")
	wantNames(t, "alice listall", doms(f.alice, map[string]string{"listall": "true"}), "ROOT/eng")
	wantNames(t, "root level 2", doms(f.root, map[string]string{"level": "2"}), "ROOT/eng/web", "ROOT/eng/api")
	wantError(t, f.dadmin.do(t, s, map[string]string{"command": "listDomains", "id": f.rootDomain}), "listdomainsresponse", 431, "entity does not exist")
	wantError(t, f.alice.do(t, s, map[string]string{"command": "listDomains", "id": f.webID}), "listdomainsresponse", 431, "entity does not exist")

	// Accounts each caller sees.
	accts := func(id ident, extra map[string]string) []string {
		p := map[string]string{"command": "listAccounts"}
		for k, v := range extra {
			p[k] = v
		}
		return names(id.ok(t, s, p), "account", "name")
	}
	all := map[string]string{"listall": "true"}
	wantNames(t, "root listall", accts(f.root, all), "admin", "dadmin", "alice", "bob", "carol")
	wantNames(t, "root", accts(f.root, nil), "admin", "carol")
	wantNames(t, "root in eng", accts(f.root, map[string]string{"domainid": f.engID}), "dadmin", "alice")
	wantNames(t, "root in eng recursive", accts(f.root, map[string]string{"domainid": f.engID, "isrecursive": "true"}), "dadmin", "alice", "bob")
	wantNames(t, "dadmin listall", accts(f.dadmin, all), "dadmin", "alice", "bob")
	wantNames(t, "alice listall", accts(f.alice, all), "alice")
	wantNames(t, "bob", accts(f.bob, nil), "bob")
	wantError(t, f.alice.do(t, s, map[string]string{"command": "listAccounts", "id": f.bob.accountID}), "listaccountsresponse", 431, "entity does not exist")
	wantError(t, f.dadmin.do(t, s, map[string]string{"command": "listAccounts", "id": f.carol.accountID}), "listaccountsresponse", 431, "entity does not exist")
	wantError(t, f.dadmin.do(t, s, map[string]string{"command": "listAccounts", "domainid": f.rootDomain}), "listaccountsresponse", 431, "entity does not exist")

	// Users: a user reading another account's user by id gets "entity does not exist".
	users := func(id ident) []string {
		return names(id.ok(t, s, map[string]string{"command": "listUsers", "listall": "true"}), "user", "username")
	}
	wantNames(t, "root users", users(f.root), "admin", "dadmin", "alice", "bob", "carol")
	wantNames(t, "dadmin users", users(f.dadmin), "dadmin", "alice", "bob")
	wantNames(t, "alice users", users(f.alice), "alice")
	for _, other := range []ident{f.bob, f.carol, f.root} {
		rec := f.alice.do(t, s, map[string]string{"command": "listUsers", "id": other.userID})
		wantError(t, rec, "listusersresponse", 431, "Invalid parameter id value="+other.userID+" due to incorrect long value format, or entity does not exist")
	}
	wantError(t, f.dadmin.do(t, s, map[string]string{"command": "listUsers", "id": f.root.userID}), "listusersresponse", 431, "entity does not exist")
	if got := names(f.dadmin.ok(t, s, map[string]string{"command": "listUsers", "id": f.bob.userID}), "user", "username"); len(got) != 1 {
		t.Errorf("dadmin reading bob by id = %v", got)
	}

}

// TestIdentityManagementLimits: keys, account creation and changes stay
// within what each caller manages.
func TestIdentityManagementLimits(t *testing.T) {
	f := newIdentityFixture(t)
	s := f.s
	// Keys: only of users the caller manages.
	keys := f.dadmin.ok(t, s, map[string]string{"command": "getUserKeys", "id": f.alice.userID})["userkeys"].(map[string]any)
	if keys["apikey"] != f.alice.key || keys["secretkey"] != f.alice.secret {
		t.Errorf("dadmin getUserKeys of alice = %v", keys)
	}
	f.alice.ok(t, s, map[string]string{"command": "getUserKeys", "id": f.alice.userID})
	wantError(t, f.alice.do(t, s, map[string]string{"command": "getUserKeys", "id": f.bob.userID}), "getuserkeysresponse", 431, "entity does not exist")
	wantError(t, f.dadmin.do(t, s, map[string]string{"command": "getUserKeys", "id": f.root.userID}), "getuserkeysresponse", 431, "entity does not exist")
	wantError(t, f.alice.do(t, s, map[string]string{"command": "registerUserKeys", "id": f.carol.userID}), "registeruserkeysresponse", 431, "entity does not exist")

	// Account creation is capped by the creator's role and domain.
	base := map[string]string{"command": "createAccount", "username": "eve", "password": "pw", "email": "e@x", "firstname": "E", "lastname": "V"}
	with := func(kv ...string) map[string]string {
		p := map[string]string{}
		for k, v := range base {
			p[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			p[kv[i]] = kv[i+1]
		}
		return p
	}
	wantError(t, f.dadmin.do(t, s, with("accounttype", "1")), "createaccountresponse", 531, "may not give")
	wantError(t, f.dadmin.do(t, s, with("accounttype", "0", "domainid", f.rootDomain)), "createaccountresponse", 431, "entity does not exist")
	wantError(t, f.dadmin.do(t, s, with("roleid", fsm.RoleIDRootAdmin)), "createaccountresponse", 431, "entity does not exist")
	wantError(t, f.alice.do(t, s, with("accounttype", "0")), "createaccountresponse", 401, notAvailable)
	eve := f.dadmin.ok(t, s, with("accounttype", "0"))["account"].(map[string]any)
	if eve["domainid"] != f.engID || eve["roletype"] != "User" || eve["rolename"] != "User" || eve["accounttype"].(float64) != 0 {
		t.Errorf("dadmin's new account = %v", eve)
	}
	// The domain admin manages accounts below it, not above or beside.
	f.dadmin.ok(t, s, map[string]string{"command": "updateAccount", "id": f.bob.accountID, "newname": "robert"})
	wantError(t, f.dadmin.do(t, s, map[string]string{"command": "updateAccount", "id": f.carol.accountID, "newname": "x"}), "updateaccountresponse", 431, "entity does not exist")
	wantError(t, f.dadmin.do(t, s, map[string]string{"command": "deleteAccount", "id": f.root.accountID}), "deleteaccountresponse", 431, "entity does not exist")
	wantError(t, f.dadmin.do(t, s, map[string]string{"command": "disableAccount", "id": f.dadmin.accountID, "lock": "false"}), "disableaccountresponse", 431, "your own account")
	wantError(t, f.alice.do(t, s, map[string]string{"command": "deleteUser", "id": f.bob.userID}), "deleteuserresponse", 401, notAvailable)
	wantError(t, f.root.do(t, s, map[string]string{"command": "deleteUser", "id": f.root.userID}), "deleteuserresponse", 431, "yourself")
}

// TestDisableEnableAndDeleteAccount: disableAccount and deleteAccount answer
// with an already finished job; disabled accounts cannot use their keys.
func TestDisableEnableAndDeleteAccount(t *testing.T) {
	f := newIdentityFixture(t)
	s := f.s
	body := f.dadmin.ok(t, s, map[string]string{"command": "disableAccount", "id": f.bob.accountID, "lock": "true"})
	job := f.dadmin.ok(t, s, map[string]string{"command": "queryAsyncJobResult", "jobid": body["jobid"].(string)})
	if job["jobstatus"].(float64) != 1 || job["jobresult"].(map[string]any)["account"].(map[string]any)["state"] != "locked" {
		t.Fatalf("disableAccount job = %v", job)
	}
	wantError(t, f.bob.do(t, s, map[string]string{"command": "listUsers"}), "listusersresponse", 401, "disabled")
	enabled := f.dadmin.ok(t, s, map[string]string{"command": "enableAccount", "account": "bob", "domainid": f.webID})["account"].(map[string]any)
	if enabled["state"] != "enabled" {
		t.Fatalf("enableAccount = %v", enabled)
	}
	f.bob.ok(t, s, map[string]string{"command": "listUsers"})

	// A disabled user is refused too, and enabled again.
	f.root.ok(t, s, map[string]string{"command": "disableUser", "id": f.carol.userID})
	wantError(t, f.carol.do(t, s, map[string]string{"command": "listZones"}), "listzonesresponse", 401, "disabled")
	f.root.ok(t, s, map[string]string{"command": "enableUser", "id": f.carol.userID})
	f.carol.ok(t, s, map[string]string{"command": "listZones"})

	// Delete: the account, its users and keys are gone.
	del := f.root.ok(t, s, map[string]string{"command": "deleteAccount", "id": f.bob.accountID})
	job = f.root.ok(t, s, map[string]string{"command": "queryAsyncJobResult", "jobid": del["jobid"].(string)})
	if job["jobstatus"].(float64) != 1 || job["jobresult"].(map[string]any)["success"] != true {
		t.Fatalf("deleteAccount job = %v", job)
	}
	wantError(t, f.bob.do(t, s, map[string]string{"command": "listZones"}), "listzonesresponse", 401, "")
	wantError(t, f.root.do(t, s, map[string]string{"command": "listUsers", "id": f.bob.userID}), "listusersresponse", 431, "entity does not exist")
	wantError(t, f.root.do(t, s, map[string]string{"command": "deleteAccount", "id": f.root.accountID}), "deleteaccountresponse", 431, "own account")

	// Events recorded for each change.
	evs := f.root.ok(t, s, map[string]string{"command": "listEvents", "listall": "true", "pagesize": "-1"})
	seen := map[string]bool{}
	for _, e := range evs["event"].([]any) {
		seen[e.(map[string]any)["type"].(string)] = true
	}
	for _, typ := range []string{"DOMAIN.CREATE", "ACCOUNT.CREATE", "USER.CREATE", "REGISTER.USER.KEY", "ACCOUNT.LOCK",
		"ACCOUNT.ENABLE", "USER.DISABLE", "USER.ENABLE", "ACCOUNT.DELETE"} {
		if !seen[typ] {
			t.Errorf("no %s event", typ)
		}
	}
}

func TestDomainTreeOperations(t *testing.T) {
	f := newIdentityFixture(t)
	s := f.s
	// Duplicate names among siblings, slashes and unknown parents.
	wantError(t, f.root.do(t, s, map[string]string{"command": "createDomain", "name": "ENG"}), "createdomainresponse", 431, "already exists")
	wantError(t, f.root.do(t, s, map[string]string{"command": "createDomain", "name": "a/b"}), "createdomainresponse", 431, "slash")
	wantError(t, f.root.do(t, s, map[string]string{"command": "createDomain"}), "createdomainresponse", 431, "missing parameter name")
	wantError(t, f.root.do(t, s, map[string]string{"command": "createDomain", "name": "x", "parentdomainid": "99999999-9999-4999-8999-999999999999"}),
		"createdomainresponse", 431, "parentdomainid value=99999999-9999-4999-8999-999999999999")

	// Rename moves the whole subtree in one commit.
	up := f.root.ok(t, s, map[string]string{"command": "updateDomain", "id": f.engID, "name": "engineering", "networkdomain": "eng.example"})["domain"].(map[string]any)
	if up["path"] != "ROOT/engineering" || up["networkdomain"] != "eng.example" || up["level"].(float64) != 1 || up["haschild"] != true {
		t.Fatalf("renamed domain = %v", up)
	}
	web := f.root.ok(t, s, map[string]string{"command": "listDomains", "id": f.webID})["domain"].([]any)[0].(map[string]any)
	if web["path"] != "ROOT/engineering/web" || web["parentdomainname"] != "engineering" || web["level"].(float64) != 2 {
		t.Fatalf("child after rename = %v", web)
	}
	wantError(t, f.root.do(t, s, map[string]string{"command": "updateDomain", "id": f.rootDomain, "name": "TOP"}), "updatedomainresponse", 431, "ROOT")
	wantError(t, f.dadmin.do(t, s, map[string]string{"command": "updateDomain", "id": f.engID, "name": "mine"}), "updatedomainresponse", 531, "own domain")

	children := f.root.ok(t, s, map[string]string{"command": "listDomainChildren", "id": f.rootDomain})
	wantNames(t, "children of ROOT", names(children, "domain", "name"), "engineering")
	children = f.root.ok(t, s, map[string]string{"command": "listDomainChildren", "id": f.rootDomain, "isrecursive": "true"})
	wantNames(t, "all below ROOT", names(children, "domain", "name"), "engineering", "web")

	// Without cleanup a domain in use stays, and the error names the user.
	wantError(t, f.root.do(t, s, map[string]string{"command": "deleteDomain", "id": f.webID}), "deletedomainresponse", 536, "account bob")
	wantError(t, f.dadmin.do(t, s, map[string]string{"command": "deleteDomain", "id": f.engID, "cleanup": "true"}), "deletedomainresponse", 531, "own domain")
	// With cleanup the subtree goes with its accounts and users.
	job := f.root.ok(t, s, map[string]string{"command": "deleteDomain", "id": f.engID, "cleanup": "true"})
	if _, ok := job["jobid"].(string); !ok {
		t.Fatalf("deleteDomain = %v", job)
	}
	wantNames(t, "root after cleanup", names(f.root.ok(t, s, map[string]string{"command": "listAccounts", "listall": "true"}), "account", "name"), "admin", "carol")
	wantNames(t, "domains after cleanup", names(f.root.ok(t, s, map[string]string{"command": "listDomains"}), "domain", "path"), "ROOT")
	wantError(t, f.alice.do(t, s, map[string]string{"command": "listZones"}), "listzonesresponse", 401, "")
}

func TestUpdateUserAndPasswords(t *testing.T) {
	f := newIdentityFixture(t)
	s := f.s
	up := f.alice.ok(t, s, map[string]string{"command": "updateUser", "id": f.alice.userID, "firstname": "Alicia", "timezone": "Europe/Paris"})["user"].(map[string]any)
	if up["firstname"] != "Alicia" || up["timezone"] != "Europe/Paris" {
		t.Fatalf("updated user = %v", up)
	}
	wantError(t, f.alice.do(t, s, map[string]string{"command": "updateUser", "id": f.alice.userID, "password": "new one"}), "updateuserresponse", 431, "currentpassword")
	wantError(t, f.alice.do(t, s, map[string]string{"command": "updateUser", "id": f.alice.userID, "password": "new one", "currentpassword": "wrong"}), "updateuserresponse", 431, "not correct")
	f.alice.ok(t, s, map[string]string{"command": "updateUser", "id": f.alice.userID, "password": "new one", "currentpassword": testPassword})
	if rec := login(t, s, url.Values{"username": {"alice"}, "password": {testPassword}, "domain": {"/eng/"}}); rec.Code != 531 {
		t.Fatalf("old password still works: %d", rec.Code)
	}
	if rec := login(t, s, url.Values{"username": {"alice"}, "password": {"new one"}, "domain": {"/eng/"}}); rec.Code != 200 {
		t.Fatalf("new password refused: %d %s", rec.Code, rec.Body.String())
	}
	// A domain admin resets a user's password without the old one.
	f.dadmin.ok(t, s, map[string]string{"command": "updateUser", "id": f.bob.userID, "password": "reset"})
	// The stored hash is a slow hash, and never leaves the store.
	u, _ := f.c.State().User(nil, f.bob.userID)
	if !strings.HasPrefix(u.PasswordHash, "pbkdf2-sha256$") || !fsm.CheckPassword(u.PasswordHash, "reset") {
		t.Fatalf("stored hash %q", u.PasswordHash)
	}
	for _, cmd := range []string{"listUsers", "listAccounts", "listEvents"} {
		body := f.root.do(t, s, map[string]string{"command": cmd, "listall": "true"}).Body.String()
		if strings.Contains(body, "pbkdf2") || strings.Contains(body, f.bob.secret) || strings.Contains(body, "reset") {
			t.Errorf("%s leaks a password hash, password or secret key: %s", cmd, body)
		}
	}
	// Username uniqueness in a domain, ignoring case.
	wantError(t, f.dadmin.do(t, s, map[string]string{"command": "createUser", "account": "alice", "domainid": f.engID, "username": "DADMIN",
		"password": "p", "email": "e", "firstname": "f", "lastname": "l"}), "createuserresponse", 431, "already exists")
	nu := f.dadmin.ok(t, s, map[string]string{"command": "createUser", "account": "alice", "domainid": f.engID, "username": "alice2",
		"password": "p", "email": "e", "firstname": "f", "lastname": "l"})["user"].(map[string]any)
	if nu["account"] != "alice" || nu["accountid"] != f.alice.accountID {
		t.Fatalf("createUser = %v", nu)
	}
	// alice sees her account's new user but may not change it.
	wantError(t, f.alice.do(t, s, map[string]string{"command": "updateUser", "id": nu["id"].(string), "firstname": "x"}), "updateuserresponse", 531, "may not change")
	f.dadmin.ok(t, s, map[string]string{"command": "deleteUser", "id": nu["id"].(string)})
}

// login POSTs a login form.
func login(t *testing.T, s *Server, form url.Values) *httptest.ResponseRecorder {
	t.Helper()
	form.Set("command", "login")
	form.Set("response", "json")
	req := httptest.NewRequest(http.MethodPost, "/client/api", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

// inSession sends a GET with the session's cookies and, unless key is
// empty, the sessionkey parameter.
func inSession(t *testing.T, s *Server, cookies []*http.Cookie, key string, params map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	v := url.Values{"response": {"json"}}
	for k, val := range params {
		v.Set(k, val)
	}
	if key != "" {
		v.Set("sessionkey", key)
	}
	req := httptest.NewRequest(http.MethodGet, "/client/api?"+v.Encode(), nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

func TestLoginFailures(t *testing.T) {
	f := newIdentityFixture(t)
	s := f.s
	// GET is refused; bad passwords, unknown users and wrong domains fail with 531.
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/client/api?command=login&username=alice&password=x&response=json", nil))
	wantError(t, rec, "loginresponse", 405, "Please use HTTP POST")
	for _, form := range []url.Values{
		{"username": {"alice"}, "password": {"wrong"}, "domain": {"/eng/"}},
		{"username": {"alice"}, "password": {testPassword}},
		{"username": {"nobody"}, "password": {testPassword}, "domain": {"/eng"}},
		{"username": {"alice"}, "password": {testPassword}, "domain": {"/nowhere/"}},
		{"username": {"alice"}, "password": {testPassword}, "domainId": {f.webID}},
		{"username": {"alice"}, "password": {testPassword}, "domainId": {"12"}},
	} {
		wantError(t, login(t, s, form), "loginresponse", 531, "Failed to authenticate user")
	}
	wantError(t, login(t, s, url.Values{"username": {"alice"}}), "loginresponse", 431, "missing parameter password")
}

func TestLoginSessionLogout(t *testing.T) {
	f := newIdentityFixture(t)
	s := f.s
	rec := login(t, s, url.Values{"username": {"alice"}, "password": {testPassword}, "domain": {"eng/"}})
	body := decode(t, rec, "loginresponse")
	if rec.Code != 200 || body["userid"] != f.alice.userID || body["account"] != "alice" || body["type"] != "0" ||
		body["timeout"] != float64(1800) || body["registered"] != "false" || body["domainid"] != f.engID {
		t.Fatalf("login = %d %v", rec.Code, body)
	}
	if _, admin := body["managementserverid"]; admin {
		t.Error("a user's login response carries managementserverid")
	}
	key := body["sessionkey"].(string)
	cookies := rec.Result().Cookies()
	var jsession *http.Cookie
	for _, c := range cookies {
		if c.Path != "/client" || !c.HttpOnly {
			t.Errorf("cookie %s: path %q httponly %v", c.Name, c.Path, c.HttpOnly)
		}
		switch c.Name {
		case "JSESSIONID":
			jsession = c
		case "sessionkey":
			if c.Value != key {
				t.Errorf("sessionkey cookie %q differs from the body's %q", c.Value, key)
			}
		}
	}
	if jsession == nil {
		t.Fatalf("no JSESSIONID cookie: %v", cookies)
	}
	// Only a hash of the key is stored.
	sess, _ := fsm.Get[fsm.Session](f.c.State(), nil, fsm.TableSessions, jsession.Value)
	if sess == nil || sess.KeyHash == key || sess.KeyHash != sessionKeyHash(key) || !sess.Expires.Equal(fixedNow.Add(30*time.Minute)) {
		t.Fatalf("stored session = %+v", sess)
	}

	// Cookies plus the sessionkey parameter authenticate, as alice.
	users := decode(t, inSession(t, s, cookies, key, map[string]string{"command": "listUsers"}), "listusersresponse")
	wantNames(t, "alice by session", names(users, "user", "username"), "alice")
	// On another node of the cluster too: sessions are replicated.
	other := New(Config{Cluster: f.c, Version: "test", Now: s.now})
	if r := inSession(t, other, cookies, key, map[string]string{"command": "listZones"}); r.Code != 200 {
		t.Fatalf("session on another node: %d %s", r.Code, r.Body.String())
	}
	// A Jetty worker suffix on the cookie is accepted.
	suffixed := []*http.Cookie{{Name: "JSESSIONID", Value: jsession.Value + ".node0"}, {Name: "sessionkey", Value: key}}
	if r := inSession(t, s, suffixed, key, map[string]string{"command": "listZones"}); r.Code != 200 {
		t.Fatalf("suffixed JSESSIONID: %d", r.Code)
	}
	// The parameter alone, the cookies alone, or a wrong key: 401.
	wantError(t, inSession(t, s, nil, key, map[string]string{"command": "listZones"}), "listzonesresponse", 401, "")
	wantError(t, inSession(t, s, cookies, "", map[string]string{"command": "listZones"}), "listzonesresponse", 401, "")
	forged := []*http.Cookie{jsession, {Name: "sessionkey", Value: "forged"}}
	wantError(t, inSession(t, s, forged, "forged", map[string]string{"command": "listZones"}), "listzonesresponse", 401, "")
	// The session's role applies: alice cannot call admin commands.
	wantError(t, inSession(t, s, cookies, key, map[string]string{"command": "createZone", "name": "z", "networktype": "Basic", "dns1": "8.8.8.8", "internaldns1": "10.0.0.1"}),
		"createzoneresponse", 401, notAvailable)
}

func TestSessionExpiryAndLogout(t *testing.T) {
	f := newIdentityFixture(t)
	s := f.s
	clock := fixedNow
	s.now = func() time.Time { return clock }
	rec := login(t, s, url.Values{"username": {"alice"}, "password": {testPassword}, "domain": {"/eng/"}})
	cookies, key := rec.Result().Cookies(), decode(t, rec, "loginresponse")["sessionkey"].(string)
	jsession := cookies[0]
	if jsession.Name != "JSESSIONID" {
		t.Fatalf("first cookie is %s", jsession.Name)
	}
	// Use past half the lifetime extends it; past the expiry it is refused.
	clock = fixedNow.Add(20 * time.Minute)
	if r := inSession(t, s, cookies, key, map[string]string{"command": "listZones"}); r.Code != 200 {
		t.Fatalf("session at 20 minutes: %d", r.Code)
	}
	sess, _ := fsm.Get[fsm.Session](f.c.State(), nil, fsm.TableSessions, jsession.Value)
	if !sess.Expires.Equal(clock.Add(30 * time.Minute)) {
		t.Fatalf("session not extended: expires %v", sess.Expires)
	}
	clock = clock.Add(31 * time.Minute)
	wantError(t, inSession(t, s, cookies, key, map[string]string{"command": "listZones"}), "listzonesresponse", 401, "expired")

	// A new login prunes the expired session, and logout ends the new one.
	rec = login(t, s, url.Values{"username": {"alice"}, "password": {testPassword}, "domainId": {f.engID}})
	if rec.Code != 200 {
		t.Fatalf("second login: %d %s", rec.Code, rec.Body.String())
	}
	if old, _ := fsm.Get[fsm.Session](f.c.State(), nil, fsm.TableSessions, jsession.Value); old != nil {
		t.Error("expired session not pruned by the next login")
	}
	cookies2, key2 := rec.Result().Cookies(), decode(t, rec, "loginresponse")["sessionkey"].(string)
	out := inSession(t, s, cookies2, key2, map[string]string{"command": "logout"})
	if out.Code != 200 || decode(t, out, "logoutresponse")["description"] != "success" {
		t.Fatalf("logout: %d %s", out.Code, out.Body.String())
	}
	for _, c := range out.Result().Cookies() {
		if c.MaxAge >= 0 {
			t.Errorf("logout left cookie %s alive", c.Name)
		}
	}
	wantError(t, inSession(t, s, cookies2, key2, map[string]string{"command": "listZones"}), "listzonesresponse", 401, "")
	if n, _ := f.c.State().Count(fsm.TableSessions, "user", f.alice.userID); n != 0 {
		t.Errorf("%d sessions of alice left after logout", n)
	}
}

func TestLoginRefusesDisabledAndServesAdmins(t *testing.T) {
	f := newIdentityFixture(t)
	s := f.s
	rec := login(t, s, url.Values{"username": {"carol"}, "password": {testPassword}, "domain": {"/"}})
	if rec.Code != 200 {
		t.Fatalf("carol login: %d %s", rec.Code, rec.Body.String())
	}
	cookies, key := rec.Result().Cookies(), decode(t, rec, "loginresponse")["sessionkey"].(string)
	f.root.ok(t, s, map[string]string{"command": "disableAccount", "id": f.carol.accountID, "lock": "false"})
	wantError(t, login(t, s, url.Values{"username": {"carol"}, "password": {testPassword}}), "loginresponse", 531, "Failed to authenticate")
	wantError(t, inSession(t, s, cookies, key, map[string]string{"command": "listZones"}), "listzonesresponse", 401, "disabled")
	f.root.ok(t, s, map[string]string{"command": "lockUser", "id": f.alice.userID})
	wantError(t, login(t, s, url.Values{"username": {"alice"}, "password": {testPassword}, "domain": {"/eng/"}}), "loginresponse", 531, "")

	// The admin of the test seed has no password until one is set.
	wantError(t, login(t, s, url.Values{"username": {"admin"}, "password": {""}}), "loginresponse", 431, "missing parameter password")
	f.root.ok(t, s, map[string]string{"command": "updateUser", "id": f.root.userID, "password": "admin pw"})
	rec = login(t, s, url.Values{"username": {"ADMIN"}, "password": {"admin pw"}, "domain": {"ROOT"}})
	body := decode(t, rec, "loginresponse")
	if rec.Code != 200 || body["type"] != "1" || body["managementserverid"] == nil {
		t.Fatalf("admin login = %d %v", rec.Code, body)
	}
}

// TestCustomRolePermissions: rules in order, first match wins, no match
// denies, and the role type caps everything.
func TestCustomRolePermissions(t *testing.T) {
	f := newIdentityFixture(t)
	s := f.s
	role := f.root.ok(t, s, map[string]string{"command": "createRole", "name": "Reader", "type": "user", "description": "reads"})["role"].(map[string]any)
	roleID := role["id"].(string)
	if role["type"] != "User" || role["isdefault"] != false {
		t.Fatalf("createRole = %v", role)
	}
	wantError(t, f.root.do(t, s, map[string]string{"command": "createRole", "name": "reader", "type": "User"}), "createroleresponse", 431, "already exists")
	wantError(t, f.root.do(t, s, map[string]string{"command": "createRole", "name": "x"}), "createroleresponse", 431, "type")
	wantError(t, f.root.do(t, s, map[string]string{"command": "createRole", "name": "x", "type": "Boss"}), "createroleresponse", 431, "type")
	rule := func(r, perm string) string {
		return f.root.ok(t, s, map[string]string{"command": "createRolePermission", "roleid": roleID, "rule": r, "permission": perm})["rolepermission"].(map[string]any)["id"].(string)
	}
	listRule := rule("list*", "allow")
	zonesRule := rule("listZones", "deny")
	rule("deleteUser", "allow")
	rule("registerUserKeys", "allow")
	wantError(t, f.root.do(t, s, map[string]string{"command": "createRolePermission", "roleid": roleID, "rule": "noSuchCommand", "permission": "allow"}),
		"createrolepermissionresponse", 431, "no command")
	wantError(t, f.root.do(t, s, map[string]string{"command": "createRolePermission", "roleid": roleID, "rule": "list zones", "permission": "allow"}),
		"createrolepermissionresponse", 431, "invalid rule")
	wantError(t, f.root.do(t, s, map[string]string{"command": "createRolePermission", "roleid": roleID, "rule": "listUsers", "permission": "maybe"}),
		"createrolepermissionresponse", 431, "allow or deny")
	wantError(t, f.root.do(t, s, map[string]string{"command": "createRolePermission", "roleid": fsm.RoleIDUser, "rule": "listUsers", "permission": "allow"}),
		"createrolepermissionresponse", 431, "built in")

	reader := f.newAccount(t, f.root, "reader", f.rootDomain, map[string]string{"roleid": roleID})
	acct := f.root.ok(t, s, map[string]string{"command": "listAccounts", "id": reader.accountID})["account"].([]any)[0].(map[string]any)
	if acct["roleid"] != roleID || acct["rolename"] != "Reader" || acct["accounttype"].(float64) != 0 {
		t.Fatalf("account with custom role = %v", acct)
	}
	allowed := func(cmd string) bool {
		rec := reader.do(t, s, map[string]string{"command": cmd})
		return !(rec.Code == 401 && strings.Contains(rec.Body.String(), notAvailable))
	}
	for cmd, want := range map[string]bool{
		"listUsers": true, "listZones": true, // list* comes first
		"registerUserKeys": true, "deleteUser": false, // deleteUser is above a User-type role
		"queryAsyncJobResult": false, "listRoles": false, // no rule / above the type
	} {
		if got := allowed(cmd); got != want {
			t.Errorf("Reader calling %s: allowed=%v, want %v", cmd, got, want)
		}
	}
	if !s.permitted(mustAccount(t, f, reader.accountID), s.cmds["listApis"]) || s.permitted(mustAccount(t, f, reader.accountID), s.cmds["createZone"]) {
		t.Error("permitted disagrees with the rules")
	}
	// Reorder: the deny on listZones now comes first.
	rules := f.root.ok(t, s, map[string]string{"command": "listRolePermissions", "roleid": roleID})
	ids := names(rules, "rolepermission", "id")
	if len(ids) != 4 {
		t.Fatalf("rules = %v", rules)
	}
	var order []string
	order = append(order, zonesRule, listRule)
	for _, id := range ids {
		if id != zonesRule && id != listRule {
			order = append(order, id)
		}
	}
	wantError(t, f.root.do(t, s, map[string]string{"command": "updateRolePermission", "roleid": roleID, "ruleorder": listRule}),
		"updaterolepermissionresponse", 431, "list them all")
	f.root.ok(t, s, map[string]string{"command": "updateRolePermission", "roleid": roleID, "ruleorder": strings.Join(order, ",")})
	if allowed("listZones") || !allowed("listUsers") {
		t.Error("after reordering, listZones should be denied and listUsers allowed")
	}
	f.root.ok(t, s, map[string]string{"command": "updateRolePermission", "roleid": roleID, "ruleid": zonesRule, "permission": "allow"})
	if !allowed("listZones") {
		t.Error("after switching the rule to allow, listZones is still denied")
	}
	f.root.ok(t, s, map[string]string{"command": "deleteRolePermission", "id": listRule})
	if allowed("listUsers") {
		t.Error("listUsers allowed after its rule was deleted")
	}

}

func TestRoleAdministration(t *testing.T) {
	f := newIdentityFixture(t)
	s := f.s
	role := f.root.ok(t, s, map[string]string{"command": "createRole", "name": "Reader", "type": "User"})["role"].(map[string]any)
	roleID := role["id"].(string)
	reader := f.newAccount(t, f.root, "reader", f.rootDomain, map[string]string{"roleid": roleID})
	// Built-in roles: rules derived from the registry.
	builtin := f.root.ok(t, s, map[string]string{"command": "listRolePermissions", "roleid": fsm.RoleIDUser})
	userRules := names(builtin, "rolepermission", "rule")
	if !contains(userRules, "listZones") || contains(userRules, "createZone") || contains(userRules, "createAccount") {
		t.Errorf("User role rules = %v", userRules)
	}
	// A copy of a built-in role holds the same rules, explicitly.
	cp := f.root.ok(t, s, map[string]string{"command": "createRole", "name": "User copy", "roleid": fsm.RoleIDUser})["role"].(map[string]any)
	copied := names(f.root.ok(t, s, map[string]string{"command": "listRolePermissions", "roleid": cp["id"].(string)}), "rolepermission", "rule")
	if strings.Join(copied, ",") != strings.Join(userRules, ",") || cp["type"] != "User" {
		t.Errorf("copied rules differ: %v vs %v", copied, userRules)
	}

	// Roles the caller may see and hand out.
	wantNames(t, "dadmin roles", names(f.dadmin.ok(t, s, map[string]string{"command": "listRoles"}), "role", "name"),
		"Domain Admin", "User", "Reader", "User copy")
	wantNames(t, "root roles", names(f.root.ok(t, s, map[string]string{"command": "listRoles", "type": "Admin"}), "role", "name"), "Root Admin")
	// A role in use cannot go or change type; a free one can.
	wantError(t, f.root.do(t, s, map[string]string{"command": "deleteRole", "id": roleID}), "deleteroleresponse", 536, "reader")
	wantError(t, f.root.do(t, s, map[string]string{"command": "updateRole", "id": roleID, "type": "Admin"}), "updateroleresponse", 536, "reader")
	wantError(t, f.root.do(t, s, map[string]string{"command": "deleteRole", "id": fsm.RoleIDUser}), "deleteroleresponse", 431, "built in")
	upd := f.root.ok(t, s, map[string]string{"command": "updateRole", "id": roleID, "name": "Readers", "description": "read only"})["role"].(map[string]any)
	if upd["name"] != "Readers" || upd["description"] != "read only" {
		t.Fatalf("updateRole = %v", upd)
	}
	f.root.ok(t, s, map[string]string{"command": "deleteAccount", "id": reader.accountID})
	f.root.ok(t, s, map[string]string{"command": "deleteRole", "id": roleID})
	wantError(t, f.root.do(t, s, map[string]string{"command": "listRoles", "id": roleID}), "listrolesresponse", 431, "entity does not exist")
	// An account of a deleted role (made out of band) may call nothing.
	if s.permitted(&fsm.Account{Type: fsm.AccountTypeUser, RoleID: roleID}, s.cmds["listZones"]) {
		t.Error("an account whose role is gone is still permitted")
	}
}

func mustAccount(t *testing.T, f *fixture, id string) *fsm.Account {
	t.Helper()
	a, _ := f.c.State().Account(nil, id)
	if a == nil {
		t.Fatalf("account %s missing", id)
	}
	return a
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestRuleMatches(t *testing.T) {
	for _, c := range []struct {
		rule, name string
		want       bool
	}{
		{"listZones", "listZones", true}, {"listzones", "listZones", true}, {"list*", "listZones", true},
		{"list*", "createZone", false}, {"*", "anything", true}, {"*Zone*", "listZones", true},
		{"*Zone", "listZones", false}, {"l*t*s", "listZones", true}, {"list", "listZones", false},
		{"listZones*", "listZones", true}, {"**", "x", true}, {"a*b*c", "aXbYc", true}, {"a*b*c", "aXbY", false},
	} {
		if got := ruleMatches(c.rule, c.name); got != c.want {
			t.Errorf("ruleMatches(%q, %q) = %v, want %v", c.rule, c.name, got, c.want)
		}
	}
}

// TestIdentityObjectFieldNames checks every key of the identity objects
// against the response fields CloudStack 4.18 lists for them.
func TestIdentityObjectFieldNames(t *testing.T) {
	raw, err := os.ReadFile(reference)
	if err != nil {
		t.Skipf("reference dump not found: %v", err)
	}
	var dump struct {
		API []struct {
			Name     string `json:"name"`
			Response []struct {
				Name string `json:"name"`
			} `json:"response"`
		} `json:"api"`
	}
	if err := json.Unmarshal(raw, &dump); err != nil {
		t.Fatal(err)
	}
	fieldsOf := func(cmd string) map[string]bool {
		out := map[string]bool{}
		for _, a := range dump.API {
			if a.Name == cmd {
				for _, r := range a.Response {
					out[r.Name] = true
				}
			}
		}
		return out
	}
	f := newIdentityFixture(t)
	s := f.s
	check := func(cmd string, obj map[string]any, must ...string) {
		t.Helper()
		known := fieldsOf(cmd)
		for k := range obj {
			if !known[k] {
				t.Errorf("%s: field %q is not a CloudStack field", cmd, k)
			}
		}
		for _, k := range must {
			if _, ok := obj[k]; !ok {
				t.Errorf("%s: field %q missing from %v", cmd, k, obj)
			}
		}
	}
	first := func(body map[string]any, item string) map[string]any { return body[item].([]any)[0].(map[string]any) }
	acct := first(f.root.ok(t, s, map[string]string{"command": "listAccounts", "id": f.alice.accountID}), "account")
	check("listAccounts", acct, "id", "name", "accounttype", "roleid", "rolename", "roletype", "domainid", "domain", "domainpath", "state", "user", "created", "isdefault")
	check("listUsers", acct["user"].([]any)[0].(map[string]any), "id", "username", "account", "accountid", "domainid", "state", "roletype")
	check("listDomains", first(f.root.ok(t, s, map[string]string{"command": "listDomains", "id": f.webID}), "domain"),
		"id", "name", "level", "path", "parentdomainid", "parentdomainname", "haschild")
	check("listRoles", first(f.root.ok(t, s, map[string]string{"command": "listRoles"}), "role"), "id", "name", "type", "isdefault")
	check("listRolePermissions", first(f.root.ok(t, s, map[string]string{"command": "listRolePermissions", "roleid": fsm.RoleIDUser}), "rolepermission"),
		"id", "roleid", "rolename", "rule", "permission")
	check("getUserKeys", f.alice.ok(t, s, map[string]string{"command": "getUserKeys", "id": f.alice.userID})["userkeys"].(map[string]any), "apikey", "secretkey")
	rec := login(t, s, url.Values{"username": {"alice"}, "password": {testPassword}, "domain": {"/eng/"}})
	check("login", decode(t, rec, "loginresponse"), "username", "userid", "domainid", "timeout", "account", "firstname", "lastname",
		"type", "registered", "sessionkey", "is2faenabled")
}

// TestSeedAddsRolesAndAdminPassword: the seed hook gives a new cloud the
// built-in roles and an admin password written beside the API keys, and
// adds missing roles to a cloud seeded before roles existed.
func TestSeedAddsRolesAndAdminPassword(t *testing.T) {
	ctx := context.Background()
	c := &fakeCluster{f: fsm.New(nil)}
	dir := t.TempDir()
	hook := ops.SeedHook(c, dir, hclog.NewNullLogger())
	if err := hook(ctx); err != nil {
		t.Fatal(err)
	}
	keys, err := ops.ReadAdminKeys(dir)
	if err != nil || len(keys.Password) < 16 {
		t.Fatalf("admin keys = %+v, %v", keys, err)
	}
	u, _ := c.State().User(nil, keys.UserID)
	if u == nil || strings.Contains(u.PasswordHash, keys.Password) || !fsm.CheckPassword(u.PasswordHash, keys.Password) {
		t.Fatalf("seeded admin user = %+v", u)
	}
	roles, _ := fsm.List[fsm.Role](c.State(), nil, fsm.TableRoles, "create")
	if len(roles) != 3 {
		t.Fatalf("seeded roles = %v", roles)
	}
	if err := hook(ctx); err != nil { // again: nothing to do
		t.Fatal(err)
	}
	s := New(Config{Cluster: c, Version: "test", Now: func() time.Time { return fixedNow }})
	rec := login(t, s, url.Values{"username": {"admin"}, "password": {keys.Password}, "domain": {"/"}})
	if body := decode(t, rec, "loginresponse"); rec.Code != 200 || body["type"] != "1" {
		t.Fatalf("admin login with the seeded password: %d %v", rec.Code, body)
	}
	acct, _ := c.State().Account(nil, u.AccountID)
	if acct.RoleID != fsm.RoleIDRootAdmin {
		t.Fatalf("seeded admin account role = %q", acct.RoleID)
	}

	// A cluster bootstrapped without roles gets them on the next establish.
	s2, c2 := newTestServer(t)
	var drop []fsm.TxnOp
	for _, role := range fsm.BuiltinRoles() {
		drop = append(drop, fsm.Delete(fsm.TableRoles, role.ID))
	}
	if _, err := c2.Apply(ctx, fsm.TxnRequestType, fsm.TxnRequest{Ops: drop}); err != nil {
		t.Fatalf("drop the roles to look like an older cluster: %v", err)
	}
	if err := ops.SeedHook(c2, t.TempDir(), hclog.NewNullLogger())(ctx); err != nil {
		t.Fatal(err)
	}
	listed := decode(t, call(t, s2, map[string]string{"command": "listRoles"}), "listrolesresponse")
	wantNames(t, "roles after upgrade", names(listed, "role", "name"), "Root Admin", "Domain Admin", "User")
	wantError(t, call(t, s2, map[string]string{"command": "createRole", "name": "user", "type": "User"}), "createroleresponse", 431, "already exists")
}
