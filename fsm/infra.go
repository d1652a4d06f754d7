package fsm

import (
	"maps"
	"strconv"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// The infrastructure inventory: pods, clusters, hosts, primary storage
// pools and secondary image stores. Every row points at the zone it lives
// in, and at its pod and cluster where it has one, so the table rules make a
// zone undeletable while anything lives in it, a pod while it holds
// clusters, a cluster while it holds hosts or pools, and so on.

// Tables of the infrastructure area.
const (
	TablePods         = "pods"
	TableClusters     = "clusters"
	TableHosts        = "hosts"
	TableStoragePools = "storage_pools"
	TableImageStores  = "image_stores"
)

// Snapshot record types of the infrastructure tables (range 20-39).
const (
	PodSnapshot         SnapshotType = 20
	ClusterSnapshot     SnapshotType = 21
	HostSnapshot        SnapshotType = 22
	StoragePoolSnapshot SnapshotType = 23
	ImageStoreSnapshot  SnapshotType = 24
)

// Hypervisor and cluster kinds. Stratus manages KVM hosts only.
const (
	HypervisorKVM           = "KVM"
	ClusterTypeCloudManaged = "CloudManaged"
	ManagedStateManaged     = "Managed"
)

// Host types, connection states and resource states, as CloudStack names
// them. State says whether the agent is connected; ResourceState is the
// operator's intent for placement.
const (
	HostTypeRouting = "Routing"

	HostStateUp           = "Up"
	HostStateDown         = "Down"
	HostStateDisconnected = "Disconnected"
	HostStateAlert        = "Alert"
	HostStateConnecting   = "Connecting"

	ResourceStateEnabled            = "Enabled"
	ResourceStateDisabled           = "Disabled"
	ResourceStatePrepareMaintenance = "PrepareForMaintenance"
	ResourceStateErrorInMaintenance = "ErrorInMaintenance"
	ResourceStateMaintenance        = "Maintenance"
	// ResourceStateDegraded marks a host an operator declared down
	// (declareHostAsDegraded); the allocator keeps off it.
	ResourceStateDegraded = "Degraded"
)

// Host HA states, as CloudStack's Host HA framework names them. A host
// whose HA is not enabled is Disabled; an enabled one is Available while
// it heartbeats, Suspect once its lease ran out, Fencing while a fence is
// under way, Fenced once it is known off (its HA VMs may then run
// elsewhere), and Ineligible when it cannot be fenced (provider none, or
// every fence attempt failed): its VMs are then not restarted until an
// operator confirms the host is down.
const (
	HAStateDisabled   = "Disabled"
	HAStateAvailable  = "Available"
	HAStateSuspect    = "Suspect"
	HAStateFencing    = "Fencing"
	HAStateFenced     = "Fenced"
	HAStateIneligible = "Ineligible"
)

// HA (fence) providers of a host.
const (
	// HAProviderLease trusts the host's agent to have killed its HA guests
	// once its lease ran out (self-fencing); only hosts whose agent says
	// it can self-fence (SelfFence) may use it.
	HAProviderLease = "lease"
	// HAProviderIPMI powers the host off through its out-of-band
	// management (ipmitool) and checks the power status afterwards.
	HAProviderIPMI = "ipmi"
	// HAProviderCommand runs the operator's fence command, configured on
	// each management server (stratus server -fence-command).
	HAProviderCommand = "command"
	// HAProviderNone never fences: an operator confirms with
	// declareHostAsDegraded that the host is down.
	HAProviderNone = "none"
)

// OutOfBand is a host's out-of-band management (IPMI) configuration.
// Password is a secret: it never leaves the store through API responses
// or logs.
type OutOfBand struct {
	Enabled    bool   `json:"enabled"`
	Driver     string `json:"driver"` // ipmitool
	Address    string `json:"address"`
	Port       int    `json:"port,omitempty"`
	Username   string `json:"username,omitempty"`
	Password   string `json:"password,omitempty"`
	PowerState string `json:"power_state,omitempty"` // On, Off, Unknown: as last checked
}

// Settings of host liveness and HA, in seconds. An agent's lease runs
// host.lease.ttl from when it sent its last heartbeat; the leader declares
// the host's lease lost host.lease.ttl + host.lease.margin after it
// received that heartbeat, so the agent's deadline always passes first.
const (
	SettingHeartbeatInterval = "host.heartbeat.interval"
	SettingLeaseTTL          = "host.lease.ttl"
	SettingLeaseMargin       = "host.lease.margin"
	SettingFailoverGrace     = "ha.failover.grace"
	SettingHARestartRate     = "ha.restart.rate"
)

func init() {
	settingDefs = append(settingDefs,
		SettingDef{Name: SettingHeartbeatInterval, Category: "Advanced", Type: "Integer", Default: "2", Dynamic: true,
			Description: "Seconds between a host agent's heartbeats."},
		SettingDef{Name: SettingLeaseTTL, Category: "Advanced", Type: "Integer", Default: "10", Dynamic: true,
			Description: "Seconds a host agent's lease lasts from the heartbeat that renewed it; an agent that cannot renew it in time kills its HA guests."},
		SettingDef{Name: SettingLeaseMargin, Category: "Advanced", Type: "Integer", Default: "4", Dynamic: true,
			Description: "Seconds the leader waits past a host's lease before declaring it lost, so the agent's own deadline always passes first."},
		SettingDef{Name: SettingFailoverGrace, Category: "Advanced", Type: "Integer", Default: "15", Dynamic: true,
			Description: "Seconds a newly elected leader gives every host to heartbeat before it may declare one lost."},
		SettingDef{Name: SettingHARestartRate, Category: "Advanced", Type: "Integer", Default: "20", Dynamic: true,
			Description: "How many HA VMs of failed hosts the leader restarts per second at most."},
	)
}

// Storage pool scopes, types and states.
const (
	ScopeCluster = "CLUSTER"
	ScopeZone    = "ZONE"
	ScopeHost    = "HOST"

	PoolTypeNFS              = "NetworkFilesystem"
	PoolTypeSharedMountPoint = "SharedMountPoint"
	PoolTypeFilesystem       = "Filesystem" // a host's local disk

	PoolStateUp       = "Up"
	PoolStateDisabled = "Disabled"
)

// Pod is a rack or a group of racks in a zone: one management subnet
// (Gateway/Netmask) with address ranges reserved for system use.
type Pod struct {
	ID              string       `json:"id"`
	Name            string       `json:"name"`
	ZoneID          string       `json:"zone_id"`
	Gateway         string       `json:"gateway"`
	Netmask         string       `json:"netmask"`
	IPRanges        []PodIPRange `json:"ip_ranges,omitempty"`
	AllocationState string       `json:"allocation_state"`
	Created         time.Time    `json:"created"`
	Indexes
}

// PodIPRange is one range of a pod's management addresses.
type PodIPRange struct {
	StartIP      string `json:"start_ip"`
	EndIP        string `json:"end_ip"`
	ForSystemVMs bool   `json:"for_system_vms,omitempty"`
	VlanID       string `json:"vlan_id,omitempty"` // empty: untagged
}

// GetID returns the pod's UUID.
func (p *Pod) GetID() string { return p.ID }

// Copy returns a deep copy, safe to change and propose.
func (p *Pod) Copy() *Pod {
	c := *p
	c.IPRanges = append([]PodIPRange(nil), p.IPRanges...)
	return &c
}

// Settings of the infrastructure area: the cloud-wide CPU and memory
// overcommit ratios, which a cluster's own ratio overrides.
const (
	SettingCPUOvercommit    = "cpu.overprovisioning.factor"
	SettingMemoryOvercommit = "mem.overprovisioning.factor"
)

func init() {
	settingDefs = append(settingDefs,
		SettingDef{Name: SettingCPUOvercommit, Category: "Advanced", Type: "Float", Default: "1.0", Dynamic: true,
			Description: "How many times its physical CPU capacity (cores x MHz) placement may hand out on a host; a cluster's own ratio takes precedence."},
		SettingDef{Name: SettingMemoryOvercommit, Category: "Advanced", Type: "Float", Default: "1.0", Dynamic: true,
			Description: "How many times its physical memory placement may hand out on a host; a cluster's own ratio takes precedence."},
	)
}

// Cluster is a group of hosts of one hypervisor in a pod that share
// primary storage and between which VMs can live-migrate.
//
// CloudStack keeps the CPU and memory overcommit ratios as cluster-scoped
// settings (cluster_details, changed by updateConfiguration with clusterid).
// Stratus keeps them as fields of the cluster row, so placement and
// listCapacity read them with the cluster, and keeps any other cluster
// setting in Details. A ratio of 0 means the cloud-wide setting
// (cpu.overprovisioning.factor, mem.overprovisioning.factor) applies: see
// Store.Overcommit.
type Cluster struct {
	ID               string            `json:"id"`
	Name             string            `json:"name"`
	ZoneID           string            `json:"zone_id"`
	PodID            string            `json:"pod_id"`
	HypervisorType   string            `json:"hypervisor_type"`
	ClusterType      string            `json:"cluster_type"`
	AllocationState  string            `json:"allocation_state"`
	ManagedState     string            `json:"managed_state"`
	CPUOvercommit    float64           `json:"cpu_overcommit"`
	MemoryOvercommit float64           `json:"memory_overcommit"`
	Details          map[string]string `json:"details,omitempty"`
	Created          time.Time         `json:"created"`
	Indexes
}

// GetID returns the cluster's UUID.
func (c *Cluster) GetID() string { return c.ID }

// Copy returns a deep copy, safe to change and propose.
func (c *Cluster) Copy() *Cluster {
	d := *c
	d.Details = maps.Clone(c.Details)
	return &d
}

// Overcommit returns the CPU and memory overcommit ratios in force for a
// cluster: its own when set, else the cloud-wide settings, else 1. A nil
// cluster gets the cloud-wide ratios.
func (s *Store) Overcommit(c *Cluster) (cpu, mem float64) {
	cpu, mem = s.settingRatio(SettingCPUOvercommit), s.settingRatio(SettingMemoryOvercommit)
	if c != nil && c.CPUOvercommit > 0 {
		cpu = c.CPUOvercommit
	}
	if c != nil && c.MemoryOvercommit > 0 {
		mem = c.MemoryOvercommit
	}
	return cpu, mem
}

func (s *Store) settingRatio(name string) float64 {
	if v, err := strconv.ParseFloat(s.SettingValue(name), 64); err == nil && v > 0 {
		return v
	}
	return 1
}

func ratioOr1(r float64) float64 {
	if r <= 0 {
		return 1
	}
	return r
}

// Host is a hypervisor host. Its record is made by addHost; the figures of
// its hardware (CPUs, memory) stay zero until its agent connects and reports
// them. Token is the secret the host's agent presents to identify itself:
// it never leaves the store through API responses or logs. The host's login
// password is never stored.
type Host struct {
	ID                string   `json:"id"`
	Name              string   `json:"name"`
	ZoneID            string   `json:"zone_id"`
	PodID             string   `json:"pod_id"`
	ClusterID         string   `json:"cluster_id"`
	Type              string   `json:"type"`
	HypervisorType    string   `json:"hypervisor_type"`
	HypervisorVersion string   `json:"hypervisor_version,omitempty"`
	IPAddress         string   `json:"ip_address"`
	URL               string   `json:"url"`
	State             string   `json:"state"`
	ResourceState     string   `json:"resource_state"`
	HostTags          []string `json:"host_tags,omitempty"`
	Token             string   `json:"token"`
	Version           string   `json:"version,omitempty"` // agent version
	Capabilities      string   `json:"capabilities,omitempty"`
	CPUNumber         int      `json:"cpu_number"`
	CPUSockets        int      `json:"cpu_sockets"`
	CPUSpeed          int64    `json:"cpu_speed"`    // MHz per core
	MemoryTotal       int64    `json:"memory_total"` // bytes
	// What placement has reserved on the host for its VMs.
	CPUAllocated    int64 `json:"cpu_allocated"`    // MHz
	MemoryAllocated int64 `json:"memory_allocated"` // bytes
	// Usage the agent last reported.
	CPUUsedPercent float64 `json:"cpu_used_percent,omitempty"`
	MemoryUsed     int64   `json:"memory_used,omitempty"`
	// Host HA configuration.
	HAEnabled  bool   `json:"ha_enabled"`
	HAProvider string `json:"ha_provider,omitempty"`
	HAState    string `json:"ha_state"`
	// SelfFence says the host's agent kills its HA guests when its lease
	// runs out (a watchdog on a real host; always on libvirt's test
	// driver, whose guests live in the agent process).
	SelfFence bool       `json:"self_fence,omitempty"`
	OutOfBand *OutOfBand `json:"out_of_band,omitempty"`
	// StatusURL is where the host's agent answers its peers' lease
	// questions (and operators' status requests).
	StatusURL          string            `json:"status_url,omitempty"`
	ManagementServerID string            `json:"management_server_id,omitempty"`
	Annotation         string            `json:"annotation,omitempty"`
	AnnotatedBy        string            `json:"annotated_by,omitempty"` // username
	LastAnnotated      time.Time         `json:"last_annotated,omitzero"`
	Details            map[string]string `json:"details,omitempty"`
	Created            time.Time         `json:"created"`
	LastPinged         time.Time         `json:"last_pinged,omitzero"`
	Disconnected       time.Time         `json:"disconnected,omitzero"`
	Indexes
}

// GetID returns the host's UUID.
func (h *Host) GetID() string { return h.ID }

// Copy returns a deep copy, safe to change and propose.
func (h *Host) Copy() *Host {
	c := *h
	c.HostTags = append([]string(nil), h.HostTags...)
	c.Details = maps.Clone(h.Details)
	if h.OutOfBand != nil {
		o := *h.OutOfBand
		c.OutOfBand = &o
	}
	return &c
}

// StoragePool is a primary storage pool: where VM volumes live. A pool is
// shared by a cluster's hosts (scope CLUSTER), by every host of a zone
// (ZONE), or is one host's local disk (HOST, with HostID set).
type StoragePool struct {
	ID             string            `json:"id"`
	Name           string            `json:"name"`
	ZoneID         string            `json:"zone_id"`
	PodID          string            `json:"pod_id,omitempty"`
	ClusterID      string            `json:"cluster_id,omitempty"`
	HostID         string            `json:"host_id,omitempty"`
	Scope          string            `json:"scope"`
	Type           string            `json:"type"`
	URL            string            `json:"url"`
	Host           string            `json:"host"` // server address, the API's ipaddress
	Port           int               `json:"port,omitempty"`
	Path           string            `json:"path"`
	Hypervisor     string            `json:"hypervisor"`
	Provider       string            `json:"provider"`
	Tags           []string          `json:"tags,omitempty"`
	CapacityBytes  int64             `json:"capacity_bytes"`
	CapacityIOPS   int64             `json:"capacity_iops,omitempty"`
	AllocatedBytes int64             `json:"allocated_bytes"` // sum of its volumes' sizes
	UsedBytes      int64             `json:"used_bytes"`      // as last measured
	Overprovision  float64           `json:"overprovision"`   // 0 reads as 1
	State          string            `json:"state"`
	Details        map[string]string `json:"details,omitempty"`
	Created        time.Time         `json:"created"`
	Indexes
}

// GetID returns the pool's UUID.
func (p *StoragePool) GetID() string { return p.ID }

// Copy returns a deep copy, safe to change and propose.
func (p *StoragePool) Copy() *StoragePool {
	c := *p
	c.Tags = append([]string(nil), p.Tags...)
	c.Details = maps.Clone(p.Details)
	return &c
}

// OverprovisionRatio is the pool's overprovisioning factor (1 when unset).
func (p *StoragePool) OverprovisionRatio() float64 { return ratioOr1(p.Overprovision) }

// ImageStore is a secondary storage: where templates, ISOs and snapshots
// live.
type ImageStore struct {
	ID            string            `json:"id"`
	Name          string            `json:"name"`
	ZoneID        string            `json:"zone_id"`
	URL           string            `json:"url"`
	Protocol      string            `json:"protocol"` // nfs
	Provider      string            `json:"provider"` // NFS
	Scope         string            `json:"scope"`
	ReadOnly      bool              `json:"read_only,omitempty"`
	CapacityBytes int64             `json:"capacity_bytes,omitempty"` // as last measured
	UsedBytes     int64             `json:"used_bytes,omitempty"`
	Details       map[string]string `json:"details,omitempty"`
	Created       time.Time         `json:"created"`
	Indexes
}

// GetID returns the image store's UUID.
func (s *ImageStore) GetID() string { return s.ID }

// Copy returns a deep copy, safe to change and propose.
func (s *ImageStore) Copy() *ImageStore {
	c := *s
	c.Details = maps.Clone(s.Details)
	return &c
}

// HostByToken returns the host whose agent token is token, or nil.
func (s *Store) HostByToken(ws memdb.WatchSet, token string) (*Host, error) {
	if token == "" {
		return nil, nil
	}
	return first[Host](s.db.Txn(false), ws, TableHosts, "token", token)
}

// inZone is a compound index of a zone and a caseless name: names unique
// per zone.
func inZone(field string) *memdb.IndexSchema {
	return &memdb.IndexSchema{Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
		&memdb.StringFieldIndex{Field: "ZoneID"}, caseless(field)}}}
}

func byField(field string) *memdb.IndexSchema {
	return &memdb.IndexSchema{Indexer: &memdb.StringFieldIndex{Field: field}}
}

func zoneRef(id func(Object) string) Ref { return Ref{Index: "zone", Table: tableZones, Value: id} }
func podRef(id func(Object) string) Ref  { return Ref{Index: "pod", Table: TablePods, Value: id} }
func clusterRef(id func(Object) string) Ref {
	return Ref{Index: "cluster", Table: TableClusters, Value: id}
}

func nameInZone(what string, args func(Object) []any) []UniqueKey {
	return []UniqueKey{{Index: "name", What: what, Args: args}}
}

func init() {
	RegisterTable(TableDef{
		Name: TablePods, Noun: "pod", Snapshot: PodSnapshot, New: func() Object { return new(Pod) },
		Indexes: map[string]*memdb.IndexSchema{
			"zone": byField("ZoneID"), "name": inZone("Name"), "create": createOrder(),
		},
		Unique: nameInZone("name in this zone", func(o Object) []any { p := o.(*Pod); return []any{p.ZoneID, p.Name} }),
		Refs:   []Ref{zoneRef(func(o Object) string { return o.(*Pod).ZoneID })},
		Label:  func(o Object) string { return o.(*Pod).Name },
	})
	RegisterTable(TableDef{
		Name: TableClusters, Noun: "cluster", Snapshot: ClusterSnapshot, New: func() Object { return new(Cluster) },
		Indexes: map[string]*memdb.IndexSchema{
			"zone": byField("ZoneID"), "pod": byField("PodID"), "name": inZone("Name"), "create": createOrder(),
		},
		Unique: nameInZone("name in this zone", func(o Object) []any { c := o.(*Cluster); return []any{c.ZoneID, c.Name} }),
		Refs: []Ref{
			zoneRef(func(o Object) string { return o.(*Cluster).ZoneID }),
			podRef(func(o Object) string { return o.(*Cluster).PodID }),
		},
		Label: func(o Object) string { return o.(*Cluster).Name },
	})
	RegisterTable(TableDef{
		Name: TableHosts, Noun: "host", Snapshot: HostSnapshot, New: func() Object { return new(Host) },
		Indexes: map[string]*memdb.IndexSchema{
			"zone": byField("ZoneID"), "pod": byField("PodID"), "cluster": byField("ClusterID"),
			"name": inZone("Name"), "address": inZone("IPAddress"),
			"token":  {AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "Token"}},
			"create": createOrder(),
		},
		Unique: []UniqueKey{
			{Index: "address", What: "address in this zone", Args: func(o Object) []any { h := o.(*Host); return []any{h.ZoneID, h.IPAddress} }},
			{Index: "token", What: "agent token", Args: func(o Object) []any {
				if t := o.(*Host).Token; t != "" {
					return []any{t}
				}
				return nil
			}},
		},
		Refs: []Ref{
			zoneRef(func(o Object) string { return o.(*Host).ZoneID }),
			podRef(func(o Object) string { return o.(*Host).PodID }),
			clusterRef(func(o Object) string { return o.(*Host).ClusterID }),
		},
		Label: func(o Object) string { return o.(*Host).Name },
	})
	RegisterTable(TableDef{
		Name: TableStoragePools, Noun: "storage pool", Snapshot: StoragePoolSnapshot, New: func() Object { return new(StoragePool) },
		Indexes: map[string]*memdb.IndexSchema{
			"zone": byField("ZoneID"), "pod": optional("PodID"), "cluster": optional("ClusterID"), "host": optional("HostID"),
			"name": inZone("Name"), "create": createOrder(),
		},
		Unique: nameInZone("name in this zone", func(o Object) []any { p := o.(*StoragePool); return []any{p.ZoneID, p.Name} }),
		Refs: []Ref{
			zoneRef(func(o Object) string { return o.(*StoragePool).ZoneID }),
			podRef(func(o Object) string { return o.(*StoragePool).PodID }),
			clusterRef(func(o Object) string { return o.(*StoragePool).ClusterID }),
			{Index: "host", Table: TableHosts, Value: func(o Object) string { return o.(*StoragePool).HostID }},
		},
		Label: func(o Object) string { return o.(*StoragePool).Name },
	})
	RegisterTable(TableDef{
		Name: TableImageStores, Noun: "image store", Snapshot: ImageStoreSnapshot, New: func() Object { return new(ImageStore) },
		Indexes: map[string]*memdb.IndexSchema{
			"zone": byField("ZoneID"), "name": inZone("Name"), "create": createOrder(),
		},
		Unique: nameInZone("name in this zone", func(o Object) []any { s := o.(*ImageStore); return []any{s.ZoneID, s.Name} }),
		Refs:   []Ref{zoneRef(func(o Object) string { return o.(*ImageStore).ZoneID })},
		Label:  func(o Object) string { return o.(*ImageStore).Name },
	})
}
