package fsm

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fillRow sets every exported field of the struct v points at, and of the
// structs, slices, maps and pointers inside it, to a value other than its
// zero value, distinct per field (seed), so a field a decoder drops, or
// puts in another field's place, shows.
func fillRow(t *testing.T, v reflect.Value, seed *int) {
	t.Helper()
	*seed++
	n := *seed
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fillRow(t, v.Elem(), seed)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Date(2026, 12, 3, 10, 0, n%60, n*1000+7, time.UTC)))
			return
		}
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() || f.Tag.Get("json") == "-" {
				continue
			}
			fillRow(t, v.Field(i), seed)
		}
	case reflect.String:
		// Capitals (for caseless indexes), characters encoding/json
		// escapes, and a multi-byte one.
		v.SetString(fmt.Sprintf("S%d <&> \"q\" É\t", n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(n))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(n))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(n) + 0.5)
	case reflect.Slice:
		if v.Type() == reflect.TypeOf(json.RawMessage(nil)) {
			v.SetBytes([]byte(fmt.Sprintf(`{"k":%d,"s":"v<&>"}`, n)))
			return
		}
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fillRow(t, s.Index(i), seed)
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for range 2 {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fillRow(t, k, seed)
			fillRow(t, e, seed)
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	default:
		t.Fatalf("fillRow: no value for a %s field: teach the test this kind", v.Type())
	}
}

// TestSnapshotRecordsKeepEveryField writes one row of every snapshot table,
// with every field set, as WriteSnapshot writes it, and decodes it as
// ReadSnapshot does: the row must come back equal, and equal to what
// encoding/json itself decodes. This is what allows restore to use a
// different JSON decoder from the one that wrote the records.
func TestSnapshotRecordsKeepEveryField(t *testing.T) {
	for _, st := range snapshotTables {
		t.Run(st.table, func(t *testing.T) {
			row := st.alloc()
			seed := 0
			fillRow(t, reflect.ValueOf(row).Elem(), &seed)
			body, err := json.Marshal(row)
			if err != nil {
				t.Fatal(err)
			}
			_, got, err := decodeRecord(st.typ, body)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			want := st.alloc()
			if err := json.Unmarshal(body, want); err != nil {
				t.Fatal(err)
			}
			internRow(want)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("restore decodes a row unlike encoding/json:\n got  %+v\n want %+v\n from %s", got, want, body)
			}
			// And what encoding/json decodes is the row itself, so no
			// field was left out of the comparison by both decoders.
			again, _ := json.Marshal(got)
			if string(again) != string(body) {
				t.Fatalf("row changed in a round trip:\n wrote %s\n got   %s", body, again)
			}
			if !strings.Contains(string(body), `\u003c\u0026\u003e`) && seed > 1 {
				t.Fatalf("the filled row has no escaped string; the test does not test escapes: %s", body)
			}
		})
	}
}
