package fsm

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"

	jsonv2 "github.com/go-json-experiment/json"
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
//
// Decoding a record (JSON) costs about as much as inserting it into the
// store, and only the insert must run on one goroutine (a memdb write
// transaction is not safe for concurrent use). So the stream is read in
// batches of records that decoders turn into rows concurrently while one
// goroutine inserts the batches in stream order. Tallies are derived
// state: decoders count the rows and the counts are written once at the
// end, instead of two tally rows rewritten per row restored.
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
	tallies, err := restoreRecords(br, func(b *restoreBatch) error {
		for i, row := range b.rows {
			if row == nil {
				continue // a record type this build may skip
			}
			if err := txn.Insert(b.tables[i].table, row); err != nil {
				return fmt.Errorf("restore %s record: %w", b.tables[i].table, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, hdr, err
	}
	keys := make([]string, 0, len(tallies))
	for k := range tallies {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := txn.Insert(tableTallies, &tally{Key: k, N: tallies[k]}); err != nil {
			return nil, hdr, fmt.Errorf("restore tallies: %w", err)
		}
	}
	txn.Commit()
	return store, hdr, nil
}

// restoreBatchSize is how many records a decoder takes at a time: large
// enough that handing batches around costs nothing next to decoding them,
// small enough that the batches in flight hold little memory.
const restoreBatchSize = 512

// restoreBatch is a run of consecutive records of a snapshot stream: read
// as frames, then decoded into rows.
type restoreBatch struct {
	types  []SnapshotType
	bodies [][]byte
	tables []*snapshotTable // per record; nil rows for skipped ones
	rows   []any
	// tallies counts the batch's rows per tally key (tallyKeys).
	tallies map[string]int
	err     error
	done    chan struct{} // closed when decoded
}

// restoreRecords reads the records of br in batches, decodes the batches
// on GOMAXPROCS goroutines and calls insert with each decoded batch, in
// stream order, on the calling goroutine. It returns the summed tallies
// of every row, or the first error of reading, decoding or insert.
func restoreRecords(br *bufio.Reader, insert func(*restoreBatch) error) (map[string]int, error) {
	workers := runtime.GOMAXPROCS(0)
	todo := make(chan *restoreBatch, workers)
	inOrder := make(chan *restoreBatch, 2*workers)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range todo {
				b.err = b.decode()
				close(b.done)
			}
		}()
	}
	// The reader ends inOrder with a batch that carries its error (or
	// io.EOF at the end of the stream).
	go func() {
		defer close(inOrder)
		defer close(todo)
		for {
			b, err := readBatch(br)
			if b != nil {
				select {
				case todo <- b:
				case <-stop:
					return
				}
				select {
				case inOrder <- b:
				case <-stop:
					return
				}
			}
			if err != nil {
				done := make(chan struct{})
				close(done)
				select {
				case inOrder <- &restoreBatch{err: err, done: done}:
				case <-stop:
				}
				return
			}
		}
	}()
	defer wg.Wait()
	defer close(stop)
	tallies := map[string]int{}
	for b := range inOrder {
		<-b.done
		if errors.Is(b.err, io.EOF) {
			return tallies, nil
		}
		if b.err != nil {
			return nil, b.err
		}
		if err := insert(b); err != nil {
			return nil, err
		}
		for k, n := range b.tallies {
			tallies[k] += n
		}
	}
	return nil, fmt.Errorf("read snapshot: stream ended without its end") // unreachable: the reader always sends a last batch
}

// readBatch reads up to restoreBatchSize records. At the end of the
// stream it returns what it read and io.EOF.
func readBatch(br *bufio.Reader) (*restoreBatch, error) {
	var b *restoreBatch
	for range restoreBatchSize {
		tb, err := br.ReadByte()
		if errors.Is(err, io.EOF) {
			return b, io.EOF
		}
		if err != nil {
			return b, fmt.Errorf("read snapshot record: %w", err)
		}
		body, err := readFrame(br)
		if err != nil {
			return b, err
		}
		if b == nil {
			b = &restoreBatch{done: make(chan struct{})}
		}
		b.types, b.bodies = append(b.types, SnapshotType(tb)), append(b.bodies, body)
	}
	return b, nil
}

// decode turns the batch's records into rows and counts their tallies.
func (b *restoreBatch) decode() error {
	b.tables, b.rows = make([]*snapshotTable, len(b.types)), make([]any, len(b.types))
	for i, typ := range b.types {
		t, row, err := decodeRecord(typ, b.bodies[i])
		if err != nil {
			return err
		}
		b.tables[i], b.rows[i] = t, row
		if row == nil {
			continue
		}
		if def := tableDefs[t.table]; def != nil && def.Tally != nil {
			if acct, counted := def.Tally(row.(Object)); counted {
				if b.tallies == nil {
					b.tallies = map[string]int{}
				}
				for _, k := range tallyKeys(t.table, acct) {
					b.tallies[k]++
				}
			}
		}
	}
	b.bodies = nil // done with the frames: let them go before the insert
	return nil
}

// decodeJSON decodes what encoding/json wrote: a snapshot's record, the
// object of a create or update in a committed transaction, or a command's
// body (decode, DecodeOnce). It uses the JSON v2 decoder
// (github.com/go-json-experiment/json, which Go's encoding/json/v2 grew
// from): on a VM row it is about 2.8 times as fast as encoding/json and
// allocates 2 times instead of 26, and the rows it makes hold less memory.
// Everything it reads is written by encoding/json with the exact field
// names, so the two decoders' differences (v2 matches names by case and
// refuses duplicate names and invalid UTF-8) do not arise;
// TestSnapshotRecordsKeepEveryField and TestCommandBodiesKeepEveryField
// check that every field of every table and command decodes as
// encoding/json decodes it. Encoding stays with encoding/json, which is
// faster at it.
func decodeJSON(body []byte, row any) error {
	return jsonv2.Unmarshal(body, row)
}

// decodeRecord decodes one record into a new row of its table, with its
// repeated fields interned. A record of an unknown type flagged
// IgnoreUnknownTypeFlag decodes to no row; any other unknown type is an
// error.
func decodeRecord(typ SnapshotType, body []byte) (*snapshotTable, any, error) {
	for i := range snapshotTables {
		t := &snapshotTables[i]
		if t.typ != typ {
			continue
		}
		obj := t.alloc()
		if err := decodeJSON(body, obj); err != nil {
			return nil, nil, fmt.Errorf("decode %s record: %w", t.table, err)
		}
		internRow(obj)
		return t, obj, nil
	}
	if SnapshotType(IgnoreUnknownTypeFlag)&typ != 0 {
		return nil, nil, nil
	}
	return nil, nil, fmt.Errorf("%w: unknown record type %d", ErrSnapshotFormat, typ)
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
