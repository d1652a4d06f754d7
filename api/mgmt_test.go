package api

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratus-cloud/stratus/cluster"
	"github.com/stratus-cloud/stratus/ops"
)

// mgmtCluster is the fake cluster with a raft view of three servers: this
// one (server-1) and two peers whose /v1/status are real HTTP servers.
type mgmtCluster struct {
	*fakeCluster
	mu sync.Mutex
	st cluster.Status
}

func (c *mgmtCluster) Status() cluster.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.st
	st.Peers = append([]cluster.Peer(nil), c.st.Peers...)
	return st
}

func (c *mgmtCluster) setGossip(id, state string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.st.Peers {
		if c.st.Peers[i].ID == id {
			c.st.Peers[i].Gossip = state
		}
	}
}

// peerStatus serves a server's /v1/status.
type peerStatus struct {
	mu sync.Mutex
	st cluster.Status
}

func (p *peerStatus) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/status" {
		http.NotFound(w, r)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	writeJSON(w, http.StatusOK, p.st)
}

type mgmtFixture struct {
	s      *Server
	c      *mgmtCluster
	peers  map[string]*httptest.Server
	status map[string]*peerStatus
	clock  *time.Time
	mu     sync.Mutex
}

func newMgmtFixture(t *testing.T) *mgmtFixture {
	t.Helper()
	_, fc := newTestServer(t)
	f := &mgmtFixture{peers: map[string]*httptest.Server{}, status: map[string]*peerStatus{}}
	now := fixedNow
	f.clock = &now
	st := cluster.Status{ID: "server-1", Role: "leader", LeaderID: "server-1", Term: 4, AppliedIndex: 1000, CommitIndex: 1000, LastIndex: 1001, Version: "1.0"}
	st.Peers = append(st.Peers, cluster.Peer{ID: "server-1", APIURL: "http://127.0.0.1:1", Version: "1.0", CommandVersion: 2, Voter: true, Leader: true, Gossip: "alive"})
	for i, id := range []string{"server-2", "server-3"} {
		ps := &peerStatus{st: cluster.Status{ID: id, Role: "follower", LeaderID: "server-1", Term: 4, AppliedIndex: 998 - uint64(i), CommitIndex: 1000, LastIndex: 1000, Version: "1.0"}}
		srv := httptest.NewServer(ps)
		t.Cleanup(srv.Close)
		f.peers[id], f.status[id] = srv, ps
		st.Peers = append(st.Peers, cluster.Peer{ID: id, APIURL: srv.URL, Version: "1.0", CommandVersion: 2, Voter: true, Gossip: "alive"})
	}
	f.c = &mgmtCluster{fakeCluster: fc, st: st}
	f.s = New(Config{Cluster: f.c, Version: "test", Now: func() time.Time {
		f.mu.Lock()
		defer f.mu.Unlock()
		return *f.clock
	}})
	return f
}

func (f *mgmtFixture) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	*f.clock = f.clock.Add(d)
}

// metrics calls listManagementServersMetrics as the root admin and returns
// the rows by name, and the raw body.
func (f *mgmtFixture) metrics(t *testing.T, extra ...string) (map[string]map[string]any, string) {
	t.Helper()
	params := map[string]string{"command": "listManagementServersMetrics"}
	for i := 0; i+1 < len(extra); i += 2 {
		params[extra[i]] = extra[i+1]
	}
	rec := call(t, f.s, params)
	if rec.Code != http.StatusOK {
		t.Fatalf("%v: %d %s", params, rec.Code, rec.Body.String())
	}
	raw := rec.Body.String()
	body := decode(t, rec, "listmanagementserversmetricsresponse")
	rows := map[string]map[string]any{}
	for _, it := range catItems(body, "managementserver") {
		rows[it["name"].(string)] = it
	}
	return rows, raw
}

func TestListManagementServersMetrics(t *testing.T) {
	f := newMgmtFixture(t)
	rows, raw := f.metrics(t)
	if len(rows) != 3 {
		t.Fatalf("want 3 servers, got %v", rows)
	}
	want := map[string]map[string]any{
		"server-1": {"state": "Up", "raftrole": "leader", "indexsource": "self", "appliedindex": float64(1000), "commitindex": float64(1000), "lastindex": float64(1001), "lag": float64(0), "term": float64(4)},
		"server-2": {"state": "Up", "raftrole": "follower", "indexsource": "status", "appliedindex": float64(998), "lag": float64(2), "leaderid": "server-1"},
		"server-3": {"state": "Up", "raftrole": "follower", "indexsource": "status", "appliedindex": float64(997), "lag": float64(3)},
	}
	for name, fields := range want {
		for k, v := range fields {
			if got := rows[name][k]; got != v {
				t.Errorf("%s %s = %v, want %v", name, k, got, v)
			}
		}
		row := rows[name]
		if row["id"] != mgmtServerID(name) || row["version"] != "1.0" || row["commandversion"] != float64(2) || row["voter"] != true {
			t.Errorf("%s: identity fields wrong: %v", name, row)
		}
		if row["clusterleader"] != "server-1" || row["clusterterm"] != float64(4) || row["answeredby"] != "server-1" ||
			row["upgradesafe"] != true || row["upgradenext"] != "server-2" || row["clustercommandversion"] != float64(2) {
			t.Errorf("%s: cluster summary wrong: %v", name, row)
		}
		if row["lastcontact"] != FormatTime(fixedNow) || row["collectiontime"] != FormatTime(fixedNow) {
			t.Errorf("%s: lastcontact %v collectiontime %v, want both %s", name, row["lastcontact"], row["collectiontime"], FormatTime(fixedNow))
		}
		if _, ok := row["upgradereasons"]; ok {
			t.Errorf("%s: a safe verdict lists reasons: %v", name, row["upgradereasons"])
		}
	}
	if order := rows["server-1"]["upgradeorder"]; !reflect.DeepEqual(order, []any{"server-2", "server-3", "server-1"}) {
		t.Errorf("upgradeorder = %v", order)
	}
	if strings.Contains(raw, adminSecret) || strings.Contains(raw, adminKey) {
		t.Errorf("the answer carries the admin's keys: %s", raw)
	}

	// server-3 dies: gossip marks it dead and its address refuses.
	lastSeen := FormatTime(fixedNow)
	f.peers["server-3"].Close()
	f.c.setGossip("server-3", "dead")
	f.advance(10 * time.Second)
	rows, _ = f.metrics(t)
	dead := rows["server-3"]
	if dead["state"] != "Down" || dead["gossip"] != "dead" || dead["raftrole"] != "unknown" || dead["indexsource"] != "none" {
		t.Errorf("dead server: %v", dead)
	}
	if s, _ := dead["statuserror"].(string); !strings.Contains(s, "status of server-3") {
		t.Errorf("dead server's statuserror = %q, want why its status could not be read", s)
	}
	if _, ok := dead["appliedindex"]; ok {
		t.Errorf("dead server shows an applied index: %v", dead)
	}
	if dead["lastcontact"] != lastSeen {
		t.Errorf("dead server's lastcontact = %v, want its last answer %s", dead["lastcontact"], lastSeen)
	}
	if rows["server-2"]["lastcontact"] != FormatTime(fixedNow.Add(10*time.Second)) {
		t.Errorf("live server's lastcontact = %v, want the new call's time", rows["server-2"]["lastcontact"])
	}
	if rows["server-1"]["upgradesafe"] != false {
		t.Errorf("upgrade safe with a voter dead: %v", rows["server-1"])
	}
	reasons := strings.Join(toStrings(rows["server-2"]["upgradereasons"]), "\n")
	for _, want := range []string{"server-3 is dead in gossip", "2 of 3 voters alive", "could not read the applied index of server-3"} {
		if !strings.Contains(reasons, want) {
			t.Errorf("upgradereasons %q lack %q", reasons, want)
		}
	}

	// The verdict is the operator command's: the same function over the
	// same view and the indexes the servers reported.
	st := f.c.Status()
	op := ops.UpgradeCheck(st, ops.StatusMembers(st), map[string]uint64{"server-1": 1000, "server-2": 998})
	if !reflect.DeepEqual(toStrings(rows["server-1"]["upgradereasons"]), op.Reasons) {
		t.Errorf("reasons %v, upgrade-check says %v", rows["server-1"]["upgradereasons"], op.Reasons)
	}
}

func TestListManagementServersMetricsFollowerView(t *testing.T) {
	f := newMgmtFixture(t)
	// This server is a follower that is far behind; server-2 leads.
	f.c.mu.Lock()
	f.c.st.Role, f.c.st.LeaderID, f.c.st.AppliedIndex = "follower", "server-2", 100
	for i := range f.c.st.Peers {
		f.c.st.Peers[i].Leader = f.c.st.Peers[i].ID == "server-2"
	}
	f.c.mu.Unlock()
	f.status["server-2"].mu.Lock()
	f.status["server-2"].st.Role, f.status["server-2"].st.LeaderID, f.status["server-2"].st.AppliedIndex = "leader", "server-2", 1000
	f.status["server-2"].mu.Unlock()

	rows, _ := f.metrics(t)
	if rows["server-1"]["raftrole"] != "follower" || rows["server-2"]["raftrole"] != "leader" || rows["server-1"]["clusterleader"] != "server-2" {
		t.Errorf("roles: %v / %v", rows["server-1"], rows["server-2"])
	}
	if rows["server-1"]["lag"] != float64(900) || rows["server-3"]["lag"] != float64(3) {
		t.Errorf("lag: server-1 %v server-3 %v, want 900 and 3", rows["server-1"]["lag"], rows["server-3"]["lag"])
	}
	if rows["server-3"]["upgradesafe"] != false || !strings.Contains(strings.Join(toStrings(rows["server-3"]["upgradereasons"]), "\n"), "server-1 is catching up") {
		t.Errorf("a server 900 behind must block the upgrade: %v", rows["server-3"]["upgradereasons"])
	}
	if rows["server-1"]["upgradenext"] != "server-1" {
		t.Errorf("upgradenext = %v, want server-1 (followers first)", rows["server-1"]["upgradenext"])
	}
}

func TestListManagementServersMetricsParams(t *testing.T) {
	f := newMgmtFixture(t)
	rows, _ := f.metrics(t, "name", "server-2", "system", "true")
	if len(rows) != 1 || rows["server-2"] == nil {
		t.Fatalf("name filter: %v", rows)
	}
	rows, _ = f.metrics(t, "id", mgmtServerID("server-3"))
	if len(rows) != 1 || rows["server-3"] == nil {
		t.Fatalf("id filter: %v", rows)
	}
	rows, _ = f.metrics(t, "keyword", "VER-1")
	if len(rows) != 1 || rows["server-1"] == nil {
		t.Fatalf("keyword filter: %v", rows)
	}
	for _, tc := range []struct {
		params []string
		code   int
		text   string
	}{
		{[]string{"system", "maybe"}, 431, "system"},
		{[]string{"id", "not-a-uuid"}, 431, "id"},
		{[]string{"id", mgmtServerID("server-9")}, 431, "id"},
		{[]string{"page", "0", "pagesize", "1"}, 431, "page"},
	} {
		params := map[string]string{"command": "listManagementServersMetrics"}
		for i := 0; i+1 < len(tc.params); i += 2 {
			params[tc.params[i]] = tc.params[i+1]
		}
		rec := call(t, f.s, params)
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.text) {
			t.Errorf("%v: %d %s, want %d naming %s", tc.params, rec.Code, rec.Body.String(), tc.code, tc.text)
		}
	}
}

func TestListManagementServersAdditions(t *testing.T) {
	f := newMgmtFixture(t)
	body := must(t, f.s, map[string]string{"command": "listManagementServers"})
	var leaders []string
	for _, it := range catItems(body, "managementserver") {
		if it["commandversion"] != float64(2) || it["state"] != "Up" || it["serviceip"] != "127.0.0.1" {
			t.Errorf("server %v", it)
		}
		if it["raftrole"] == "leader" {
			leaders = append(leaders, it["name"].(string))
		}
	}
	if !reflect.DeepEqual(leaders, []string{"server-1"}) {
		t.Errorf("leaders %v", leaders)
	}
}

// TestManagementServerCommandsRootOnly: the cluster's layout is for root
// admins; a domain admin and a user are told (401, as CloudStack does) that the command is not there.
func TestManagementServerCommandsRootOnly(t *testing.T) {
	f := newIdentityFixture(t)
	for _, cmd := range []string{"listManagementServers", "listManagementServersMetrics"} {
		if rec := f.root.do(t, f.s, map[string]string{"command": cmd}); rec.Code != http.StatusOK {
			t.Errorf("root admin %s: %d %s", cmd, rec.Code, rec.Body.String())
		}
		for _, who := range []ident{f.dadmin, f.alice} {
			rec := who.do(t, f.s, map[string]string{"command": cmd})
			if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), notAvailable) {
				t.Errorf("%s %s: %d %s, want 401 saying it is not available", who.name, cmd, rec.Code, rec.Body.String())
			}
		}
	}
}
