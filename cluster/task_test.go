package cluster

import (
	"context"
	"sync/atomic"
	"testing"
)

func TestLeaderTaskRunsOncePerTermAndRevokeWaits(t *testing.T) {
	var running, starts atomic.Int32
	started := make(chan struct{}, 4)
	task := NewLeaderTask(func(ctx context.Context) {
		starts.Add(1)
		running.Add(1)
		started <- struct{}{}
		<-ctx.Done()
		running.Add(-1)
	})
	task.Revoke() // revoking a task never established is harmless
	for term := 1; term <= 2; term++ {
		if err := task.Establish(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := task.Establish(context.Background()); err != nil { // a repeated establish keeps the running one
			t.Fatal(err)
		}
		<-started
		if !task.Running() {
			t.Fatalf("term %d: task not running after establish", term)
		}
		task.Revoke()
		if n := running.Load(); n != 0 {
			t.Fatalf("term %d: %d runs still going after Revoke returned", term, n)
		}
		if task.Running() {
			t.Fatalf("term %d: task says running after revoke", term)
		}
	}
	if n := starts.Load(); n != 2 {
		t.Fatalf("task started %d times over two terms, want 2", n)
	}
}
