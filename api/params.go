package api

import (
	"fmt"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Parameter types as listApis names them, for ParamSpec.Type.
const (
	ParamString  = "string"
	ParamUUID    = "uuid"
	ParamInteger = "integer"
	ParamLong    = "long"
	ParamShort   = "short"
	ParamBoolean = "boolean"
	ParamList    = "list"
	ParamMap     = "map"
	ParamDate    = "date"
	ParamObject  = "object"
)

// ParamSpec describes one parameter of a command, for validation and for
// listApis. Type is one of the Param* names. Length caps a string value's
// length in characters; 0 means no cap here (listApis shows 255 then).
type ParamSpec struct {
	Name        string
	Type        string
	Description string
	Since       string
	Related     string
	Required    bool
	Length      int
}

// Params is the request's parameters, first value of each name, with the
// command name for error texts. Names match case-insensitively, as
// CloudStack lower-cases them, with an exact match preferred.
type Params struct {
	Cmd    string
	Values url.Values
}

// Has reports whether the parameter was sent (possibly empty). For a map
// parameter it is also true when any name[i].field was sent.
func (p Params) Has(name string) bool {
	if _, ok := firstValue(p.Values, name); ok {
		return true
	}
	for k := range p.Values {
		if base, _, _, ok := splitMapKey(k); ok && strings.EqualFold(base, name) {
			return true
		}
	}
	return false
}

// String is the parameter's first value, or "" when it was not sent.
func (p Params) String(name string) string {
	v, _ := firstValue(p.Values, name)
	return v
}

// Validate checks every spec in order and returns the first failure:
// required parameters must be present and not empty; typed values must
// parse (uuid in the 8-4-4-4-12 hex form of either case, or -1; integer,
// short and long in range; boolean true or false in any case; date as
// yyyy-MM-dd or yyyy-MM-dd HH:mm:ss; map keys as name[index].field); a
// string may not be longer than its Length when that is set. Optional
// parameters sent empty are treated as not sent. Parameters without a spec
// are ignored, as CloudStack ignores them.
func (p Params) Validate(specs []ParamSpec) *Error {
	for _, s := range specs {
		if s.Type == ParamMap {
			if e := p.validateMap(s); e != nil {
				return e
			}
			continue
		}
		v, ok := firstValue(p.Values, s.Name)
		if !ok || v == "" {
			if s.Required {
				return ErrMissingParam(p.Cmd, s.Name)
			}
			continue
		}
		if e := p.validateValue(s, v); e != nil {
			return e
		}
	}
	return nil
}

func (p Params) validateValue(s ParamSpec, v string) *Error {
	switch s.Type {
	case ParamUUID:
		// CloudStack answers a value that is not a UUID with the same
		// "entity does not exist" text as an unknown one, which clients
		// read as "not found". -1 is its "any/all" placeholder.
		if v != "-1" && !IsUUID(v) {
			return ErrEntityNotFound(p.Cmd, s.Name, v)
		}
	case ParamInteger, ParamShort, ParamLong:
		bits := map[string]int{ParamShort: 16, ParamInteger: 32, ParamLong: 64}[s.Type]
		if _, err := strconv.ParseInt(strings.TrimSpace(v), 10, bits); err != nil {
			return ErrInvalidParamValue(p.Cmd, s.Name, v)
		}
	case ParamBoolean:
		if _, ok := parseBoolParam(v); !ok {
			return ErrInvalidParamValue(p.Cmd, s.Name, v)
		}
	case ParamDate:
		if _, err := ParseDate(v); err != nil {
			return ErrInvalidParamValue(p.Cmd, s.Name, v)
		}
	case ParamString:
		if s.Length > 0 {
			if n := len([]rune(v)); n > s.Length {
				return &Error{Code: ErrCodeParam, CSCode: CSServerAPI, Text: fmt.Sprintf(
					"Unable to execute API command %s due to invalid value. The value of parameter %s is %d characters long; at most %d are allowed",
					cmdLower(p.Cmd), s.Name, n, s.Length)}
			}
		}
	}
	return nil
}

// validateMap checks the name[index].field keys of a map parameter.
func (p Params) validateMap(s ParamSpec) *Error {
	found := false
	for k := range p.Values {
		if !strings.HasPrefix(strings.ToLower(k), strings.ToLower(s.Name)+"[") {
			continue
		}
		if _, _, _, ok := splitMapKey(k); !ok {
			return p.malformedMapKey(s.Name, k)
		}
		found = true
	}
	if s.Required && !found {
		return ErrMissingParam(p.Cmd, s.Name)
	}
	return nil
}

func (p Params) malformedMapKey(name, key string) *Error {
	return &Error{Code: ErrCodeMalformedParam, CSCode: CSServerAPI, Text: fmt.Sprintf(
		"Unable to decode parameter %s; send a map as %s[index].field=value, e.g. %s[0].key=color", key, name, name)}
}

// IsUUID reports whether s is a UUID in the canonical 8-4-4-4-12 hex form,
// in either case.
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// ParseDate parses a date parameter: yyyy-MM-dd or yyyy-MM-dd HH:mm:ss,
// taken as UTC.
func ParseDate(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	t, err := time.Parse("2006-01-02 15:04:05", s)
	if err == nil {
		return t, nil
	}
	t, err = time.Parse("2006-01-02", s)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse date %q (want yyyy-MM-dd or yyyy-MM-dd HH:mm:ss): %w", s, err)
	}
	return t, nil
}

func parseBoolParam(v string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

// Int is the parameter as an int (32-bit range, as CloudStack's Integer),
// def when it was not sent or is empty.
func (p Params) Int(name string, def int) (int, *Error) {
	v := strings.TrimSpace(p.String(name))
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return def, ErrInvalidParamValue(p.Cmd, name, p.String(name))
	}
	return int(n), nil
}

// Int64 is the parameter as an int64, def when it was not sent or is
// empty.
func (p Params) Int64(name string, def int64) (int64, *Error) {
	v := strings.TrimSpace(p.String(name))
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return def, ErrInvalidParamValue(p.Cmd, name, p.String(name))
	}
	return n, nil
}

// Bool is the parameter as a bool (true or false in any case), def when it
// was not sent or is empty.
func (p Params) Bool(name string, def bool) (bool, *Error) {
	v := p.String(name)
	if strings.TrimSpace(v) == "" {
		return def, nil
	}
	b, ok := parseBoolParam(v)
	if !ok {
		return def, ErrInvalidParamValue(p.Cmd, name, v)
	}
	return b, nil
}

// List splits a comma-separated parameter, trimming each element and
// dropping empty ones. It is nil when the parameter is absent or empty.
func (p Params) List(name string) []string {
	var out []string
	for _, s := range strings.Split(p.String(name), ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// splitMapKey splits "name[index].field" into its parts. index must be a
// non-negative decimal and field non-empty.
func splitMapKey(k string) (name string, index int, field string, ok bool) {
	open := strings.IndexByte(k, '[')
	if open <= 0 || strings.LastIndexByte(k, '[') != open {
		return "", 0, "", false
	}
	rest := k[open+1:]
	closing := strings.IndexByte(rest, ']')
	if closing <= 0 || strings.IndexByte(rest[closing+1:], ']') >= 0 {
		return "", 0, "", false
	}
	idx := rest[:closing]
	for i := 0; i < len(idx); i++ {
		if idx[i] < '0' || idx[i] > '9' {
			return "", 0, "", false
		}
	}
	n, err := strconv.Atoi(idx)
	if err != nil {
		return "", 0, "", false
	}
	after := rest[closing+1:]
	if len(after) < 2 || after[0] != '.' {
		return "", 0, "", false
	}
	return k[:open], n, after[1:], true
}

// Map groups name[i].field=value parameters by index i, in ascending index
// order; each group maps field to value. The name matches
// case-insensitively; field names keep their case. Malformed keys are
// skipped (Validate reports them).
func (p Params) Map(name string) []map[string]string {
	groups := map[int]map[string]string{}
	for k, vs := range p.Values {
		base, i, field, ok := splitMapKey(k)
		if !ok || len(vs) == 0 || !strings.EqualFold(base, name) {
			continue
		}
		g := groups[i]
		if g == nil {
			g = map[string]string{}
			groups[i] = g
		}
		g[field] = vs[0]
	}
	if len(groups) == 0 {
		return nil
	}
	idx := make([]int, 0, len(groups))
	for i := range groups {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	out := make([]map[string]string, 0, len(idx))
	for _, i := range idx {
		out = append(out, groups[i])
	}
	return out
}

// Page reads page and pagesize the way CloudStack's list commands do and
// returns the start offset and the limit (-1 for no limit).
//
// defaultPageSize is default.page.size: the page size when none is given
// and the largest one allowed; -1 (or any value below 1) means no limit.
// pagesize needs page and page needs pagesize, except pagesize=-1 ("all"),
// which must come without page. page and pagesize must otherwise be 1 or
// more.
func (p Params) Page(defaultPageSize int) (start, limit int, err *Error) {
	maxSize := defaultPageSize
	if maxSize < 1 {
		maxSize = -1
	}
	hasPage := strings.TrimSpace(p.String("page")) != ""
	hasSize := strings.TrimSpace(p.String("pagesize")) != ""
	page, e := p.Int("page", 0)
	if e != nil {
		return 0, 0, e
	}
	size, e := p.Int("pagesize", 0)
	if e != nil {
		return 0, 0, e
	}
	switch {
	case !hasPage && !hasSize:
		return 0, maxSize, nil
	case hasSize && size == -1:
		if hasPage {
			return 0, 0, ErrParam(`"page" parameter can't be specified when "pagesize" is -1 (unlimited)`)
		}
		return 0, -1, nil
	case hasSize && !hasPage:
		return 0, 0, ErrParam(`"page" parameter is required when "pagesize" is specified`)
	case hasPage && !hasSize:
		return 0, 0, ErrParam(`"pagesize" parameter is required when "page" is specified`)
	case size < 1:
		return 0, 0, ErrParam(`"pagesize" must be 1 or more, or -1 (unlimited) without "page"; got %d`, size)
	case page < 1:
		return 0, 0, ErrParam(`"page" must be 1 or more; got %d`, page)
	case maxSize > 0 && size > maxSize:
		return 0, 0, ErrParam(`"pagesize" %d exceeds the maximum page size %d (default.page.size)`, size, maxSize)
	}
	// page and size fit in 32 bits, so the product fits in 64; clamp it so
	// that it also fits an int on 32-bit platforms.
	off := int64(page-1) * int64(size)
	if off > math.MaxInt32 {
		off = math.MaxInt32
	}
	return int(off), size, nil
}

// Paginate returns items[start:start+limit], clamped to the slice; limit
// -1 (or any negative) means everything from start. It never panics.
func Paginate[T any](items []T, start, limit int) []T {
	if start < 0 {
		start = 0
	}
	if start >= len(items) {
		return items[:0:0]
	}
	end := len(items)
	if limit >= 0 && limit < end-start {
		end = start + limit
	}
	return items[start:end:end]
}
