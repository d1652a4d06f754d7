package fsm

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	memdb "github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"
)

// SnapshotFormatVersion is the version of the snapshot stream this build
// writes. Restore accepts this version and the one before it.
const SnapshotFormatVersion uint16 = 1

// snapshotMagic opens every Stratus snapshot stream.
const snapshotMagic = "STRATUS-SNAPSHOT"

// SnapshotHeader follows the magic and names the format.
type SnapshotHeader struct {
	FormatVersion  uint16 `json:"format_version"`
	CommandVersion uint16 `json:"command_version"`
	AppliedIndex   uint64 `json:"applied_index"`
}

// SnapshotType tags each record of a snapshot stream. Append only; records
// with IgnoreUnknownTypeFlag set may be skipped by an older restorer.
type SnapshotType uint8

// Record types.
const (
	MetaSnapshot    SnapshotType = 1
	SettingSnapshot SnapshotType = 2
	DomainSnapshot  SnapshotType = 3
	AccountSnapshot SnapshotType = 4
	UserSnapshot    SnapshotType = 5
	ZoneSnapshot    SnapshotType = 6
)

// snapshotTables maps each record type to its table and a constructor of an
// empty row, so writing and restoring walk one list.
type snapshotTable struct {
	typ   SnapshotType
	table string
	index string
	alloc func() any
}

var snapshotTables = []snapshotTable{
	{MetaSnapshot, tableMeta, "id", func() any { return new(Meta) }},
	{SettingSnapshot, tableSettings, "id", func() any { return new(Setting) }},
}

// ErrSnapshotFormat means a snapshot stream is not one this build can read.
var ErrSnapshotFormat = errors.New("unsupported snapshot format")

type fsmSnapshot struct {
	state   *Store
	applied uint64
}

// Snapshot captures the store; Persist streams it later without blocking
// Apply (go-memdb snapshots are immutable).
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{state: f.State().Snapshot(), applied: f.AppliedIndex()}, nil
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.state.WriteSnapshot(sink, s.applied); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}

// snapshotBuffer is the buffer of snapshot streams: a snapshot of 100,000
// VMs is about 100 MB, which 4 KiB writes would cut into some 25,000 system
// calls on raft's file sink and its network transport.
const snapshotBuffer = 64 << 10

// WriteSnapshot streams the store: magic, header, then one record per row.
// It reads a memdb snapshot row by row and holds only one record and the
// buffer in memory, never a copy of the state.
func (s *Store) WriteSnapshot(w io.Writer, applied uint64) error {
	bw := bufio.NewWriterSize(w, snapshotBuffer)
	hdr, err := json.Marshal(SnapshotHeader{FormatVersion: SnapshotFormatVersion, CommandVersion: CommandVersion, AppliedIndex: applied})
	if err != nil {
		return fmt.Errorf("encode snapshot header: %w", err)
	}
	if _, err := bw.WriteString(snapshotMagic); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	if err := writeFrame(bw, hdr); err != nil {
		return err
	}
	txn := s.db.Txn(false)
	for _, t := range snapshotTables {
		it, err := txn.Get(t.table, t.index)
		if err != nil {
			return fmt.Errorf("snapshot %s: %w", t.table, err)
		}
		for raw := it.Next(); raw != nil; raw = it.Next() {
			b, err := json.Marshal(raw)
			if err != nil {
				return fmt.Errorf("encode %s record: %w", t.table, err)
			}
			if err := bw.WriteByte(byte(t.typ)); err != nil {
				return fmt.Errorf("write snapshot: %w", err)
			}
			if err := writeFrame(bw, b); err != nil {
				return err
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return nil
}

func writeFrame(w *bufio.Writer, b []byte) error {
	var n [binary.MaxVarintLen64]byte
	if _, err := w.Write(n[:binary.PutUvarint(n[:], uint64(len(b)))]); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return nil
}

func readFrame(r *bufio.Reader) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, fmt.Errorf("read snapshot frame length: %w", err)
	}
	const maxFrame = 64 << 20
	if n > maxFrame {
		return nil, fmt.Errorf("%w: frame of %d bytes", ErrSnapshotFormat, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("read snapshot frame: %w", err)
	}
	return b, nil
}

// ReadSnapshot builds a new store from a snapshot stream.
func ReadSnapshot(r io.Reader) (*Store, SnapshotHeader, error) {
	br := bufio.NewReaderSize(r, snapshotBuffer)
	var hdr SnapshotHeader
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != snapshotMagic {
		return nil, hdr, fmt.Errorf("%w: missing stratus snapshot magic", ErrSnapshotFormat)
	}
	hb, err := readFrame(br)
	if err != nil {
		return nil, hdr, err
	}
	if err := json.Unmarshal(hb, &hdr); err != nil {
		return nil, hdr, fmt.Errorf("%w: header: %w", ErrSnapshotFormat, err)
	}
	if hdr.FormatVersion > SnapshotFormatVersion || hdr.FormatVersion+1 < SnapshotFormatVersion {
		return nil, hdr, fmt.Errorf("%w: version %d, this build reads %d and %d",
			ErrSnapshotFormat, hdr.FormatVersion, SnapshotFormatVersion-1, SnapshotFormatVersion)
	}
	store := NewStore()
	txn := store.db.Txn(true)
	defer txn.Abort()
	for {
		tb, err := br.ReadByte()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, hdr, fmt.Errorf("read snapshot record: %w", err)
		}
		body, err := readFrame(br)
		if err != nil {
			return nil, hdr, err
		}
		if err := restoreRecord(txn, SnapshotType(tb), body); err != nil {
			return nil, hdr, err
		}
	}
	txn.Commit()
	return store, hdr, nil
}

func restoreRecord(txn *memdb.Txn, typ SnapshotType, body []byte) error {
	for _, t := range snapshotTables {
		if t.typ != typ {
			continue
		}
		obj := t.alloc()
		if err := json.Unmarshal(body, obj); err != nil {
			return fmt.Errorf("decode %s record: %w", t.table, err)
		}
		internRow(obj)
		if err := txn.Insert(t.table, obj); err != nil {
			return fmt.Errorf("restore %s record: %w", t.table, err)
		}
		if row, ok := obj.(Object); ok {
			return retally(txn, tableDefs[t.table], nil, row)
		}
		return nil
	}
	if SnapshotType(IgnoreUnknownTypeFlag)&typ != 0 {
		return nil
	}
	return fmt.Errorf("%w: unknown record type %d", ErrSnapshotFormat, typ)
}

// Restore replaces the state with a snapshot: it builds a new store from the
// stream, then swaps it in whole.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	store, hdr, err := ReadSnapshot(rc)
	if err != nil {
		return err
	}
	f.mu.Lock()
	old := f.state
	f.state = store
	f.mu.Unlock()
	old.abandon() // wake everyone blocked on the old store's watches
	f.setApplied(hdr.AppliedIndex)
	f.logger.Info("restored snapshot", "applied_index", hdr.AppliedIndex, "format_version", hdr.FormatVersion)
	return nil
}
