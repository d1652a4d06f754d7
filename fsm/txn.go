package fsm

import (
	"encoding/json"
	"fmt"

	memdb "github.com/hashicorp/go-memdb"
)

// Verbs of a transaction operation.
const (
	VerbCreate = "create" // the row must not exist yet
	VerbUpdate = "update" // the row must exist (at IfIndex when set)
	VerbDelete = "delete" // the row must exist (at IfIndex when set) and be unused
	VerbCheck  = "check"  // the row must exist (at IfIndex when set); nothing changes
)

// TxnOp is one step of a TxnRequest on a registered table.
type TxnOp struct {
	Verb  string          `json:"verb"`
	Table string          `json:"table"`
	ID    string          `json:"id"`
	Obj   json.RawMessage `json:"obj,omitempty"` // the whole row, for create and update
	// IfIndex, when not zero, is the ModifyIndex the proposer read: the op
	// fails with ErrStale if the row changed since (compare-and-set).
	IfIndex uint64 `json:"if_index,omitempty"`
	// IfExists makes a delete of a missing row a no-op instead of an error.
	IfExists bool `json:"if_exists,omitempty"`
	// Amounts are what a reserve op adds (see reserve.go).
	Amounts map[string]int64 `json:"amounts,omitempty"`
}

// TxnRequest applies its operations atomically and in order: each one sees
// the rows the ones before it wrote, and if any fails nothing changes. The
// integrity rules of each table (unique keys, references, in-use) are
// checked here, on every replica alike, so two racing proposers can never
// both win.
type TxnRequest struct {
	Ops []TxnOp `json:"ops"`
}

// Op helpers build operations from objects; they panic only on objects that
// cannot be encoded to JSON, which is a programming error.

// Create returns an op that inserts obj into table.
func Create(table string, obj Object) TxnOp {
	return TxnOp{Verb: VerbCreate, Table: table, ID: obj.GetID(), Obj: mustJSON(obj)}
}

// Update returns an op that replaces obj in table if it is still at the
// ModifyIndex it was read at.
func Update(table string, obj Object) TxnOp {
	return TxnOp{Verb: VerbUpdate, Table: table, ID: obj.GetID(), Obj: mustJSON(obj), IfIndex: obj.GetIndexes().ModifyIndex}
}

// Delete returns an op that removes the row id from table.
func Delete(table, id string) TxnOp {
	return TxnOp{Verb: VerbDelete, Table: table, ID: id}
}

// Check returns an op that fails unless obj is still at the index it was
// read at.
func Check(table string, obj Object) TxnOp {
	return TxnOp{Verb: VerbCheck, Table: table, ID: obj.GetID(), IfIndex: obj.GetIndexes().ModifyIndex}
}

// Claim returns an op that fails unless obj is still at the index it was
// read at, and rewrites it unchanged so that its index moves on: of two
// requests that read the same row and claim it, only the first to commit
// succeeds; the other is refused as stale. A job pins the row it works on
// this way, where Check alone would let two racing jobs both commit.
func Claim(table string, obj Object) TxnOp {
	return Update(table, obj)
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("fsm: encode %T: %v", v, err))
	}
	return b
}

func (s *Store) applyTxn(index uint64, req *TxnRequest) error {
	txn := s.writeTxn()
	defer txn.Abort()
	if _, err := applyOps(txn, index, req.Ops); err != nil {
		return err
	}
	txn.Commit()
	return nil
}

func applyOp(txn *memdb.Txn, index uint64, op TxnOp) error {
	def, ok := tableDefs[op.Table]
	if !ok {
		return stateErr(KindInvalid, "unknown table %q", op.Table)
	}
	raw, err := txn.First(def.Name, "id", op.ID)
	if err != nil {
		return fmt.Errorf("%s lookup %s: %w", def.Name, op.ID, err)
	}
	var existing Object
	if raw != nil {
		existing = raw.(Object)
	}
	if op.Verb == VerbCreate {
		if existing != nil {
			return stateErr(KindConflict, "%s %s already exists", def.Noun, op.ID)
		}
	} else {
		if existing == nil {
			if op.Verb == VerbDelete && op.IfExists {
				return nil
			}
			return stateErr(KindNotFound, "%s %s does not exist", def.Noun, op.ID)
		}
		if op.IfIndex != 0 && existing.GetIndexes().ModifyIndex != op.IfIndex {
			return stateErr(KindStale, "%s %s changed while this request was being made; read it again and retry", def.Noun, op.ID)
		}
	}
	switch op.Verb {
	case VerbCheck:
		return nil
	case VerbReserve:
		return applyReserve(txn, index, def, existing, op)
	case VerbDelete:
		if err := checkNoUsers(txn, def.Name, op.ID); err != nil {
			return err
		}
		if err := txn.Delete(def.Name, existing); err != nil {
			return fmt.Errorf("delete %s %s: %w", def.Noun, op.ID, err)
		}
		return retally(txn, def, existing, nil)
	case VerbCreate, VerbUpdate:
		obj := def.New()
		if err := decodeJSON(op.Obj, obj); err != nil {
			return stateErr(KindInvalid, "%s %s does not decode: %v", def.Noun, op.ID, err)
		}
		internRow(obj)
		if obj.GetID() != op.ID {
			return stateErr(KindInvalid, "%s id %q does not match the operation's id %q", def.Noun, obj.GetID(), op.ID)
		}
		if err := def.checkUnique(txn, obj); err != nil {
			return err
		}
		if err := def.checkRefs(txn, obj); err != nil {
			return err
		}
		var prev *Indexes
		if existing != nil {
			prev = existing.GetIndexes()
		}
		return insert(txn, def.Name, obj.GetIndexes(), prev, index, obj)
	}
	return stateErr(KindInvalid, "unknown operation %q on %s", op.Verb, def.Noun)
}
