package fsm

import (
	memdb "github.com/hashicorp/go-memdb"
)

// Domain returns the domain with the given ID, or nil.
func (s *Store) Domain(ws memdb.WatchSet, id string) (*Domain, error) {
	return first[Domain](s.db.Txn(false), ws, tableDomains, "id", id)
}

// Domains returns every domain.
func (s *Store) Domains(ws memdb.WatchSet) ([]*Domain, error) {
	return all[Domain](s.db.Txn(false), ws, tableDomains, "id")
}

// Account returns the account with the given ID, or nil.
func (s *Store) Account(ws memdb.WatchSet, id string) (*Account, error) {
	return first[Account](s.db.Txn(false), ws, tableAccounts, "id", id)
}

// Accounts returns every account.
func (s *Store) Accounts(ws memdb.WatchSet) ([]*Account, error) {
	return all[Account](s.db.Txn(false), ws, tableAccounts, "id")
}

// User returns the user with the given ID, or nil.
func (s *Store) User(ws memdb.WatchSet, id string) (*User, error) {
	return first[User](s.db.Txn(false), ws, tableUsers, "id", id)
}

// UserByAPIKey returns the user holding the API key, or nil.
func (s *Store) UserByAPIKey(ws memdb.WatchSet, key string) (*User, error) {
	if key == "" {
		return nil, nil
	}
	return first[User](s.db.Txn(false), ws, tableUsers, "apikey", key)
}

// Users returns every user.
func (s *Store) Users(ws memdb.WatchSet) ([]*User, error) {
	return all[User](s.db.Txn(false), ws, tableUsers, "id")
}

func (s *Store) setUserKeys(index uint64, req *UserKeysSetRequest) error {
	txn := s.writeTxn()
	defer txn.Abort()
	u, err := first[User](txn, nil, tableUsers, "id", req.UserID)
	if err != nil {
		return err
	}
	if u == nil {
		return stateErr(KindNotFound, "user %s does not exist", req.UserID)
	}
	holder, err := first[User](txn, nil, tableUsers, "apikey", req.APIKey)
	if err != nil {
		return err
	}
	if holder != nil && holder.ID != u.ID {
		return stateErr(KindConflict, "api key is already in use")
	}
	c := *u
	c.APIKey, c.SecretKey = req.APIKey, req.SecretKey
	if err := insert(txn, tableUsers, &c.Indexes, &u.Indexes, index, &c); err != nil {
		return err
	}
	txn.Commit()
	return nil
}
