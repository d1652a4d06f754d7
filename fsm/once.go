package fsm

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
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
	// No index by expiry: each would cost every remembered request about
	// 500 bytes (a server remembers 100 requests a second for ten minutes
	// while VMs are deployed), and forgetRequests finds expired ones
	// without it.
	RegisterTable(TableDef{
		Name: tableRequests, Noun: "request", Snapshot: RequestSnapshot, New: func() Object { return new(AppliedRequest) },
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

// DecodeOnce decodes the body of a OnceRequestType entry.
func DecodeOnce(body []byte) (*OnceRequest, error) {
	var req OnceRequest
	if err := decodeJSON(body, &req); err != nil {
		return nil, fmt.Errorf("decode once-request: %w", err)
	}
	return &req, nil
}

// IsOnce reports whether an encoded entry is a OnceRequest, safe to commit
// again after an uncertain outcome.
func IsOnce(data []byte) bool {
	env, err := DecodeEnvelope(data)
	return err == nil && env.Type == OnceRequestType
}

// forgetSweep is how many remembered requests each apply looks at to
// forget the expired ones: a request is forgotten some time after it
// expires, when a sweep passes it. Sweeps start at a point of the ID order
// drawn from the entry's time, so with random request IDs each looks at a
// random stretch of the table, and the table holds about 1/(1-1/16) times
// the requests of the window, the expired ones not yet swept.
const forgetSweep = 16

// forgetRequests drops remembered requests that expired before now (the
// proposer's clock of the entry being applied, so every replica agrees)
// among the forgetSweep that follow sweepStart(now) in ID order, wrapping
// around. A request is never forgotten before it expires, so a repeat
// within OnceWindow is always answered from the first outcome, as when
// expired requests were forgotten in order of expiry; only how long an
// expired one lingers differs.
func forgetRequests(txn *memdb.Txn, now uint64) {
	start := sweepStart(now)
	it, err := txn.LowerBound(tableRequests, "id", start)
	if err != nil {
		return
	}
	var old []any
	wrapped := false
	for seen := 0; seen < forgetSweep; {
		raw := it.Next()
		if raw == nil {
			if wrapped {
				break
			}
			wrapped = true
			if it, err = txn.Get(tableRequests, "id"); err != nil {
				break
			}
			continue
		}
		r := raw.(*AppliedRequest)
		if wrapped && r.ID >= start {
			break // around the whole table
		}
		seen++
		if r.Expires < now {
			old = append(old, raw)
		}
	}
	for _, o := range old {
		_ = txn.Delete(tableRequests, o)
	}
}

// sweepStart is a point in the ID order of UUIDs drawn from t: eight hex
// digits of a mix of its bits (splitmix64), spread evenly over the IDs
// whatever the spacing of the times.
func sweepStart(t uint64) string {
	z := t + 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(z>>32))
	return hex.EncodeToString(b[:])
}
