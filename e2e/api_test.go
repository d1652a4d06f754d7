package e2e

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/apache/cloudstack-go/v2/cloudstack"
	"github.com/google/uuid"
)

// rawGet sends a GET and returns status, content type and body.
func rawGet(t *testing.T, client *http.Client, u string) (int, string, []byte) {
	t.Helper()
	resp, err := client.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", u, err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), body
}

// csErrorBody is the inner object of a CloudStack error response.
type csErrorBody struct {
	ErrorCode   int    `json:"errorcode"`
	CSErrorCode int    `json:"cserrorcode"`
	ErrorText   string `json:"errortext"`
}

// decodeEnvelope checks the one-top-key rule and returns the key and the
// inner object.
func decodeEnvelope(t *testing.T, body []byte) (string, json.RawMessage) {
	t.Helper()
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatalf("response is not a JSON object: %v: %s", err, body)
	}
	if len(top) != 1 {
		t.Fatalf("response has %d top-level keys, want exactly 1: %s", len(top), body)
	}
	for k, v := range top {
		return k, v
	}
	panic("unreachable")
}

// wantCSError checks that err is a CloudStack error with the code and a
// text containing every fragment.
func wantCSError(t *testing.T, err error, code int, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want CloudStack error %d, got success", code)
	}
	if got := csErrorCode(err); got != code {
		t.Fatalf("want CloudStack error %d, got %v", code, err)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Fatalf("error %q does not contain %q", err, f)
		}
	}
}

// TestAPIThroughSDK exercises the CloudStack API through HAProxy with the
// Go SDK and with hand-signed requests as cmk sends them.
func TestAPIThroughSDK(t *testing.T) {
	bin := requireE2E(t)
	c := newCluster(t, bin, 3)
	c.startAll()
	lb := c.startHAProxy()
	cs := newSDK(lb.apiURL(), c.keys)
	raw := &http.Client{Transport: newTransport(), Timeout: 30 * time.Second}

	t.Run("ZoneLifecycle", func(t *testing.T) { testZoneLifecycle(t, c, cs) })

	t.Run("UnknownZoneID", func(t *testing.T) {
		id := uuid.NewString()
		p := cs.Zone.NewListZonesParams()
		p.SetId(id)
		_, err := cs.Zone.ListZones(p)
		wantCSError(t, err, 431, "Invalid parameter id value="+id+" due to incorrect long value format, or entity does not exist")
		// The same on the wire: HTTP status = errorcode, one top-level key.
		q := signedQuery("listZones", url.Values{"id": {id}, "response": {"json"}}, c.keys, signV3)
		status, _, body := rawGet(t, raw, lb.apiURL()+"?"+q)
		if status != 431 {
			t.Fatalf("HTTP %d for an unknown zone id, want 431: %s", status, body)
		}
		key, inner := decodeEnvelope(t, body)
		var e csErrorBody
		if err := json.Unmarshal(inner, &e); err != nil {
			t.Fatal(err)
		}
		if key != "listzonesresponse" || e.ErrorCode != 431 || e.CSErrorCode != 9999 || !strings.Contains(e.ErrorText, "entity does not exist") {
			t.Fatalf("error body %s: key %q, %+v; want listzonesresponse, 431, cserrorcode 9999", body, key, e)
		}
	})

	t.Run("WrongSecret", func(t *testing.T) {
		bad := newSDK(lb.apiURL(), adminKeys{APIKey: c.keys.APIKey, SecretKey: c.keys.SecretKey + "x"})
		_, err := bad.Zone.ListZones(bad.Zone.NewListZonesParams())
		wantCSError(t, err, 401)
		_, err = bad.Zone.CreateZone(bad.Zone.NewCreateZoneParams("8.8.8.8", "10.0.0.1", "never-"+uuid.NewString()[:8], "Basic"))
		wantCSError(t, err, 401)
		unknown := newSDK(lb.apiURL(), adminKeys{APIKey: "no-such-key", SecretKey: c.keys.SecretKey})
		_, err = unknown.Zone.ListZones(unknown.Zone.NewListZonesParams())
		wantCSError(t, err, 401)
	})

	t.Run("ListApis", func(t *testing.T) {
		r, err := cs.APIDiscovery.ListApis(cs.APIDiscovery.NewListApisParams())
		if err != nil {
			t.Fatal(err)
		}
		if r.Count != len(r.Apis) || r.Count == 0 {
			t.Fatalf("listApis count %d with %d apis", r.Count, len(r.Apis))
		}
		apis := map[string]*cloudstack.Api{}
		for _, a := range r.Apis {
			if a.Name == "" || a.Description == "" {
				t.Errorf("listApis item without name or description: %+v", a)
			}
			apis[a.Name] = a
		}
		for _, name := range []string{"createZone", "listZones", "updateZone", "deleteZone", "listCapabilities",
			"listConfigurations", "updateConfiguration", "listApis", "registerUserKeys", "listUsers"} {
			if apis[name] == nil {
				t.Errorf("listApis lacks %s", name)
			}
		}
		if cz := apis["createZone"]; cz != nil {
			if cz.Isasync {
				t.Errorf("createZone is listed as async")
			}
			params := map[string]cloudstack.ApiParams{}
			for _, p := range cz.Params {
				params[p.Name] = p
			}
			for _, req := range []string{"name", "networktype", "dns1", "internaldns1"} {
				if p, ok := params[req]; !ok || !p.Required || p.Type != "string" {
					t.Errorf("createZone param %s: %+v, want a required string", req, p)
				}
			}
			if p, ok := params["dns2"]; !ok || p.Required {
				t.Errorf("createZone param dns2: %+v, want optional", p)
			}
			if len(cz.Response) == 0 {
				t.Errorf("createZone lists no response fields")
			}
		}
		if lz := apis["listZones"]; lz != nil {
			found := map[string]string{}
			for _, p := range lz.Params {
				found[p.Name] = p.Type
			}
			if found["id"] != "uuid" || found["page"] != "integer" || found["pagesize"] != "integer" || found["keyword"] != "string" {
				t.Errorf("listZones params %v: want id uuid, page/pagesize integer, keyword string", found)
			}
		}
		one := cs.APIDiscovery.NewListApisParams()
		one.SetName("createZone")
		r1, err := cs.APIDiscovery.ListApis(one)
		if err != nil {
			t.Fatal(err)
		}
		if r1.Count != 1 || len(r1.Apis) != 1 || r1.Apis[0].Name != "createZone" {
			t.Errorf("listApis name=createZone: count %d, %d apis", r1.Count, len(r1.Apis))
		}
	})

	t.Run("ListCapabilities", func(t *testing.T) {
		r, err := cs.Configuration.ListCapabilities(cs.Configuration.NewListCapabilitiesParams())
		if err != nil {
			t.Fatal(err)
		}
		if r.Capabilities == nil || r.Capabilities.Cloudstackversion == "" {
			t.Fatalf("listCapabilities: %+v, want a capability with cloudstackversion", r.Capabilities)
		}
	})

	t.Run("XMLWithoutResponseParam", func(t *testing.T) {
		q := signedQuery("listZones", url.Values{}, c.keys, signV3)
		status, ctype, body := rawGet(t, raw, lb.apiURL()+"?"+q)
		if status != http.StatusOK {
			t.Fatalf("HTTP %d: %s", status, body)
		}
		if !strings.HasPrefix(ctype, "text/xml") {
			t.Errorf("Content-Type %q, want text/xml", ctype)
		}
		if !bytes.HasPrefix(body, []byte("<?xml")) {
			t.Errorf("body does not start with <?xml: %.200s", body)
		}
		if !bytes.Contains(body, []byte("<listzonesresponse")) {
			t.Errorf("body lacks <listzonesresponse: %.200s", body)
		}
		dec := xml.NewDecoder(bytes.NewReader(body))
		for {
			_, err := dec.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("XML body is not well-formed: %v\n%.500s", err, body)
			}
		}
	})

	t.Run("LegacySigning", func(t *testing.T) {
		// cmk: GET for everything, no signatureversion or expires. A name
		// with spaces checks the %20 rule of the string to sign.
		name := "legacy zone " + uuid.NewString()[:8]
		q := signedQuery("createZone", url.Values{"response": {"json"}, "name": {name}, "networktype": {"Basic"},
			"dns1": {"8.8.8.8"}, "internaldns1": {"10.0.0.1"}}, c.keys, signLegacy)
		if strings.Contains(q, "signatureversion") || strings.Contains(q, "expires") {
			t.Fatalf("legacy query carries v3 fields: %s", q)
		}
		status, _, body := rawGet(t, raw, lb.apiURL()+"?"+q)
		if status != http.StatusOK {
			t.Fatalf("legacy-signed createZone: HTTP %d: %s", status, body)
		}
		key, inner := decodeEnvelope(t, body)
		var created struct {
			Zone struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"zone"`
		}
		if err := json.Unmarshal(inner, &created); err != nil || key != "createzoneresponse" || created.Zone.Name != name || created.Zone.ID == "" {
			t.Fatalf("legacy createZone answered %s (err %v)", body, err)
		}
		q = signedQuery("listZones", url.Values{"response": {"json"}, "name": {name}}, c.keys, signLegacy)
		status, _, body = rawGet(t, raw, lb.apiURL()+"?"+q)
		if status != http.StatusOK {
			t.Fatalf("legacy-signed listZones: HTTP %d: %s", status, body)
		}
		key, inner = decodeEnvelope(t, body)
		var listed struct {
			Count int `json:"count"`
			Zone  []struct {
				ID string `json:"id"`
			} `json:"zone"`
		}
		if err := json.Unmarshal(inner, &listed); err != nil || key != "listzonesresponse" || listed.Count != 1 ||
			len(listed.Zone) != 1 || listed.Zone[0].ID != created.Zone.ID {
			t.Fatalf("legacy listZones name=%q answered %s (err %v)", name, body, err)
		}
		// A legacy request with a wrong signature is refused.
		tampered := strings.Replace(q, "response=json", "response=json&keyword=x", 1)
		if status, _, body := rawGet(t, raw, lb.apiURL()+"?"+tampered); status != http.StatusUnauthorized {
			t.Fatalf("legacy request with a parameter added after signing: HTTP %d, want 401: %s", status, body)
		}
	})

	c.checkNoCrash()
}

func testZoneLifecycle(t *testing.T, c *testCluster, cs *cloudstack.CloudStackClient) {
	name := "api-zone-" + uuid.NewString()[:8]
	p := cs.Zone.NewCreateZoneParams("8.8.8.8", "10.0.0.1", name, "Advanced")
	p.SetDns2("8.8.4.4")
	z, err := cs.Zone.CreateZone(p)
	if err != nil {
		t.Fatalf("createZone: %v", err)
	}
	if z.Id == "" || z.Name != name || z.Networktype != "Advanced" || z.Dns1 != "8.8.8.8" || z.Dns2 != "8.8.4.4" ||
		z.Internaldns1 != "10.0.0.1" || z.Allocationstate != "Disabled" {
		t.Fatalf("createZone answered %+v", z)
	}

	byID := cs.Zone.NewListZonesParams()
	byID.SetId(z.Id)
	l, err := cs.Zone.ListZones(byID)
	if err != nil || l.Count != 1 || len(l.Zones) != 1 || l.Zones[0].Name != name {
		t.Fatalf("listZones id=%s: %+v, %v", z.Id, l, err)
	}
	byName := cs.Zone.NewListZonesParams()
	byName.SetName(name)
	l, err = cs.Zone.ListZones(byName)
	if err != nil || l.Count != 1 || len(l.Zones) != 1 || l.Zones[0].Id != z.Id {
		t.Fatalf("listZones name=%s: %+v, %v", name, l, err)
	}
	if id, n, err := cs.Zone.GetZoneID(name); err != nil || n != 1 || id != z.Id {
		t.Fatalf("SDK GetZoneID(%s) = %q, %d, %v; want %s", name, id, n, err, z.Id)
	}
	// Read-your-writes on every server, asked directly.
	for _, s := range c.servers {
		direct := newSDK(s.apiURL(), c.keys)
		if got, n, err := direct.Zone.GetZoneByID(z.Id); err != nil || n != 1 || got.Name != name {
			t.Fatalf("%s: GetZoneByID(%s) = %+v, %d, %v", s.id, z.Id, got, n, err)
		}
	}

	// Names are unique regardless of case.
	_, err = cs.Zone.CreateZone(cs.Zone.NewCreateZoneParams("8.8.8.8", "10.0.0.1", strings.ToUpper(name), "Basic"))
	wantCSError(t, err, 431, "already exists")

	up := cs.Zone.NewUpdateZoneParams(z.Id)
	up.SetAllocationstate("Enabled")
	u, err := cs.Zone.UpdateZone(up)
	if err != nil || u.Id != z.Id || u.Allocationstate != "Enabled" || u.Name != name {
		t.Fatalf("updateZone allocationstate=Enabled: %+v, %v", u, err)
	}
	if got, _, err := cs.Zone.GetZoneByID(z.Id); err != nil || got.Allocationstate != "Enabled" {
		t.Fatalf("after updateZone, listZones id=%s: %+v, %v", z.Id, got, err)
	}

	d, err := cs.Zone.DeleteZone(cs.Zone.NewDeleteZoneParams(z.Id))
	if err != nil || !d.Success {
		t.Fatalf("deleteZone: %+v, %v", d, err)
	}
	_, err = cs.Zone.ListZones(byID)
	wantCSError(t, err, 431, "entity does not exist")
	if got, n, err := cs.Zone.GetZoneByID(z.Id); got != nil || n != 0 || err == nil || !strings.Contains(err.Error(), "No match found") {
		t.Fatalf("SDK GetZoneByID after delete = %+v, %d, %v; want nil, 0, No match found", got, n, err)
	}
	l, err = cs.Zone.ListZones(byName)
	if err != nil || l.Count != 0 || len(l.Zones) != 0 {
		t.Fatalf("listZones name=%s after delete: %+v, %v", name, l, err)
	}
	_, err = cs.Zone.DeleteZone(cs.Zone.NewDeleteZoneParams(z.Id))
	wantCSError(t, err, 431, "entity does not exist")
	t.Logf("e2e: zone %s created, listed, enabled and deleted through HAProxy", z.Id)
}
