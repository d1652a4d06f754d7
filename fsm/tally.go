package fsm

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"
)

// Tallies: how many rows of a table each account has, counted as lists
// show them (TableDef.Tally), so that a list with no filter answers its
// total ("count") without walking every row of the table: at 100,000 VMs
// that walk was most of a listVirtualMachines page's cost. A tally is
// derived state: every insert and delete keeps it in step inside the same
// transaction, and a restore rebuilds it from the rows, so it is never in
// a snapshot and every server holds the same one.

// tableTallies holds one row per (table, account) with rows counted, and
// one per table for all accounts (account "").
const tableTallies = "tallies"

// tally is a row of tableTallies. Rows are never changed in place: a
// reader's snapshot may hold the old one.
type tally struct {
	Key string // table, NUL, account
	N   int
}

func tallyKey(table, account string) string { return table + "\x00" + account }

// tallyKeys are the tallies a row of account counts in: the account's and
// the table's (all accounts).
func tallyKeys(table, account string) [2]string {
	return [2]string{tallyKey(table, account), tallyKey(table, "")}
}

// tallyOf returns whether table def counts obj, and under which account.
func tallyOf(def *TableDef, obj Object) (string, bool) {
	if obj == nil {
		return "", false
	}
	return def.Tally(obj)
}

// retally moves a row's count from what old was to what obj is (nil for a
// row that did not exist or no longer does).
func retally(txn *memdb.Txn, def *TableDef, old, obj Object) error {
	if def == nil || def.Tally == nil {
		return nil
	}
	oldAcct, oldIn := tallyOf(def, old)
	newAcct, newIn := tallyOf(def, obj)
	if oldIn == newIn && oldAcct == newAcct {
		return nil
	}
	if oldIn {
		if err := addTally(txn, def.Name, oldAcct, -1); err != nil {
			return err
		}
	}
	if newIn {
		return addTally(txn, def.Name, newAcct, 1)
	}
	return nil
}

// addTally adds delta to the account's tally and to the table's.
func addTally(txn *memdb.Txn, table, account string, delta int) error {
	for _, key := range tallyKeys(table, account) {
		n := 0
		raw, err := txn.First(tableTallies, "id", key)
		if err != nil {
			return fmt.Errorf("tally of %s: %w", table, err)
		}
		if raw != nil {
			n = raw.(*tally).N
		}
		if err := txn.Insert(tableTallies, &tally{Key: key, N: n + delta}); err != nil {
			return fmt.Errorf("tally of %s: %w", table, err)
		}
	}
	return nil
}

// Tally returns how many rows of a table with a Tally the given accounts
// have, as TableDef.Tally counts them; no accounts means every account's.
// ok is false for a table without a tally.
func (s *Store) Tally(table string, accounts ...string) (n int, ok bool) {
	def, found := tableDefs[table]
	if !found || def.Tally == nil {
		return 0, false
	}
	txn := s.db.Txn(false)
	keys := []string{tallyKey(table, "")}
	if len(accounts) > 0 {
		keys = keys[:0]
		for _, a := range accounts {
			keys = append(keys, tallyKey(table, a))
		}
	}
	for _, k := range keys {
		if raw, err := txn.First(tableTallies, "id", k); err == nil && raw != nil {
			n += raw.(*tally).N
		}
	}
	return n, true
}
