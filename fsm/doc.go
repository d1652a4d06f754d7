// Package fsm holds Stratus's replicated state: the structs, the command
// envelope and its append-only type enum, the go-memdb state store, the
// deterministic appliers and snapshot/restore. It imports nothing of ours.
package fsm
