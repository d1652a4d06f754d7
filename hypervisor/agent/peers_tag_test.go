package agent

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// TestPeersSameKeepsTheHeldList: an answer that says the peer list is
// unchanged (the agent sent its tag) keeps the list the agent holds, and
// the fence record on disk still names those peers; a full answer
// replaces list and tag.
func TestPeersSameKeepsTheHeldList(t *testing.T) {
	a := &Agent{cfg: Config{DataDir: t.TempDir()}, log: hclog.NewNullLogger()}
	peers := []Peer{{HostID: "h-2", Name: "two", StatusURL: "https://10.0.0.2:8251"}, {HostID: "h-3", Name: "three", StatusURL: "https://10.0.0.3:8251"}}
	a.noteDesired(&Desired{Index: 5, Peers: peers, PeersTag: "tag-1"})
	if got := a.heldPeersTag(); got != "tag-1" {
		t.Fatalf("held tag %q after a full answer, want tag-1", got)
	}
	a.noteDesired(&Desired{Index: 6, PeersTag: "tag-1", PeersSame: true, VMs: []DesiredVM{{ID: "vm-1", HA: true}}})
	a.mu.Lock()
	held, tag := append([]Peer(nil), a.ls.peers...), a.ls.peersTag
	a.mu.Unlock()
	if !samePeers(held, peers) || tag != "tag-1" {
		t.Fatalf("after peers_same: held %v tag %q, want the first list and tag-1", held, tag)
	}
	var rec fenceRecord
	b, err := os.ReadFile(filepath.Join(a.cfg.DataDir, fenceFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	if !samePeers(rec.Peers, peers) || len(rec.HA) == 0 {
		t.Fatalf("fence record after peers_same: %+v", rec)
	}
	a.noteDesired(&Desired{Index: 7, Peers: peers[:1], PeersTag: "tag-2"})
	a.mu.Lock()
	held, tag = a.ls.peers, a.ls.peersTag
	a.mu.Unlock()
	if len(held) != 1 || tag != "tag-2" {
		t.Fatalf("after a new full list: held %v tag %q", held, tag)
	}
}
