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

// assignAddress gives the VM's default NIC a free address of its zone's
// guest network. The search starts at a point drawn from the VM's ID, so
// concurrent placements rarely pick the same address; when they do, the
// table's unique key refuses the second commit and its step runs again.
func assignAddress(st *fsm.Store, v *fsm.VM) error {
	z, err := st.Zone(nil, v.ZoneID)
	if err != nil {
		return fmt.Errorf("zone %s: %w", v.ZoneID, err)
	}
	subnet, gw, mask, err := GuestNetwork(z)
	if err != nil {
		return err
	}
	base := binary.BigEndian.Uint32(subnet.Addr().AsSlice())
	size := uint32(1) << (32 - subnet.Bits())
	usable := size - 3 // network, gateway, broadcast
	h := fnv.New32a()
	h.Write([]byte(v.ID))
	start := h.Sum32() % usable
	for i := uint32(0); i < usable; i++ {
		off := 2 + (start+i)%usable
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], base+off)
		ip := netip.AddrFrom4(b).String()
		n, err := st.Count(fsm.TableVMs, "ip", v.ZoneID, ip)
		if err != nil {
			return err
		}
		if n == 0 {
			v.IPAddress = ip
			if len(v.NICs) == 0 {
				v.NICs = []fsm.NIC{{ID: v.ID, IsDefault: true}}
			}
			v.NICs[0].IPAddress, v.NICs[0].Gateway, v.NICs[0].Netmask = ip, gw.String(), mask
			return nil
		}
	}
	return fmt.Errorf("the guest network %s of zone %s has no free address left", subnet, v.ZoneID)
}
