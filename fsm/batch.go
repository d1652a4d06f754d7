package fsm

import (
	"errors"
	"fmt"

	memdb "github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"
)

// Batched apply (raft.BatchingFSM). Raft hands the FSM up to
// MaxAppendEntries committed entries at once; applying each in its own
// memdb write transaction copies the radix-tree paths it touches once per
// entry and wakes every watcher once per entry. ApplyBatch instead applies
// a run of transaction entries (TxnRequest, bare or wrapped in a
// OnceRequest, which is what every API write and job step is) in one
// memdb transaction and commits it once: each entry still sees the effects
// of the entries before it, exactly as if they were applied one by one,
// so compare-and-set and reserve checks judge each entry against every
// earlier one.
//
// A refused entry must leave no trace. memdb has no savepoints, so:
//   - an entry refused before it wrote anything (the usual case: a check,
//     a stale IfIndex, a reserve that does not fit) is simply dropped;
//   - an entry refused after some of its operations wrote aborts the
//     shared transaction, which is then rebuilt by applying again the
//     entries before it (they succeed again: applying is deterministic)
//     and committed at once, so no entry is applied more than twice.
//
// Entries of any other type end the current transaction (it commits) and
// are applied alone by their own appliers, as before batching.

// ApplyBatch applies committed log entries in order and returns one
// response per entry: nil or a *StateError, as Apply does.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	resps := make([]any, len(logs))
	if len(logs) == 0 {
		return resps
	}
	f.mu.RLock()
	s := f.state
	f.mu.RUnlock()
	b := &batch{f: f, s: s}
	defer b.abort() // only reached with an open transaction when an applier panics
	for i, l := range logs {
		if l.Type == raft.LogCommand {
			resps[i] = b.apply(l.Index, l.Data)
		}
	}
	b.commit()
	f.setApplied(logs[len(logs)-1].Index)
	return resps
}

// batch is the shared write transaction of one ApplyBatch call.
type batch struct {
	f   *FSM
	s   *Store
	txn *memdb.Txn // nil while none is open
	// redo re-applies, in order, the writes of the entries applied in txn
	// so far; used to rebuild txn without a failed entry's partial writes.
	redo []func(*memdb.Txn)
}

func (b *batch) open() *memdb.Txn {
	if b.txn == nil {
		b.txn = b.s.writeTxn()
	}
	return b.txn
}

// commit makes the entries applied so far visible (one commit, one round
// of watch notifications).
func (b *batch) commit() {
	if b.txn != nil {
		b.txn.Commit()
		b.txn, b.redo = nil, nil
	}
}

func (b *batch) abort() {
	if b.txn != nil {
		b.txn.Abort()
		b.txn, b.redo = nil, nil
	}
}

// rebuild throws the transaction away and applies the writes of the
// entries before the failed one again in a fresh one.
func (b *batch) rebuild() {
	redo := b.redo
	b.abort()
	txn := b.open()
	for _, fn := range redo {
		fn(txn)
	}
	b.redo = redo
}

// apply applies one encoded entry at index and returns its response.
func (b *batch) apply(index uint64, data []byte) any {
	env, err := DecodeEnvelope(data)
	if err != nil {
		panic(fmt.Sprintf("fsm: entry %d: %v", index, err))
	}
	if env.Version <= CommandVersion {
		switch env.Type {
		case TxnRequestType:
			return b.applyTxn(index, decode[TxnRequest](TxnRequestType, env.Body), nil)
		case OnceRequestType:
			return b.applyOnce(index, decode[OnceRequest](OnceRequestType, env.Body))
		case NoopRequestType:
			return nil
		}
	}
	// Any other entry (or one this build must skip or refuse) goes alone,
	// through its own applier, after what came before it is committed.
	b.commit()
	return b.f.applyEntry(b.s, index, data)
}

// applyTxn applies a transaction entry in the shared transaction; once,
// when set, is the request that wraps it, remembered with the outcome.
func (b *batch) applyTxn(index uint64, req *TxnRequest, once *OnceRequest) any {
	txn := b.open()
	dirty, err := applyOps(txn, index, req.Ops)
	rebuilt := false
	if err != nil && dirty {
		b.rebuild()
		txn, rebuilt = b.txn, true
	}
	var resp any
	if err != nil {
		resp = err
	}
	if once != nil {
		rememberRequest(txn, index, once, resp)
	}
	ok := err == nil
	b.redo = append(b.redo, func(t *memdb.Txn) {
		if ok {
			if _, err := applyOps(t, index, req.Ops); err != nil {
				panic(fmt.Sprintf("fsm: entry %d applied once but not again: %v", index, err))
			}
		}
		if once != nil {
			rememberRequest(t, index, once, resp)
		}
	})
	if rebuilt {
		b.commit() // each entry is applied again at most once
	}
	return resp
}

// applyOnce applies a OnceRequest: a request ID seen before answers with
// its first outcome and changes nothing; otherwise the wrapped entry is
// applied and its outcome remembered.
func (b *batch) applyOnce(index uint64, req *OnceRequest) any {
	txn := b.open()
	prev, err := first[AppliedRequest](txn, nil, tableRequests, "id", req.ID)
	if err != nil {
		panic(fmt.Sprintf("fsm: entry %d: request lookup: %v", index, err))
	}
	if prev != nil {
		b.f.logger.Debug("repeated request answered from its first outcome", "request", req.ID, "first_index", prev.Index, "index", index)
		if prev.Err != nil {
			return prev.Err
		}
		return nil
	}
	env, err := DecodeEnvelope(req.Entry)
	if err == nil && env.Type == OnceRequestType {
		return stateErr(KindInvalid, "a once-request may not wrap another")
	}
	if err == nil && env.Type == TxnRequestType && env.Version <= CommandVersion {
		return b.applyTxn(index, decode[TxnRequest](TxnRequestType, env.Body), req)
	}
	// Another command: its applier opens its own transaction, then the
	// request is remembered in the next shared one.
	b.commit()
	resp := b.f.applyEntry(b.s, index, req.Entry)
	rememberRequest(b.open(), index, req, resp)
	b.redo = append(b.redo, func(t *memdb.Txn) { rememberRequest(t, index, req, resp) })
	return resp
}

// rememberRequest records an applied request and its business outcome
// (an internal error is not a business outcome: a repeat then answers
// success, as the entry's writes were not made) and forgets expired ones.
func rememberRequest(txn *memdb.Txn, index uint64, req *OnceRequest, resp any) {
	rec := &AppliedRequest{ID: req.ID, Expires: uint64(req.Time.Add(OnceWindow).UnixNano()), Index: index}
	if se, ok := resp.(*StateError); ok && se != nil {
		rec.Err = se
	}
	if err := insert(txn, tableRequests, &rec.Indexes, nil, index, rec); err != nil {
		panic(fmt.Sprintf("fsm: entry %d: remember request: %v", index, err))
	}
	forgetRequests(txn, uint64(req.Time.UnixNano()))
}

// applyOps applies a transaction's operations in order in txn. On failure
// dirty tells whether txn may hold some of its writes: true when an
// operation before the failed one wrote, or when the failure is not a
// business refusal (those are all decided before an operation writes).
func applyOps(txn *memdb.Txn, index uint64, ops []TxnOp) (dirty bool, err error) {
	wrote := false
	for _, op := range ops {
		if err := applyOp(txn, index, op); err != nil {
			var se *StateError
			return wrote || !errors.As(err, &se), err
		}
		if op.Verb != VerbCheck {
			wrote = true
		}
	}
	return false, nil
}
