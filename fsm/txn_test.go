package fsm

import (
	"errors"
	"strings"
	"testing"
)

func seeded(t *testing.T) *FSM {
	t.Helper()
	f := New(nil)
	if err := apply(t, f, 1, BootstrapRequestType, testBootstrap()); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	return f
}

func TestTxnCreateUpdateDelete(t *testing.T) {
	f := seeded(t)
	d := &Domain{ID: "d-eng", Name: "eng", Path: "ROOT/eng", ParentID: "d-root", Created: testTime}
	a := &Account{ID: "a-eng", Name: "eng", DomainID: "d-eng", Type: AccountTypeUser, State: StateEnabled, Created: testTime}
	if err := apply(t, f, 2, TxnRequestType, TxnRequest{Ops: []TxnOp{Create(tableDomains, d), Create(tableAccounts, a)}}); err != nil {
		t.Fatalf("create domain and account in one txn: %v", err)
	}
	got, _ := Get[Account](f.State(), nil, tableAccounts, "a-eng")
	if got == nil || got.CreateIndex != 2 || got.ModifyIndex != 2 || got.Name != "eng" {
		t.Fatalf("account after create = %+v", got)
	}

	// Update with the index it was read at succeeds and keeps CreateIndex.
	upd := *got
	upd.State = StateDisabled
	if err := apply(t, f, 3, TxnRequestType, TxnRequest{Ops: []TxnOp{Update(tableAccounts, &upd)}}); err != nil {
		t.Fatalf("update: %v", err)
	}
	got, _ = Get[Account](f.State(), nil, tableAccounts, "a-eng")
	if got.State != StateDisabled || got.CreateIndex != 2 || got.ModifyIndex != 3 {
		t.Fatalf("account after update = %+v", got)
	}
	// A second update proposed from the stale read (index 2) loses.
	err := apply(t, f, 4, TxnRequestType, TxnRequest{Ops: []TxnOp{Update(tableAccounts, &upd)}})
	if !errors.Is(err, ErrStale) || !strings.Contains(err.Error(), "changed while") {
		t.Fatalf("stale update: err = %v, want a compare-and-set conflict", err)
	}

	// The domain is used by the account: deleting it fails and names the user.
	err = apply(t, f, 5, TxnRequestType, TxnRequest{Ops: []TxnOp{Delete(tableDomains, "d-eng")}})
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "account eng") {
		t.Fatalf("delete used domain: err = %v, want in-use naming account eng", err)
	}
	// Deleting both in the right order in one txn works.
	if err := apply(t, f, 6, TxnRequestType, TxnRequest{Ops: []TxnOp{Delete(tableAccounts, "a-eng"), Delete(tableDomains, "d-eng")}}); err != nil {
		t.Fatalf("delete account then domain: %v", err)
	}
	if d, _ := Get[Domain](f.State(), nil, tableDomains, "d-eng"); d != nil {
		t.Fatalf("domain still there: %+v", d)
	}
	// Deleting a missing row fails, unless IfExists.
	if err := apply(t, f, 7, TxnRequestType, TxnRequest{Ops: []TxnOp{Delete(tableDomains, "d-eng")}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete missing: err = %v, want not found", err)
	}
	op := Delete(tableDomains, "d-eng")
	op.IfExists = true
	if err := apply(t, f, 8, TxnRequestType, TxnRequest{Ops: []TxnOp{op}}); err != nil {
		t.Fatalf("delete missing with IfExists: %v", err)
	}
}

func TestTxnIsAtomic(t *testing.T) {
	f := seeded(t)
	z := testZone("z1", "zone-one")
	// The second op fails (duplicate name), so the first must not stay.
	dup := testZone("z2", "ZONE-ONE")
	err := apply(t, f, 2, TxnRequestType, TxnRequest{Ops: []TxnOp{Create(tableZones, &z), Create(tableZones, &dup)}})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "zone with this name already exists") {
		t.Fatalf("duplicate name: err = %v", err)
	}
	if zs, _ := f.State().Zones(nil); len(zs) != 0 {
		t.Fatalf("a failed txn left %d zones behind", len(zs))
	}
}

func TestTxnRefsMustExist(t *testing.T) {
	f := seeded(t)
	a := &Account{ID: "a-x", Name: "x", DomainID: "d-missing", State: StateEnabled}
	err := apply(t, f, 2, TxnRequestType, TxnRequest{Ops: []TxnOp{Create(tableAccounts, a)}})
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "domain d-missing does not exist") {
		t.Fatalf("dangling reference: err = %v", err)
	}
}

func TestTxnRejectsBadOps(t *testing.T) {
	f := seeded(t)
	for name, op := range map[string]TxnOp{
		"unknown table": {Verb: VerbCreate, Table: "nope", ID: "x", Obj: []byte(`{}`)},
		"unknown verb":  {Verb: "explode", Table: tableZones, ID: "z", Obj: mustJSON(testZone("z", "z"))},
		"id mismatch":   {Verb: VerbCreate, Table: tableZones, ID: "other", Obj: mustJSON(testZone("z", "z"))},
		"bad body":      {Verb: VerbCreate, Table: tableZones, ID: "z", Obj: []byte(`"nope"`)},
	} {
		if err := apply(t, f, 2, TxnRequestType, TxnRequest{Ops: []TxnOp{op}}); !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: err = %v, want a state error", name, err)
		}
	}
	if zs, _ := f.State().Zones(nil); len(zs) != 0 {
		t.Fatalf("bad ops stored %d zones", len(zs))
	}
}

func TestTxnCheckDetectsChange(t *testing.T) {
	f := seeded(t)
	z := testZone("z1", "zone-one")
	if err := apply(t, f, 2, TxnRequestType, TxnRequest{Ops: []TxnOp{Create(tableZones, &z)}}); err != nil {
		t.Fatal(err)
	}
	read, _ := f.State().Zone(nil, "z1")
	if err := apply(t, f, 3, TxnRequestType, TxnRequest{Ops: []TxnOp{Check(tableZones, read)}}); err != nil {
		t.Fatalf("check of an unchanged row: %v", err)
	}
	upd := read.Copy()
	upd.Description = "changed"
	if err := apply(t, f, 4, TxnRequestType, TxnRequest{Ops: []TxnOp{Update(tableZones, upd)}}); err != nil {
		t.Fatal(err)
	}
	if err := apply(t, f, 5, TxnRequestType, TxnRequest{Ops: []TxnOp{Check(tableZones, read)}}); !errors.Is(err, ErrStale) {
		t.Fatalf("check of a changed row: err = %v, want stale", err)
	}
}
