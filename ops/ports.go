package ops

import (
	"fmt"
	"net"
)

// FreeLoopbackPorts returns n distinct loopback ports that were free for
// both TCP and UDP (gossip binds both) when it returned. It holds every
// port it found open until it has them all, so no two are the same, then
// releases them for the caller's processes to bind. Another process can
// still take one in between: a caller must treat a failed bind as a reason
// to pick again, not as a fault.
func FreeLoopbackPorts(n int) ([]int, error) {
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	var ports []int
	for attempts := 0; len(ports) < n; attempts++ {
		if attempts > 20*n {
			return nil, fmt.Errorf("could not find %d free loopback ports", n)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("reserve a tcp port: %w", err)
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
