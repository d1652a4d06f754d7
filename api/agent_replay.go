package api

import (
	"sync"
	"time"
)

// Agent requests carry a date and a fresh nonce under their signature. A
// captured request replayed within the allowed clock skew would still
// verify, so each server remembers, per host, the newest date it saw and
// the last nonces: a nonce seen before, or a date more than
// replayTolerance older than the host's newest, is refused. Heartbeats
// all end on the leader (followers relay them), so a replayed heartbeat
// cannot keep a dead host's lease alive through another server either.
const (
	replayTolerance = 30 * time.Second // requests of one host may arrive out of order by this much
	replayNonces    = 64               // nonces kept per host: more than a host sends in replayTolerance
)

type hostNonces struct {
	newest time.Time
	ring   [replayNonces]string
	next   int
	seen   map[string]bool
}

type replayGuard struct {
	mu    sync.Mutex
	hosts map[string]*hostNonces
}

// fresh records a request of host with date and nonce and says whether it
// is new.
func (g *replayGuard) fresh(host, nonce string, date time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.hosts == nil {
		g.hosts = map[string]*hostNonces{}
	}
	h := g.hosts[host]
	if h == nil {
		h = &hostNonces{seen: map[string]bool{}}
		g.hosts[host] = h
	}
	if h.seen[nonce] || date.Before(h.newest.Add(-replayTolerance)) {
		return false
	}
	if old := h.ring[h.next]; old != "" {
		delete(h.seen, old)
	}
	h.ring[h.next], h.next = nonce, (h.next+1)%replayNonces
	h.seen[nonce] = true
	if date.After(h.newest) {
		h.newest = date
	}
	return true
}
