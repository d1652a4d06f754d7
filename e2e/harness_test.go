package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stratus-cloud/stratus/ops"
)

// The e2e tests run only when asked: they start real processes.
const (
	envE2E   = "STRATUS_E2E"   // 1 runs the end-to-end tests
	envBench = "STRATUS_BENCH" // 1 runs TestBenchmarks
	envBin   = "STRATUS_BIN"   // path to the built stratus binary

	envKeepLogs = "STRATUS_E2E_KEEP_LOGS" // a directory: a failed test's whole logs are copied there
)

// testSecret is the cluster secret of every test cluster (>= 16 chars).
const testSecret = "e2e-cluster-secret-0123456789abcdef"

// Timeouts for conditions the harness polls.
const (
	pollEvery      = 50 * time.Millisecond
	readyTimeout   = 45 * time.Second // a (re)started server joins, catches up, reports ready
	leaderTimeout  = 30 * time.Second // an election after a kill
	stopTimeout    = 20 * time.Second // SIGTERM: leadership transfer + shutdown
	logTailOnError = 200              // lines of each process log printed when a test fails
)

// requireE2E skips the test unless STRATUS_E2E=1 and returns the binary.
func requireE2E(t *testing.T) string {
	t.Helper()
	if os.Getenv(envE2E) != "1" {
		t.Skipf("end-to-end test: set %s=1 and %s=/path/to/stratus (or run make e2e)", envE2E, envBin)
	}
	return requireBin(t)
}

// requireBench skips the test unless STRATUS_BENCH=1 and returns the binary.
func requireBench(t *testing.T) string {
	t.Helper()
	if os.Getenv(envBench) != "1" {
		t.Skipf("benchmark: set %s=1 and %s=/path/to/stratus (or run make bench)", envBench, envBin)
	}
	return requireBin(t)
}

func requireBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv(envBin)
	if bin == "" {
		t.Fatalf("%s is not set: point it at the built binary (make build writes bin/stratus)", envBin)
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		t.Fatalf("resolve %s=%s: %v", envBin, bin, err)
	}
	if fi, err := os.Stat(abs); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("%s=%s is not an executable file (err=%v)", envBin, abs, err)
	}
	return abs
}

// proc is one child process with its log file.
type proc struct {
	name    string
	logPath string
	args    []string
	env     []string
	cred    *syscall.Credential // run as this user, if set (the HA partition test)
	nice    int                 // run at this nice value (through nice(1)), if set

	mu         sync.Mutex
	cmd        *exec.Cmd
	done       chan struct{} // closed when the current run exits
	waitErr    error         // exit status of the last run
	starts     int
	expectExit bool // set before we stop or kill it on purpose
}

func (p *proc) start(bin string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !p.exitedLocked() {
		return fmt.Errorf("%s is already running (pid %d)", p.name, p.cmd.Process.Pid)
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open log of %s: %w", p.name, err)
	}
	p.starts++
	fmt.Fprintf(logf, "=== e2e: start #%d of %s at %s: %s %s\n", p.starts, p.name,
		time.Now().Format(time.RFC3339Nano), bin, strings.Join(p.args, " "))
	cmd := exec.Command(bin, p.args...)
	if p.nice != 0 {
		// nice(1) execs the binary: same pid, and every thread it makes
		// inherits the nice value (renicing a running Go process would
		// reach only its first thread).
		cmd = exec.Command("nice", append([]string{"-n", strconv.Itoa(p.nice), bin}, p.args...)...)
	}
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// If the test binary dies, its children die with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: p.cred}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.waitErr, p.expectExit = cmd, done, nil, false
	go func() {
		err := cmd.Wait()
		_ = logf.Close()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

func (p *proc) exitedLocked() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// running reports whether the current run has not exited.
func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && !p.exitedLocked()
}

// crashed returns an error if the process exited without being asked to.
func (p *proc) crashed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.expectExit || !p.exitedLocked() {
		return nil
	}
	return fmt.Errorf("%s (pid %d) exited on its own: %v", p.name, p.cmd.Process.Pid, p.waitErr)
}

func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// signal sends sig and waits up to timeout for the exit; it returns the
// exit status (nil for exit code 0).
func (p *proc) signal(sig syscall.Signal, timeout time.Duration) error {
	p.mu.Lock()
	if p.cmd == nil || p.exitedLocked() {
		err := p.waitErr
		p.mu.Unlock()
		return err
	}
	p.expectExit = true
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %s to %s: %w", sig, p.name, err)
	}
	select {
	case <-done:
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("%s did not exit within %s of %s; killed it", p.name, timeout, sig)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// kill9 kills the process with SIGKILL and waits for it to be gone.
func (p *proc) kill9() {
	err := p.signal(syscall.SIGKILL, 10*time.Second)
	_ = err // "signal: killed" is the expected status
}

// stop sends SIGTERM and requires a clean exit (status 0).
func (p *proc) stop() error {
	if err := p.signal(syscall.SIGTERM, stopTimeout); err != nil {
		return fmt.Errorf("%s did not stop cleanly on SIGTERM: %w", p.name, err)
	}
	return nil
}

// logTail returns the last n lines of the process log.
func (p *proc) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d earlier lines)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// server is one stratus server process and its fixed addresses.
type server struct {
	*proc
	id      string
	dataDir string
	api     string // host:port
	raft    string
	gossip  string
}

func (s *server) baseURL() string { return "http://" + s.api }
func (s *server) apiURL() string  { return s.baseURL() + "/client/api" }

// testCluster is a set of stratus servers started by one test.
type testCluster struct {
	t       *testing.T
	bin     string
	dir     string
	servers []*server
	probe   *http.Client // short-timeout client for /v1/ready and /v1/status
	keys    adminKeys
	haproxy *haproxyProc
}

// adminKeys is what the seeding leader writes to admin-keys.json.
type adminKeys struct {
	APIKey    string `json:"apikey"`
	SecretKey string `json:"secretkey"`
}

// nodeStatus mirrors the JSON of /v1/status.
type nodeStatus struct {
	ID           string `json:"id"`
	Role         string `json:"role"`
	LeaderID     string `json:"leader_id"`
	Term         uint64 `json:"term"`
	AppliedIndex uint64 `json:"applied_index"`
	CommitIndex  uint64 `json:"commit_index"`
	Peers        []struct {
		ID     string `json:"id"`
		Voter  bool   `json:"voter"`
		Leader bool   `json:"leader"`
		Gossip string `json:"gossip"`
	} `json:"peers"`
}

// newCluster lays out n servers on fresh loopback ports; start them with
// startAll. Every process is killed when the test ends, and on failure the
// tail of every log is printed.
func newCluster(t *testing.T, bin string, n int) *testCluster {
	t.Helper()
	dir := t.TempDir() // created before the cleanup below, so removed after it
	ports, err := ops.FreeLoopbackPorts(3 * n)
	if err != nil {
		t.Fatal(err)
	}
	c := &testCluster{t: t, bin: bin, dir: dir, probe: &http.Client{Timeout: 3 * time.Second}}
	for i := 0; i < n; i++ {
		s := &server{
			id:     fmt.Sprintf("server-%d", i+1),
			api:    fmt.Sprintf("127.0.0.1:%d", ports[3*i]),
			raft:   fmt.Sprintf("127.0.0.1:%d", ports[3*i+1]),
			gossip: fmt.Sprintf("127.0.0.1:%d", ports[3*i+2]),
		}
		s.dataDir = filepath.Join(dir, s.id)
		s.proc = &proc{name: s.id, logPath: filepath.Join(dir, s.id+".log"),
			env: []string{"STRATUS_CLUSTER_SECRET=" + testSecret}}
		c.servers = append(c.servers, s)
	}
	for _, s := range c.servers {
		var join []string
		for _, o := range c.servers {
			if o != s {
				join = append(join, o.gossip)
			}
		}
		s.args = []string{"server", "-node-id", s.id, "-data-dir", s.dataDir,
			"-bind", s.api, "-raft-bind", s.raft, "-gossip-bind", s.gossip,
			"-bootstrap-expect", fmt.Sprint(n), "-join", strings.Join(join, ","), "-log-level", "info"}
	}
	t.Cleanup(c.cleanup)
	return c
}

func (c *testCluster) cleanup() {
	var procs []*proc
	for _, s := range c.servers {
		procs = append(procs, s.proc)
	}
	if c.haproxy != nil {
		procs = append(procs, c.haproxy.proc)
	}
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() { defer wg.Done(); p.kill9() }()
	}
	wg.Wait()
	if c.t.Failed() {
		for _, p := range procs {
			c.t.Logf("e2e: log of %s (last %d lines):\n%s", p.name, logTailOnError, p.logTail(logTailOnError))
		}
		keepLogs(c.t, c.dir)
	}
}

// keepLogs copies every log under dir (servers, agents, HAProxy) to
// $STRATUS_E2E_KEEP_LOGS/<test name>/ when that is set: the tails printed
// on failure are often too short to follow one VM or job through a run.
func keepLogs(t *testing.T, dir string) {
	dest := os.Getenv(envKeepLogs)
	if dest == "" {
		return
	}
	dest = filepath.Join(dest, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".log") {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		out := filepath.Join(dest, rel)
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(out, b, 0o644)
	})
	if err != nil {
		t.Logf("e2e: keeping logs in %s: %v", dest, err)
		return
	}
	t.Logf("e2e: every log of this test is kept in %s", dest)
}

// startAll starts every server, waits until each is ready and sees all
// voters, and reads the admin keys.
func (c *testCluster) startAll() {
	c.t.Helper()
	start := time.Now()
	for _, s := range c.servers {
		if err := s.start(c.bin); err != nil {
			c.t.Fatal(err)
		}
	}
	c.waitAllReady()
	if c.keys.APIKey == "" {
		k, err := c.readAdminKeys(readyTimeout)
		if err != nil {
			c.t.Fatal(err)
		}
		c.keys = k
	}
	c.t.Logf("e2e: %d servers ready in %s", len(c.servers), time.Since(start).Round(time.Millisecond))
}

// waitAllReady waits until every running server answers /v1/ready with 200
// and reports every server as a voter.
func (c *testCluster) waitAllReady() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	for _, s := range c.servers {
		if err := c.waitReady(ctx, s); err != nil {
			c.t.Fatal(err)
		}
	}
	for _, s := range c.servers {
		if err := c.waitVoters(ctx, s); err != nil {
			c.t.Fatal(err)
		}
	}
}

// ready asks /v1/ready once; it returns the reason when not ready.
func (c *testCluster) ready(s *server) (bool, string) {
	resp, err := c.probe.Get(s.baseURL() + "/v1/ready")
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	var body struct {
		Ready  bool   `json:"ready"`
		Reason string `json:"reason"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return false, fmt.Sprintf("HTTP %d with an undecodable body: %v", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK || !body.Ready {
		return false, fmt.Sprintf("HTTP %d: %s", resp.StatusCode, body.Reason)
	}
	return true, body.Reason
}

// waitReady polls /v1/ready of s until it answers 200; it gives up early
// if the process exits.
func (c *testCluster) waitReady(ctx context.Context, s *server) error {
	last := "no answer yet"
	for {
		if !s.running() {
			return fmt.Errorf("%s exited while waiting for it to be ready: %v", s.id, s.crashed())
		}
		ok, why := c.ready(s)
		if ok {
			return nil
		}
		last = why
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %s", s.id, last)
		case <-time.After(pollEvery):
		}
	}
}

// waitVoters polls /v1/status of s until it lists every server as a voter.
func (c *testCluster) waitVoters(ctx context.Context, s *server) error {
	last := ""
	for {
		st, err := c.status(s)
		if err == nil {
			voters := map[string]bool{}
			for _, p := range st.Peers {
				if p.Voter {
					voters[p.ID] = true
				}
			}
			missing := []string{}
			for _, o := range c.servers {
				if !voters[o.id] {
					missing = append(missing, o.id)
				}
			}
			if len(missing) == 0 {
				return nil
			}
			last = "voters missing: " + strings.Join(missing, ",")
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s does not see every server as a voter: %s", s.id, last)
		case <-time.After(pollEvery):
		}
	}
}

func (c *testCluster) status(s *server) (*nodeStatus, error) {
	resp, err := c.probe.Get(s.baseURL() + "/v1/status")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s /v1/status: HTTP %d", s.id, resp.StatusCode)
	}
	var st nodeStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("%s /v1/status: %w", s.id, err)
	}
	return &st, nil
}

// findLeader polls the running servers among candidates (all when nil)
// until one says it is the leader and a majority of those that answer
// agree on it; it returns that server and the term.
func (c *testCluster) findLeader(ctx context.Context, candidates []*server) (*server, uint64, error) {
	if candidates == nil {
		candidates = c.servers
	}
	byID := map[string]*server{}
	for _, s := range c.servers {
		byID[s.id] = s
	}
	last := "no status yet"
	for {
		votes, answered := map[string]int{}, 0
		var leader *server
		var term uint64
		for _, s := range candidates {
			if !s.running() {
				continue
			}
			st, err := c.status(s)
			if err != nil {
				last = err.Error()
				continue
			}
			answered++
			if st.LeaderID != "" {
				votes[st.LeaderID]++
			}
			if st.Role == "leader" && st.ID == s.id {
				leader, term = s, st.Term
			}
		}
		if leader != nil && answered > 0 && votes[leader.id]*2 > answered && byID[leader.id] != nil {
			return leader, term, nil
		}
		if leader == nil {
			last = fmt.Sprintf("no server reports itself leader (leader ids seen: %v)", votes)
		}
		select {
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("no leader: %s", last)
		case <-time.After(pollEvery):
		}
	}
}

// leader is findLeader for the test goroutine.
func (c *testCluster) leader() *server {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), leaderTimeout)
	defer cancel()
	l, _, err := c.findLeader(ctx, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	return l
}

// readAdminKeys polls every data dir for admin-keys.json.
func (c *testCluster) readAdminKeys(timeout time.Duration) (adminKeys, error) {
	deadline := time.Now().Add(timeout)
	for {
		for _, s := range c.servers {
			path := filepath.Join(s.dataDir, "admin-keys.json")
			b, err := os.ReadFile(path)
			if err != nil {
				continue
			}
			var k adminKeys
			if err := json.Unmarshal(b, &k); err != nil || k.APIKey == "" || k.SecretKey == "" {
				continue // being written
			}
			fi, err := os.Stat(path)
			if err != nil {
				return adminKeys{}, err
			}
			if mode := fi.Mode().Perm(); mode != 0o600 {
				return adminKeys{}, fmt.Errorf("%s has mode %o, want 600", path, mode)
			}
			return k, nil
		}
		if time.Now().After(deadline) {
			return adminKeys{}, fmt.Errorf("no server wrote admin-keys.json within %s", timeout)
		}
		time.Sleep(pollEvery)
	}
}

// checkNoCrash fails the test if a server exited without being asked to.
func (c *testCluster) checkNoCrash() {
	c.t.Helper()
	for _, s := range c.servers {
		if err := s.crashed(); err != nil {
			c.t.Error(err)
		}
	}
	if c.haproxy != nil {
		if err := c.haproxy.crashed(); err != nil {
			c.t.Error(err)
		}
	}
}

// stopAll stops every server with SIGTERM, in parallel, and requires each
// to exit with status 0.
func (c *testCluster) stopAll() {
	c.t.Helper()
	errs := make([]error, len(c.servers))
	var wg sync.WaitGroup
	for i, s := range c.servers {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = s.stop() }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.t.Error(err)
	}
}

// readLogs returns the logs of all servers, for grepping in assertions.
func (c *testCluster) readLogs() []byte {
	var all []byte
	for _, s := range c.servers {
		b, _ := os.ReadFile(s.logPath)
		all = append(all, b...)
	}
	return bytes.Clone(all)
}
