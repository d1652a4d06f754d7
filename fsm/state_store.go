package fsm

import (
	"context"
	"fmt"
	"sync"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// Store is the in-memory state: a go-memdb database. Reads take a
// memdb.WatchSet (nil if the caller does not block) so watchers wake when the
// rows they read change. Writes take the Raft index that carries them.
type Store struct {
	db *memdb.MemDB
	// abandoned is closed when a restore replaces this store: watches on
	// it would never fire again (see Changed and Watch).
	abandoned   chan struct{}
	abandonOnce *sync.Once
	hosts       *hostWatches // shared by the store's snapshots
}

// NewStore returns an empty store.
func NewStore() *Store {
	db, err := memdb.NewMemDB(mustSchema())
	if err != nil {
		panic(fmt.Sprintf("fsm: new memdb: %v", err))
	}
	return &Store{db: db, abandoned: make(chan struct{}), abandonOnce: new(sync.Once), hosts: newHostWatches()}
}

// Snapshot returns a point-in-time, read-only view of the store.
func (s *Store) Snapshot() *Store {
	return &Store{db: s.db.Snapshot(), abandoned: s.abandoned, abandonOnce: s.abandonOnce, hosts: s.hosts}
}

// insert stores obj after stamping its indexes: ModifyIndex is always index,
// CreateIndex is kept from the existing row or set to index for a new one.
func insert(txn *memdb.Txn, table string, idx *Indexes, existing *Indexes, index uint64, obj any) error {
	if existing != nil {
		idx.CreateIndex = existing.CreateIndex
	} else {
		idx.CreateIndex = index
	}
	idx.ModifyIndex = index
	if def := tableDefs[table]; def != nil && def.Tally != nil {
		row := obj.(Object)
		var old Object
		if existing != nil {
			raw, err := txn.First(table, "id", row.GetID())
			if err != nil {
				return fmt.Errorf("%s lookup %s: %w", table, row.GetID(), err)
			}
			old, _ = raw.(Object)
		}
		if err := retally(txn, def, old, row); err != nil {
			return err
		}
	}
	if err := txn.Insert(table, obj); err != nil {
		return fmt.Errorf("insert into %s: %w", table, err)
	}
	return nil
}

func first[T any](txn *memdb.Txn, ws memdb.WatchSet, table, index string, args ...any) (*T, error) {
	watch, raw, err := txn.FirstWatch(table, index, args...)
	if err != nil {
		return nil, fmt.Errorf("%s lookup by %s: %w", table, index, err)
	}
	ws.Add(watch)
	if raw == nil {
		return nil, nil
	}
	return raw.(*T), nil
}

func all[T any](txn *memdb.Txn, ws memdb.WatchSet, table, index string, args ...any) ([]*T, error) {
	it, err := txn.Get(table, index, args...)
	if err != nil {
		return nil, fmt.Errorf("%s scan by %s: %w", table, index, err)
	}
	ws.Add(it.WatchCh())
	var out []*T
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*T))
	}
	return out, nil
}

// Meta returns the cluster metadata, or nil before the cluster is seeded.
func (s *Store) Meta(ws memdb.WatchSet) (*Meta, error) {
	txn := s.db.Txn(false)
	return first[Meta](txn, ws, tableMeta, "id", true)
}

// bootstrap seeds the cluster; see BootstrapRequest.
func (s *Store) bootstrap(index uint64, req *BootstrapRequest) error {
	txn := s.writeTxn()
	defer txn.Abort()
	existing, err := first[Meta](txn, nil, tableMeta, "id", true)
	if err != nil {
		return err
	}
	if existing != nil {
		return ErrAlreadyInitialized
	}
	meta, dom, acct, user := req.Meta, req.Domain, req.Account, req.User
	if err := insert(txn, tableMeta, &meta.Indexes, nil, index, &meta); err != nil {
		return err
	}
	if err := insert(txn, tableDomains, &dom.Indexes, nil, index, &dom); err != nil {
		return err
	}
	if err := insert(txn, tableAccounts, &acct.Indexes, nil, index, &acct); err != nil {
		return err
	}
	if err := insert(txn, tableUsers, &user.Indexes, nil, index, &user); err != nil {
		return err
	}
	txn.Commit()
	return nil
}

// Changed returns a channel closed when a row read with ws changes, when
// this store is replaced by a restored snapshot (its watches would never
// fire again), or after max, whichever comes first.
func (s *Store) Changed(ws memdb.WatchSet, max time.Duration) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		ctx, cancel := context.WithTimeout(context.Background(), max)
		defer cancel()
		go func() {
			select {
			case <-s.abandoned:
				cancel()
			case <-ctx.Done():
			}
		}()
		_ = ws.WatchCtx(ctx)
	}()
	return ch
}

// abandon tells this store's waiters that it was replaced.
func (s *Store) abandon() {
	s.abandonOnce.Do(func() { close(s.abandoned) })
}
