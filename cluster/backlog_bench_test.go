package cluster

import (
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// BenchmarkFollowerApplyBacklog measures what a follower whose FSM falls
// behind holds in memory. Raft's follower reads each committed entry back
// from its log store and queues it for the FSM in batches of up to
// MaxAppendEntries, on a channel of 128 batches (fixed inside raft); only
// when that is full does the follower stop taking entries. So a lagging
// follower holds up to about 130 x MaxAppendEntries decoded entries: heap
// a profile charges to raft-boltdb's GetLog. Three raft nodes on
// in-memory transports with real raft.db files; one follower's FSM is
// stopped while the leader commits 40,000 entries of 2-4 KB, and the heap
// is measured then and after it has caught up. Run with -benchtime=1x.
func BenchmarkFollowerApplyBacklog(b *testing.B) {
	for _, maxAppend := range []int{64, 128, raftMaxAppendEntries} {
		b.Run(fmt.Sprintf("maxappend=%d", maxAppend), func(b *testing.B) {
			for range b.N {
				r := runApplyBacklog(b, maxAppend, 40_000)
				b.ReportMetric(float64(r.held)/(1<<20), "held-MB")
				b.ReportMetric(float64(r.queued), "queued-entries")
				b.ReportMetric(r.commitRate, "commits/s")
			}
		})
	}
}

// gateFSM applies nothing while its gate is shut; it records the last
// index it applied.
type gateFSM struct {
	gate    atomic.Pointer[chan struct{}] // ApplyBatch waits for it to close
	applied atomic.Uint64
}

func newGateFSM() *gateFSM {
	f := &gateFSM{}
	open := make(chan struct{})
	close(open)
	f.gate.Store(&open)
	return f
}

// shut makes ApplyBatch wait until the returned func is called.
func (f *gateFSM) shut() (release func()) {
	ch := make(chan struct{})
	f.gate.Store(&ch)
	return func() { close(ch) }
}

func (f *gateFSM) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

func (f *gateFSM) ApplyBatch(logs []*raft.Log) []any {
	<-*f.gate.Load()
	f.applied.Store(logs[len(logs)-1].Index)
	return make([]any, len(logs))
}

func (f *gateFSM) Snapshot() (raft.FSMSnapshot, error) { return emptySnapshot{}, nil }
func (f *gateFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

type emptySnapshot struct{}

func (emptySnapshot) Persist(sink raft.SnapshotSink) error { return sink.Close() }
func (emptySnapshot) Release()                             {}

// backlogFigures is what runApplyBacklog measured: the heap the stalled
// follower held above what it holds once caught up, how many entries it
// had queued for its FSM, and the rate at which the leader committed
// (with the other follower as its quorum).
type backlogFigures struct {
	held       uint64
	queued     uint64
	commitRate float64
}

func runApplyBacklog(b *testing.B, maxAppend, entries int) (r backlogFigures) {
	const n = 3
	var (
		rafts  [n]*raft.Raft
		fsms   [n]*gateFSM
		trans  [n]*raft.InmemTransport
		config raft.Configuration
	)
	for i := range n {
		addr, t := raft.NewInmemTransportWithTimeout(raft.ServerAddress(fmt.Sprint("node", i)), time.Second)
		trans[i] = t
		config.Servers = append(config.Servers, raft.Server{ID: raft.ServerID(addr), Address: addr})
	}
	for i := range n {
		for k := range n {
			if i != k {
				trans[i].Connect(trans[k].LocalAddr(), trans[k])
			}
		}
	}
	for i := range n {
		dir := b.TempDir()
		store, err := openLogStore(dir)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { store.Close() })
		logs, err := raft.NewLogCache(raftLogCacheSize, store)
		if err != nil {
			b.Fatal(err)
		}
		rc := raft.DefaultConfig()
		rc.LocalID = config.Servers[i].ID
		rc.Logger = hclog.NewNullLogger()
		tuneRaftForWrites(rc)
		rc.MaxAppendEntries = maxAppend
		rc.SnapshotThreshold = uint64(10 * entries) // no snapshot in the run
		if err := raft.BootstrapCluster(rc, logs, store, raft.NewInmemSnapshotStore(), trans[i], config); err != nil {
			b.Fatal(err)
		}
		fsms[i] = newGateFSM()
		if rafts[i], err = raft.NewRaft(rc, fsms[i], logs, store, raft.NewInmemSnapshotStore(), trans[i]); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = rafts[i].Shutdown().Error() })
	}
	leader := waitForRaftLeader(b, rafts[:])
	slow := (leader + 1) % n
	release := fsms[slow].shut()
	start := time.Now()
	last := commitEntries(b, rafts[leader], entries)
	r.commitRate = float64(entries) / time.Since(start).Seconds()
	// The follower stores what it is sent; its queue fills as commits
	// reach it, then it stops taking more: wait until that settles.
	r.queued = waitForQueue(b, rafts[slow], fsms[slow])
	stalled := liveHeap()

	release()
	deadline := time.Now().Add(2 * time.Minute)
	for fsms[slow].applied.Load() < last {
		if time.Now().After(deadline) {
			b.Fatalf("slow follower applied %d of %d", fsms[slow].applied.Load(), last)
		}
		time.Sleep(20 * time.Millisecond)
	}
	caughtUp := liveHeap()
	r.held = above(stalled, caughtUp)
	return r
}

func waitForRaftLeader(b *testing.B, rafts []*raft.Raft) int {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for i, r := range rafts {
			if r.State() == raft.Leader {
				return i
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatal("no leader")
	return -1
}

// commitEntries applies entries of 2-4 KB through the leader, up to 1,024
// in flight, waits for all of them to commit and returns the last's index.
func commitEntries(b *testing.B, leader *raft.Raft, entries int) uint64 {
	src := payloadSource()
	var last uint64
	rng := rand.New(rand.NewPCG(5, 6))
	var inflight []raft.ApplyFuture
	wait := func() {
		for _, f := range inflight {
			if err := f.Error(); err != nil {
				b.Fatal(err)
			}
			last = max(last, f.Index())
		}
		inflight = inflight[:0]
	}
	for range entries {
		size := 2048 + rng.IntN(2049)
		off := rng.IntN(len(src) - size)
		data := append([]byte(nil), src[off:off+size]...)
		inflight = append(inflight, leader.Apply(data, 10*time.Second))
		if len(inflight) == 1024 {
			wait()
		}
	}
	wait()
	return last
}

// waitForQueue waits until the stalled follower's log stops growing and
// returns how many entries it holds committed but not applied.
func waitForQueue(b *testing.B, r *raft.Raft, f *gateFSM) uint64 {
	var prev string
	for range 50 {
		time.Sleep(200 * time.Millisecond)
		st := r.Stats()
		if cur := st["last_log_index"] + "/" + st["fsm_pending"]; cur == prev {
			break
		} else {
			prev = cur
		}
	}
	applied, err := strconv.ParseUint(r.Stats()["applied_index"], 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	// applied_index is what raft handed to the FSM's queue; the FSM
	// itself has applied nothing since the gate closed.
	return applied - f.applied.Load()
}
