package cluster

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// A raft.db written by an earlier build (bbolt's defaults: array freelist
// synced on every commit) opens with today's options and keeps its log and
// stable keys; and a file written with today's options still opens with
// the old ones, so a rolled-back server starts too. The options measured
// and not kept (no freelist on disk, the map freelist) are held to the
// same, so switching to them later is safe both ways.
func TestLogStoreOpensRaftDBOfOtherBuilds(t *testing.T) {
	candidates := map[string]func(path string) raftboltdb.Options{
		"today": logStoreOptions,
		"map freelist, not synced": func(path string) raftboltdb.Options {
			return raftboltdb.Options{Path: path, BoltOptions: &bbolt.Options{
				NoFreelistSync: true, FreelistType: bbolt.FreelistMapType,
			}}
		},
	}
	for name, opts := range candidates {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "raft.db")
			checkBuildsTakeTurns(t, raftboltdb.Options{Path: path}, opts(path))
		})
	}
}

// checkBuildsTakeTurns opens one raft.db with the options of an earlier
// and of a later build in turn, each appending to and compacting the log.
func checkBuildsTakeTurns(t *testing.T, earlier, today raftboltdb.Options) {
	steps := []struct {
		name  string
		opts  raftboltdb.Options
		first uint64 // the log the step finds
		last  uint64
	}{
		{"earlier build creates", earlier, 0, 0},
		{"this build opens", today, 101, 200},
		{"rolled back", earlier, 201, 400},
		{"upgraded again", today, 301, 600},
		{"rolled back again", earlier, 401, 800},
	}
	for i, s := range steps {
		store, err := raftboltdb.New(s.opts)
		if err != nil {
			t.Fatalf("%s: open: %v", s.name, err)
		}
		checkLog(t, s.name, store, s.first, s.last)
		if i > 0 {
			if term, err := store.GetUint64([]byte("CurrentTerm")); err != nil || term != uint64(i) {
				t.Errorf("%s: CurrentTerm = %d (%v), want %d", s.name, term, err, i)
			}
		}
		// Each step appends 200 entries and compacts the oldest 100, as
		// raft does, so every build frees pages the next one must account for.
		appendLog(t, store, s.last+1, s.last+200)
		first := max(s.first, 1)
		if err := store.DeleteRange(first, first+99); err != nil {
			t.Fatalf("%s: delete range: %v", s.name, err)
		}
		if err := store.SetUint64([]byte("CurrentTerm"), uint64(i+1)); err != nil {
			t.Fatal(err)
		}
		if err := store.Close(); err != nil {
			t.Fatal(err)
		}
		checkBoltConsistent(t, s.name, s.opts)
	}
}

func logData(idx uint64) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("entry %d;", idx)), 300)
}

func appendLog(t *testing.T, store *raftboltdb.BoltStore, from, to uint64) {
	t.Helper()
	var batch []*raft.Log
	for idx := from; idx <= to; idx++ {
		batch = append(batch, &raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: logData(idx)})
	}
	if err := store.StoreLogs(batch); err != nil {
		t.Fatalf("store logs %d-%d: %v", from, to, err)
	}
}

// checkLog asserts the store holds exactly the entries first to last,
// with the data they were written with.
func checkLog(t *testing.T, step string, store *raftboltdb.BoltStore, first, last uint64) {
	t.Helper()
	gotFirst, err1 := store.FirstIndex()
	gotLast, err2 := store.LastIndex()
	if err1 != nil || err2 != nil || gotFirst != first || gotLast != last {
		t.Fatalf("%s: log is %d-%d (%v, %v), want %d-%d", step, gotFirst, gotLast, err1, err2, first, last)
	}
	for idx := first; idx <= last && last > 0; idx++ {
		var l raft.Log
		if err := store.GetLog(idx, &l); err != nil {
			t.Fatalf("%s: entry %d: %v", step, idx, err)
		}
		if !bytes.Equal(l.Data, logData(idx)) {
			t.Fatalf("%s: entry %d holds other data", step, idx)
		}
	}
}

// checkBoltConsistent runs bbolt's own check of the file: every page
// reachable or free exactly once, so no build leaked or double-freed one.
// It opens the file as the step did (a read-only open has no freelist to
// check against, and another build's options would rewrite it).
func checkBoltConsistent(t *testing.T, step string, opts raftboltdb.Options) {
	t.Helper()
	db, err := bbolt.Open(opts.Path, 0o600, opts.BoltOptions)
	if err != nil {
		t.Fatalf("%s: open for check: %v", step, err)
	}
	defer db.Close()
	if err := db.View(func(tx *bbolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	}); err != nil {
		t.Errorf("%s: raft.db inconsistent: %v", step, err)
	}
}
