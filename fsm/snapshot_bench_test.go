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

// bigStore is a store of n VMs on one zone with what a deploy leaves
// beside each in a real cluster (the mix of a scale run's snapshot): a
// root volume, the finished deploy job, two events and two remembered
// requests. Rows are inserted directly (the appliers' checks are not what
// this measures).
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
		job := &AsyncJob{ID: fmt.Sprintf("%08x-0000-4000-9000-%012x", i, i), Cmd: "deployVirtualMachine", AccountID: "a-eng", DomainID: "d-eng", UserID: "u-1",
			Params: map[string]string{"deploy": "true", "placed": "true", "startvm": "true", "vm": id}, Status: JobSucceeded, ResultType: "object",
			Result: []byte(`{"virtualmachine":{"id":"` + id + `"}}`), InstanceType: "VirtualMachine", InstanceID: id, Attempts: 1, Created: testTime, Completed: testTime}
		job.CreateIndex, job.ModifyIndex = uint64(i+1), uint64(i+1)
		type row struct {
			table string
			row   any
		}
		rows := []row{{TableVMs, vm}, {TableVolumes, vol}, {TableJobs, job}}
		for e, typ := range []string{"VM.CREATE", "VM.START"} {
			ev := &Event{ID: fmt.Sprintf("%08x-0000-5000-8000-%012x", i, e), Type: typ, Level: EventInfo, State: "Completed",
				Description: "started virtual machine vm-" + id[:8] + " on host h-0000-0000", AccountID: "a-eng", DomainID: "d-eng", UserID: "u-1",
				ResourceType: "VirtualMachine", ResourceID: id, JobID: job.ID, Created: testTime}
			ev.CreateIndex, ev.ModifyIndex = uint64(i+1), uint64(i+1)
			req := &AppliedRequest{ID: fmt.Sprintf("%08x-0000-6000-8000-%012x", i, e), Expires: uint64(testTime.UnixNano()), Index: uint64(i + 1)}
			req.CreateIndex, req.ModifyIndex = uint64(i+1), uint64(i+1)
			rows = append(rows, row{TableEvents, ev}, row{tableRequests, req})
		}
		for _, r := range rows {
			if err := txn.Insert(r.table, r.row); err != nil {
				b.Fatal(err)
			}
		}
	}
	txn.Commit()
	return s
}

// BenchmarkSnapshot100kVMs writes and restores the snapshot of 100,000
// VMs and what their deploys left (bigStore): how long a new server's catch-up from a
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
