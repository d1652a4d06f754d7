package hypervisor

import (
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// TestHost describes one host simulated by libvirt's test driver.
type TestHost struct {
	Name      string // reported as the host name by Facts
	CPUs      int
	MHz       int
	MemoryMiB int64
	// PoolPath, when set, pre-defines an active dir storage pool named
	// "default" at that path. The test driver keeps pools in memory and
	// never touches the directory.
	PoolPath string
}

// testHostNS is the namespace of the element that carries a simulated
// host's name in its node file; the test driver ignores elements it does
// not know, and Open reads this one back for Facts.
const testHostNS = "https://stratus-cloud.io/xmlns/testhost/1"

// testNode is libvirt's test driver node file (see libvirt's
// examples/xml/test/testnode.xml): host CPUs and memory, networks and
// storage pools inline, no domains.
type testNode struct {
	XMLName  xml.Name          `xml:"node"`
	Host     testNodeHost      `xml:"stratus-host"`
	Networks []testNodeNetwork `xml:"network"`
	Pools    []testNodePool    `xml:"pool"`
	CPU      testNodeCPU       `xml:"cpu"`
	Memory   int64             `xml:"memory"` // KiB
}

type testNodeHost struct {
	XMLNS string `xml:"xmlns,attr"`
	Name  string `xml:"name,attr"`
}

type testNodeCPU struct {
	MHz     int    `xml:"mhz"`
	Model   string `xml:"model"`
	Active  int    `xml:"active"`
	Nodes   int    `xml:"nodes"`
	Sockets int    `xml:"sockets"`
	Cores   int    `xml:"cores"`
	Threads int    `xml:"threads"`
}

type testNodeNetwork struct {
	Name   string `xml:"name"`
	Bridge struct {
		Name string `xml:"name,attr"`
	} `xml:"bridge"`
	Forward struct {
		Mode string `xml:"mode,attr"`
	} `xml:"forward"`
	IP struct {
		Address string `xml:"address,attr"`
		Netmask string `xml:"netmask,attr"`
	} `xml:"ip"`
}

type testNodePool struct {
	Type   string `xml:"type,attr"`
	Name   string `xml:"name"`
	Target struct {
		Path string `xml:"path"`
	} `xml:"target"`
}

// WriteTestHost writes a libvirt test-driver node file describing one
// simulated host: h's CPUs (one socket), memory, a "default" NAT network
// and optionally a "default" dir pool, and no domains. Open
// "test://" + path (path absolute) to connect; every connection gets its
// own fresh copy of the host, so one file per host gives independent
// hosts.
func WriteTestHost(path string, h TestHost) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("write test host: path %q is not absolute", path)
	}
	if h.Name == "" || h.CPUs <= 0 || h.MHz <= 0 || h.MemoryMiB <= 0 {
		return fmt.Errorf("write test host %q: name, cpus, mhz and memory are required", h.Name)
	}
	n := testNode{
		Host:   testNodeHost{XMLNS: testHostNS, Name: h.Name},
		CPU:    testNodeCPU{MHz: h.MHz, Model: "x86_64", Active: h.CPUs, Nodes: 1, Sockets: 1, Cores: h.CPUs, Threads: 1},
		Memory: h.MemoryMiB * 1024,
	}
	var net testNodeNetwork
	net.Name = "default"
	net.Bridge.Name = "virbr0"
	net.Forward.Mode = "nat"
	net.IP.Address, net.IP.Netmask = "192.168.122.1", "255.255.255.0"
	n.Networks = append(n.Networks, net)
	if h.PoolPath != "" {
		var p testNodePool
		p.Type, p.Name, p.Target.Path = "dir", "default", h.PoolPath
		n.Pools = append(n.Pools, p)
	}
	out, err := xml.MarshalIndent(n, "", "  ")
	if err != nil {
		return fmt.Errorf("write test host %q: %w", h.Name, err)
	}
	if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
		return fmt.Errorf("write test host %q: %w", h.Name, err)
	}
	return nil
}

// readTestHostName returns the simulated host name recorded in a test
// driver node file by WriteTestHost, or the file's base name without its
// extension for files written by hand.
func readTestHostName(path string) string {
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	raw, err := os.ReadFile(path)
	if err != nil {
		return base
	}
	var n struct {
		Host testNodeHost `xml:"stratus-host"`
	}
	if err := xml.Unmarshal(raw, &n); err != nil || n.Host.Name == "" {
		return base
	}
	return n.Host.Name
}
