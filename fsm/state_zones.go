package fsm

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"
)

// Zone returns the zone with the given ID, or nil.
func (s *Store) Zone(ws memdb.WatchSet, id string) (*Zone, error) {
	return first[Zone](s.db.Txn(false), ws, tableZones, "id", id)
}

// ZoneByName returns the zone with the given name (case-insensitive), or nil.
func (s *Store) ZoneByName(ws memdb.WatchSet, name string) (*Zone, error) {
	return first[Zone](s.db.Txn(false), ws, tableZones, "name", name)
}

// Zones returns every zone, oldest first.
func (s *Store) Zones(ws memdb.WatchSet) ([]*Zone, error) {
	return all[Zone](s.db.Txn(false), ws, tableZones, "create")
}

func (s *Store) upsertZone(index uint64, req *ZoneUpsertRequest) error {
	txn := s.writeTxn()
	defer txn.Abort()
	z := req.Zone.Copy()
	existing, err := first[Zone](txn, nil, tableZones, "id", z.ID)
	if err != nil {
		return err
	}
	switch {
	case req.Create && existing != nil:
		return stateErr(KindConflict, "a zone with id %s already exists", z.ID)
	case !req.Create && existing == nil:
		return stateErr(KindNotFound, "zone %s does not exist", z.ID)
	}
	named, err := first[Zone](txn, nil, tableZones, "name", z.Name)
	if err != nil {
		return err
	}
	if named != nil && named.ID != z.ID {
		return stateErr(KindConflict, "a zone named %q already exists (id %s)", named.Name, named.ID)
	}
	var prev *Indexes
	if existing != nil {
		prev = &existing.Indexes
	}
	if err := insert(txn, tableZones, &z.Indexes, prev, index, z); err != nil {
		return err
	}
	txn.Commit()
	return nil
}

func (s *Store) deleteZone(index uint64, id string) error {
	txn := s.writeTxn()
	defer txn.Abort()
	existing, err := first[Zone](txn, nil, tableZones, "id", id)
	if err != nil {
		return err
	}
	if existing == nil {
		return stateErr(KindNotFound, "zone %s does not exist", id)
	}
	if err := checkNoUsers(txn, tableZones, id); err != nil {
		return err
	}
	if err := txn.Delete(tableZones, existing); err != nil {
		return fmt.Errorf("delete zone %s: %w", id, err)
	}
	txn.Commit()
	return nil
}
