package fsm

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"
	"time"

	memdb "github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"
)

// batchFixture is computeFixture plus host h-2, Up, with 8000 MHz and
// 12 GiB to hand out (cluster c-1's overcommit 2 and 1.5).
func batchFixture(t *testing.T) *FSM {
	t.Helper()
	f := computeFixture(t)
	h := testHost("h-2", "z-1", "p-1", "c-1", "10.0.0.6")
	h.CPUNumber, h.CPUSpeed, h.MemoryTotal = 4, 1000, 8<<30
	h.State = HostStateUp
	if err := apply(t, f, 10, TxnRequestType, TxnRequest{Ops: []TxnOp{Create(TableHosts, h)}}); err != nil {
		t.Fatal(err)
	}
	return f
}

// snapshotBytes is the state of f as its snapshot stream.
func snapshotBytes(t *testing.T, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	return sink.Bytes()
}

// batchLogs is a run of entries with every case a batch must get right:
// repeats of a request inside the batch, reserves that race for the same
// host, refusals before and after an entry wrote, compare-and-set against
// an earlier entry of the batch, and entries of other types in between.
func batchLogs(t *testing.T, first uint64) []*raft.Log {
	t.Helper()
	zone := func(id string) *Zone { z := testZone(id, "name-"+id); z.ZoneToken = "tok-" + id; return &z }
	updated := zone("z-b1")
	updated.ModifyIndex = first // as read after the batch's first entry
	updated.DNS1 = "1.1.1.1"
	i := first - 1
	next := func() uint64 { i++; return i }
	txn := func(ops ...TxnOp) *raft.Log { return makeLog(t, next(), TxnRequestType, false, TxnRequest{Ops: ops}) }
	once := func(id string, typ MessageType, body any) *raft.Log {
		return onceLog(t, next(), id, testTime, typ, body)
	}
	return []*raft.Log{
		once("req-a", TxnRequestType, TxnRequest{Ops: []TxnOp{Create(tableZones, zone("z-b1"))}}),
		once("req-a", TxnRequestType, TxnRequest{Ops: []TxnOp{Create(tableZones, zone("z-b1"))}}), // repeat: first outcome
		txn(ReserveHost("h-2", 6000, 1<<30)),
		once("req-b", TxnRequestType, TxnRequest{Ops: []TxnOp{ReserveHost("h-2", 3000, 0)}}),                   // no room: refused before writing
		txn(Create(tableZones, zone("z-b2")), ReserveHost("h-2", 3000, 0)),                                     // refused after a write
		txn(ReserveHost("h-2", 2000, 0)),                                                                       // fits: 8000 exactly
		makeLog(t, next(), ZoneUpsertRequestType, false, ZoneUpsertRequest{Zone: *zone("z-b3"), Create: true}), // another type
		once("req-c", ZoneUpsertRequestType, ZoneUpsertRequest{Zone: *zone("z-b4"), Create: true}),
		txn(Update(tableZones, updated)),                                                  // CAS against the batch's first entry
		txn(Update(tableZones, updated)),                                                  // the same CAS again: stale now
		once("req-b", TxnRequestType, TxnRequest{Ops: []TxnOp{ReserveHost("h-2", 1, 0)}}), // repeat of a refused request
		txn(Create(tableZones, zone("z-b5")), Delete(tableZones, "z-b5"), Create(tableZones, zone("z-b6")), Delete(tableZones, "z-missing")),
		once("req-d", TxnRequestType, TxnRequest{Ops: []TxnOp{Create(tableZones, zone("z-b7")), ReserveHost("h-2", 0, 1<<40)}}),
		txn(Create(tableZones, zone("z-b8"))),
		{Index: next(), Term: 1, Type: raft.LogConfiguration},
	}
}

func TestApplyBatchMatchesOneByOne(t *testing.T) {
	one, many := batchFixture(t), batchFixture(t)
	logs := batchLogs(t, 20)
	var want []any
	for _, l := range logs {
		want = append(want, one.Apply(l))
	}
	got := many.ApplyBatch(logs)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("batch responses differ from one-by-one:\n got %v\nwant %v", got, want)
	}
	kinds := []ErrorKind{"", "", "", KindStale, KindStale, "", "", "", "", KindStale, KindStale, KindNotFound, KindStale, "", ""}
	for i, k := range kinds {
		se, _ := want[i].(*StateError)
		switch {
		case k == "" && want[i] != nil:
			t.Errorf("entry %d: %v, want success", i, want[i])
		case k != "" && (se == nil || se.Kind != k):
			t.Errorf("entry %d: %v, want %s", i, want[i], k)
		}
	}
	if !bytes.Equal(snapshotBytes(t, one), snapshotBytes(t, many)) {
		t.Fatal("state after the batch differs from the state after applying one by one")
	}
	s := many.State()
	for id, present := range map[string]bool{"z-b1": true, "z-b2": false, "z-b3": true, "z-b4": true, "z-b5": false, "z-b6": false, "z-b7": false, "z-b8": true} {
		if z, _ := s.Zone(nil, id); (z != nil) != present {
			t.Errorf("zone %s present = %v, want %v", id, z != nil, present)
		}
	}
	if z, _ := s.Zone(nil, "z-b1"); z == nil || z.DNS1 != "1.1.1.1" || z.ModifyIndex != 28 {
		t.Errorf("z-b1 after its CAS update = %+v", z)
	}
	h, _ := Get[Host](s, nil, TableHosts, "h-2")
	if h.CPUAllocated != 8000 || h.MemoryAllocated != 1<<30 {
		t.Errorf("h-2 allocated %d MHz %d bytes, want 8000 MHz and 1 GiB", h.CPUAllocated, h.MemoryAllocated)
	}
	if many.AppliedIndex() != logs[len(logs)-1].Index {
		t.Errorf("applied index %d, want %d", many.AppliedIndex(), logs[len(logs)-1].Index)
	}
}

// Every split of the same entries into batches gives the same state.
func TestApplyBatchAnySplit(t *testing.T) {
	ref := batchFixture(t)
	logs := batchLogs(t, 20)
	ref.ApplyBatch(logs)
	want := snapshotBytes(t, ref)
	for size := 1; size <= len(logs); size++ {
		f := batchFixture(t)
		for i := 0; i < len(logs); i += size {
			f.ApplyBatch(logs[i:min(i+size, len(logs))])
		}
		if !bytes.Equal(snapshotBytes(t, f), want) {
			t.Fatalf("batches of %d: state differs from one batch", size)
		}
	}
}

// Watchers wake once the batch is committed, and read every entry of it.
func TestApplyBatchWakesWatchersWithTheWholeBatch(t *testing.T) {
	f := batchFixture(t)
	ws := memdb.NewWatchSet()
	if _, err := f.State().Zones(ws); err != nil {
		t.Fatal(err)
	}
	logs := batchLogs(t, 20)
	f.ApplyBatch(logs)
	if ws.Watch(time.After(5 * time.Second)) {
		t.Fatal("a watch on the zones table did not fire after a batch that created zones")
	}
	if z, _ := f.State().Zone(nil, "z-b8"); z == nil {
		t.Fatal("the batch's last zone is not visible after ApplyBatch returned")
	}
}

// A decode failure inside a batch panics (replicas must not diverge) and
// leaves nothing of the batch half applied behind a held write lock.
func TestApplyBatchPanicsOnUndecodableEntry(t *testing.T) {
	f := batchFixture(t)
	logs := batchLogs(t, 20)[:3]
	logs = append(logs, &raft.Log{Index: 23, Type: raft.LogCommand, Data: []byte{byte(TxnRequestType), 0, 1, '{'}})
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("an undecodable entry did not panic")
			}
		}()
		f.ApplyBatch(logs)
	}()
	// The write lock was released: a later entry applies.
	if err := apply(t, f, 30, TxnRequestType, TxnRequest{Ops: []TxnOp{ReserveHost("h-2", 1, 0)}}); err != nil {
		t.Fatalf("apply after a panicking batch: %v", err)
	}
}

func BenchmarkFSMApply(b *testing.B) {
	t := &testing.T{}
	mk := func(n int) []*raft.Log {
		logs := make([]*raft.Log, n)
		for i := range logs {
			z := testZone(fmt.Sprintf("z-%d", i), fmt.Sprintf("zone-%d", i))
			z.ZoneToken = z.ID
			logs[i] = onceLog(t, uint64(10+i), fmt.Sprintf("r-%d", i), testTime, TxnRequestType, TxnRequest{Ops: []TxnOp{Create(tableZones, &z)}})
		}
		return logs
	}
	for _, size := range []int{1, 16, 64, 256} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			logs := mk(b.N)
			f := New(nil)
			if resp := f.Apply(makeLog(t, 1, BootstrapRequestType, false, testBootstrap())); resp != nil {
				b.Fatal(resp)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < len(logs); i += size {
				for _, r := range f.ApplyBatch(logs[i:min(i+size, len(logs))]) {
					if r != nil {
						b.Fatal(r)
					}
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}
