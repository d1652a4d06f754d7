package fsm

import (
	"encoding/binary"
	"reflect"
	"strings"

	memdb "github.com/hashicorp/go-memdb"
)

// memdb's field indexers find their field by name on every call
// (reflect.Value.FieldByName, a walk of the struct's fields) and build a
// string key with two allocations. Every insert and delete computes every
// index of its row, so at 100,000 VMs that lookup was a tenth of a
// snapshot restore's insert time and as much of each commit's. The
// indexers below are memdb's own with the field resolved once, when a
// table's schema is built from its row type, and one allocation per key.
// Lookups (FromArgs, PrefixFromArgs) are memdb's, so the keys are the
// same bytes.

// stringField is memdb.StringFieldIndex with its field resolved.
type stringField struct {
	*memdb.StringFieldIndex
	index []int
}

// FromObject is memdb.StringFieldIndex.FromObject for a string field.
func (s *stringField) FromObject(obj any) (bool, []byte, error) {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return s.StringFieldIndex.FromObject(obj)
	}
	val := v.Elem().FieldByIndex(s.index).String()
	if val == "" {
		return false, nil, nil
	}
	if s.Lowercase {
		val = strings.ToLower(val)
	}
	key := make([]byte, len(val)+1) // NUL-terminated, as memdb's keys are
	copy(key, val)
	return true, key, nil
}

// uint64Field is memdb.UintFieldIndex with its uint64 field resolved.
type uint64Field struct {
	*memdb.UintFieldIndex
	index []int
}

// FromObject is memdb.UintFieldIndex.FromObject for a uint64 field.
func (u *uint64Field) FromObject(obj any) (bool, []byte, error) {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return u.UintFieldIndex.FromObject(obj)
	}
	return true, binary.BigEndian.AppendUint64(make([]byte, 0, 8), v.Elem().FieldByIndex(u.index).Uint()), nil
}

// resolveFields returns ix with every memdb string and uint64 field
// indexer in it (at the top or inside a compound index) replaced by one
// resolved on row, a struct type. An indexer it cannot resolve (a field
// of another kind, or one row lacks) is kept as it is, so memdb reports
// the error it always did.
func resolveFields(ix memdb.Indexer, row reflect.Type) memdb.Indexer {
	switch x := ix.(type) {
	case *memdb.StringFieldIndex:
		if index, ok := fieldOfKind(row, x.Field, reflect.String); ok {
			return &stringField{StringFieldIndex: x, index: index}
		}
	case *memdb.UintFieldIndex:
		if index, ok := fieldOfKind(row, x.Field, reflect.Uint64); ok {
			return &uint64Field{UintFieldIndex: x, index: index}
		}
	case *memdb.CompoundIndex:
		c := *x
		c.Indexes = make([]memdb.Indexer, len(x.Indexes))
		for i, sub := range x.Indexes {
			c.Indexes[i] = resolveFields(sub, row)
		}
		return &c
	}
	return ix
}

// fieldOfKind returns the index path of row's field name when the field
// is of kind k and reached without going through a pointer (an embedded
// *T could be nil, which FieldByIndex cannot step through).
func fieldOfKind(row reflect.Type, name string, k reflect.Kind) ([]int, bool) {
	f, ok := row.FieldByName(name)
	if !ok || f.Type.Kind() != k {
		return nil, false
	}
	t := row
	for _, i := range f.Index[:len(f.Index)-1] {
		if t = t.Field(i).Type; t.Kind() != reflect.Struct {
			return nil, false
		}
	}
	return f.Index, true
}
