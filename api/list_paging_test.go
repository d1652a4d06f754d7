package api

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stratus-cloud/stratus/fsm"
)

// The indexed lists (issue 7) against a plain reference: every row of the
// table in creation order, filtered by the scope and parameters as a
// reader of the CloudStack docs would, then paged. A small cloud of the
// scale fixture's shape: 600 VMs of 12 accounts in 4 domains (ROOT/d0/d1
// below ROOT/d0), some stopped, one expunging, one tagged.

var (
	smallOnce  sync.Once
	smallCloud *scaleCloud
)

func smallFixture(t *testing.T) *scaleCloud {
	t.Helper()
	smallOnce.Do(func() {
		sc := buildScaleCloud(t, scaleSize{hosts: 40, vms: 600, accounts: 12, domains: 4, zones: 2, pods: 2, clusters: 2})
		st := sc.c.State()
		var ops []fsm.TxnOp
		for i := 0; i < sc.size.vms; i += 7 { // every 7th VM stopped, as stopVirtualMachine leaves it
			v, _ := fsm.Get[fsm.VM](st, nil, fsm.TableVMs, scaleID(12, i))
			n := v.Copy()
			n.State, n.Power, n.HostID = fsm.VMStopped, fsm.PowerOff, ""
			ops = append(ops, fsm.Update(fsm.TableVMs, n))
		}
		v, _ := fsm.Get[fsm.VM](st, nil, fsm.TableVMs, scaleID(12, 500))
		n := v.Copy()
		n.State = fsm.VMExpunging
		ops = append(ops, fsm.Update(fsm.TableVMs, n))
		ops = append(ops, fsm.Create(fsm.TableTags, &fsm.Tag{ID: newID(), Key: "tier", Value: "web", ResourceType: "UserVm",
			ResourceID: scaleID(12, 42), AccountID: v.AccountID, DomainID: v.DomainID}))
		if _, err := sc.c.Apply(t.Context(), fsm.TxnRequestType, fsm.TxnRequest{Ops: ops}); err != nil {
			t.Fatal(err)
		}
		smallCloud = sc
	})
	if smallCloud == nil {
		t.Fatal("the small cloud failed to build")
	}
	return smallCloud
}

// listAs sends a list command and returns its count and the given field of
// each item, in answer order.
func (sc *scaleCloud) listAs(t *testing.T, id ident, params map[string]string, item, field string) (int, []string) {
	t.Helper()
	rec := httptest.NewRecorder()
	sc.s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, scaleRequest(id, params), nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("%s %v: %d %s", id.name, params, rec.Code, rec.Body.String())
	}
	body := decode(t, rec, strings.ToLower(params["command"])+"response")
	count := 0
	if c, ok := body["count"].(float64); ok {
		count = int(c)
	}
	var out []string
	items, _ := body[item].([]any)
	for _, it := range items {
		out = append(out, it.(map[string]any)[field].(string))
	}
	return count, out
}

// refVMs is the reference listVirtualMachines: the table in creation
// order, filtered.
func refVMs(st *fsm.Store, keep func(*fsm.VM) bool) []string {
	all, _ := fsm.List[fsm.VM](st, nil, fsm.TableVMs, "create")
	var out []string
	for _, v := range all {
		if v.State != fsm.VMExpunging && keep(v) {
			out = append(out, v.ID)
		}
	}
	return out
}

func TestListVirtualMachinesMatchesTheReference(t *testing.T) {
	sc := smallFixture(t)
	st := sc.c.State()
	domainOf := func(id string) string { d, _ := st.Domain(nil, id); return d.Path }
	tenant := sc.tenants[5]
	host, zone := sc.hosts[3], sc.zones[1]
	cases := []struct {
		name   string
		caller ident
		params map[string]string
		keep   func(*fsm.VM) bool
	}{
		{"root, everything", scaleRoot, map[string]string{"listall": "true"}, func(*fsm.VM) bool { return true }},
		{"root, own account only", scaleRoot, nil, func(v *fsm.VM) bool { return false }},
		{"tenant", tenant, nil, func(v *fsm.VM) bool { return v.AccountID == tenant.accountID }},
		{"tenant in a zone", tenant, map[string]string{"zoneid": strings.ToUpper(zone)},
			func(v *fsm.VM) bool { return v.AccountID == tenant.accountID && v.ZoneID == zone }},
		{"tenant, hostid is for admins only", tenant, map[string]string{"hostid": host},
			func(v *fsm.VM) bool { return v.AccountID == tenant.accountID }},
		{"root by host", scaleRoot, map[string]string{"listall": "true", "hostid": host}, func(v *fsm.VM) bool { return v.HostID == host }},
		{"root by zone", scaleRoot, map[string]string{"listall": "true", "zoneid": zone}, func(v *fsm.VM) bool { return v.ZoneID == zone }},
		{"root by state, any case", scaleRoot, map[string]string{"listall": "true", "state": "stopped"},
			func(v *fsm.VM) bool { return v.State == fsm.VMStopped }},
		{"root by name, any case", scaleRoot, map[string]string{"listall": "true", "name": "VM-000123"},
			func(v *fsm.VM) bool { return v.Name == "vm-000123" }},
		{"keyword across name and display name", scaleRoot, map[string]string{"listall": "true", "keyword": "0012 WEB server 00012"},
			func(v *fsm.VM) bool {
				return strings.Contains(strings.ToLower(v.Name+" "+v.DisplayName), "0012 web server 00012")
			}},
		{"keyword by state", scaleRoot, map[string]string{"listall": "true", "keyword": "STOPPED"},
			func(v *fsm.VM) bool { return v.State == fsm.VMStopped }},
		{"tag", scaleRoot, map[string]string{"listall": "true", "tags[0].key": "tier", "tags[0].value": "web"},
			func(v *fsm.VM) bool { return v.ID == scaleID(12, 42) }},
		{"ids", scaleRoot, map[string]string{"listall": "true", "ids": scaleID(12, 9) + "," + scaleID(12, 3) + "," + scaleID(12, 500)},
			func(v *fsm.VM) bool { return v.ID == scaleID(12, 9) || v.ID == scaleID(12, 3) }},
		{"domain admin, listall (ROOT/d0 and ROOT/d0/d1)", sc.dadmin, map[string]string{"listall": "true"},
			func(v *fsm.VM) bool { return inSubtree(domainOf(v.DomainID), "ROOT/d0") }},
		{"domain admin, one domain", sc.dadmin, map[string]string{"domainid": scaleID(9, 1)},
			func(v *fsm.VM) bool { return v.DomainID == scaleID(9, 1) }},
		{"root, a domain and below", scaleRoot, map[string]string{"domainid": scaleID(9, 0), "isrecursive": "true", "state": "Running"},
			func(v *fsm.VM) bool { return inSubtree(domainOf(v.DomainID), "ROOT/d0") && v.State == fsm.VMRunning }},
		{"root, an account", scaleRoot, map[string]string{"account": "acct3", "domainid": scaleID(9, 3)},
			func(v *fsm.VM) bool { return v.AccountID == sc.accounts[3] }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := refVMs(st, c.keep)
			params := map[string]string{"command": "listVirtualMachines"}
			for k, v := range c.params {
				params[k] = v
			}
			// Paged: the pages, in order, are the whole list; every page
			// tells the whole count.
			// Pages of one: the first ones, the last and the one past it.
			for _, page := range []int{1, 2, 3, len(want), len(want) + 1} {
				if page < 1 {
					continue
				}
				params["page"], params["pagesize"] = strconv.Itoa(page), "1"
				_, items := sc.listAs(t, c.caller, params, "virtualmachine", "id")
				var w []string
				if page >= 1 && page <= len(want) {
					w = want[page-1 : page]
				}
				if !slices.Equal(items, w) {
					t.Fatalf("page %d of 1: %v, want %v", page, items, w)
				}
			}
			for _, size := range []int{50} {
				var paged []string
				for page := 1; page <= len(want)/size+2; page++ {
					params["page"], params["pagesize"] = strconv.Itoa(page), strconv.Itoa(size)
					n, items := sc.listAs(t, c.caller, params, "virtualmachine", "id")
					if n != len(want) && len(want) > 0 {
						t.Fatalf("page %d of %d: count %d, want %d", page, size, n, len(want))
					}
					paged = append(paged, items...)
				}
				if !slices.Equal(paged, want) {
					t.Fatalf("pages of %d: %d VMs %v, want %d %v", size, len(paged), head(paged), len(want), head(want))
				}
			}
		})
	}
}

func head(ids []string) []string { return ids[:min(len(ids), 5)] }

func TestListPagingEdges(t *testing.T) {
	sc := smallFixture(t)
	tenant := sc.tenants[2]
	total := len(refVMs(sc.c.State(), func(v *fsm.VM) bool { return v.AccountID == tenant.accountID }))
	list := func(extra ...string) map[string]string {
		return catParams(map[string]string{"command": "listVirtualMachines"}, extra...)
	}
	// A page past the end tells the count and lists nothing.
	if n, items := sc.listAs(t, tenant, list("page", "1000", "pagesize", "10"), "virtualmachine", "id"); n != total || len(items) != 0 {
		t.Fatalf("page past the end: count %d, %d items; want count %d and none", n, len(items), total)
	}
	// pagesize=-1 without page: everything.
	if n, items := sc.listAs(t, scaleRoot, list("listall", "true", "pagesize", "-1"), "virtualmachine", "id"); n != sc.size.vms-1 || len(items) != n {
		t.Fatalf("pagesize=-1: count %d, %d items; want %d of each", n, len(items), sc.size.vms-1)
	}
	// No paging at all: default.page.size (500) of them.
	if n, items := sc.listAs(t, scaleRoot, list("listall", "true"), "virtualmachine", "id"); n != sc.size.vms-1 || len(items) != 500 {
		t.Fatalf("no paging: count %d, %d items; want %d and 500", n, len(items), sc.size.vms-1)
	}
	for _, c := range []struct {
		params []string
		text   string
	}{
		{[]string{"page", "1", "pagesize", "-1"}, `"page" parameter can't be specified`},
		{[]string{"page", "1", "pagesize", "501"}, "exceeds the maximum page size 500"},
		{[]string{"page", "0", "pagesize", "10"}, `"page" must be 1 or more`},
		{[]string{"page", "2"}, `"pagesize" parameter is required`},
		{[]string{"pagesize", "10"}, `"page" parameter is required`},
		{[]string{"page", "x", "pagesize", "10"}, "page"},
	} {
		for _, cmd := range []string{"listVirtualMachines", "listHosts", "listVolumes", "listAsyncJobs", "listEvents"} {
			p := catParams(map[string]string{"command": cmd}, c.params...)
			rec := httptest.NewRecorder()
			sc.s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, scaleRequest(scaleRoot, p), nil))
			if rec.Code != 431 {
				t.Errorf("%s %v: %d %s; want 431", cmd, c.params, rec.Code, rec.Body.String())
				continue
			}
			if text, _ := decode(t, rec, strings.ToLower(cmd)+"response")["errortext"].(string); !strings.Contains(text, c.text) {
				t.Errorf("%s %v: %q; want it to say %q", cmd, c.params, text, c.text)
			}
		}
	}
}

// TestOtherListsMatchTheReference pages listHosts, listVolumes,
// listAsyncJobs and listEvents (newest first) and compares them with the
// table in (reverse) creation order.
func TestOtherListsMatchTheReference(t *testing.T) {
	sc := smallFixture(t)
	st := sc.c.State()
	domainOf := func(id string) string { d, _ := st.Domain(nil, id); return d.Path }
	inD0 := func(domainID string) bool { return inSubtree(domainOf(domainID), "ROOT/d0") }
	tenant := sc.tenants[4]
	hosts, _ := fsm.List[fsm.Host](st, nil, fsm.TableHosts, "create")
	vols, _ := fsm.List[fsm.Volume](st, nil, fsm.TableVolumes, "create")
	jobs, _ := fsm.List[fsm.AsyncJob](st, nil, fsm.TableJobs, "create")
	events, _ := fsm.List[fsm.Event](st, nil, fsm.TableEvents, "create")
	slices.Reverse(events)
	ids := func(n int, id func(int) (string, bool)) []string {
		var out []string
		for i := range n {
			if s, ok := id(i); ok {
				out = append(out, s)
			}
		}
		return out
	}
	cases := []struct {
		name, item string
		caller     ident
		params     map[string]string
		want       []string
	}{
		{"hosts of a cluster", "host", scaleRoot, map[string]string{"command": "listHosts", "clusterid": hosts[5].ClusterID},
			ids(len(hosts), func(i int) (string, bool) { return hosts[i].ID, hosts[i].ClusterID == hosts[5].ClusterID })},
		{"hosts by keyword", "host", scaleRoot, map[string]string{"command": "listHosts", "keyword": "KVM-0001"},
			ids(len(hosts), func(i int) (string, bool) { return hosts[i].ID, strings.HasPrefix(hosts[i].Name, "kvm-0001") })},
		{"a tenant's volumes", "volume", tenant, map[string]string{"command": "listVolumes"},
			ids(len(vols), func(i int) (string, bool) { return vols[i].ID, vols[i].AccountID == tenant.accountID })},
		{"a domain admin's volumes", "volume", sc.dadmin, map[string]string{"command": "listVolumes", "listall": "true"},
			ids(len(vols), func(i int) (string, bool) { return vols[i].ID, inD0(vols[i].DomainID) })},
		{"a tenant's jobs", "asyncjobs", tenant, map[string]string{"command": "listAsyncJobs"},
			ids(len(jobs), func(i int) (string, bool) { return jobs[i].ID, jobs[i].AccountID == tenant.accountID })},
		{"a domain admin's jobs", "asyncjobs", sc.dadmin, map[string]string{"command": "listAsyncJobs", "listall": "true"},
			ids(len(jobs), func(i int) (string, bool) { return jobs[i].ID, inD0(jobs[i].DomainID) })},
		{"a tenant's events, newest first", "event", tenant, map[string]string{"command": "listEvents"},
			ids(len(events), func(i int) (string, bool) { return events[i].ID, events[i].AccountID == tenant.accountID })},
		{"a domain admin's events, newest first", "event", sc.dadmin, map[string]string{"command": "listEvents", "listall": "true"},
			ids(len(events), func(i int) (string, bool) { return events[i].ID, inD0(events[i].DomainID) })},
		{"every event", "event", scaleRoot, map[string]string{"command": "listEvents", "listall": "true", "type": "vm.start"},
			ids(len(events), func(i int) (string, bool) { return events[i].ID, events[i].Type == "VM.START" })},
	}
	field := map[string]string{"asyncjobs": "jobid"}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if len(c.want) == 0 {
				t.Fatal("the reference is empty: the case tests nothing")
			}
			f := field[c.item]
			if f == "" {
				f = "id"
			}
			var paged []string
			for page := 1; page <= len(c.want)/50+2; page++ {
				c.params["page"], c.params["pagesize"] = strconv.Itoa(page), "50"
				n, items := sc.listAs(t, c.caller, c.params, c.item, f)
				if n != len(c.want) {
					t.Fatalf("page %d: count %d, want %d", page, n, len(c.want))
				}
				paged = append(paged, items...)
			}
			if !slices.Equal(paged, c.want) {
				t.Fatalf("%d rows %v, want %d %v", len(paged), head(paged), len(c.want), head(c.want))
			}
		})
	}
}

// TestMergeRowsOrdersLikeTheCreateIndex checks fsm.MergeRows on the
// accounts of two domains against the create index, both ways.
func TestMergeRowsOrdersLikeTheCreateIndex(t *testing.T) {
	sc := smallFixture(t)
	st := sc.c.State()
	var lookups [][]any
	keep := map[string]bool{}
	for i, a := range sc.accounts {
		if i%3 != 0 {
			lookups, keep[a] = append(lookups, []any{a}), true
		}
	}
	all, _ := fsm.List[fsm.VM](st, nil, fsm.TableVMs, "create")
	var want []string
	for _, v := range all {
		if keep[v.AccountID] {
			want = append(want, v.ID)
		}
	}
	for _, reverse := range []bool{false, true} {
		rows, err := fsm.MergeRows[fsm.VM](st, fsm.TableVMs, "account", lookups, reverse)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for v := range rows {
			got = append(got, v.ID)
		}
		if reverse {
			slices.Reverse(got)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("reverse=%v: %d rows %v, want %d %v", reverse, len(got), head(got), len(want), head(want))
		}
	}
}

// TestKeywordMatcherAgreesWithLowerContains compares the matcher with
// strings.Contains(strings.ToLower(joined fields), kw) on mixed case,
// non-ASCII and keywords that span fields.
func TestKeywordMatcherAgreesWithLowerContains(t *testing.T) {
	fields := [][]string{
		{"web-01", "Web Server 01", "10.0.0.5"},
		{"DB", "ÉCOLE Primaire", ""},
		{"", "", ""},
		{"i-ABC", "x\xffy", "Ünïcode NAME"},
	}
	for _, kw := range []string{"", "web", "server 01 10.0", "01 web", "école", "prim", "e p", "\xff", "ünï", "name", "db école", "x"} {
		m := newKeywordMatcher(kw)
		for _, f := range fields {
			if got, want := m.match(f...), keywordMatches(kw, f...); got != want {
				t.Errorf("keyword %q in %q: %v, want %v", kw, f, got, want)
			}
		}
	}
}

// keywordMatches is the plain definition keywordMatcher must agree with.
func keywordMatches(kw string, fields ...string) bool {
	return strings.Contains(strings.ToLower(strings.Join(fields, " ")), kw)
}
