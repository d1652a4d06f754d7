package fsm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
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
			requireDecodedLikeEncodingJSON(t, got, want, body, seed)
		})
	}
}

// requireDecodedLikeEncodingJSON fails unless got, what a decoder made of
// body, equals want, what encoding/json made of it, and encodes back to
// body itself (so no field was left out by both decoders); and unless the
// filled value (seed counts its fields) held an escaped string.
func requireDecodedLikeEncodingJSON(t *testing.T, got, want any, body []byte, seed int) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decodes unlike encoding/json:\n got  %+v\n want %+v\n from %s", got, want, body)
	}
	again, _ := json.Marshal(got)
	if string(again) != string(body) {
		t.Fatalf("changed in a round trip:\n wrote %s\n got   %s", body, again)
	}
	if !strings.Contains(string(body), `\u003c\u0026\u003e`) && seed > 1 {
		t.Fatalf("the filled value has no escaped string; the test does not test escapes: %s", body)
	}
}

// snapshotOfVMs writes a snapshot stream by hand: the header, then n VM
// records, with body(i) in place of the i-th record when it returns one.
func snapshotOfVMs(t *testing.T, n int, body func(i int) []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := bufioWriter(&buf)
	w.WriteString(snapshotMagic)
	hdr, _ := json.Marshal(SnapshotHeader{FormatVersion: SnapshotFormatVersion, CommandVersion: CommandVersion, AppliedIndex: 7})
	_ = writeFrame(w, hdr)
	for i := range n {
		b := body(i)
		if b == nil {
			vm := testVM(fmt.Sprintf("vm-%05d", i), fmt.Sprintf("web%d", i), fmt.Sprintf("10.2.%d.%d", i/250, i%250+1))
			vm.CreateIndex = uint64(i + 1)
			b, _ = json.Marshal(vm)
		}
		_ = w.WriteByte(byte(VMSnapshot))
		_ = writeFrame(w, b)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestRestoreOfManyBatches restores a stream of many more records than
// the decoders hold at once: every row arrives, in every index, with the
// tally counted once per row; a record that does not decode in the middle
// of the stream fails the restore, naming its table, and leaves no
// goroutine of the restore running.
func TestRestoreOfManyBatches(t *testing.T) {
	const n = 20*restoreBatchSize + 17
	st, hdr, err := ReadSnapshot(bytes.NewReader(snapshotOfVMs(t, n, func(int) []byte { return nil })))
	if err != nil {
		t.Fatal(err)
	}
	if hdr.AppliedIndex != 7 {
		t.Fatalf("applied index %d, want 7", hdr.AppliedIndex)
	}
	if c, _ := st.Count(TableVMs, "id"); c != n {
		t.Fatalf("restored %d VMs, want %d", c, n)
	}
	if got, _ := st.Tally(TableVMs, "a-eng"); got != n {
		t.Fatalf("tally of a-eng = %d, want %d", got, n)
	}
	last := fmt.Sprintf("vm-%05d", n-1)
	if raw, err := st.db.Txn(false).First(TableVMs, "ip", "z-1", fmt.Sprintf("10.2.%d.%d", (n-1)/250, (n-1)%250+1)); err != nil || raw == nil || raw.(*VM).ID != last {
		t.Fatalf("ip index: %v, %v; want %s", raw, err, last)
	}

	before := runtime.NumGoroutine()
	bad := snapshotOfVMs(t, n, func(i int) []byte {
		if i == n/2 {
			return []byte(`{"id":"vm-bad","cpu_number":"two"}`)
		}
		return nil
	})
	if _, _, err := ReadSnapshot(bytes.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "decode vms record") {
		t.Fatalf("restore of a stream with a bad record: %v, want a decode error naming the vms table", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	if g := runtime.NumGoroutine(); g > before {
		t.Fatalf("%d goroutines after the failed restore, %d before", g, before)
	}
	// A stream cut off inside a record fails too.
	if _, _, err := ReadSnapshot(bytes.NewReader(bad[:len(bad)-3])); err == nil {
		t.Fatal("a truncated stream restored")
	}
}
