package api

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"
)

const testSecret = "shh-secret"

var signNow = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)

// hmacB64 is the reference HMAC-SHA1 + base64, independent of sign.go.
func hmacB64(s, secret string) string {
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// sdkEncodeValues is how github.com/apache/cloudstack-go/v2 encodes a
// request (EncodeValues): sorted names, url.QueryEscape on each value, then
// '+' to %20 and %2A back to '*'.
func sdkEncodeValues(v url.Values) string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var buf bytes.Buffer
	for _, k := range keys {
		for _, val := range v[k] {
			if buf.Len() > 0 {
				buf.WriteByte('&')
			}
			escaped := url.QueryEscape(val)
			escaped = strings.ReplaceAll(escaped, "+", "%20")
			escaped = strings.ReplaceAll(escaped, "%2A", "*")
			buf.WriteString(k + "=" + escaped)
		}
	}
	return buf.String()
}

func TestCanonicalStringVectors(t *testing.T) {
	cases := []struct {
		name      string
		params    url.Values
		javaTilde bool
		want      string
	}{
		{
			name:      "space star tilde, Java form",
			params:    url.Values{"apiKey": {"abc"}, "command": {"listZones"}, "name": {"a b*c~d"}, "response": {"json"}, "signature": {"ignored"}},
			javaTilde: true,
			want:      "apikey=abc&command=listzones&name=a%20b*c%7ed&response=json",
		},
		{
			name:      "space star tilde, Go form",
			params:    url.Values{"apiKey": {"abc"}, "command": {"listZones"}, "name": {"a b*c~d"}, "response": {"json"}},
			javaTilde: false,
			want:      "apikey=abc&command=listzones&name=a%20b*c~d&response=json",
		},
		{
			name:      "reserved and non-ASCII characters",
			params:    url.Values{"command": {"createZone"}, "name": {"x&y=z+1/2é.-_"}},
			javaTilde: true,
			want:      "command=createzone&name=x%26y%3dz%2b1%2f2%c3%a9.-_",
		},
		{
			name: "names sort case-preserving in byte order, and are not encoded",
			// "Zeta" < "apiKey" < "tags[0].key" in byte order.
			params:    url.Values{"tags[0].key": {"K"}, "apiKey": {"A"}, "Zeta": {"1"}},
			javaTilde: true,
			want:      "zeta=1&apikey=a&tags[0].key=k",
		},
		{
			name:      "first value of a repeated name, empty values kept",
			params:    url.Values{"name": {"first", "second"}, "empty": {""}},
			javaTilde: true,
			want:      "empty=&name=first",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := CanonicalString(tc.params, tc.javaTilde); got != tc.want {
				t.Fatalf("CanonicalString = %q\nwant            %q", got, tc.want)
			}
		})
	}
}

func TestSignMatchesHandComputedHMAC(t *testing.T) {
	v := url.Values{"apiKey": {"abc"}, "command": {"listZones"}, "name": {"a b*c~d"}, "response": {"json"}}
	canonical := "apikey=abc&command=listzones&name=a%20b*c%7ed&response=json"
	if got, want := Sign(v, testSecret), hmacB64(canonical, testSecret); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	// Pinned values computed outside Go (Python hmac/hashlib/base64).
	if got := Sign(v, testSecret); got != "NPsGH71CxKDjyThP2CLhFwSnHj8=" {
		t.Fatalf("Sign = %s, want the pinned Java-form signature", got)
	}
	if got := hmacB64(CanonicalString(v, false), testSecret); got != "SC9PLczFY6Ox6U4eBiv0hJf1b3o=" {
		t.Fatalf("Go-form signature = %s, want the pinned value", got)
	}
}

// signedV3 returns SDK-style params (signatureversion 3, expires) signed
// over the Java form.
func signedV3(expires string) url.Values {
	v := url.Values{"apiKey": {"abc"}, "command": {"listZones"}, "name": {"a b*c"}, "response": {"json"},
		"signatureversion": {"3"}}
	if expires != "" {
		v.Set("expires", expires)
	}
	v.Set("signature", Sign(v, testSecret))
	return v
}

func TestVerify(t *testing.T) {
	valid := signNow.Add(15 * time.Minute).Format(time.RFC3339)
	past := signNow.Add(-time.Second).Format(time.RFC3339)
	cases := []struct {
		name   string
		params func() url.Values
		secret string
		want   string // "" = accepted, else a substring of the 401 text
	}{
		{"v3 valid", func() url.Values { return signedV3(valid) }, testSecret, ""},
		{"v3 expires exactly now", func() url.Values { return signedV3(signNow.Format(time.RFC3339)) }, testSecret, ""},
		{"v3 expired", func() url.Values { return signedV3(past) }, testSecret, "expired at 2025-03-14T09:26:52Z"},
		{"v3 malformed expires", func() url.Values { return signedV3("next tuesday") }, testSecret, "malformed expires"},
		{"v3 missing expires", func() url.Values { return signedV3("") }, testSecret, "requires an expires"},
		{"legacy ignores a past expires", func() url.Values {
			v := url.Values{"apiKey": {"abc"}, "command": {"listZones"}, "expires": {past}}
			v.Set("signature", Sign(v, testSecret))
			return v
		}, testSecret, ""},
		{"legacy ignores a malformed expires", func() url.Values {
			v := url.Values{"apiKey": {"abc"}, "command": {"listZones"}, "expires": {"garbage"}, "signatureversion": {"2"}}
			v.Set("signature", Sign(v, testSecret))
			return v
		}, testSecret, ""},
		{"tampered value", func() url.Values {
			v := signedV3(valid)
			v.Set("name", "a b*d")
			return v
		}, testSecret, "does not match"},
		{"added parameter", func() url.Values {
			v := signedV3(valid)
			v.Set("listall", "true")
			return v
		}, testSecret, "does not match"},
		{"wrong secret", func() url.Values { return signedV3(valid) }, "other-secret", "does not match"},
		{"missing signature", func() url.Values {
			v := signedV3(valid)
			v.Del("signature")
			return v
		}, testSecret, "no signature"},
		{"empty signature", func() url.Values {
			v := signedV3(valid)
			v.Set("signature", "")
			return v
		}, testSecret, "no signature"},
		{"duplicate params take the first value", func() url.Values {
			v := url.Values{"apiKey": {"abc"}, "command": {"listZones"}}
			v.Set("name", "first")
			v.Set("signature", Sign(v, testSecret))
			v["name"] = append(v["name"], "second")
			return v
		}, testSecret, ""},
		{"signature over the second duplicate fails", func() url.Values {
			v := url.Values{"apiKey": {"abc"}, "command": {"listZones"}, "name": {"second"}}
			sig := Sign(v, testSecret)
			v["name"] = []string{"first", "second"}
			v.Set("signature", sig)
			return v
		}, testSecret, "does not match"},
		{"unescaped plus in the signature", func() url.Values {
			// Find a request whose signature holds a '+', then send it
			// the way a sloppy client would: '+' decoded to a space.
			for i := 0; ; i++ {
				v := url.Values{"apiKey": {"abc"}, "command": {"listZones"}, "n": {strings.Repeat("x", i)}}
				if sig := Sign(v, testSecret); strings.Contains(sig, "+") {
					v.Set("signature", strings.ReplaceAll(sig, "+", " "))
					return v
				}
			}
		}, testSecret, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := Verify(tc.params(), tc.secret, signNow)
			switch {
			case tc.want == "" && e != nil:
				t.Fatalf("rejected: %v", e)
			case tc.want != "" && e == nil:
				t.Fatalf("accepted, want a 401 containing %q", tc.want)
			case e != nil:
				if e.Code != 401 || e.CSCode != 0 || !strings.Contains(e.Text, tc.want) {
					t.Fatalf("got %+v, want 401 without cserrorcode containing %q", *e, tc.want)
				}
				if strings.Contains(e.Text, tc.secret) {
					t.Fatalf("error text reveals the secret: %q", e.Text)
				}
			}
		})
	}
}

func TestVerifyGoClientGET(t *testing.T) {
	// Build the request exactly as the Go SDK's newRawRequest does for a GET,
	// with a '~' in a value (which the SDK leaves raw) and a '*'.
	params := url.Values{}
	params.Set("name", "web~01 *prod*")
	params.Set("apiKey", "abc")
	params.Set("command", "listVirtualMachines")
	params.Set("response", "json")
	params.Set("signatureversion", "3")
	params.Set("expires", signNow.Add(15*time.Minute).Format(time.RFC3339))
	s := sdkEncodeValues(params)
	sig := hmacB64(strings.ToLower(s), testSecret)
	rawQuery := s + "&signature=" + url.QueryEscape(sig)

	got, err := url.ParseQuery(rawQuery)
	if err != nil {
		t.Fatal(err)
	}
	if e := Verify(got, testSecret, signNow); e != nil {
		t.Fatalf("Go SDK GET rejected: %v\nquery: %s", e, rawQuery)
	}
	// The same request signed the Java way verifies too.
	got.Set("signature", Sign(got, testSecret))
	if e := Verify(got, testSecret, signNow); e != nil {
		t.Fatalf("Java-form signature rejected: %v", e)
	}
}

func TestVerifyPOSTForm(t *testing.T) {
	// The SDK puts the unescaped signature in the form values and posts
	// them as application/x-www-form-urlencoded; the server parses the body.
	v := url.Values{"command": {"createZone"}, "apiKey": {"abc"}, "name": {"zone *one* ~ two"},
		"response": {"json"}, "signatureversion": {"3"}, "expires": {signNow.Add(time.Minute).Format(time.RFC3339)}}
	v.Set("signature", hmacB64(strings.ToLower(sdkEncodeValues(v)), testSecret))
	body := v.Encode()
	got, err := url.ParseQuery(body)
	if err != nil {
		t.Fatal(err)
	}
	if e := Verify(got, testSecret, signNow); e != nil {
		t.Fatalf("POST form rejected: %v\nbody: %s", e, body)
	}
}

func TestParseExpires(t *testing.T) {
	want := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	ok := []struct {
		in   string
		want time.Time
	}{
		{"2025-01-01T12:00:00Z", want},
		{"2025-01-01T12:00:00+00:00", want},
		{"2025-01-01T12:00:00+0000", want},
		{"2025-01-01T13:00:00+01:00", want},
		{"2025-01-01T07:00:00-0500", want},
		{"2025-01-01T14:00:00+02", want},
		{"2025-01-01T12:00:00.123Z", want.Add(123 * time.Millisecond)},
		{"2025-01-01T12:00:00.123456Z", want.Add(123456 * time.Microsecond)},
		{"2025-01-01T12:00:00.123456+0000", want.Add(123456 * time.Microsecond)},
		{"2025-01-01T12:00:00Z+0000", want},
		{"2025-01-01T13:00:00Z+0100", want},
		{" 2025-01-01T12:00:00Z ", want},
	}
	for _, tc := range ok {
		got, err := ParseExpires(tc.in)
		if err != nil {
			t.Errorf("ParseExpires(%q): %v", tc.in, err)
			continue
		}
		if !got.Equal(tc.want) {
			t.Errorf("ParseExpires(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
	for _, in := range []string{"", "2025-01-01", "2025-01-01 12:00:00", "2025-01-01T12:00:00", "1735732800", "2025-13-01T12:00:00Z", "yesterday"} {
		if _, err := ParseExpires(in); err == nil {
			t.Errorf("ParseExpires(%q) accepted", in)
		} else if !errors.Is(err, ErrMalformedExpires) {
			t.Errorf("ParseExpires(%q) error %q", in, err)
		}
	}
}
