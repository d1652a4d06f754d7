package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/cloudstack-go/v2/cloudstack"

	"github.com/stratus-cloud/stratus/ops"
)

// membershipDeadThreshold is the servers' -dead-server-threshold in the
// membership test: short, so the test stays well under a minute.
const membershipDeadThreshold = 3 * time.Second

// opPeers mirrors `stratus operator raft list-peers -json`.
type opPeers struct {
	Server   string `json:"server"`
	LeaderID string `json:"leader_id"`
	Peers    []struct {
		ID     string `json:"id"`
		APIURL string `json:"api_url"`
		Voter  bool   `json:"voter"`
		Leader bool   `json:"leader"`
		Gossip string `json:"gossip"`
	} `json:"peers"`
}

func (p *opPeers) voters() []string {
	var out []string
	for _, x := range p.Peers {
		if x.Voter {
			out = append(out, x.ID)
		}
	}
	return out
}

// operatorCLI runs `stratus operator -address <s> args...` as an admin and
// returns stdout, stderr and the run error.
func (c *testCluster) operatorCLI(ctx context.Context, s *server, args ...string) (string, string, error) {
	cmd := exec.CommandContext(ctx, c.bin, append([]string{"operator", "-address", s.baseURL()}, args...)...)
	cmd.Env = []string{"STRATUS_API_KEY=" + c.keys.APIKey, "STRATUS_SECRET_KEY=" + c.keys.SecretKey}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// listPeersCLI is `stratus operator raft list-peers -json` through s.
func (c *testCluster) listPeersCLI(ctx context.Context, s *server) (*opPeers, error) {
	out, stderr, err := c.operatorCLI(ctx, s, "raft", "list-peers", "-json")
	if err != nil {
		return nil, fmt.Errorf("list-peers through %s: %w: %s", s.id, err, strings.TrimSpace(stderr))
	}
	var p opPeers
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		return nil, fmt.Errorf("list-peers -json through %s: %w: %q", s.id, err, out)
	}
	return &p, nil
}

// addServer lays out one more server with a fresh data dir that joins
// the running ones (no -bootstrap-expect); start it with start.
func (c *testCluster) addServer(extra ...string) *server {
	c.t.Helper()
	ports, err := ops.FreeLoopbackPorts(3)
	if err != nil {
		c.t.Fatal(err)
	}
	s := &server{
		id:     fmt.Sprintf("server-%d", len(c.servers)+1),
		api:    fmt.Sprintf("127.0.0.1:%d", ports[0]),
		raft:   fmt.Sprintf("127.0.0.1:%d", ports[1]),
		gossip: fmt.Sprintf("127.0.0.1:%d", ports[2]),
	}
	s.dataDir = filepath.Join(c.dir, s.id)
	var join []string
	for _, o := range c.servers {
		join = append(join, o.gossip)
	}
	s.proc = &proc{name: s.id, logPath: filepath.Join(c.dir, s.id+".log"),
		env: []string{"STRATUS_CLUSTER_SECRET=" + testSecret},
		args: append([]string{"server", "-node-id", s.id, "-data-dir", s.dataDir,
			"-bind", s.api, "-raft-bind", s.raft, "-gossip-bind", s.gossip,
			"-join", strings.Join(join, ","), "-log-level", "info"}, extra...)}
	c.servers = append(c.servers, s) // the cleanup kills it with the others
	return s
}

// membershipWriter creates zones through HAProxy until stop is closed;
// every create must succeed (retriable errors retried within the SDK
// helper's 30 s streak).
type membershipWriter struct {
	mu     sync.Mutex
	acked  int
	err    error
	st     *retryStats
	doneCh chan struct{}
}

func startMembershipWriter(cs *cloudstack.CloudStackClient, stop <-chan struct{}) *membershipWriter {
	w := &membershipWriter{st: &retryStats{byKind: map[string]int{}}, doneCh: make(chan struct{})}
	go func() {
		defer close(w.doneCh)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_, _, err := createZoneRetrying(cs, fmt.Sprintf("e2e-members-%04d", i), w.st)
			w.mu.Lock()
			if err != nil {
				w.err = err
				w.mu.Unlock()
				return
			}
			w.acked++
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *membershipWriter) progress() (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.acked, w.err
}

// waitWrites waits until the writer has n more acknowledged zones than
// now, so each phase of the test is shown to take writes.
func (w *membershipWriter) waitWrites(t *testing.T, ctx context.Context, n int, phase string) {
	t.Helper()
	base, _ := w.progress()
	for {
		acked, err := w.progress()
		if err != nil {
			t.Fatalf("%s: a write through HAProxy failed: %v", phase, err)
		}
		if acked >= base+n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: only %d of %d writes acknowledged: %v", phase, acked-base, n, ctx.Err())
		case <-time.After(pollEvery):
		}
	}
}

// TestMembershipReplaceDeadServer kills one of three servers for good,
// starts a new server on a fresh data dir that joins, and checks that
// autopilot removes the dead one only once the replacement is a voter,
// while writes through HAProxy go on; then that remove-peer refuses the
// leader and going below the minimum quorum.
func TestMembershipReplaceDeadServer(t *testing.T) {
	bin := requireE2E(t)
	c := newCluster(t, bin, 3)
	for _, s := range c.servers {
		s.args = append(s.args, "-dead-server-threshold", membershipDeadThreshold.String())
	}
	c.startAll()
	lb := c.startHAProxy()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	stop := make(chan struct{})
	w := startMembershipWriter(newSDK(lb.apiURL(), c.keys), stop)
	defer func() { close(stop); <-w.doneCh }()
	w.waitWrites(t, ctx, 10, "before the kill")

	leader := c.leader()
	var victim *server
	for _, s := range c.servers {
		if s != leader {
			victim = s
			break
		}
	}
	victim.kill9()
	killedAt := time.Now()
	t.Logf("e2e: killed %s for good (leader %s)", victim.id, leader.id)

	// Gossip on the leader reports it gone; long past the threshold it is
	// still a voter, as only two voters would be left.
	waitForCond(t, ctx, "the leader's gossip to report "+victim.id+" gone", func() error {
		st, err := c.status(leader)
		if err != nil {
			return err
		}
		for _, p := range st.Peers {
			if p.ID == victim.id && p.Gossip == "alive" {
				return fmt.Errorf("%s is %s", p.ID, p.Gossip)
			}
		}
		return nil
	})
	for hold := time.Now().Add(2 * membershipDeadThreshold); time.Now().Before(hold); time.Sleep(250 * time.Millisecond) {
		p, err := c.listPeersCLI(ctx, leader)
		if err != nil {
			t.Fatal(err)
		}
		if v := p.voters(); len(v) != 3 || !containsID(v, victim.id) {
			t.Fatalf("without a replacement the voters are %v; want all three, %s included", v, victim.id)
		}
	}
	w.waitWrites(t, ctx, 10, "with one server dead")

	repl := c.addServer("-dead-server-threshold", membershipDeadThreshold.String())
	if err := repl.start(c.bin); err != nil {
		t.Fatal(err)
	}
	if err := c.waitReady(ctx, repl); err != nil { // a member, caught up
		t.Fatal(err)
	}
	t.Logf("e2e: %s joined and is ready %s after the kill", repl.id, time.Since(killedAt).Round(time.Millisecond))

	var final *opPeers
	waitForCond(t, ctx, victim.id+" removed by autopilot", func() error {
		p, err := c.listPeersCLI(ctx, repl)
		if err != nil {
			return err
		}
		v := p.voters()
		if len(v) != 3 || containsID(v, victim.id) || !containsID(v, repl.id) {
			return fmt.Errorf("voters %v", v)
		}
		final = p
		return nil
	})
	t.Logf("e2e: autopilot removed %s %s after the kill; voters %v, leader %s", victim.id,
		time.Since(killedAt).Round(time.Millisecond), final.voters(), final.LeaderID)
	w.waitWrites(t, ctx, 10, "after the removal")

	// The removal is in the admin's events.
	evs, err := listEventsOfType(newSDK(lb.apiURL(), c.keys), "SERVER.REMOVE")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range evs {
		found = found || (e.Type == "SERVER.REMOVE" && strings.Contains(e.Description, victim.id))
	}
	if !found {
		t.Errorf("no SERVER.REMOVE event names %s", victim.id)
	}

	// remove-peer refusals, through a server that is not the leader.
	var follower *server
	for _, s := range c.servers {
		if s != victim && s.id != final.LeaderID {
			follower = s
			break
		}
	}
	refusals := []struct {
		id, want string
	}{
		{final.LeaderID, "transfer leadership first"},
		{follower.id, "fewer voters than the minimum quorum"},
		{victim.id, "no such server"},
	}
	for _, r := range refusals {
		out, stderr, err := c.operatorCLI(ctx, follower, "raft", "remove-peer", "-id", r.id)
		if err == nil || !strings.Contains(stderr, r.want) {
			t.Errorf("remove-peer -id %s: err=%v stdout=%q stderr=%q; want a failure saying %q", r.id, err, out, stderr, r.want)
		} else {
			t.Logf("e2e: remove-peer -id %s refused: %s", r.id, strings.TrimSpace(stderr))
		}
	}
	p, err := c.listPeersCLI(ctx, follower)
	if err != nil {
		t.Fatal(err)
	}
	if v := p.voters(); len(v) != 3 {
		t.Errorf("after the refusals the voters are %v, want three", v)
	}

	w.waitWrites(t, ctx, 5, "at the end")
	acked, _ := w.progress()
	t.Logf("e2e: %d zones written through HAProxy; %s", acked, w.st)
	c.checkNoCrash()
}

func containsID(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// waitForCond polls cond until it returns nil or ctx ends.
func waitForCond(t *testing.T, ctx context.Context, what string, cond func() error) {
	t.Helper()
	for {
		err := cond()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v (last: %v)", what, ctx.Err(), err)
		case <-time.After(pollEvery):
		}
	}
}

// listEventsOfType lists the events of one type the admin sees.
func listEventsOfType(cs *cloudstack.CloudStackClient, typ string) ([]*cloudstack.Event, error) {
	p := cs.Event.NewListEventsParams()
	p.SetListall(true)
	p.SetType(typ)
	p.SetPage(1)
	p.SetPagesize(500)
	resp, err := cs.Event.ListEvents(p)
	if err != nil {
		return nil, fmt.Errorf("listEvents: %w", err)
	}
	return resp.Events, nil
}
