// Package ha is the leader's host HA controller: lease timers of the
// hosts' heartbeats, fencing of hosts whose lease ran out, and the restart
// of their HA VMs elsewhere. docs/ha.md explains the timing argument.
package ha
