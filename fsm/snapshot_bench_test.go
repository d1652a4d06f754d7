package fsm

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// countingWriter counts what a snapshot writes and keeps nothing.
type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// bigStore is a store of n VMs, each with a root volume, on one zone,
// inserted directly (the appliers' checks are not what this measures).
func bigStore(b *testing.B, n int) *Store {
	b.Helper()
	s := NewStore()
	txn := s.db.Txn(true)
	for i := range n {
		id := fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
		ip := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		vm := testVM(id, fmt.Sprintf("vm-%d", i), ip)
		vm.HostID, vm.State, vm.Power = fmt.Sprintf("h-%d", i%10000), VMRunning, PowerOn
		vol := &Volume{ID: "vol-" + id, Name: "ROOT-" + id[:8], AccountID: "a-eng", DomainID: "d-eng", ZoneID: "z-1", Type: VolumeRoot,
			VMID: id, PoolID: "sp-1", SizeBytes: 8 << 30, State: VolumeReady, Created: testTime}
		vm.CreateIndex, vm.ModifyIndex, vol.CreateIndex, vol.ModifyIndex = uint64(i+1), uint64(i+1), uint64(i+1), uint64(i+1)
		if err := txn.Insert(TableVMs, vm); err != nil {
			b.Fatal(err)
		}
		if err := txn.Insert(TableVolumes, vol); err != nil {
			b.Fatal(err)
		}
	}
	txn.Commit()
	return s
}

// BenchmarkSnapshot100kVMs writes and restores the snapshot of 100,000
// VMs and their root volumes: how long a new server's catch-up from a
// snapshot takes on the leader's side (write) and on its own (restore),
// and how big the stream is.
func BenchmarkSnapshot100kVMs(b *testing.B) {
	const n = 100_000
	s := bigStore(b, n)
	var buf bytes.Buffer
	if err := s.WriteSnapshot(&buf, 1); err != nil {
		b.Fatal(err)
	}
	b.Run("write", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var c countingWriter
			if err := s.Snapshot().WriteSnapshot(&c, 1); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(c.n)/(1<<20), "MiB")
		}
	})
	b.Run("restore", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			st, _, err := ReadSnapshot(bytes.NewReader(buf.Bytes()))
			if err != nil {
				b.Fatal(err)
			}
			if c, _ := st.Count(TableVMs, "id"); c != n {
				b.Fatalf("restored %d VMs, want %d", c, n)
			}
		}
	})
	_ = io.Discard
}
