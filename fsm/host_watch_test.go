package fsm

import (
	"testing"

	"github.com/hashicorp/raft"
)

// TestHostChangedClosesOnlyForTheHostsAChangeNames: a host's channel
// closes when a VM is placed on it, migrates to or from it, or its own row
// changes, and by then the change is visible; a change elsewhere (another
// host, another table) leaves it open. Applied alone and in a batch alike.
func TestHostChangedClosesOnlyForTheHostsAChangeNames(t *testing.T) {
	f := batchFixture(t) // hosts h-1 and h-2
	st := f.State()
	expect := func(what string, chans map[string]<-chan struct{}, want ...string) {
		t.Helper()
		closedWant := map[string]bool{}
		for _, id := range want {
			closedWant[id] = true
		}
		for id, ch := range chans {
			if got := isClosed(ch); got != closedWant[id] {
				t.Errorf("%s: channel of %s closed=%v, want %v", what, id, got, closedWant[id])
			}
		}
	}
	watch := func() map[string]<-chan struct{} {
		return map[string]<-chan struct{}{"h-1": st.HostChanged("h-1"), "h-2": st.HostChanged("h-2"), "h-9": st.HostChanged("h-9")}
	}

	chans := watch()
	if err := apply(t, f, 20, TxnRequestType, TxnRequest{Ops: []TxnOp{Create(tableZones, func() *Zone { z := testZone("z-9", "other"); return &z }())}}); err != nil {
		t.Fatal(err)
	}
	expect("a zone created", chans)

	vm := testVM("vm-1", "web1", "10.1.0.5")
	vm.HostID = "h-1"
	if err := apply(t, f, 21, TxnRequestType, TxnRequest{Ops: []TxnOp{Create(TableVMs, vm)}}); err != nil {
		t.Fatal(err)
	}
	expect("a VM placed on h-1", chans, "h-1")
	if v, _ := Get[VM](f.State(), nil, TableVMs, "vm-1"); v == nil || v.HostID != "h-1" {
		t.Fatalf("after h-1's channel closed the VM reads %+v", v)
	}

	// The same store's snapshot hands out the same channels.
	chans = watch()
	if f.State().Snapshot().HostChanged("h-2") != chans["h-2"] {
		t.Error("a snapshot of the store hands out another channel for h-2")
	}
	migrating := vm.Copy()
	migrating.MigrateTo = "h-2"
	h2, _ := Get[Host](f.State(), nil, TableHosts, "h-2")
	h2 = h2.Copy()
	h2.Name = "renamed"
	logs := []*raft.Log{
		makeLog(t, 22, TxnRequestType, false, TxnRequest{Ops: []TxnOp{Update(TableVMs, migrating)}}),
		makeLog(t, 23, TxnRequestType, false, TxnRequest{Ops: []TxnOp{Update(TableHosts, h2)}}),
	}
	for i, r := range f.ApplyBatch(logs) {
		if r != nil {
			t.Fatalf("batch entry %d: %v", i, r)
		}
	}
	expect("a migration from h-1 to h-2 and h-2 renamed, in one batch", chans, "h-1", "h-2")

	chans = watch()
	moved := migrating.Copy()
	moved.HostID, moved.MigrateTo, moved.LastHostID = "h-2", "", "h-1"
	if err := apply(t, f, 24, TxnRequestType, TxnRequest{Ops: []TxnOp{Update(TableVMs, moved)}}); err != nil {
		t.Fatal(err)
	}
	expect("the VM moved to h-2", chans, "h-1", "h-2")
	chans = watch()
	if err := apply(t, f, 25, TxnRequestType, TxnRequest{Ops: []TxnOp{Delete(TableVMs, "vm-1")}}); err != nil {
		t.Fatal(err)
	}
	expect("the VM deleted", chans, "h-1", "h-2")
}

// TestHostStatesChangedIgnoresCapacity: the channel closes when a host's
// state changes or a host is added, not when its allocated capacity does
// (every placement changes that).
func TestHostStatesChangedIgnoresCapacity(t *testing.T) {
	f := batchFixture(t)
	index := uint64(30)
	updateHost := func(change func(*Host)) {
		t.Helper()
		h, _ := Get[Host](f.State(), nil, TableHosts, "h-2")
		h = h.Copy()
		change(h)
		index++
		if err := apply(t, f, index, TxnRequestType, TxnRequest{Ops: []TxnOp{Update(TableHosts, h)}}); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		what   string
		change func()
		closes bool
	}{
		{"a change of allocated capacity", func() { updateHost(func(h *Host) { h.CPUAllocated += 1000; h.MemoryAllocated += 1 << 30 }) }, false},
		{"the host going Down", func() { updateHost(func(h *Host) { h.State = HostStateDown }) }, true},
		{"the host fenced", func() { updateHost(func(h *Host) { h.HAState = HAStateFenced }) }, true},
		{"a host added", func() {
			index++
			if err := apply(t, f, index, TxnRequestType, TxnRequest{Ops: []TxnOp{Create(TableHosts, testHost("h-3", "z-1", "p-1", "c-1", "10.0.0.7"))}}); err != nil {
				t.Fatal(err)
			}
		}, true},
	}
	for _, step := range steps {
		ch := f.State().HostStatesChanged()
		if isClosed(ch) {
			t.Fatalf("before %s: the channel is already closed", step.what)
		}
		step.change()
		if got := isClosed(ch); got != step.closes {
			t.Errorf("%s: closed=%v, want %v", step.what, got, step.closes)
		}
	}
}

// isClosed reports whether ch is closed, without waiting.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
