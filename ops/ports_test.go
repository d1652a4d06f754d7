package ops

import (
	"fmt"
	"net"
	"testing"
)

func TestFreeLoopbackPorts(t *testing.T) {
	ports, err := FreeLoopbackPorts(30)
	if err != nil {
		t.Fatal(err)
	}
	if len(ports) != 30 {
		t.Fatalf("got %d ports, want 30", len(ports))
	}
	top := ephemeralStart()
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] {
			t.Fatalf("port %d returned twice: %v", p, ports)
		}
		seen[p] = true
		if top-lowestPort >= 1000 && (p < lowestPort || p >= top) {
			t.Errorf("port %d is outside %d..%d, below the ephemeral range", p, lowestPort, top-1)
		}
		// Released: both sides bind now.
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Fatalf("port %d: tcp: %v", p, err)
		}
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			ln.Close()
			t.Fatalf("port %d: udp: %v", p, err)
		}
		ln.Close()
		pc.Close()
	}
}

// A port whose UDP side is taken is never returned.
func TestFreeLoopbackPortsSkipsTakenUDP(t *testing.T) {
	var held []net.PacketConn
	defer func() {
		for _, pc := range held {
			pc.Close()
		}
	}()
	taken := map[int]bool{}
	// Take the UDP side of a good share of the range.
	for p := lowestPort; p < lowestPort+2000; p++ {
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			held = append(held, pc)
			taken[p] = true
		}
	}
	ports, err := FreeLoopbackPorts(50)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ports {
		if taken[p] {
			t.Errorf("port %d returned although its UDP side is held", p)
		}
	}
}
