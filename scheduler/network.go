package scheduler

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"net/netip"

	"github.com/stratus-cloud/stratus/fsm"
)

// DefaultGuestCIDR is the guest network of a zone that names none.
const DefaultGuestCIDR = "10.1.0.0/16"

// GuestNetwork returns a zone's guest subnet, its gateway (the first
// address) and its netmask.
func GuestNetwork(z *fsm.Zone) (netip.Prefix, netip.Addr, string, error) {
	cidr := DefaultGuestCIDR
	if z != nil && z.GuestCIDR != "" {
		cidr = z.GuestCIDR
	}
	p, err := netip.ParsePrefix(cidr)
	if err != nil || !p.Addr().Is4() || p.Bits() > 30 {
		return netip.Prefix{}, netip.Addr{}, "", fmt.Errorf("the zone's guest CIDR %q is not an IPv4 subnet of at least 4 addresses; fix it with updateZone guestcidraddress", cidr)
	}
	p = p.Masked()
	mask := ^uint32(0) << (32 - p.Bits())
	var m [4]byte
	binary.BigEndian.PutUint32(m[:], mask)
	return p, p.Addr().Next(), netip.AddrFrom4(m).String(), nil
}

// addressProbes is how many addresses assignAddress tries one by one
// before it reads every address in use in the zone at once.
const addressProbes = 1024

// assignAddress gives the VM's default NIC a free address of its zone's
// guest network. The addresses are tried in an order drawn from the VM's
// ID: a start and a stride coprime with the network's size, so the order
// visits every address once and concurrent placements rarely pick the
// same one; when they do, the table's unique key refuses the second commit
// and its step runs again. A stride, rather than the next address, keeps
// the search short as the network fills: consecutive probes from a start
// walk the runs of taken addresses that earlier searches left, which at
// 65,000 VMs in a /16 meant tens of thousands of lookups per deploy; with
// a stride a search takes about 1/(1-used) probes (300 at 99.7 % used).
// Past addressProbes it marks every address in use in the zone (one walk
// of the zone's part of the ip index) and takes the next free one in the
// same order, or says the network is full.
func assignAddress(st *fsm.Store, v *fsm.VM) error {
	return assignAddressProbing(st, v, addressProbes)
}

// assignAddressProbing is assignAddress with at most maxProbes lookups
// before the walk.
func assignAddressProbing(st *fsm.Store, v *fsm.VM, maxProbes uint32) error {
	z, err := st.Zone(nil, v.ZoneID)
	if err != nil {
		return fmt.Errorf("zone %s: %w", v.ZoneID, err)
	}
	subnet, gw, mask, err := GuestNetwork(z)
	if err != nil {
		return err
	}
	base := binary.BigEndian.Uint32(subnet.Addr().AsSlice())
	size := uint64(1) << (32 - subnet.Bits())
	usable := uint32(size - 3) // network, gateway, broadcast
	start, stride := addressOrder(v.ID, usable)
	// the i-th address in search order: offsets 2 .. usable+1 of the subnet
	nth := func(i uint32) uint32 { return 2 + uint32((uint64(start)+uint64(i)*uint64(stride))%uint64(usable)) }
	addrAt := func(off uint32) string {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], base+off)
		return netip.AddrFrom4(b).String()
	}
	take := func(ip string) {
		v.IPAddress = ip
		if len(v.NICs) == 0 {
			v.NICs = []fsm.NIC{{ID: v.ID, IsDefault: true}}
		}
		v.NICs[0].IPAddress, v.NICs[0].Gateway, v.NICs[0].Netmask = ip, gw.String(), mask
	}
	probes := min(maxProbes, usable)
	for i := uint32(0); i < probes; i++ {
		ip := addrAt(nth(i))
		n, err := st.Count(fsm.TableVMs, "ip", v.ZoneID, ip)
		if err != nil {
			return err
		}
		if n == 0 {
			take(ip)
			return nil
		}
	}
	used, err := addressesInUse(st, v.ZoneID, subnet, usable)
	if err != nil {
		return err
	}
	for i := probes; i < usable; i++ {
		if off := nth(i); !used.has(off) {
			take(addrAt(off))
			return nil
		}
	}
	return fmt.Errorf("the guest network %s of zone %s has no free address left: expunge VMs of the zone or widen it with updateZone guestcidraddress", subnet, v.ZoneID)
}

// addressOrder is the search order of a VM's address among n: a start
// below n and a stride coprime with n, both drawn from the VM's ID.
func addressOrder(id string, n uint32) (start, stride uint32) {
	h := fnv.New64a()
	h.Write([]byte(id))
	sum := h.Sum64()
	start = uint32(sum % uint64(n))
	if n <= 2 {
		return start, 1
	}
	stride = 1 + uint32((sum>>32)%uint64(n-1))
	for gcd(stride, n) != 1 {
		stride = stride%(n-1) + 1
	}
	return start, stride
}

func gcd(a, b uint32) uint32 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// addressSet is a bitmap of subnet offsets 2 .. usable+1 (bit off-2): the
// addresses a VM may get.
type addressSet []uint64

func newAddressSet(usable uint32) addressSet { return make(addressSet, (uint64(usable)+63)/64) }

func (a addressSet) mark(off uint32)     { a[(off-2)/64] |= 1 << ((off - 2) % 64) }
func (a addressSet) has(off uint32) bool { return a[(off-2)/64]&(1<<((off-2)%64)) != 0 }

// addressesInUse marks the guest addresses of a zone's VMs. Addresses
// outside the subnet (a VM kept its address across a change of the zone's
// CIDR) are not marked: they cannot be handed out from it anyway.
func addressesInUse(st *fsm.Store, zoneID string, subnet netip.Prefix, usable uint32) (addressSet, error) {
	base := binary.BigEndian.Uint32(subnet.Addr().AsSlice())
	used := newAddressSet(usable)
	err := fsm.Each(st, nil, fsm.TableVMs, "ip_prefix", []any{zoneID}, func(vm *fsm.VM) bool {
		a, err := netip.ParseAddr(vm.IPAddress)
		if err != nil || !a.Is4() || !subnet.Contains(a) {
			return true
		}
		if off := binary.BigEndian.Uint32(a.AsSlice()) - base; off >= 2 && off-2 < usable {
			used.mark(off)
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("addresses in use in zone %s: %w", zoneID, err)
	}
	return used, nil
}
