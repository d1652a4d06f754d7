package fsm

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

func init() {
	tableSamples[TableServiceOfferings] = func() Object {
		o := catTestServiceOffering("so-1", "small")
		o.Customized, o.MinCPUNumber, o.MaxCPUNumber, o.MinMemory, o.MaxMemory = true, 1, 8, 512, 16384
		o.OfferHA, o.LimitCPUUse, o.IsVolatile, o.DynamicScalingEnabled, o.EncryptRoot = true, true, true, true, true
		o.CacheMode, o.RootDiskSize, o.NetworkRate, o.DeploymentPlanner = "writeback", 20, 100, "FirstFitPlanner"
		o.DiskOfferingID, o.DiskOfferingStrictness, o.SortKey = "do-1", true, 3
		o.DomainIDs, o.ZoneIDs = []string{"d-1"}, []string{"z-1"}
		o.Details = map[string]string{"k": "v"}
		return o
	}
	tableSamples[TableDiskOfferings] = func() Object {
		o := catTestDiskOffering("do-1", "data")
		o.Customized, o.CustomizedIOPS, o.MinIOPS, o.MaxIOPS = true, true, 100, 1000
		o.CacheMode, o.Encrypt, o.DiskSizeStrictness, o.SortKey = "none", true, true, 2
		o.DomainIDs, o.ZoneIDs = []string{"d-1"}, []string{"z-1"}
		o.Details = map[string]string{"k": "v"}
		return o
	}
	tableSamples[TableTemplates] = func() Object {
		t := catTestTemplate("t-1", "a-1", "d-1", "ubuntu")
		t.Checksum, t.Bits, t.IsPublic, t.IsFeatured, t.IsExtractable = "{SHA-256}ab", 64, true, true, true
		t.PasswordEnabled, t.SSHKeyEnabled, t.IsDynamicallyScalable, t.RequiresHVM = true, true, true, true
		t.Bootable, t.DirectDownload, t.CrossZones, t.TemplateTag, t.SortKey = true, true, true, "lts", 4
		t.Details = map[string]string{"k": "v"}
		return t
	}
	tableSamples[TableTemplateZones] = func() Object {
		z := catTestTemplateZone("tz-1", "t-1", "z-1")
		z.DownloadState, z.DownloadPercent, z.ErrorText = DownloadError, 42, "connection reset"
		z.IsReady, z.Size, z.PhysicalSize = true, 10<<30, 1<<30
		return z
	}
}

func catTestServiceOffering(id, name string) *ServiceOffering {
	return &ServiceOffering{ID: id, Name: name, DisplayText: name + " offering", CPUNumber: 2, CPUSpeed: 2000, Memory: 2048,
		HostTags: []string{"ssd"}, StorageTags: []string{"fast"}, StorageType: StorageTypeShared, ProvisioningType: ProvisioningThin,
		State: OfferingStateActive, Created: testTime}
}

func catTestDiskOffering(id, name string) *DiskOffering {
	return &DiskOffering{ID: id, Name: name, DisplayText: name + " disk", DiskSize: 10 << 30, Tags: []string{"fast"},
		StorageType: StorageTypeShared, ProvisioningType: ProvisioningThin, DisplayOffering: true, State: OfferingStateActive, Created: testTime}
}

func catTestTemplate(id, account, domain, name string) *Template {
	return &Template{ID: id, Name: name, DisplayText: name + " image", Kind: ImageKindTemplate, TemplateType: TemplateTypeUser,
		Format: "QCOW2", Hypervisor: "KVM", OSTypeID: OSTypeOtherLinux64, URL: "https://user:pw@images.example/" + name + ".qcow2",
		AccountID: account, DomainID: domain, Created: testTime}
}

func catTestTemplateZone(id, template, zone string) *TemplateZone {
	return &TemplateZone{ID: id, TemplateID: template, ZoneID: zone, DownloadState: DownloadNotDownloaded, Created: testTime}
}

// catFSMFixture commits two zones, a domain ROOT/eng with an account, a
// disk offering, a service offering scoped to the domain and zone z-1 that
// uses the disk offering, a template of the account in both zones and a
// cross-zone ISO.
func catFSMFixture(t *testing.T) *FSM {
	t.Helper()
	f := seeded(t)
	z1, z2 := testZone("z-1", "one"), testZone("z-2", "two")
	so := catTestServiceOffering("so-1", "small")
	so.DomainIDs, so.ZoneIDs, so.DiskOfferingID = []string{"d-eng"}, []string{"z-1"}, "do-1"
	iso := catTestTemplate("iso-1", "a-eng", "d-eng", "rescue")
	iso.Kind, iso.Format, iso.Hypervisor, iso.CrossZones = ImageKindISO, "ISO", "", true
	ops := []TxnOp{
		Create(tableZones, &z1), Create(tableZones, &z2),
		Create(tableDomains, &Domain{ID: "d-eng", Name: "eng", Path: "ROOT/eng", ParentID: "d-root", Created: testTime}),
		Create(tableAccounts, &Account{ID: "a-eng", Name: "eng", DomainID: "d-eng", Type: AccountTypeUser, State: StateEnabled, Created: testTime}),
		Create(TableDiskOfferings, catTestDiskOffering("do-1", "data")),
		Create(TableServiceOfferings, so),
		Create(TableTemplates, catTestTemplate("t-1", "a-eng", "d-eng", "ubuntu")),
		Create(TableTemplateZones, catTestTemplateZone("tz-1", "t-1", "z-1")),
		Create(TableTemplateZones, catTestTemplateZone("tz-2", "t-1", "z-2")),
		Create(TableTemplates, iso),
		Create(TableTemplateZones, catTestTemplateZone("tz-3", "iso-1", "")),
	}
	if err := apply(t, f, 2, TxnRequestType, TxnRequest{Ops: ops}); err != nil {
		t.Fatalf("catalog fixture: %v", err)
	}
	return f
}

func TestCatalogDeletesInUse(t *testing.T) {
	f := catFSMFixture(t)
	cases := []struct {
		name  string
		table string
		id    string
		want  string
	}{
		{"zone with a template copy", tableZones, "z-2", "cannot delete zone z-2: template copy t-1 still uses it"},
		{"zone of an offering", tableZones, "z-1", "cannot delete zone z-1: service offering small still uses it"},
		{"domain of an offering", tableDomains, "d-eng", "cannot delete domain d-eng: account eng still uses it"},
		{"disk offering of a service offering", TableDiskOfferings, "do-1", "cannot delete disk offering do-1: service offering small still uses it"},
		{"account owning templates", tableAccounts, "a-eng", "cannot delete account a-eng: template rescue still uses it"},
		{"template with zone copies", TableTemplates, "t-1", "cannot delete template t-1: template copy t-1 still uses it"},
	}
	for i, tc := range cases {
		err := apply(t, f, uint64(10+i), TxnRequestType, TxnRequest{Ops: []TxnOp{Delete(tc.table, tc.id)}})
		if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want in use %q", tc.name, err, tc.want)
		}
	}
	// The cross-zone ISO holds no zone: once the template's copy in z-2 is
	// gone, z-2 can go.
	if err := apply(t, f, 20, TxnRequestType, TxnRequest{Ops: []TxnOp{Delete(TableTemplateZones, "tz-2"), Delete(tableZones, "z-2")}}); err != nil {
		t.Fatalf("delete copy then zone: %v", err)
	}
	// A domain listed by an offering is in use once its account is gone.
	if err := apply(t, f, 21, TxnRequestType, TxnRequest{Ops: []TxnOp{
		Delete(TableTemplateZones, "tz-1"), Delete(TableTemplates, "t-1"),
		Delete(TableTemplateZones, "tz-3"), Delete(TableTemplates, "iso-1"), Delete(tableAccounts, "a-eng")}}); err != nil {
		t.Fatalf("delete images then account: %v", err)
	}
	err := apply(t, f, 22, TxnRequestType, TxnRequest{Ops: []TxnOp{Delete(tableDomains, "d-eng")}})
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "service offering small still uses it") {
		t.Fatalf("delete domain of an offering: err = %v", err)
	}
	if err := apply(t, f, 23, TxnRequestType, TxnRequest{Ops: []TxnOp{
		Delete(TableServiceOfferings, "so-1"), Delete(TableDiskOfferings, "do-1"), Delete(tableDomains, "d-eng"), Delete(tableZones, "z-1")}}); err != nil {
		t.Fatalf("delete offerings, domain and zone: %v", err)
	}
}

func TestCatalogReferencesAndUniqueKeys(t *testing.T) {
	f := catFSMFixture(t)
	cases := []struct {
		name string
		op   TxnOp
		kind error
		want string
	}{
		{"copy in a missing zone", Create(TableTemplateZones, catTestTemplateZone("tz-x", "t-1", "z-missing")), ErrNotFound, "zone z-missing does not exist"},
		{"copy of a missing template", Create(TableTemplateZones, catTestTemplateZone("tz-x", "t-missing", "z-1")), ErrNotFound, "template t-missing does not exist"},
		{"template of a missing account", Create(TableTemplates, catTestTemplate("t-x", "a-missing", "d-eng", "x")), ErrNotFound, "account a-missing does not exist"},
		{"offering of a missing disk offering", Create(TableServiceOfferings, func() *ServiceOffering {
			o := catTestServiceOffering("so-x", "x")
			o.DiskOfferingID = "do-missing"
			return o
		}()), ErrNotFound, "disk offering do-missing does not exist"},
		{"second copy in a zone", Create(TableTemplateZones, catTestTemplateZone("tz-x", "t-1", "z-1")), ErrConflict, "a template copy with this zone already exists (id tz-1)"},
		{"service offering name, other case", Create(TableServiceOfferings, catTestServiceOffering("so-x", "SMALL")), ErrConflict, "a service offering with this name already exists (id so-1)"},
		{"disk offering name", Create(TableDiskOfferings, catTestDiskOffering("do-x", "Data")), ErrConflict, "a disk offering with this name already exists (id do-1)"},
	}
	for i, tc := range cases {
		err := apply(t, f, uint64(10+i), TxnRequestType, TxnRequest{Ops: []TxnOp{tc.op}})
		if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %v %q", tc.name, err, tc.kind, tc.want)
		}
	}
	// Offerings are found through their domain and zone lists.
	byDomain, err := List[ServiceOffering](f.State(), nil, TableServiceOfferings, "domains", "d-eng")
	if err != nil || len(byDomain) != 1 || byDomain[0].ID != "so-1" {
		t.Fatalf("offerings by domain = %v, %v", byDomain, err)
	}
	if n, _ := f.State().Count(TableServiceOfferings, "zones", "z-2"); n != 0 {
		t.Fatalf("offerings in z-2 = %d", n)
	}
	// A template's copies, by template and by zone.
	copies, _ := List[TemplateZone](f.State(), nil, TableTemplateZones, "template", "t-1")
	if len(copies) != 2 {
		t.Fatalf("copies of t-1 = %d", len(copies))
	}
	if z, _ := List[TemplateZone](f.State(), nil, TableTemplateZones, "template_zone", "t-1", "z-2"); len(z) != 1 || z[0].ID != "tz-2" {
		t.Fatalf("copy of t-1 in z-2 = %v", z)
	}
	// Renaming an offering to its own name in another case is no conflict.
	so, _ := Get[ServiceOffering](f.State(), nil, TableServiceOfferings, "so-1")
	upd := so.Copy()
	upd.Name = "Small"
	if err := apply(t, f, 30, TxnRequestType, TxnRequest{Ops: []TxnOp{Update(TableServiceOfferings, upd)}}); err != nil {
		t.Fatalf("rename to own name: %v", err)
	}
}

func TestCatalogCopiesShareNothing(t *testing.T) {
	f := catFSMFixture(t)
	so, _ := Get[ServiceOffering](f.State(), nil, TableServiceOfferings, "so-1")
	c := so.Copy()
	c.HostTags[0], c.StorageTags[0], c.DomainIDs[0], c.ZoneIDs[0] = "x", "x", "x", "x"
	if so.HostTags[0] != "ssd" || so.StorageTags[0] != "fast" || so.DomainIDs[0] != "d-eng" || so.ZoneIDs[0] != "z-1" {
		t.Fatal("ServiceOffering.Copy shares its lists")
	}
	d := tableSamples[TableDiskOfferings]().(*DiskOffering)
	dc := d.Copy()
	dc.Tags[0], dc.Details["k"] = "x", "x"
	if d.Tags[0] != "fast" || d.Details["k"] != "v" {
		t.Fatal("DiskOffering.Copy shares its tags or details")
	}
	tp := tableSamples[TableTemplates]().(*Template)
	tc := tp.Copy()
	tc.Details["k"] = "x"
	if acct, dom := tp.Owner(); tp.Details["k"] != "v" || acct != "a-1" || dom != "d-1" {
		t.Fatal("Template.Copy shares its details, or Owner is wrong")
	}
	if _, _, ok := TaggableTable("iso"); !ok {
		t.Fatal("ISOs are not taggable")
	}
}

var catLowerUUID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestBuiltinOSTypes(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range OSCategories() {
		if !catLowerUUID.MatchString(c.ID) || seen[c.ID] || c.Name == "" {
			t.Errorf("category %+v: bad or duplicate id, or no name", c)
		}
		seen[c.ID] = true
	}
	descs := map[string]bool{}
	for _, o := range OSTypes() {
		if !catLowerUUID.MatchString(o.ID) || seen[o.ID] {
			t.Errorf("OS type %+v: bad or duplicate id", o)
		}
		seen[o.ID] = true
		if _, ok := OSCategoryByID(o.CategoryID); !ok {
			t.Errorf("OS type %s: unknown category %s", o.Description, o.CategoryID)
		}
		if descs[strings.ToLower(o.Description)] {
			t.Errorf("OS type %s listed twice", o.Description)
		}
		descs[strings.ToLower(o.Description)] = true
	}
	for _, want := range []string{"Ubuntu 22.04 LTS", "Debian GNU/Linux 12 (64-bit)", "CentOS 7", "Rocky Linux 9", "Windows Server 2022 (64-bit)", "Other Linux (64-bit)"} {
		if !descs[strings.ToLower(want)] {
			t.Errorf("OS type %q missing", want)
		}
	}
	if o, ok := OSTypeByID(OSTypeOtherLinux64); !ok || o.Description != "Other Linux (64-bit)" {
		t.Fatalf("default OS type = %+v, %v", o, ok)
	}
	if _, ok := OSTypeByID("nope"); ok {
		t.Fatal("unknown OS type found")
	}
	// The lists handed out are copies.
	OSTypes()[0].Description = "changed"
	if OSTypes()[0].Description == "changed" {
		t.Fatal("OSTypes hands out the built-in list itself")
	}
}
