package fsm

import (
	"container/heap"
	"encoding/binary"
	"fmt"
	"iter"
	"reflect"
	"strings"

	memdb "github.com/hashicorp/go-memdb"
)

// Reads that scale: list commands walk an index and stop, or count, as
// they go, instead of copying a table into a slice. Every iterator here
// reads one memdb snapshot (the state when it was made), allocates nothing
// per row and hands out the stored rows themselves, which callers must not
// change.

// Rows returns the rows of table that match an index lookup, in index
// order (args select a value or prefix of it; none walks every row).
func Rows[T any](s *Store, ws memdb.WatchSet, table, index string, args ...any) (iter.Seq[*T], error) {
	it, err := s.db.Txn(false).Get(table, index, args...)
	if err != nil {
		return nil, fmt.Errorf("%s scan by %s: %w", table, index, err)
	}
	ws.Add(it.WatchCh())
	return seqOf[T](it), nil
}

// RowsReverse is Rows in reverse index order: newest first on an index
// that orders by creation.
func RowsReverse[T any](s *Store, ws memdb.WatchSet, table, index string, args ...any) (iter.Seq[*T], error) {
	it, err := s.db.Txn(false).GetReverse(table, index, args...)
	if err != nil {
		return nil, fmt.Errorf("%s reverse scan by %s: %w", table, index, err)
	}
	ws.Add(it.WatchCh())
	return seqOf[T](it), nil
}

// Each calls fn for every row Rows would return, until fn returns false.
func Each[T any](s *Store, ws memdb.WatchSet, table, index string, args []any, fn func(*T) bool) error {
	rows, err := Rows[T](s, ws, table, index, args...)
	if err != nil {
		return err
	}
	for row := range rows {
		if !fn(row) {
			break
		}
	}
	return nil
}

// First returns the first row of an index lookup, or nil.
func First[T any](s *Store, ws memdb.WatchSet, table, index string, args ...any) (*T, error) {
	return first[T](s.db.Txn(false), ws, table, index, args...)
}

func seqOf[T any](it memdb.ResultIterator) iter.Seq[*T] {
	return func(yield func(*T) bool) {
		for raw := it.Next(); raw != nil; raw = it.Next() {
			if !yield(raw.(*T)) {
				return
			}
		}
	}
}

// MergeRows walks several lookups of one index that orders by creation
// (see createdBy) as one stream in creation order: oldest first, rows
// created at the same Raft index by ID, as the "create" index orders the
// whole table. It serves lists scoped to several accounts (a domain and
// its subdomains) without walking the other accounts' rows. Each element
// of lookups is the argument list of one lookup. The walk reads one
// snapshot of the store. Reverse walks newest first.
func MergeRows[T any](s *Store, table, index string, lookups [][]any, reverse bool) (iter.Seq[*T], error) {
	txn := s.db.Txn(false)
	h := mergeHeap{heads: make([]mergeHead, 0, len(lookups)), reverse: reverse}
	for _, args := range lookups {
		get := txn.Get
		if reverse {
			get = txn.GetReverse
		}
		it, err := get(table, index, args...)
		if err != nil {
			return nil, fmt.Errorf("%s scan by %s: %w", table, index, err)
		}
		if raw := it.Next(); raw != nil {
			h.heads = append(h.heads, mergeHead{row: raw.(Object), it: it})
		}
	}
	heap.Init(&h)
	return func(yield func(*T) bool) {
		for len(h.heads) > 0 {
			top := &h.heads[0]
			row := top.row
			if raw := top.it.Next(); raw != nil {
				top.row = raw.(Object)
				heap.Fix(&h, 0)
			} else {
				heap.Pop(&h)
			}
			if !yield(any(row).(*T)) {
				return
			}
		}
	}, nil
}

type mergeHead struct {
	row Object
	it  memdb.ResultIterator
}

// mergeHeap orders the heads of MergeRows' lookups by creation.
type mergeHeap struct {
	heads   []mergeHead
	reverse bool
}

func (h *mergeHeap) Len() int { return len(h.heads) }
func (h *mergeHeap) Less(i, j int) bool {
	if h.reverse {
		return CreatedBefore(h.heads[j].row, h.heads[i].row)
	}
	return CreatedBefore(h.heads[i].row, h.heads[j].row)
}
func (h *mergeHeap) Swap(i, j int) { h.heads[i], h.heads[j] = h.heads[j], h.heads[i] }
func (h *mergeHeap) Push(x any)    { h.heads = append(h.heads, x.(mergeHead)) }
func (h *mergeHeap) Pop() any {
	x := h.heads[len(h.heads)-1]
	h.heads = h.heads[:len(h.heads)-1]
	return x
}

// CreatedBefore reports whether a was created before b in the order of the
// "create" index (Raft index, then ID): the order lists show rows in.
func CreatedBefore(a, b Object) bool {
	ai, bi := a.GetIndexes().CreateIndex, b.GetIndexes().CreateIndex
	if ai != bi {
		return ai < bi
	}
	return a.GetID() < b.GetID()
}

// createdBy indexes rows by a string field and then in creation order, so
// that a lookup by the field alone (one argument) walks that field's rows
// oldest first, the order lists show. Optional fields (AllowMissing) skip
// rows where the field is empty; a lowercase index folds the field and
// the lookup argument to lower case.
func createdBy(field string, allowMissing, lower bool) *memdb.IndexSchema {
	return &memdb.IndexSchema{AllowMissing: allowMissing, Indexer: &fieldCreateIndex{field: field, lower: lower}}
}

// fieldCreateIndex is createdBy's indexer: the field, a zero byte, then
// the row's CreateIndex big-endian (memdb appends the ID to keys of a
// non-unique index, which breaks ties).
type fieldCreateIndex struct {
	field string
	lower bool
}

func (x *fieldCreateIndex) FromObject(obj any) (bool, []byte, error) {
	o, ok := obj.(Object)
	if !ok {
		return false, nil, fmt.Errorf("%T is not a table row", obj)
	}
	fv := reflect.Indirect(reflect.ValueOf(obj)).FieldByName(x.field)
	if !fv.IsValid() || fv.Kind() != reflect.String {
		return false, nil, fmt.Errorf("field %q of %T is not a string", x.field, obj)
	}
	v := fv.String()
	if v == "" {
		return false, nil, nil
	}
	if x.lower {
		v = strings.ToLower(v)
	}
	key := make([]byte, 0, len(v)+9)
	key = append(append(key, v...), 0)
	return true, binary.BigEndian.AppendUint64(key, o.GetIndexes().CreateIndex), nil
}

func (x *fieldCreateIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("index on %s takes one argument, got %d", x.field, len(args))
	}
	v, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("index on %s: argument must be a string: %#v", x.field, args[0])
	}
	if x.lower {
		v = strings.ToLower(v)
	}
	return append([]byte(v), 0), nil
}
