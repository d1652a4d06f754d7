package fsm

import (
	"bytes"
	"testing"
	"unsafe"
)

// TestDecodedRowsShareRepeatedStrings: rows applied from commands, and
// rows restored from a snapshot, share one copy of the values rows repeat
// (an account, a host, a state) and keep their own values intact.
func TestDecodedRowsShareRepeatedStrings(t *testing.T) {
	f := computeFixture(t)
	a, b := testVM("vm-1", "web1", ""), testVM("vm-2", "web2", "")
	a.HostID, b.HostID = "h-1", "h-1"
	ops := []TxnOp{Create(TableVMs, a), Create(TableVMs, b)}
	if err := apply(t, f, 10, TxnRequestType, TxnRequest{Ops: ops}); err != nil {
		t.Fatal(err)
	}
	var snap bytes.Buffer
	if err := f.State().WriteSnapshot(&snap, 10); err != nil {
		t.Fatal(err)
	}
	restored, _, err := ReadSnapshot(&snap)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*Store{"applied": f.State(), "restored": restored} {
		x, _ := Get[VM](s, nil, TableVMs, "vm-1")
		y, _ := Get[VM](s, nil, TableVMs, "vm-2")
		if x.AccountID != "a-eng" || x.HostID != "h-1" || x.State != VMStopped || x.Name != "web1" || y.Name != "web2" {
			t.Fatalf("%s: rows changed: %+v %+v", name, x, y)
		}
		for field, pair := range map[string][2]string{"account": {x.AccountID, y.AccountID}, "host": {x.HostID, y.HostID},
			"state": {x.State, y.State}, "offering": {x.ServiceOfferingID, y.ServiceOfferingID}} {
			if unsafe.StringData(pair[0]) != unsafe.StringData(pair[1]) {
				t.Errorf("%s: the two VMs hold separate copies of their %s %q", name, field, pair[0])
			}
		}
	}
}
