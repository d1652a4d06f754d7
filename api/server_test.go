package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stratus-cloud/stratus/fsm"
)

// call signs params as the Go SDK does (signatureversion 3, expires) and
// sends them as a GET.
func call(t *testing.T, s *Server, params map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	v := url.Values{}
	for k, val := range params {
		v.Set(k, val)
	}
	if v.Get("apiKey") == "" {
		v.Set("apiKey", adminKey)
	}
	if v.Get("response") == "" {
		v.Set("response", "json")
	}
	v.Set("signatureversion", "3")
	v.Set("expires", fixedNow.Add(10*time.Minute).Format(time.RFC3339))
	v.Set("signature", Sign(v, adminSecret))
	req := httptest.NewRequest(http.MethodGet, "/client/api?"+v.Encode(), nil)
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

// decode unwraps the single top-level key.
func decode(t *testing.T, rec *httptest.ResponseRecorder, key string) map[string]any {
	t.Helper()
	var top map[string]map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &top); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, rec.Body.String())
	}
	if len(top) != 1 {
		t.Fatalf("want exactly one top-level key, got %d: %s", len(top), rec.Body.String())
	}
	inner, ok := top[key]
	if !ok {
		t.Fatalf("top-level key is not %q: %s", key, rec.Body.String())
	}
	return inner
}

func wantError(t *testing.T, rec *httptest.ResponseRecorder, key string, code int, text string) {
	t.Helper()
	if rec.Code != code {
		t.Fatalf("status %d, want %d: %s", rec.Code, code, rec.Body.String())
	}
	body := decode(t, rec, key)
	if int(body["errorcode"].(float64)) != code {
		t.Fatalf("errorcode %v, want %d", body["errorcode"], code)
	}
	if !strings.Contains(body["errortext"].(string), text) {
		t.Fatalf("errortext %q does not contain %q", body["errortext"], text)
	}
	if _, ok := body["uuidList"]; !ok {
		t.Fatalf("error body lacks uuidList: %v", body)
	}
}

func createTestZone(t *testing.T, s *Server, name string) map[string]any {
	t.Helper()
	rec := call(t, s, map[string]string{"command": "createZone", "name": name, "networktype": "Advanced", "dns1": "8.8.8.8", "internaldns1": "10.0.0.1"})
	if rec.Code != http.StatusOK {
		t.Fatalf("createZone: %d %s", rec.Code, rec.Body.String())
	}
	return decode(t, rec, "createzoneresponse")["zone"].(map[string]any)
}

func TestZoneLifecycleThroughAPI(t *testing.T) {
	s, _ := newTestServer(t)
	z := createTestZone(t, s, "zone one")
	id := z["id"].(string)
	if z["name"] != "zone one" || z["networktype"] != "Advanced" || z["allocationstate"] != "Disabled" || z["dns1"] != "8.8.8.8" {
		t.Fatalf("created zone = %v", z)
	}
	// Duplicate name: a parameter error naming the clash.
	rec := call(t, s, map[string]string{"command": "createZone", "name": "ZONE ONE", "networktype": "Basic", "dns1": "8.8.8.8", "internaldns1": "10.0.0.1"})
	wantError(t, rec, "createzoneresponse", 431, "already exists")

	rec = call(t, s, map[string]string{"command": "updateZone", "id": id, "allocationstate": "enabled", "dns2": "1.1.1.1", "details[0].color": "blue"})
	up := decode(t, rec, "updatezoneresponse")["zone"].(map[string]any)
	if up["allocationstate"] != "Enabled" || up["dns2"] != "1.1.1.1" || up["resourcedetails"].(map[string]any)["color"] != "blue" {
		t.Fatalf("updated zone = %v", up)
	}
	list := decode(t, call(t, s, map[string]string{"command": "listZones", "id": id}), "listzonesresponse")
	if list["count"].(float64) != 1 || list["zone"].([]any)[0].(map[string]any)["dns2"] != "1.1.1.1" {
		t.Fatalf("listZones id = %v", list)
	}
	del := decode(t, call(t, s, map[string]string{"command": "deleteZone", "id": id}), "deletezoneresponse")
	if del["success"] != true {
		t.Fatalf("deleteZone = %v", del)
	}
	// Gone: listing by its id is the "entity does not exist" error clients match.
	rec = call(t, s, map[string]string{"command": "listZones", "id": id})
	wantError(t, rec, "listzonesresponse", 431, "Invalid parameter id value="+id+" due to incorrect long value format, or entity does not exist")
	// And an empty list is {} with no count.
	rec = call(t, s, map[string]string{"command": "listZones"})
	if strings.TrimSpace(rec.Body.String()) != `{"listzonesresponse":{}}` {
		t.Fatalf("empty list body = %s", rec.Body.String())
	}
}

func TestZoneParameterErrors(t *testing.T) {
	s, _ := newTestServer(t)
	cases := []struct {
		name   string
		params map[string]string
		text   string
	}{
		{"missing name", map[string]string{"networktype": "Basic", "dns1": "8.8.8.8", "internaldns1": "10.0.0.1"}, "due to missing parameter name"},
		{"bad network type", map[string]string{"name": "z", "networktype": "Weird", "dns1": "8.8.8.8", "internaldns1": "10.0.0.1"}, "networktype"},
		{"bad dns", map[string]string{"name": "z", "networktype": "Basic", "dns1": "not-an-ip", "internaldns1": "10.0.0.1"}, "dns1"},
		{"bad cidr", map[string]string{"name": "z", "networktype": "Basic", "dns1": "8.8.8.8", "internaldns1": "10.0.0.1", "guestcidraddress": "10.0.0.0/99"}, "guestcidraddress"},
		{"bad boolean", map[string]string{"name": "z", "networktype": "Basic", "dns1": "8.8.8.8", "internaldns1": "10.0.0.1", "localstorageenabled": "maybe"}, "localstorageenabled"},
		{"unknown domain", map[string]string{"name": "z", "networktype": "Basic", "dns1": "8.8.8.8", "internaldns1": "10.0.0.1", "domainid": "99999999-9999-4999-8999-999999999999"}, "Invalid parameter domainid value=99999999-9999-4999-8999-999999999999"},
		{"malformed uuid", map[string]string{"name": "z", "networktype": "Basic", "dns1": "8.8.8.8", "internaldns1": "10.0.0.1", "domainid": "nope"}, "domainid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.params["command"] = "createZone"
			wantError(t, call(t, s, tc.params), "createzoneresponse", 431, tc.text)
		})
	}
}

func TestListZonesFiltersAndPaging(t *testing.T) {
	s, _ := newTestServer(t)
	for _, n := range []string{"alpha", "beta", "gamma", "alphabet"} {
		createTestZone(t, s, n)
	}
	names := func(params map[string]string) []string {
		params["command"] = "listZones"
		rec := call(t, s, params)
		if rec.Code != 200 {
			t.Fatalf("listZones %v: %s", params, rec.Body.String())
		}
		body := decode(t, rec, "listzonesresponse")
		var out []string
		items, _ := body["zone"].([]any)
		for _, it := range items {
			out = append(out, it.(map[string]any)["name"].(string))
		}
		return out
	}
	if got := strings.Join(names(map[string]string{}), ","); got != "alpha,beta,gamma,alphabet" {
		t.Fatalf("all zones oldest first = %s", got)
	}
	if got := strings.Join(names(map[string]string{"keyword": "ALPHA"}), ","); got != "alpha,alphabet" {
		t.Fatalf("keyword = %s", got)
	}
	if got := strings.Join(names(map[string]string{"name": "alpha"}), ","); got != "alpha" {
		t.Fatalf("name is exact = %s", got)
	}
	if got := strings.Join(names(map[string]string{"page": "2", "pagesize": "3"}), ","); got != "alphabet" {
		t.Fatalf("page 2 of 3 = %s", got)
	}
	// count is the total before paging.
	body := decode(t, call(t, s, map[string]string{"command": "listZones", "page": "1", "pagesize": "2"}), "listzonesresponse")
	if body["count"].(float64) != 4 || len(body["zone"].([]any)) != 2 {
		t.Fatalf("page 1 of 2 = %v", body)
	}
	wantError(t, call(t, s, map[string]string{"command": "listZones", "pagesize": "2"}), "listzonesresponse", 431, `"page" parameter is required when "pagesize" is specified`)
	// default.page.size caps pagesize and is honoured once changed.
	rec := call(t, s, map[string]string{"command": "updateConfiguration", "name": "default.page.size", "value": "2"})
	if rec.Code != 200 {
		t.Fatalf("updateConfiguration: %s", rec.Body.String())
	}
	if got := len(names(map[string]string{})); got != 2 {
		t.Fatalf("list without paging after default.page.size=2 returned %d items", got)
	}
	wantError(t, call(t, s, map[string]string{"command": "listZones", "page": "1", "pagesize": "3"}), "listzonesresponse", 431, "2")
}

// A setting the servers keep themselves is listed but never set by hand:
// a lowered host.lease.granted would shorten a new leader's failover grace.
func TestReadOnlySettingRefused(t *testing.T) {
	s, _ := newTestServer(t)
	wantError(t, call(t, s, map[string]string{"command": "updateConfiguration", "name": fsm.SettingLeaseGranted, "value": "0"}),
		"updateconfigurationresponse", 431, fsm.SettingLeaseGranted+" is kept by the servers")
	body := decode(t, call(t, s, map[string]string{"command": "listConfigurations", "name": fsm.SettingLeaseGranted}), "listconfigurationsresponse")
	if body["count"].(float64) != 1 {
		t.Fatalf("listConfigurations name=%s: %v", fsm.SettingLeaseGranted, body)
	}
}

func TestXMLIsTheDefaultFormat(t *testing.T) {
	s, _ := newTestServer(t)
	createTestZone(t, s, "xml zone")
	rec := call(t, s, map[string]string{"command": "listZones", "response": "xml"})
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/xml") {
		t.Fatalf("content type %q", ct)
	}
	body := rec.Body.String()
	if !strings.HasPrefix(body, "<?xml") || !strings.Contains(body, "<listzonesresponse") || !strings.Contains(body, "<count>1</count>") || !strings.Contains(body, "<name>xml zone</name>") {
		t.Fatalf("xml body = %s", body)
	}
	// Without any response parameter at all, the answer is XML too.
	v := url.Values{"command": {"listZones"}, "apiKey": {adminKey}}
	v.Set("signature", Sign(v, adminSecret))
	r := httptest.NewRecorder()
	s.ServeHTTP(r, httptest.NewRequest(http.MethodGet, "/client/api?"+v.Encode(), nil))
	if r.Code != 200 || !strings.HasPrefix(r.Body.String(), "<?xml") {
		t.Fatalf("no response param: %d %s", r.Code, r.Body.String())
	}
}

func TestAuthenticationFailures(t *testing.T) {
	s, _ := newTestServer(t)
	send := func(v url.Values) *httptest.ResponseRecorder {
		r := httptest.NewRecorder()
		s.ServeHTTP(r, httptest.NewRequest(http.MethodGet, "/client/api?"+v.Encode(), nil))
		return r
	}
	base := func() url.Values {
		return url.Values{"command": {"listZones"}, "apiKey": {adminKey}, "response": {"json"}}
	}
	v := base()
	wantError(t, send(v), "listzonesresponse", 401, "signature")

	v = base()
	v.Set("signature", Sign(v, "wrong-secret"))
	wantError(t, send(v), "listzonesresponse", 401, "")

	v = base()
	v.Set("apiKey", "nobody")
	v.Set("signature", Sign(v, adminSecret))
	wantError(t, send(v), "listzonesresponse", 401, "")

	v = base()
	v.Set("signatureversion", "3")
	v.Set("expires", fixedNow.Add(-time.Minute).Format(time.RFC3339))
	v.Set("signature", Sign(v, adminSecret))
	wantError(t, send(v), "listzonesresponse", 401, "expire")

	// Legacy signing (no signatureversion): expires is ignored, as cmk relies on.
	v = base()
	v.Set("signature", Sign(v, adminSecret))
	if r := send(v); r.Code != 200 {
		t.Fatalf("legacy signed request: %d %s", r.Code, r.Body.String())
	}
}

func TestRequestShapeErrors(t *testing.T) {
	s, _ := newTestServer(t)
	// Unknown command, once authenticated: 432 under errorresponse.
	rec := call(t, s, map[string]string{"command": "launchRocket"})
	wantError(t, rec, "errorresponse", 432, "launchRocket")
	// No command at all.
	rec = call(t, s, map[string]string{})
	if rec.Code != 431 || !strings.Contains(rec.Body.String(), "command") {
		t.Fatalf("missing command: %d %s", rec.Code, rec.Body.String())
	}
	// An oversized POST body.
	big := "command=listZones&response=json&junk=" + strings.Repeat("x", MaxBodyBytes+10)
	req := httptest.NewRequest(http.MethodPost, "/client/api", strings.NewReader(big))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r := httptest.NewRecorder()
	s.ServeHTTP(r, req)
	if r.Code != 431 || !strings.Contains(r.Body.String(), "exceeds") {
		t.Fatalf("oversized body: %d %s", r.Code, r.Body.String())
	}
}

func TestPOSTFormIsSignedTheSameWay(t *testing.T) {
	s, _ := newTestServer(t)
	v := url.Values{"command": {"createZone"}, "apiKey": {adminKey}, "response": {"json"}, "name": {"posted zone"},
		"networktype": {"Basic"}, "dns1": {"8.8.8.8"}, "internaldns1": {"10.0.0.1"},
		"signatureversion": {"3"}, "expires": {fixedNow.Add(time.Minute).Format(time.RFC3339)}}
	v.Set("signature", Sign(v, adminSecret))
	req := httptest.NewRequest(http.MethodPost, "/client/api", strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r := httptest.NewRecorder()
	s.ServeHTTP(r, req)
	if r.Code != 200 || decode(t, r, "createzoneresponse")["zone"].(map[string]any)["name"] != "posted zone" {
		t.Fatalf("POST createZone: %d %s", r.Code, r.Body.String())
	}
}

func TestEnforcePostRequests(t *testing.T) {
	s, _ := newTestServer(t)
	if r := call(t, s, map[string]string{"command": "updateConfiguration", "name": "enforce.post.requests.and.timestamps", "value": "true"}); r.Code != 200 {
		t.Fatalf("enable enforcement: %s", r.Body.String())
	}
	rec := call(t, s, map[string]string{"command": "createZone", "name": "z", "networktype": "Basic", "dns1": "8.8.8.8", "internaldns1": "10.0.0.1"})
	wantError(t, rec, "createzoneresponse", 405, "POST")
	// Reads by GET still work.
	if r := call(t, s, map[string]string{"command": "listZones"}); r.Code != 200 {
		t.Fatalf("GET read under enforcement: %s", r.Body.String())
	}
}

func TestRegisterUserKeysRotatesKeys(t *testing.T) {
	s, _ := newTestServer(t)
	users := decode(t, call(t, s, map[string]string{"command": "listUsers"}), "listusersresponse")
	u := users["user"].([]any)[0].(map[string]any)
	if u["username"] != "admin" || u["apikey"] != adminKey || u["isdefault"] != true {
		t.Fatalf("admin user = %v", u)
	}
	if strings.Contains(call(t, s, map[string]string{"command": "listUsers"}).Body.String(), adminSecret) {
		t.Fatalf("listUsers leaked the secret key")
	}
	keys := decode(t, call(t, s, map[string]string{"command": "registerUserKeys", "id": u["id"].(string)}), "registeruserkeysresponse")["userkeys"].(map[string]any)
	newKey, newSecret := keys["apikey"].(string), keys["secretkey"].(string)
	if len(newKey) < 32 || len(newSecret) < 32 || newKey == adminKey {
		t.Fatalf("new keys = %v", keys)
	}
	// The old pair no longer works; the new one does.
	wantError(t, call(t, s, map[string]string{"command": "listZones"}), "listzonesresponse", 401, "")
	v := url.Values{"command": {"listZones"}, "apiKey": {newKey}, "response": {"json"}}
	v.Set("signature", Sign(v, newSecret))
	r := httptest.NewRecorder()
	s.ServeHTTP(r, httptest.NewRequest(http.MethodGet, "/client/api?"+v.Encode(), nil))
	if r.Code != 200 {
		t.Fatalf("new keys rejected: %s", r.Body.String())
	}
}

func TestListApisShapeForCloudMonkey(t *testing.T) {
	s, _ := newTestServer(t)
	body := decode(t, call(t, s, map[string]string{"command": "listApis"}), "listapisresponse")
	apis := body["api"].([]any)
	if int(body["count"].(float64)) != len(apis) || len(apis) < 10 {
		t.Fatalf("listApis count %v with %d apis", body["count"], len(apis))
	}
	for _, raw := range apis {
		a := raw.(map[string]any)
		// cmk type-asserts each of these and panics when one is missing.
		if _, ok := a["name"].(string); !ok {
			t.Fatalf("api without string name: %v", a)
		}
		if _, ok := a["isasync"].(bool); !ok {
			t.Fatalf("%v: isasync not a bool", a["name"])
		}
		if d, ok := a["description"].(string); !ok || d == "" {
			t.Fatalf("%v: description missing", a["name"])
		}
		params, ok := a["params"].([]any)
		if !ok {
			t.Fatalf("%v: params not an array", a["name"])
		}
		if _, ok := a["response"].([]any); !ok {
			t.Fatalf("%v: response not an array", a["name"])
		}
		for _, pr := range params {
			p := pr.(map[string]any)
			_, n := p["name"].(string)
			_, ty := p["type"].(string)
			_, d := p["description"].(string)
			_, r := p["required"].(bool)
			if !n || !ty || !d || !r {
				t.Fatalf("%v: param with missing fields: %v", a["name"], p)
			}
		}
	}
	one := decode(t, call(t, s, map[string]string{"command": "listApis", "name": "createZone"}), "listapisresponse")
	if one["count"].(float64) != 1 {
		t.Fatalf("listApis name=createZone = %v", one)
	}
}

func TestStaleReadsSkipTheReadIndex(t *testing.T) {
	s, c := newTestServer(t)
	before := c.reads
	call(t, s, map[string]string{"command": "listZones"})
	if c.reads != before+1 {
		t.Fatalf("default read did not go through ConsistentRead")
	}
	call(t, s, map[string]string{"command": "listZones", "consistency": "stale"})
	if c.reads != before+1 {
		t.Fatalf("stale read went through ConsistentRead")
	}
}

func TestOpsEndpoints(t *testing.T) {
	s, _ := newTestServer(t)
	for path, want := range map[string]int{"/v1/health": 200, "/v1/ready": 200, "/v1/status": 200} {
		r := httptest.NewRecorder()
		s.ServeHTTP(r, httptest.NewRequest(http.MethodGet, path, nil))
		if r.Code != want {
			t.Fatalf("%s: %d", path, r.Code)
		}
		var v map[string]any
		if err := json.Unmarshal(r.Body.Bytes(), &v); err != nil {
			t.Fatalf("%s: not JSON: %s", path, r.Body.String())
		}
	}
}
