package fsm

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"testing"
)

// deploysGolden is the snapshot the build before the store's memory work
// (e522594, with its indexes, requests table and no interning) wrote after
// applying the entries of 50 deploys over 10 hosts that memCloud makes.
// To write it again, copy this file and memory_bench_test.go into a
// checkout of that build and run this test with STRATUS_WRITE_GOLDEN=1.
const deploysGolden = "testdata/deploys-50-e522594.snap.gz"

// deploysSnapshot applies the golden's entries on this build and returns
// its snapshot.
func deploysSnapshot(t *testing.T) []byte {
	t.Helper()
	c := newMemCloud(t, 10)
	c.deploy(t, 50)
	var buf bytes.Buffer
	if err := c.f.State().WriteSnapshot(&buf, c.index); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// snapshotRecords is a snapshot stream without its magic and header (the
// header names this build's command version, which a tagged build
// raises).
func snapshotRecords(t *testing.T, snap []byte) []byte {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(snap))
	if _, err := io.ReadFull(br, make([]byte, len(snapshotMagic))); err != nil {
		t.Fatal(err)
	}
	if _, err := readFrame(br); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	return rest
}

// TestDeploysApplyAsThePreviousBuild: a rolling upgrade has servers of
// this build apply the log an older leader wrote and restore its
// snapshots, and older servers restore this build's. The entries of 50
// deploys applied here give, record for record, the snapshot the previous
// build wrote from them; that snapshot restores here to a state whose
// snapshot is the same again.
func TestDeploysApplyAsThePreviousBuild(t *testing.T) {
	got := deploysSnapshot(t)
	if os.Getenv("STRATUS_WRITE_GOLDEN") != "" {
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		_, _ = zw.Write(got)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(deploysGolden, gz.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	f, err := os.Open(deploysGolden)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	golden, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if want := snapshotRecords(t, golden); !bytes.Equal(snapshotRecords(t, got), want) {
		t.Fatalf("the same entries give a different state than the previous build's (%d bytes of records, want %d)",
			len(snapshotRecords(t, got)), len(want))
	}
	restored, _, err := ReadSnapshot(bytes.NewReader(golden))
	if err != nil {
		t.Fatalf("restore the previous build's snapshot: %v", err)
	}
	var again bytes.Buffer
	if err := restored.WriteSnapshot(&again, 1); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snapshotRecords(t, again.Bytes()), snapshotRecords(t, golden)) {
		t.Fatal("the previous build's snapshot restores to a different state")
	}
	v, err := First[VM](restored, nil, TableVMs, "create")
	if err != nil || v == nil {
		t.Fatalf("no VM restored: %v", err)
	}
	if n, _ := restored.Count(TableVMs, "host", v.HostID); n == 0 {
		t.Fatal("restored VMs are not found by host")
	}
}
