package fsm

import (
	"fmt"
	"maps"
	"strings"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// The compute area: VMs, their volumes and snapshots, affinity groups and
// SSH key pairs. A VM row carries both what its owner asked for (Power,
// RebootGen, MigrateTo) and what its host's agent last observed
// (Observed*): agents reconcile libvirt to the first and report the second;
// the leader's job runner moves the VM's State between them.

// Tables of the compute area.
const (
	TableVMs            = "vms"
	TableVolumes        = "volumes"
	TableSnapshots      = "snapshots"
	TableAffinityGroups = "affinity_groups"
	TableSSHKeyPairs    = "ssh_keypairs"
)

// Snapshot record types of the compute tables (range 70-89).
const (
	VMSnapshot            SnapshotType = 70
	VolumeSnapshot        SnapshotType = 71
	VolumeSnapSnapshot    SnapshotType = 72
	AffinityGroupSnapshot SnapshotType = 73
	SSHKeyPairSnapshot    SnapshotType = 74
)

// VM states, as CloudStack names them.
const (
	VMStarting  = "Starting"
	VMRunning   = "Running"
	VMStopping  = "Stopping"
	VMStopped   = "Stopped"
	VMMigrating = "Migrating"
	VMDestroyed = "Destroyed"
	VMExpunging = "Expunging"
	VMError     = "Error"
)

// Desired and observed power states of a VM.
const (
	PowerOn  = "Running"
	PowerOff = "Stopped"
)

// NIC is one network interface of a VM.
type NIC struct {
	ID        string `json:"id"`
	MAC       string `json:"mac"`
	IPAddress string `json:"ip_address"`
	Netmask   string `json:"netmask"`
	Gateway   string `json:"gateway"`
	IsDefault bool   `json:"is_default"`
	DeviceID  int    `json:"device_id"`
}

// VM is a virtual machine. HostID is set while the VM holds capacity on a
// host (from placement until it is stopped); the host's CPUAllocated and
// MemoryAllocated include the VM exactly then.
type VM struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	DisplayName  string `json:"display_name"`
	InstanceName string `json:"instance_name"` // libvirt name, without the driver's prefix
	AccountID    string `json:"account_id"`
	DomainID     string `json:"domain_id"`
	UserID       string `json:"user_id"`
	ZoneID       string `json:"zone_id"`
	PodID        string `json:"pod_id,omitempty"`
	ClusterID    string `json:"cluster_id,omitempty"`
	HostID       string `json:"host_id,omitempty"`
	LastHostID   string `json:"last_host_id,omitempty"`

	ServiceOfferingID string `json:"service_offering_id"`
	TemplateID        string `json:"template_id,omitempty"`
	ISOID             string `json:"iso_id,omitempty"`
	OSTypeID          string `json:"os_type_id,omitempty"`
	CPUNumber         int    `json:"cpu_number"`
	CPUSpeed          int    `json:"cpu_speed"` // MHz per core
	MemoryMiB         int    `json:"memory_mib"`

	State string `json:"state"`
	// Power is the desired power state the host's agent reconciles to.
	Power     string `json:"power"`
	ForceStop bool   `json:"force_stop,omitempty"`
	RebootGen int    `json:"reboot_gen,omitempty"`
	// MigrateTo is the target host while the VM migrates; the target's
	// capacity is reserved for it meanwhile.
	MigrateTo   string `json:"migrate_to,omitempty"`
	MigratedOut bool   `json:"migrated_out,omitempty"` // the source let go

	// What the agent of ObservedHostID last reported.
	ObservedHostID    string    `json:"observed_host_id,omitempty"`
	ObservedPower     string    `json:"observed_power,omitempty"`
	ObservedRebootGen int       `json:"observed_reboot_gen,omitempty"`
	ObservedError     string    `json:"observed_error,omitempty"`
	ObservedAt        time.Time `json:"observed_at,omitzero"`

	HAEnabled bool `json:"ha_enabled,omitempty"`
	// HAPending marks an HA VM of a fenced host that still waits to be
	// started elsewhere (no capacity yet, or its restart job failed).
	HAPending        bool              `json:"ha_pending,omitempty"`
	UserData         string            `json:"user_data,omitempty"` // base64, as given
	KeyPairs         []string          `json:"key_pairs,omitempty"`
	Group            string            `json:"group,omitempty"`
	Details          map[string]string `json:"details,omitempty"`
	NICs             []NIC             `json:"nics,omitempty"`
	IPAddress        string            `json:"ip_address,omitempty"` // the default NIC's, kept unique per zone
	AffinityGroupIDs []string          `json:"affinity_group_ids,omitempty"`
	Created          time.Time         `json:"created"`
	Destroyed        time.Time         `json:"destroyed,omitzero"`
	Indexes
}

// GetID returns the VM's UUID.
func (v *VM) GetID() string { return v.ID }

// Owner returns the VM's account and domain.
func (v *VM) Owner() (string, string) { return v.AccountID, v.DomainID }

// Copy returns a deep copy, safe to change and propose.
func (v *VM) Copy() *VM {
	c := *v
	c.KeyPairs = append([]string(nil), v.KeyPairs...)
	c.Details = maps.Clone(v.Details)
	c.NICs = append([]NIC(nil), v.NICs...)
	c.AffinityGroupIDs = append([]string(nil), v.AffinityGroupIDs...)
	return &c
}

// Volume types and states, as CloudStack names them.
const (
	VolumeRoot     = "ROOT"
	VolumeDataDisk = "DATADISK"

	VolumeAllocated = "Allocated" // recorded, not yet on a pool
	VolumeCreating  = "Creating"
	VolumeReady     = "Ready"
	VolumeDestroy   = "Destroy"
)

// Volume is a disk on primary storage. PoolID is empty until the volume is
// placed; the pool's AllocatedBytes include the volume from then on.
type Volume struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	AccountID      string    `json:"account_id"`
	DomainID       string    `json:"domain_id"`
	ZoneID         string    `json:"zone_id"`
	Type           string    `json:"type"`
	VMID           string    `json:"vm_id,omitempty"`
	DeviceID       int       `json:"device_id"`
	PoolID         string    `json:"pool_id,omitempty"`
	DiskOfferingID string    `json:"disk_offering_id,omitempty"`
	TemplateID     string    `json:"template_id,omitempty"`
	SizeBytes      int64     `json:"size_bytes"`
	Format         string    `json:"format"`
	State          string    `json:"state"`
	Path           string    `json:"path,omitempty"` // on the host, as its agent reported
	StorageTags    []string  `json:"storage_tags,omitempty"`
	Local          bool      `json:"local,omitempty"`
	Created        time.Time `json:"created"`
	Attached       time.Time `json:"attached,omitzero"`
	Indexes
}

// GetID returns the volume's UUID.
func (v *Volume) GetID() string { return v.ID }

// Owner returns the volume's account and domain.
func (v *Volume) Owner() (string, string) { return v.AccountID, v.DomainID }

// Copy returns a deep copy, safe to change and propose.
func (v *Volume) Copy() *Volume {
	c := *v
	c.StorageTags = append([]string(nil), v.StorageTags...)
	return &c
}

// Snapshot states.
const (
	SnapshotCreating = "Creating"
	SnapshotBackedUp = "BackedUp"
)

// Snapshot is a point-in-time copy of a volume kept on secondary storage.
// It outlives its volume, as in CloudStack.
type Snapshot struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	AccountID    string    `json:"account_id"`
	DomainID     string    `json:"domain_id"`
	ZoneID       string    `json:"zone_id"`
	VolumeID     string    `json:"volume_id"`
	VolumeType   string    `json:"volume_type"`
	ImageStoreID string    `json:"image_store_id,omitempty"`
	SizeBytes    int64     `json:"size_bytes"`
	State        string    `json:"state"`
	Created      time.Time `json:"created"`
	Indexes
}

// GetID returns the snapshot's UUID.
func (s *Snapshot) GetID() string { return s.ID }

// Owner returns the snapshot's account and domain.
func (s *Snapshot) Owner() (string, string) { return s.AccountID, s.DomainID }

// Affinity group types, as CloudStack names them.
const (
	AffinityHost     = "host affinity"
	AntiAffinityHost = "host anti-affinity"
)

// AffinityGroup keeps its VMs together on one host, or apart on different
// hosts.
type AffinityGroup struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	Type        string    `json:"type"`
	AccountID   string    `json:"account_id"`
	DomainID    string    `json:"domain_id"`
	Created     time.Time `json:"created"`
	Indexes
}

// GetID returns the group's UUID.
func (g *AffinityGroup) GetID() string { return g.ID }

// Owner returns the group's account and domain.
func (g *AffinityGroup) Owner() (string, string) { return g.AccountID, g.DomainID }

// SSHKeyPair is a public key VMs get at deploy time. The private key of a
// generated pair is shown once, never stored.
type SSHKeyPair struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	AccountID   string    `json:"account_id"`
	DomainID    string    `json:"domain_id"`
	PublicKey   string    `json:"public_key"`
	Fingerprint string    `json:"fingerprint"`
	Created     time.Time `json:"created"`
	Indexes
}

// GetID returns the key pair's UUID.
func (k *SSHKeyPair) GetID() string { return k.ID }

// Owner returns the key pair's account and domain.
func (k *SSHKeyPair) Owner() (string, string) { return k.AccountID, k.DomainID }

func accountRef(id func(Object) string) Ref {
	return Ref{Index: "account", Table: tableAccounts, Value: id}
}

// nameInAccount is a compound index of an account and a caseless name.
func nameInAccount() *memdb.IndexSchema {
	return &memdb.IndexSchema{Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
		&memdb.StringFieldIndex{Field: "AccountID"}, caseless("Name")}}}
}

func init() {
	RegisterTable(TableDef{
		Name: TableVMs, Noun: "virtual machine", Snapshot: VMSnapshot, New: func() Object { return new(VM) },
		// Every index costs each VM about 500 bytes on every server (and
		// each VM update rewrites them all), so the VM table keeps only the
		// ones something looks up: lists by zone or state walk the account
		// or creation order and filter (vmFilter judges every row anyway),
		// and deleting a zone, an offering or a template scans the table.
		Indexes: map[string]*memdb.IndexSchema{
			// account, host and name walk their rows in creation order, as
			// listVirtualMachines shows them (see createdBy).
			"account": createdBy("AccountID", false, false), "create": createOrder(),
			"host": createdBy("HostID", true, false), "name": createdBy("Name", true, true),
			"migrate_to": optional("MigrateTo"), "last_host": optional("LastHostID"),
			"affinity": {AllowMissing: true, Indexer: &memdb.StringSliceFieldIndex{Field: "AffinityGroupIDs"}},
			"ip": {AllowMissing: true, Indexer: &memdb.CompoundIndex{AllowMissing: false, Indexes: []memdb.Indexer{
				&memdb.StringFieldIndex{Field: "ZoneID"}, &memdb.StringFieldIndex{Field: "IPAddress"}}}},
			"instance": {AllowMissing: true, Indexer: instanceNameIndex{}},
		},
		Unique: []UniqueKey{
			{Index: "ip", What: "IP address in this zone", Args: func(o Object) []any {
				v := o.(*VM)
				if v.IPAddress == "" {
					return nil
				}
				return []any{v.ZoneID, v.IPAddress}
			}},
			{Index: "instance", What: "instance name", Holder: instanceNameHolder},
		},
		Refs: []Ref{
			{Index: "create", Scan: true, Table: tableZones, Value: func(o Object) string { return o.(*VM).ZoneID }},
			accountRef(func(o Object) string { return o.(*VM).AccountID }),
			{Index: "host", Table: TableHosts, Value: func(o Object) string { return o.(*VM).HostID }},
			{Index: "migrate_to", Table: TableHosts, Value: func(o Object) string { return o.(*VM).MigrateTo }},
			{Index: "id", Scan: true, Table: TableServiceOfferings, Value: func(o Object) string { return o.(*VM).ServiceOfferingID }},
			{Index: "id", Scan: true, Table: TableTemplates, Value: func(o Object) string { return o.(*VM).TemplateID }},
			{Index: "affinity", Table: TableAffinityGroups, Values: func(o Object) []string { return o.(*VM).AffinityGroupIDs }},
		},
		Label: func(o Object) string { return o.(*VM).Name },
		// listVirtualMachines leaves out VMs being expunged.
		Tally: func(o Object) (string, bool) {
			v := o.(*VM)
			return v.AccountID, v.State != VMExpunging
		},
	})
	RegisterTable(TableDef{
		Name: TableVolumes, Noun: "volume", Snapshot: VolumeSnapshot, New: func() Object { return new(Volume) },
		Indexes: map[string]*memdb.IndexSchema{
			"account": createdBy("AccountID", false, false), "create": createOrder(),
			"vm": optional("VMID"), "disk_offering": optional("DiskOfferingID"),
		},
		// Zones and pools are rarely deleted: their in-use checks scan the
		// volumes rather than index every one (see Ref).
		Refs: []Ref{
			{Index: "id", Scan: true, Table: tableZones, Value: func(o Object) string { return o.(*Volume).ZoneID }},
			accountRef(func(o Object) string { return o.(*Volume).AccountID }),
			{Index: "vm", Table: TableVMs, Value: func(o Object) string { return o.(*Volume).VMID }},
			{Index: "id", Scan: true, Table: TableStoragePools, Value: func(o Object) string { return o.(*Volume).PoolID }},
			{Index: "disk_offering", Table: TableDiskOfferings, Value: func(o Object) string { return o.(*Volume).DiskOfferingID }},
		},
		Label: func(o Object) string { return o.(*Volume).Name },
	})
	RegisterTable(TableDef{
		Name: TableSnapshots, Noun: "snapshot", Snapshot: VolumeSnapSnapshot, New: func() Object { return new(Snapshot) },
		Indexes: map[string]*memdb.IndexSchema{
			"zone": byField("ZoneID"), "account": byField("AccountID"), "create": createOrder(),
			"volume": byField("VolumeID"), "image_store": optional("ImageStoreID"),
		},
		Refs: []Ref{
			zoneRef(func(o Object) string { return o.(*Snapshot).ZoneID }),
			accountRef(func(o Object) string { return o.(*Snapshot).AccountID }),
			{Index: "image_store", Table: TableImageStores, Value: func(o Object) string { return o.(*Snapshot).ImageStoreID }},
		},
		Label: func(o Object) string { return o.(*Snapshot).Name },
	})
	RegisterTable(TableDef{
		Name: TableAffinityGroups, Noun: "affinity group", Snapshot: AffinityGroupSnapshot, New: func() Object { return new(AffinityGroup) },
		Indexes: map[string]*memdb.IndexSchema{
			"account": byField("AccountID"), "create": createOrder(), "name": nameInAccount(),
		},
		Unique: []UniqueKey{{Index: "name", What: "name in this account", Args: func(o Object) []any {
			g := o.(*AffinityGroup)
			return []any{g.AccountID, g.Name}
		}}},
		Refs:  []Ref{accountRef(func(o Object) string { return o.(*AffinityGroup).AccountID })},
		Label: func(o Object) string { return o.(*AffinityGroup).Name },
	})
	RegisterTable(TableDef{
		Name: TableSSHKeyPairs, Noun: "SSH key pair", Snapshot: SSHKeyPairSnapshot, New: func() Object { return new(SSHKeyPair) },
		Indexes: map[string]*memdb.IndexSchema{
			"account": byField("AccountID"), "create": createOrder(), "name": nameInAccount(),
		},
		Unique: []UniqueKey{{Index: "name", What: "name in this account", Args: func(o Object) []any {
			k := o.(*SSHKeyPair)
			return []any{k.AccountID, k.Name}
		}}},
		Refs:  []Ref{accountRef(func(o Object) string { return o.(*SSHKeyPair).AccountID })},
		Label: func(o Object) string { return o.(*SSHKeyPair).Name },
	})
	RegisterTaggable("UserVm", TableVMs)
	RegisterTaggable("Volume", TableVolumes)
	RegisterTaggable("Snapshot", TableSnapshots)
}

// Settings of the compute area.
const (
	SettingUserExpunge     = "allow.user.expunge.recover.vm"
	SettingExpungeDelay    = "expunge.delay"
	SettingExpungeInterval = "expunge.interval"
)

func init() {
	settingDefs = append(settingDefs,
		SettingDef{Name: SettingUserExpunge, Category: "Advanced", Type: "Boolean", Default: "false", Dynamic: true,
			Description: "Whether users (not only admins) may expunge destroyed VMs and recover them."},
		SettingDef{Name: SettingExpungeDelay, Category: "Advanced", Type: "Integer", Default: "86400", Dynamic: true,
			Description: "Seconds a destroyed VM is kept, recoverable, before the leader expunges it."},
		SettingDef{Name: SettingExpungeInterval, Category: "Advanced", Type: "Integer", Default: "60", Dynamic: true,
			Description: "Seconds between the leader's sweeps for destroyed VMs to expunge."},
	)
}

// instanceNameIndex indexes the instance names that are not the one a VM's
// ID gives it ("i-" + ID). Every proposer derives the name that way, so the
// index stays empty instead of costing each VM an entry, and the instance
// name's unique check (instanceNameHolder) finds the holder of a derived
// name through "id". A VM without an instance name is refused, as it was
// when every name was indexed.
type instanceNameIndex struct{}

func (instanceNameIndex) FromObject(obj any) (bool, []byte, error) {
	v, ok := obj.(*VM)
	if !ok {
		return false, nil, fmt.Errorf("%T is not a virtual machine", obj)
	}
	if v.InstanceName == "" {
		return false, nil, fmt.Errorf("virtual machine %s has no instance name", v.ID)
	}
	if v.InstanceName == derivedInstanceName(v.ID) {
		return false, nil, nil
	}
	return true, append([]byte(v.InstanceName), 0), nil
}

func (instanceNameIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("instance index takes one argument, got %d", len(args))
	}
	name, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("instance index: argument must be a string: %#v", args[0])
	}
	return append([]byte(name), 0), nil
}

func derivedInstanceName(id string) string { return "i-" + id }

// instanceNameHolder returns another VM with o's instance name, or nil: the
// VM whose ID the name is derived from, if it has that name, or one of the
// names instanceNameIndex holds.
func instanceNameHolder(txn *memdb.Txn, o Object) (Object, error) {
	v := o.(*VM)
	if id, ok := strings.CutPrefix(v.InstanceName, "i-"); ok && id != v.ID {
		raw, err := txn.First(TableVMs, "id", id)
		if err != nil {
			return nil, err
		}
		if w, _ := raw.(*VM); w != nil && w.InstanceName == v.InstanceName {
			return w, nil
		}
	}
	return otherRow(txn, TableVMs, "instance", v.ID, v.InstanceName)
}
