package fsm

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// MessageType identifies the command carried by a Raft log entry. Values are
// append-only: never renumber or reuse one, only add new ones at the end.
type MessageType uint8

// IgnoreUnknownTypeFlag is set on a log entry's type byte when a node that
// does not know the type may skip the entry instead of refusing it. Use it only
// for commands whose loss on an older node cannot make replicas disagree about
// anything that node serves (hints, caches, metrics).
const IgnoreUnknownTypeFlag MessageType = 0x80

// The command types. Append only.
const (
	BootstrapRequestType   MessageType = 1 // first-start seed: cluster meta, ROOT domain, admin account and user
	ZoneUpsertRequestType  MessageType = 2
	ZoneDeleteRequestType  MessageType = 3
	ConfigSetRequestType   MessageType = 4
	UserKeysSetRequestType MessageType = 5
	NoopRequestType        MessageType = 6               // carries nothing; used by tests and barriers
	TxnRequestType         MessageType = 7               // atomic operations on registered tables
	lastKnownType                      = OnceRequestType // defined in once.go
)

// CommandVersion (command_version*.go) is the highest command schema
// version this build understands. Servers gossip it; a command is written
// at the version it needs (BaseCommandVersion unless it says otherwise),
// and one above BaseCommandVersion is proposed only once every voter
// gossips at least that version (cluster.RequireCommandVersion).

// BaseCommandVersion is the version Encode writes: every build understands
// it, so a cluster in the middle of a rolling upgrade keeps writing.
const BaseCommandVersion uint16 = 1

// headerLen is the envelope header: one type byte and a big-endian uint16
// schema version.
const headerLen = 3

// Sentinel errors of the codec.
var (
	// ErrShortEntry means a log entry is too short to hold an envelope.
	ErrShortEntry = errors.New("log entry shorter than its envelope header")
	// ErrUnknownType means a log entry names a type this build does not know
	// and the entry lacks IgnoreUnknownTypeFlag.
	ErrUnknownType = errors.New("unknown command type")
	// ErrNewerVersion means a log entry was written with a schema version
	// newer than this build understands.
	ErrNewerVersion = errors.New("command schema version newer than this build")
)

func (t MessageType) String() string {
	switch t &^ IgnoreUnknownTypeFlag {
	case BootstrapRequestType:
		return "Bootstrap"
	case ZoneUpsertRequestType:
		return "ZoneUpsert"
	case ZoneDeleteRequestType:
		return "ZoneDelete"
	case ConfigSetRequestType:
		return "ConfigSet"
	case UserKeysSetRequestType:
		return "UserKeysSet"
	case NoopRequestType:
		return "Noop"
	case TxnRequestType:
		return "Txn"
	case OnceRequestType:
		return "Once"
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// Envelope is a decoded log entry.
type Envelope struct {
	Type    MessageType // without the ignore flag
	Skip    bool        // the entry carried IgnoreUnknownTypeFlag
	Version uint16
	Body    []byte
}

// Encode builds a log entry: type byte (with the skip flag if asked), schema
// version BaseCommandVersion, then the JSON body. A command that needs a
// newer version uses EncodeVersion.
func Encode(t MessageType, skippable bool, body any) ([]byte, error) {
	return EncodeVersion(t, skippable, BaseCommandVersion, body)
}

// EncodeVersion is Encode with an explicit schema version.
func EncodeVersion(t MessageType, skippable bool, version uint16, body any) ([]byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", t, err)
	}
	if skippable {
		t |= IgnoreUnknownTypeFlag
	}
	out := make([]byte, headerLen, headerLen+len(b))
	out[0] = byte(t)
	binary.BigEndian.PutUint16(out[1:3], version)
	return append(out, b...), nil
}

// DecodeEnvelope splits a log entry into its parts without judging the type.
func DecodeEnvelope(data []byte) (Envelope, error) {
	if len(data) < headerLen {
		return Envelope{}, ErrShortEntry
	}
	t := MessageType(data[0])
	return Envelope{
		Type:    t &^ IgnoreUnknownTypeFlag,
		Skip:    t&IgnoreUnknownTypeFlag != 0,
		Version: binary.BigEndian.Uint16(data[1:3]),
		Body:    data[headerLen:],
	}, nil
}
