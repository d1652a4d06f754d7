package fsm

import (
	"maps"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// The catalog: what users build VMs from. Service offerings (CPU and
// memory) and disk offerings belong to the cloud's operators and may be
// limited to some domains and zones; templates and ISOs belong to accounts
// and live in zones. OS types are a fixed built-in list served from memory,
// not a table: see OSTypes.

// Tables of the catalog area.
const (
	TableServiceOfferings = "service_offerings"
	TableDiskOfferings    = "disk_offerings"
	TableTemplates        = "templates"
	// TableTemplateZones holds one row per zone a template or ISO is
	// registered in (CloudStack's template_zone_ref and template_store_ref
	// in one), carrying that copy's download state. A cross-zone image has
	// a single row with no zone.
	TableTemplateZones = "template_zones"
)

// Snapshot record types of the catalog tables (range 40-59).
const (
	ServiceOfferingSnapshot SnapshotType = 40
	DiskOfferingSnapshot    SnapshotType = 41
	TemplateSnapshot        SnapshotType = 42
	TemplateZoneSnapshot    SnapshotType = 43
)

// Storage types of offerings: where volumes go.
const (
	StorageTypeShared = "shared"
	StorageTypeLocal  = "local"
)

// Provisioning types of the volumes an offering makes.
const (
	ProvisioningThin   = "thin"
	ProvisioningSparse = "sparse"
	ProvisioningFat    = "fat"
)

// OfferingStateActive is the state of a usable offering.
const OfferingStateActive = "Active"

// Kinds of image in the templates table.
const (
	ImageKindTemplate = "TEMPLATE"
	ImageKindISO      = "ISO"
)

// TemplateTypeUser is the type of templates and ISOs that accounts register.
const TemplateTypeUser = "USER"

// Download states of a template's copy in a zone, as CloudStack names them
// (VMTemplateStorageResourceAssoc.Status). registerTemplate and registerIso
// record DownloadNotDownloaded; the storage work moves a copy through
// DownloadInProgress to DownloadDownloaded (and sets IsReady and the sizes)
// or to DownloadError.
const (
	DownloadNotDownloaded = "NOT_DOWNLOADED"
	DownloadInProgress    = "DOWNLOAD_IN_PROGRESS"
	DownloadDownloaded    = "DOWNLOADED"
	DownloadError         = "DOWNLOAD_ERROR"
	DownloadAbandoned     = "ABANDONED"
)

// ServiceOffering is a compute offering: the CPU and memory of a VM, where
// it may run (host tags) and where its root volume goes (storage type and
// tags). A customized offering leaves CPU number and memory to the deploy
// request, within the Min/Max bounds when they are set. DomainIDs and
// ZoneIDs limit who may use it and where; empty means everyone and
// everywhere.
type ServiceOffering struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	DisplayText string `json:"display_text"`
	CPUNumber   int    `json:"cpu_number,omitempty"`
	CPUSpeed    int    `json:"cpu_speed,omitempty"` // MHz per core
	Memory      int    `json:"memory,omitempty"`    // MiB
	Customized  bool   `json:"customized,omitempty"`
	// Bounds of a customized offering; 0 means no bound.
	MinCPUNumber int `json:"min_cpu_number,omitempty"`
	MaxCPUNumber int `json:"max_cpu_number,omitempty"`
	MinMemory    int `json:"min_memory,omitempty"`
	MaxMemory    int `json:"max_memory,omitempty"`

	OfferHA               bool     `json:"offer_ha,omitempty"`
	LimitCPUUse           bool     `json:"limit_cpu_use,omitempty"`
	IsVolatile            bool     `json:"is_volatile,omitempty"`
	DynamicScalingEnabled bool     `json:"dynamic_scaling_enabled,omitempty"`
	HostTags              []string `json:"host_tags,omitempty"`
	StorageTags           []string `json:"storage_tags,omitempty"`
	StorageType           string   `json:"storage_type"`
	ProvisioningType      string   `json:"provisioning_type"`
	CacheMode             string   `json:"cache_mode,omitempty"`
	RootDiskSize          int64    `json:"root_disk_size,omitempty"` // GiB
	NetworkRate           int      `json:"network_rate,omitempty"`   // Mbit/s
	DeploymentPlanner     string   `json:"deployment_planner,omitempty"`
	EncryptRoot           bool     `json:"encrypt_root,omitempty"`
	// DiskOfferingID, when set, is the disk offering of the root volume.
	DiskOfferingID         string            `json:"disk_offering_id,omitempty"`
	DiskOfferingStrictness bool              `json:"disk_offering_strictness,omitempty"`
	DomainIDs              []string          `json:"domain_ids,omitempty"`
	ZoneIDs                []string          `json:"zone_ids,omitempty"`
	SortKey                int               `json:"sort_key,omitempty"`
	Details                map[string]string `json:"details,omitempty"`
	State                  string            `json:"state"`
	Created                time.Time         `json:"created"`
	Indexes
}

// GetID returns the offering's UUID.
func (o *ServiceOffering) GetID() string { return o.ID }

// Copy returns a deep copy, safe to change and propose.
func (o *ServiceOffering) Copy() *ServiceOffering {
	c := *o
	c.HostTags = catalogCloneStrings(o.HostTags)
	c.StorageTags = catalogCloneStrings(o.StorageTags)
	c.DomainIDs = catalogCloneStrings(o.DomainIDs)
	c.ZoneIDs = catalogCloneStrings(o.ZoneIDs)
	c.Details = maps.Clone(o.Details)
	return &c
}

// DiskOffering is a data volume offering: a fixed size, or a size the
// request chooses when Customized, on storage matching Tags.
type DiskOffering struct {
	ID                 string            `json:"id"`
	Name               string            `json:"name"`
	DisplayText        string            `json:"display_text"`
	DiskSize           int64             `json:"disk_size,omitempty"` // bytes; 0 when customized
	Customized         bool              `json:"customized,omitempty"`
	CustomizedIOPS     bool              `json:"customized_iops,omitempty"`
	MinIOPS            int64             `json:"min_iops,omitempty"`
	MaxIOPS            int64             `json:"max_iops,omitempty"`
	Tags               []string          `json:"tags,omitempty"`
	StorageType        string            `json:"storage_type"`
	ProvisioningType   string            `json:"provisioning_type"`
	CacheMode          string            `json:"cache_mode,omitempty"`
	Encrypt            bool              `json:"encrypt,omitempty"`
	DisplayOffering    bool              `json:"display_offering"`
	DiskSizeStrictness bool              `json:"disk_size_strictness,omitempty"`
	DomainIDs          []string          `json:"domain_ids,omitempty"`
	ZoneIDs            []string          `json:"zone_ids,omitempty"`
	SortKey            int               `json:"sort_key,omitempty"`
	Details            map[string]string `json:"details,omitempty"`
	State              string            `json:"state"`
	Created            time.Time         `json:"created"`
	Indexes
}

// GetID returns the offering's UUID.
func (o *DiskOffering) GetID() string { return o.ID }

// Copy returns a deep copy, safe to change and propose.
func (o *DiskOffering) Copy() *DiskOffering {
	c := *o
	c.Tags = catalogCloneStrings(o.Tags)
	c.DomainIDs = catalogCloneStrings(o.DomainIDs)
	c.ZoneIDs = catalogCloneStrings(o.ZoneIDs)
	c.Details = maps.Clone(o.Details)
	return &c
}

// Template is a disk image VMs boot from, or an ISO (Kind), owned by an
// account. URL may carry credentials for the download: it never leaves
// the store as it is. Where the image lives and whether it is ready is per
// zone, in TemplateZone rows.
type Template struct {
	ID                    string            `json:"id"`
	Name                  string            `json:"name"`
	DisplayText           string            `json:"display_text"`
	Kind                  string            `json:"kind"`          // ImageKindTemplate or ImageKindISO
	TemplateType          string            `json:"template_type"` // TemplateTypeUser
	Format                string            `json:"format"`        // QCOW2, RAW, ... or ISO
	Hypervisor            string            `json:"hypervisor,omitempty"`
	OSTypeID              string            `json:"os_type_id"`
	URL                   string            `json:"url"`
	Checksum              string            `json:"checksum,omitempty"`
	Bits                  int               `json:"bits,omitempty"`
	IsPublic              bool              `json:"is_public,omitempty"`
	IsFeatured            bool              `json:"is_featured,omitempty"`
	IsExtractable         bool              `json:"is_extractable,omitempty"`
	PasswordEnabled       bool              `json:"password_enabled,omitempty"`
	SSHKeyEnabled         bool              `json:"ssh_key_enabled,omitempty"`
	IsDynamicallyScalable bool              `json:"is_dynamically_scalable,omitempty"`
	RequiresHVM           bool              `json:"requires_hvm,omitempty"`
	Bootable              bool              `json:"bootable,omitempty"`
	DirectDownload        bool              `json:"direct_download,omitempty"`
	CrossZones            bool              `json:"cross_zones,omitempty"`
	TemplateTag           string            `json:"template_tag,omitempty"`
	Details               map[string]string `json:"details,omitempty"`
	SortKey               int               `json:"sort_key,omitempty"`
	AccountID             string            `json:"account_id"`
	DomainID              string            `json:"domain_id"`
	Created               time.Time         `json:"created"`
	Indexes
}

// GetID returns the template's UUID.
func (t *Template) GetID() string { return t.ID }

// Owner returns the account and domain that own the template.
func (t *Template) Owner() (string, string) { return t.AccountID, t.DomainID }

// Copy returns a deep copy, safe to change and propose.
func (t *Template) Copy() *Template {
	c := *t
	c.Details = maps.Clone(t.Details)
	return &c
}

// TemplateZone is a template's (or ISO's) copy in one zone, or, with no
// ZoneID, the single row of a cross-zone image. The API records a new copy
// as DownloadNotDownloaded and not ready; the storage work that downloads
// it updates DownloadState, DownloadPercent, IsReady and the sizes.
type TemplateZone struct {
	ID              string    `json:"id"`
	TemplateID      string    `json:"template_id"`
	ZoneID          string    `json:"zone_id,omitempty"`
	DownloadState   string    `json:"download_state"`
	DownloadPercent int       `json:"download_percent,omitempty"`
	ErrorText       string    `json:"error_text,omitempty"`
	IsReady         bool      `json:"is_ready,omitempty"`
	Size            int64     `json:"size,omitempty"`          // virtual size, bytes
	PhysicalSize    int64     `json:"physical_size,omitempty"` // bytes on the image store
	Created         time.Time `json:"created"`
	Indexes
}

// GetID returns the row's UUID.
func (z *TemplateZone) GetID() string { return z.ID }

// Copy returns a copy, safe to change and propose.
func (z *TemplateZone) Copy() *TemplateZone { c := *z; return &c }

func catalogCloneStrings(s []string) []string {
	if s == nil {
		return nil
	}
	return append([]string(nil), s...)
}

// catalogMultiRef declares that rows point at rows of table through a list field
// (an offering's domains or zones). Value is empty: the transaction
// applier checks single references only, so proposers add a Check op for
// each listed row; the index lets a delete of a listed row find its users.
func catalogMultiRef(index, table string) Ref {
	return Ref{Index: index, Table: table, Value: func(Object) string { return "" }}
}

func catalogListIndex(field string) *memdb.IndexSchema {
	return &memdb.IndexSchema{AllowMissing: true, Indexer: &memdb.StringSliceFieldIndex{Field: field}}
}

func init() {
	RegisterTable(TableDef{
		Name: TableServiceOfferings, Noun: "service offering", Snapshot: ServiceOfferingSnapshot,
		New: func() Object { return new(ServiceOffering) },
		Indexes: map[string]*memdb.IndexSchema{
			"name":          {Indexer: caseless("Name")},
			"create":        createOrder(),
			"domains":       catalogListIndex("DomainIDs"),
			"zones":         catalogListIndex("ZoneIDs"),
			"disk_offering": optional("DiskOfferingID"),
		},
		Unique: []UniqueKey{{Index: "name", What: "name", Args: func(o Object) []any { return []any{o.(*ServiceOffering).Name} }}},
		Refs: []Ref{
			catalogMultiRef("domains", tableDomains),
			catalogMultiRef("zones", tableZones),
			{Index: "disk_offering", Table: TableDiskOfferings, Value: func(o Object) string { return o.(*ServiceOffering).DiskOfferingID }},
		},
		Label: func(o Object) string { return o.(*ServiceOffering).Name },
	})
	RegisterTable(TableDef{
		Name: TableDiskOfferings, Noun: "disk offering", Snapshot: DiskOfferingSnapshot,
		New: func() Object { return new(DiskOffering) },
		Indexes: map[string]*memdb.IndexSchema{
			"name":    {Indexer: caseless("Name")},
			"create":  createOrder(),
			"domains": catalogListIndex("DomainIDs"),
			"zones":   catalogListIndex("ZoneIDs"),
		},
		Unique: []UniqueKey{{Index: "name", What: "name", Args: func(o Object) []any { return []any{o.(*DiskOffering).Name} }}},
		Refs:   []Ref{catalogMultiRef("domains", tableDomains), catalogMultiRef("zones", tableZones)},
		Label:  func(o Object) string { return o.(*DiskOffering).Name },
	})
	RegisterTable(TableDef{
		Name: TableTemplates, Noun: "template", Snapshot: TemplateSnapshot,
		New: func() Object { return new(Template) },
		Indexes: map[string]*memdb.IndexSchema{
			"create":  createOrder(),
			"account": {Indexer: &memdb.StringFieldIndex{Field: "AccountID"}},
		},
		// The owner account: an account cannot go while it owns images.
		Refs:  []Ref{{Index: "account", Table: tableAccounts, Value: func(o Object) string { return o.(*Template).AccountID }}},
		Label: func(o Object) string { return o.(*Template).Name },
	})
	RegisterTable(TableDef{
		Name: TableTemplateZones, Noun: "template copy", Snapshot: TemplateZoneSnapshot,
		New: func() Object { return new(TemplateZone) },
		Indexes: map[string]*memdb.IndexSchema{
			"create":   createOrder(),
			"template": {Indexer: &memdb.StringFieldIndex{Field: "TemplateID"}},
			"zone":     optional("ZoneID"),
			// Cross-zone rows (no zone) are indexed by their template alone.
			"template_zone": {Indexer: &memdb.CompoundIndex{AllowMissing: true, Indexes: []memdb.Indexer{
				&memdb.StringFieldIndex{Field: "TemplateID"}, &memdb.StringFieldIndex{Field: "ZoneID"}}}},
		},
		Unique: []UniqueKey{{Index: "template_zone", What: "zone", Args: func(o Object) []any {
			z := o.(*TemplateZone)
			if z.ZoneID == "" {
				return nil
			}
			return []any{z.TemplateID, z.ZoneID}
		}}},
		Refs: []Ref{
			{Index: "template", Table: TableTemplates, Value: func(o Object) string { return o.(*TemplateZone).TemplateID }},
			{Index: "zone", Table: tableZones, Value: func(o Object) string { return o.(*TemplateZone).ZoneID }},
		},
		// A zone that still holds images names the image's ID in its in-use
		// error: deleteTemplate or deleteIso with that id and zoneid frees it.
		Label: func(o Object) string { return o.(*TemplateZone).TemplateID },
	})
	RegisterTaggable("Template", TableTemplates)
	RegisterTaggable("ISO", TableTemplates)
}

// OSCategory groups OS types (CloudStack's guest OS categories).
type OSCategory struct {
	ID   string
	Name string
}

// OSType is a guest operating system a template or ISO declares, which
// tells the hypervisor how to present devices to the guest.
type OSType struct {
	ID          string
	CategoryID  string
	Description string
}

// IDs of the built-in OS categories and of the OS types other code names.
// They are fixed so that every cluster and every version names them alike.
const (
	OSCategoryCentOS    = "d755c1ce-b88f-4e53-9f75-276e5b1921f7"
	OSCategoryDebian    = "5db0e0e3-0ebf-4c70-96e4-a497ac2a70cd"
	OSCategoryOracle    = "ff9695eb-948b-4e7b-a865-4419b57a6239"
	OSCategoryRedHat    = "16399a0c-4fa8-4295-9d5b-1cbf755b175d"
	OSCategorySUSE      = "36ceebc5-a505-4cbc-8dbc-0474c5e7c9cf"
	OSCategoryWindows   = "2d6017ce-bb19-4e14-adf3-3eed1910b8a9"
	OSCategoryOther     = "2439f050-2b43-4bfc-bcf5-17bfad0188e7"
	OSCategoryUnix      = "3a836f00-f272-4f6e-986f-70c1a7775f62"
	OSCategoryUbuntu    = "437dca61-23d5-4575-982f-5aec9dc34ba6"
	OSCategoryRocky     = "d91ab791-aa39-41a5-8eec-b325e3adb7f7"
	OSCategoryAlmaLinux = "76ced76b-ea03-4c3f-96ef-e274d8314652"

	// OSTypeOtherLinux64 is the OS type of images registered without one.
	OSTypeOtherLinux64 = "c7bb3577-740e-4be0-8c22-8bdd4a985943"
)

// osCategories and osTypes are the built-in lists, in the order listOsTypes
// and listOsCategories show them. Append only: IDs never change or go.
var osCategories = []OSCategory{
	{OSCategoryCentOS, "CentOS"},
	{OSCategoryDebian, "Debian"},
	{OSCategoryOracle, "Oracle"},
	{OSCategoryRedHat, "RedHat"},
	{OSCategorySUSE, "SUSE"},
	{OSCategoryWindows, "Windows"},
	{OSCategoryOther, "Other"},
	{OSCategoryUnix, "Unix"},
	{OSCategoryUbuntu, "Ubuntu"},
	{OSCategoryRocky, "Rocky Linux"},
	{OSCategoryAlmaLinux, "AlmaLinux"},
}

var osTypes = []OSType{
	{"9b424dd5-d8fe-4c5b-8faf-add09e85d9d7", OSCategoryCentOS, "CentOS 7"},
	{"e05bb506-ffc4-4d4b-b1a2-717e9fde8392", OSCategoryCentOS, "CentOS 8"},
	{"a9c803b5-3bf8-4bb4-8c4d-ed7dd72d8f26", OSCategoryCentOS, "CentOS Stream 9"},
	{"0d136358-28ed-419d-8dd1-32f0940ca41c", OSCategoryDebian, "Debian GNU/Linux 10 (64-bit)"},
	{"13e64443-144a-4c12-b0c5-8f8dcda6e64a", OSCategoryDebian, "Debian GNU/Linux 11 (64-bit)"},
	{"ee80a375-06fc-46c5-9e68-8aa3c3e7ce62", OSCategoryDebian, "Debian GNU/Linux 12 (64-bit)"},
	{"830f5048-ee39-4b42-95a2-cc4f910c4fd7", OSCategoryOracle, "Oracle Linux 8"},
	{"3c49ce62-4777-4f5f-8731-bfec8ea8aa5b", OSCategoryOracle, "Oracle Linux 9"},
	{"3cacbd65-cc5d-4df5-b29e-63285c88ea90", OSCategoryRedHat, "Red Hat Enterprise Linux 7"},
	{"1c097fda-0074-48ee-91ad-320b2e1c57bc", OSCategoryRedHat, "Red Hat Enterprise Linux 8"},
	{"1c401a57-1cdd-4e88-9c0f-7c692444edee", OSCategoryRedHat, "Red Hat Enterprise Linux 9"},
	{"d34d18f3-9225-4703-abca-ef798b7af3a2", OSCategorySUSE, "SUSE Linux Enterprise Server 15 (64-bit)"},
	{"b8a60de2-b29e-42d3-aeab-fedd17660cbe", OSCategorySUSE, "openSUSE Leap 15 (64-bit)"},
	{"e46242c4-d06a-4fcf-aabf-0cf5f3bed0f5", OSCategoryWindows, "Windows 10 (64-bit)"},
	{"d23b1245-f4b9-4b51-a9e6-cb79b23af811", OSCategoryWindows, "Windows 11 (64-bit)"},
	{"0085f93a-0616-4bb3-9a63-3c60d553874d", OSCategoryWindows, "Windows Server 2016 (64-bit)"},
	{"51f83814-d9e5-40e2-9bb8-33a4c1a52600", OSCategoryWindows, "Windows Server 2019 (64-bit)"},
	{"44ea4f15-1c99-422c-9cc2-afc8153020c7", OSCategoryWindows, "Windows Server 2022 (64-bit)"},
	{"ce3558e6-6201-4df9-80e4-a54ce9ae0d8f", OSCategoryUnix, "FreeBSD 13 (64-bit)"},
	{"39b9466b-0fc9-4b82-a9a0-fc1690535df1", OSCategoryUnix, "FreeBSD 14 (64-bit)"},
	{"f2dc7136-0bca-4ba4-a748-8f7a6574b817", OSCategoryUbuntu, "Ubuntu 18.04 LTS"},
	{"86ba7411-4f00-48c2-bc9e-04ce0044d2c9", OSCategoryUbuntu, "Ubuntu 20.04 LTS"},
	{"d072f798-8e85-4fc9-9b1a-6809e2c1decc", OSCategoryUbuntu, "Ubuntu 22.04 LTS"},
	{"7c55ebda-2289-49f7-986c-04c180d68b82", OSCategoryUbuntu, "Ubuntu 24.04 LTS"},
	{"f3e99116-b8e0-4cc9-8131-474d199e8dac", OSCategoryRocky, "Rocky Linux 8"},
	{"0487bb2e-fc0f-4b83-9d0f-6989238a5c21", OSCategoryRocky, "Rocky Linux 9"},
	{"1bdea4bd-bd7e-44dc-b541-b9b66db1c2a0", OSCategoryAlmaLinux, "AlmaLinux 8"},
	{"7fa6bd1f-f435-4a59-a6aa-b7fa29f0b48e", OSCategoryAlmaLinux, "AlmaLinux 9"},
	{"08c04ecb-97c1-4ccc-a742-ce1e2057de2a", OSCategoryOther, "Other (32-bit)"},
	{"d4d7bf16-3a40-4f19-be01-6ef3ce6f201b", OSCategoryOther, "Other (64-bit)"},
	{"c2d05701-23a9-4043-9043-3e29e7b210d5", OSCategoryOther, "Other Linux (32-bit)"},
	{OSTypeOtherLinux64, OSCategoryOther, "Other Linux (64-bit)"},
	{"62b089d3-4b47-4d56-bbb1-3d6b14d50d9e", OSCategoryOther, "Other PV Virtio-SCSI (64-bit)"},
}

// OSCategories returns the built-in OS categories.
func OSCategories() []OSCategory { return append([]OSCategory(nil), osCategories...) }

// OSTypes returns the built-in OS types.
func OSTypes() []OSType { return append([]OSType(nil), osTypes...) }

// OSTypeByID returns a built-in OS type by its UUID.
func OSTypeByID(id string) (OSType, bool) {
	for _, t := range osTypes {
		if t.ID == id {
			return t, true
		}
	}
	return OSType{}, false
}

// OSCategoryByID returns a built-in OS category by its UUID.
func OSCategoryByID(id string) (OSCategory, bool) {
	for _, c := range osCategories {
		if c.ID == id {
			return c, true
		}
	}
	return OSCategory{}, false
}

// SettingAllowedInternalSites lists the internal networks (CIDRs, comma
// separated) template and ISO URLs may point at; every other internal
// address (loopback, private, link-local) is refused, so users cannot make
// the leader fetch from inside the cloud's own networks.
const SettingAllowedInternalSites = "secstorage.allowed.internal.sites"

func init() {
	settingDefs = append(settingDefs, SettingDef{Name: SettingAllowedInternalSites, Category: "Advanced", Type: "String", Default: "", Dynamic: true,
		Description: "Internal networks (CIDRs, comma separated) that template and ISO downloads may reach; others such as loopback, private and link-local ranges are refused."})
}
