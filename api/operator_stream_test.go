package api

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

// A streaming operator endpoint gets the raw body whole (whatever its
// content type, past the form size limit), is authenticated from the query,
// and its *Error is sent as operator JSON.
func TestOperatorStreamEndpoints(t *testing.T) {
	f := newIdentityFixture(t)
	s := f.s
	s.HandleOperatorStream("upload", func(w http.ResponseWriter, r *OperatorRequest) *Error {
		b, err := io.ReadAll(r.HTTP.Body)
		if err != nil {
			return ErrInternal(err.Error())
		}
		if r.Params.String("fail") != "" {
			return ErrParam("asked to fail after %d bytes", len(b))
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(b[len(b)-3:])
		return nil
	})
	body := bytes.Repeat([]byte("x=1&"), (MaxBodyBytes/4)+10)
	body = append(body, "end"...)
	call := func(key, secret string, extra url.Values, ctype string) *httptest.ResponseRecorder {
		v := url.Values{}
		for k, vals := range extra {
			v[k] = vals
		}
		v.Set("apiKey", key)
		v.Set("operator", "upload")
		v.Set("signatureversion", "3")
		v.Set("expires", fixedNow.Add(10*time.Minute).Format(time.RFC3339))
		v.Set("signature", Sign(v, secret))
		req := httptest.NewRequest(http.MethodPost, OperatorPathPrefix+"upload?"+v.Encode(), bytes.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		return rec
	}
	for _, ct := range []string{"application/octet-stream", "application/x-www-form-urlencoded"} {
		if rec := call(adminKey, adminSecret, nil, ct); rec.Code != http.StatusOK || rec.Body.String() != "end" {
			t.Fatalf("%s upload of %d bytes: %d %q", ct, len(body), rec.Code, rec.Body.String())
		}
	}
	if rec := call(adminKey, adminSecret, url.Values{"fail": {"1"}}, "application/octet-stream"); rec.Code != 431 ||
		!bytes.Contains(rec.Body.Bytes(), []byte(`"errortext":"asked to fail after`)) {
		t.Fatalf("handler error: %d %s", rec.Code, rec.Body)
	}
	if rec := call(adminKey, adminSecret+"x", nil, "application/octet-stream"); rec.Code != 401 {
		t.Fatalf("bad signature: %d %s", rec.Code, rec.Body)
	}
	if rec := call(f.carol.key, f.carol.secret, nil, "application/octet-stream"); rec.Code != 401 {
		t.Fatalf("a user: %d %s", rec.Code, rec.Body)
	}
}
