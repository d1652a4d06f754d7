package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

func operatorCall(t *testing.T, s *Server, name, key, secret string, params map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	v := url.Values{}
	for k, val := range params {
		v.Set(k, val)
	}
	v.Set("apiKey", key)
	if v.Get("operator") == "" {
		v.Set("operator", name)
	}
	v.Set("signatureversion", "3")
	v.Set("expires", fixedNow.Add(10*time.Minute).Format(time.RFC3339))
	v.Set("signature", Sign(v, secret))
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, OperatorPathPrefix+name+"?"+v.Encode(), nil))
	return rec
}

func TestOperatorEndpointsAnswerOnlyRootAdmins(t *testing.T) {
	f := newIdentityFixture(t)
	s := f.s
	s.HandleOperator("echo", func(r *OperatorRequest) (any, *Error) {
		if r.Params.String("fail") != "" {
			return nil, ErrParam("asked to fail")
		}
		return map[string]string{"caller": r.Caller.Username, "x": r.Params.String("x")}, nil
	})
	rec := operatorCall(t, s, "echo", adminKey, adminSecret, map[string]string{"x": "1"})
	var out map[string]string
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &out) != nil || out["caller"] != "admin" || out["x"] != "1" {
		t.Fatalf("admin call: %d %s", rec.Code, rec.Body)
	}
	cases := []struct {
		name, endpoint, key, secret string
		params                      map[string]string
		code                        int
	}{
		{"bad signature", "echo", adminKey, adminSecret + "x", nil, 401},
		{"unknown endpoint", "nope", adminKey, adminSecret, nil, 404},
		{"handler error", "echo", adminKey, adminSecret, map[string]string{"fail": "1"}, 431},
		// A signature must name the endpoint it is used on, so a signed
		// request cannot be replayed against another endpoint.
		{"signed for another endpoint", "echo", adminKey, adminSecret, map[string]string{"operator": "snapshot-save"}, 401},
		{"an API command's signature", "echo", adminKey, adminSecret, map[string]string{"command": "listZones"}, 401},
	}
	for _, who := range []ident{f.carol, f.dadmin} { // a user and a domain admin
		cases = append(cases, struct {
			name, endpoint, key, secret string
			params                      map[string]string
			code                        int
		}{who.name, "echo", who.key, who.secret, nil, 401})
	}
	for _, c := range cases {
		rec := operatorCall(t, s, c.endpoint, c.key, c.secret, c.params)
		var e struct {
			Code int    `json:"errorcode"`
			Text string `json:"errortext"`
		}
		if rec.Code != c.code || json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Code != c.code || e.Text == "" {
			t.Errorf("%s: %d %s, want %d with an errortext", c.name, rec.Code, rec.Body, c.code)
		}
	}
}
