package fsm

import (
	"sort"
	"strconv"

	memdb "github.com/hashicorp/go-memdb"
)

// SettingDef describes a global setting: its CloudStack name, category,
// type, default and what it does. Definitions are code; only operators'
// overrides are replicated, so a new build can add settings without a
// migration.
type SettingDef struct {
	Name        string
	Category    string
	Type        string // String, Boolean, Integer
	Default     string
	Description string
	Dynamic     bool // takes effect without a restart
	// ReadOnly settings are kept by the servers themselves: listed, never
	// set through updateConfiguration.
	ReadOnly bool
}

// Names of settings read by code.
const (
	SettingDefaultPageSize    = "default.page.size"
	SettingEnforcePostAndTime = "enforce.post.requests.and.timestamps"
	SettingExpiresMaxAhead    = "api.signature.expires.max.minutes"
	// SettingHeartbeatRate and SettingLeaseGranted scale host heartbeats
	// with the number of hosts (lease_timings.go, docs/ha.md).
	SettingHeartbeatRate = "host.heartbeat.rate"
	SettingLeaseGranted  = "host.lease.granted"
)

var settingDefs = []SettingDef{
	{Name: SettingDefaultPageSize, Category: "Advanced", Type: "Integer", Default: "500", Dynamic: true,
		Description: "Page size used by list commands when the caller gives none, and the largest page a caller may ask for; -1 lifts the limit."},
	{Name: SettingEnforcePostAndTime, Category: "Advanced", Type: "Boolean", Default: "false", Dynamic: true,
		Description: "When true, signed requests must use signature version 3 with an expiry no further ahead than api.signature.expires.max.minutes, and commands that change state must arrive as POST."},
	{Name: SettingExpiresMaxAhead, Category: "Advanced", Type: "Integer", Default: "15", Dynamic: true,
		Description: "How far in the future, in minutes, a signed request's expiry may lie when enforce.post.requests.and.timestamps is on."},
	{Name: SettingHeartbeatRate, Category: "Advanced", Type: "Integer", Default: "1000", Dynamic: true,
		Description: "Host heartbeats per second the leader takes at most: with more hosts than this rate times host.heartbeat.interval, agents heartbeat every hosts/rate seconds (whole seconds) and their lease grows with the interval. 0 turns scaling off."},
	{Name: SettingLeaseGranted, Category: "Advanced", Type: "Integer", Default: "0", Dynamic: true, ReadOnly: true,
		Description: "Kept by the leader, read only: the longest lease TTL, in seconds, that a leader may have granted agents and not seen run out. A new leader's failover grace covers it."},
}

// SettingDefs returns every known setting definition, sorted by name.
func SettingDefs() []SettingDef {
	out := append([]SettingDef(nil), settingDefs...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// LookupSettingDef returns the definition of a setting.
func LookupSettingDef(name string) (SettingDef, bool) {
	for _, d := range settingDefs {
		if d.Name == name {
			return d, true
		}
	}
	return SettingDef{}, false
}

// ValidSettingValue reports whether value fits the definition's type.
func (d SettingDef) ValidSettingValue(value string) bool {
	switch d.Type {
	case "Integer":
		_, err := strconv.Atoi(value)
		return err == nil
	case "Boolean":
		_, err := strconv.ParseBool(value)
		return err == nil && (value == "true" || value == "false")
	}
	return true
}

// SettingOverride returns the stored override of a setting, or nil.
func (s *Store) SettingOverride(ws memdb.WatchSet, name string) (*Setting, error) {
	return first[Setting](s.db.Txn(false), ws, tableSettings, "id", name)
}

// SettingValue returns a setting's effective value: the override if there is
// one, else the default. Unknown names give "".
func (s *Store) SettingValue(name string) string {
	if o, err := s.SettingOverride(nil, name); err == nil && o != nil {
		return o.Value
	}
	d, _ := LookupSettingDef(name)
	return d.Default
}

// SettingInt returns an Integer setting's effective value, falling back to the
// default if the stored value does not parse.
func (s *Store) SettingInt(name string) int {
	if v, err := strconv.Atoi(s.SettingValue(name)); err == nil {
		return v
	}
	d, _ := LookupSettingDef(name)
	v, _ := strconv.Atoi(d.Default)
	return v
}

// SettingBool returns a Boolean setting's effective value.
func (s *Store) SettingBool(name string) bool {
	return s.SettingValue(name) == "true"
}

// Settings returns every stored override.
func (s *Store) Settings(ws memdb.WatchSet) ([]*Setting, error) {
	return all[Setting](s.db.Txn(false), ws, tableSettings, "id")
}

func (s *Store) setSetting(index uint64, req *ConfigSetRequest) error {
	txn := s.writeTxn()
	defer txn.Abort()
	st := req.Setting
	existing, err := first[Setting](txn, nil, tableSettings, "id", st.Name)
	if err != nil {
		return err
	}
	var prev *Indexes
	if existing != nil {
		prev = &existing.Indexes
	}
	if err := insert(txn, tableSettings, &st.Indexes, prev, index, &st); err != nil {
		return err
	}
	txn.Commit()
	return nil
}
