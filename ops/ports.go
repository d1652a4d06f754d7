package ops

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// lowestPort is the bottom of the range FreeLoopbackPorts picks from when
// the ephemeral range leaves room below it.
const lowestPort = 10000

// FreeLoopbackPorts returns n distinct loopback ports that were free for
// both TCP and UDP (gossip binds both) when it returned. It holds every
// port it found open until it has them all, so no two are the same, then
// releases them for the caller's processes to bind.
//
// The ports come from below the kernel's ephemeral range where there is
// room (on Linux 10000 to 32767 by default): a port of that range can be
// taken at any moment as the source port of some process's outgoing
// connection, and then a server that binds it, at its first start or on a
// restart, fails with "address already in use". Another listener can still
// take one in between, so a caller should treat a failed bind as a reason
// to pick again.
func FreeLoopbackPorts(n int) ([]int, error) {
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	top := ephemeralStart()
	var ports []int
	for attempts := 0; len(ports) < n; attempts++ {
		if attempts > 50*n {
			return nil, fmt.Errorf("could not find %d free loopback ports", n)
		}
		addr := "127.0.0.1:0" // the kernel's choice, from the ephemeral range
		if top-lowestPort >= 1000 {
			addr = fmt.Sprintf("127.0.0.1:%d", lowestPort+rand.IntN(top-lowestPort))
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue // taken: try another
		}
		closers = append(closers, func() { _ = ln.Close() })
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // UDP side taken: keep the TCP one held and try another
		}
		closers = append(closers, func() { _ = pc.Close() })
		ports = append(ports, port)
	}
	return ports, nil
}

// ephemeralStart is the first port of the kernel's ephemeral range, or 0
// where it cannot be read (then the kernel picks).
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 0
	}
	p, err := strconv.Atoi(f[0])
	if err != nil {
		return 0
	}
	return p
}
