package e2e

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/apache/cloudstack-go/v2/cloudstack"
	"github.com/google/uuid"
)

// Tenants of TestOperatorBuildsCloudAndTenantsStayApart: accounts, users
// and keys, and what each caller may see and do with them.

// tenantKeys is one user with its own keys and SDK client through HAProxy.
type tenantKeys struct {
	account, accountID, domainID, username, userID string
	keys                                           adminKeys
	cs                                             *cloudstack.CloudStackClient
}

// identities are the tenants the operator makes: eng (alice, and carol of
// the same account) and its domain admin (dave) in ROOT/eng, ops (bob) in ROOT.
type identities struct {
	engDomain, rootDomain string
	eng, engSecond, ops   *tenantKeys
	engAdmin              *tenantKeys
}

// createTenants makes ROOT/eng with a user account (two users) and a
// domain admin account, and a user account in ROOT; every user gets keys.
func createTenants(t *testing.T, cs *cloudstack.CloudStackClient, lb *haproxyProc) *identities {
	t.Helper()
	ids := &identities{}
	roots, err := cs.Domain.ListDomains(cs.Domain.NewListDomainsParams())
	if err != nil || roots.Count != 1 || roots.Domains[0].Path != "ROOT" {
		t.Fatalf("listDomains before createDomain: %+v, %v", roots, err)
	}
	ids.rootDomain = roots.Domains[0].Id
	d, err := cs.Domain.CreateDomain(cs.Domain.NewCreateDomainParams("eng"))
	if err != nil || d.Path != "ROOT/eng" || d.Parentdomainid != ids.rootDomain || d.Level != 1 {
		t.Fatalf("createDomain eng: %+v, %v", d, err)
	}
	ids.engDomain = d.Id
	ids.eng = createAccount(t, cs, lb, "eng-team", "alice", ids.engDomain, 0)
	ids.ops = createAccount(t, cs, lb, "ops-team", "bob", ids.rootDomain, 0)
	ids.engAdmin = createAccount(t, cs, lb, "eng-admins", "dave", ids.engDomain, 2)

	up := cs.User.NewCreateUserParams("eng-team", "carol@example.com", "Carol", "Second", "carol-password-1", "carol")
	up.SetDomainid(ids.engDomain)
	u, err := cs.User.CreateUser(up)
	if err != nil || u.Account != "eng-team" || u.Domainid != ids.engDomain || u.Username != "carol" || u.State != "enabled" {
		t.Fatalf("createUser carol: %+v, %v", u, err)
	}
	ids.engSecond = &tenantKeys{account: "eng-team", accountID: ids.eng.accountID, domainID: ids.engDomain, username: "carol", userID: u.Id}
	registerKeys(t, cs, lb, ids.engSecond)

	lu := cs.User.NewListUsersParams()
	lu.SetDomainid(ids.engDomain)
	users, err := cs.User.ListUsers(lu)
	if err != nil || users.Count != 3 {
		t.Fatalf("listUsers domainid=eng: %+v, %v", users, err)
	}
	for _, u := range users.Users {
		if u.Apikey == "" || u.Domain != "eng" {
			t.Errorf("listUsers: user %s has apikey %q domain %q; want its registered key and domain eng", u.Username, u.Apikey, u.Domain)
		}
	}
	return ids
}

func createAccount(t *testing.T, cs *cloudstack.CloudStackClient, lb *haproxyProc, account, user, domainID string, typ int) *tenantKeys {
	t.Helper()
	p := cs.Account.NewCreateAccountParams(user+"@example.com", strings.ToUpper(user[:1])+user[1:], "Tenant", user+"-password-1", user)
	p.SetAccount(account)
	p.SetDomainid(domainID)
	p.SetAccounttype(typ)
	a, err := cs.Account.CreateAccount(p)
	if err != nil {
		t.Fatalf("createAccount %s: %v", account, err)
	}
	if a.Name != account || a.Domainid != domainID || a.Accounttype != typ || a.State != "enabled" || len(a.User) != 1 ||
		a.User[0].Username != user {
		t.Fatalf("createAccount %s answered %+v", account, a)
	}
	tk := &tenantKeys{account: account, accountID: a.Id, domainID: domainID, username: user, userID: a.User[0].Id}
	registerKeys(t, cs, lb, tk)
	return tk
}

func registerKeys(t *testing.T, cs *cloudstack.CloudStackClient, lb *haproxyProc, tk *tenantKeys) {
	t.Helper()
	k, err := cs.User.RegisterUserKeys(cs.User.NewRegisterUserKeysParams(tk.userID))
	if err != nil || k.Apikey == "" || k.Secretkey == "" {
		t.Fatalf("registerUserKeys %s: %+v, %v", tk.username, k, err)
	}
	tk.keys = adminKeys{APIKey: k.Apikey, SecretKey: k.Secretkey}
	tk.cs = newSDK(lb.apiURL(), tk.keys)
}

// tenantTemplate is what a tenant made: its template (tagged team=<account>).
type tenantTemplate struct {
	id string
}

// tenantWorks has a tenant register its own template, tag it, and list
// templates, tags and events: it sees exactly its own, and once its
// template has downloaded, the ready public ones beside it.
func tenantWorks(t *testing.T, tk *tenantKeys, inv *inventory) *tenantTemplate {
	t.Helper()
	cs := tk.cs
	name := tk.account + "-tpl"
	tp := cs.Template.NewRegisterTemplateParams(tk.account+"'s image", "QCOW2", "KVM", name, inv.images.add(name+".qcow2", testQcow2()))
	tp.SetZoneid(inv.zone)
	r, err := cs.Template.RegisterTemplate(tp)
	if err != nil || r.Count != 1 {
		t.Fatalf("%s registerTemplate: %+v, %v", tk.username, r, err)
	}
	tpl := r.RegisterTemplate[0]
	if tpl.Account != tk.account || tpl.Domainid != tk.domainID || tpl.Ispublic || tpl.Zoneid != inv.zone {
		t.Fatalf("%s registerTemplate answered %+v", tk.username, tpl)
	}
	mine := &tenantTemplate{id: tpl.Id}
	checkTemplateDownloaded(t, tk.username+" listTemplates self id", waitTemplateSettled(t, cs, "self", tpl.Id, inv.zone))
	if _, err := cs.Resourcetags.CreateTags(cs.Resourcetags.NewCreateTagsParams([]string{tpl.Id}, "Template",
		map[string]string{"team": tk.account})); err != nil {
		t.Fatalf("%s createTags on its template: %v", tk.username, err)
	}

	self, err := cs.Template.ListTemplates(cs.Template.NewListTemplatesParams("self"))
	if err != nil || self.Count != 1 || len(self.Templates) != 1 || self.Templates[0].Id != tpl.Id {
		t.Fatalf("%s listTemplates self: %+v, %v; want only %s", tk.username, self, err, tpl.Id)
	}
	if got := self.Templates[0]; len(got.Tags) != 1 || got.Tags[0].Key != "team" || got.Tags[0].Value != tk.account {
		t.Fatalf("%s listTemplates self: tags %+v, want team=%s", tk.username, got.Tags, tk.account)
	}
	exec, err := cs.Template.ListTemplates(cs.Template.NewListTemplatesParams("executable"))
	if err != nil {
		t.Fatalf("%s listTemplates executable: %v", tk.username, err)
	}
	// For a user, executable lists only copies ready to deploy: its own and
	// the operator's public featured one, not the public one whose
	// download failed, nor another tenant's.
	want := []string{inv.template, tpl.Id}
	sort.Strings(want)
	if got := templateIDs(exec.Templates); !slices.Equal(got, want) || exec.Count != len(want) {
		t.Fatalf("%s listTemplates executable: %v (count %d), want its own and the public ready one %v", tk.username, got, exec.Count, want)
	}
	for _, e := range exec.Templates {
		// The download status is the owner's to see: a user sees none on
		// the operator's template.
		wantStatus := ""
		if e.Id == tpl.Id {
			wantStatus = statusComplete
		}
		if !e.Isready || e.Status != wantStatus || e.Size != testQcow2Virtual {
			t.Fatalf("%s listTemplates executable lists %s isready=%v status=%q size=%d; want ready, status %q, size %d",
				tk.username, e.Id, e.Isready, e.Status, e.Size, wantStatus, testQcow2Virtual)
		}
	}
	selfExec, err := cs.Template.ListTemplates(cs.Template.NewListTemplatesParams("selfexecutable"))
	if err != nil || templateIDsString(selfExec) != tpl.Id || selfExec.Count != 1 {
		t.Fatalf("%s listTemplates selfexecutable: %+v, %v; want only its ready %s", tk.username, selfExec, err, tpl.Id)
	}
	featured, err := cs.Template.ListTemplates(cs.Template.NewListTemplatesParams("featured"))
	if err != nil || templateIDsString(featured) != inv.template || featured.Count != 1 {
		t.Fatalf("%s listTemplates featured: %+v, %v; want only the ready %s", tk.username, featured, err, inv.template)
	}

	tags, err := cs.Resourcetags.ListTags(cs.Resourcetags.NewListTagsParams())
	if err != nil || tags.Count != 1 || tags.Tags[0].Resourceid != tpl.Id || tags.Tags[0].Resourcetype != "Template" ||
		tags.Tags[0].Account != tk.account || tags.Tags[0].Value != tk.account {
		t.Fatalf("%s listTags: %+v, %v; want its one tag", tk.username, tags, err)
	}
	checkTenantEvents(t, tk, tpl.Id)
	checkTenantSeesCatalog(t, tk, inv)
	return mine
}

// checkTenantSeesCatalog: what a user looks at before deploying (the zone
// and the offerings) is there; its identity lists show only its
// own account and domain.
func checkTenantSeesCatalog(t *testing.T, tk *tenantKeys, inv *inventory) {
	t.Helper()
	cs := tk.cs
	if z, n, err := cs.Zone.GetZoneByID(inv.zone); err != nil || n != 1 || z.Name != invZone {
		t.Fatalf("%s listZones id: %+v, %d, %v", tk.username, z, n, err)
	}
	if o, n, err := cs.ServiceOffering.GetServiceOfferingByID(inv.offering); err != nil || n != 1 || o.Name != invOffering ||
		!o.Offerha || o.Cpunumber != 2 || o.Memory != 2048 {
		t.Fatalf("%s listServiceOfferings id: %+v, %d, %v", tk.username, o, n, err)
	}
	if d, n, err := cs.DiskOffering.GetDiskOfferingByID(inv.diskOffering); err != nil || n != 1 || d.Disksize != 20 {
		t.Fatalf("%s listDiskOfferings id: %+v, %d, %v", tk.username, d, n, err)
	}
	accts, err := cs.Account.ListAccounts(cs.Account.NewListAccountsParams())
	if err != nil || accts.Count != 1 || accts.Accounts[0].Id != tk.accountID {
		t.Fatalf("%s listAccounts: %+v, %v; want only its own account", tk.username, accts, err)
	}
	la := cs.Account.NewListAccountsParams()
	la.SetListall(true)
	if accts, err := cs.Account.ListAccounts(la); err != nil || accts.Count != 1 || accts.Accounts[0].Id != tk.accountID {
		t.Fatalf("%s listAccounts listall=true: %+v, %v; want only its own account", tk.username, accts, err)
	}
	users, err := cs.User.ListUsers(cs.User.NewListUsersParams())
	if err != nil || users.Count == 0 {
		t.Fatalf("%s listUsers: %+v, %v", tk.username, users, err)
	}
	for _, u := range users.Users {
		if u.Accountid != tk.accountID {
			t.Fatalf("%s listUsers shows %s of account %s", tk.username, u.Username, u.Account)
		}
	}
	doms, err := cs.Domain.ListDomains(cs.Domain.NewListDomainsParams())
	if err != nil || doms.Count != 1 || doms.Domains[0].Id != tk.domainID {
		t.Fatalf("%s listDomains: %+v, %v; want only its own domain", tk.username, doms, err)
	}
}

// checkTenantEvents: the tenant sees its own TEMPLATE.CREATE and tag
// events, by its user, and nothing of anyone else.
func checkTenantEvents(t *testing.T, tk *tenantKeys, templateID string) {
	t.Helper()
	evs, err := tk.cs.Event.ListEvents(tk.cs.Event.NewListEventsParams())
	if err != nil || evs.Count == 0 {
		t.Fatalf("%s listEvents: %+v, %v", tk.username, evs, err)
	}
	seen := map[string]bool{}
	for _, e := range evs.Events {
		if e.Account != tk.account || e.Domainid != tk.domainID {
			t.Errorf("%s sees an event of account %s (domain %s): %s %s", tk.username, e.Account, e.Domainid, e.Type, e.Description)
		}
		if e.Resourceid == templateID && e.Username == tk.username {
			seen[e.Type] = true
		}
	}
	if !seen["TEMPLATE.CREATE"] || !seen["CREATE_TAGS"] {
		t.Fatalf("%s listEvents lacks its TEMPLATE.CREATE or CREATE_TAGS on %s by %s: %v", tk.username, templateID, tk.username, eventTypes(evs.Events))
	}
	tp := tk.cs.Event.NewListEventsParams()
	tp.SetType("ZONE.CREATE")
	if zc, err := tk.cs.Event.ListEvents(tp); err != nil || zc.Count != 0 {
		t.Fatalf("%s listEvents type=ZONE.CREATE: %+v, %v; want none (the operator's)", tk.username, zc, err)
	}
}

// checkSameAccountSees: a second user of the same account sees the
// account's template and tag.
func checkSameAccountSees(t *testing.T, tk *tenantKeys, mine *tenantTemplate) {
	t.Helper()
	self, err := tk.cs.Template.ListTemplates(tk.cs.Template.NewListTemplatesParams("self"))
	if err != nil || templateIDsString(self) != mine.id {
		t.Fatalf("%s (same account) listTemplates self: %+v, %v; want %s", tk.username, self, err, mine.id)
	}
	tags, err := tk.cs.Resourcetags.ListTags(tk.cs.Resourcetags.NewListTagsParams())
	if err != nil || tags.Count != 1 || tags.Tags[0].Resourceid != mine.id {
		t.Fatalf("%s (same account) listTags: %+v, %v", tk.username, tags, err)
	}
}

// checkTenantsApart: the other tenant's template by id, in every command
// that takes one, fails exactly as a random id does.
func checkTenantsApart(t *testing.T, tk *tenantKeys, mine, theirs *tenantTemplate) {
	t.Helper()
	cs := tk.cs
	random := uuid.NewString()
	same := func(what string, call func(id string) error) {
		t.Helper()
		errTheirs, errRandom := call(theirs.id), call(random)
		wantCSError(t, errTheirs, 431, "value="+theirs.id+" due to incorrect long value format, or entity does not exist")
		wantCSError(t, errRandom, 431, "entity does not exist")
		if a, b := strings.ReplaceAll(errTheirs.Error(), theirs.id, "ID"), strings.ReplaceAll(errRandom.Error(), random, "ID"); a != b {
			t.Fatalf("%s %s: another tenant's id answers %q, a random id %q; they must look the same", tk.username, what, a, b)
		}
	}
	same("listTemplates id", func(id string) error {
		p := cs.Template.NewListTemplatesParams("self")
		p.SetId(id)
		_, err := cs.Template.ListTemplates(p)
		return err
	})
	same("listTemplates executable id", func(id string) error {
		p := cs.Template.NewListTemplatesParams("executable")
		p.SetId(id)
		_, err := cs.Template.ListTemplates(p)
		return err
	})
	same("updateTemplate", func(id string) error {
		p := cs.Template.NewUpdateTemplateParams(id)
		p.SetName("stolen")
		_, err := cs.Template.UpdateTemplate(p)
		return err
	})
	same("deleteTemplate", func(id string) error {
		_, err := cs.Template.DeleteTemplate(cs.Template.NewDeleteTemplateParams(id))
		return err
	})
	same("createTags", func(id string) error {
		_, err := cs.Resourcetags.CreateTags(cs.Resourcetags.NewCreateTagsParams([]string{id}, "Template", map[string]string{"x": "y"}))
		return err
	})
	lt := cs.Resourcetags.NewListTagsParams()
	lt.SetResourceid(theirs.id)
	if tags, err := cs.Resourcetags.ListTags(lt); err != nil || tags.Count != 0 {
		t.Fatalf("%s listTags resourceid=<other tenant's template>: %+v, %v; want none", tk.username, tags, err)
	}
	// The other tenant's template is untouched and still its own.
	if self, err := cs.Template.ListTemplates(cs.Template.NewListTemplatesParams("self")); err != nil || templateIDsString(self) != mine.id {
		t.Fatalf("%s listTemplates self after the attempts: %+v, %v", tk.username, self, err)
	}
}

// checkRefusedAdminCommands: users may not call operator commands.
func checkRefusedAdminCommands(t *testing.T, ids *identities) {
	t.Helper()
	for _, tk := range []*tenantKeys{ids.eng, ids.ops, ids.engAdmin} {
		cs := tk.cs
		_, err := cs.Zone.CreateZone(cs.Zone.NewCreateZoneParams("8.8.8.8", "10.0.0.1", "tenant-zone-"+tk.username, "Advanced"))
		wantCSError(t, err, 401, "The API createZone does not exist or is not available for the account "+tk.account)
		_, err = cs.Host.ListHosts(cs.Host.NewListHostsParams())
		wantCSError(t, err, 401, "The API listHosts does not exist or is not available for the account "+tk.account)
		_, err = cs.Pod.CreatePod(cs.Pod.NewCreatePodParams("tenant-pod", uuid.NewString()))
		wantCSError(t, err, 401, "createPod")
	}
	// A user may not make accounts; a domain admin may not make domain
	// admins outside its domain (ROOT is above it).
	p := ids.eng.cs.Account.NewCreateAccountParams("x@example.com", "X", "Y", "x-password-1", "mallory")
	p.SetAccounttype(0)
	_, err := ids.eng.cs.Account.CreateAccount(p)
	wantCSError(t, err, 401, "createAccount")
	p = ids.engAdmin.cs.Account.NewCreateAccountParams("x@example.com", "X", "Y", "x-password-1", "mallory")
	p.SetAccounttype(0)
	p.SetDomainid(ids.rootDomain)
	_, err = ids.engAdmin.cs.Account.CreateAccount(p)
	wantCSError(t, err, 431, "entity does not exist")
}

// checkDomainAdmin: the admin of ROOT/eng sees its subtree only.
func checkDomainAdmin(t *testing.T, ids *identities, eng, ops *tenantTemplate) {
	t.Helper()
	cs := ids.engAdmin.cs
	doms, err := cs.Domain.ListDomains(cs.Domain.NewListDomainsParams())
	if err != nil || doms.Count != 1 || doms.Domains[0].Id != ids.engDomain || doms.Domains[0].Path != "ROOT/eng" {
		t.Fatalf("domain admin listDomains: %+v, %v; want only ROOT/eng", doms, err)
	}
	la := cs.Account.NewListAccountsParams()
	la.SetListall(true)
	accts, err := cs.Account.ListAccounts(la)
	if err != nil {
		t.Fatalf("domain admin listAccounts listall: %v", err)
	}
	var names []string
	for _, a := range accts.Accounts {
		names = append(names, a.Name)
	}
	sort.Strings(names)
	if !slices.Equal(names, []string{"eng-admins", "eng-team"}) || accts.Count != 2 {
		t.Fatalf("domain admin listAccounts listall: %v (count %d), want eng-admins and eng-team", names, accts.Count)
	}
	lu := cs.User.NewListUsersParams()
	lu.SetListall(true)
	users, err := cs.User.ListUsers(lu)
	if err != nil || users.Count != 3 {
		t.Fatalf("domain admin listUsers listall: %+v, %v; want alice, carol, dave", users, err)
	}
	lt := cs.Template.NewListTemplatesParams("self")
	lt.SetListall(true)
	tpls, err := cs.Template.ListTemplates(lt)
	if err != nil || templateIDsString(tpls) != eng.id {
		t.Fatalf("domain admin listTemplates self listall: %+v, %v; want only %s", tpls, err, eng.id)
	}
	byID := cs.Template.NewListTemplatesParams("all")
	byID.SetId(ops.id)
	_, err = cs.Template.ListTemplates(byID)
	wantCSError(t, err, 431, "value="+ops.id+" due to incorrect long value format, or entity does not exist")
	tg := cs.Resourcetags.NewListTagsParams()
	tg.SetListall(true)
	tags, err := cs.Resourcetags.ListTags(tg)
	if err != nil || tags.Count != 1 || tags.Tags[0].Resourceid != eng.id {
		t.Fatalf("domain admin listTags listall: %+v, %v; want only eng's tag", tags, err)
	}
	le := cs.Event.NewListEventsParams()
	le.SetListall(true)
	evs, err := cs.Event.ListEvents(le)
	if err != nil {
		t.Fatalf("domain admin listEvents listall: %v", err)
	}
	sawAlice := false
	for _, e := range evs.Events {
		if e.Domainid != ids.engDomain {
			t.Errorf("domain admin sees an event outside ROOT/eng: %s by %s/%s", e.Type, e.Account, e.Username)
		}
		sawAlice = sawAlice || (e.Type == "TEMPLATE.CREATE" && e.Username == "alice" && e.Resourceid == eng.id)
	}
	if !sawAlice {
		t.Fatalf("domain admin listEvents listall lacks alice's TEMPLATE.CREATE: %v", eventTypes(evs.Events))
	}
}

func templateIDs(ts []*cloudstack.Template) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Id)
	}
	sort.Strings(out)
	return out
}

func templateIDsString(r *cloudstack.ListTemplatesResponse) string {
	if r == nil {
		return "<nil>"
	}
	return strings.Join(templateIDs(r.Templates), ",")
}

func eventTypes(evs []*cloudstack.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, fmt.Sprintf("%s(%s/%s %s)", e.Type, e.Account, e.Username, e.Resourceid))
	}
	return out
}
