package scheduler

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stratus-cloud/stratus/fsm"
)

// fillAddresses commits Stopped VMs in the fixture's zone holding the
// given addresses.
func fillAddresses(e *vmEnv, ips []string) {
	e.t.Helper()
	now := time.Now().UTC()
	var ops []fsm.TxnOp
	for _, ip := range ips {
		id := uuid.NewString()
		ops = append(ops, fsm.Create(fsm.TableVMs, &fsm.VM{ID: id, Name: "held-" + strings.ReplaceAll(ip, ".", "-"), DisplayName: "held", InstanceName: "i-" + id,
			AccountID: fxAccount, DomainID: fxDomain, UserID: fxUser, ZoneID: fxZone, ServiceOfferingID: fxOffering, TemplateID: fxTemplate,
			OSTypeID: fsm.OSTypeOtherLinux64, CPUNumber: fxVMCPUs, CPUSpeed: fxVMMHz, MemoryMiB: fxVMMemoryMiB, State: fsm.VMStopped,
			Power: fsm.PowerOff, Created: now, IPAddress: ip, NICs: []fsm.NIC{{ID: id, IsDefault: true, IPAddress: ip}}}))
	}
	e.apply(ops...)
}

// TestAssignAddressInANearlyFullNetwork fills the fixture's /24 (253
// addresses for VMs: .2 to .254) but for three addresses: new VMs get
// exactly those three, whatever order their IDs draw, both when the
// lookups one by one find them and when only the walk of the zone's
// addresses does (no probes), and the next one is refused with an error
// that names the network and what to do.
func TestAssignAddressInANearlyFullNetwork(t *testing.T) {
	for _, probes := range []uint32{addressProbes, 0} {
		t.Run(fmt.Sprintf("probes=%d", probes), func(t *testing.T) {
			e := newVMEnv(t, 1)
			free := map[string]bool{"10.1.0.2": true, "10.1.0.130": true, "10.1.0.254": true}
			var held []string
			for i := 2; i <= 254; i++ {
				if ip := fmt.Sprintf("10.1.0.%d", i); !free[ip] {
					held = append(held, ip)
				}
			}
			fillAddresses(e, held)
			st := e.m.State()
			for range len(free) {
				v := &fsm.VM{ID: uuid.NewString(), ZoneID: fxZone}
				if err := assignAddressProbing(st, v, probes); err != nil {
					t.Fatalf("assignAddress with %d of 253 addresses taken: %v", len(held), err)
				}
				if !free[v.IPAddress] {
					t.Fatalf("assignAddress gave %q; want one of the free %v", v.IPAddress, free)
				}
				if len(v.NICs) != 1 || v.NICs[0].IPAddress != v.IPAddress || v.NICs[0].Gateway != "10.1.0.1" || v.NICs[0].Netmask != "255.255.255.0" {
					t.Errorf("NICs = %+v; want the default NIC on %s, gateway 10.1.0.1, netmask 255.255.255.0", v.NICs, v.IPAddress)
				}
				delete(free, v.IPAddress)
				held = append(held, v.IPAddress)
				fillAddresses(e, []string{v.IPAddress})
			}
			if n, err := st.Count(fsm.TableVMs, "ip_prefix", fxZone); err != nil || n != 253 {
				t.Fatalf("%d VMs hold addresses in the zone (%v); want all 253", n, err)
			}
			err := assignAddressProbing(st, &fsm.VM{ID: uuid.NewString(), ZoneID: fxZone}, probes)
			if err == nil || !strings.Contains(err.Error(), "10.1.0.0/24") || !strings.Contains(err.Error(), "no free address") || !strings.Contains(err.Error(), "guestcidraddress") {
				t.Fatalf("assignAddress in a full network: %v; want an error naming 10.1.0.0/24, no free address and guestcidraddress", err)
			}
		})
	}
}

// TestAddressOrderVisitsEveryAddress: the search order of any VM visits
// each of a network's addresses exactly once, whatever its size.
func TestAddressOrderVisitsEveryAddress(t *testing.T) {
	for _, n := range []uint32{1, 2, 3, 13, 253, 4093, 65533, 1<<20 - 3} {
		for range 3 {
			id := uuid.NewString()
			start, stride := addressOrder(id, n)
			seen := make([]bool, n)
			for i := range n {
				off := uint32((uint64(start) + uint64(i)*uint64(stride)) % uint64(n))
				if seen[off] {
					t.Fatalf("n=%d, VM %s (start %d, stride %d): address %d visited twice, at step %d", n, id, start, stride, off, i)
				}
				seen[off] = true
			}
		}
	}
}

// TestAssignAddressSpreadsOverTheNetwork: in an empty network, VMs draw
// their addresses from points spread by their IDs, so concurrent
// placements on different servers rarely collide.
func TestAssignAddressSpreadsOverTheNetwork(t *testing.T) {
	e := newVMEnv(t, 1)
	st := e.m.State()
	subnet := netip.MustParsePrefix(fxGuestCIDR)
	seen := map[string]bool{}
	for range 20 {
		v := &fsm.VM{ID: uuid.NewString(), ZoneID: fxZone}
		if err := assignAddress(st, v); err != nil {
			t.Fatal(err)
		}
		a, err := netip.ParseAddr(v.IPAddress)
		if err != nil || !subnet.Contains(a) || v.IPAddress == "10.1.0.0" || v.IPAddress == "10.1.0.1" || v.IPAddress == "10.1.0.255" {
			t.Fatalf("address %q; want a host address of %s other than the gateway", v.IPAddress, subnet)
		}
		seen[v.IPAddress] = true
	}
	// 20 draws from 253 addresses: all distinct has probability ~0.46,
	// at least 15 distinct is all but certain; one start for all would give 1.
	if len(seen) < 15 {
		t.Errorf("20 VMs in an empty network drew %d distinct addresses; want them spread by their IDs", len(seen))
	}
}

// BenchmarkAssignAddressNearlyFull is one address for a new VM in a /16
// guest network with 65,000 of its 65,533 addresses in use, as the scale
// benchmark's zone was at 65,000 VMs; here the addresses in use are one
// run (the first 65,000), the worst case of a search that tries the next
// address after a taken one.
func BenchmarkAssignAddressNearlyFull(b *testing.B) {
	e := newVMEnv(b, 1)
	now := time.Now().UTC()
	big := &fsm.Zone{ID: "z-big", Name: "big", NetworkType: "Advanced", AllocationState: fsm.AllocationEnabled,
		GuestCIDR: "10.2.0.0/16", ZoneToken: "tok-big", Created: now}
	if _, err := e.m.Apply(context.Background(), fsm.TxnRequestType, fsm.TxnRequest{Ops: []fsm.TxnOp{fsm.Create("zones", big)}}); err != nil {
		b.Fatal(err)
	}
	const held = 65000
	var ops []fsm.TxnOp
	for i := range held {
		off := uint32(2 + i) // one run: the first 65,000 addresses
		ip := netip.AddrFrom4([4]byte{10, 2, byte(off >> 8), byte(off)}).String()
		id := uuid.NewString()
		ops = append(ops, fsm.Create(fsm.TableVMs, &fsm.VM{ID: id, Name: "held-" + strings.ReplaceAll(ip, ".", "-"), InstanceName: "i-" + id,
			AccountID: fxAccount, DomainID: fxDomain, UserID: fxUser, ZoneID: big.ID, ServiceOfferingID: fxOffering, TemplateID: fxTemplate,
			OSTypeID: fsm.OSTypeOtherLinux64, CPUNumber: fxVMCPUs, CPUSpeed: fxVMMHz, MemoryMiB: fxVMMemoryMiB, State: fsm.VMStopped,
			Power: fsm.PowerOff, Created: now, IPAddress: ip}))
		if len(ops) == 1000 || i == held-1 {
			if _, err := e.m.Apply(context.Background(), fsm.TxnRequestType, fsm.TxnRequest{Ops: ops}); err != nil {
				b.Fatal(err)
			}
			ops = ops[:0]
		}
	}
	st := e.m.State()
	if n, err := st.Count(fsm.TableVMs, "ip_prefix", big.ID); err != nil || n != held {
		b.Fatalf("%d VMs hold addresses (%v); want %d", n, err, held)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := assignAddress(st, &fsm.VM{ID: uuid.NewString(), ZoneID: big.ID}); err != nil {
			b.Fatal(err)
		}
	}
}
