package fsm

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"
)

// Table names.
const (
	tableMeta     = "meta"
	tableSettings = "settings"
	tableDomains  = "domains"
	tableAccounts = "accounts"
	tableUsers    = "users"
	tableZones    = "zones"
)

// metaID is the key of the single cluster metadata row.
const metaID = "cluster"

func idIndex(field string) *memdb.IndexSchema {
	return &memdb.IndexSchema{Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: field}}
}

func schema() *memdb.DBSchema {
	return &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		tableMeta: {Name: tableMeta, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.ConditionalIndex{Conditional: func(any) (bool, error) { return true, nil }}},
		}},
		tableSettings: {Name: tableSettings, Indexes: map[string]*memdb.IndexSchema{"id": idIndex("Name")}},
		tableDomains: {Name: tableDomains, Indexes: map[string]*memdb.IndexSchema{
			"id":   idIndex("ID"),
			"path": {Name: "path", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Path", Lowercase: true}},
		}},
		tableAccounts: {Name: tableAccounts, Indexes: map[string]*memdb.IndexSchema{
			"id":   idIndex("ID"),
			"name": {Name: "name", Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{&memdb.StringFieldIndex{Field: "DomainID"}, &memdb.StringFieldIndex{Field: "Name", Lowercase: true}}}},
		}},
		tableUsers: {Name: tableUsers, Indexes: map[string]*memdb.IndexSchema{
			"id":       idIndex("ID"),
			"apikey":   {Name: "apikey", Unique: true, AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "APIKey"}},
			"username": {Name: "username", Indexer: &memdb.StringFieldIndex{Field: "Username", Lowercase: true}},
			"account":  {Name: "account", Indexer: &memdb.StringFieldIndex{Field: "AccountID"}},
		}},
		tableZones: {Name: tableZones, Indexes: map[string]*memdb.IndexSchema{
			"id":   idIndex("ID"),
			"name": {Name: "name", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name", Lowercase: true}},
			// create orders lists the way CloudStack does: oldest first.
			"create": {Name: "create", Unique: true, Indexer: &memdb.UintFieldIndex{Field: "CreateIndex"}},
		}},
	}}
}

func mustSchema() *memdb.DBSchema {
	s := schema()
	if err := s.Validate(); err != nil {
		panic(fmt.Sprintf("fsm: invalid schema: %v", err))
	}
	return s
}
