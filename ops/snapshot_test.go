package ops

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/stratus-cloud/stratus/fsm"
)

// testBackup writes a snapshot file of a store with a few settings and zones.
func testBackup(t *testing.T) []byte {
	t.Helper()
	f := fsm.New(nil)
	idx := uint64(1)
	for _, name := range []string{"a", "b", "c"} {
		if err := f.ApplyCommand(idx, fsm.ConfigSetRequestType, fsm.ConfigSetRequest{Setting: fsm.Setting{Name: "test." + name, Value: name}}); err != nil {
			t.Fatal(err)
		}
		idx++
	}
	for _, name := range []string{"z1", "z2"} {
		z := fsm.Zone{ID: "id-" + name, Name: name, NetworkType: "Advanced", AllocationState: "Enabled"}
		if err := f.ApplyCommand(idx, fsm.ZoneUpsertRequestType, fsm.ZoneUpsertRequest{Zone: z, Create: true}); err != nil {
			t.Fatal(err)
		}
		idx++
	}
	var buf bytes.Buffer
	created := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	bw, err := NewBackupWriter(&buf, BackupHeader{ClusterID: "cid", ServerID: "s1", Version: "test", Created: created})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.State().WriteSnapshot(bw, f.AppliedIndex()); err != nil {
		t.Fatal(err)
	}
	if err := bw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestBackupRoundTripAndInspect(t *testing.T) {
	data := testBackup(t)
	b, err := OpenBackup(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if b.Header.ClusterID != "cid" || b.Header.ServerID != "s1" || len(b.SHA256) != 64 {
		t.Fatalf("header %+v sha %q", b.Header, b.SHA256)
	}
	in, err := Inspect(b)
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	if in.AppliedIndex != 5 || in.FormatVersion != fsm.SnapshotFormatVersion {
		t.Fatalf("inspection %+v", in)
	}
	got := map[string]int{}
	for _, tc := range in.Tables {
		got[tc.Table] = tc.Records
	}
	if got["settings"] != 3 || got["zones"] != 2 {
		t.Fatalf("counts %v", got)
	}
	// The stream inside restores into the same state.
	if _, err := b.Stream.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	st, hdr, err := fsm.ReadSnapshot(b.Stream)
	if err != nil || hdr.AppliedIndex != 5 {
		t.Fatalf("read stream: %v %+v", err, hdr)
	}
	if n, err := st.Count("zones", "id"); err != nil || n != 2 {
		t.Fatalf("zones restored: %d %v", n, err)
	}
}

func TestBackupCorruptionRefused(t *testing.T) {
	data := testBackup(t)
	for _, at := range []int{0, 20, len(data) / 2, len(data) - 40, len(data) - 1} {
		bad := append([]byte(nil), data...)
		bad[at] ^= 0x01
		_, err := OpenBackup(bytes.NewReader(bad), int64(len(bad)))
		if err == nil {
			t.Fatalf("flipped byte %d of %d: file accepted", at, len(data))
		}
		if at >= 16 && !errors.Is(err, ErrBackupChecksum) {
			t.Fatalf("flipped byte %d: want checksum error, got %v", at, err)
		}
	}
	for _, n := range []int{0, 10, len(data) - 1, len(data) / 2} {
		if _, err := OpenBackup(bytes.NewReader(data[:n]), int64(n)); err == nil {
			t.Fatalf("truncated to %d bytes: accepted", n)
		}
	}
}
