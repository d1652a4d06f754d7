package api

import (
	"context"
	"encoding/json"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/stratus-cloud/stratus/fsm"
)

// catalogFixture is the identity fixture (root, dadmin of ROOT/eng, alice
// in ROOT/eng, bob in ROOT/eng/web, carol in ROOT) with two enabled zones.
type catalogFixture struct {
	*fixture
	zone1, zone2 string
}

func newCatalogFixture(t *testing.T) *catalogFixture {
	t.Helper()
	f := &catalogFixture{fixture: newIdentityFixture(t)}
	for i, name := range []string{"zone one", "zone two"} {
		id := createTestZone(t, f.s, name)["id"].(string)
		f.root.ok(t, f.s, map[string]string{"command": "updateZone", "id": id, "allocationstate": "Enabled"})
		if i == 0 {
			f.zone1 = id
		} else {
			f.zone2 = id
		}
	}
	return f
}

// catFail asserts an error answer of a command sent by id.
func catFail(t *testing.T, id ident, s *Server, params map[string]string, code int, text string) {
	t.Helper()
	wantError(t, id.do(t, s, params), strings.ToLower(params["command"])+"response", code, text)
}

// with returns params plus extra.
func catParams(params map[string]string, extra ...string) map[string]string {
	out := map[string]string{}
	for k, v := range params {
		out[k] = v
	}
	for i := 0; i+1 < len(extra); i += 2 {
		out[extra[i]] = extra[i+1]
	}
	return out
}

// items returns the items of a list response.
func catItems(body map[string]any, item string) []map[string]any {
	var out []map[string]any
	list, _ := body[item].([]any)
	for _, it := range list {
		out = append(out, it.(map[string]any))
	}
	return out
}

// catalogEvents lists the event types recorded about a resource, sorted.
func catalogEvents(t *testing.T, c *fakeCluster, resourceID string) []string {
	t.Helper()
	evs, err := fsm.List[fsm.Event](c.State(), nil, fsm.TableEvents, "create")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		if e.ResourceID == resourceID {
			out = append(out, e.Type)
		}
	}
	sort.Strings(out)
	return out
}

func wantCatalogEvents(t *testing.T, c *fakeCluster, resourceID string, want ...string) {
	t.Helper()
	sort.Strings(want)
	if got := catalogEvents(t, c, resourceID); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("events of %s = %v, want %v", resourceID, got, want)
	}
}

const catUnknownID = "99999999-9999-4999-8999-999999999999"

func catNotFound(param, value string) string {
	return "Invalid parameter " + param + " value=" + value + " due to incorrect long value format, or entity does not exist"
}

var smallOffering = map[string]string{"command": "createServiceOffering", "name": "small", "displaytext": "Small: 1 vCPU, 1 GiB",
	"cpunumber": "1", "cpuspeed": "1000", "memory": "1024"}

func TestServiceOfferingLifecycle(t *testing.T) {
	f := newCatalogFixture(t)
	s, root := f.s, f.root
	so := root.ok(t, s, catParams(smallOffering, "offerha", "true", "hosttags", "ssd,gpu", "tags", "fast", "storagetype", "LOCAL",
		"serviceofferingdetails[0].key", "color", "serviceofferingdetails[0].value", "blue"))["serviceoffering"].(map[string]any)
	id := so["id"].(string)
	want := map[string]any{"name": "small", "displaytext": "Small: 1 vCPU, 1 GiB", "cpunumber": 1.0, "cpuspeed": 1000.0, "memory": 1024.0,
		"offerha": true, "limitcpuuse": false, "hosttags": "ssd,gpu", "storagetags": "fast", "storagetype": "local", "issystem": false,
		"iscustomized": false, "provisioningtype": "thin", "dynamicscalingenabled": true, "created": "2026-11-22T12:00:00+0000"}
	for k, v := range want {
		if so[k] != v {
			t.Errorf("created offering %s = %v, want %v", k, so[k], v)
		}
	}
	if so["serviceofferingdetails"].(map[string]any)["color"] != "blue" {
		t.Errorf("details = %v", so["serviceofferingdetails"])
	}
	for _, k := range []string{"domainid", "zoneid", "state"} {
		if _, ok := so[k]; ok {
			t.Errorf("public offering has %s: %v", k, so)
		}
	}

	// A customized offering: no fixed size, bounds in the details.
	custom := root.ok(t, s, map[string]string{"command": "createServiceOffering", "name": "custom", "displaytext": "Pick a size",
		"cpuspeed": "2000", "mincpunumber": "1", "maxcpunumber": "8", "minmemory": "512", "maxmemory": "16384",
		"domainid": f.engID, "zoneid": f.zone1})["serviceoffering"].(map[string]any)
	if custom["iscustomized"] != true || custom["cpunumber"] != nil || custom["memory"] != nil || custom["cpuspeed"] != 2000.0 {
		t.Errorf("customized offering = %v", custom)
	}
	d := custom["serviceofferingdetails"].(map[string]any)
	if d["mincpunumber"] != "1" || d["maxcpunumber"] != "8" || d["minmemory"] != "512" || d["maxmemory"] != "16384" {
		t.Errorf("customized bounds = %v", d)
	}
	if custom["domainid"] != f.engID || custom["domain"] != "eng" || custom["zoneid"] != f.zone1 || custom["zone"] != "zone one" {
		t.Errorf("customized scope = %v", custom)
	}

	// Update: rename, order first, new tags, then open to everyone.
	up := root.ok(t, s, map[string]string{"command": "updateServiceOffering", "id": custom["id"].(string), "name": "flex",
		"displaytext": "Flexible", "sortkey": "-1", "hosttags": "", "storagetags": "ssd"})["serviceoffering"].(map[string]any)
	if up["name"] != "flex" || up["displaytext"] != "Flexible" || up["hosttags"] != nil || up["storagetags"] != "ssd" {
		t.Errorf("updated offering = %v", up)
	}
	up = root.ok(t, s, map[string]string{"command": "updateServiceOffering", "id": custom["id"].(string), "domainid": "public", "zoneid": "all"})["serviceoffering"].(map[string]any)
	if up["domainid"] != nil || up["zoneid"] != nil {
		t.Errorf("offering still scoped: %v", up)
	}
	list := root.ok(t, s, map[string]string{"command": "listServiceOfferings"})
	if names := names(list, "serviceoffering", "name"); len(names) != 2 {
		t.Fatalf("offerings = %v", names)
	}
	if first := catItems(list, "serviceoffering")[0]["name"]; first != "flex" {
		t.Errorf("sort key -1 should list flex first, got %v", first)
	}

	// Delete, then the id is unknown.
	if body := root.ok(t, s, map[string]string{"command": "deleteServiceOffering", "id": id}); body["success"] != true {
		t.Fatalf("delete = %v", body)
	}
	catFail(t, root, s, map[string]string{"command": "listServiceOfferings", "id": id}, 431, catNotFound("id", id))
	catFail(t, root, s, map[string]string{"command": "deleteServiceOffering", "id": id}, 431, catNotFound("id", id))
	wantCatalogEvents(t, f.c, id, "SERVICE.OFFERING.CREATE", "SERVICE.OFFERING.DELETE")
	wantCatalogEvents(t, f.c, custom["id"].(string), "SERVICE.OFFERING.CREATE", "SERVICE.OFFERING.EDIT", "SERVICE.OFFERING.EDIT")
}

func TestServiceOfferingParameterErrors(t *testing.T) {
	f := newCatalogFixture(t)
	s, root := f.s, f.root
	root.ok(t, s, smallOffering)
	cases := []struct {
		name   string
		params map[string]string
		code   int
		text   string
	}{
		{"missing name", catParams(smallOffering, "name", ""), 431, "due to missing parameter name"},
		{"missing displaytext", catParams(smallOffering, "displaytext", ""), 431, "due to missing parameter displaytext"},
		{"blank name", catParams(smallOffering, "name", "  "), 431, "parameter name must not be blank"},
		{"duplicate name", catParams(smallOffering, "name", "SMALL"), 431, "a service offering with this name already exists"},
		{"cpunumber not a number", catParams(smallOffering, "name", "x", "cpunumber", "two"), 431, "invalid value two for parameter cpunumber"},
		{"cpunumber zero", catParams(smallOffering, "name", "x", "cpunumber", "0"), 431, "parameter cpunumber: it must be 1 or more"},
		{"memory too small", catParams(smallOffering, "name", "x", "memory", "16"), 431, "parameter memory: it must be 32 or more"},
		{"fixed without cpuspeed", catParams(smallOffering, "name", "x", "cpuspeed", ""), 431, "due to missing parameter cpuspeed"},
		{"fixed without memory", catParams(smallOffering, "name", "x", "memory", "", "customized", "false"), 431, "due to missing parameter memory"},
		{"customized with cpunumber", catParams(smallOffering, "name", "x", "customized", "true"), 431, "parameter cpunumber cannot be set on a customized offering"},
		{"bounds on a fixed offering", catParams(smallOffering, "name", "x", "maxcpunumber", "4"), 431, "parameter maxcpunumber only applies to a customized offering"},
		{"min above max", map[string]string{"name": "x", "displaytext": "x", "mincpunumber": "4", "maxcpunumber": "2"}, 431, "mincpunumber 4 is more than maxcpunumber 2"},
		{"bad storagetype", catParams(smallOffering, "name", "x", "storagetype", "nfs"), 431, `invalid value "nfs" for parameter storagetype`},
		{"bad provisioningtype", catParams(smallOffering, "name", "x", "provisioningtype", "thick"), 431, "parameter provisioningtype"},
		{"bad cachemode", catParams(smallOffering, "name", "x", "cachemode", "fast"), 431, "parameter cachemode"},
		{"bad planner", catParams(smallOffering, "name", "x", "deploymentplanner", "Random"), 431, "parameter deploymentplanner"},
		{"bad boolean", catParams(smallOffering, "name", "x", "offerha", "maybe"), 431, "invalid value maybe for parameter offerha"},
		{"rootdisksize zero", catParams(smallOffering, "name", "x", "rootdisksize", "0"), 431, "parameter rootdisksize"},
		{"system offering", catParams(smallOffering, "name", "x", "issystem", "true"), 431, "parameter issystem"},
		{"unknown domain", catParams(smallOffering, "name", "x", "domainid", f.engID+","+catUnknownID), 431, catNotFound("domainid", catUnknownID)},
		{"malformed zone", catParams(smallOffering, "name", "x", "zoneid", "zone-1"), 431, catNotFound("zoneid", "zone-1")},
		{"unknown disk offering", catParams(smallOffering, "name", "x", "diskofferingid", catUnknownID), 431, catNotFound("diskofferingid", catUnknownID)},
		{"malformed map", catParams(smallOffering, "name", "x", "serviceofferingdetails[x].key", "a"), 430, "Unable to decode parameter"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.params["command"] = "createServiceOffering"
			catFail(t, root, s, tc.params, tc.code, tc.text)
		})
	}
	id := names(root.ok(t, s, map[string]string{"command": "listServiceOfferings"}), "serviceoffering", "id")[0]
	updates := []struct {
		name   string
		params map[string]string
		text   string
	}{
		{"unknown id", map[string]string{"id": catUnknownID}, catNotFound("id", catUnknownID)},
		{"missing id", map[string]string{"name": "x"}, "due to missing parameter id"},
		{"blank name", map[string]string{"id": id, "name": " "}, "parameter name must not be blank"},
		{"bad sortkey", map[string]string{"id": id, "sortkey": "first"}, "invalid value first for parameter sortkey"},
		{"unknown zone", map[string]string{"id": id, "zoneid": catUnknownID}, catNotFound("zoneid", catUnknownID)},
	}
	for _, tc := range updates {
		t.Run("update "+tc.name, func(t *testing.T) {
			tc.params["command"] = "updateServiceOffering"
			catFail(t, root, s, tc.params, 431, tc.text)
		})
	}
	// Listing checks its filters too.
	catFail(t, root, s, map[string]string{"command": "listServiceOfferings", "zoneid": catUnknownID}, 431, catNotFound("zoneid", catUnknownID))
	catFail(t, root, s, map[string]string{"command": "listServiceOfferings", "domainid": catUnknownID}, 431, catNotFound("domainid", catUnknownID))
	catFail(t, root, s, map[string]string{"command": "listServiceOfferings", "memory": "lots"}, 431, "invalid value lots for parameter memory")
	catFail(t, root, s, map[string]string{"command": "listServiceOfferings", "pagesize": "1"}, 431, `"page" parameter is required`)
	catFail(t, f.alice, s, map[string]string{"command": "listServiceOfferings", "issystem": "true"}, 431, "only the root admin")
}

// TestOfferingVisibilityAndFilters: users see public offerings and those
// of their domain or a domain above it; a domain admin also those of the
// domains below its own.
func TestOfferingVisibilityAndFilters(t *testing.T) {
	f := newCatalogFixture(t)
	s, root := f.s, f.root
	web := root.ok(t, s, catParams(smallOffering, "name", "web-only", "domainid", f.webID))["serviceoffering"].(map[string]any)["id"].(string)
	root.ok(t, s, catParams(smallOffering, "name", "eng-only", "domainid", f.engID, "cpunumber", "4", "memory", "4096", "zoneid", f.zone2))
	root.ok(t, s, catParams(smallOffering, "name", "public", "cpuspeed", "3000"))
	root.ok(t, s, map[string]string{"command": "createServiceOffering", "name": "custom", "displaytext": "custom", "maxcpunumber": "2"})
	all := []string{"web-only", "eng-only", "public", "custom"}
	see := func(id ident, extra ...string) []string {
		t.Helper()
		return names(id.ok(t, s, catParams(map[string]string{"command": "listServiceOfferings"}, extra...)), "serviceoffering", "name")
	}
	wantNames(t, "root", see(root), all...)
	wantNames(t, "dadmin of eng", see(f.dadmin), all...)
	wantNames(t, "alice in eng", see(f.alice), "eng-only", "public", "custom")
	wantNames(t, "bob in eng/web", see(f.bob), all...)
	wantNames(t, "carol in ROOT", see(f.carol), "public", "custom")
	catFail(t, f.carol, s, map[string]string{"command": "listServiceOfferings", "id": web}, 431, catNotFound("id", web))
	catFail(t, f.carol, s, map[string]string{"command": "listServiceOfferings", "domainid": f.engID}, 431, catNotFound("domainid", f.engID))

	// Filters.
	wantNames(t, "zone one", see(root, "zoneid", f.zone1), "web-only", "public", "custom")
	wantNames(t, "domain eng", see(root, "domainid", f.engID), "eng-only")
	wantNames(t, "domain eng, recursive", see(root, "domainid", f.engID, "isrecursive", "true"), "eng-only", "web-only")
	wantNames(t, "bob, his domain", see(f.bob, "domainid", f.webID), "web-only")
	wantNames(t, "4 cpus", see(root, "cpunumber", "4"), "eng-only")
	wantNames(t, "2 cpus", see(root, "cpunumber", "2"), "custom")
	wantNames(t, "1 cpu", see(root, "cpunumber", "1"), "web-only", "public", "custom")
	wantNames(t, "4 GiB", see(root, "memory", "4096"), "eng-only", "custom")
	wantNames(t, "2.5 GHz", see(root, "cpuspeed", "2500"), "public", "custom")
	wantNames(t, "name", see(root, "name", "PUBLIC"), "public")
	wantNames(t, "keyword", see(root, "keyword", "only"), "web-only", "eng-only")
	wantNames(t, "system", see(root, "issystem", "true"))

	// Paging keeps the total count.
	page := root.ok(t, s, map[string]string{"command": "listServiceOfferings", "page": "2", "pagesize": "3"})
	if page["count"] != 4.0 || len(catItems(page, "serviceoffering")) != 1 {
		t.Errorf("page 2 of 3 = %v", page)
	}
	// An empty list is {}.
	rec := f.carol.do(t, s, map[string]string{"command": "listServiceOfferings", "name": "web-only"})
	if strings.TrimSpace(rec.Body.String()) != `{"listserviceofferingsresponse":{}}` {
		t.Errorf("empty list = %s", rec.Body.String())
	}
}

func TestOfferingCommandsAreRootAdminOnly(t *testing.T) {
	f := newCatalogFixture(t)
	s := f.s
	so := f.root.ok(t, s, smallOffering)["serviceoffering"].(map[string]any)["id"].(string)
	do := f.root.ok(t, s, map[string]string{"command": "createDiskOffering", "name": "d", "displaytext": "d", "disksize": "1"})["diskoffering"].(map[string]any)["id"].(string)
	cmds := []map[string]string{
		catParams(smallOffering, "name", "other"),
		{"command": "updateServiceOffering", "id": so, "name": "x"},
		{"command": "deleteServiceOffering", "id": so},
		{"command": "createDiskOffering", "name": "e", "displaytext": "e", "disksize": "1"},
		{"command": "updateDiskOffering", "id": do, "name": "x"},
		{"command": "deleteDiskOffering", "id": do},
	}
	for _, cmd := range cmds {
		for _, id := range []ident{f.dadmin, f.alice} {
			rec := id.do(t, s, cmd)
			if rec.Code != 401 || !strings.Contains(rec.Body.String(), notAvailable) {
				t.Errorf("%s calling %s: %d %s", id.name, cmd["command"], rec.Code, rec.Body.String())
			}
		}
	}
	for _, cmd := range []string{"listServiceOfferings", "listDiskOfferings", "listOsTypes", "listOsCategories"} {
		f.alice.ok(t, s, map[string]string{"command": cmd})
	}
}

func TestDiskOfferingLifecycleAndErrors(t *testing.T) {
	f := newCatalogFixture(t)
	s, root := f.s, f.root
	base := map[string]string{"command": "createDiskOffering", "name": "data-10", "displaytext": "10 GiB", "disksize": "10"}
	d := root.ok(t, s, catParams(base, "tags", "ssd, ssd,fast", "provisioningtype", "fat", "cachemode", "writeback", "miniops", "100",
		"maxiops", "500", "details[0].key", "k", "details[0].value", "v"))["diskoffering"].(map[string]any)
	id := d["id"].(string)
	want := map[string]any{"name": "data-10", "displaytext": "10 GiB", "disksize": 10.0, "iscustomized": false, "tags": "ssd,fast",
		"storagetype": "shared", "provisioningtype": "fat", "cacheMode": "writeback", "miniops": 100.0, "maxiops": 500.0,
		"displayoffering": true, "encrypt": false, "created": "2026-11-22T12:00:00+0000"}
	for k, v := range want {
		if d[k] != v {
			t.Errorf("disk offering %s = %v, want %v", k, d[k], v)
		}
	}
	if d["details"].(map[string]any)["k"] != "v" {
		t.Errorf("details = %v", d["details"])
	}
	custom := root.ok(t, s, map[string]string{"command": "createDiskOffering", "name": "custom", "displaytext": "any size",
		"customized": "true", "displayoffering": "false", "zoneid": f.zone1 + "," + f.zone2})["diskoffering"].(map[string]any)
	if custom["iscustomized"] != true || custom["disksize"] != 0.0 || custom["zoneid"] != f.zone1+","+f.zone2 || custom["zone"] != "zone one,zone two" {
		t.Errorf("customized disk offering = %v", custom)
	}
	// Hidden offerings are the root admin's alone.
	wantNames(t, "root", names(root.ok(t, s, map[string]string{"command": "listDiskOfferings"}), "diskoffering", "name"), "data-10", "custom")
	wantNames(t, "alice", names(f.alice.ok(t, s, map[string]string{"command": "listDiskOfferings"}), "diskoffering", "name"), "data-10")
	cid := custom["id"].(string)
	catFail(t, f.alice, s, map[string]string{"command": "listDiskOfferings", "id": cid}, 431, catNotFound("id", cid))
	up := root.ok(t, s, map[string]string{"command": "updateDiskOffering", "id": cid, "displayoffering": "true", "name": "flex", "tags": "gold",
		"zoneid": "all", "domainid": f.webID})["diskoffering"].(map[string]any)
	if up["name"] != "flex" || up["tags"] != "gold" || up["displayoffering"] != true || up["zoneid"] != nil || up["domainid"] != f.webID {
		t.Errorf("updated disk offering = %v", up)
	}
	wantNames(t, "bob", names(f.bob.ok(t, s, map[string]string{"command": "listDiskOfferings"}), "diskoffering", "name"), "data-10", "flex")
	wantNames(t, "zone filter", names(root.ok(t, s, map[string]string{"command": "listDiskOfferings", "zoneid": f.zone2, "keyword": "FLE"}), "diskoffering", "name"), "flex")

	cases := []struct {
		name   string
		params map[string]string
		text   string
	}{
		{"missing size", catParams(base, "name", "x", "disksize", ""), "due to missing parameter disksize"},
		{"size and customized", catParams(base, "name", "x", "customized", "true"), "parameter disksize cannot be set on a customized disk offering"},
		{"size zero", catParams(base, "name", "x", "disksize", "0"), "invalid value 0 for parameter disksize"},
		{"size huge", catParams(base, "name", "x", "disksize", "9999999999"), "parameter disksize"},
		{"size not a number", catParams(base, "name", "x", "disksize", "big"), "invalid value big for parameter disksize"},
		{"iops reversed", catParams(base, "name", "x", "miniops", "10", "maxiops", "5"), "miniops 10 is more than maxiops 5"},
		{"duplicate name", catParams(base, "name", "Data-10"), "a disk offering with this name already exists"},
		{"bad storagetype", catParams(base, "name", "x", "storagetype", "san"), "parameter storagetype"},
		{"unknown domain", catParams(base, "name", "x", "domainid", catUnknownID), catNotFound("domainid", catUnknownID)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { catFail(t, root, s, tc.params, 431, tc.text) })
	}
	catFail(t, root, s, map[string]string{"command": "updateDiskOffering", "id": catUnknownID}, 431, catNotFound("id", catUnknownID))
	catFail(t, root, s, map[string]string{"command": "updateDiskOffering", "id": id, "cachemode": "lots"}, 431, "parameter cachemode")

	// A disk offering a compute offering uses cannot go.
	so := root.ok(t, s, catParams(smallOffering, "diskofferingid", id))["serviceoffering"].(map[string]any)
	if so["diskofferingid"] != id || so["diskofferingname"] != "data-10" || so["diskofferingdisplaytext"] != "10 GiB" {
		t.Errorf("linked disk offering = %v", so)
	}
	catFail(t, root, s, map[string]string{"command": "deleteDiskOffering", "id": id}, 536, "cannot delete disk offering "+id+": service offering small still uses it")
	root.ok(t, s, map[string]string{"command": "deleteServiceOffering", "id": so["id"].(string)})
	root.ok(t, s, map[string]string{"command": "deleteDiskOffering", "id": id})
	wantCatalogEvents(t, f.c, id, "DISK.OFFERING.CREATE", "DISK.OFFERING.DELETE")
	wantCatalogEvents(t, f.c, cid, "DISK.OFFERING.CREATE", "DISK.OFFERING.EDIT")
}

// TestOfferingScopeKeepsDomainsAndZones: a domain or zone an offering is
// limited to cannot be deleted until the offering lets go of it.
func TestOfferingScopeKeepsDomainsAndZones(t *testing.T) {
	f := newCatalogFixture(t)
	s, root := f.s, f.root
	empty := root.ok(t, s, map[string]string{"command": "createDomain", "name": "empty"})["domain"].(map[string]any)["id"].(string)
	so := root.ok(t, s, catParams(smallOffering, "domainid", empty, "zoneid", f.zone2))["serviceoffering"].(map[string]any)["id"].(string)
	catFail(t, root, s, map[string]string{"command": "deleteDomain", "id": empty}, 536, "service offering small still uses it")
	catFail(t, root, s, map[string]string{"command": "deleteZone", "id": f.zone2}, 536, "service offering small still uses it")
	root.ok(t, s, map[string]string{"command": "updateServiceOffering", "id": so, "domainid": "public", "zoneid": "all"})
	root.ok(t, s, map[string]string{"command": "deleteZone", "id": f.zone2})
	// The domain goes as an async job.
	body := root.ok(t, s, map[string]string{"command": "deleteDomain", "id": empty})
	if job := waitForJob(t, s, body["jobid"].(string)); job["jobstatus"] != 1.0 {
		t.Fatalf("delete domain job = %v", job)
	}
}

func TestListOsTypesAndCategories(t *testing.T) {
	f := newCatalogFixture(t)
	s, alice := f.s, f.alice
	all := alice.ok(t, s, map[string]string{"command": "listOsTypes"})
	if int(all["count"].(float64)) != len(fsm.OSTypes()) {
		t.Fatalf("count = %v, want %d", all["count"], len(fsm.OSTypes()))
	}
	ubuntu := alice.ok(t, s, map[string]string{"command": "listOsTypes", "oscategoryid": fsm.OSCategoryUbuntu})
	for _, it := range catItems(ubuntu, "ostype") {
		if !strings.HasPrefix(it["description"].(string), "Ubuntu") || it["oscategoryid"] != fsm.OSCategoryUbuntu || it["isuserdefined"] != false {
			t.Errorf("ubuntu type = %v", it)
		}
	}
	wantNames(t, "description", names(alice.ok(t, s, map[string]string{"command": "listOsTypes", "description": "22.04"}), "ostype", "description"), "Ubuntu 22.04 LTS")
	wantNames(t, "keyword", names(alice.ok(t, s, map[string]string{"command": "listOsTypes", "keyword": "rocky linux 9"}), "ostype", "description"), "Rocky Linux 9")
	byID := alice.ok(t, s, map[string]string{"command": "listOsTypes", "id": strings.ToUpper(fsm.OSTypeOtherLinux64)})
	wantNames(t, "id", names(byID, "ostype", "description"), "Other Linux (64-bit)")
	page := alice.ok(t, s, map[string]string{"command": "listOsTypes", "page": "2", "pagesize": "5"})
	if len(catItems(page, "ostype")) != 5 || page["count"] != all["count"] {
		t.Errorf("page = %v", page)
	}
	catFail(t, alice, s, map[string]string{"command": "listOsTypes", "id": catUnknownID}, 431, catNotFound("id", catUnknownID))
	catFail(t, alice, s, map[string]string{"command": "listOsTypes", "oscategoryid": "x"}, 431, catNotFound("oscategoryid", "x"))

	cats := alice.ok(t, s, map[string]string{"command": "listOsCategories"})
	wantNames(t, "categories", names(cats, "oscategory", "name"), "AlmaLinux", "CentOS", "Debian", "Oracle", "Other", "RedHat", "Rocky Linux", "SUSE", "Ubuntu", "Unix", "Windows")
	wantNames(t, "category by name", names(alice.ok(t, s, map[string]string{"command": "listOsCategories", "name": "windows"}), "oscategory", "id"), fsm.OSCategoryWindows)
	wantNames(t, "category by id", names(alice.ok(t, s, map[string]string{"command": "listOsCategories", "id": fsm.OSCategoryDebian}), "oscategory", "name"), "Debian")
	catFail(t, alice, s, map[string]string{"command": "listOsCategories", "id": catUnknownID}, 431, catNotFound("id", catUnknownID))
}

// TestCatalogObjectFieldNames checks every key of the catalog objects
// against the response fields CloudStack 4.18 lists for them, and that the
// key fields clients read are there.
func TestCatalogObjectFieldNames(t *testing.T) {
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
	check := func(cmd string, obj map[string]any, must ...string) {
		t.Helper()
		known := map[string]bool{}
		for _, a := range dump.API {
			if a.Name == cmd {
				for _, r := range a.Response {
					known[r.Name] = true
				}
			}
		}
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
	f := newCatalogFixture(t)
	s, root := f.s, f.root
	do := root.ok(t, s, map[string]string{"command": "createDiskOffering", "name": "d", "displaytext": "d", "disksize": "5", "tags": "a",
		"domainid": f.engID, "zoneid": f.zone1, "details[0].x": "y", "miniops": "1", "maxiops": "2", "cachemode": "none"})["diskoffering"].(map[string]any)
	check("listDiskOfferings", do, "id", "name", "displaytext", "disksize", "iscustomized", "tags", "storagetype", "domain", "domainid", "zone", "zoneid", "created")
	so := root.ok(t, s, catParams(smallOffering, "hosttags", "h", "tags", "s", "domainid", f.engID, "zoneid", f.zone1, "diskofferingid", do["id"].(string),
		"rootdisksize", "10", "networkrate", "100", "cachemode", "none", "deploymentplanner", "FirstFitPlanner",
		"serviceofferingdetails[0].a", "b"))["serviceoffering"].(map[string]any)
	check("listServiceOfferings", so, "id", "name", "displaytext", "cpunumber", "cpuspeed", "memory", "offerha", "limitcpuuse", "storagetype",
		"hosttags", "storagetags", "issystem", "iscustomized", "domain", "domainid", "zone", "zoneid", "created")
	tmpl := catItems(f.alice.ok(t, s, map[string]string{"command": "registerTemplate", "name": "t", "displaytext": "t", "url": "https://u:p@x.example/t.qcow2",
		"format": "qcow2", "hypervisor": "kvm", "zoneid": f.zone1, "checksum": "{SHA-1}" + strings.Repeat("a", 40), "templatetag": "x",
		"details[0].a": "b"}), "template")[0]
	check("listTemplates", tmpl, "id", "name", "displaytext", "ostypeid", "ostypename", "isready", "status", "format", "hypervisor", "zoneid",
		"zonename", "ispublic", "isfeatured", "passwordenabled", "templatetype", "crossZones", "account", "domain", "domainid", "created",
		"details", "tags", "url")
	check("registerTemplate", tmpl)
	iso := catItems(f.alice.ok(t, s, map[string]string{"command": "registerIso", "name": "i", "displaytext": "i", "url": "http://x.example/i.iso",
		"zoneid": f.zone1, "ostypeid": fsm.OSTypeOtherLinux64}), "iso")[0]
	check("listIsos", iso, "id", "name", "bootable", "isready", "status", "zoneid", "ostypeid", "account", "tags")
	check("listOsTypes", catItems(f.alice.ok(t, s, map[string]string{"command": "listOsTypes"}), "ostype")[0], "id", "description", "oscategoryid")
	check("listOsCategories", catItems(f.alice.ok(t, s, map[string]string{"command": "listOsCategories"}), "oscategory")[0], "id", "name")
}

// markImageReady plays the storage work: every copy of an image is downloaded.
func markImageReady(t *testing.T, c *fakeCluster, templateID string) {
	t.Helper()
	rows, err := fsm.List[fsm.TemplateZone](c.State(), nil, fsm.TableTemplateZones, "template", templateID)
	if err != nil || len(rows) == 0 {
		t.Fatalf("copies of %s: %v (%d)", templateID, err, len(rows))
	}
	var ops []fsm.TxnOp
	for _, row := range rows {
		cp := row.Copy()
		cp.DownloadState, cp.DownloadPercent, cp.IsReady, cp.Size, cp.PhysicalSize = fsm.DownloadDownloaded, 100, true, 2<<30, 1<<30
		ops = append(ops, fsm.Update(fsm.TableTemplateZones, cp))
	}
	if _, err := c.Apply(context.Background(), fsm.TxnRequestType, fsm.TxnRequest{Ops: ops}); err != nil {
		t.Fatal(err)
	}
}
