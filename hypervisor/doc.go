// Package hypervisor will hold the Driver interface in Stratus's own types,
// its libvirt implementation, a fake for unit tests, fence drivers and the
// host agent's logic.
package hypervisor
