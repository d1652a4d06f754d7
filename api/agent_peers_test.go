package api

import (
	"fmt"
	"testing"

	"github.com/stratus-cloud/stratus/fsm"
)

// TestDesiredPeersTag: a desired-state answer lists the host's cluster
// peers with a tag of the list; asked with the current tag it says the
// list is the same instead of listing it. Placements on peers (their rows
// change) keep the tag; a peer's new status URL, a new host of the cluster
// change it; a change in another cluster does not. Every server computes
// the same tag for the same list.
func TestDesiredPeersTag(t *testing.T) {
	f := newPollFixture(t, 40) // clusters of 20 hosts
	update := func(h *fsm.Host, change func(*fsm.Host)) {
		t.Helper()
		cur, err := fsm.Get[fsm.Host](f.c.State(), nil, fsm.TableHosts, h.ID)
		if err != nil || cur == nil {
			t.Fatalf("host %s: %v", h.ID, err)
		}
		nh := cur.Copy()
		change(nh)
		f.commit(t, fsm.Update(fsm.TableHosts, nh))
	}
	for i, h := range f.hosts[:20] {
		update(h, func(h *fsm.Host) { h.StatusURL = fmt.Sprintf("https://10.9.0.%d:8251", i) })
	}
	me := f.hosts[0]
	ask := func(tag string) (peers int, got string, same bool) {
		t.Helper()
		d, err := f.s.desiredOf(f.c.State(), nil, me.ID, tag)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range d.Peers {
			if p.HostID == me.ID {
				t.Errorf("the host is listed as its own peer")
			}
		}
		return len(d.Peers), d.PeersTag, d.PeersSame
	}
	n, tag1, same := ask("")
	if n != 19 || tag1 == "" || same {
		t.Fatalf("first answer: %d peers, tag %q, same %v; want 19, a tag, false", n, tag1, same)
	}
	if n, tag, same := ask(tag1); n != 0 || tag != tag1 || !same {
		t.Fatalf("asked with the current tag: %d peers, tag %q, same %v; want 0, %q, true", n, tag, same, tag1)
	}
	if n, tag, same := ask("some-other-tag"); n != 19 || tag != tag1 || same {
		t.Fatalf("asked with a stale tag: %d peers, tag %q, same %v", n, tag, same)
	}
	update(f.hosts[1], func(h *fsm.Host) { h.CPUAllocated += 1000; h.MemoryAllocated += 512 << 20 })
	update(f.hosts[25], func(h *fsm.Host) { h.StatusURL = "https://10.9.1.25:8251" })
	if _, tag, same := ask(tag1); tag != tag1 || !same {
		t.Fatalf("after a placement on a peer and a change in another cluster: tag %q same %v, want %q true", tag, same, tag1)
	}
	update(f.hosts[2], func(h *fsm.Host) { h.StatusURL = "https://10.9.0.222:8251" })
	n, tag2, same := ask(tag1)
	if n != 19 || tag2 == tag1 || same {
		t.Fatalf("after a peer's status URL changed: %d peers, tag %q (was %q), same %v", n, tag2, tag1, same)
	}
	other := &peerCache{}
	if _, tag, err := other.of(f.c.State, me.ClusterID); err != nil || tag != tag2 {
		t.Errorf("another server's tag of the same list: %q, %v; want %q", tag, err, tag2)
	}
	joined := f.hosts[3].Copy()
	joined.ID, joined.Name, joined.IPAddress, joined.StatusURL = "ffffffff-0000-4000-8000-00000000abcd", "host-new", "10.30.0.1", "https://10.30.0.1:8251"
	joined.Token, joined.URL = "token-new", "http://10.30.0.1"
	joined.Indexes = fsm.Indexes{}
	f.commit(t, fsm.Create(fsm.TableHosts, joined))
	if n, tag, same := ask(tag2); n != 20 || tag == tag2 || same {
		t.Fatalf("after a host joined the cluster: %d peers, tag %q (was %q), same %v; want 20, a new tag", n, tag, tag2, same)
	}
}
