package cluster

import (
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// A snapshot writes the whole store; raft takes one every
// SnapshotThreshold entries. With a fixed threshold the work of
// snapshotting grows with the store: at 100,000 VMs each snapshot is about
// 350 MB, written every 8,192 entries (under a minute of deploys) on every
// server. The threshold therefore follows the store's size: a server waits
// until the log written since its last snapshot is half that snapshot's
// size, so a byte of log costs about two bytes of snapshot at any size.
// It never goes below Config.SnapshotThreshold (a small store still keeps
// a short log) nor above snapshotThresholdCap times it, which bounds how
// far raft.db grows (it keeps the entries since the last snapshot as well
// as the trailing ones).
const snapshotThresholdCap = 4

// logVolume counts the entries the state machine applies and their bytes:
// their mean size turns a snapshot's bytes into entries.
type logVolume struct{ entries, bytes atomic.Uint64 }

func (v *logVolume) add(logs ...*raft.Log) {
	var b uint64
	for _, l := range logs {
		b += uint64(len(l.Data))
	}
	v.entries.Add(uint64(len(logs)))
	v.bytes.Add(b)
}

// meanEntry is the mean size of an applied entry in bytes, 0 before any.
func (v *logVolume) meanEntry() float64 {
	n := v.entries.Load()
	if n == 0 {
		return 0
	}
	return float64(v.bytes.Load()) / float64(n)
}

// snapshotThreshold is the entries after which the next snapshot is due:
// half the last snapshot's bytes in entries of the mean size, within base
// and snapshotThresholdCap times base.
func snapshotThreshold(base uint64, snapshotBytes int64, meanEntry float64) uint64 {
	if snapshotBytes <= 0 || meanEntry <= 0 {
		return base
	}
	t := uint64(float64(snapshotBytes) / 2 / meanEntry)
	return min(max(t, base), snapshotThresholdCap*base)
}

// adaptSnapshots sets raft's threshold from the newest snapshot every
// SnapshotInterval (the interval raft checks the threshold at).
func (n *Node) adaptSnapshots() {
	n.every(n.cfg.SnapshotInterval, n.retuneSnapshots)
}

// every calls fn every d until the node shuts down; it is one of the
// node's goroutines (n.wg).
func (n *Node) every(d time.Duration, fn func()) {
	defer n.wg.Done()
	tick := time.NewTicker(d)
	defer tick.Stop()
	for {
		select {
		case <-n.shutdownCh:
			return
		case <-tick.C:
			fn()
		}
	}
}

// retuneSnapshots applies snapshotThreshold to raft's configuration when it
// changed.
func (n *Node) retuneSnapshots() {
	metas, err := n.snaps.List()
	if err != nil || len(metas) == 0 {
		return
	}
	rc := n.raft.ReloadableConfig()
	want := snapshotThreshold(n.cfg.SnapshotThreshold, metas[0].Size, n.volume.meanEntry())
	if want == rc.SnapshotThreshold {
		return
	}
	prev := rc.SnapshotThreshold
	rc.SnapshotThreshold = want
	if err := n.raft.ReloadConfig(rc); err != nil {
		n.logger.Warn("snapshot threshold unchanged", "entries", prev, "error", err)
		return
	}
	n.logger.Info("snapshot threshold set from the store's size", "entries", want, "was", prev,
		"snapshot_bytes", metas[0].Size, "mean_entry_bytes", int(n.volume.meanEntry()))
}
