package e2e

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/cloudstack-go/v2/cloudstack"
)

// gatewayError is an HTTP 502/503/504 that did not come from a stratus
// server (no JSON body): the load balancer's own answer.
type gatewayError struct {
	Status int
	Body   string
}

func (e *gatewayError) Error() string {
	return fmt.Sprintf("load balancer answered HTTP %d: %s", e.Status, e.Body)
}

// gatewayTransport turns the load balancer's non-JSON 502/503/504 pages
// into a typed error. Without it the SDK reports them as a JSON syntax
// error, which cannot be told apart from a broken server response.
type gatewayTransport struct{ base http.RoundTripper }

func (g gatewayTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := g.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		if !strings.Contains(resp.Header.Get("Content-Type"), "json") {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
			_ = resp.Body.Close()
			return nil, &gatewayError{Status: resp.StatusCode, Body: strings.Join(strings.Fields(string(b)), " ")}
		}
	}
	return resp, nil
}

func newTransport() *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        512,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
	}
}

// newSDK returns the CloudStack Go SDK client for apiURL, as a tool
// (Terraform, a script) would make it.
func newSDK(apiURL string, k adminKeys) *cloudstack.CloudStackClient {
	hc := &http.Client{Transport: gatewayTransport{base: newTransport()}, Timeout: 30 * time.Second}
	return cloudstack.NewAsyncClient(apiURL, k.APIKey, k.SecretKey, false, cloudstack.WithHTTPClient(hc))
}

var csErrorRE = regexp.MustCompile(`CloudStack API error (\d+) `)

// csErrorCode returns the errorcode of an SDK CloudStack error, or 0.
func csErrorCode(err error) int {
	if err == nil {
		return 0
	}
	m := csErrorRE.FindStringSubmatch(err.Error())
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// retriable classifies an SDK error: transport errors (reset, EOF,
// refused, timeouts), the load balancer's 502/503/504, and CloudStack
// errorcode 503 may be retried; anything else is an answer. The second
// result names the kind, for the log.
func retriable(err error) (bool, string) {
	var gw *gatewayError
	if errors.As(err, &gw) {
		return true, fmt.Sprintf("lb-http-%d", gw.Status)
	}
	if code := csErrorCode(err); code != 0 {
		return code == http.StatusServiceUnavailable, fmt.Sprintf("errorcode-%d", code)
	}
	var uerr *url.Error
	var nerr net.Error
	switch {
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPIPE):
		return true, "transport-reset-or-refused"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true, "transport-eof"
	case errors.As(err, &nerr):
		return true, "transport-net"
	case errors.As(err, &uerr):
		return true, "transport-url"
	}
	return false, "other"
}

// encodeValues sorts and encodes params as the SDK and cmk do: values
// QueryEscaped, + as %20, * left raw.
func encodeValues(v url.Values) string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		for _, val := range v[k] {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			esc := strings.ReplaceAll(url.QueryEscape(val), "+", "%20")
			b.WriteString(k + "=" + strings.ReplaceAll(esc, "%2A", "*"))
		}
	}
	return b.String()
}

// sign returns the base64 HMAC-SHA1 of the lower-cased encoded params.
func sign(encoded, secret string) string {
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(strings.ToLower(encoded)))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// signMode selects how a raw request is signed.
type signMode int

const (
	signV3     signMode = iota // signatureversion=3 + expires, as the SDK does
	signLegacy                 // neither, as cmk does
)

// signedQuery adds apiKey, command and (for signV3) signatureversion and
// expires to params and returns the query string with the signature.
// response is not added: callers choose it.
func signedQuery(command string, params url.Values, k adminKeys, mode signMode) string {
	v := url.Values{}
	for name, vals := range params {
		v[name] = append([]string(nil), vals...)
	}
	v.Set("apiKey", k.APIKey)
	v.Set("command", command)
	if mode == signV3 {
		v.Set("signatureversion", "3")
		v.Set("expires", time.Now().UTC().Add(15*time.Minute).Format(time.RFC3339))
	}
	enc := encodeValues(v)
	return enc + "&signature=" + url.QueryEscape(sign(enc, k.SecretKey))
}

// signedForm is signedQuery for a POST body (the signature unescaped in
// the form, as the SDK sends it).
func signedForm(command string, params url.Values, k adminKeys) url.Values {
	v := url.Values{}
	for name, vals := range params {
		v[name] = append([]string(nil), vals...)
	}
	v.Set("apiKey", k.APIKey)
	v.Set("command", command)
	v.Set("response", "json")
	v.Set("signatureversion", "3")
	v.Set("expires", time.Now().UTC().Add(15*time.Minute).Format(time.RFC3339))
	v.Set("signature", sign(encodeValues(v), k.SecretKey))
	return v
}

// TestSignerMatchesSDK checks the test's own signer against the SDK's
// encoder, so raw requests are signed exactly as the SDK signs them.
func TestSignerMatchesSDK(t *testing.T) {
	v := url.Values{"name": {"a zone*with ~odd/chars+ünï"}, "command": {"createZone"}, "apiKey": {"AbC"},
		"dns1": {"8.8.8.8"}, "details[0].key": {"x y"}}
	if got, want := encodeValues(v), cloudstack.EncodeValues(v); got != want {
		t.Fatalf("encodeValues = %q, SDK EncodeValues = %q", got, want)
	}
	q := signedQuery("listZones", url.Values{"response": {"json"}}, adminKeys{APIKey: "k", SecretKey: "s"}, signLegacy)
	parsed, err := url.ParseQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	sig := parsed.Get("signature")
	parsed.Del("signature")
	if want := sign(cloudstack.EncodeValues(parsed), "s"); sig != want {
		t.Fatalf("signature %q, want %q", sig, want)
	}
}
