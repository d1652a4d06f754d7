package api

import (
	"crypto/sha256"
	"encoding/hex"
	"sync"

	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/hypervisor/agent"
)

// peerCache keeps each cluster's peer list (every host of it with a
// status URL) as of a membership generation (fsm.Store.PeersGen), so the
// desired-state answers of a cluster of 500 hosts do not read 500 host
// rows each: a host's row changes with every placement on it, but its
// peer list only when hosts join, leave or change name or status URL.
type peerCache struct {
	mu sync.Mutex
	m  map[string]peerList
}

type peerList struct {
	gen   uint64
	peers []agent.Peer // shared by answers: never changed
	tag   string
}

// of returns the cluster's peer list in host-ID order and its tag, a hash
// of the list that every server computes alike; state returns the current
// state (not a snapshot taken earlier).
func (c *peerCache) of(state func() *fsm.Store, clusterID string) ([]agent.Peer, string, error) {
	// The generation is read before the rows, which come from the state
	// as it is after that read: a change committed in between gives a
	// newer list under an older generation, which the next read replaces;
	// never an older list under a newer one.
	gen := state().PeersGen(clusterID)
	c.mu.Lock()
	l, ok := c.m[clusterID]
	c.mu.Unlock()
	if ok && l.gen == gen {
		return l.peers, l.tag, nil
	}
	hosts, err := fsm.List[fsm.Host](state(), nil, fsm.TableHosts, "cluster", clusterID)
	if err != nil {
		return nil, "", err
	}
	l = peerList{gen: gen}
	sum := sha256.New()
	for _, h := range hosts {
		if h.StatusURL == "" {
			continue
		}
		l.peers = append(l.peers, agent.Peer{HostID: h.ID, Name: h.Name, StatusURL: h.StatusURL})
		for _, f := range []string{h.ID, h.Name, h.StatusURL} {
			sum.Write([]byte(f))
			sum.Write([]byte{0})
		}
	}
	l.tag = hex.EncodeToString(sum.Sum(nil)[:12])
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]peerList{}
	}
	if cur, ok := c.m[clusterID]; !ok || cur.gen <= gen {
		c.m[clusterID] = l
	}
	c.mu.Unlock()
	return l.peers, l.tag, nil
}
