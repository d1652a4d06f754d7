package fsm

import (
	"fmt"
	"testing"
)

// TestTallyFollowsEveryWrite checks the per-account VM counts against a
// walk of the table after creates, a move to another account, a VM being
// expunged, a delete and a snapshot restore.
func TestTallyFollowsEveryWrite(t *testing.T) {
	f := computeFixture(t)
	if err := apply(t, f, 4, TxnRequestType, TxnRequest{Ops: []TxnOp{
		Create(tableAccounts, &Account{ID: "a-ops", Name: "ops", DomainID: "d-eng", Type: AccountTypeUser, State: StateEnabled, Created: testTime}),
	}}); err != nil {
		t.Fatal(err)
	}
	// walked counts what the tally must say: rows that lists show.
	walked := func(st *Store, account string) int {
		rows, err := Rows[VM](st, nil, TableVMs, "create")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for v := range rows {
			if v.State != VMExpunging && (account == "" || v.AccountID == account) {
				n++
			}
		}
		return n
	}
	check := func(step string, st *Store, wantEng, wantOps int) {
		t.Helper()
		for _, c := range []struct {
			accounts []string
			want     int
		}{{nil, wantEng + wantOps}, {[]string{"a-eng"}, wantEng}, {[]string{"a-ops"}, wantOps}, {[]string{"a-eng", "a-ops"}, wantEng + wantOps}, {[]string{"a-none"}, 0}} {
			got, ok := st.Tally(TableVMs, c.accounts...)
			if !ok || got != c.want {
				t.Errorf("%s: tally of %v = %d (ok %v), want %d", step, c.accounts, got, ok, c.want)
			}
		}
		if w := walked(st, "a-eng"); w != wantEng {
			t.Fatalf("%s: fixture: walk finds %d eng VMs, test expects %d", step, w, wantEng)
		}
	}
	var ops []TxnOp
	for i := range 5 {
		ops = append(ops, Create(TableVMs, testVM(fmt.Sprintf("vm-%d", i), fmt.Sprintf("web%d", i), fmt.Sprintf("10.1.0.%d", 10+i))))
	}
	if err := apply(t, f, 10, TxnRequestType, TxnRequest{Ops: ops}); err != nil {
		t.Fatal(err)
	}
	check("5 created", f.State(), 5, 0)

	moved := testVM("vm-1", "web1", "10.1.0.11")
	moved.AccountID = "a-ops"
	expunging := testVM("vm-2", "web2", "10.1.0.12")
	expunging.State = VMExpunging
	running := testVM("vm-3", "web3", "10.1.0.13")
	running.State = VMRunning
	if err := apply(t, f, 11, TxnRequestType, TxnRequest{Ops: []TxnOp{Update(TableVMs, moved), Update(TableVMs, expunging), Update(TableVMs, running)}}); err != nil {
		t.Fatal(err)
	}
	check("moved, expunging, running", f.State(), 3, 1)

	// A failed transaction changes no tally.
	if err := apply(t, f, 12, TxnRequestType, TxnRequest{Ops: []TxnOp{Delete(TableVMs, "vm-0"), Create(TableVMs, testVM("vm-3", "dup", ""))}}); err == nil {
		t.Fatal("creating vm-3 twice succeeded")
	}
	check("failed txn", f.State(), 3, 1)

	if err := apply(t, f, 13, TxnRequestType, TxnRequest{Ops: []TxnOp{Delete(TableVMs, "vm-2"), Delete(TableVMs, "vm-0")}}); err != nil {
		t.Fatal(err)
	}
	check("deleted", f.State(), 2, 1)

	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	dst := New(nil)
	if err := dst.Restore(ioNopCloser{&sink.Buffer}); err != nil {
		t.Fatal(err)
	}
	check("restored", dst.State(), 2, 1)
	if _, ok := dst.State().Tally(TableHosts); ok {
		t.Error("hosts have a tally, though their table defines none")
	}
}
