// Package hypervisor is Stratus's view of a hypervisor host: the Driver
// interface in our own types, its libvirt implementation (qemu:///system,
// and libvirt's test driver with WriteTestHost for simulated hosts) and an
// in-memory Fake for unit tests. The host agent's logic is in
// hypervisor/agent.
package hypervisor
