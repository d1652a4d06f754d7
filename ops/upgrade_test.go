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

// threeServers builds a status as server-1 sees it and the gossip list:
// builds[i] is server-(i+1)'s build, all alive, leader as given.
func threeServers(leader string, builds ...string) (cluster.Status, []cluster.Member) {
	st := cluster.Status{ID: "server-1", LeaderID: leader}
	var ms []cluster.Member
	for i, b := range builds {
		id := "server-" + string(rune('1'+i))
		cv := uint16(1)
		if strings.HasPrefix(b, "2") {
			cv = 2
		}
		st.Peers = append(st.Peers, cluster.Peer{ID: id, Voter: true, Leader: id == leader, Version: b, CommandVersion: cv, Gossip: "alive"})
		ms = append(ms, cluster.Member{MemberMeta: cluster.MemberMeta{ID: id, Version: b, CommandVersion: cv, APIURL: "http://" + id}, Status: "alive"})
	}
	return st, ms
}

func TestUpgradeCheck(t *testing.T) {
	caughtUp := map[string]uint64{"server-1": 1000, "server-2": 999, "server-3": 1000}
	tests := []struct {
		name     string
		leader   string
		builds   []string
		mutate   func(*cluster.Status, []cluster.Member, map[string]uint64)
		safe     bool
		next     string
		order    []string
		upgraded []string
		reasons  []string // substrings, one per expected reason
		cmdVer   uint16
	}{
		{name: "all on one build: followers first, leader last", leader: "server-1", builds: []string{"1.0", "1.0", "1.0"},
			safe: true, next: "server-2", order: []string{"server-2", "server-3", "server-1"}, cmdVer: 1},
		{name: "mixed: upgraded servers done, oldest follower next", leader: "server-2", builds: []string{"1.0", "1.0", "2.0"},
			safe: true, next: "server-1", order: []string{"server-1", "server-2"}, upgraded: []string{"server-3"}, cmdVer: 1},
		{name: "oldest build before a newer one", leader: "server-3", builds: []string{"1.10", "1.9", "2.0"},
			safe: true, next: "server-2", order: []string{"server-2", "server-1"}, upgraded: []string{"server-3"}, cmdVer: 1},
		{name: "only the leader is left", leader: "server-1", builds: []string{"1.0", "2.0", "2.0"},
			safe: true, next: "server-1", order: []string{"server-1"}, upgraded: []string{"server-2", "server-3"}, cmdVer: 1},
		{name: "all upgraded", leader: "server-1", builds: []string{"2.0", "2.0", "2.0"},
			safe: true, next: "server-2", order: []string{"server-2", "server-3", "server-1"}, cmdVer: 2},
		{name: "no leader", leader: "", builds: []string{"1.0", "1.0", "1.0"},
			safe: false, next: "server-1", order: []string{"server-1", "server-2", "server-3"}, reasons: []string{"no leader known"}, cmdVer: 1},
		{name: "a voter down", leader: "server-1", builds: []string{"1.0", "1.0", "1.0"},
			mutate: func(_ *cluster.Status, ms []cluster.Member, _ map[string]uint64) { ms[2].Status = "dead" },
			safe:   false, next: "server-2", order: []string{"server-2", "server-3", "server-1"},
			reasons: []string{"server-3 is dead in gossip", "2 of 3 voters alive"}, cmdVer: 1},
		{name: "a voter missing from gossip", leader: "server-1", builds: []string{"1.0", "1.0", "1.0"},
			mutate: func(_ *cluster.Status, ms []cluster.Member, _ map[string]uint64) { ms[1].ID = "elsewhere" },
			safe:   false, next: "server-2", order: []string{"server-2", "server-3", "server-1"},
			reasons: []string{"server-2 is unknown in gossip", "2 of 3 voters alive"}, cmdVer: 1},
		{name: "a follower behind", leader: "server-1", builds: []string{"1.0", "1.0", "1.0"},
			mutate: func(_ *cluster.Status, _ []cluster.Member, a map[string]uint64) {
				a["server-3"] = 1000 - MaxAppliedLag - 1
			},
			safe: false, next: "server-2", order: []string{"server-2", "server-3", "server-1"},
			reasons: []string{"server-3 is catching up: applied 743, the leader 1000 (257 behind"}, cmdVer: 1},
		{name: "lag at the limit is fine", leader: "server-1", builds: []string{"1.0", "1.0", "1.0"},
			mutate: func(_ *cluster.Status, _ []cluster.Member, a map[string]uint64) { a["server-3"] = 1000 - MaxAppliedLag },
			safe:   true, next: "server-2", order: []string{"server-2", "server-3", "server-1"}, cmdVer: 1},
		{name: "a follower's status unreadable", leader: "server-1", builds: []string{"1.0", "1.0", "1.0"},
			mutate: func(_ *cluster.Status, _ []cluster.Member, a map[string]uint64) { delete(a, "server-2") },
			safe:   false, next: "server-2", order: []string{"server-2", "server-3", "server-1"},
			reasons: []string{"could not read the applied index of server-2"}, cmdVer: 1},
		{name: "the leader's status unreadable", leader: "server-3", builds: []string{"1.0", "1.0", "1.0"},
			mutate: func(_ *cluster.Status, _ []cluster.Member, a map[string]uint64) { delete(a, "server-3") },
			safe:   false, next: "server-1", order: []string{"server-1", "server-2", "server-3"},
			reasons: []string{"could not read the applied index of leader server-3"}, cmdVer: 1},
		{name: "two voters: one down is no quorum", leader: "server-1", builds: []string{"1.0", "1.0"},
			safe: false, next: "server-2", order: []string{"server-2", "server-1"},
			reasons: []string{"2 of 2 voters alive: stopping one more leaves fewer than the 2"}, cmdVer: 1},
		{name: "non-voters are not counted", leader: "server-1", builds: []string{"1.0", "1.0", "1.0"},
			mutate: func(st *cluster.Status, _ []cluster.Member, _ map[string]uint64) {
				st.Peers = append(st.Peers, cluster.Peer{ID: "server-9", Voter: false, Version: "0.1", Gossip: "dead"})
			},
			safe: true, next: "server-2", order: []string{"server-2", "server-3", "server-1"}, cmdVer: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, ms := threeServers(tt.leader, tt.builds...)
			applied := map[string]uint64{}
			for i := range tt.builds {
				id := "server-" + string(rune('1'+i))
				applied[id] = caughtUp[id]
			}
			if tt.mutate != nil {
				tt.mutate(&st, ms, applied)
			}
			r := UpgradeCheck(st, ms, applied)
			if r.Safe != tt.safe {
				t.Errorf("safe = %v, want %v (reasons %q)", r.Safe, tt.safe, r.Reasons)
			}
			if r.Next != tt.next || !reflect.DeepEqual(r.Order, tt.order) || !reflect.DeepEqual(r.Upgraded, tt.upgraded) {
				t.Errorf("next %q order %q upgraded %q, want %q %q %q", r.Next, r.Order, r.Upgraded, tt.next, tt.order, tt.upgraded)
			}
			if r.CommandVersion != tt.cmdVer {
				t.Errorf("cluster command version %d, want %d", r.CommandVersion, tt.cmdVer)
			}
			if len(r.Reasons) != len(tt.reasons) {
				t.Fatalf("reasons %q, want %d matching %q", r.Reasons, len(tt.reasons), tt.reasons)
			}
			for i, want := range tt.reasons {
				if !strings.Contains(r.Reasons[i], want) {
					t.Errorf("reason %d = %q, want it to say %q", i, r.Reasons[i], want)
				}
			}
		})
	}
}

func TestUpgradeCheckWithoutVoters(t *testing.T) {
	r := UpgradeCheck(cluster.Status{ID: "server-1"}, nil, nil)
	if r.Safe || len(r.Reasons) != 1 || !strings.Contains(r.Reasons[0], "not bootstrapped") {
		t.Fatalf("no voters: %+v", r)
	}
}

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1.9.2", "1.10.0", -1}, {"1.10.0", "1.9.2", 1}, {"1.0.0", "1.0.0", 0}, {"1.0", "1.0.1", -1},
		{"0.1.0-dev", "0.1.0-upgrade", -1}, {"v2", "v10", -1}, {"", "1", -1},
	} {
		if got := CompareVersions(c.a, c.b); got != c.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestPeerAppliedAsksEachVoter(t *testing.T) {
	serve := func(id string, applied uint64) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v1/status" {
				http.NotFound(w, r)
				return
			}
			_ = json.NewEncoder(w).Encode(cluster.Status{ID: id, AppliedIndex: applied})
		}))
	}
	s2, s3, wrong := serve("server-2", 41), serve("server-3", 42), serve("server-7", 99)
	defer s2.Close()
	defer s3.Close()
	defer wrong.Close()
	st := cluster.Status{ID: "server-1", AppliedIndex: 40, Peers: []cluster.Peer{
		{ID: "server-1", Voter: true, APIURL: "http://unused.invalid"},
		{ID: "server-2", Voter: true, APIURL: s2.URL},
		{ID: "server-3", Voter: true, APIURL: s3.URL + "/"},
		{ID: "server-4", Voter: true, APIURL: wrong.URL}, // someone else answers there
		{ID: "server-5", Voter: true, APIURL: "http://127.0.0.1:1"},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := PeerApplied(ctx, &http.Client{Timeout: 2 * time.Second}, st)
	want := map[string]uint64{"server-1": 40, "server-2": 41, "server-3": 42}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("applied = %v, want %v", got, want)
	}
}
