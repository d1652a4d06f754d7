package api

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func mustQuery(t *testing.T, q string) url.Values {
	t.Helper()
	v, err := url.ParseQuery(q)
	if err != nil {
		t.Fatalf("ParseQuery(%q): %v", q, err)
	}
	return v
}

var validateSpecs = []ParamSpec{
	{Name: "name", Type: ParamString, Required: true, Length: 10},
	{Name: "id", Type: ParamUUID},
	{Name: "count", Type: ParamInteger},
	{Name: "small", Type: ParamShort},
	{Name: "size", Type: ParamLong},
	{Name: "flag", Type: ParamBoolean},
	{Name: "when", Type: ParamDate},
	{Name: "ids", Type: ParamList},
	{Name: "tags", Type: ParamMap},
	{Name: "free", Type: ParamString},
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		q    string
		code int    // 0 = valid
		text string // exact text when code != 0
	}{
		{"minimal", "name=web", 0, ""},
		{"everything valid", "name=web&id=0B1F8C1E-2f4a-4d7e-9a55-1c2d3e4f5a6b&count=-5&small=32767&size=9223372036854775807" +
			"&flag=TRUE&when=2024-02-29&ids=a,b&tags[0].key=k&tags[0].value=v&free=" + strings.Repeat("x", 5000), 0, ""},
		{"date with time", "name=web&when=2024-02-29+23:59:59", 0, ""},
		{"uuid placeholder -1", "name=web&id=-1", 0, ""},
		{"unknown params ignored", "name=web&bogus=%25&other[0]=x&tagsx=1", 0, ""},
		{"empty optional treated as absent", "name=web&count=&flag=&id=", 0, ""},
		{"name matched case-insensitively", "NAME=web&Count=3", 0, ""},
		{"missing required", "count=1", 431, "Unable to execute API command creatething due to missing parameter name"},
		{"empty required", "name=", 431, "Unable to execute API command creatething due to missing parameter name"},
		{"bad integer", "name=web&count=ten", 431, "Unable to execute API command creatething due to invalid value ten for parameter count"},
		{"integer overflow", "name=web&count=2147483648", 431, "Unable to execute API command creatething due to invalid value 2147483648 for parameter count"},
		{"short overflow", "name=web&small=40000", 431, "Unable to execute API command creatething due to invalid value 40000 for parameter small"},
		{"long overflow", "name=web&size=9223372036854775808", 431, "Unable to execute API command creatething due to invalid value 9223372036854775808 for parameter size"},
		{"bad boolean", "name=web&flag=yes", 431, "Unable to execute API command creatething due to invalid value yes for parameter flag"},
		{"bad date", "name=web&when=29/02/2024", 431, "Unable to execute API command creatething due to invalid value 29/02/2024 for parameter when"},
		{"impossible date", "name=web&when=2023-02-29", 431, "Unable to execute API command creatething due to invalid value 2023-02-29 for parameter when"},
		{"bad uuid", "name=web&id=not-a-uuid", 431, "Unable to execute API command creatething due to invalid value. Invalid parameter id value=not-a-uuid due to incorrect long value format, or entity does not exist or due to incorrect parameter annotation for the field in api cmd class."},
		{"uuid without dashes", "name=web&id=0b1f8c1e2f4a4d7e9a551c2d3e4f5a6b", 431, "Unable to execute API command creatething due to invalid value. Invalid parameter id value=0b1f8c1e2f4a4d7e9a551c2d3e4f5a6b due to incorrect long value format, or entity does not exist or due to incorrect parameter annotation for the field in api cmd class."},
		{"over-long string", "name=abcdefghijk", 431, "Unable to execute API command creatething due to invalid value. The value of parameter name is 11 characters long; at most 10 are allowed"},
		{"length counts characters", "name=" + url.QueryEscape("éééééééééé"), 0, ""},
		{"malformed map index", "name=web&tags[x].key=k", 430, "Unable to decode parameter tags[x].key; send a map as tags[index].field=value, e.g. tags[0].key=color"},
		{"map without field", "name=web&tags[0]=k", 430, "Unable to decode parameter tags[0]; send a map as tags[index].field=value, e.g. tags[0].key=color"},
		{"first failure in spec order", "count=x&flag=y", 431, "Unable to execute API command creatething due to missing parameter name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := Params{Cmd: "createThing", Values: mustQuery(t, tc.q)}
			e := p.Validate(validateSpecs)
			if tc.code == 0 {
				if e != nil {
					t.Fatalf("rejected: %v", e)
				}
				return
			}
			if e == nil {
				t.Fatalf("accepted, want %d %q", tc.code, tc.text)
			}
			if e.Code != tc.code || e.Text != tc.text {
				t.Fatalf("got %d %q\nwant %d %q", e.Code, e.Text, tc.code, tc.text)
			}
		})
	}
}

func TestValidateRequiredMap(t *testing.T) {
	specs := []ParamSpec{{Name: "details", Type: ParamMap, Required: true}}
	p := Params{Cmd: "updateThing", Values: mustQuery(t, "id=1")}
	if e := p.Validate(specs); e == nil || e.Text != "Unable to execute API command updatething due to missing parameter details" {
		t.Fatalf("missing map: %v", e)
	}
	p = Params{Cmd: "updateThing", Values: mustQuery(t, "details[0].color=blue")}
	if e := p.Validate(specs); e != nil {
		t.Fatalf("present map: %v", e)
	}
}

func TestHasAndString(t *testing.T) {
	p := Params{Cmd: "x", Values: mustQuery(t, "a=1&a=2&empty=&Mixed=m&tags[3].key=k")}
	cases := []struct {
		name string
		has  bool
		str  string
	}{
		{"a", true, "1"}, {"empty", true, ""}, {"mixed", true, "m"}, {"MIXED", true, "m"},
		{"missing", false, ""}, {"tags", true, ""},
	}
	for _, tc := range cases {
		if got := p.Has(tc.name); got != tc.has {
			t.Errorf("Has(%q) = %v", tc.name, got)
		}
		if got := p.String(tc.name); got != tc.str {
			t.Errorf("String(%q) = %q", tc.name, got)
		}
	}
	var zero Params
	if zero.Has("a") || zero.String("a") != "" || zero.List("a") != nil || zero.Map("a") != nil {
		t.Fatalf("zero Params misbehaves")
	}
}

func TestTypedGetters(t *testing.T) {
	p := Params{Cmd: "listThings", Values: mustQuery(t, "n=42&neg=-7&big=5000000000&bad=4x&t=True&f=false&b=maybe&blank=")}
	if v, e := p.Int("n", 1); v != 42 || e != nil {
		t.Errorf("Int(n) = %d, %v", v, e)
	}
	if v, e := p.Int("neg", 1); v != -7 || e != nil {
		t.Errorf("Int(neg) = %d, %v", v, e)
	}
	if v, e := p.Int("absent", 9); v != 9 || e != nil {
		t.Errorf("Int(absent) = %d, %v", v, e)
	}
	if v, e := p.Int("blank", 9); v != 9 || e != nil {
		t.Errorf("Int(blank) = %d, %v", v, e)
	}
	if _, e := p.Int("big", 0); e == nil || e.Text != "Unable to execute API command listthings due to invalid value 5000000000 for parameter big" {
		t.Errorf("Int(big) error = %v", e)
	}
	if _, e := p.Int("bad", 0); e == nil || e.Code != 431 || e.Text != "Unable to execute API command listthings due to invalid value 4x for parameter bad" {
		t.Errorf("Int(bad) error = %v", e)
	}
	if v, e := p.Int64("big", 0); v != 5000000000 || e != nil {
		t.Errorf("Int64(big) = %d, %v", v, e)
	}
	if _, e := p.Int64("bad", 0); e == nil || e.Code != 431 {
		t.Errorf("Int64(bad) error = %v", e)
	}
	if v, e := p.Bool("t", false); !v || e != nil {
		t.Errorf("Bool(t) = %v, %v", v, e)
	}
	if v, e := p.Bool("f", true); v || e != nil {
		t.Errorf("Bool(f) = %v, %v", v, e)
	}
	if v, e := p.Bool("absent", true); !v || e != nil {
		t.Errorf("Bool(absent) = %v, %v", v, e)
	}
	if _, e := p.Bool("b", false); e == nil || e.Text != "Unable to execute API command listthings due to invalid value maybe for parameter b" {
		t.Errorf("Bool(b) error = %v", e)
	}
}

func TestList(t *testing.T) {
	p := Params{Values: mustQuery(t, "ids="+url.QueryEscape(" a, b ,,c ,")+"&one=x&empty=&commas=,,,")}
	cases := map[string][]string{
		"ids": {"a", "b", "c"}, "one": {"x"}, "empty": nil, "commas": nil, "absent": nil,
	}
	for name, want := range cases {
		if got := p.List(name); !reflect.DeepEqual(got, want) {
			t.Errorf("List(%q) = %#v, want %#v", name, got, want)
		}
	}
}

func TestMap(t *testing.T) {
	// tags[1] arrives before tags[0]; groups come out by index.
	q := "tags[1].key=role&tags[1].value=db&tags[0].key=env&tags[0].value=prod&tags[10].key=z&tags[10].value=last" +
		"&details[0].cpuNumber=2&details[0].memory=512&Details[2].extra=yes" +
		"&tags[x].key=bad&tags[0]=nofield&tagsfoo[0].key=other&iptonetworklist[0].ip=10.0.0.1&iptonetworklist[0].networkid=n1"
	p := Params{Values: mustQuery(t, q)}
	wantTags := []map[string]string{
		{"key": "env", "value": "prod"},
		{"key": "role", "value": "db"},
		{"key": "z", "value": "last"},
	}
	if got := p.Map("tags"); !reflect.DeepEqual(got, wantTags) {
		t.Fatalf("Map(tags) = %v\nwant %v", got, wantTags)
	}
	wantDetails := []map[string]string{{"cpuNumber": "2", "memory": "512"}, {"extra": "yes"}}
	if got := p.Map("details"); !reflect.DeepEqual(got, wantDetails) {
		t.Fatalf("Map(details) = %v\nwant %v", got, wantDetails)
	}
	if got := p.Map("iptonetworklist"); !reflect.DeepEqual(got, []map[string]string{{"ip": "10.0.0.1", "networkid": "n1"}}) {
		t.Fatalf("Map(iptonetworklist) = %v", got)
	}
	if got := p.Map("absent"); got != nil {
		t.Fatalf("Map(absent) = %v", got)
	}
}

func TestSplitMapKeyNeverPanics(t *testing.T) {
	for _, k := range []string{"", "[", "]", "[]", "a[", "a[]", "a[0", "a[0]", "a[0].", "a[0]x", "[0].k", "a[0][1].k",
		"a[0]].k", "a[-1].k", "a[99999999999999999999].k", "a[1].k.l", "a]0[.k"} {
		_, _, _, ok := splitMapKey(k)
		if ok && k != "a[1].k.l" {
			t.Errorf("splitMapKey(%q) accepted", k)
		}
	}
	if name, i, field, ok := splitMapKey("a[1].k.l"); !ok || name != "a" || i != 1 || field != "k.l" {
		t.Errorf("splitMapKey(a[1].k.l) = %q %d %q %v", name, i, field, ok)
	}
}

func TestPage(t *testing.T) {
	cases := []struct {
		name       string
		q          string
		def        int
		start, lim int
		text       string // error text; "" = no error
	}{
		{"neither gives the default", "", 500, 0, 500, ""},
		{"neither, unlimited default", "", -1, 0, -1, ""},
		{"first page", "page=1&pagesize=20", 500, 0, 20, ""},
		{"third page", "page=3&pagesize=20", 500, 40, 20, ""},
		{"pagesize at the cap", "page=2&pagesize=500", 500, 500, 500, ""},
		{"no cap when default is -1", "page=2&pagesize=100000", -1, 100000, 100000, ""},
		{"pagesize -1 alone is unlimited", "pagesize=-1", 500, 0, -1, ""},
		{"huge page clamps instead of overflowing", "page=2147483647&pagesize=2147483647", -1, 2147483647, 2147483647, ""},
		{"pagesize without page", "pagesize=20", 500, 0, 0, `"page" parameter is required when "pagesize" is specified`},
		{"page without pagesize", "page=2", 500, 0, 0, `"pagesize" parameter is required when "page" is specified`},
		{"pagesize -1 with page", "page=1&pagesize=-1", 500, 0, 0, `"page" parameter can't be specified when "pagesize" is -1 (unlimited)`},
		{"pagesize over the cap", "page=1&pagesize=501", 500, 0, 0, `"pagesize" 501 exceeds the maximum page size 500 (default.page.size)`},
		{"page zero", "page=0&pagesize=10", 500, 0, 0, `"page" must be 1 or more; got 0`},
		{"negative page", "page=-3&pagesize=10", 500, 0, 0, `"page" must be 1 or more; got -3`},
		{"pagesize zero", "page=1&pagesize=0", 500, 0, 0, `"pagesize" must be 1 or more, or -1 (unlimited) without "page"; got 0`},
		{"pagesize -2", "page=1&pagesize=-2", 500, 0, 0, `"pagesize" must be 1 or more, or -1 (unlimited) without "page"; got -2`},
		{"bad page", "page=two&pagesize=10", 500, 0, 0, "Unable to execute API command listthings due to invalid value two for parameter page"},
		{"bad pagesize", "page=1&pagesize=1e3", 500, 0, 0, "Unable to execute API command listthings due to invalid value 1e3 for parameter pagesize"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := Params{Cmd: "listThings", Values: mustQuery(t, tc.q)}
			start, lim, e := p.Page(tc.def)
			if tc.text != "" {
				if e == nil || e.Code != 431 || e.Text != tc.text {
					t.Fatalf("got %v, want 431 %q", e, tc.text)
				}
				return
			}
			if e != nil || start != tc.start || lim != tc.lim {
				t.Fatalf("Page = %d, %d, %v; want %d, %d", start, lim, e, tc.start, tc.lim)
			}
		})
	}
}

func TestPaginate(t *testing.T) {
	items := []int{0, 1, 2, 3, 4}
	cases := []struct {
		start, limit int
		want         []int
	}{
		{0, -1, []int{0, 1, 2, 3, 4}},
		{0, 2, []int{0, 1}},
		{2, 2, []int{2, 3}},
		{4, 2, []int{4}},
		{3, 100, []int{3, 4}},
		{5, 2, []int{}},   // page beyond the end
		{100, 2, []int{}}, // far beyond
		{-4, 1, []int{0}}, // negative start clamps
		{1, 0, []int{}},
		{2, -5, []int{2, 3, 4}},
	}
	for _, tc := range cases {
		got := Paginate(items, tc.start, tc.limit)
		if len(got) != len(tc.want) || (len(got) > 0 && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("Paginate(%d, %d) = %v, want %v", tc.start, tc.limit, got, tc.want)
		}
	}
	// The page cannot be appended into the caller's slice.
	page := Paginate(items, 0, 2)
	_ = append(page, 99)
	if items[2] != 2 {
		t.Fatalf("append to a page overwrote the source")
	}
	if got := Paginate[string](nil, 0, 10); len(got) != 0 {
		t.Fatalf("nil items = %v", got)
	}
}

func TestIsUUIDAndParseDate(t *testing.T) {
	for s, want := range map[string]bool{
		"0b1f8c1e-2f4a-4d7e-9a55-1c2d3e4f5a6b":   true,
		"0B1F8C1E-2F4A-4D7E-9A55-1C2D3E4F5A6B":   true,
		"0b1f8c1e-2f4a-4d7e-9a55-1c2d3e4f5a6":    false,
		"0b1f8c1e-2f4a-4d7e-9a55-1c2d3e4f5a6bb":  false,
		"0b1f8c1e_2f4a-4d7e-9a55-1c2d3e4f5a6b":   false,
		"0b1f8c1e-2f4a-4d7e-9a55-1c2d3e4f5a6g":   false,
		"{0b1f8c1e-2f4a-4d7e-9a55-1c2d3e4f5a6b}": false,
		"":                                       false,
	} {
		if got := IsUUID(s); got != want {
			t.Errorf("IsUUID(%q) = %v", s, got)
		}
	}
	if d, err := ParseDate("2024-05-06 07:08:09"); err != nil || d.Hour() != 7 || d.Day() != 6 {
		t.Errorf("ParseDate with time = %v, %v", d, err)
	}
	if _, err := ParseDate("2024-05-06T07:08:09"); err == nil {
		t.Errorf("ParseDate accepted an ISO time")
	}
}

// FuzzRequestParsing feeds arbitrary query strings through everything that
// reads request parameters; none of it may panic.
func FuzzRequestParsing(f *testing.F) {
	for _, seed := range []string{"", "name=web&tags[0].key=k", "page=2&pagesize=-1", "a[0]].k=1&[=]",
		"signatureversion=3&expires=2025-01-01T12:00:00Z&signature=x", "response=json&count=99999999999999999999"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, q string) {
		v, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		p := Params{Cmd: "fuzzThing", Values: v}
		_ = p.Validate(validateSpecs)
		_ = p.Map("tags")
		_ = p.List("ids")
		if start, limit, e := p.Page(500); e == nil {
			_ = Paginate([]int{1, 2, 3}, start, limit)
		}
		_ = Verify(v, "s", signNow)
		_ = CanonicalString(v, false)
		_ = ResponseFormat(v)
	})
}
