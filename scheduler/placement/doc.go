// Package placement is the pure VM allocator: from a read-only view of the
// inventory it chooses a host and primary storage pools for a VM and
// returns the plan, doing no I/O and committing nothing.
package placement
