package fsm

import (
	"fmt"
	"reflect"
	"slices"
	"sort"

	memdb "github.com/hashicorp/go-memdb"
)

// Object is a row of a registered table. Every object has a UUID and the
// Raft indexes at which it was created and last changed; embedding Indexes
// provides GetIndexes.
type Object interface {
	GetID() string
	GetIndexes() *Indexes
}

// GetIndexes returns the object's Raft indexes for the generic table code.
func (i *Indexes) GetIndexes() *Indexes { return i }

// Ref says that a table's rows point at rows of another table through one
// field. Deleting the target looks for rows that still use it: through a
// memdb index of the field (AllowMissing when optional), or, with Scan, by
// walking the table. An index costs every row of the table about 500 bytes
// on every server, so a reference whose targets are rarely deleted (a
// zone, an offering, a template, a pool) and that nothing else looks up is
// scanned instead: the rare delete pays one pass over the table.
type Ref struct {
	Index string // index on the referencing table
	// Scan walks Index whole (in its order) and matches the field on each
	// row, instead of looking the field up in Index. Give the index whose
	// order a field index would have had among one value's rows ("id" for
	// a field index, "create" for a createdBy one), so the first user
	// found, which the in-use error names, stays the same.
	Scan  bool
	Table string              // referenced table
	Value func(Object) string // the referenced ID, "" for none
	// Values, instead of Value, names several referenced IDs (a field
	// with a string-slice index, such as a VM's affinity groups).
	Values func(Object) []string
}

// ids returns the IDs a row points at through r.
func (r Ref) ids(o Object) []string {
	if r.Values != nil {
		return r.Values(o)
	}
	if id := r.Value(o); id != "" {
		return []string{id}
	}
	return nil
}

// UniqueKey is a set of fields no two rows of a table may share, such as a
// pod's name within its zone. Args returns the lookup arguments of Index for
// an object, or nil when the key does not apply to it.
type UniqueKey struct {
	Index string
	Args  func(Object) []any
	What  string // "name", "name in this zone": used in the conflict message
	// Holder, when set, replaces the lookup of Args in Index: it returns
	// a row other than the object that holds the object's key, or nil.
	Holder func(txn *memdb.Txn, o Object) (Object, error)
}

// holder returns a stored row other than obj that holds u's key of obj.
func (u UniqueKey) holder(txn *memdb.Txn, table string, obj Object) (Object, error) {
	if u.Holder != nil {
		return u.Holder(txn, obj)
	}
	args := u.Args(obj)
	if args == nil {
		return nil, nil
	}
	return otherRow(txn, table, u.Index, obj.GetID(), args...)
}

// otherRow returns the first row that index finds for args in table,
// other than the row id, or nil.
func otherRow(txn *memdb.Txn, table, index, id string, args ...any) (Object, error) {
	it, err := txn.Get(table, index, args...)
	if err != nil {
		return nil, err
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if other := raw.(Object); other.GetID() != id {
			return other, nil
		}
	}
	return nil, nil
}

// TableDef registers a table: its schema, its snapshot record type and the
// integrity rules the transaction applier enforces for it.
type TableDef struct {
	Name     string // table name, e.g. "pods"
	Noun     string // how errors name one row, e.g. "pod"
	Snapshot SnapshotType
	New      func() Object
	// Indexes besides "id" (which is added on field ID).
	Indexes map[string]*memdb.IndexSchema
	Unique  []UniqueKey
	Refs    []Ref
	// Label names a row in messages (its name); ID when nil.
	Label func(Object) string
	// Tally, when set, counts the table's rows per account as lists show
	// them: the account a row counts under, and false for a row lists
	// leave out (Store.Tally, tally.go).
	Tally func(Object) (account string, counted bool)
}

var tableDefs = map[string]*TableDef{}

// RegisterTable adds a table. Packages call it from init; a duplicate name or
// snapshot type is a programming error.
func RegisterTable(def TableDef) {
	if _, dup := tableDefs[def.Name]; dup {
		panic("fsm: table registered twice: " + def.Name)
	}
	for _, t := range snapshotTables {
		if t.typ == def.Snapshot {
			panic(fmt.Sprintf("fsm: snapshot type %d of %s already used by %s", def.Snapshot, def.Name, t.table))
		}
	}
	d := def
	tableDefs[d.Name] = &d
	snapshotTables = append(snapshotTables, snapshotTable{typ: d.Snapshot, table: d.Name, index: "id", alloc: func() any { return d.New() }})
}

// Table returns a registered table's definition.
func Table(name string) (*TableDef, bool) {
	d, ok := tableDefs[name]
	return d, ok
}

func (d *TableDef) schema() *memdb.TableSchema {
	row := reflect.TypeOf(d.New()).Elem()
	id := idIndex("ID")
	id.Indexer = resolveFields(id.Indexer, row)
	idx := map[string]*memdb.IndexSchema{"id": id}
	for name, s := range d.Indexes {
		c := *s // the definition is shared by every store: never write to it
		c.Name = name
		c.Indexer = resolveFields(c.Indexer, row)
		idx[name] = &c
	}
	return &memdb.TableSchema{Name: d.Name, Indexes: idx}
}

func (d *TableDef) label(o Object) string {
	if d.Label != nil {
		if l := d.Label(o); l != "" {
			return fmt.Sprintf("%s %s", d.Noun, l)
		}
	}
	return fmt.Sprintf("%s %s", d.Noun, o.GetID())
}

// checkUnique fails when another row shares one of obj's unique keys.
func (d *TableDef) checkUnique(txn *memdb.Txn, obj Object) error {
	for _, u := range d.Unique {
		other, err := u.holder(txn, d.Name, obj)
		if err != nil {
			return fmt.Errorf("%s unique check on %s: %w", d.Name, u.Index, err)
		}
		if other != nil {
			return stateErr(KindConflict, "a %s with this %s already exists (id %s)", d.Noun, u.What, other.GetID())
		}
	}
	return nil
}

// checkRefs fails when obj points at a row that does not exist.
func (d *TableDef) checkRefs(txn *memdb.Txn, obj Object) error {
	for _, r := range d.Refs {
		for _, id := range r.ids(obj) {
			target, err := txn.First(r.Table, "id", id)
			if err != nil {
				return fmt.Errorf("%s reference to %s: %w", d.Name, r.Table, err)
			}
			if target == nil {
				return stateErr(KindNotFound, "%s %s does not exist", nounOf(r.Table), id)
			}
		}
	}
	return nil
}

// checkNoUsers fails with KindInUse, naming the first user found, when any
// row of any table still points at the row id of table.
func checkNoUsers(txn *memdb.Txn, table, id string) error {
	names := make([]string, 0, len(tableDefs))
	for name := range tableDefs {
		names = append(names, name)
	}
	sort.Strings(names) // deterministic: the same message on every replica
	for _, name := range names {
		d := tableDefs[name]
		for _, r := range d.Refs {
			if r.Table != table {
				continue
			}
			raw, err := r.firstUser(txn, d.Name, id)
			if err != nil {
				return fmt.Errorf("%s in-use check on %s: %w", d.Name, r.Index, err)
			}
			if raw != nil {
				return stateErr(KindInUse, "cannot delete %s %s: %s still uses it; delete or move that first",
					nounOf(table), id, d.label(raw.(Object)))
			}
		}
	}
	return nil
}

// firstUser returns the first row of table that points at id through r.
func (r Ref) firstUser(txn *memdb.Txn, table, id string) (any, error) {
	if !r.Scan {
		return txn.First(table, r.Index, id)
	}
	it, err := txn.Get(table, r.Index)
	if err != nil {
		return nil, err
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if r.uses(raw.(Object), id) {
			return raw, nil
		}
	}
	return nil, nil
}

// uses reports whether o points at id through r, allocating nothing.
func (r Ref) uses(o Object, id string) bool {
	if r.Values != nil {
		return slices.Contains(r.Values(o), id)
	}
	return r.Value(o) == id
}

func nounOf(table string) string {
	if d, ok := tableDefs[table]; ok {
		return d.Noun
	}
	return table
}

// Get returns the row of a registered table with the given ID, or nil.
func Get[T any](s *Store, ws memdb.WatchSet, table, id string) (*T, error) {
	return first[T](s.db.Txn(false), ws, table, "id", id)
}

// List returns the rows of a table through one of its indexes (args select a
// value or prefix of it; none lists all rows in index order).
func List[T any](s *Store, ws memdb.WatchSet, table, index string, args ...any) ([]*T, error) {
	return all[T](s.db.Txn(false), ws, table, index, args...)
}

// Count returns how many rows of a table match an index lookup.
func (s *Store) Count(table, index string, args ...any) (int, error) {
	it, err := s.db.Txn(false).Get(table, index, args...)
	if err != nil {
		return 0, fmt.Errorf("%s count by %s: %w", table, index, err)
	}
	n := 0
	for raw := it.Next(); raw != nil; raw = it.Next() {
		n++
	}
	return n, nil
}

// Watch returns a channel closed at the next change of any row of table.
// A restore replaces the store without closing it: wait on Abandoned too.
func (s *Store) Watch(table string) (<-chan struct{}, error) {
	it, err := s.db.Txn(false).Get(table, "id")
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", table, err)
	}
	return it.WatchCh(), nil
}

// Abandoned is closed when a restore replaces this store; from then on
// its watches never fire, and waiters should read the FSM's new state.
func (s *Store) Abandoned() <-chan struct{} { return s.abandoned }

// Owned is implemented by objects that belong to an account; objects
// without it (zones, hosts, offerings) belong to the cloud's operators.
type Owned interface {
	Owner() (accountID, domainID string)
}

// GetObject returns any registered table's row by ID, or nil.
func (s *Store) GetObject(table, id string) (Object, error) {
	raw, err := s.db.Txn(false).First(table, "id", id)
	if err != nil {
		return nil, fmt.Errorf("%s lookup %s: %w", table, id, err)
	}
	if raw == nil {
		return nil, nil
	}
	return raw.(Object), nil
}
