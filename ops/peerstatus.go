package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/stratus-cloud/stratus/cluster"
)

// PeerReport is one server's own view of itself, read from its GET
// /v1/status, or why that failed.
type PeerReport struct {
	Status cluster.Status
	// Self marks the asked server, whose status needs no request.
	Self bool
	// Err says why the server's status could not be read; Status is then
	// empty.
	Err error
}

// PeerStatuses reads the /v1/status of every server of status that has an
// API URL (voters and non-voters), in parallel, until ctx ends. The asked
// server's entry is status itself. A server that does not answer, answers
// with an error, or where another server answers gets an Err.
func PeerStatuses(ctx context.Context, client *http.Client, status cluster.Status) map[string]PeerReport {
	return peerStatuses(ctx, client, status, false)
}

func peerStatuses(ctx context.Context, client *http.Client, status cluster.Status, votersOnly bool) map[string]PeerReport {
	out := map[string]PeerReport{status.ID: {Status: status, Self: true}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range status.Peers {
		if (votersOnly && !p.Voter) || p.ID == status.ID {
			continue
		}
		if p.APIURL == "" {
			mu.Lock()
			out[p.ID] = PeerReport{Err: fmt.Errorf("status of %s: no API address known in gossip", p.ID)}
			mu.Unlock()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := fetchStatus(ctx, client, p.APIURL, p.ID)
			mu.Lock()
			out[p.ID] = PeerReport{Status: st, Err: err}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// AppliedIndexes picks the applied index of each server whose status was
// read, the form UpgradeCheck takes.
func AppliedIndexes(reports map[string]PeerReport) map[string]uint64 {
	out := map[string]uint64{}
	for id, r := range reports {
		if r.Err == nil {
			out[id] = r.Status.AppliedIndex
		}
	}
	return out
}

// StatusMembers is the gossip list that status was built from (a peer that
// gossip does not know is left out), for callers that hold a Status but not
// the node: UpgradeCheck(st, StatusMembers(st), ...) judges as
// UpgradeCheck(st, node.Members(), ...) does.
func StatusMembers(status cluster.Status) []cluster.Member {
	var out []cluster.Member
	for _, p := range status.Peers {
		if p.Gossip == "" || p.Gossip == "unknown" {
			continue
		}
		out = append(out, cluster.Member{MemberMeta: cluster.MemberMeta{ID: p.ID, RaftAddr: p.RaftAddr, APIURL: p.APIURL,
			Version: p.Version, CommandVersion: p.CommandVersion}, GossipAddr: p.GossipAddr, Status: p.Gossip})
	}
	return out
}

func fetchStatus(ctx context.Context, client *http.Client, base, id string) (cluster.Status, error) {
	var st cluster.Status
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/v1/status", nil)
	if err != nil {
		return st, fmt.Errorf("status of %s: %w", id, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return st, fmt.Errorf("status of %s: %w", id, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("status of %s: HTTP %d", id, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return cluster.Status{}, fmt.Errorf("status of %s: %w", id, err)
	}
	if st.ID != id {
		return cluster.Status{}, fmt.Errorf("status of %s: %s answered at its address", id, st.ID)
	}
	return st, nil
}
