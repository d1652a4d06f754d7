// Package cluster runs a Stratus server's membership in the management
// cluster: hashicorp/raft with raft-boltdb/v2 and file snapshots, memberlist
// gossip for discovery and versions, the leadership lifecycle, writes that
// forward to the leader, and consistent reads through a batched read index.
package cluster
