package fsm

import (
	"errors"
	"strings"
	"testing"
)

func init() {
	tableSamples[TableVMs] = func() Object {
		v := testVM("vm-1", "web1", "10.1.0.5")
		v.PodID, v.ClusterID, v.HostID, v.LastHostID, v.MigrateTo = "p-1", "c-1", "h-1", "h-0", "h-2"
		v.ISOID, v.OSTypeID, v.ForceStop, v.RebootGen, v.MigratedOut = "iso-1", "os-1", true, 3, true
		v.ObservedHostID, v.ObservedPower, v.ObservedRebootGen, v.ObservedError, v.ObservedAt = "h-1", PowerOn, 3, "none", testTime
		v.HAPending = true
		v.HAEnabled, v.UserData, v.KeyPairs, v.Group, v.Details = true, "aGk=", []string{"k1"}, "g", map[string]string{"a": "b"}
		v.AffinityGroupIDs, v.Destroyed = []string{"ag-1"}, testTime
		return v
	}
	tableSamples[TableVolumes] = func() Object {
		return &Volume{ID: "vol-1", Name: "ROOT-1", AccountID: "a-1", DomainID: "d-1", ZoneID: "z-1", Type: VolumeRoot, VMID: "vm-1",
			DeviceID: 0, PoolID: "sp-1", DiskOfferingID: "do-1", TemplateID: "t-1", SizeBytes: 8 << 30, Format: "QCOW2", State: VolumeReady,
			Path: "/mnt/x/vol-1", StorageTags: []string{"fast"}, Local: true, Created: testTime, Attached: testTime}
	}
	tableSamples[TableSnapshots] = func() Object {
		return &Snapshot{ID: "snap-1", Name: "s1", AccountID: "a-1", DomainID: "d-1", ZoneID: "z-1", VolumeID: "vol-1", VolumeType: VolumeRoot,
			ImageStoreID: "is-1", SizeBytes: 1 << 30, State: SnapshotBackedUp, Created: testTime}
	}
	tableSamples[TableAffinityGroups] = func() Object {
		return &AffinityGroup{ID: "ag-1", Name: "web", Description: "apart", Type: AntiAffinityHost, AccountID: "a-1", DomainID: "d-1", Created: testTime}
	}
	tableSamples[TableSSHKeyPairs] = func() Object {
		return &SSHKeyPair{ID: "kp-1", Name: "k1", AccountID: "a-1", DomainID: "d-1", PublicKey: "ssh-ed25519 AAAA", Fingerprint: "aa:bb", Created: testTime}
	}
}

func testVM(id, name, ip string) *VM {
	return &VM{ID: id, Name: name, DisplayName: name, InstanceName: "i-" + id, AccountID: "a-eng", DomainID: "d-eng", UserID: "u-1",
		ZoneID: "z-1", ServiceOfferingID: "so-1", TemplateID: "t-1", CPUNumber: 1, CPUSpeed: 1000, MemoryMiB: 512,
		State: VMStopped, Power: PowerOff, IPAddress: ip, NICs: []NIC{{ID: "n-" + id, MAC: "02:00:00:00:00:01", IPAddress: ip, IsDefault: true}},
		Created: testTime}
}

// computeFixture adds, over the catalog fixture's zone, account and
// offerings, a pod, a cluster, a host and a pool.
func computeFixture(t *testing.T) *FSM {
	t.Helper()
	f := catFSMFixture(t)
	ops := []TxnOp{
		Create(TablePods, testPod("p-1", "z-1", "rack1")),
		Create(TableClusters, testCluster("c-1", "z-1", "p-1", "kvm1")),
		Create(TableHosts, testHost("h-1", "z-1", "p-1", "c-1", "10.0.0.5")),
		Create(TableStoragePools, testPool("sp-1", "z-1", "p-1", "c-1", "pri1")),
	}
	if err := apply(t, f, 3, TxnRequestType, TxnRequest{Ops: ops}); err != nil {
		t.Fatalf("compute fixture: %v", err)
	}
	return f
}

func TestComputeIntegrityRules(t *testing.T) {
	f := computeFixture(t)
	vm := testVM("vm-1", "web1", "10.1.0.5")
	vm.HostID, vm.AffinityGroupIDs = "h-1", []string{"ag-1"}
	group := &AffinityGroup{ID: "ag-1", Name: "apart", Type: AntiAffinityHost, AccountID: "a-eng", DomainID: "d-eng", Created: testTime}
	if err := apply(t, f, 9, TxnRequestType, TxnRequest{Ops: []TxnOp{Create(TableAffinityGroups, group)}}); err != nil {
		t.Fatalf("create affinity group: %v", err)
	}
	vol := &Volume{ID: "vol-1", Name: "ROOT-1", AccountID: "a-eng", DomainID: "d-eng", ZoneID: "z-1", Type: VolumeRoot, VMID: "vm-1",
		PoolID: "sp-1", SizeBytes: 1 << 30, State: VolumeReady, Created: testTime}
	if err := apply(t, f, 10, TxnRequestType, TxnRequest{Ops: []TxnOp{Create(TableVMs, vm), Create(TableVolumes, vol)}}); err != nil {
		t.Fatalf("create vm and volume: %v", err)
	}
	cases := []struct {
		name string
		op   TxnOp
		kind error
		want string
	}{
		{"second VM with the same IP in the zone", Create(TableVMs, testVM("vm-2", "web2", "10.1.0.5")), ErrConflict, "IP address in this zone"},
		{"second VM with the same instance name", func() TxnOp {
			v := testVM("vm-3", "web3", "10.1.0.6")
			v.InstanceName = "i-vm-1"
			return Create(TableVMs, v)
		}(),
			ErrConflict, "instance name"},
		{"VM on a missing host", func() TxnOp {
			v := testVM("vm-4", "web4", "10.1.0.7")
			v.HostID = "h-missing"
			return Create(TableVMs, v)
		}(),
			ErrNotFound, "host h-missing does not exist"},
		{"delete a host a VM runs on", Delete(TableHosts, "h-1"), ErrInUse, "virtual machine web1 still uses it"},
		{"delete a pool holding a volume", Delete(TableStoragePools, "sp-1"), ErrInUse, "volume ROOT-1 still uses it"},
		{"delete a VM with an attached volume", Delete(TableVMs, "vm-1"), ErrInUse, "volume ROOT-1 still uses it"},
		{"delete the VM's offering", Delete(TableServiceOfferings, "so-1"), ErrInUse, "virtual machine web1 still uses it"},
		{"delete an affinity group with a VM in it", Delete(TableAffinityGroups, "ag-1"), ErrInUse, "virtual machine web1 still uses it"},
		{"VM in a missing affinity group", func() TxnOp {
			v := testVM("vm-7", "web7", "10.1.0.8")
			v.AffinityGroupIDs = []string{"ag-1", "ag-missing"}
			return Create(TableVMs, v)
		}(), ErrNotFound, "affinity group ag-missing does not exist"},
	}
	for i, tc := range cases {
		err := apply(t, f, uint64(20+i), TxnRequestType, TxnRequest{Ops: []TxnOp{tc.op}})
		if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %v containing %q", tc.name, err, tc.kind, tc.want)
		}
	}
	// A VM without an IP (not yet placed) is never a duplicate.
	a, b := testVM("vm-5", "a", ""), testVM("vm-6", "b", "")
	if err := apply(t, f, 40, TxnRequestType, TxnRequest{Ops: []TxnOp{Create(TableVMs, a), Create(TableVMs, b)}}); err != nil {
		t.Fatalf("two VMs without addresses: %v", err)
	}
	// Deleting the volume first, then the VM, works: expunge order.
	if err := apply(t, f, 41, TxnRequestType, TxnRequest{Ops: []TxnOp{Delete(TableVolumes, "vol-1"), Delete(TableVMs, "vm-1")}}); err != nil {
		t.Fatalf("expunge order: %v", err)
	}
	if n, _ := f.State().Count(TableVMs, "host", "h-1"); n != 0 {
		t.Fatalf("%d VMs still on h-1 after expunge", n)
	}
}
