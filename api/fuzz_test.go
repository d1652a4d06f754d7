package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// validStatus are the HTTP statuses the API may answer with: success, or a
// CloudStack error code (or 503 while the cluster has no leader).
var validStatus = map[int]bool{200: true, 401: true, 405: true, 430: true, 431: true, 432: true, 503: true,
	530: true, 531: true, 532: true, 533: true, 534: true, 535: true, 536: true}

// FuzzAPIRequest throws arbitrary query strings and form bodies at the
// whole request path (parameter parsing, signature checking, dispatch) as
// an unsigned caller and as the signed admin. It must never panic, never
// answer a status outside CloudStack's codes, and always answer a body in
// the requested format with exactly one top-level key.
func FuzzAPIRequest(f *testing.F) {
	for _, seed := range []string{
		"command=listZones&response=json",
		"command=listZones&apiKey=x&signature=abc&response=json",
		"command=createZone&name=a%20b*~&networktype=Advanced&dns1=8.8.8.8&internaldns1=1.1.1.1",
		"command=listZones&page=0&pagesize=-1",
		"command=updateZone&id=not-a-uuid&details[0].key=a&details[x].value=b",
		"command=createTags&resourcetype=Zone&resourceids=,,&tags[99999999999].key=k",
		"command=listApis&name=listZones&response=xml",
		"command=%00&response=json&expires=2026-13-45T99:99:99Z&signatureversion=3",
		"command=login&username=admin&password=x",
		"",
	} {
		f.Add(seed, true)
		f.Add(seed, false)
	}
	s, c := newTestServer(f)
	withRunner(f, c)
	f.Fuzz(func(t *testing.T, query string, signed bool) {
		v, err := url.ParseQuery(query)
		if err != nil {
			v = url.Values{"command": {query}}
		}
		if signed {
			v.Set("apiKey", adminKey)
			v.Del("signature")
			v.Set("signature", Sign(v, adminSecret))
		}
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			var req *http.Request
			if method == http.MethodGet {
				req = httptest.NewRequest(method, "/client/api?"+v.Encode(), nil)
			} else {
				req = httptest.NewRequest(method, "/client/api", strings.NewReader(v.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			if !validStatus[rec.Code] {
				t.Fatalf("%s %q: status %d: %s", method, query, rec.Code, rec.Body.String())
			}
			if ResponseFormat(v) == "json" && v.Get("command") != "" {
				var top map[string]json.RawMessage
				if err := json.Unmarshal(rec.Body.Bytes(), &top); err != nil || len(top) != 1 {
					t.Fatalf("%s %q: body is not one JSON object with one key (%v): %s", method, query, err, rec.Body.String())
				}
			}
		}
	})
}

// FuzzVerify checks the signature verifier alone against arbitrary
// parameters: no panic, and a request signed with the right secret always
// verifies unless its expiry says otherwise.
func FuzzVerify(f *testing.F) {
	f.Add("name", "a b*~", "3", "2026-11-22T12:10:00Z")
	f.Add("details[0].key", "ünï/+=&", "", "")
	f.Add("x", "", "3", "garbage")
	f.Fuzz(func(t *testing.T, key, value, version, expires string) {
		v := url.Values{"command": {"listZones"}, "apiKey": {"k"}}
		if key != "" && !strings.EqualFold(key, "signature") {
			v.Set(key, value)
		}
		if version != "" {
			v.Set("signatureversion", version)
		}
		if expires != "" {
			v.Set("expires", expires)
		}
		v.Set("signature", Sign(v, "secret"))
		e := Verify(v, "secret", fixedNow)
		if e == nil {
			return
		}
		if e.Code != ErrCodeUnauthorized {
			t.Fatalf("Verify failed with code %d: %s", e.Code, e.Text)
		}
		if version != "3" || expires == "" {
			if _, err := ParseExpires(expires); err == nil || version != "3" {
				// Only an expiry problem may reject a correctly signed request.
				if !strings.Contains(strings.ToLower(e.Text), "expire") && !strings.Contains(strings.ToLower(e.Text), "signature") {
					t.Fatalf("correctly signed request rejected: %s", e.Text)
				}
			}
		}
	})
}
