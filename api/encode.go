package api

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// CloudStackVersion is the CloudStack release whose API Stratus speaks; it
// is stamped on XML replies as cloud-stack-version.
var CloudStackVersion = "4.18.0.0"

// Response formats and their content types.
const (
	FormatJSON = "json"
	FormatXML  = "xml"

	ContentTypeJSON = "application/json; charset=UTF-8"
	ContentTypeXML  = "text/xml; charset=UTF-8"
)

// timeLayout is CloudStack's date format, yyyy-MM-dd'T'HH:mm:ssZ.
const timeLayout = "2006-01-02T15:04:05-0700"

// ResponseFormat is "json" when the request asks for response=json (in any
// case) and "xml" otherwise: CloudStack answers in XML when the parameter is
// missing or names anything else.
func ResponseFormat(params url.Values) string {
	if v, _ := firstValue(params, "response"); strings.EqualFold(strings.TrimSpace(v), FormatJSON) {
		return FormatJSON
	}
	return FormatXML
}

// FormatTime formats a time the CloudStack way, in UTC:
// 2021-10-04T09:24:38+0000. The zero time gives "" so that an omitempty
// field leaves it out.
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeLayout)
}

// WriteResponse writes {"<key>": body} as JSON or XML with status 200. key
// is e.g. "listzonesresponse". A nil body is written as an empty object. If
// body cannot be marshalled the client gets a 530 error instead.
func WriteResponse(w http.ResponseWriter, format, key string, body any) {
	out, err := renderEnvelope(format, key, body)
	if err != nil {
		cmd := strings.TrimSuffix(key, "response")
		WriteError(w, format, cmd, ErrInternal("internal error: the response could not be encoded"))
		return
	}
	writeEnvelope(w, format, http.StatusOK, out)
}

// errorEnvelope is CloudStack's ExceptionResponse, in its field order.
type errorEnvelope struct {
	UUIDList    []string `json:"uuidList"`
	ErrorCode   int      `json:"errorcode"`
	CSErrorCode int      `json:"cserrorcode,omitempty"`
	ErrorText   string   `json:"errortext"`
}

// WriteError writes e as CloudStack's error envelope: top key
// "<lowercase cmd>response" (or "errorresponse" when e.TopLevel is set or
// cmd is empty) holding uuidList, errorcode, cserrorcode (left out when 0)
// and errortext. The HTTP status is e.Code, and the X-Description header
// carries the text. A nil e or a code that is not a valid HTTP status is
// sent as a 530.
func WriteError(w http.ResponseWriter, format, cmd string, e *Error) {
	if e == nil {
		e = ErrInternal("")
	}
	code := e.Code
	if code < 100 || code > 999 {
		code = ErrCodeInternal
	}
	key := "errorresponse"
	if !e.TopLevel && cmd != "" {
		key = strings.ToLower(cmd) + "response"
	}
	body := errorEnvelope{UUIDList: []string{}, ErrorCode: code, CSErrorCode: e.CSCode, ErrorText: e.Text}
	out, err := renderEnvelope(format, key, body)
	if err != nil {
		// Cannot happen for this fixed shape; keep a well-formed answer anyway.
		out = []byte(`{"errorresponse":{"uuidList":[],"errorcode":530,"errortext":"internal error"}}`)
		format = FormatJSON
	}
	w.Header().Set("X-Description", headerSafe(e.Text))
	writeEnvelope(w, format, code, out)
}

// isJSON reports whether format asks for JSON; anything else is XML.
func isJSON(format string) bool { return strings.EqualFold(format, FormatJSON) }

// writeEnvelope sends a rendered envelope with its content type and status.
func writeEnvelope(w http.ResponseWriter, format string, status int, out []byte) {
	ct := ContentTypeXML
	if isJSON(format) {
		ct = ContentTypeJSON
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(status)
	_, _ = w.Write(out)
}

// headerSafe makes text fit a header value: control characters become
// spaces, invalid UTF-8 is dropped and the length is capped.
func headerSafe(text string) string {
	const limit = 1024
	var b strings.Builder
	for _, r := range text {
		if b.Len() >= limit {
			break
		}
		switch {
		case r == utf8.RuneError:
			continue
		case r < 0x20 || r == 0x7f:
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// renderEnvelope renders {"key": body} in the format.
func renderEnvelope(format, key string, body any) ([]byte, error) {
	inner, err := marshalCompact(body)
	if err != nil {
		return nil, err
	}
	if isJSON(format) {
		k, err := marshalCompact(key)
		if err != nil {
			return nil, err
		}
		out := make([]byte, 0, len(inner)+len(k)+3)
		out = append(out, '{')
		out = append(out, k...)
		out = append(out, ':')
		out = append(out, inner...)
		return append(out, '}'), nil
	}
	return jsonToXML(key, inner)
}

// marshalCompact is compact JSON without HTML escaping (CloudStack's Gson
// leaves <, > and & alone), without a trailing newline, without null
// object members, and with nil as {}.
func marshalCompact(v any) ([]byte, error) {
	if v == nil {
		return []byte("{}"), nil
	}
	if l, ok := v.(listBody); ok {
		// Built from marshalCompact parts, so already compact and without
		// null members: encoding/json would validate and compact its
		// MarshalJSON output again, a full pass over a page of 500 rows.
		return l.MarshalJSON()
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode response: %w", err)
	}
	out := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if string(out) == "null" {
		return []byte("{}"), nil
	}
	if bytes.Contains(out, []byte("null")) {
		return stripNulls(out)
	}
	return out, nil
}

// stripNulls drops object members whose value is null, as Gson does, so a
// field a caller forgot to mark omitempty is absent rather than null.
// Nulls inside arrays stay (Gson keeps those too).
func stripNulls(doc []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var buf bytes.Buffer
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("encode response: %w", err)
	}
	if err := copyJSON(dec, &buf, tok); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// copyJSON writes the value that starts with tok, without null members.
func copyJSON(dec *json.Decoder, buf *bytes.Buffer, tok json.Token) error {
	switch t := tok.(type) {
	case json.Delim:
		if t != '{' && t != '[' {
			return fmt.Errorf("encode response: unexpected %q", rune(t))
		}
		buf.WriteByte(byte(t))
		first := true
		for dec.More() {
			next, err := dec.Token()
			if err != nil {
				return fmt.Errorf("encode response: %w", err)
			}
			var key []byte
			if t == '{' {
				if key, err = marshalString(next); err != nil {
					return err
				}
				if next, err = dec.Token(); err != nil {
					return fmt.Errorf("encode response: %w", err)
				}
				if next == nil {
					continue
				}
			}
			if !first {
				buf.WriteByte(',')
			}
			first = false
			if key != nil {
				buf.Write(key)
				buf.WriteByte(':')
			}
			if err := copyJSON(dec, buf, next); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return fmt.Errorf("encode response: %w", err)
		}
		buf.WriteByte(map[json.Delim]byte{'{': '}', '[': ']'}[t])
		return nil
	case nil:
		buf.WriteString("null")
	case bool:
		buf.WriteString(strconv.FormatBool(t))
	case json.Number:
		buf.WriteString(t.String())
	case string:
		b, err := marshalString(t)
		if err != nil {
			return err
		}
		buf.Write(b)
	default:
		return fmt.Errorf("encode response: unexpected token %T", tok)
	}
	return nil
}

// marshalString encodes a JSON string token without HTML escaping.
func marshalString(tok json.Token) ([]byte, error) {
	s, ok := tok.(string)
	if !ok {
		return nil, fmt.Errorf("encode response: object key is %T", tok)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return nil, fmt.Errorf("encode response: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// jsonToXML transcodes a JSON document into CloudStack's XML envelope by
// walking its token stream, which keeps the key order of the JSON. Arrays
// repeat the element named after their key, objects nest, nulls and empty
// arrays vanish.
func jsonToXML(key string, doc []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var buf bytes.Buffer
	buf.WriteString(`<?xml version="1.0" encoding="UTF-8"?>`)
	name := xmlName(key)
	buf.WriteString("<" + name + ` cloud-stack-version="`)
	if err := xml.EscapeText(&buf, []byte(CloudStackVersion)); err != nil {
		return nil, fmt.Errorf("encode xml: %w", err)
	}
	buf.WriteString(`">`)
	if err := xmlContent(dec, &buf, name); err != nil {
		return nil, err
	}
	buf.WriteString("</" + name + ">")
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("encode xml: trailing data after the response body (%v)", err)
	}
	return buf.Bytes(), nil
}

// xmlContent writes the next JSON value as the content of the element
// named name that the caller has opened: an object's members as child
// elements, a scalar as escaped text. (A bare array here, which no
// CloudStack body has, gives one child per item named like the parent.)
func xmlContent(dec *json.Decoder, buf *bytes.Buffer, name string) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("encode xml: %w", err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			return xmlMembers(dec, buf)
		case '[':
			return xmlItems(dec, buf, name)
		}
		return fmt.Errorf("encode xml: unexpected %q", rune(t))
	case nil:
		return nil
	default:
		return xmlScalar(buf, t)
	}
}

// xmlMembers writes the members of an object whose '{' was just read.
func xmlMembers(dec *json.Decoder, buf *bytes.Buffer) error {
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("encode xml: %w", err)
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("encode xml: object key is %T", tok)
		}
		if err := xmlElement(dec, buf, xmlName(key)); err != nil {
			return err
		}
	}
	_, err := dec.Token() // '}'
	if err != nil {
		return fmt.Errorf("encode xml: %w", err)
	}
	return nil
}

// xmlItems writes each item of an array whose '[' was just read as an
// element called name.
func xmlItems(dec *json.Decoder, buf *bytes.Buffer, name string) error {
	for dec.More() {
		if err := xmlElement(dec, buf, name); err != nil {
			return err
		}
	}
	_, err := dec.Token() // ']'
	if err != nil {
		return fmt.Errorf("encode xml: %w", err)
	}
	return nil
}

// xmlElement writes the next JSON value as element(s) called name: one
// element for an object or scalar, one per item for an array, none for
// null.
func xmlElement(dec *json.Decoder, buf *bytes.Buffer, name string) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("encode xml: %w", err)
	}
	switch t := tok.(type) {
	case nil:
		return nil
	case json.Delim:
		switch t {
		case '[':
			return xmlItems(dec, buf, name)
		case '{':
			buf.WriteString("<" + name + ">")
			if err := xmlMembers(dec, buf); err != nil {
				return err
			}
			buf.WriteString("</" + name + ">")
			return nil
		}
		return fmt.Errorf("encode xml: unexpected %q", rune(t))
	default:
		buf.WriteString("<" + name + ">")
		if err := xmlScalar(buf, t); err != nil {
			return err
		}
		buf.WriteString("</" + name + ">")
		return nil
	}
}

// xmlScalar writes a JSON string, number or boolean as escaped text.
func xmlScalar(buf *bytes.Buffer, tok json.Token) error {
	var s string
	switch v := tok.(type) {
	case string:
		s = v
	case json.Number:
		s = v.String()
	case bool:
		s = strconv.FormatBool(v)
	default:
		return fmt.Errorf("encode xml: unexpected token %T", tok)
	}
	if err := xml.EscapeText(buf, []byte(s)); err != nil {
		return fmt.Errorf("encode xml: %w", err)
	}
	return nil
}

// xmlName turns a JSON key into a usable XML element name. CloudStack's
// keys are plain lower-case words; map keys from user data (e.g. details)
// may not be, so anything but ASCII letters, digits, '_', '-' and '.'
// becomes '_', and a name that cannot start as it is gets a '_' in front.
func xmlName(key string) string {
	var b strings.Builder
	for i, r := range key {
		switch {
		case r == '_', 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z':
			b.WriteRune(r)
		case '0' <= r && r <= '9', r == '-', r == '.':
			if i == 0 {
				b.WriteByte('_')
			}
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "_"
	}
	return b.String()
}

// listBody is a list response: count first, then the items, as CloudStack
// orders them (which matters for XML).
type listBody struct {
	count int
	item  string
	items any
}

// MarshalJSON writes {"count":N,"<item>":[...]}, leaving the items out when
// the page is empty.
func (l listBody) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(`{"count":`)
	buf.WriteString(strconv.Itoa(l.count))
	if !isEmptyItems(l.items) {
		k, err := marshalCompact(l.item)
		if err != nil {
			return nil, err
		}
		v, err := marshalCompact(l.items)
		if err != nil {
			return nil, err
		}
		buf.WriteByte(',')
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// isEmptyItems reports whether v is nil or an empty slice, array or map.
func isEmptyItems(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Map:
		return rv.IsNil() || rv.Len() == 0
	case reflect.Array:
		return rv.Len() == 0
	case reflect.Pointer, reflect.Interface:
		return rv.IsNil()
	}
	return false
}

// ListBody builds the body of a list response: {} when total is 0, else
// {"count":total,"<item>":items}. total is the number of matches before
// paging; when the page itself is empty (a page past the end) only count is
// sent.
func ListBody(item string, total int, items any) any {
	if total <= 0 {
		return struct{}{}
	}
	return listBody{count: total, item: item, items: items}
}
