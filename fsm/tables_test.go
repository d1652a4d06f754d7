package fsm

import (
	"bytes"
	"encoding/json"
	"reflect"
	"sort"
	"testing"
)

// tableSamples holds, for every registered table, a row with every field
// set. Test files of each area add theirs from init; the round-trip test
// fails for a table without one.
var tableSamples = map[string]func() Object{
	tableDomains: func() Object {
		return &Domain{ID: "d-1", Name: "eng", Path: "ROOT/eng", ParentID: "d-root", Created: testTime}
	},
	tableAccounts: func() Object {
		return &Account{ID: "a-1", Name: "acme", DomainID: "d-1", Type: AccountTypeDomainAdmin, RoleType: "DomainAdmin", State: StateEnabled, Created: testTime}
	},
	tableUsers: func() Object {
		return &User{ID: "u-1", AccountID: "a-1", DomainID: "d-1", Username: "ann", FirstName: "Ann", LastName: "Lee", Email: "ann@example.com",
			State: StateEnabled, APIKey: "k", SecretKey: "s", PasswordHash: "h", Created: testTime}
	},
	tableZones: func() Object { z := testZone("z-1", "one"); return &z },
	TableEvents: func() Object {
		return &Event{ID: "e-1", Type: "ZONE.CREATE", Level: EventInfo, State: "Completed", Description: "made it", AccountID: "a-1",
			DomainID: "d-1", UserID: "u-1", ResourceType: "Zone", ResourceID: "z-1", JobID: "j-1", Created: testTime}
	},
	TableJobs: func() Object {
		return &AsyncJob{ID: "j-1", Cmd: "createTags", AccountID: "a-1", DomainID: "d-1", UserID: "u-1", Params: map[string]string{"a": "b"},
			Status: JobSucceeded, ProcStatus: 1, ResultCode: 0, ResultType: "object", Result: json.RawMessage(`{"success":true}`),
			InstanceType: "VirtualMachine", InstanceID: "vm-1", Step: "done", Attempts: 2, Created: testTime, Completed: testTime}
	},
	TableTags: func() Object {
		return &Tag{ID: "t-1", Key: "env", Value: "prod", ResourceType: "UserVm", ResourceID: "vm-1", AccountID: "a-1", DomainID: "d-1", Customer: "c", Created: testTime}
	},
}

// TestSnapshotRoundTripRegisteredTables writes one sample row of every
// registered table through a snapshot and reads it back unchanged, with its
// indexes usable.
func TestSnapshotRoundTripRegisteredTables(t *testing.T) {
	names := make([]string, 0, len(tableDefs))
	for name := range tableDefs {
		names = append(names, name)
	}
	sort.Strings(names)
	src := NewStore()
	txn := src.db.Txn(true)
	for i, name := range names {
		sample, ok := tableSamples[name]
		if !ok {
			t.Fatalf("table %s has no sample row in tableSamples: add one in the area's test file", name)
		}
		obj := sample()
		*obj.GetIndexes() = Indexes{CreateIndex: uint64(10 + i), ModifyIndex: uint64(20 + i)}
		if err := txn.Insert(name, obj); err != nil {
			t.Fatalf("insert sample of %s: %v", name, err)
		}
	}
	txn.Commit()
	var buf bytes.Buffer
	if err := src.WriteSnapshot(&buf, 99); err != nil {
		t.Fatal(err)
	}
	dst, hdr, err := ReadSnapshot(&buf)
	if err != nil || hdr.AppliedIndex != 99 {
		t.Fatalf("read snapshot: %v (applied %d)", err, hdr.AppliedIndex)
	}
	for _, name := range names {
		want := tableSamples[name]()
		got, err := dst.db.Txn(false).First(name, "id", want.GetID())
		if err != nil || got == nil {
			t.Fatalf("%s: sample %s not restored (%v)", name, want.GetID(), err)
		}
		wantIdx := got.(Object).GetIndexes()
		*want.GetIndexes() = *wantIdx
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s differs after restore:\n got  %#v\n want %#v", name, got, want)
		}
		for idx := range tableDefs[name].Indexes {
			it, err := dst.db.Txn(false).Get(name, idx)
			if err != nil {
				t.Errorf("%s index %s: %v", name, idx, err)
				continue
			}
			if it.Next() == nil && !tableDefs[name].Indexes[idx].AllowMissing {
				t.Errorf("%s index %s holds nothing after restore", name, idx)
			}
		}
	}
}
