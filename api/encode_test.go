package api

import (
	"encoding/json"
	"encoding/xml"
	"math"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

type testNIC struct {
	ID        string `json:"id"`
	IPAddress string `json:"ipaddress,omitempty"`
	IsDefault bool   `json:"isdefault"`
}

type testZone struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	CPUs        int               `json:"cpunumber,omitempty"`
	NIC         []testNIC         `json:"nic,omitempty"`
	Tags        []string          `json:"tags"`
	Details     map[string]string `json:"details,omitempty"`
	Parent      *testNIC          `json:"parent"`
}

func twoZones() []testZone {
	return []testZone{
		{ID: "z1", Name: "one <&> two", CPUs: 4, Tags: []string{}},
		{ID: "z2", Name: `say "hi"`, NIC: []testNIC{{ID: "n1", IPAddress: "10.0.0.5", IsDefault: true}, {ID: "n2"}},
			Details: map[string]string{"b": "2", "a": "1"}, Parent: &testNIC{ID: "p"}},
	}
}

func TestWriteResponseJSONList(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteResponse(rec, "json", "listzonesresponse", ListBody("zone", 7, twoZones()))
	want := `{"listzonesresponse":{"count":7,"zone":[` +
		`{"id":"z1","name":"one <&> two","cpunumber":4,"tags":[]},` +
		`{"id":"z2","name":"say \"hi\"","nic":[{"id":"n1","ipaddress":"10.0.0.5","isdefault":true},{"id":"n2","isdefault":false}],` +
		`"details":{"a":"1","b":"2"},"parent":{"id":"p","isdefault":false}}]}}`
	if got := rec.Body.String(); got != want {
		t.Fatalf("JSON body\n got %s\nwant %s", got, want)
	}
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json; charset=UTF-8" {
		t.Fatalf("status %d, content type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
}

func TestWriteResponseXMLList(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteResponse(rec, "xml", "listzonesresponse", ListBody("zone", 7, twoZones()))
	want := `<?xml version="1.0" encoding="UTF-8"?><listzonesresponse cloud-stack-version="4.18.0.0">` +
		`<count>7</count>` +
		`<zone><id>z1</id><name>one &lt;&amp;&gt; two</name><cpunumber>4</cpunumber></zone>` +
		`<zone><id>z2</id><name>say &#34;hi&#34;</name>` +
		`<nic><id>n1</id><ipaddress>10.0.0.5</ipaddress><isdefault>true</isdefault></nic>` +
		`<nic><id>n2</id><isdefault>false</isdefault></nic>` +
		`<details><a>1</a><b>2</b></details><parent><id>p</id><isdefault>false</isdefault></parent></zone>` +
		`</listzonesresponse>`
	got := rec.Body.String()
	if got != want {
		t.Fatalf("XML body\n got %s\nwant %s", got, want)
	}
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "text/xml; charset=UTF-8" {
		t.Fatalf("status %d, content type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	// And it is well-formed.
	if err := xml.Unmarshal([]byte(got), new(struct{})); err != nil {
		t.Fatalf("XML does not parse: %v", err)
	}
}

func TestEmptyList(t *testing.T) {
	for _, items := range []any{nil, []testZone{}, []testZone(nil)} {
		rec := httptest.NewRecorder()
		WriteResponse(rec, "json", "listzonesresponse", ListBody("zone", 0, items))
		if got := rec.Body.String(); got != `{"listzonesresponse":{}}` {
			t.Fatalf("empty list JSON = %s", got)
		}
		rec = httptest.NewRecorder()
		WriteResponse(rec, "xml", "listzonesresponse", ListBody("zone", 0, items))
		want := `<?xml version="1.0" encoding="UTF-8"?><listzonesresponse cloud-stack-version="4.18.0.0"></listzonesresponse>`
		if got := rec.Body.String(); got != want {
			t.Fatalf("empty list XML = %s", got)
		}
	}
}

func TestListPagePastTheEndKeepsCount(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteResponse(rec, "json", "listzonesresponse", ListBody("zone", 3, Paginate(twoZones(), 10, 5)))
	if got := rec.Body.String(); got != `{"listzonesresponse":{"count":3}}` {
		t.Fatalf("page past the end = %s", got)
	}
}

func TestWriteResponseNilAndScalarBodies(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteResponse(rec, "json", "logoutresponse", nil)
	if got := rec.Body.String(); got != `{"logoutresponse":{}}` {
		t.Fatalf("nil body = %s", got)
	}
	rec = httptest.NewRecorder()
	WriteResponse(rec, "xml", "deletezoneresponse", map[string]any{"success": true, "displaytext": "a\nb", "nothing": nil, "empty": []int{}})
	want := `<?xml version="1.0" encoding="UTF-8"?><deletezoneresponse cloud-stack-version="4.18.0.0">` +
		`<displaytext>a&#xA;b</displaytext><success>true</success></deletezoneresponse>`
	if got := rec.Body.String(); got != want {
		t.Fatalf("XML\n got %s\nwant %s", got, want)
	}
}

func TestXMLNumbersNestedArraysAndOddKeys(t *testing.T) {
	body := map[string]any{
		"size":   int64(1) << 40,
		"ratio":  1.5,
		"matrix": [][]int{{1, 2}, {3}},
		"resourcedetails": map[string]string{
			"1st key": "v&", "ok-name": "x", "": "blank",
		},
	}
	rec := httptest.NewRecorder()
	WriteResponse(rec, "xml", "getresponse", body)
	want := `<?xml version="1.0" encoding="UTF-8"?><getresponse cloud-stack-version="4.18.0.0">` +
		`<matrix>1</matrix><matrix>2</matrix><matrix>3</matrix><ratio>1.5</ratio>` +
		`<resourcedetails><_>blank</_><_1st_key>v&amp;</_1st_key><ok-name>x</ok-name></resourcedetails>` +
		`<size>1099511627776</size></getresponse>`
	got := rec.Body.String()
	if got != want {
		t.Fatalf("XML\n got %s\nwant %s", got, want)
	}
	if err := xml.Unmarshal([]byte(got), new(struct{})); err != nil {
		t.Fatalf("XML does not parse: %v", err)
	}
}

func TestWriteResponseUnencodableBody(t *testing.T) {
	for _, body := range []any{map[string]any{"c": make(chan int)}, map[string]float64{"x": math.NaN()}} {
		for _, format := range []string{"json", "xml"} {
			rec := httptest.NewRecorder()
			WriteResponse(rec, format, "listzonesresponse", body)
			if rec.Code != 530 || !strings.Contains(rec.Body.String(), "listzonesresponse") || !strings.Contains(rec.Body.String(), "530") {
				t.Fatalf("%s: unencodable body gave %d %s", format, rec.Code, rec.Body.String())
			}
		}
	}
}

func TestWriteErrorJSON(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteError(rec, "json", "listZones", ErrEntityNotFound("listZones", "id", "abc"))
	want := `{"listzonesresponse":{"uuidList":[],"errorcode":431,"cserrorcode":9999,"errortext":` +
		`"Unable to execute API command listzones due to invalid value. Invalid parameter id value=abc due to incorrect long value format, or entity does not exist or due to incorrect parameter annotation for the field in api cmd class."}}`
	if got := rec.Body.String(); got != want {
		t.Fatalf("error JSON\n got %s\nwant %s", got, want)
	}
	if rec.Code != 431 {
		t.Fatalf("status %d", rec.Code)
	}
	if got := rec.Header().Get("X-Description"); !strings.HasPrefix(got, "Unable to execute API command listzones") {
		t.Fatalf("X-Description = %q", got)
	}
	if rec.Header().Get("Content-Type") != "application/json; charset=UTF-8" {
		t.Fatalf("content type %q", rec.Header().Get("Content-Type"))
	}
}

func TestWriteErrorUnauthorizedHasNoCSCode(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteError(rec, "json", "listZones", ErrUnauthorized(""))
	want := `{"listzonesresponse":{"uuidList":[],"errorcode":401,"errortext":"unable to verify user credentials and/or request signature"}}`
	if got := rec.Body.String(); got != want || rec.Code != 401 {
		t.Fatalf("401: %d %s", rec.Code, got)
	}
}

func TestWriteErrorXML(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteError(rec, "xml", "createZone", ErrParam(`name "<a&b>" is taken`))
	want := `<?xml version="1.0" encoding="UTF-8"?><createzoneresponse cloud-stack-version="4.18.0.0">` +
		`<errorcode>431</errorcode><cserrorcode>4350</cserrorcode><errortext>name &#34;&lt;a&amp;b&gt;&#34; is taken</errortext>` +
		`</createzoneresponse>`
	if got := rec.Body.String(); got != want {
		t.Fatalf("error XML\n got %s\nwant %s", got, want)
	}
	if rec.Code != 431 || rec.Header().Get("Content-Type") != "text/xml; charset=UTF-8" {
		t.Fatalf("status %d, content type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
}

func TestWriteErrorTopLevelKey(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteError(rec, "json", "launchRocket", ErrUnknownCommand("launchRocket"))
	want := `{"errorresponse":{"uuidList":[],"errorcode":432,"cserrorcode":9999,"errortext":"Unknown API command: launchRocket"}}`
	if got := rec.Body.String(); got != want || rec.Code != 432 {
		t.Fatalf("unknown command: %d %s", rec.Code, got)
	}
	rec = httptest.NewRecorder()
	WriteError(rec, "json", "", ErrParam("missing command"))
	if !strings.HasPrefix(rec.Body.String(), `{"errorresponse":`) {
		t.Fatalf("no command: %s", rec.Body.String())
	}
}

func TestWriteErrorOddInputs(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteError(rec, "json", "listZones", nil)
	if rec.Code != 530 || !strings.Contains(rec.Body.String(), `"errorcode":530`) {
		t.Fatalf("nil error: %d %s", rec.Code, rec.Body.String())
	}
	for _, code := range []int{0, -1, 42, 1000} {
		rec = httptest.NewRecorder()
		WriteError(rec, "json", "listZones", &Error{Code: code, Text: "odd"})
		if rec.Code != 530 || !strings.Contains(rec.Body.String(), `"errorcode":530`) {
			t.Fatalf("code %d: %d %s", code, rec.Code, rec.Body.String())
		}
	}
	rec = httptest.NewRecorder()
	WriteError(rec, "json", "listZones", ErrParam("line one\r\nline two\x00"))
	if got := rec.Header().Get("X-Description"); got != "line one  line two " {
		t.Fatalf("X-Description = %q", got)
	}
	var v map[string]map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || v["listzonesresponse"]["errortext"] != "line one\r\nline two\x00" {
		t.Fatalf("body %s: %v", rec.Body.String(), err)
	}
}

func TestResponseFormat(t *testing.T) {
	cases := []struct {
		q    string
		want string
	}{
		{"", "xml"},
		{"response=json", "json"},
		{"response=JSON", "json"},
		{"Response=json", "json"},
		{"response=xml", "xml"},
		{"response=yaml", "xml"},
		{"response=", "xml"},
		{"response=json&response=xml", "json"},
	}
	for _, tc := range cases {
		v, _ := url.ParseQuery(tc.q)
		if got := ResponseFormat(v); got != tc.want {
			t.Errorf("ResponseFormat(%q) = %q, want %q", tc.q, got, tc.want)
		}
	}
	if got := ResponseFormat(nil); got != "xml" {
		t.Errorf("ResponseFormat(nil) = %q", got)
	}
}

func TestFormatTime(t *testing.T) {
	ts := time.Date(2021, 10, 4, 11, 24, 38, 999, time.FixedZone("CEST", 2*3600))
	if got := FormatTime(ts); got != "2021-10-04T09:24:38+0000" {
		t.Fatalf("FormatTime = %q", got)
	}
	if got := FormatTime(time.Time{}); got != "" {
		t.Fatalf("zero time = %q", got)
	}
}

func TestNullMembersAreDropped(t *testing.T) {
	body := map[string]any{
		"a": nil,
		"b": []any{nil, 1, "null", 2.5e-7},
		"c": map[string]any{"d": nil, "e": "<x> \u2028 \"q\" \\ é"},
		"f": []map[string]any{{"g": nil}},
	}
	rec := httptest.NewRecorder()
	WriteResponse(rec, "json", "xresponse", body)
	want := `{"xresponse":{"b":[null,1,"null",2.5e-7],"c":{"e":"<x> \u2028 \"q\" \\ é"},"f":[{}]}}`
	if got := rec.Body.String(); got != want {
		t.Fatalf("JSON\n got %s\nwant %s", got, want)
	}
}

// FuzzXMLIsWellFormed checks that any keys and values give parseable XML.
func FuzzXMLIsWellFormed(f *testing.F) {
	f.Add("name", "value")
	f.Add("1st key", "<&>\"'")
	f.Add("ключ", "\x00\xff\u2028")
	f.Fuzz(func(t *testing.T, key, value string) {
		body := map[string]any{key: value, "list": []any{value, map[string]string{key: value}}, "n": nil}
		rec := httptest.NewRecorder()
		WriteResponse(rec, "xml", "fuzzresponse", body)
		if rec.Code != 200 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
		}
		if err := xml.Unmarshal(rec.Body.Bytes(), new(struct{})); err != nil {
			t.Fatalf("XML does not parse: %v\n%s", err, rec.Body.String())
		}
	})
}
