package hypervisor

import (
	"context"
	"sync"
)

// eventHub fans lifecycle events out to any number of subscribers. Each
// subscriber has its own unbounded queue fed to its channel by a
// goroutine, so a slow reader never blocks the driver (nor libvirt's
// event loop) and never loses events.
type eventHub struct {
	mu     sync.Mutex
	subs   map[int]*eventSub
	next   int
	closed bool
}

type eventSub struct {
	queue  []DomainEvent
	wake   chan struct{}
	closed bool
}

func newEventHub() *eventHub {
	return &eventHub{subs: make(map[int]*eventSub)}
}

// subscribe returns a channel of every event published from now on; it
// closes when ctx ends or the hub closes.
func (h *eventHub) subscribe(ctx context.Context) <-chan DomainEvent {
	out := make(chan DomainEvent)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		close(out)
		return out
	}
	id := h.next
	h.next++
	s := &eventSub{wake: make(chan struct{}, 1)}
	h.subs[id] = s
	go h.feed(ctx, id, s, out)
	return out
}

// count reports how many subscribers are listening.
func (h *eventHub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// publish queues ev for every subscriber.
func (h *eventHub) publish(ev DomainEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.subs {
		s.queue = append(s.queue, ev)
		s.poke()
	}
}

// close ends every subscription; later subscriptions are closed at once.
func (h *eventHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for _, s := range h.subs {
		s.closed = true
		s.poke()
	}
}

func (s *eventSub) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// feed moves one subscriber's queued events to its channel.
func (h *eventHub) feed(ctx context.Context, id int, s *eventSub, out chan<- DomainEvent) {
	defer close(out)
	defer func() {
		h.mu.Lock()
		delete(h.subs, id)
		h.mu.Unlock()
	}()
	for {
		h.mu.Lock()
		if s.closed {
			h.mu.Unlock()
			return
		}
		if len(s.queue) == 0 {
			h.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-s.wake:
			}
			continue
		}
		ev := s.queue[0]
		s.queue = s.queue[1:]
		h.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case out <- ev:
		}
	}
}
