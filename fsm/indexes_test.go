package fsm

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	memdb "github.com/hashicorp/go-memdb"
)

// TestScannedRefsFindTheRowTheirIndexFound: the in-use checks that scan a
// table instead of looking a field up name the same first user as the
// index they replace did (the oldest VM of a zone; the VM or volume with
// the lowest ID of an offering, template or pool), so a refused delete
// says what it said before.
func TestScannedRefsFindTheRowTheirIndexFound(t *testing.T) {
	old := map[string]*memdb.IndexSchema{ // as the indexes were
		"vms/zone":        createdBy("ZoneID", false, false),
		"vms/offering":    byField("ServiceOfferingID"),
		"vms/template":    optional("TemplateID"),
		"volumes/zone":    byField("ZoneID"),
		"volumes/storage": optional("PoolID"),
	}
	short := map[string]string{tableZones: "zone", TableServiceOfferings: "offering", TableTemplates: "template", TableStoragePools: "storage"}
	refs := map[string]Ref{}
	for _, table := range []string{TableVMs, TableVolumes} {
		for _, r := range tableDefs[table].Refs {
			if r.Scan {
				refs[table+"/"+short[r.Table]] = r
			}
		}
	}
	if len(refs) != len(old) {
		t.Fatalf("scanned refs %v, want one for each of %d former indexes", keys(refs), len(old))
	}
	// Rows made in an order unlike their IDs', several per target.
	var vms, vols []Object
	for i := range 40 {
		id := fmt.Sprintf("%02d-%d", (i*17)%40, i)
		v := testVM("vm-"+id, "n"+id, "")
		v.ZoneID, v.ServiceOfferingID, v.TemplateID = fmt.Sprintf("z-%d", i%3), fmt.Sprintf("so-%d", i%4), ""
		if i%5 != 0 {
			v.TemplateID = fmt.Sprintf("t-%d", i%2)
		}
		v.CreateIndex = uint64(100 - i/2) // pairs created together, newest first
		vol := &Volume{ID: "vol-" + id, AccountID: "a-eng", ZoneID: v.ZoneID, PoolID: fmt.Sprintf("sp-%d", i%3)}
		if i%4 == 0 {
			vol.PoolID = ""
		}
		vms, vols = append(vms, v), append(vols, vol)
	}
	for name, idx := range old {
		table := strings.Split(name, "/")[0]
		rows := vms
		if table == TableVolumes {
			rows = vols
		}
		ts := mustSchema().Tables[table]
		ts.Indexes["former"] = &memdb.IndexSchema{Name: "former", AllowMissing: idx.AllowMissing, Indexer: idx.Indexer}
		db := loadTable(t, ts, rows)
		r := refs[name]
		for _, target := range []string{"z-0", "z-1", "z-2", "so-0", "so-3", "t-0", "t-1", "sp-0", "sp-2", "none"} {
			want, err := db.Txn(false).First(table, "former", target)
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.firstUser(db.Txn(false), table, target)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("%s: first user of %s is %v by scan, %v by the former index", name, target, idOf(got), idOf(want))
			}
		}
	}
}

func keys(m map[string]Ref) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func idOf(raw any) string {
	if raw == nil {
		return "none"
	}
	return raw.(Object).GetID()
}

// TestScannedRefsStillRefuseDeletes: deleting a zone, an offering, a
// template or a pool something still uses is refused, naming the user.
func TestScannedRefsStillRefuseDeletes(t *testing.T) {
	f := computeFixture(t)
	vm := testVM("vm-1", "web1", "10.1.0.5")
	vol := &Volume{ID: "vol-1", Name: "ROOT-1", AccountID: "a-eng", DomainID: "d-eng", ZoneID: "z-2", Type: VolumeRoot,
		PoolID: "sp-1", SizeBytes: 1 << 30, State: VolumeReady, Created: testTime}
	ops := []TxnOp{Create(TableVMs, vm), Create(TableVolumes, vol), Delete(TableTemplateZones, "tz-1"), Delete(TableTemplateZones, "tz-2")}
	if err := apply(t, f, 10, TxnRequestType, TxnRequest{Ops: ops}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		op   TxnOp
		want string
	}{
		{"offering", Delete(TableServiceOfferings, "so-1"), "virtual machine web1 still uses it"},
		{"template", Delete(TableTemplates, "t-1"), "virtual machine web1 still uses it"},
		{"pool", Delete(TableStoragePools, "sp-1"), "volume ROOT-1 still uses it"},
	} {
		err := apply(t, f, 20, TxnRequestType, TxnRequest{Ops: []TxnOp{tc.op}})
		if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("delete the %s: %v, want in use: %q", tc.name, err, tc.want)
		}
	}
	// z-1 has pods, which come first by table name; z-2 has only the
	// volume now that the template's copies are gone.
	err := apply(t, f, 22, ZoneDeleteRequestType, DeleteRequest{ID: "z-2"})
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "volume ROOT-1 still uses it") {
		t.Errorf("delete a zone a volume is in: %v, want in use by the volume", err)
	}
}

// TestInstanceNamesStayUnique: a VM's instance name is unique, whether it
// is the one derived from its ID (which the "instance" index leaves out)
// or another.
func TestInstanceNamesStayUnique(t *testing.T) {
	f := computeFixture(t)
	named := func(id, instance string) *VM {
		v := testVM(id, "n-"+id, "")
		v.InstanceName = instance
		return v
	}
	steps := []struct {
		name string
		vm   *VM
		want string // "" for success
	}{
		{"derived name", named("vm-1", "i-vm-1"), ""},
		{"another VM taking a derived name", named("vm-2", "i-vm-1"), "instance name already exists (id vm-1)"},
		{"a name of its own", named("vm-3", "custom"), ""},
		{"the same name of its own", named("vm-4", "custom"), "instance name already exists (id vm-3)"},
		{"a name derived from another ID", named("vm-5", "i-vm-6"), ""},
		{"the VM whose ID gives that name", named("vm-6", "i-vm-6"), "instance name already exists (id vm-5)"},
		{"a name derived from a missing VM", named("vm-7", "i-vm-404"), ""},
		{"no instance name", named("vm-8", ""), "has no instance name"},
	}
	for i, s := range steps {
		// Not through apply: a VM without an instance name is refused
		// by the index, an internal error rather than a *StateError.
		resp := f.Apply(makeLog(t, uint64(10+i), TxnRequestType, false, TxnRequest{Ops: []TxnOp{Create(TableVMs, s.vm)}}))
		err, _ := resp.(error)
		switch {
		case s.want == "" && err != nil:
			t.Errorf("%s: %v", s.name, err)
		case s.want != "" && (err == nil || !strings.Contains(err.Error(), s.want)):
			t.Errorf("%s: %v, want an error with %q", s.name, err, s.want)
		}
	}
	// Renaming in place is not a conflict with itself.
	v, _ := Get[VM](f.State(), nil, TableVMs, "vm-3")
	nv := v.Copy()
	nv.Name = "renamed"
	if err := apply(t, f, 30, TxnRequestType, TxnRequest{Ops: []TxnOp{Update(TableVMs, nv)}}); err != nil {
		t.Fatalf("update a VM with a name of its own: %v", err)
	}
	if n, _ := f.State().Count(TableVMs, "instance", "custom"); n != 1 {
		t.Fatalf("%d VMs indexed under instance name custom, want 1", n)
	}
	if n, _ := f.State().Count(TableVMs, "instance", "i-vm-1"); n != 0 {
		t.Fatalf("a derived instance name is indexed (%d rows)", n)
	}
}

// TestPendingJobIndexes: the status and pending_instance indexes hold a
// job while it is pending and let go of it when it finishes; the status
// index refuses to be asked for another status.
func TestPendingJobIndexes(t *testing.T) {
	f := seeded(t)
	job := &AsyncJob{ID: "j-1", Cmd: "deployVirtualMachine", AccountID: "a-admin", DomainID: "d-root", Status: JobPending,
		InstanceType: "VirtualMachine", InstanceID: "vm-1", Created: testTime}
	other := &AsyncJob{ID: "j-2", Cmd: "createTags", AccountID: "a-admin", DomainID: "d-root", Status: JobPending, Created: testTime}
	if err := apply(t, f, 2, TxnRequestType, TxnRequest{Ops: []TxnOp{Create(TableJobs, job), Create(TableJobs, other)}}); err != nil {
		t.Fatal(err)
	}
	count := func(index string, arg any) int {
		t.Helper()
		n, err := f.State().Count(TableJobs, index, arg)
		if err != nil {
			t.Fatalf("count by %s: %v", index, err)
		}
		return n
	}
	if p, i := count("status", JobPending), count("pending_instance", "vm-1"); p != 2 || i != 1 {
		t.Fatalf("pending: %d by status (want 2), %d for vm-1 (want 1)", p, i)
	}
	done, _ := Get[AsyncJob](f.State(), nil, TableJobs, "j-1")
	next := done.Copy()
	next.Status = JobSucceeded
	if err := apply(t, f, 3, TxnRequestType, TxnRequest{Ops: []TxnOp{Update(TableJobs, next)}}); err != nil {
		t.Fatal(err)
	}
	if p, i := count("status", JobPending), count("pending_instance", "vm-1"); p != 1 || i != 0 {
		t.Fatalf("after j-1 finished: %d by status (want 1), %d for vm-1 (want 0)", p, i)
	}
	if _, err := f.State().Count(TableJobs, "status", JobSucceeded); err == nil {
		t.Fatal("the status index answered a lookup of finished jobs, which it does not hold")
	}
}
