package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/apache/cloudstack-go/v2/cloudstack"
	"github.com/chromedp/cdproto/network"
)

// TestConsole drives the web console in headless Chromium through HAProxy
// in front of `stratus dev`'s three servers, as a user behind a load
// balancer sees it: sign in, deploy a VM with the wizard, stop it, put a
// host into maintenance, sign in as a tenant, and watch the cluster page
// while the leader is killed. Every step checks what the page shows and,
// where it matters, that the API agrees. Screenshots of the main views go
// to $STRATUS_SCREENSHOTS_DIR (make screenshots: docs/img).
func TestConsole(t *testing.T) {
	bin := requireE2E(t)
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("browser test: %s is not installed (make deps installs Debian's chromium): %v", chromiumPath, err)
	}
	began := time.Now()
	d := startDevCloud(t, bin, 3)
	login := readDevLogin(t, d)
	r := newVMRun(t, d, nil)
	base := "http://" + d.lb.addr

	// A few VMs deployed through the API while the browser starts, so the
	// VM list has something to show.
	bgNames := []string{"web-01", "web-02", "db-01"}
	bgDone := make(chan []jobOutcome, 1)
	go func() { bgDone <- r.runJobs(context.Background(), bgNames, len(bgNames), r.deploy, nil) }()
	b := startBrowser(t, base)
	admin := b.first
	bgOuts := <-bgDone
	r.requireJobsOK("deploy the background VMs", bgOuts)
	var bgIDs []string
	for _, o := range bgOuts {
		bgIDs = append(bgIDs, o.id)
	}
	t.Logf("e2e: console test set up in %s", time.Since(began).Round(time.Millisecond))

	c := &consoleRun{d: d, r: r, b: b, admin: admin, login: login, bgIDs: bgIDs, bgNames: bgNames}
	t.Run("Login", c.testLogin)
	t.Run("DeployAndStop", c.testDeployAndStop)
	t.Run("HostMaintenance", c.testHostMaintenance)
	t.Run("TenantNoAdmin", c.testTenant)
	t.Run("ClusterLeaderKill", c.testClusterLeaderKill)
	t.Run("NoConsoleErrors", c.testNoConsoleErrors)
	d.c.checkNoCrash()
	t.Logf("e2e: console test took %s", time.Since(began).Round(time.Millisecond))
}

// consoleRun is the state the console's subtests share.
type consoleRun struct {
	d       *devCloud
	r       *vmRun
	b       *browser
	admin   *tab
	login   devLogin
	bgIDs   []string // VMs deployed through the API, and their names
	bgNames []string

	signedIn bool // the admin tab is signed in (Login passed that far)
}

// devLogin is the admin's username and password from cloud.json.
type devLogin struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func readDevLogin(t *testing.T, d *devCloud) devLogin {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(d.dir, "cloud.json"))
	if err != nil {
		t.Fatal(err)
	}
	var l devLogin
	if err := json.Unmarshal(raw, &l); err != nil || l.Username == "" || l.Password == "" {
		t.Fatalf("cloud.json has no admin login (username %q, password set %v): %v", l.Username, l.Password != "", err)
	}
	return l
}

// apiLoginError asks the API itself, as the console does (POST), what a
// login with these credentials answers, and returns its errortext.
func apiLoginError(t *testing.T, apiURL, user, password string) string {
	t.Helper()
	resp, err := http.PostForm(apiURL, url.Values{"command": {"login"}, "username": {user}, "password": {password}, "response": {"json"}})
	if err != nil {
		t.Fatalf("login through the API: %v", err)
	}
	defer resp.Body.Close()
	var body map[string]struct {
		ErrorCode int    `json:"errorcode"`
		ErrorText string `json:"errortext"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("login through the API: HTTP %d, undecodable: %v", resp.StatusCode, err)
	}
	e := body["loginresponse"]
	if resp.StatusCode < 400 || e.ErrorText == "" {
		t.Fatalf("a login with a wrong password answered HTTP %d %+v; want an error", resp.StatusCode, e)
	}
	return e.ErrorText
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// signIn fills the login form of tb and submits it.
func signIn(t *testing.T, tb *tab, user, password string) {
	t.Helper()
	tb.waitFor(t, "the login form", uiTimeout, visible("#login-username")+` && `+visible("#login-submit"))
	tb.typeText(t, "#login-username", user)
	tb.typeText(t, "#login-password", password)
	tb.click(t, "#login-submit")
}

// waitHash waits until the route is want.
func (tb *tab) waitHash(t *testing.T, want string) {
	t.Helper()
	tb.waitFor(t, "the route "+want, uiTimeout, fmt.Sprintf(`location.hash === %s`, jsString(want)))
}

// rowField is a JavaScript expression for the trimmed text of field in the
// row id of table name.
func rowField(table, id, field string) string {
	return textOf(fmt.Sprintf(`table[data-table=%s] tr[data-id="%s"] [data-field=%s]`, table, id, field))
}

// confirmIfAsked clicks the confirmation dialog's confirm button if one
// opens after an action, or goes on when done() is already true.
func (tb *tab) confirmIfAsked(t *testing.T, done string) {
	t.Helper()
	dlg := `[role=dialog] [data-action=confirm]`
	got := tb.waitFor(t, "a confirmation dialog or the action's effect", uiTimeout,
		fmt.Sprintf(`%s ? 'dialog' : ((%s) ? 'done' : false)`, visible(dlg), done))
	if got == "dialog" {
		tb.click(t, dlg)
		tb.waitFor(t, "the dialog to close", uiTimeout, `!document.querySelector('[role=dialog]')`)
	}
}

// (1) A wrong password shows the API's error; the right one lands on the
// VM list, which lists the VMs the API deployed.
func (c *consoleRun) testLogin(t *testing.T) {
	tb := c.admin
	tb.open(t, "")
	tb.waitHash(t, "#/login")
	tb.waitFor(t, "the login page", uiTimeout, visible("[data-page=login] h1"))
	csp := func() string { tb.mu.Lock(); defer tb.mu.Unlock(); return tb.docCSP }()
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("the console's page has Content-Security-Policy %q; want it to contain %q", csp, want)
		}
	}

	wrong := "not-" + c.login.Password
	apiErr := apiLoginError(t, c.d.lb.apiURL(), c.login.Username, wrong)
	tb.typeText(t, "#login-username", c.login.Username)
	tb.screenshot(t, "login")
	tb.typeText(t, "#login-password", wrong)
	tb.click(t, "#login-submit")
	shown := tb.waitFor(t, "the login error", uiTimeout, textOf("[data-page=login] [role=alert]"))
	if !strings.Contains(shown, apiErr) {
		t.Errorf("a wrong password shows %q; want the API's error %q", shown, apiErr)
	}
	if h := evalJS[string](t, tb, "location.hash"); h != "#/login" {
		t.Errorf("after a wrong password the console is at %s; want it to stay at #/login", h)
	}

	signIn(t, tb, c.login.Username, c.login.Password)
	tb.waitHash(t, "#/vms")
	c.signedIn = true
	for i, id := range c.bgIDs {
		tb.waitFor(t, "VM "+id+" Running in the VM list", uiTimeout, fmt.Sprintf(`%s === 'Running'`, rowField("vms", id, "state")))
		if name := evalJS[string](t, tb, textOf(fmt.Sprintf(`table[data-table=vms] tr[data-id="%s"]`, id))); !strings.Contains(name, c.bgNames[i]) {
			t.Errorf("the VM list row of %s reads %q; want it to name %s", id, name, c.bgNames[i])
		}
	}
	if evalJS[bool](t, tb, visible(`[data-page=login]`)) {
		t.Errorf("the login page is still shown after signing in")
	}
	tb.screenshot(t, "vms")
}

// adminGoes has the signed-in admin follow the link to hash (a navigation
// entry or a button) and waits for the route; it skips the subtest when
// the admin could not sign in.
func (c *consoleRun) adminGoes(t *testing.T, hash string) *tab {
	t.Helper()
	if !c.signedIn {
		t.Skip("needs the admin signed in (Login failed)")
	}
	c.admin.click(t, fmt.Sprintf(`a[href="%s"]`, hash))
	c.admin.waitHash(t, hash)
	return c.admin
}

// (2) Deploy through the wizard: the job's progress shows, the VM's page
// reaches Running and the VM really runs on a host; stop it from its page.
func (c *consoleRun) testDeployAndStop(t *testing.T) {
	tb := c.adminGoes(t, "#/deploy")
	tb.waitFor(t, "the deploy wizard", uiTimeout, visible("[data-page=deploy] h1"))
	tb.choose(t, "zoneid", c.r.zone)
	tb.choose(t, "templateid", c.r.template)
	tb.choose(t, "serviceofferingid", c.r.offering)
	tb.choose(t, "diskofferingid", c.r.diskOffering)
	const name = "console-vm"
	tb.typeText(t, "[name=name]", name)
	for _, f := range [][2]string{{"zoneid", c.r.zone}, {"templateid", c.r.template}, {"serviceofferingid", c.r.offering}, {"diskofferingid", c.r.diskOffering}} {
		if got := evalJS[string](t, tb, fmt.Sprintf(`document.querySelector('[name=%s]').value`, f[0])); got != f[1] {
			t.Errorf("the wizard's %s is %q after the picks; want %s", f[0], got, f[1])
		}
	}
	tb.screenshot(t, "deploy")

	// The job box may show only briefly on a fast cloud: watch the DOM for it.
	tb.eval(t, `window.__e2eJobs = [];
		const seen = () => document.querySelectorAll('[data-job]').forEach(e => {
			if (e.getClientRects().length && !window.__e2eJobs.includes(e.dataset.job)) window.__e2eJobs.push(e.dataset.job) });
		new MutationObserver(seen).observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['data-job']})`)
	tb.click(t, `button[data-action=deploy]`)
	hash := tb.waitFor(t, "the wizard to open the new VM's page", 60*time.Second, `location.hash.startsWith('#/vms/') && location.hash`)
	id := strings.TrimPrefix(hash, "#/vms/")
	if !uuidRE.MatchString(id) {
		t.Fatalf("the wizard went to %s; want #/vms/<VM id>", hash)
	}
	jobs := evalJS[[]string](t, tb, `window.__e2eJobs`)
	var jobID string
	for _, j := range jobs {
		if uuidRE.MatchString(j) {
			jobID = j
		}
	}
	if jobID == "" {
		t.Errorf("no job progress ([data-job] with the job's id) showed while the VM deployed; saw %q", jobs)
	} else {
		res, err := c.r.waitJob(context.Background(), jobID)
		if err != nil || res.Jobstatus != 1 || !strings.Contains(string(res.Jobresult), id) {
			t.Errorf("the job the wizard showed (%s) is not the VM's deploy: %+v, %v", jobID, res, err)
		}
	}
	state := `[data-page=vms-id] [data-field=state]`
	tb.waitFor(t, "the VM page to show Running", 60*time.Second, fmt.Sprintf(`%s === 'Running'`, textOf(state)))
	tb.waitFor(t, "the VM page to name the VM", uiTimeout, fmt.Sprintf(`%s.includes(%s)`, textOf(`[data-page=vms-id] h1`), jsString(name)))
	vm := c.r.expectVMs("after the wizard's deploy", []string{id}, "Running")[id]
	if vm.Name != name || vm.Zoneid != c.r.zone || vm.Templateid != c.r.template || vm.Serviceofferingid != c.r.offering {
		t.Errorf("the API lists the wizard's VM as %s zone %s template %s offering %s; want %s with the zone, template and offering picked",
			vm.Name, vm.Zoneid, vm.Templateid, vm.Serviceofferingid, name)
	}
	host := c.d.hostByID(vm.Hostid)
	st, err := host.status(c.d.probe)
	if err != nil {
		t.Fatalf("host %s of the VM: %v", vm.Hostid, err)
	}
	if power := domainSet(st)[id]; power != "Running" {
		t.Errorf("host %s (%s) has the VM's domain in power state %q; want Running", host.name, vm.Hostid, power)
	}
	tb.screenshot(t, "vm")
	c.stopFromPage(t, id, host)
}

// stopFromPage stops the VM with its page's Stop button.
func (c *consoleRun) stopFromPage(t *testing.T, id string, host *simHost) {
	tb := c.admin
	state := `[data-page=vms-id] [data-field=state]`
	tb.click(t, `[data-page=vms-id] button[data-action=stop]`)
	tb.confirmIfAsked(t, fmt.Sprintf(`%s !== 'Running'`, textOf(state)))
	tb.waitFor(t, "the VM page to show Stopped", 60*time.Second, fmt.Sprintf(`%s === 'Stopped'`, textOf(state)))
	c.r.expectVMs("after the stop from the VM page", []string{id}, "Stopped")
	if st, err := host.status(c.d.probe); err != nil {
		t.Errorf("host %s: %v", host.name, err)
	} else if power := domainSet(st)[id]; power == "Running" {
		t.Errorf("the VM shows Stopped but its domain still runs on host %s", host.name)
	}
	if !evalJS[bool](t, tb, visible(`[data-page=vms-id] button[data-action=start]`)) {
		t.Errorf("the stopped VM's page offers no Start button")
	}
}

// (3) As admin, put a host into maintenance from its page, see it, cancel.
func (c *consoleRun) testHostMaintenance(t *testing.T) {
	tb := c.adminGoes(t, "#/admin/infra")
	for _, h := range c.d.hosts {
		tb.waitFor(t, "host "+h.name+" Up in the infrastructure view", uiTimeout, fmt.Sprintf(`%s === 'Up'`, rowField("hosts", h.id, "state")))
	}
	tb.screenshot(t, "infra")

	// The host with the fewest running VMs: its maintenance has least to move.
	all, err := c.r.listVMs("")
	if err != nil {
		t.Fatal(err)
	}
	running := map[string]int{}
	for _, v := range all {
		if v.State == "Running" {
			running[v.Hostid]++
		}
	}
	target := c.d.hosts[0]
	for _, h := range c.d.hosts {
		if running[h.id] < running[target.id] {
			target = h
		}
	}
	// The row's first cell: toasts stack up at the right edge.
	tb.click(t, fmt.Sprintf(`table[data-table=hosts] tr[data-id="%s"] td`, target.id))
	tb.waitHash(t, "#/admin/hosts/"+target.id)
	page := `[data-page=admin-hosts-id]`
	rs := textOf(page + ` [data-field=resourcestate]`)
	tb.waitFor(t, "the host page to show the host Enabled", uiTimeout, fmt.Sprintf(`%s === 'Enabled'`, rs))

	tb.click(t, page+` button[data-action=maintenance]`)
	tb.confirmIfAsked(t, fmt.Sprintf(`%s !== 'Enabled'`, rs))
	tb.waitFor(t, "the host page to show Maintenance", 60*time.Second, fmt.Sprintf(`%s === 'Maintenance'`, rs))
	if h := c.apiHost(t, target.id); h.Resourcestate != "Maintenance" {
		t.Errorf("the page shows Maintenance but the API lists host %s as %s", target.name, hostState(h))
	}
	tb.screenshot(t, "host")

	tb.click(t, page+` button[data-action=cancelmaintenance]`)
	tb.confirmIfAsked(t, fmt.Sprintf(`%s !== 'Maintenance'`, rs))
	tb.waitFor(t, "the host page to show Enabled again", 60*time.Second, fmt.Sprintf(`%s === 'Enabled'`, rs))
	if h := c.apiHost(t, target.id); h.Resourcestate != "Enabled" {
		t.Errorf("the page shows Enabled but the API lists host %s as %s", target.name, hostState(h))
	}
}

// (5) A tenant does not see the admin navigation and gets a clear error
// when it opens an admin page by its address.
func (c *consoleRun) testTenant(t *testing.T) {
	doms, err := c.r.cs.Domain.ListDomains(c.r.cs.Domain.NewListDomainsParams())
	if err != nil {
		t.Fatal(err)
	}
	var root string
	for _, dm := range doms.Domains {
		if dm.Path == "ROOT" || dm.Name == "ROOT" {
			root = dm.Id
		}
	}
	if root == "" {
		t.Fatalf("listDomains shows no ROOT domain: %+v", doms.Domains)
	}
	createAccount(t, c.r.cs, c.d.lb, "console-tenant", "dana", root, 0)
	tb := c.b.isolatedTab(t, "tenant")
	tb.open(t, "")
	signIn(t, tb, "dana", "dana-password-1")
	tb.waitHash(t, "#/vms")
	tb.waitFor(t, "the tenant's navigation", uiTimeout, visible(`nav a[href="#/vms"]`))
	if n := evalJS[int](t, tb, `[...document.querySelectorAll('a[href^="#/admin"]')].filter(e => e.getClientRects().length).length`); n != 0 {
		t.Errorf("the tenant sees %d links to admin pages; want none", n)
	}
	if c.signedIn && !evalJS[bool](t, c.admin, visible(`nav a[href="#/admin/cluster"]`)) {
		t.Errorf("the admin's navigation has no link to the cluster page (the tenant check needs the contrast)")
	}
	for _, id := range c.bgIDs {
		if evalJS[bool](t, tb, fmt.Sprintf(`!!document.querySelector('table[data-table=vms] tr[data-id="%s"]')`, id)) {
			t.Errorf("the tenant's VM list shows the admin's VM %s", id)
		}
	}
	tb.setHash(t, "#/admin/cluster")
	msg := tb.waitFor(t, "an error on the admin page", uiTimeout, textOf(`[role=alert]`))
	if !regexp.MustCompile(`(?i)admin|permission|not allowed|denied|forbidden|authori`).MatchString(msg) {
		t.Errorf("the tenant opening #/admin/cluster sees %q; want an error saying the page needs an administrator", msg)
	}
	if n := evalJS[int](t, tb, `document.querySelectorAll('table[data-table=managementservers] tr[data-id]').length`); n != 0 {
		t.Errorf("the tenant sees %d management servers on #/admin/cluster; want none", n)
	}

	// The session's cookies are what docs/console.md says, and they work
	// for the API from anywhere with the key; signing out ends the session
	// on the servers, and its pages ask for a login again.
	cookies := tb.apiCookies(t)
	byName := map[string]*network.Cookie{}
	for _, ck := range cookies {
		byName[ck.Name] = ck
	}
	for _, name := range []string{"JSESSIONID", "sessionkey"} {
		ck := byName[name]
		if ck == nil || !ck.HTTPOnly || ck.Path != "/client" || ck.SameSite != network.CookieSameSiteLax {
			t.Errorf("the session cookie %s is %+v; want it HttpOnly, SameSite=Lax, Path=/client", name, ck)
		}
	}
	if byName["sessionkey"] == nil {
		t.Fatal("the tenant's browser holds no sessionkey cookie")
	}
	if code := sessionCall(t, c.d.lb.apiURL(), cookies, byName["sessionkey"].Value); code != http.StatusOK {
		t.Errorf("listVirtualMachines with the tenant's session answered HTTP %d; want 200", code)
	}
	tb.click(t, `button[data-action=logout]`)
	tb.waitFor(t, "the login page after signing out", uiTimeout, visible("#login-username"))
	tb.setHash(t, "#/vms")
	tb.waitFor(t, "the login page for #/vms after signing out", uiTimeout,
		`location.hash.startsWith('#/login') && `+visible("#login-username")+` && !document.querySelector('table[data-table=vms]')`)
	// Every server must refuse it; a follower may take a moment to apply the
	// logout, so ask a few times in a row (round robin) until all refuse.
	deadline, refused := time.Now().Add(5*time.Second), 0
	for refused < len(c.d.c.servers) {
		code := sessionCall(t, c.d.lb.apiURL(), cookies, byName["sessionkey"].Value)
		if code == http.StatusUnauthorized {
			refused++
			continue
		}
		refused = 0
		if time.Now().After(deadline) {
			t.Fatalf("5 s after signing out the session still answers listVirtualMachines with HTTP %d; want 401", code)
		}
		time.Sleep(uiPollEvery) // poll interval of a condition with a deadline
	}
}

// sessionCall sends listVirtualMachines with a browser's session cookies
// and key, as the console does, and returns the HTTP status.
func sessionCall(t *testing.T, apiURL string, cookies []*network.Cookie, key string) int {
	t.Helper()
	form := url.Values{"command": {"listVirtualMachines"}, "sessionkey": {key}, "response": {"json"}}
	req, err := http.NewRequest(http.MethodPost, apiURL, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, ck := range cookies {
		req.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("listVirtualMachines with the session: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// (4) The cluster page shows the three servers and the leader; the leader
// is killed with SIGKILL and the page, without a reload, shows it Down or
// unreachable and names the new leader.
func (c *consoleRun) testClusterLeaderKill(t *testing.T) {
	ms, err := c.r.cs.Management.ListManagementServers(c.r.cs.Management.NewListManagementServersParams())
	if err != nil || len(ms.ManagementServers) != 3 {
		t.Fatalf("listManagementServers: %+v, %v; want 3 servers", ms, err)
	}
	rowOf := map[string]string{} // server name (node ID) -> its row's data-id
	for _, m := range ms.ManagementServers {
		rowOf[m.Name] = m.Id
	}
	tb := c.adminGoes(t, "#/admin/cluster")
	ctx, cancel := context.WithTimeout(context.Background(), leaderTimeout)
	defer cancel()
	leader, _, err := c.d.leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leaderText := textOf(`[data-page=admin-cluster] [data-field=leader]`)
	for _, s := range c.d.c.servers {
		tb.waitFor(t, s.id+" Up", uiTimeout, fmt.Sprintf(`%s === 'Up' && %s.includes(%s)`,
			rowField("managementservers", rowOf[s.id], "state"), rowField("managementservers", rowOf[s.id], "name"), jsString(s.id)))
	}
	tb.waitFor(t, "the leader "+leader.id, uiTimeout, fmt.Sprintf(`%s === %s`, leaderText, jsString(leader.id)))
	if role := evalJS[string](t, tb, rowField("managementservers", rowOf[leader.id], "raftrole")); !strings.EqualFold(role, "leader") {
		t.Errorf("the row of %s shows raft role %q; want leader", leader.id, role)
	}
	tb.screenshot(t, "cluster")

	var others []string
	for _, s := range c.d.c.servers {
		if s != leader {
			others = append(others, s.id)
		}
	}
	tb.eval(t, `window.__e2eNoReload = true`)
	if _, _, err := c.d.killServer(leader); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	oldState := rowField("managementservers", rowOf[leader.id], "state")
	got := tb.waitFor(t, "the killed leader shown Down or unreachable and another server as leader", 20*time.Second, fmt.Sprintf(
		`(() => { const state = %s, lead = %s; return /down|unreachable/i.test(state) && %s.includes(lead) && (state + ', leader ' + lead) })()`,
		oldState, leaderText, jsArray(others)))
	seen := time.Since(killed)
	newLeader, _, err := c.d.leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tb.waitFor(t, "the page to name the new leader "+newLeader.id, uiTimeout, fmt.Sprintf(`%s === %s`, leaderText, jsString(newLeader.id)))
	t.Logf("e2e: %s killed; %s later the cluster page showed it %s", leader.id, seen.Round(time.Millisecond), got)
	tb.screenshot(t, "cluster-leader-down")
	if !evalJS[bool](t, tb, `window.__e2eNoReload === true && location.hash === '#/admin/cluster'`) {
		t.Errorf("the cluster page reloaded or moved away while the leader was killed")
	}
	if n := evalJS[int](t, tb, `document.querySelectorAll('table[data-table=managementservers] tr[data-id]').length`); n != 3 {
		t.Errorf("the cluster page lists %d servers after the kill; want all 3, the killed one Down", n)
	}
}

// jsArray is a JavaScript array literal of the strings.
func jsArray(ss []string) string {
	b, _ := json.Marshal(ss)
	return string(b)
}

// (6) Nothing went wrong in the browser: no uncaught exception, no
// console.error, no failed asset load, no CSP violation.
func (c *consoleRun) testNoConsoleErrors(t *testing.T) {
	c.b.mu.Lock()
	tabs := append([]*tab(nil), c.b.tabs...)
	c.b.mu.Unlock()
	for _, tb := range tabs {
		problems, notes := tb.report()
		for _, n := range notes {
			t.Logf("e2e: %s tab (expected): %s", tb.name, n)
		}
		for _, p := range problems {
			t.Errorf("%s tab: %s", tb.name, p)
		}
	}
}

// apiHost reads a host through the SDK.
func (c *consoleRun) apiHost(t *testing.T, id string) *cloudstack.Host {
	t.Helper()
	h, _, err := c.r.cs.Host.GetHostByID(id)
	if err != nil {
		t.Fatalf("host %s: %v", id, err)
	}
	return h
}
