package api

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stratus-cloud/stratus/fsm"
)

// registerAs registers a template in zone as id and returns its first
// item.
func (f *catalogFixture) registerAs(t *testing.T, id ident, name string, extra ...string) map[string]any {
	t.Helper()
	params := catParams(map[string]string{"command": "registerTemplate", "name": name, "displaytext": name + " image",
		"url": "https://images.example/" + name + ".qcow2", "format": "QCOW2", "hypervisor": "KVM", "zoneid": f.zone1}, extra...)
	return catItems(id.ok(t, f.s, params), "template")[0]
}

func (f *catalogFixture) templates(t *testing.T, id ident, filter string, extra ...string) []string {
	t.Helper()
	return names(id.ok(t, f.s, catParams(map[string]string{"command": "listTemplates", "templatefilter": filter}, extra...)), "template", "name")
}

func TestRegisterTemplate(t *testing.T) {
	f := newCatalogFixture(t)
	s := f.s
	body := f.alice.ok(t, s, map[string]string{"command": "registerTemplate", "name": "ubuntu", "displaytext": "Ubuntu 22.04",
		"url": "https://mirror:s3cret@images.example/ubuntu.qcow2?v=1", "format": "qcow2", "hypervisor": "kvm",
		"zoneids": f.zone1 + "," + f.zone2 + "," + strings.ToUpper(f.zone1), "ostypeid": "d072f798-8e85-4fc9-9b1a-6809e2c1decc",
		"passwordenabled": "true", "ispublic": "true", "checksum": "{SHA-256}" + strings.Repeat("0f", 32),
		"details[0].key": "rootDiskController", "details[0].value": "virtio"})
	if body["count"] != 2.0 {
		t.Fatalf("registerTemplate count = %v", body["count"])
	}
	list := catItems(body, "template")
	if list[0]["zoneid"] != f.zone1 || list[1]["zoneid"] != f.zone2 || list[0]["id"] != list[1]["id"] || list[1]["zonename"] != "zone two" {
		t.Fatalf("one item per zone expected: %v", list)
	}
	tmpl := list[0]
	want := map[string]any{"name": "ubuntu", "displaytext": "Ubuntu 22.04", "format": "QCOW2", "hypervisor": "KVM", "isready": false,
		"status": "Not Downloaded", "ispublic": true, "isfeatured": false, "passwordenabled": true, "templatetype": "USER",
		"crossZones": false, "ostypename": "Ubuntu 22.04 LTS", "account": "alice", "accountid": f.alice.accountID, "domain": "eng",
		"domainid": f.engID, "bootable": true, "requireshvm": true, "bits": 64.0, "created": "2026-11-22T12:00:00+0000",
		"url": "https://images.example/ubuntu.qcow2?v=1", "checksum": "{SHA-256}" + strings.Repeat("0f", 32)}
	for k, v := range want {
		if tmpl[k] != v {
			t.Errorf("template %s = %v, want %v", k, tmpl[k], v)
		}
	}
	if tags, ok := tmpl["tags"].([]any); !ok || len(tags) != 0 {
		t.Errorf("tags = %v, want an empty list", tmpl["tags"])
	}
	if tmpl["details"].(map[string]any)["rootDiskController"] != "virtio" {
		t.Errorf("details = %v", tmpl["details"])
	}
	if _, ok := tmpl["size"]; ok {
		t.Errorf("size before the download: %v", tmpl["size"])
	}
	id := tmpl["id"].(string)
	// The credentials stay in the store for the download, and nowhere else.
	stored, _ := fsm.Get[fsm.Template](f.c.State(), nil, fsm.TableTemplates, id)
	if !strings.Contains(stored.URL, "s3cret") {
		t.Fatalf("stored URL lost its credentials: %s", stored.URL)
	}
	for _, who := range []ident{f.root, f.alice, f.carol} {
		rec := who.do(t, s, map[string]string{"command": "listTemplates", "templatefilter": "all", "id": id})
		if strings.Contains(rec.Body.String(), "s3cret") || strings.Contains(rec.Body.String(), "mirror") {
			t.Errorf("%s sees the URL's credentials: %s", who.name, rec.Body.String())
		}
	}
	for _, e := range catalogEvents(t, f.c, id) {
		if e != "TEMPLATE.CREATE" {
			t.Errorf("event %s", e)
		}
	}
	wantCatalogEvents(t, f.c, id, "TEMPLATE.CREATE")

	// Cross-zone: one copy, shown in every zone; the zones stay deletable.
	cross := catItems(f.root.ok(t, s, map[string]string{"command": "registerTemplate", "name": "debian", "displaytext": "Debian",
		"url": "http://images.example/debian.raw", "format": "RAW", "hypervisor": "KVM", "zoneid": "-1", "isfeatured": "true"}), "template")
	if len(cross) != 2 || cross[0]["crossZones"] != true || cross[0]["zoneid"] != f.zone1 || cross[1]["zoneid"] != f.zone2 ||
		cross[0]["ostypeid"] != fsm.OSTypeOtherLinux64 || cross[0]["isfeatured"] != true {
		t.Fatalf("cross-zone template = %v", cross)
	}
	if n, _ := f.c.State().Count(fsm.TableTemplateZones, "template", cross[0]["id"].(string)); n != 1 {
		t.Fatalf("cross-zone template has %d copies", n)
	}
	// Once ready, the status says so and the sizes appear.
	markImageReady(t, f.c, id)
	got := catItems(f.alice.ok(t, s, map[string]string{"command": "listTemplates", "templatefilter": "executable", "zoneid": f.zone2}), "template")
	if len(got) != 1 || got[0]["isready"] != true || got[0]["status"] != "Download Complete" || got[0]["size"] != float64(2<<30) || got[0]["physicalsize"] != float64(1<<30) {
		t.Fatalf("ready template = %v", got)
	}
	// Others see a public template but not its status or URL.
	other := catItems(f.carol.ok(t, s, map[string]string{"command": "listTemplates", "templatefilter": "executable", "id": id, "showunique": "true"}), "template")
	if len(other) != 1 || other[0]["status"] != nil || other[0]["url"] != nil || other[0]["isready"] != true {
		t.Fatalf("carol's view = %v", other)
	}
}

func TestRegisterTemplateErrors(t *testing.T) {
	f := newCatalogFixture(t)
	s := f.s
	base := map[string]string{"command": "registerTemplate", "name": "t", "displaytext": "t", "url": "https://x.example/t.qcow2",
		"format": "QCOW2", "hypervisor": "KVM", "zoneid": f.zone1}
	disabled := createTestZone(t, s, "zone off")["id"].(string)
	cases := []struct {
		name   string
		params map[string]string
		code   int
		text   string
	}{
		{"missing name", catParams(base, "name", ""), 431, "due to missing parameter name"},
		{"missing url", catParams(base, "url", ""), 431, "due to missing parameter url"},
		{"missing format", catParams(base, "format", ""), 431, "due to missing parameter format"},
		{"missing hypervisor", catParams(base, "hypervisor", ""), 431, "due to missing parameter hypervisor"},
		{"ftp url", catParams(base, "url", "ftp://x.example/t.qcow2"), 431, "parameter url"},
		{"relative url", catParams(base, "url", "/t.qcow2"), 431, "parameter url"},
		{"bad format", catParams(base, "format", "ISO"), 431, `invalid value "ISO" for parameter format`},
		{"bad hypervisor", catParams(base, "hypervisor", "XenServer"), 431, "parameter hypervisor"},
		{"unknown os type", catParams(base, "ostypeid", catUnknownID), 431, catNotFound("ostypeid", catUnknownID)},
		{"bad checksum length", catParams(base, "checksum", "abc"), 431, "a MD5 checksum is 32 hex digits"},
		{"bad checksum algorithm", catParams(base, "checksum", "{CRC32}abcd"), 431, "parameter checksum"},
		{"bad bits", catParams(base, "bits", "16"), 431, "parameter bits"},
		{"no zone", catParams(base, "zoneid", ""), 431, "parameter zoneid or zoneids is required"},
		{"zoneid and zoneids", catParams(base, "zoneids", f.zone2), 431, "give zoneid or zoneids, not both"},
		{"unknown zone", catParams(base, "zoneid", catUnknownID), 431, catNotFound("zoneid", catUnknownID)},
		{"malformed zoneids", catParams(base, "zoneid", "", "zoneids", f.zone1+",nope"), 431, catNotFound("zoneids", "nope")},
		{"disabled zone", catParams(base, "zoneid", disabled), 531, "zone zone off is disabled"},
		{"featured by a user", catParams(base, "isfeatured", "true"), 531, "only the root admin may mark an image featured"},
		{"account of another domain", catParams(base, "account", "carol", "domainid", f.rootDomain), 431, "unable to find account carol"},
		{"bad boolean", catParams(base, "ispublic", "yes"), 431, "invalid value yes for parameter ispublic"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { catFail(t, f.alice, s, tc.params, tc.code, tc.text) })
	}
	// The root admin may use a disabled zone and register for another account.
	tmpl := catItems(f.root.ok(t, s, catParams(base, "zoneid", disabled, "account", "carol", "domainid", f.rootDomain)), "template")[0]
	if tmpl["account"] != "carol" || tmpl["zoneid"] != disabled {
		t.Fatalf("admin registration for carol = %v", tmpl)
	}
	// A zone with a template copy cannot be deleted.
	catFail(t, f.root, s, map[string]string{"command": "deleteZone", "id": disabled}, 536, "template copy "+tmpl["id"].(string)+" still uses it")
	// listTemplates needs a valid filter.
	catFail(t, f.alice, s, map[string]string{"command": "listTemplates"}, 431, "due to missing parameter templatefilter")
	catFail(t, f.alice, s, map[string]string{"command": "listTemplates", "templatefilter": "mine"}, 431, `invalid value "mine" for parameter templatefilter`)
	catFail(t, f.alice, s, map[string]string{"command": "listTemplates", "templatefilter": "all"}, 431, "templatefilter all is for admins only")
	catFail(t, f.alice, s, map[string]string{"command": "listTemplates", "templatefilter": "self", "zoneid": catUnknownID}, 431, catNotFound("zoneid", catUnknownID))
	catFail(t, f.alice, s, map[string]string{"command": "listTemplates", "templatefilter": "self", "ids": catUnknownID}, 431, catNotFound("ids", catUnknownID))
}

// TestTemplateRoleMatrix: the root admin, user A (alice) and user B
// (carol), and a domain admin over alice: who sees, changes and deletes
// which template.
func TestTemplateRoleMatrix(t *testing.T) {
	f := newCatalogFixture(t)
	s, root, alice, carol := f.s, f.root, f.alice, f.carol
	private := f.registerAs(t, alice, "a-private")["id"].(string)
	public := f.registerAs(t, alice, "a-public", "ispublic", "true")["id"].(string)
	carolOwn := f.registerAs(t, carol, "c-private")["id"].(string)
	featured := f.registerAs(t, root, "featured", "isfeatured", "true")["id"].(string)
	rootOwn := f.registerAs(t, root, "r-private")["id"].(string)
	bobOwn := f.registerAs(t, f.bob, "b-private")["id"].(string)

	// Before any download only self and all show images.
	wantNames(t, "alice self", f.templates(t, alice, "self"), "a-private", "a-public")
	wantNames(t, "alice executable, nothing ready", f.templates(t, alice, "executable"))
	wantNames(t, "alice selfexecutable, nothing ready", f.templates(t, alice, "selfexecutable"))
	wantNames(t, "root all", f.templates(t, root, "all"), "a-private", "a-public", "c-private", "featured", "r-private", "b-private")
	wantNames(t, "root executable (admins see images not ready)", f.templates(t, root, "executable"), "featured", "r-private", "a-public")
	for _, id := range []string{private, public, carolOwn, featured, rootOwn, bobOwn} {
		markImageReady(t, f.c, id)
	}
	type view struct {
		who            ident
		filter         string
		extra          []string
		want           []string
		wantNoneOthers bool
	}
	views := []view{
		{who: alice, filter: "self", want: []string{"a-private", "a-public"}},
		{who: alice, filter: "selfexecutable", want: []string{"a-private", "a-public"}},
		{who: alice, filter: "executable", want: []string{"a-private", "a-public", "featured"}},
		{who: alice, filter: "featured", want: []string{"featured"}},
		{who: alice, filter: "community", want: []string{"a-public"}},
		{who: alice, filter: "sharedexecutable", want: nil},
		{who: carol, filter: "self", want: []string{"c-private"}},
		{who: carol, filter: "executable", want: []string{"c-private", "a-public", "featured"}},
		{who: carol, filter: "community", want: []string{"a-public"}},
		{who: root, filter: "self", want: []string{"featured", "r-private"}},
		{who: root, filter: "self", extra: []string{"listall", "true"}, want: []string{"a-private", "a-public", "c-private", "featured", "r-private", "b-private"}},
		{who: root, filter: "all", extra: []string{"account", "alice", "domainid", f.engID}, want: []string{"a-private", "a-public"}},
		{who: root, filter: "executable", want: []string{"featured", "r-private", "a-public"}},
		{who: f.dadmin, filter: "self", extra: []string{"listall", "true"}, want: []string{"a-private", "a-public", "b-private"}},
		{who: f.dadmin, filter: "all", want: []string{"a-private", "a-public", "b-private", "featured"}},
		{who: f.dadmin, filter: "self", extra: []string{"domainid", f.webID}, want: []string{"b-private"}},
		{who: f.bob, filter: "executable", want: []string{"b-private", "a-public", "featured"}},
	}
	for _, v := range views {
		wantNames(t, v.who.name+" "+v.filter+" "+strings.Join(v.extra, "="), f.templates(t, v.who, v.filter, v.extra...), v.want...)
	}

	// Paging keeps the total count.
	page := root.ok(t, s, map[string]string{"command": "listTemplates", "templatefilter": "all", "page": "2", "pagesize": "4"})
	if page["count"] != 6.0 || len(catItems(page, "template")) != 2 {
		t.Errorf("page 2 of 4 = %v", page)
	}
	catFail(t, root, s, map[string]string{"command": "listTemplates", "templatefilter": "all", "page": "1"}, 431, `"pagesize" parameter is required`)

	// Another account's private template does not exist for carol, by id,
	// for update and for delete.
	for _, cmd := range []map[string]string{
		{"command": "listTemplates", "templatefilter": "self", "id": private},
		{"command": "listTemplates", "templatefilter": "executable", "id": private},
		{"command": "updateTemplate", "id": private, "name": "mine"},
		{"command": "deleteTemplate", "id": private},
	} {
		catFail(t, carol, s, cmd, 431, catNotFound("id", private))
	}
	if cmd := map[string]string{"command": "listTemplates", "templatefilter": "executable", "id": private}; true {
		catFail(t, f.bob, s, cmd, 431, catNotFound("id", private))
	}
	// A public template is visible but not hers to change.
	catFail(t, carol, s, map[string]string{"command": "updateTemplate", "id": public, "name": "mine"}, 531, "belongs to another account")
	catFail(t, carol, s, map[string]string{"command": "deleteTemplate", "id": public}, 531, "belongs to another account")
	catFail(t, alice, s, map[string]string{"command": "deleteTemplate", "id": featured}, 531, "belongs to another account")
	// The owner, the domain admin above her and the root admin may change it.
	for i, who := range []ident{alice, f.dadmin, root} {
		name := []string{"by-alice", "by-dadmin", "by-root"}[i]
		tmpl := who.ok(t, s, map[string]string{"command": "updateTemplate", "id": private, "name": name})["template"].(map[string]any)
		if tmpl["name"] != name || tmpl["account"] != "alice" {
			t.Fatalf("%s renamed: %v", who.name, tmpl)
		}
	}
	// The domain admin of eng does not reach carol's (ROOT) template.
	catFail(t, f.dadmin, s, map[string]string{"command": "updateTemplate", "id": carolOwn, "name": "x"}, 431, catNotFound("id", carolOwn))
	// Deletes: the owner's own, and the root admin's over anyone's.
	for _, d := range []struct {
		who ident
		id  string
	}{{alice, private}, {root, carolOwn}} {
		body := d.who.ok(t, s, map[string]string{"command": "deleteTemplate", "id": d.id})
		if job := waitForJob(t, s, body["jobid"].(string)); job["jobstatus"] != 1.0 || job["jobresult"].(map[string]any)["success"] != true {
			t.Fatalf("%s deleting %s: %v", d.who.name, d.id, job)
		}
		catFail(t, root, s, map[string]string{"command": "listTemplates", "templatefilter": "all", "id": d.id}, 431, catNotFound("id", d.id))
	}
	wantCatalogEvents(t, f.c, private, "TEMPLATE.CREATE", "TEMPLATE.UPDATE", "TEMPLATE.UPDATE", "TEMPLATE.UPDATE", "TEMPLATE.DELETE")
}

func TestUpdateTemplateFields(t *testing.T) {
	f := newCatalogFixture(t)
	s, alice := f.s, f.alice
	id := f.registerAs(t, alice, "t", "details[0].a", "1")["id"].(string)
	up := alice.ok(t, s, map[string]string{"command": "updateTemplate", "id": id, "displaytext": "new text", "ostypeid": "0487bb2e-fc0f-4b83-9d0f-6989238a5c21",
		"format": "raw", "passwordenabled": "true", "sshkeyenabled": "true", "isdynamicallyscalable": "true", "requireshvm": "false",
		"sortkey": "5", "details[0].b": "2"})["template"].(map[string]any)
	want := map[string]any{"displaytext": "new text", "ostypename": "Rocky Linux 9", "format": "RAW", "passwordenabled": true,
		"sshkeyenabled": true, "isdynamicallyscalable": true, "requireshvm": false, "zoneid": f.zone1}
	for k, v := range want {
		if up[k] != v {
			t.Errorf("updated %s = %v, want %v", k, up[k], v)
		}
	}
	if d := up["details"].(map[string]any); d["b"] != "2" || d["a"] != nil {
		t.Errorf("details replaced = %v", d)
	}
	up = alice.ok(t, s, map[string]string{"command": "updateTemplate", "id": id, "cleanupdetails": "true", "details[0].c": "3"})["template"].(map[string]any)
	if up["details"] != nil {
		t.Errorf("details after cleanup = %v", up["details"])
	}
	cases := []struct {
		name   string
		params map[string]string
		text   string
	}{
		{"missing id", map[string]string{}, "due to missing parameter id"},
		{"unknown id", map[string]string{"id": catUnknownID}, catNotFound("id", catUnknownID)},
		{"blank name", map[string]string{"id": id, "name": ""}, "parameter name must not be blank"},
		{"bad format", map[string]string{"id": id, "format": "ISO"}, "parameter format"},
		{"unknown os type", map[string]string{"id": id, "ostypeid": catUnknownID}, catNotFound("ostypeid", catUnknownID)},
		{"bad sortkey", map[string]string{"id": id, "sortkey": "x"}, "invalid value x for parameter sortkey"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.params["command"] = "updateTemplate"
			catFail(t, alice, s, tc.params, 431, tc.text)
		})
	}
	// Sort keys order the list.
	f.registerAs(t, alice, "first", "zoneid", f.zone2)
	list := catItems(alice.ok(t, s, map[string]string{"command": "listTemplates", "templatefilter": "self"}), "template")
	if len(list) != 2 || list[0]["name"] != "first" {
		t.Errorf("sort order = %v", list)
	}
}

func TestDeleteTemplateFromOneZone(t *testing.T) {
	f := newCatalogFixture(t)
	s, alice, root := f.s, f.alice, f.root
	id := f.registerAs(t, alice, "two-zones", "zoneid", "", "zoneids", f.zone1+","+f.zone2)["id"].(string)
	cross := f.registerAs(t, alice, "everywhere", "zoneid", "-1")["id"].(string)
	catFail(t, root, s, map[string]string{"command": "deleteZone", "id": f.zone2}, 536, "template copy "+id+" still uses it")
	body := alice.ok(t, s, map[string]string{"command": "deleteTemplate", "id": id, "zoneid": f.zone2})
	if job := waitForJob(t, s, body["jobid"].(string)); job["jobstatus"] != 1.0 {
		t.Fatalf("delete from zone two = %v", job)
	}
	left := catItems(alice.ok(t, s, map[string]string{"command": "listTemplates", "templatefilter": "self", "id": id}), "template")
	if len(left) != 1 || left[0]["zoneid"] != f.zone1 {
		t.Fatalf("copies left = %v", left)
	}
	catFail(t, alice, s, map[string]string{"command": "deleteTemplate", "id": id, "zoneid": f.zone2}, 431, "is not registered in zone zone two")
	root.ok(t, s, map[string]string{"command": "deleteZone", "id": f.zone2})
	// The cross-zone template now shows in the one zone left.
	if got := catItems(alice.ok(t, s, map[string]string{"command": "listTemplates", "templatefilter": "self", "id": cross}), "template"); len(got) != 1 {
		t.Fatalf("cross-zone copies = %v", got)
	}
	cases := []struct {
		name   string
		params map[string]string
		text   string
	}{
		{"zone it is not in", map[string]string{"id": id, "zoneid": f.zone2}, catNotFound("zoneid", f.zone2)},
		{"cross-zone with a zone", map[string]string{"id": cross, "zoneid": f.zone1}, "is registered for every zone: delete it without zoneid"},
		{"unknown id", map[string]string{"id": catUnknownID}, catNotFound("id", catUnknownID)},
		{"missing id", map[string]string{}, "due to missing parameter id"},
		{"bad forced", map[string]string{"id": id, "forced": "perhaps"}, "invalid value perhaps for parameter forced"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.params["command"] = "deleteTemplate"
			catFail(t, alice, s, tc.params, 431, tc.text)
		})
	}
	// The last copy takes the template and its tags with it.
	if _, err := f.c.Apply(context.Background(), fsm.TxnRequestType, fsm.TxnRequest{Ops: []fsm.TxnOp{fsm.Create(fsm.TableTags,
		&fsm.Tag{ID: newID(), Key: "env", Value: "prod", ResourceType: "Template", ResourceID: id, AccountID: f.alice.accountID,
			DomainID: f.engID, Created: time.Now()})}}); err != nil {
		t.Fatal(err)
	}
	tagged := catItems(alice.ok(t, s, map[string]string{"command": "listTemplates", "templatefilter": "self", "tags[0].key": "env", "tags[0].value": "prod"}), "template")
	if len(tagged) != 1 || tagged[0]["id"] != id || tagged[0]["tags"].([]any)[0].(map[string]any)["key"] != "env" {
		t.Fatalf("tagged templates = %v", tagged)
	}
	if n := len(catItems(alice.ok(t, s, map[string]string{"command": "listTemplates", "templatefilter": "self", "tags[0].key": "env", "tags[0].value": "dev"}), "template")); n != 0 {
		t.Fatalf("tag value filter let %d through", n)
	}
	body = alice.ok(t, s, map[string]string{"command": "deleteTemplate", "id": id, "zoneid": f.zone1})
	waitForJob(t, s, body["jobid"].(string))
	if n, _ := f.c.State().Count(fsm.TableTags, "resource", id); n != 0 {
		t.Fatalf("%d tags outlived the template", n)
	}
	if tmpl, _ := fsm.Get[fsm.Template](f.c.State(), nil, fsm.TableTemplates, id); tmpl != nil {
		t.Fatal("the template outlived its last copy")
	}
	wantCatalogEvents(t, f.c, id, "TEMPLATE.CREATE", "TEMPLATE.DELETE", "TEMPLATE.DELETE")
}

func TestIsoLifecycle(t *testing.T) {
	f := newCatalogFixture(t)
	s, alice, carol := f.s, f.alice, f.carol
	base := map[string]string{"command": "registerIso", "name": "rescue", "displaytext": "Rescue CD", "url": "https://isos.example/rescue.iso",
		"zoneid": f.zone1, "ostypeid": fsm.OSTypeOtherLinux64}
	catFail(t, alice, s, catParams(base, "ostypeid", ""), 431, "parameter ostypeid is required for a bootable ISO")
	catFail(t, alice, s, catParams(base, "zoneid", ""), 431, "due to missing parameter zoneid")
	catFail(t, alice, s, catParams(base, "url", "file:///tmp/x.iso"), 431, "parameter url")
	iso := catItems(alice.ok(t, s, base), "iso")[0]
	id := iso["id"].(string)
	if iso["format"] != "ISO" || iso["bootable"] != true || iso["hypervisor"] != nil || iso["isready"] != false || iso["status"] != "Not Downloaded" {
		t.Fatalf("registered ISO = %v", iso)
	}
	data := catItems(alice.ok(t, s, catParams(base, "name", "drivers", "bootable", "false", "ostypeid", "", "ispublic", "true", "zoneid", "-1")), "iso")
	if len(data) != 2 || data[0]["bootable"] != false || data[0]["crossZones"] != true {
		t.Fatalf("data ISO = %v", data)
	}
	isos := func(who ident, extra ...string) []string {
		t.Helper()
		return names(who.ok(t, s, catParams(map[string]string{"command": "listIsos"}, extra...)), "iso", "name")
	}
	// The default filter (selfexecutable) shows ready ISOs only.
	wantNames(t, "alice default, none ready", isos(alice))
	wantNames(t, "alice self", isos(alice, "isofilter", "self"), "rescue", "drivers", "drivers")
	wantNames(t, "alice self unique", isos(alice, "isofilter", "self", "showunique", "true"), "rescue", "drivers")
	markImageReady(t, f.c, id)
	wantNames(t, "alice default", isos(alice), "rescue")
	wantNames(t, "alice bootable", isos(alice, "isofilter", "self", "bootable", "false", "zoneid", f.zone2), "drivers")
	wantNames(t, "alice ready", isos(alice, "isofilter", "self", "isready", "false"), "drivers", "drivers")
	wantNames(t, "alice public", isos(alice, "isofilter", "self", "ispublic", "true", "zoneid", f.zone1), "drivers")
	wantNames(t, "carol self", isos(carol, "isofilter", "self"))
	catFail(t, carol, s, map[string]string{"command": "listIsos", "id": id}, 431, catNotFound("id", id))
	catFail(t, carol, s, map[string]string{"command": "listIsos", "isofilter": "bogus"}, 431, "parameter isofilter")
	// Templates and ISOs keep to their own commands.
	if n := len(catItems(alice.ok(t, s, map[string]string{"command": "listTemplates", "templatefilter": "self", "id": id}), "template")); n != 0 {
		t.Fatalf("listTemplates shows an ISO")
	}
	catFail(t, alice, s, map[string]string{"command": "deleteTemplate", "id": id}, 431, "is an ISO, not a template: use the Iso commands")
	catFail(t, alice, s, map[string]string{"command": "updateTemplate", "id": id}, 431, "is an ISO, not a template")
	up := alice.ok(t, s, map[string]string{"command": "updateIso", "id": id, "name": "rescue-2", "bootable": "false", "format": "iso"})["iso"].(map[string]any)
	if up["name"] != "rescue-2" || up["bootable"] != false || up["format"] != "ISO" {
		t.Fatalf("updated ISO = %v", up)
	}
	catFail(t, alice, s, map[string]string{"command": "updateIso", "id": id, "format": "QCOW2"}, 431, "parameter format")
	catFail(t, carol, s, map[string]string{"command": "deleteIso", "id": data[0]["id"].(string)}, 531, "belongs to another account")
	body := alice.ok(t, s, map[string]string{"command": "deleteIso", "id": id})
	if job := waitForJob(t, s, body["jobid"].(string)); job["jobstatus"] != 1.0 {
		t.Fatalf("deleteIso job = %v", job)
	}
	wantCatalogEvents(t, f.c, id, "ISO.CREATE", "ISO.UPDATE", "ISO.DELETE")
}
