package fsm

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"
)

// HostsFrom visits the hosts of one zone, pod or cluster (by is "zone",
// "pod" or "cluster", the hosts table's index of that field; id is its
// value) in host ID order, beginning at the first host whose ID is not
// below start and wrapping around to the lowest, until visit returns false
// or every such host was visited once. The allocator samples a zone this
// way from a point its request picks, without reading the rest of it. Both
// halves of the walk read one snapshot; the hosts handed out are the
// stored rows, which visit must not change.
func (s *Store) HostsFrom(by, id, start string, visit func(*Host) bool) error {
	parent, ok := hostParents[by]
	if !ok {
		return fmt.Errorf("hosts by %q: not a zone, pod or cluster index", by)
	}
	txn := s.db.Txn(false)
	// The index keys are "<id>\x00<host ID>\x00" (memdb appends the row's
	// ID to the keys of a non-unique index), so the lower bound of the
	// prefix "<id>\x00<start>" is the first host of id at or after start.
	// The walk runs on past id's last host, into the next value's.
	it, err := txn.LowerBound(TableHosts, by+"_prefix", id+"\x00"+start)
	if err != nil {
		return fmt.Errorf("hosts by %s from %s: %w", by, start, err)
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		h := raw.(*Host)
		if parent(h) != id {
			break
		}
		if !visit(h) {
			return nil
		}
	}
	if start == "" {
		return nil
	}
	return wrapHosts(txn, by, id, start, visit)
}

// wrapHosts is the second half of HostsFrom: id's hosts below start.
func wrapHosts(txn *memdb.Txn, by, id, start string, visit func(*Host) bool) error {
	it, err := txn.Get(TableHosts, by, id)
	if err != nil {
		return fmt.Errorf("hosts by %s: %w", by, err)
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		h := raw.(*Host)
		if h.ID >= start || !visit(h) {
			return nil
		}
	}
	return nil
}

// hostParents reads the field each index of HostsFrom files a host under.
var hostParents = map[string]func(*Host) string{
	"zone":    func(h *Host) string { return h.ZoneID },
	"pod":     func(h *Host) string { return h.PodID },
	"cluster": func(h *Host) string { return h.ClusterID },
}
