package fsm

import (
	"context"
	"fmt"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// applier decodes one command body and applies it at index. It returns nil or
// a *StateError; it panics when the body does not decode, because a replica
// that skipped an entry the others applied would silently diverge.
type applier func(s *Store, index uint64, body []byte) error

var appliers = map[MessageType]applier{}

func register(t MessageType, fn applier) {
	if _, dup := appliers[t]; dup {
		panic(fmt.Sprintf("fsm: applier for %s registered twice", t))
	}
	appliers[t] = fn
}

// decode is the shared first step of every applier. It decodes with the
// JSON v2 decoder, as rows are decoded (decodeJSON), so an entry's body is
// read once at about a third of encoding/json's cost; the command bodies
// are written by encoding/json (Encode), and TestCommandBodiesKeepEveryField
// checks that every field of every command decodes as encoding/json
// decodes it, which is what lets servers of both kinds of build apply
// the same log alike.
func decode[T any](t MessageType, body []byte) *T {
	var v T
	if err := decodeJSON(body, &v); err != nil {
		panic(fmt.Sprintf("fsm: failed to decode %s body: %v", t, err))
	}
	return &v
}

func init() {
	register(BootstrapRequestType, func(s *Store, i uint64, b []byte) error {
		return s.bootstrap(i, decode[BootstrapRequest](BootstrapRequestType, b))
	})
	register(ZoneUpsertRequestType, func(s *Store, i uint64, b []byte) error {
		return s.upsertZone(i, decode[ZoneUpsertRequest](ZoneUpsertRequestType, b))
	})
	register(ZoneDeleteRequestType, func(s *Store, i uint64, b []byte) error {
		return s.deleteZone(i, decode[DeleteRequest](ZoneDeleteRequestType, b).ID)
	})
	register(ConfigSetRequestType, func(s *Store, i uint64, b []byte) error {
		return s.setSetting(i, decode[ConfigSetRequest](ConfigSetRequestType, b))
	})
	register(UserKeysSetRequestType, func(s *Store, i uint64, b []byte) error {
		return s.setUserKeys(i, decode[UserKeysSetRequest](UserKeysSetRequestType, b))
	})
	register(NoopRequestType, func(*Store, uint64, []byte) error { return nil })
	// Dispatched by the batch applier itself, which unwraps the entry.
	register(OnceRequestType, func(*Store, uint64, []byte) error { return nil })
	register(TxnRequestType, func(s *Store, i uint64, b []byte) error {
		return s.applyTxn(i, decode[TxnRequest](TxnRequestType, b))
	})
}

// Known reports whether this build can apply the type.
func Known(t MessageType) bool {
	_, ok := appliers[t&^IgnoreUnknownTypeFlag]
	return ok
}

// FSM is the raft.FSM of a Stratus server.
type FSM struct {
	logger hclog.Logger

	mu    sync.RWMutex // guards state, swapped whole on restore
	state *Store

	idxMu   sync.Mutex
	applied uint64
	advance chan struct{} // closed and replaced whenever applied grows
}

// New returns an FSM with an empty store.
func New(logger hclog.Logger) *FSM {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &FSM{logger: logger.Named("fsm"), state: NewStore(), advance: make(chan struct{})}
}

// State returns the current store. Hold on to it only for one request: a
// restore replaces it.
func (f *FSM) State() *Store {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state
}

// Apply applies one committed log entry. The response is nil or a
// *StateError. Raft calls ApplyBatch (batch.go) instead; this is a batch
// of one.
func (f *FSM) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// applyEntry decodes one encoded command that is not a transaction or a
// once-request (batch.go applies those) and applies it at index alone.
func (f *FSM) applyEntry(s *Store, index uint64, data []byte) any {
	env, err := DecodeEnvelope(data)
	if err != nil {
		panic(fmt.Sprintf("fsm: entry %d: %v", index, err))
	}
	fn, ok := appliers[env.Type]
	if !ok || env.Version > CommandVersion {
		if env.Skip {
			f.logger.Warn("skipping command this build does not know", "index", index, "type", env.Type, "version", env.Version)
			return nil
		}
		// Refusing loudly: applying past this entry would make this replica
		// differ from the ones that understood it. Upgrade this node.
		panic(fmt.Sprintf("fsm: entry %d: %v: %s version %d (this build knows up to version %d)",
			index, ErrUnknownType, env.Type, env.Version, CommandVersion))
	}
	if err := fn(s, index, env.Body); err != nil {
		return err
	}
	return nil
}

func (f *FSM) setApplied(index uint64) {
	f.idxMu.Lock()
	defer f.idxMu.Unlock()
	if index <= f.applied {
		return
	}
	f.applied = index
	close(f.advance)
	f.advance = make(chan struct{})
}

// AppliedIndex is the index of the last entry this FSM applied (or restored).
func (f *FSM) AppliedIndex() uint64 {
	f.idxMu.Lock()
	defer f.idxMu.Unlock()
	return f.applied
}

// WaitForIndex blocks until the FSM has applied index or ctx ends.
func (f *FSM) WaitForIndex(ctx context.Context, index uint64) error {
	for {
		f.idxMu.Lock()
		applied, ch := f.applied, f.advance
		f.idxMu.Unlock()
		if applied >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for index %d (applied %d): %w", index, applied, ctx.Err())
		}
	}
}

// ApplyCommand encodes a command and applies it at index without raft, as
// raft would after committing it. For tests and tools that drive a state
// machine directly; the error is the applier's *StateError, if any.
func (f *FSM) ApplyCommand(index uint64, t MessageType, body any) error {
	data, err := Encode(t, false, body)
	if err != nil {
		return err
	}
	if resp := f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: data}); resp != nil {
		return resp.(error)
	}
	return nil
}
