package e2e

// The rolling upgrade: three servers of the "previous build" behind
// HAProxy are replaced one by one with the new build while the Go SDK
// keeps writing zones, listing them and running createTags jobs through
// HAProxy, and host agents of the previous build keep three hosts Up under
// VMs that are deployed, stopped and started through HAProxy
// (upgrade_vms_test.go). Agents are not upgraded here: they are upgraded
// separately, host by host, like servers.
//
// Which builds: the test builds this source twice into t.TempDir(): the
// previous build as version 1.0.0, and the new build as 1.1.0 with the
// stratus_cmdv2 tag, which raises fsm.CommandVersion to 2 and adds an
// operator call that commits a command of version 2
// (cmd/stratus/opserver_cmdv2.go). Building the commit before the change
// under test instead would need a git checkout and a second module
// download in CI, and would test whatever that commit happens to contain;
// two builds of this source are deterministic and still exercise what a
// rolling upgrade relies on: gossip of build and command versions,
// upgrade-check's order (the newest build counts as done), leadership
// transfer, a restart on the same data dir under another binary, HAProxy's
// /v1/ready check, and the version gate: the version 2 command is refused,
// naming the old servers, while any remains, and accepted once the last
// one is replaced, while ordinary commands (version 1) keep committing
// throughout. STRATUS_BIN only gates the test (make build must work); its
// version string is a commit hash, which says nothing about order.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/cloudstack-go/v2/cloudstack"
)

const (
	previousVersion  = "1.0.0"
	nextVersion      = "1.1.0"
	upgradeZonePfx   = "upg-zone-"
	upgradeWriteRate = 40 // zone creates per second
	upgradeJobRate   = 10 // createTags jobs per second
	upgradeReadRate  = 4  // full listZones per second
	upgradeProgress  = 15 // zones acknowledged after each replaced server is back
	upgradeLimit     = 120 * time.Second
)

// upgradeLoad is the steady mix of SDK calls through HAProxy.
type upgradeLoad struct {
	cs, csSync *cloudstack.CloudStackClient

	mu       sync.Mutex
	acked    map[string]string // zone name -> id ("" when confirmed by "already exists")
	ackedIDs []string          // zone ids, for the jobs
	failures []error
	retries  retryStats
	reads    int
	jobs     map[string]string // job id -> tag key
	jobsDone map[string]bool   // job id -> finished with success
	ackCount atomic.Int64
}

func (l *upgradeLoad) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures = append(l.failures, err)
}

// call runs f, retrying retriable errors as createZoneRetrying does: a
// call whose retries last longer than maxRetryStreak is a failure.
func (l *upgradeLoad) call(what string, f func() error) error {
	first, streak := time.Now(), 0
	for {
		err := f()
		if err == nil {
			return nil
		}
		ok, kind := retriable(err)
		if !ok {
			return fmt.Errorf("%s: %w", what, err)
		}
		streak++
		l.mu.Lock()
		l.retries.total++
		l.retries.byKind[kind]++
		if d := time.Since(first); streak > l.retries.longest || (streak == l.retries.longest && d > l.retries.longestFor) {
			l.retries.longest, l.retries.longestFor, l.retries.longestOnZone = streak, d, what
		}
		l.mu.Unlock()
		if time.Since(first) > maxRetryStreak {
			return fmt.Errorf("%s still fails after %s and %d attempts: %w", what, maxRetryStreak, streak, err)
		}
		time.Sleep(min(25*time.Millisecond<<min(streak, 5), 500*time.Millisecond)) // backoff, not a wait for a condition
	}
}

func (l *upgradeLoad) writer(ctx context.Context) {
	tick := time.NewTicker(time.Second / upgradeWriteRate)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		name := fmt.Sprintf("%s%05d", upgradeZonePfx, i)
		id, _, err := l.createZone(name)
		if err != nil {
			l.fail(err)
			continue
		}
		l.mu.Lock()
		l.acked[name] = id
		if id != "" {
			l.ackedIDs = append(l.ackedIDs, id)
		}
		l.mu.Unlock()
		l.ackCount.Add(1)
	}
}

// createZone is createZoneRetrying with the load's accounting.
func (l *upgradeLoad) createZone(name string) (id string, confirmed bool, err error) {
	attempt := 0
	err = l.call("createZone "+name, func() error {
		attempt++
		z, err := l.cs.Zone.CreateZone(l.cs.Zone.NewCreateZoneParams("8.8.8.8", "10.0.0.1", name, "Advanced"))
		if err == nil {
			if z.Id == "" || z.Name != name {
				return fmt.Errorf("createZone %s answered id=%q name=%q", name, z.Id, z.Name)
			}
			id = z.Id
			return nil
		}
		if attempt > 1 && csErrorCode(err) == 431 && strings.Contains(err.Error(), "already exists") {
			confirmed = true // an earlier attempt committed
			return nil
		}
		return err
	})
	return id, confirmed, err
}

func (l *upgradeLoad) reader(ctx context.Context) {
	tick := time.NewTicker(time.Second / upgradeReadRate)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		// Every zone acknowledged before the list starts must be listed:
		// reads through any server are consistent.
		l.mu.Lock()
		before := make([]string, 0, len(l.acked))
		for name := range l.acked {
			before = append(before, name)
		}
		l.mu.Unlock()
		var zones []*cloudstack.Zone
		if err := l.call("listZones", func() (err error) { zones, err = listAllZones(l.cs); return err }); err != nil {
			l.fail(err)
			continue
		}
		seen := map[string]bool{}
		for _, z := range zones {
			seen[z.Name] = true
		}
		for _, name := range before {
			if !seen[name] {
				l.fail(fmt.Errorf("listZones does not list acknowledged zone %s", name))
				break
			}
		}
		l.mu.Lock()
		l.reads++
		l.mu.Unlock()
	}
}

func (l *upgradeLoad) jobber(ctx context.Context) {
	tick := time.NewTicker(time.Second / upgradeJobRate)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		l.mu.Lock()
		var zoneID string
		if n := len(l.ackedIDs); n > 0 {
			zoneID = l.ackedIDs[n-1]
		}
		l.mu.Unlock()
		if zoneID == "" {
			continue
		}
		key := fmt.Sprintf("upg-%05d", i)
		var jobID string
		attempt := 0
		err := l.call("createTags "+key, func() error {
			attempt++
			r, err := l.csSync.Resourcetags.CreateTags(l.csSync.Resourcetags.NewCreateTagsParams([]string{zoneID}, "Zone", map[string]string{key: "v"}))
			if err != nil {
				return err
			}
			if r.JobID == "" {
				return fmt.Errorf("createTags %s answered no job id", key)
			}
			jobID = r.JobID
			return nil
		})
		if err != nil {
			l.fail(err)
			continue
		}
		l.mu.Lock()
		l.jobs[jobID] = key
		l.mu.Unlock()
		// Poll the job to its end; a job that is not done after the
		// hold is a failure too.
		deadline := time.Now().Add(maxRetryStreak)
		for {
			var res *cloudstack.QueryAsyncJobResultResponse
			err := l.call("queryAsyncJobResult "+jobID, func() (err error) {
				res, err = l.csSync.Asyncjob.QueryAsyncJobResult(l.csSync.Asyncjob.NewQueryAsyncJobResultParams(jobID))
				return err
			})
			if err != nil {
				l.fail(err)
				break
			}
			if res.Jobstatus == 1 {
				l.mu.Lock()
				l.jobsDone[jobID] = true
				l.mu.Unlock()
				break
			}
			if res.Jobstatus != 0 {
				l.fail(fmt.Errorf("job %s (createTags %s) ended with status %d: %s", jobID, key, res.Jobstatus, res.Jobresult))
				break
			}
			if time.Now().After(deadline) {
				l.fail(fmt.Errorf("job %s (createTags %s) not done within %s", jobID, key, maxRetryStreak))
				break
			}
			select {
			case <-ctx.Done():
				// Finished after the load stops: checked at the end.
				return
			case <-time.After(pollEvery):
			}
		}
	}
}

// buildStratus builds this source with the version string and tags.
func buildStratus(t *testing.T, name, version string, tags ...string) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("find the module root: %v (%s)", err, out)
	}
	bin := filepath.Join(t.TempDir(), name)
	start := time.Now()
	args := []string{"build", "-ldflags", "-X main.version=" + version, "-o", bin}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	cmd := exec.Command("go", append(args, "./cmd/stratus")...)
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(out)))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, b)
	}
	t.Logf("e2e: built %s (%s, tags %v) in %s", name, version, tags, time.Since(start).Round(time.Millisecond))
	return bin
}

// upgradeReport mirrors ops.UpgradeReport's JSON.
type upgradeReport struct {
	Safe          bool     `json:"safe"`
	Reasons       []string `json:"reasons"`
	LeaderID      string   `json:"leader_id"`
	Next          string   `json:"next"`
	Order         []string `json:"order"`
	Upgraded      []string `json:"upgraded"`
	NewestVersion string   `json:"newest_version"`
	CmdVersion    uint16   `json:"cluster_command_version"`
	Servers       []struct {
		ID      string `json:"id"`
		Version string `json:"version"`
		Leader  bool   `json:"leader"`
	} `json:"servers"`
}

// operatorCLI runs `stratus operator -address <lb> args...` with the new
// build and the admin keys; it returns stdout and the exit error.
func operatorCLI(bin, address string, k adminKeys, args ...string) (string, string, error) {
	cmd := exec.Command(bin, append([]string{"operator", "-address", address}, args...)...)
	cmd.Env = append(os.Environ(), "STRATUS_API_KEY="+k.APIKey, "STRATUS_SECRET_KEY="+k.SecretKey)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// waitSafe runs upgrade-check until it says safe; it also checks that
// the exit status agrees with the report.
func waitSafe(ctx context.Context, bin, address string, k adminKeys) (upgradeReport, error) {
	last := "no answer"
	for {
		out, errOut, err := operatorCLI(bin, address, k, "upgrade-check", "-json")
		var r upgradeReport
		if jerr := json.Unmarshal([]byte(out), &r); jerr == nil {
			var exit *exec.ExitError
			switch {
			case r.Safe && err != nil:
				return r, fmt.Errorf("upgrade-check says safe but exited with %v", err)
			case !r.Safe && !(errors.As(err, &exit) && exit.ExitCode() == 1):
				return r, fmt.Errorf("upgrade-check says not safe but exited with %v", err)
			case r.Safe:
				return r, nil
			}
			last = strings.Join(r.Reasons, "; ")
		} else {
			last = fmt.Sprintf("%v: %s %s", err, out, errOut)
		}
		select {
		case <-ctx.Done():
			return r, fmt.Errorf("upgrade-check never said safe: %s", last)
		case <-time.After(pollEvery):
		}
	}
}

func TestRollingUpgrade(t *testing.T) {
	requireE2E(t)
	oldBin := buildStratus(t, "stratus-previous", previousVersion)
	newBin := buildStratus(t, "stratus-next", nextVersion, "stratus_cmdv2")
	newVersion := nextVersion
	c := newCluster(t, oldBin, 3)
	c.startAll()
	lb := c.startHAProxy()
	lbBase := "http://" + lb.addr
	hc := &http.Client{Transport: gatewayTransport{base: newTransport()}, Timeout: 30 * time.Second}
	l := &upgradeLoad{
		cs:     newSDK(lb.apiURL(), c.keys),
		csSync: cloudstack.NewClient(lb.apiURL(), c.keys.APIKey, c.keys.SecretKey, false, cloudstack.WithHTTPClient(hc)),
		acked:  map[string]string{}, jobs: map[string]string{}, jobsDone: map[string]bool{},
		retries: retryStats{byKind: map[string]int{}},
	}
	// Agents of the previous build serve the VM zone throughout; they are
	// not upgraded in this test (upgrade_vms_test.go).
	vms := startUpgradeVMs(t, c, lb, oldBin, l)
	baseline := listZoneNames(t, newSDK(c.servers[0].apiURL(), c.keys), c.servers[0].id)

	ctx, cancel := context.WithTimeout(context.Background(), upgradeLimit)
	defer cancel()
	versionsAre := func(want map[string]string) error {
		for _, s := range c.servers {
			st, err := c.probe.Get(s.baseURL() + "/v1/status")
			if err != nil {
				return err
			}
			var body struct {
				Version string `json:"version"`
			}
			err = json.NewDecoder(st.Body).Decode(&body)
			st.Body.Close()
			if err != nil {
				return err
			}
			if body.Version != want[s.id] {
				return fmt.Errorf("%s runs %q, want %q", s.id, body.Version, want[s.id])
			}
		}
		return nil
	}
	running := map[string]string{}
	for _, s := range c.servers {
		running[s.id] = previousVersion
	}
	if err := versionsAre(running); err != nil {
		t.Fatal(err)
	}

	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	load := []func(context.Context){l.writer, l.reader, l.jobber, vms.watchHosts, vms.sampler.run}
	for range upgVMWorkers {
		load = append(load, vms.worker)
	}
	for _, f := range load {
		wg.Add(1)
		go func() { defer wg.Done(); f(loadCtx) }()
	}
	defer func() { stopLoad(); wg.Wait() }()
	waitAcked := func(n int64) {
		t.Helper()
		for l.ackCount.Load() < n {
			select {
			case <-ctx.Done():
				t.Fatalf("only %d of %d zones acknowledged: %v (failures: %v)", l.ackCount.Load(), n, ctx.Err(), l.failures)
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	waitAcked(upgradeProgress)
	vms.waitJobs(t, ctx, upgVMProgress)

	byID := map[string]*server{}
	for _, s := range c.servers {
		byID[s.id] = s
	}
	replaced := map[string]bool{}
	start := time.Now()
	for step := 1; step <= len(c.servers); step++ {
		r, err := waitSafe(ctx, newBin, lbBase, c.keys)
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		s := byID[r.Next]
		if s == nil || replaced[s.id] {
			t.Fatalf("step %d: upgrade-check names %q next (order %v, upgraded %v); replaced so far %v", step, r.Next, r.Order, r.Upgraded, replaced)
		}
		if len(r.Upgraded) != len(replaced) {
			t.Fatalf("step %d: upgrade-check counts %v as upgraded, want %v", step, r.Upgraded, replaced)
		}
		if len(r.Order) > 1 && r.Order[len(r.Order)-1] != r.LeaderID {
			t.Fatalf("step %d: order %v does not end with the leader %s", step, r.Order, r.LeaderID)
		}
		leader, _, err := c.findLeader(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if leader == s {
			out, errOut, err := operatorCLI(newBin, lbBase, c.keys, "raft", "transfer-leadership")
			if err != nil {
				t.Fatalf("step %d: transfer-leadership: %v\n%s%s", step, err, out, errOut)
			}
			if !strings.Contains(out, "leadership moved from "+s.id+" to ") {
				t.Fatalf("step %d: transfer-leadership printed %q", step, out)
			}
			nl, _, err := c.findLeader(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if nl == s || !strings.Contains(out, " to "+nl.id+" ") {
				t.Fatalf("step %d: after the transfer %s leads; the CLI said %q", step, nl.id, out)
			}
			t.Logf("e2e: step %d: %s", step, strings.TrimSpace(out))
		}
		stopAt := time.Now()
		if err := s.stop(); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		if err := s.start(newBin); err != nil {
			t.Fatal(err)
		}
		if err := c.waitReady(ctx, s); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		if err := lb.waitUp(ctx, c.probe, len(c.servers)); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		replaced[s.id], running[s.id] = true, newVersion
		t.Logf("e2e: step %d: %s replaced and back in rotation in %s (%d zones acknowledged so far)",
			step, s.id, time.Since(stopAt).Round(time.Millisecond), l.ackCount.Load())
		if step < len(c.servers) {
			checkGateHolds(t, newBin, s, c, replaced)
		}
		waitAcked(l.ackCount.Load() + upgradeProgress)
		vms.waitJobs(t, ctx, vms.jobsFinished()+upgVMProgress)
	}
	c.bin = newBin
	if err := versionsAre(running); err != nil {
		t.Fatal(err)
	}
	// Every voter runs command version 2 now: the probe commits (once
	// gossip has told the asked server about the last one replaced), and
	// upgrade-check reports the cluster at version 2.
	var r upgradeReport
	var err error
	for {
		out, errOut, perr := operatorCLI(newBin, c.servers[0].baseURL(), c.keys, "debug", "command-version-probe")
		if perr == nil {
			if !strings.Contains(out, "committed a command of version 2") {
				t.Fatalf("command-version-probe printed %q", out)
			}
			if r, err = waitSafe(ctx, newBin, lbBase, c.keys); err != nil {
				t.Fatal(err)
			}
			if r.CmdVersion == 2 {
				t.Logf("e2e: after the last server: %s", strings.TrimSpace(out))
				break
			}
		} else if !strings.Contains(errOut, "this needs every server at command version 2") {
			t.Fatalf("command-version-probe after the upgrade: %v: %s", perr, errOut)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the version 2 command is still refused after the upgrade: %s (upgrade-check: cluster command version %d)", errOut, r.CmdVersion)
		case <-time.After(pollEvery):
		}
	}
	if r.NewestVersion != newVersion || len(r.Upgraded) != 0 || len(r.Order) != len(c.servers) {
		t.Fatalf("after the upgrade upgrade-check reports newest %q, upgraded %v, order %v", r.NewestVersion, r.Upgraded, r.Order)
	}
	upgradeTook := time.Since(start)

	// A transfer to a named server, asked of a follower: the follower
	// forwards it to the leader.
	leader, _, err := c.findLeader(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var fs []*server
	for _, s := range c.servers {
		if s != leader {
			fs = append(fs, s)
		}
	}
	out, errOut, err := operatorCLI(newBin, fs[0].baseURL(), c.keys, "raft", "transfer-leadership", "-to", fs[1].id)
	if err != nil || !strings.Contains(out, "leadership moved from "+leader.id+" to "+fs[1].id+" ") {
		t.Fatalf("transfer-leadership -to %s through %s: %v: %q %s", fs[1].id, fs[0].id, err, out, errOut)
	}
	if nl, _, err := c.findLeader(ctx, nil); err != nil || nl != fs[1] {
		t.Fatalf("after transfer-leadership -to %s: leader %v (%v)", fs[1].id, nl, err)
	}
	t.Logf("e2e: through %s: %s", fs[0].id, strings.TrimSpace(out))
	stopLoad()
	wg.Wait()

	// Jobs still running when the load stopped must finish too.
	for id, key := range l.jobs {
		if l.jobsDone[id] {
			continue
		}
		for {
			res, err := l.csSync.Asyncjob.QueryAsyncJobResult(l.csSync.Asyncjob.NewQueryAsyncJobResultParams(id))
			if err != nil {
				t.Fatalf("job %s (createTags %s): %v", id, key, err)
			}
			if res.Jobstatus == 1 {
				l.jobsDone[id] = true
				break
			}
			if res.Jobstatus != 0 {
				t.Fatalf("job %s (createTags %s) ended with status %d: %s", id, key, res.Jobstatus, res.Jobresult)
			}
			select {
			case <-ctx.Done():
				t.Fatalf("job %s (createTags %s) never finished", id, key)
			case <-time.After(pollEvery):
			}
		}
	}
	vms.finish(t, ctx, c.probe)
	t.Logf("e2e: upgrade of %d servers took %s; %d zones acknowledged, %d full reads, %d jobs done; %s",
		len(c.servers), upgradeTook.Round(time.Millisecond), len(l.acked), l.reads, len(l.jobsDone), &l.retries)
	for i, err := range l.failures {
		if i == 10 {
			t.Errorf("... %d failures in all", len(l.failures))
			break
		}
		t.Errorf("request failed during the upgrade: %v", err)
	}
	if len(l.jobs) == 0 || l.reads == 0 {
		t.Errorf("the load did too little: %d jobs, %d reads", len(l.jobs), l.reads)
	}
	c.checkNoCrash()
	verifyZonesEverywhere(t, c, l.acked, baseline, "after the rolling upgrade")
}

// checkGateHolds asks upgraded server s to commit a version 2 command
// while some servers still run the previous build: it must be refused
// with a message that names each of them.
func checkGateHolds(t *testing.T, bin string, s *server, c *testCluster, replaced map[string]bool) {
	t.Helper()
	out, errOut, err := operatorCLI(bin, s.baseURL(), c.keys, "debug", "command-version-probe")
	if err == nil {
		t.Fatalf("a version 2 command committed while old servers remain: %s", out)
	}
	if !strings.Contains(errOut, "this needs every server at command version 2") || !strings.Contains(errOut, "error 530") {
		t.Fatalf("command-version-probe on %s: unexpected refusal: %v: %s", s.id, err, errOut)
	}
	for _, o := range c.servers {
		named := strings.Contains(errOut, o.id+" is at 1 (build "+previousVersion+")")
		if named == replaced[o.id] {
			t.Fatalf("command-version-probe on %s: refusal %q names %s: %v, but replaced: %v", s.id, errOut, o.id, named, replaced[o.id])
		}
	}
	t.Logf("e2e: gate on %s: %s", s.id, strings.TrimSpace(errOut))
}
