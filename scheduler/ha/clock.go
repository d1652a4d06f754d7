package ha

import (
	"sort"
	"sync"
	"time"
)

// Clock is the time source of the controller: the wall clock in
// production, a FakeClock in tests, so fencing tests advance time instead
// of sleeping (etcd's v3compactor does the same with clockwork).
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call.
type Timer interface {
	// Stop cancels the call; it reports whether the call was pending.
	Stop() bool
	// Reset makes the call happen d from now, even if it already
	// happened or was stopped; it reports whether the call was pending.
	Reset(d time.Duration) bool
}

// RealClock is the wall clock.
type RealClock struct{}

// Now returns the current time.
func (RealClock) Now() time.Time { return time.Now() }

// AfterFunc is time.AfterFunc.
func (RealClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// FakeClock is a Clock that moves only when Advance is called. Timer
// callbacks run in their own goroutines, as time.AfterFunc's do.
type FakeClock struct {
	mu      sync.Mutex
	cond    *sync.Cond
	now     time.Time
	seq     int
	pending map[*fakeTimer]bool
}

// NewFakeClock returns a fake clock reading start.
func NewFakeClock(start time.Time) *FakeClock {
	c := &FakeClock{now: start, pending: map[*fakeTimer]bool{}}
	c.cond = sync.NewCond(&c.mu)
	return c
}

// Now returns the fake time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc schedules f at now + d.
func (c *FakeClock) AfterFunc(d time.Duration, f func()) Timer {
	t := &fakeTimer{c: c, f: f}
	t.Reset(d)
	return t
}

// Advance moves the clock forward by d and starts the callback of every
// timer that came due, in deadline order.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	target := c.now.Add(d)
	var due []*fakeTimer
	for t := range c.pending {
		if !t.at.After(target) {
			due = append(due, t)
			delete(c.pending, t)
		}
	}
	sort.Slice(due, func(i, j int) bool {
		if !due[i].at.Equal(due[j].at) {
			return due[i].at.Before(due[j].at)
		}
		return due[i].seq < due[j].seq
	})
	c.now = target
	c.cond.Broadcast()
	c.mu.Unlock()
	for _, t := range due {
		go t.f()
	}
}

// Pending returns how many timers wait to fire.
func (c *FakeClock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// WaitPending waits until at least n timers wait to fire, or timeout (real
// time) passes; it reports whether they do. Tests use it to know that a
// goroutine has armed its timer before they advance the clock.
func (c *FakeClock) WaitPending(n int, timeout time.Duration) bool {
	stop := time.AfterFunc(timeout, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer stop.Stop()
	deadline := time.Now().Add(timeout)
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.pending) < n {
		if !time.Now().Before(deadline) {
			return false
		}
		c.cond.Wait()
	}
	return true
}

// WaitDue waits until a pending timer is due at exactly at, or timeout
// (real time) passes; it reports whether one is. Tests use it to know that
// a goroutine armed its pause (now + d) before they advance the clock.
func (c *FakeClock) WaitDue(at time.Time, timeout time.Duration) bool {
	stop := time.AfterFunc(timeout, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer stop.Stop()
	deadline := time.Now().Add(timeout)
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for t := range c.pending {
			if t.at.Equal(at) {
				return true
			}
		}
		if !time.Now().Before(deadline) {
			return false
		}
		c.cond.Wait()
	}
}

type fakeTimer struct {
	c   *FakeClock
	f   func()
	at  time.Time
	seq int
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.c.pending[t]
	delete(t.c.pending, t)
	return was
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	c := t.c
	c.mu.Lock()
	was := c.pending[t]
	if d <= 0 {
		delete(c.pending, t)
		c.mu.Unlock()
		go t.f()
		return was
	}
	c.seq++
	t.at, t.seq = c.now.Add(d), c.seq
	c.pending[t] = true
	c.cond.Broadcast()
	c.mu.Unlock()
	return was
}
