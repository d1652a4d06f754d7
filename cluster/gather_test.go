package cluster

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// doneFuture is an ApplyFuture that has already succeeded.
type doneFuture struct{ data []byte }

func (doneFuture) Error() error    { return nil }
func (doneFuture) Index() uint64   { return 1 }
func (f doneFuture) Response() any { return string(f.data) }

// fakeRaft records what the gatherer hands it.
type fakeRaft struct {
	mu      sync.Mutex
	applied []string
	batches []int
}

func (r *fakeRaft) apply(data []byte) raft.ApplyFuture {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied = append(r.applied, string(data))
	return doneFuture{data}
}

func (r *fakeRaft) onBatch(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = append(r.batches, n)
}

func (r *fakeRaft) seen() (applied []string, batches []int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.applied...), append([]int(nil), r.batches...)
}

func startGatherer(t *testing.T, window time.Duration) (*gatherer, *fakeRaft) {
	t.Helper()
	r := &fakeRaft{}
	stop := make(chan struct{})
	g := newGatherer(r.apply, window, stop)
	g.onBatch = r.onBatch
	done := make(chan struct{})
	go func() { defer close(done); g.run() }()
	t.Cleanup(func() { close(stop); <-done })
	return g, r
}

// A write on a quiet leader goes to raft at once, in the caller's own
// call: gathering never adds latency when nothing else is in flight.
func TestGatherQuietWriteGoesAtOnce(t *testing.T) {
	r := &fakeRaft{}
	g := newGatherer(r.apply, time.Hour, make(chan struct{})) // run never started: nothing could hand it over
	for i := range 3 {
		f := g.propose([]byte{'a' + byte(i)})
		if err := f.Error(); err != nil {
			t.Fatal(err)
		}
		g.done()
	}
	if applied, _ := r.seen(); len(applied) != 3 {
		t.Fatalf("applied %v, want the 3 writes, each at once", applied)
	}
}

// Writes that arrive while one is in flight are held, and handed to raft
// together, in one batch, once the write in flight has ended.
func TestGatherHoldsWritesWhileOneIsInFlight(t *testing.T) {
	g, r := startGatherer(t, time.Hour)
	first := g.propose([]byte("first")) // goes at once; its outcome is not yet taken
	_ = first.Error()
	const n = 5
	var wg sync.WaitGroup
	var resolved atomic.Int32
	for i := range n {
		wg.Go(func() {
			f := g.propose([]byte{'0' + byte(i)})
			if err := f.Error(); err != nil {
				t.Error(err)
			}
			resolved.Add(1)
			g.done()
		})
	}
	waitFor(t, 5*time.Second, "the writes to be proposed", func() error {
		if got := g.inflight.Load(); got != n+1 {
			return fmt.Errorf("%d in flight", got)
		}
		return nil
	})
	if applied, _ := r.seen(); len(applied) != 1 {
		t.Fatalf("applied %v while the first write was in flight; want only it", applied)
	}
	if resolved.Load() != 0 {
		t.Fatal("a held write resolved before it was handed to raft")
	}
	g.done() // the first write's outcome is in: raft has nothing else
	wg.Wait()
	applied, batches := r.seen()
	if len(applied) != n+1 {
		t.Fatalf("applied %v, want all %d writes", applied, n+1)
	}
	if len(batches) != 1 || batches[0] != n {
		t.Fatalf("handed over in batches %v, want one batch of %d", batches, n)
	}
}

// The window bounds the hold: a write is handed over when it ends even
// though the write in flight has not ended.
func TestGatherWindowBoundsTheHold(t *testing.T) {
	g, r := startGatherer(t, 20*time.Millisecond)
	_ = g.propose([]byte("stuck")).Error() // never done: as if its commit took long
	f := g.propose([]byte("next"))
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	g.done()
	if applied, batches := r.seen(); len(applied) != 2 || len(batches) != 1 || batches[0] != 1 {
		t.Fatalf("applied %v in batches %v, want the held write alone after the window", applied, batches)
	}
}

// A negative window turns gathering off: every write goes at once.
func TestGatherOff(t *testing.T) {
	r := &fakeRaft{}
	g := newGatherer(r.apply, -1, make(chan struct{}))
	_ = g.propose([]byte("a")).Error()
	_ = g.propose([]byte("b")).Error() // one in flight, yet no run loop is needed
	if applied, _ := r.seen(); len(applied) != 2 {
		t.Fatalf("applied %v, want both at once", applied)
	}
}
