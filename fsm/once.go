package fsm

import (
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// OnceRequestType wraps another command with a request ID so that it takes
// effect at most once however many times it is committed. A follower whose
// forwarded write was lost in flight (the leader died before answering)
// cannot know whether it committed; with this wrapper it simply sends the
// same entry again to the next leader, and the state machine answers the
// repeat with the first outcome instead of applying it twice. That turns an
// election into latency instead of an "uncertain" error for the client.
const OnceRequestType MessageType = 8

// OnceWindow is how long a request ID is remembered, measured on the
// proposers' clocks carried in the entries: far longer than any retry.
const OnceWindow = 10 * time.Minute

// tableRequests remembers applied request IDs and their outcomes.
const tableRequests = "requests"

// RequestSnapshot is the snapshot record type of remembered requests.
const RequestSnapshot SnapshotType = 63

// OnceRequest is the body of a OnceRequestType entry.
type OnceRequest struct {
	ID    string    `json:"id"`
	Time  time.Time `json:"time"`  // when the proposer made the request
	Entry []byte    `json:"entry"` // the wrapped, encoded command
}

// AppliedRequest is what the store remembers of an applied OnceRequest.
type AppliedRequest struct {
	ID      string      `json:"id"`
	Expires uint64      `json:"expires"` // unix nanoseconds after which it may be forgotten
	Index   uint64      `json:"index"`   // where it first applied
	Err     *StateError `json:"err,omitempty"`
	Indexes
}

// GetID returns the request ID.
func (a *AppliedRequest) GetID() string { return a.ID }

func init() {
	RegisterTable(TableDef{
		Name: tableRequests, Noun: "request", Snapshot: RequestSnapshot, New: func() Object { return new(AppliedRequest) },
		Indexes: map[string]*memdb.IndexSchema{
			"expires": {Indexer: &memdb.UintFieldIndex{Field: "Expires"}},
		},
	})
}

// WrapOnce encodes a command and wraps it with a request ID.
func WrapOnce(id string, now time.Time, t MessageType, body any) ([]byte, error) {
	inner, err := Encode(t, false, body)
	if err != nil {
		return nil, err
	}
	return Encode(OnceRequestType, false, OnceRequest{ID: id, Time: now, Entry: inner})
}

// IsOnce reports whether an encoded entry is a OnceRequest, safe to commit
// again after an uncertain outcome.
func IsOnce(data []byte) bool {
	env, err := DecodeEnvelope(data)
	return err == nil && env.Type == OnceRequestType
}

// maxForgetPerApply bounds the pruning work of one entry.
const maxForgetPerApply = 256

// forgetRequests drops remembered requests that expired before now (the
// proposer's clock of the entry being applied, so every replica agrees).
func forgetRequests(txn *memdb.Txn, now uint64) {
	it, err := txn.Get(tableRequests, "expires")
	if err != nil {
		return
	}
	var old []any
	for raw := it.Next(); raw != nil && len(old) < maxForgetPerApply; raw = it.Next() {
		if raw.(*AppliedRequest).Expires >= now {
			break
		}
		old = append(old, raw)
	}
	for _, o := range old {
		_ = txn.Delete(tableRequests, o)
	}
}
