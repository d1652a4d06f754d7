package fsm

import (
	"bytes"
	"reflect"
	"testing"

	memdb "github.com/hashicorp/go-memdb"
)

// TestResolvedIndexesMatchMemdb checks that every index of every table
// keys a row exactly as memdb's own indexer of that index does, for a row
// with every field set and for an empty one, so the resolved indexers
// change how fast keys are made and nothing else.
func TestResolvedIndexesMatchMemdb(t *testing.T) {
	resolved := 0
	for name, def := range tableDefs {
		own := map[string]*memdb.IndexSchema{"id": idIndex("ID")}
		for n, s := range def.Indexes {
			own[n] = s
		}
		schema := def.schema()
		full := def.New()
		seed := 0
		fillRow(t, reflect.ValueOf(full).Elem(), &seed)
		for n, s := range own {
			got := schema.Indexes[n].Indexer
			if got != s.Indexer {
				resolved++
			}
			for _, row := range []Object{full, def.New()} {
				wantOK, wantKey, wantErr := fromObject(s.Indexer, row)
				gotOK, gotKey, gotErr := fromObject(got, row)
				if gotOK != wantOK || !bytes.Equal(gotKey, wantKey) || (gotErr == nil) != (wantErr == nil) {
					t.Errorf("%s index %s: resolved (%v, %q, %v), memdb (%v, %q, %v)", name, n, gotOK, gotKey, gotErr, wantOK, wantKey, wantErr)
				}
			}
		}
	}
	if resolved == 0 {
		t.Fatal("no index was resolved: the test compares memdb with itself")
	}
}

// fromObject calls a single or multi indexer; a multi indexer's keys are
// joined, which is enough to compare two of them.
func fromObject(ix memdb.Indexer, row any) (bool, []byte, error) {
	switch x := ix.(type) {
	case memdb.SingleIndexer:
		return x.FromObject(row)
	case memdb.MultiIndexer:
		ok, keys, err := x.FromObject(row)
		return ok, bytes.Join(keys, []byte{0xff}), err
	}
	return false, nil, nil
}
