package fsm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"testing"
)

// withHeader rewrites a snapshot stream's header with another format and
// command version, keeping its records: a snapshot as an older build
// wrote it (the record encoding has not changed between the formats this
// build reads).
func withHeader(t *testing.T, snap []byte, format, cmdVersion uint16) []byte {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(snap))
	if _, err := io.ReadFull(br, make([]byte, len(snapshotMagic))); err != nil {
		t.Fatal(err)
	}
	hb, err := readFrame(br)
	if err != nil {
		t.Fatal(err)
	}
	var hdr SnapshotHeader
	if err := json.Unmarshal(hb, &hdr); err != nil {
		t.Fatal(err)
	}
	hdr.FormatVersion, hdr.CommandVersion = format, cmdVersion
	nb, _ := json.Marshal(hdr)
	var out bytes.Buffer
	out.WriteString(snapshotMagic)
	w := bufio.NewWriter(&out)
	if err := writeFrame(w, nb); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(w, br); err != nil {
		t.Fatal(err)
	}
	_ = w.Flush()
	return out.Bytes()
}

// TestSnapshotOfThePreviousFormatRestores: a rolling upgrade restores
// snapshots written by the build before (format version N-1, command
// version N-1) on this one, so a new server can join from an old leader's
// snapshot. Formats newer than this build, or older than N-1, are refused.
func TestSnapshotOfThePreviousFormatRestores(t *testing.T) {
	src := fullState(t)
	var cur bytes.Buffer
	if err := src.State().WriteSnapshot(&cur, 5); err != nil {
		t.Fatal(err)
	}
	twoBack := SnapshotFormatVersion
	twoBack -= 2
	prevCmd := CommandVersion - 1
	if prevCmd == 0 {
		prevCmd = 1 // no command version before 1
	}
	for _, tc := range []struct {
		name   string
		format uint16
		ok     bool
	}{
		{"current format", SnapshotFormatVersion, true},
		{"previous format", SnapshotFormatVersion - 1, true},
		{"next format", SnapshotFormatVersion + 1, false},
		{"two formats back", twoBack, false}, // 65535 while the format is 1: then it reads as newer, refused too
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := withHeader(t, cur.Bytes(), tc.format, prevCmd)
			dst := New(nil)
			err := dst.Restore(ioNopCloser{bytes.NewReader(data)})
			if !tc.ok {
				if !errors.Is(err, ErrSnapshotFormat) {
					t.Fatalf("format %d: err = %v, want ErrSnapshotFormat", tc.format, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("format %d: %v", tc.format, err)
			}
			if dst.AppliedIndex() != 5 {
				t.Fatalf("applied index %d, want 5", dst.AppliedIndex())
			}
			z1, _ := src.State().Zones(nil)
			z2, _ := dst.State().Zones(nil)
			u1, _ := src.State().Users(nil)
			u2, _ := dst.State().Users(nil)
			if len(z1) == 0 || len(u1) == 0 || !reflect.DeepEqual(z1, z2) || !reflect.DeepEqual(u1, u2) {
				t.Fatalf("restored state differs: zones %d/%d users %d/%d", len(z1), len(z2), len(u1), len(u2))
			}
		})
	}
}
