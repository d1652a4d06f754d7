package ops

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stratus-cloud/stratus/cluster"
)

func TestPeerStatusesReadsEveryServer(t *testing.T) {
	s2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(cluster.Status{ID: "server-2", Role: "follower", Term: 7, AppliedIndex: 41, CommitIndex: 42})
	}))
	defer s2.Close()
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	defer broken.Close()
	st := cluster.Status{ID: "server-1", Role: "leader", Term: 7, AppliedIndex: 40, Peers: []cluster.Peer{
		{ID: "server-1", Voter: true, APIURL: "http://unused.invalid"},
		{ID: "server-2", Voter: false, APIURL: s2.URL}, // non-voters are read too
		{ID: "server-3", Voter: true, APIURL: broken.URL},
		{ID: "server-4", Voter: true},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := PeerStatuses(ctx, &http.Client{Timeout: 2 * time.Second}, st)
	if r := got["server-1"]; !r.Self || r.Err != nil || r.Status.AppliedIndex != 40 {
		t.Errorf("self = %+v, want the asked server's own status", r)
	}
	if r := got["server-2"]; r.Self || r.Err != nil || r.Status.Role != "follower" || r.Status.CommitIndex != 42 {
		t.Errorf("server-2 = %+v, want its own status", r)
	}
	if r := got["server-3"]; r.Err == nil || !strings.Contains(r.Err.Error(), "HTTP 503") {
		t.Errorf("server-3 = %+v, want an HTTP 503 error", r)
	}
	if r := got["server-4"]; r.Err == nil || !strings.Contains(r.Err.Error(), "no API address") {
		t.Errorf("server-4 = %+v, want a missing address error", r)
	}
	if want := map[string]uint64{"server-1": 40, "server-2": 41}; !reflect.DeepEqual(AppliedIndexes(got), want) {
		t.Errorf("applied = %v, want %v", AppliedIndexes(got), want)
	}
}

// TestStatusMembersJudgesAsGossip: the upgrade check built from a Status
// alone gives the verdict the operator command gives with the node's
// gossip list.
func TestStatusMembersJudgesAsGossip(t *testing.T) {
	st, ms := threeServers("server-1", "1.0", "1.0", "2.0")
	ms[1].Status = "suspect"
	st.Peers[1].Gossip = "suspect"
	ms = ms[:2] // server-3 unknown to gossip
	st.Peers[2].Gossip = "unknown"
	for i := range st.Peers {
		st.Peers[i].APIURL = "http://" + st.Peers[i].ID
	}
	applied := map[string]uint64{"server-1": 10, "server-2": 10, "server-3": 10}
	want := UpgradeCheck(st, ms, applied)
	got := UpgradeCheck(st, StatusMembers(st), applied)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("from status: %+v\nfrom gossip: %+v", got, want)
	}
	if got.Safe || len(got.Reasons) < 2 {
		t.Fatalf("want an unsafe verdict with reasons, got %+v", got)
	}
}
