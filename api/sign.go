package api

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Request signing, as CloudStack's API-key authentication defines it: the
// client sorts every parameter but "signature" by name, URL-encodes the
// values the way Java's URLEncoder does (with %20 for a space), joins them
// with '&', lower-cases the whole string and sends base64(HMAC-SHA1(secret,
// that string)) as "signature".

// ErrMalformedExpires is returned (wrapped) by ParseExpires for a value in
// none of the accepted forms.
var ErrMalformedExpires = errors.New("malformed expires value")

// firstValue returns the first value of the parameter whose name equals name,
// ignoring case (CloudStack lower-cases parameter names), preferring an
// exact match.
func firstValue(values url.Values, name string) (string, bool) {
	if vs, ok := values[name]; ok && len(vs) > 0 {
		return vs[0], true
	}
	for k, vs := range values {
		if strings.EqualFold(k, name) && len(vs) > 0 {
			return vs[0], true
		}
	}
	return "", false
}

// CanonicalString builds the lower-cased string-to-sign from all params
// except "signature". With javaTilde set, '~' is encoded as %7E as Java's
// URLEncoder does (what CloudStack computes); without it '~' stays raw, as
// Go's url.QueryEscape leaves it (what the Go SDK and cmk compute).
func CanonicalString(params url.Values, javaTilde bool) string {
	names := make([]string, 0, len(params))
	for name, vs := range params {
		if strings.EqualFold(name, "signature") || len(vs) == 0 {
			continue
		}
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	for i, name := range names {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(name)
		b.WriteByte('=')
		encodeJava(&b, params[name][0], javaTilde)
	}
	return strings.ToLower(b.String())
}

// encodeJava writes v percent-encoded like Java's URLEncoder (UTF-8 bytes;
// A-Z a-z 0-9 . - * _ kept), with a space as %20 instead of '+'. The
// hex case does not matter: the result is lower-cased.
func encodeJava(b *strings.Builder, v string, javaTilde bool) {
	const hex = "0123456789abcdef"
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '.', c == '-', c == '*', c == '_':
			b.WriteByte(c)
		case c == '~' && !javaTilde:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0x0f])
		}
	}
}

// signString is base64(HMAC-SHA1(secret, s)).
func signString(s, secret string) string {
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Sign returns base64(HMAC-SHA1(secret, CanonicalString(params))) in the
// Java form CloudStack itself computes. Test clients and tools use it.
func Sign(params url.Values, secret string) string {
	return signString(CanonicalString(params, true), secret)
}

// Verify checks params["signature"] against the secret in constant time.
// Both the Java URLEncoder form (~ as %7E) and the Go-client form (~ left
// raw) are accepted, so clients of either kind work with values holding a
// '~'. With signatureversion=3 an expires parameter is required, parsed
// leniently (see ParseExpires), and must not lie before now; legacy
// requests (no signatureversion, or another value) ignore expires, as cmk
// relies on. Every failure is a 401 whose text says what was wrong without
// revealing anything about the secret.
func Verify(params url.Values, secret string, now time.Time) *Error {
	sig, ok := firstValue(params, "signature")
	if !ok || sig == "" {
		return ErrUnauthorized(defaultUnauthorizedText + ": the request has no signature parameter")
	}
	if v, _ := firstValue(params, "signatureversion"); v == "3" {
		raw, ok := firstValue(params, "expires")
		if !ok || raw == "" {
			return ErrUnauthorized(defaultUnauthorizedText + ": signatureversion=3 requires an expires parameter")
		}
		exp, err := ParseExpires(raw)
		if err != nil {
			return ErrUnauthorized(fmt.Sprintf("%s: %v", defaultUnauthorizedText, err))
		}
		if exp.Before(now) {
			return ErrUnauthorized(fmt.Sprintf("%s: the request expired at %s (server time %s); sign a new request",
				defaultUnauthorizedText, exp.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339)))
		}
	}
	// A client that forgot to escape '+' in a GET query sends it as a
	// space; base64 never holds spaces, so turning them back is safe.
	got := []byte(strings.ReplaceAll(sig, " ", "+"))
	javaSig := signString(CanonicalString(params, true), secret)
	goSig := signString(CanonicalString(params, false), secret)
	// Compare against both forms always, so timing does not depend on
	// which (if either) matched.
	okJava := subtle.ConstantTimeCompare(got, []byte(javaSig))
	okGo := subtle.ConstantTimeCompare(got, []byte(goSig))
	if okJava|okGo != 1 {
		return ErrUnauthorized(defaultUnauthorizedText + ": the signature does not match the request")
	}
	return nil
}

// expiresLayouts are the accepted forms of "expires". Go's parser takes
// an optional fractional second after the seconds field in each of them,
// which covers the millisecond and microsecond variants.
var expiresLayouts = []string{
	"2006-01-02T15:04:05Z07:00",  // ISO offset / instant: ...Z or ...+00:00
	"2006-01-02T15:04:05Z0700",   // yyyy-MM-dd'T'HH:mm:ssZ: ...+0000
	"2006-01-02T15:04:05Z07",     // ...+00
	"2006-01-02T15:04:05Z-0700",  // legacy yyyy-MM-dd'T'HH:mm:ss'Z'Z: ...Z+0000
	"2006-01-02T15:04:05Z-07:00", // the same with a colon in the offset
}

// ParseExpires parses the lenient expires formats CloudStack accepts:
// 2025-01-01T12:00:00Z, 2025-01-01T12:00:00+00:00, 2025-01-01T12:00:00+0000,
// the same with fractional seconds (milli- or microseconds), and the legacy
// 2025-01-01T12:00:00Z+0000 form.
func ParseExpires(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range expiresLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%w %q: give a UTC or offset time such as 2025-01-01T12:00:00Z", ErrMalformedExpires, s)
}
