package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/cloudstack-go/v2/cloudstack"
)

// The failover run: zones are created through HAProxy; after killAt of
// them the leader is killed with SIGKILL; after restartAfter more it is
// restarted on its data dir. Writing goes on until maxZones (or softLimit)
// and at least minAfterRestart zones after the restarted server is ready.
const (
	zonePrefix      = "e2e-zone-"
	killAt          = 50
	restartAfter    = 100
	maxZones        = 300
	minAfterRestart = 20
	softLimit       = 60 * time.Second
	hardLimit       = 150 * time.Second
	maxRetryStreak  = 30 * time.Second // one create may retry this long
)

// retryStats records the retriable errors the client absorbed.
type retryStats struct {
	total         int
	byKind        map[string]int
	longest       int // consecutive retriable errors of one create
	longestFor    time.Duration
	longestOnZone string
}

func (s *retryStats) String() string {
	kinds := make([]string, 0, len(s.byKind))
	for k, n := range s.byKind {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(kinds)
	return fmt.Sprintf("%d retriable errors [%s], longest retry streak %d errors over %s (zone %s)",
		s.total, strings.Join(kinds, " "), s.longest, s.longestFor.Round(time.Millisecond), s.longestOnZone)
}

// createZoneRetrying creates the zone, retrying retriable errors with a
// small backoff. It returns the zone id, or "" with confirmed=true when a
// retry found the zone already there (an earlier attempt committed).
func createZoneRetrying(cs *cloudstack.CloudStackClient, name string, st *retryStats) (id string, confirmed bool, err error) {
	first := time.Now()
	streak := 0
	for attempt := 1; ; attempt++ {
		z, err := cs.Zone.CreateZone(cs.Zone.NewCreateZoneParams("8.8.8.8", "10.0.0.1", name, "Advanced"))
		if err == nil {
			if z.Id == "" || z.Name != name {
				return "", false, fmt.Errorf("createZone %s answered id=%q name=%q", name, z.Id, z.Name)
			}
			return z.Id, false, nil
		}
		if attempt > 1 && csErrorCode(err) == 431 && strings.Contains(err.Error(), "already exists") {
			return "", true, nil
		}
		ok, kind := retriable(err)
		if !ok {
			return "", false, fmt.Errorf("createZone %s, attempt %d: %w", name, attempt, err)
		}
		st.total++
		st.byKind[kind]++
		streak++
		if d := time.Since(first); streak > st.longest || (streak == st.longest && d > st.longestFor) {
			st.longest, st.longestFor, st.longestOnZone = streak, d, name
		}
		if time.Since(first) > maxRetryStreak {
			return "", false, fmt.Errorf("createZone %s still fails after %s and %d attempts: %w", name, maxRetryStreak, attempt, err)
		}
		time.Sleep(min(25*time.Millisecond<<min(streak, 5), 500*time.Millisecond))
	}
}

// chaosResult is what the chaos goroutine did.
type chaosResult struct {
	err                    error
	killed, newLeader      string
	oldTerm, newTerm       uint64
	electedIn, readyIn     time.Duration
	ackedAtKill            int64
	ackedAtRestart         int64
	ackedAtRestartedReady  int64
	killedAt, restartReady time.Time
}

// runChaos kills the leader after killAt acknowledged zones, waits for a
// new leader, restarts the killed server after restartAfter more zones and
// waits until it is ready and back in HAProxy's rotation.
func runChaos(ctx context.Context, c *testCluster, acked *atomic.Int64) (r chaosResult) {
	waitAcked := func(n int64) error {
		for acked.Load() < n {
			select {
			case <-ctx.Done():
				return fmt.Errorf("only %d of %d zones acknowledged: %w", acked.Load(), n, ctx.Err())
			case <-time.After(5 * time.Millisecond):
			}
		}
		return nil
	}
	if r.err = waitAcked(killAt); r.err != nil {
		return r
	}
	leader, term, err := c.findLeader(ctx, nil)
	if err != nil {
		r.err = err
		return r
	}
	r.killed, r.oldTerm = leader.id, term
	leader.kill9()
	r.killedAt, r.ackedAtKill = time.Now(), acked.Load()

	var others []*server
	for _, s := range c.servers {
		if s != leader {
			others = append(others, s)
		}
	}
	for {
		nl, nt, err := c.findLeader(ctx, others)
		if err != nil {
			r.err = fmt.Errorf("after killing %s: %w", leader.id, err)
			return r
		}
		if nt > r.oldTerm {
			r.newLeader, r.newTerm, r.electedIn = nl.id, nt, time.Since(r.killedAt)
			break
		}
		// A survivor may still report the old term for a moment.
		time.Sleep(pollEvery)
	}

	if r.err = waitAcked(r.ackedAtKill + restartAfter); r.err != nil {
		return r
	}
	r.ackedAtRestart = acked.Load()
	restartAt := time.Now()
	if r.err = leader.start(c.bin); r.err != nil {
		return r
	}
	if r.err = c.waitReady(ctx, leader); r.err != nil {
		return r
	}
	if r.err = c.haproxy.waitUp(ctx, c.probe, len(c.servers)); r.err != nil {
		return r
	}
	r.restartReady, r.readyIn, r.ackedAtRestartedReady = time.Now(), time.Since(restartAt), acked.Load()
	return r
}

// TestZonesSurviveLeaderKillBehindHAProxy writes zones through HAProxy
// with the Go SDK while the leader is killed with SIGKILL and later
// restarted, then checks on every server, and again after a full restart
// of the cluster, that every acknowledged zone exists exactly once.
func TestZonesSurviveLeaderKillBehindHAProxy(t *testing.T) {
	bin := requireE2E(t)
	c := newCluster(t, bin, 3)
	c.startAll()
	lb := c.startHAProxy()
	cs := newSDK(lb.apiURL(), c.keys)

	baseline := listZoneNames(t, newSDK(c.servers[0].apiURL(), c.keys), c.servers[0].id)
	for name := range baseline {
		if strings.HasPrefix(name, zonePrefix) {
			t.Fatalf("a fresh cluster already holds zone %q", name)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), hardLimit)
	defer cancel()
	var acked atomic.Int64
	chaosCh := make(chan chaosResult, 1)
	go func() { chaosCh <- runChaos(ctx, c, &acked) }()
	defer func() {
		cancel()
		<-chaosCh // the chaos goroutine must not outlive the test
	}()

	st := &retryStats{byKind: map[string]int{}}
	want := map[string]string{} // name -> id ("" when confirmed by "already exists")
	confirmed := 0
	start := time.Now()
	var chaos *chaosResult
	for i := 0; ; i++ {
		if chaos == nil {
			select {
			case r := <-chaosCh:
				chaosCh <- r // keep it for the deferred receive
				if r.err != nil {
					t.Fatalf("chaos: %v", r.err)
				}
				chaos = &r
			default:
			}
		}
		if chaos != nil && int64(i) >= chaos.ackedAtRestartedReady+minAfterRestart &&
			(i >= maxZones || time.Since(start) > softLimit) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the leader kill and restart did not finish within %s (%d zones written): %v", hardLimit, i, ctx.Err())
		}
		name := fmt.Sprintf("%s%04d", zonePrefix, i)
		id, byExists, err := createZoneRetrying(cs, name, st)
		if err != nil {
			t.Fatalf("after %d zones: %v", i, err)
		}
		if byExists {
			confirmed++
		}
		want[name] = id
		acked.Add(1)
	}
	elapsed := time.Since(start)
	t.Logf("e2e: killed leader %s (term %d) after %d zones; %s elected (term %d) in %s; restarted %s after %d zones, ready in %s",
		chaos.killed, chaos.oldTerm, chaos.ackedAtKill, chaos.newLeader, chaos.newTerm, chaos.electedIn.Round(time.Millisecond),
		chaos.killed, chaos.ackedAtRestart, chaos.readyIn.Round(time.Millisecond))
	t.Logf("e2e: %d zones acknowledged in %s (%d confirmed by \"already exists\" on retry); %s",
		len(want), elapsed.Round(time.Millisecond), confirmed, st)
	if chaos.ackedAtRestart <= chaos.ackedAtKill {
		t.Errorf("no zone was acknowledged while %s was down", chaos.killed)
	}
	c.checkNoCrash()

	verifyZonesEverywhere(t, c, want, baseline, "after failover")

	// A full stop and start must keep every zone.
	c.stopAll()
	c.startAll()
	upCtx, upCancel := context.WithTimeout(context.Background(), readyTimeout)
	defer upCancel()
	if err := lb.waitUp(upCtx, c.probe, len(c.servers)); err != nil {
		t.Fatal(err)
	}
	name := zonePrefix + "after-full-restart"
	id, _, err := createZoneRetrying(cs, name, st)
	if err != nil {
		t.Fatalf("write through HAProxy after a full restart: %v", err)
	}
	want[name] = id
	verifyZonesEverywhere(t, c, want, baseline, "after full restart")
	c.checkNoCrash()
}

// listZoneNames lists every zone of one server: name -> id.
func listZoneNames(t *testing.T, cs *cloudstack.CloudStackClient, who string) map[string]string {
	t.Helper()
	zones, err := listAllZones(cs)
	if err != nil {
		t.Fatalf("listZones on %s: %v", who, err)
	}
	out := map[string]string{}
	for _, z := range zones {
		out[z.Name] = z.Id
	}
	return out
}

// listAllZones pages through listZones with pagesize 500.
func listAllZones(cs *cloudstack.CloudStackClient) ([]*cloudstack.Zone, error) {
	const pageSize = 500
	var all []*cloudstack.Zone
	for page := 1; page <= 100; page++ {
		p := cs.Zone.NewListZonesParams()
		p.SetPage(page)
		p.SetPagesize(pageSize)
		r, err := cs.Zone.ListZones(p)
		if err != nil {
			return nil, fmt.Errorf("page %d: %w", page, err)
		}
		if len(r.Zones) > pageSize {
			return nil, fmt.Errorf("page %d holds %d zones, more than pagesize %d", page, len(r.Zones), pageSize)
		}
		all = append(all, r.Zones...)
		if len(all) >= r.Count || len(r.Zones) == 0 {
			if len(all) != r.Count {
				return nil, fmt.Errorf("listZones count says %d but the pages held %d zones", r.Count, len(all))
			}
			return all, nil
		}
	}
	return nil, fmt.Errorf("listZones did not end within 100 pages")
}

// verifyZonesEverywhere asks every server directly (consistent reads)
// for all zones and checks that each wanted zone is there exactly once,
// with the acknowledged id, that no other test zone exists, that the
// total is baseline + wanted, and that every server lists the same ids.
func verifyZonesEverywhere(t *testing.T, c *testCluster, want map[string]string, baseline map[string]string, phase string) {
	t.Helper()
	var ref map[string]string
	refID := ""
	for _, s := range c.servers {
		zones, err := listAllZones(newSDK(s.apiURL(), c.keys))
		if err != nil {
			t.Errorf("%s: listZones on %s: %v", phase, s.id, err)
			continue
		}
		seen := map[string]int{}
		ids := map[string]string{}
		for _, z := range zones {
			seen[z.Name]++
			ids[z.Name] = z.Id
		}
		bad := 0
		report := func(format string, args ...any) {
			if bad++; bad <= 10 {
				t.Errorf("%s: %s: "+format, append([]any{phase, s.id}, args...)...)
			}
		}
		for name, id := range want {
			switch {
			case seen[name] == 0:
				report("acknowledged zone %s is missing", name)
			case seen[name] > 1:
				report("zone %s is listed %d times", name, seen[name])
			case id != "" && ids[name] != id:
				report("zone %s has id %s, the create answered %s", name, ids[name], id)
			}
		}
		for name, n := range seen {
			_, wanted := want[name]
			_, before := baseline[name]
			if !wanted && !before {
				report("zone %s (x%d) was never acknowledged", name, n)
			}
		}
		if len(zones) != len(want)+len(baseline) {
			report("lists %d zones, want %d acknowledged + %d from before", len(zones), len(want), len(baseline))
		}
		if bad > 10 {
			t.Errorf("%s: %s: ... %d problems in all", phase, s.id, bad)
		}
		if ref == nil {
			ref, refID = ids, s.id
		} else {
			for name, id := range ids {
				if ref[name] != id {
					report("zone %s has id %s here but %q on %s", name, id, ref[name], refID)
				}
			}
		}
		if bad == 0 {
			t.Logf("e2e: %s: %s lists %d zones; all %d acknowledged ones exactly once", phase, s.id, len(zones), len(want))
		}
	}
}
