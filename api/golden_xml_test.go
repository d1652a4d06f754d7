package api

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/stratus-cloud/stratus/fsm"
)

// xmlNode is an element of an XML answer: its name, text and children.
type xmlNode struct {
	name     string
	attrs    map[string]string
	text     string
	children []*xmlNode
}

func (n *xmlNode) named(name string) []*xmlNode {
	var out []*xmlNode
	for _, c := range n.children {
		if c.name == name {
			out = append(out, c)
		}
	}
	return out
}

func (n *xmlNode) childNames() []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range n.children {
		if !seen[c.name] {
			seen[c.name] = true
			out = append(out, c.name)
		}
	}
	sort.Strings(out)
	return out
}

// parseXML reads a whole XML document into a tree, failing on anything
// that is not well-formed.
func parseXML(t *testing.T, body []byte) *xmlNode {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(body))
	var stack []*xmlNode
	var root *xmlNode
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("XML is not well-formed: %v\n%s", err, body)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			n := &xmlNode{name: tk.Name.Local, attrs: map[string]string{}}
			for _, a := range tk.Attr {
				n.attrs[a.Name.Local] = a.Value
			}
			if len(stack) > 0 {
				top := stack[len(stack)-1]
				top.children = append(top.children, n)
			} else if root != nil {
				t.Fatalf("XML has more than one root element:\n%s", body)
			} else {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text += string(tk)
			}
		}
	}
	if root == nil {
		t.Fatalf("XML has no root element:\n%s", body)
	}
	return root
}

// decodeJSONNumbers decodes a JSON answer keeping numbers as written.
func decodeJSONNumbers(t *testing.T, body []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var top map[string]any
	if err := dec.Decode(&top); err != nil {
		t.Fatalf("JSON answer does not decode: %v\n%s", err, body)
	}
	return top
}

// rendered reports whether a JSON value shows up in XML at all: null and
// empty arrays have no element, as in CloudStack's XML.
func rendered(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case []any:
		return len(x) > 0
	}
	return true
}

// sameShape checks that the XML element x carries exactly the JSON value
// j: an object's members as child elements of the same names, an array as
// repeated elements, scalars as the same text.
func sameShape(t *testing.T, path string, j any, x *xmlNode) {
	t.Helper()
	switch v := j.(type) {
	case map[string]any:
		var want []string
		for k, val := range v {
			if rendered(val) {
				want = append(want, xmlName(k))
			}
		}
		sort.Strings(want)
		if got := x.childNames(); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: XML elements %v, JSON fields %v", path, got, want)
			return
		}
		for k, val := range v {
			if !rendered(val) {
				continue
			}
			els := x.named(xmlName(k))
			if arr, ok := val.([]any); ok {
				if len(els) != len(arr) {
					t.Errorf("%s.%s: %d XML elements for %d JSON items", path, k, len(els), len(arr))
					continue
				}
				for i := range arr {
					sameShape(t, fmt.Sprintf("%s.%s[%d]", path, k, i), arr[i], els[i])
				}
				continue
			}
			if len(els) != 1 {
				t.Errorf("%s.%s: %d XML elements for one JSON value", path, k, len(els))
				continue
			}
			sameShape(t, path+"."+k, val, els[0])
		}
	case []any:
		t.Errorf("%s: nested JSON arrays have no XML shape", path)
	default:
		if len(x.children) != 0 {
			t.Errorf("%s: JSON scalar %v is an XML element with children %v", path, v, x.childNames())
		} else if want := fmt.Sprint(v); x.text != want {
			t.Errorf("%s: XML text %q, JSON value %q", path, x.text, want)
		}
	}
}

// goldenCase is one object type: the list command that shows it, the item
// key, and the contract fields a client reads that must be in the XML.
type goldenCase struct {
	cmd    string
	params map[string]string
	item   string // "" when the object is the response itself (queryAsyncJobResult)
	must   []string
}

// contractExtras are fields api-contract.md names for an object beyond the
// 4.18 listApis dump: §2.4 lists account, domainid and domainpath among
// the async job fields (CloudStack added them after 4.18).
var contractExtras = map[string][]string{
	"listAsyncJobs":       {"account", "domainid", "domainpath"},
	"queryAsyncJobResult": {"account", "domainid", "domainpath"},
}

// TestGoldenXMLMatchesJSONAndContract renders one list of every object type
// in JSON and in XML through the server: the XML elements are exactly the
// JSON fields (recursively, with the same values), the fields are the
// contract's, and the fields clients read are there.
func TestGoldenXMLMatchesJSONAndContract(t *testing.T) {
	g := newGoldenFixture(t)
	for _, tc := range g.cases() {
		t.Run(tc.cmd, func(t *testing.T) {
			params := map[string]string{"command": tc.cmd}
			for k, v := range tc.params {
				params[k] = v
			}
			key := strings.ToLower(tc.cmd) + "response"
			params["response"] = "json"
			jrec := call(t, g.in.s, params)
			params["response"] = "xml"
			xrec := call(t, g.in.s, params)
			if jrec.Code != http.StatusOK || xrec.Code != http.StatusOK {
				t.Fatalf("%s: JSON %d, XML %d: %s\n%s", tc.cmd, jrec.Code, xrec.Code, jrec.Body, xrec.Body)
			}
			if ct := xrec.Header().Get("Content-Type"); ct != ContentTypeXML {
				t.Fatalf("%s XML Content-Type %q", tc.cmd, ct)
			}
			top := decodeJSONNumbers(t, jrec.Body.Bytes())
			inner, ok := top[key].(map[string]any)
			if !ok || len(top) != 1 {
				t.Fatalf("%s JSON: want one key %s: %s", tc.cmd, key, jrec.Body)
			}
			root := parseXML(t, xrec.Body.Bytes())
			if root.name != key || root.attrs["cloud-stack-version"] != CloudStackVersion {
				t.Fatalf("%s XML root <%s %v>, want <%s cloud-stack-version=%q>", tc.cmd, root.name, root.attrs, key, CloudStackVersion)
			}
			sameShape(t, key, inner, root)
			obj := inner
			if tc.item != "" {
				items, _ := inner[tc.item].([]any)
				if len(items) == 0 || fmt.Sprint(inner["count"]) != fmt.Sprint(len(items)) {
					t.Fatalf("%s: want a non-empty %s list with its count: %s", tc.cmd, tc.item, jrec.Body)
				}
				if got := root.children[0]; got.name != "count" {
					t.Errorf("%s XML: first element <%s>, want <count> first as CloudStack writes it", tc.cmd, got.name)
				}
				obj = items[0].(map[string]any)
			}
			checkContractFields(t, tc, obj)
		})
	}
}

// checkContractFields: every field is one of the command's in CloudStack
// 4.18 (key-object-fields.txt, else listApis), and the must fields are set.
func checkContractFields(t *testing.T, tc goldenCase, obj map[string]any) {
	t.Helper()
	known := responseFieldsOf(t, tc.cmd)
	if len(known) == 0 {
		t.Fatalf("%s has no response fields in the 4.18 listApis dump", tc.cmd)
	}
	for k := range keyObjectFields(t, tc.cmd) {
		known[k] = true
	}
	for _, k := range contractExtras[tc.cmd] {
		known[k] = true
	}
	for k := range obj {
		if !known[k] {
			t.Errorf("%s: field %q is not a CloudStack field of %s", tc.cmd, k, tc.cmd)
		}
	}
	for _, k := range tc.must {
		if !rendered(obj[k]) {
			t.Errorf("%s: field %q missing (so missing from the XML too): %v", tc.cmd, k, obj)
		}
	}
}

// keyObjectFields is objectFieldsOf for the commands key-object-fields.txt
// lists, and nothing for the others.
func keyObjectFields(t *testing.T, cmd string) map[string]bool {
	switch cmd {
	case "listZones", "listPods", "listClusters", "listHosts", "listTemplates", "listServiceOfferings",
		"queryAsyncJobResult", "listTags", "listAsyncJobs":
		return objectFieldsOf(t, cmd)
	}
	return nil
}

// goldenFixture is a cloud with one of everything.
type goldenFixture struct {
	in                                   *infra
	host, pool, store, offering, disk    string
	template, iso, domain, account, user string
	jobID                                string
}

func newGoldenFixture(t *testing.T) *goldenFixture {
	t.Helper()
	in := newInfra(t)
	withRunner(t, in.c)
	s := in.s
	g := &goldenFixture{in: in}
	g.host = in.addHost(t, "10.1.0.70", map[string]string{"hosttags": "ssd"})["id"].(string)
	g.pool = must(t, s, map[string]string{"command": "createStoragePool", "zoneid": in.zone, "clusterid": in.cluster, "name": "gold-pool",
		"url": "nfs://10.0.0.9/gold", "tags": "fast", "capacitybytes": "1000"})["storagepool"].(map[string]any)["id"].(string)
	g.store = must(t, s, map[string]string{"command": "addImageStore", "provider": "NFS", "zoneid": in.zone, "name": "gold-sec",
		"url": "nfs://10.0.0.9/gold-sec"})["imagestore"].(map[string]any)["id"].(string)
	g.disk = must(t, s, map[string]string{"command": "createDiskOffering", "name": "gold-disk", "displaytext": "Gold disk",
		"disksize": "5", "tags": "fast"})["diskoffering"].(map[string]any)["id"].(string)
	g.offering = must(t, s, map[string]string{"command": "createServiceOffering", "name": "gold-so", "displaytext": "Gold",
		"cpunumber": "2", "cpuspeed": "1000", "memory": "2048", "offerha": "true", "hosttags": "ssd", "tags": "fast",
		"diskofferingid": g.disk})["serviceoffering"].(map[string]any)["id"].(string)
	g.template = item(t, must(t, s, map[string]string{"command": "registerTemplate", "name": "gold-tpl", "displaytext": "Gold template",
		"url": "http://x.example/gold.qcow2", "format": "QCOW2", "hypervisor": "KVM", "zoneid": in.zone,
		"details[0].boot": "uefi"}), "template")["id"].(string)
	g.iso = item(t, must(t, s, map[string]string{"command": "registerIso", "name": "gold-iso", "displaytext": "Gold ISO",
		"url": "http://x.example/gold.iso", "zoneid": in.zone, "bootable": "false"}), "iso")["id"].(string)
	g.domain = must(t, s, map[string]string{"command": "createDomain", "name": "gold"})["domain"].(map[string]any)["id"].(string)
	acct := must(t, s, map[string]string{"command": "createAccount", "accounttype": "0", "domainid": g.domain, "account": "gold-team",
		"username": "goldie", "password": "gold-password-1", "email": "g@example.com", "firstname": "G", "lastname": "Old"})["account"].(map[string]any)
	g.account = acct["id"].(string)
	g.user = acct["user"].([]any)[0].(map[string]any)["id"].(string)
	must(t, s, map[string]string{"command": "registerUserKeys", "id": g.user})
	started := must(t, s, map[string]string{"command": "createTags", "resourcetype": "Template", "resourceids": g.template,
		"tags[0].key": "tier", "tags[0].value": "gold", "customer": "acme"})
	g.jobID = started["jobid"].(string)
	if done := waitForJob(t, s, g.jobID); done["jobstatus"] != float64(1) {
		t.Fatalf("createTags job: %v", done)
	}
	return g
}

func (g *goldenFixture) cases() []goldenCase {
	in := g.in
	return []goldenCase{
		{"listZones", map[string]string{"id": in.zone}, "zone",
			[]string{"id", "name", "networktype", "allocationstate", "dns1", "internaldns1", "localstorageenabled", "securitygroupsenabled"}},
		{"listPods", map[string]string{"id": in.pod}, "pod",
			[]string{"id", "name", "zoneid", "zonename", "gateway", "netmask", "startip", "endip", "ipranges", "allocationstate"}},
		{"listClusters", map[string]string{"id": in.cluster}, "cluster",
			[]string{"id", "name", "podid", "podname", "zoneid", "zonename", "hypervisortype", "clustertype", "allocationstate", "managedstate",
				"cpuovercommitratio", "memoryovercommitratio"}},
		{"listHosts", map[string]string{"id": g.host}, "host",
			[]string{"id", "name", "state", "resourcestate", "type", "hypervisor", "ipaddress", "zoneid", "podid", "clusterid", "hosttags",
				"hostha", "created"}},
		{"listStoragePools", map[string]string{"id": g.pool}, "storagepool",
			[]string{"id", "name", "zoneid", "clusterid", "ipaddress", "path", "type", "state", "scope", "tags", "disksizetotal"}},
		{"listImageStores", map[string]string{"id": g.store}, "imagestore",
			[]string{"id", "name", "url", "protocol", "providername", "zoneid", "scope"}},
		{"listServiceOfferings", map[string]string{"id": g.offering}, "serviceoffering",
			[]string{"id", "name", "displaytext", "cpunumber", "cpuspeed", "memory", "offerha", "hosttags", "storagetags", "diskofferingid", "created"}},
		{"listDiskOfferings", map[string]string{"id": g.disk}, "diskoffering",
			[]string{"id", "name", "displaytext", "disksize", "iscustomized", "tags", "created"}},
		{"listTemplates", map[string]string{"id": g.template, "templatefilter": "all"}, "template",
			[]string{"id", "name", "displaytext", "ostypeid", "ostypename", "isready", "status", "format", "hypervisor", "zoneid", "zonename",
				"ispublic", "isfeatured", "templatetype", "account", "domainid", "created", "details", "tags"}},
		{"listIsos", map[string]string{"id": g.iso, "isofilter": "all"}, "iso",
			[]string{"id", "name", "displaytext", "bootable", "isready", "zoneid", "ostypeid", "account"}},
		{"listOsTypes", nil, "ostype", []string{"id", "description", "oscategoryid"}},
		{"listCapacity", map[string]string{"zoneid": in.zone}, "capacity", []string{"type", "zoneid", "capacitytotal", "capacityused"}},
		{"listDomains", map[string]string{"id": g.domain}, "domain", []string{"id", "name", "path", "level", "parentdomainid", "parentdomainname"}},
		{"listAccounts", map[string]string{"id": g.account}, "account",
			[]string{"id", "name", "accounttype", "roleid", "rolename", "domainid", "domain", "state", "user"}},
		{"listUsers", map[string]string{"id": g.user}, "user",
			[]string{"id", "username", "account", "accountid", "accounttype", "domainid", "state", "apikey", "created"}},
		{"listRoles", nil, "role", []string{"id", "name", "type", "description"}},
		{"listRolePermissions", map[string]string{"roleid": fsm.RoleIDUser}, "rolepermission",
			[]string{"id", "roleid", "rule", "permission"}},
		{"listTags", map[string]string{"resourceid": g.template}, "tag",
			[]string{"key", "value", "resourcetype", "resourceid", "account", "domainid", "customer"}},
		{"listEvents", map[string]string{"type": "ZONE.CREATE"}, "event",
			[]string{"id", "type", "level", "description", "username", "account", "domainid", "created", "state"}},
		{"listAsyncJobs", nil, "asyncjobs",
			[]string{"jobid", "cmd", "jobstatus", "jobresultcode", "jobresulttype", "jobresult", "accountid", "userid", "created", "completed"}},
		{"queryAsyncJobResult", map[string]string{"jobid": g.jobID}, "",
			[]string{"jobid", "cmd", "jobstatus", "jobresultcode", "jobresulttype", "jobresult", "created", "completed"}},
	}
}
