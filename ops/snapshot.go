package ops

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"sort"
	"time"

	"github.com/stratus-cloud/stratus/fsm"
)

// Backup files, as `stratus operator snapshot save` writes them:
//
//	"STRATUS-BACKUP" + uint16 file version (big endian)
//	uvarint length + JSON BackupHeader (cluster, server, time of the save)
//	the FSM snapshot stream, exactly as raft snapshots hold it
//	    ("STRATUS-SNAPSHOT", its own versioned header, typed records)
//	trailer: "STRATUS-SHA256.." (16 bytes) + SHA-256 of every byte before
//	    the trailer (32 bytes)
//
// The checksum sits in the file itself so a copy cannot lose it, and a
// truncated download (the server failed half way, after the HTTP status
// was sent) has no valid trailer and is refused.

// BackupFileVersion is the version of the envelope this build writes.
const BackupFileVersion uint16 = 1

const (
	backupMagic   = "STRATUS-BACKUP"
	trailerMagic  = "STRATUS-SHA256.."
	trailerSize   = len(trailerMagic) + sha256.Size
	fsmMagic      = "STRATUS-SNAPSHOT" // fsm's stream magic, checked by ReadSnapshot too
	maxHeaderSize = 1 << 20
)

// Sentinel errors of backup files.
var (
	// ErrBackupChecksum means the file's content does not match its checksum:
	// it was truncated or changed after it was written.
	ErrBackupChecksum = errors.New("snapshot file checksum mismatch")
	// ErrBackupFormat means the file is not a Stratus snapshot file this
	// build reads.
	ErrBackupFormat = errors.New("not a stratus snapshot file")
)

// BackupHeader describes where and when a snapshot file was saved.
type BackupHeader struct {
	ClusterID string    `json:"cluster_id"`
	ServerID  string    `json:"server_id"`
	Version   string    `json:"stratus_version"`
	Created   time.Time `json:"created"`
}

// BackupWriter writes a snapshot file: the envelope around an FSM snapshot
// stream written into it, and the checksum trailer on Close.
type BackupWriter struct {
	w   io.Writer
	sum hash.Hash
	n   int64
}

// NewBackupWriter writes the file's magic and header to w.
func NewBackupWriter(w io.Writer, hdr BackupHeader) (*BackupWriter, error) {
	b := &BackupWriter{w: w, sum: sha256.New()}
	hb, err := json.Marshal(hdr)
	if err != nil {
		return nil, fmt.Errorf("encode snapshot file header: %w", err)
	}
	pre := make([]byte, 0, len(backupMagic)+2+binary.MaxVarintLen64+len(hb))
	pre = append(pre, backupMagic...)
	pre = binary.BigEndian.AppendUint16(pre, BackupFileVersion)
	pre = binary.AppendUvarint(pre, uint64(len(hb)))
	pre = append(pre, hb...)
	if _, err := b.Write(pre); err != nil {
		return nil, err
	}
	return b, nil
}

// Write adds bytes of the FSM snapshot stream.
func (b *BackupWriter) Write(p []byte) (int, error) {
	n, err := b.w.Write(p)
	b.sum.Write(p[:n])
	b.n += int64(n)
	if err != nil {
		return n, fmt.Errorf("write snapshot file: %w", err)
	}
	return n, nil
}

// Size is how many bytes were written so far, header included.
func (b *BackupWriter) Size() int64 { return b.n }

// Close writes the checksum trailer; it does not close the underlying writer.
func (b *BackupWriter) Close() error {
	t := append([]byte(trailerMagic), b.sum.Sum(nil)...)
	if _, err := b.w.Write(t); err != nil {
		return fmt.Errorf("write snapshot file trailer: %w", err)
	}
	return nil
}

// Backup is a snapshot file whose envelope and checksum were verified.
type Backup struct {
	Header      BackupHeader
	FileVersion uint16
	SHA256      string // hex, as stored in the trailer (and recomputed)
	Size        int64  // the whole file
	// Stream reads the FSM snapshot stream inside the file.
	Stream *io.SectionReader
}

// OpenBackup checks a snapshot file of size bytes: its magic, its header and
// its checksum (reading the whole file once). It does not parse the
// records; Inspect does.
func OpenBackup(r io.ReaderAt, size int64) (*Backup, error) {
	minSize := int64(len(backupMagic) + 2 + 1 + trailerSize)
	if size < minSize {
		return nil, fmt.Errorf("%w: only %d bytes", ErrBackupFormat, size)
	}
	head := make([]byte, len(backupMagic)+2)
	if _, err := r.ReadAt(head, 0); err != nil {
		return nil, fmt.Errorf("read snapshot file: %w", err)
	}
	if string(head[:len(backupMagic)]) != backupMagic {
		return nil, fmt.Errorf("%w: missing %q magic", ErrBackupFormat, backupMagic)
	}
	b := &Backup{FileVersion: binary.BigEndian.Uint16(head[len(backupMagic):]), Size: size}
	if b.FileVersion != BackupFileVersion {
		return nil, fmt.Errorf("%w: file version %d, this build reads version %d", ErrBackupFormat, b.FileVersion, BackupFileVersion)
	}
	// Checksum first: a corrupted file gets the clearest message there is,
	// before any of its bytes are trusted.
	body := size - int64(trailerSize)
	trailer := make([]byte, trailerSize)
	if _, err := r.ReadAt(trailer, body); err != nil {
		return nil, fmt.Errorf("read snapshot file trailer: %w", err)
	}
	if string(trailer[:len(trailerMagic)]) != trailerMagic {
		return nil, fmt.Errorf("%w: no checksum trailer at the end (the file is truncated or was not written by stratus)", ErrBackupChecksum)
	}
	want := trailer[len(trailerMagic):]
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(r, 0, body)); err != nil {
		return nil, fmt.Errorf("read snapshot file: %w", err)
	}
	got := h.Sum(nil)
	if string(got) != string(want) {
		return nil, fmt.Errorf("%w: the file's content hashes to %s, its trailer says %s; the file is damaged: do not restore it",
			ErrBackupChecksum, hex.EncodeToString(got), hex.EncodeToString(want))
	}
	b.SHA256 = hex.EncodeToString(got)

	br := bufio.NewReader(io.NewSectionReader(r, int64(len(head)), body-int64(len(head))))
	hl, err := binary.ReadUvarint(br)
	if err != nil || hl > maxHeaderSize {
		return nil, fmt.Errorf("%w: bad header length", ErrBackupFormat)
	}
	hb := make([]byte, hl)
	if _, err := io.ReadFull(br, hb); err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrBackupFormat, err)
	}
	if err := json.Unmarshal(hb, &b.Header); err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrBackupFormat, err)
	}
	start := int64(len(head)) + int64(uvarintLen(hl)) + int64(hl)
	if start > body {
		return nil, fmt.Errorf("%w: header runs past the end", ErrBackupFormat)
	}
	b.Stream = io.NewSectionReader(r, start, body-start)
	return b, nil
}

func uvarintLen(v uint64) int {
	var buf [binary.MaxVarintLen64]byte
	return binary.PutUvarint(buf[:], v)
}

// TableCount is how many records of one type a snapshot holds, and how
// many bytes of the stream they take (framing included).
type TableCount struct {
	Table   string `json:"table"`
	Type    uint8  `json:"type"`
	Records int    `json:"records"`
	Bytes   int64  `json:"bytes"`
}

// Inspection is what `snapshot inspect` reports about a verified file.
type Inspection struct {
	Header         BackupHeader `json:"header"`
	FileVersion    uint16       `json:"file_version"`
	FormatVersion  uint16       `json:"format_version"`
	CommandVersion uint16       `json:"command_version"`
	AppliedIndex   uint64       `json:"applied_index"`
	SHA256         string       `json:"sha256"`
	Size           int64        `json:"size"`
	Tables         []TableCount `json:"tables"`
}

// Inspect parses the snapshot stream of a verified file: fsm.ReadSnapshot
// must accept it whole (the same check a restore makes before it touches
// the cluster), and the records are counted by type.
func Inspect(b *Backup) (*Inspection, error) {
	if _, err := b.Stream.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("rewind snapshot stream: %w", err)
	}
	_, hdr, err := fsm.ReadSnapshot(b.Stream)
	if err != nil {
		return nil, fmt.Errorf("snapshot stream does not restore on this build: %w", err)
	}
	counts, err := countRecords(io.NewSectionReader(b.Stream, 0, b.Stream.Size()))
	if err != nil {
		return nil, err
	}
	in := &Inspection{Header: b.Header, FileVersion: b.FileVersion, FormatVersion: hdr.FormatVersion,
		CommandVersion: hdr.CommandVersion, AppliedIndex: hdr.AppliedIndex, SHA256: b.SHA256, Size: b.Size}
	for typ, n := range counts {
		in.Tables = append(in.Tables, TableCount{Table: tableName(typ), Type: uint8(typ), Records: n.records, Bytes: n.bytes})
	}
	sort.Slice(in.Tables, func(i, j int) bool { return in.Tables[i].Type < in.Tables[j].Type })
	return in, nil
}

// recordCount is what countRecords finds of one record type.
type recordCount struct {
	records int
	bytes   int64
}

// countRecords walks the framing of an fsm snapshot stream: magic, header
// frame, then a type byte and a frame per record.
func countRecords(r io.Reader) (map[fsm.SnapshotType]recordCount, error) {
	br := bufio.NewReader(r)
	magic := make([]byte, len(fsmMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != fsmMagic {
		return nil, fmt.Errorf("%w: missing snapshot stream magic", ErrBackupFormat)
	}
	skip := func() (int64, error) {
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return 0, fmt.Errorf("%w: frame length: %w", ErrBackupFormat, err)
		}
		if _, err := br.Discard(int(n)); err != nil {
			return 0, fmt.Errorf("%w: frame: %w", ErrBackupFormat, err)
		}
		return int64(uvarintLen(n)) + int64(n), nil
	}
	if _, err := skip(); err != nil {
		return nil, err
	}
	counts := map[fsm.SnapshotType]recordCount{}
	for {
		tb, err := br.ReadByte()
		if errors.Is(err, io.EOF) {
			return counts, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read snapshot record: %w", err)
		}
		n, err := skip()
		if err != nil {
			return nil, err
		}
		c := counts[fsm.SnapshotType(tb)]
		c.records++
		c.bytes += 1 + n // the type byte, then the frame
		counts[fsm.SnapshotType(tb)] = c
	}
}

// tableNames names the record types for inspect; a type missing here (a
// table newer than this list) shows as "type N".
var tableNames = map[fsm.SnapshotType]string{
	fsm.MetaSnapshot: "meta", fsm.SettingSnapshot: "settings", fsm.DomainSnapshot: "domains",
	fsm.AccountSnapshot: "accounts", fsm.UserSnapshot: "users", fsm.ZoneSnapshot: "zones",
	fsm.RoleSnapshot: "roles", fsm.RolePermissionSnapshot: "role permissions", fsm.SessionSnapshot: "sessions",
	fsm.PodSnapshot: "pods", fsm.ClusterSnapshot: "clusters", fsm.HostSnapshot: "hosts",
	fsm.StoragePoolSnapshot: "storage pools", fsm.ImageStoreSnapshot: "image stores",
	fsm.ServiceOfferingSnapshot: "service offerings", fsm.DiskOfferingSnapshot: "disk offerings",
	fsm.TemplateSnapshot: "templates", fsm.TemplateZoneSnapshot: "template copies",
	fsm.EventSnapshot: "events", fsm.JobSnapshot: "async jobs", fsm.TagSnapshot: "tags",
	fsm.RequestSnapshot: "applied requests", fsm.VMSnapshot: "virtual machines", fsm.VolumeSnapshot: "volumes",
	fsm.VolumeSnapSnapshot: "volume snapshots", fsm.AffinityGroupSnapshot: "affinity groups",
	fsm.SSHKeyPairSnapshot: "ssh key pairs",
}

func tableName(t fsm.SnapshotType) string {
	if n, ok := tableNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type %d", t)
}
