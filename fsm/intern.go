package fsm

import "unique"

// Rows decoded from JSON (a command's objects, a snapshot's records) get a
// fresh copy of every string, so the IDs and words that thousands of rows
// repeat (their account, zone, host and offering, "Running", "QCOW2") cost
// each row a copy of its own. Interning those fields after decoding makes
// the rows share one copy of each: about a kilobyte less per deployed VM.
// Only fields whose values repeat are interned; a row's own ID and names
// are not, as a canonical copy kept for one row would cost more than it
// saves.

// interner is a row with fields worth interning.
type interner interface {
	intern()
}

// internRow interns the repeated fields of a freshly decoded row.
func internRow(obj any) {
	if in, ok := obj.(interner); ok {
		in.intern()
	}
}

// intern returns the canonical copy of s. The copy lives as long as a row
// holds it (unique keeps it weakly).
func intern(s string) string {
	if s == "" {
		return s
	}
	return unique.Make(s).Value()
}

// internAll interns every element of a slice in place.
func internAll(ss []string) {
	for i, s := range ss {
		ss[i] = intern(s)
	}
}

func (v *VM) intern() {
	for _, p := range []*string{&v.AccountID, &v.DomainID, &v.UserID, &v.ZoneID, &v.PodID, &v.ClusterID, &v.HostID,
		&v.LastHostID, &v.ServiceOfferingID, &v.TemplateID, &v.ISOID, &v.OSTypeID, &v.State, &v.Power, &v.MigrateTo,
		&v.ObservedHostID, &v.ObservedPower} {
		*p = intern(*p)
	}
	if v.DisplayName == v.Name {
		v.DisplayName = v.Name
	}
	for i := range v.NICs {
		n := &v.NICs[i]
		n.Gateway, n.Netmask = intern(n.Gateway), intern(n.Netmask)
	}
	internAll(v.AffinityGroupIDs)
	internAll(v.KeyPairs)
}

func (v *Volume) intern() {
	for _, p := range []*string{&v.AccountID, &v.DomainID, &v.ZoneID, &v.Type, &v.PoolID, &v.DiskOfferingID,
		&v.TemplateID, &v.Format, &v.State} {
		*p = intern(*p)
	}
	internAll(v.StorageTags)
}

func (j *AsyncJob) intern() {
	for _, p := range []*string{&j.Cmd, &j.AccountID, &j.DomainID, &j.UserID, &j.ResultType, &j.InstanceType, &j.Step} {
		*p = intern(*p)
	}
	if len(j.Params) == 0 {
		return
	}
	// The keys repeat in every job of a command; of the values, the
	// short ones ("true", a state) do. A map's keys cannot be replaced
	// in place, so the map is built again.
	params := make(map[string]string, len(j.Params))
	for k, v := range j.Params {
		if len(v) <= maxInternedValue {
			v = intern(v)
		}
		params[intern(k)] = v
	}
	j.Params = params
}

// maxInternedValue is the longest job parameter value interned: flags and
// words, not the IDs of the job's own resources.
const maxInternedValue = 16

func (e *Event) intern() {
	for _, p := range []*string{&e.Type, &e.Level, &e.State, &e.AccountID, &e.DomainID, &e.UserID, &e.ResourceType} {
		*p = intern(*p)
	}
}
