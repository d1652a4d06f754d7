package cluster

import (
	"context"
	"sync"
)

// LeaderTask runs one function in its own goroutine while this node leads:
// Establish (an EstablishFunc) starts it with a context that Revoke (a
// RevokeFunc) cancels, and Revoke returns only once the function has
// returned, so a deposed leader's controller never overlaps the next
// term's. Establishing twice without a revoke keeps the running one.
type LeaderTask struct {
	run func(ctx context.Context)

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// NewLeaderTask returns a task that runs run while this node leads.
func NewLeaderTask(run func(ctx context.Context)) *LeaderTask {
	return &LeaderTask{run: run}
}

// Establish starts the task.
func (t *LeaderTask) Establish(context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cancel != nil {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.cancel, t.done = cancel, done
	go func() {
		defer close(done)
		t.run(ctx)
	}()
	return nil
}

// Revoke stops the task and waits for it.
func (t *LeaderTask) Revoke() {
	t.mu.Lock()
	cancel, done := t.cancel, t.done
	t.cancel, t.done = nil, nil
	t.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// Running reports whether the task was established and not revoked.
func (t *LeaderTask) Running() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cancel != nil
}
