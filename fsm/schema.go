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
		tableTallies:  {Name: tableTallies, Indexes: map[string]*memdb.IndexSchema{"id": idIndex("Key")}},
	}}
}

func caseless(field string) *memdb.StringFieldIndex {
	return &memdb.StringFieldIndex{Field: field, Lowercase: true}
}

func optional(field string) *memdb.IndexSchema {
	return &memdb.IndexSchema{AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: field}}
}

// createOrder orders lists the way CloudStack does: oldest first. It is not
// unique: one transaction creates several rows at the same index, and memdb
// orders those by ID.
func createOrder() *memdb.IndexSchema {
	return &memdb.IndexSchema{Indexer: &memdb.UintFieldIndex{Field: "CreateIndex"}}
}

func init() {
	RegisterTable(TableDef{
		Name: tableDomains, Noun: "domain", Snapshot: DomainSnapshot, New: func() Object { return new(Domain) },
		Indexes: map[string]*memdb.IndexSchema{
			"path":   {Indexer: caseless("Path")},
			"parent": optional("ParentID"),
			"create": createOrder(),
		},
		Unique: []UniqueKey{{Index: "path", What: "path", Args: func(o Object) []any { return []any{o.(*Domain).Path} }}},
		Refs:   []Ref{{Index: "parent", Table: tableDomains, Value: func(o Object) string { return o.(*Domain).ParentID }}},
		Label:  func(o Object) string { return o.(*Domain).Path },
	})
	RegisterTable(TableDef{
		Name: tableAccounts, Noun: "account", Snapshot: AccountSnapshot, New: func() Object { return new(Account) },
		Indexes: map[string]*memdb.IndexSchema{
			"name":   {Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{&memdb.StringFieldIndex{Field: "DomainID"}, caseless("Name")}}},
			"domain": {Indexer: &memdb.StringFieldIndex{Field: "DomainID"}},
			"role":   optional("RoleID"),
			"create": createOrder(),
		},
		Unique: []UniqueKey{{Index: "name", What: "name in this domain", Args: func(o Object) []any {
			a := o.(*Account)
			return []any{a.DomainID, a.Name}
		}}},
		Refs: []Ref{
			{Index: "domain", Table: tableDomains, Value: func(o Object) string { return o.(*Account).DomainID }},
			// Empty means the built-in role of the account's type.
			{Index: "role", Table: TableRoles, Value: func(o Object) string { return o.(*Account).RoleID }},
		},
		Label: func(o Object) string { return o.(*Account).Name },
	})
	RegisterTable(TableDef{
		Name: tableUsers, Noun: "user", Snapshot: UserSnapshot, New: func() Object { return new(User) },
		Indexes: map[string]*memdb.IndexSchema{
			"apikey":   {AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "APIKey"}},
			"username": {Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{&memdb.StringFieldIndex{Field: "DomainID"}, caseless("Username")}}},
			"account":  {Indexer: &memdb.StringFieldIndex{Field: "AccountID"}},
			"create":   createOrder(),
		},
		Unique: []UniqueKey{
			{Index: "username", What: "username in this domain", Args: func(o Object) []any {
				u := o.(*User)
				return []any{u.DomainID, u.Username}
			}},
			{Index: "apikey", What: "API key", Args: func(o Object) []any {
				if k := o.(*User).APIKey; k != "" {
					return []any{k}
				}
				return nil
			}},
		},
		Refs:  []Ref{{Index: "account", Table: tableAccounts, Value: func(o Object) string { return o.(*User).AccountID }}},
		Label: func(o Object) string { return o.(*User).Username },
	})
	RegisterTable(TableDef{
		Name: tableZones, Noun: "zone", Snapshot: ZoneSnapshot, New: func() Object { return new(Zone) },
		Indexes: map[string]*memdb.IndexSchema{
			"name":   {Indexer: caseless("Name")},
			"create": createOrder(),
		},
		Unique: []UniqueKey{{Index: "name", What: "name", Args: func(o Object) []any { return []any{o.(*Zone).Name} }}},
		Label:  func(o Object) string { return o.(*Zone).Name },
	})
}

func mustSchema() *memdb.DBSchema {
	s := schema()
	for name, d := range tableDefs {
		if _, dup := s.Tables[name]; dup {
			panic("fsm: registered table shadows a built-in one: " + name)
		}
		s.Tables[name] = d.schema()
	}
	if err := s.Validate(); err != nil {
		panic(fmt.Sprintf("fsm: invalid schema: %v", err))
	}
	return s
}
