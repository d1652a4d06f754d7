package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/cloudstack-go/v2/cloudstack"
)

// A dev cloud is `stratus dev --servers 3 --hosts N` run as a child of the
// test: three servers and N host agents on libvirt's test driver, all of
// them children of the dev process, described by its cloud.json. The test
// never starts those processes itself; it only kills them (by the PIDs in
// cloud.json) and restarts one with the command line and environment it
// reads from /proc.

const (
	devReadyTimeout = 90 * time.Second // stratus dev: servers ready, zone seeded, hosts Up
	hostPollEvery   = 100 * time.Millisecond
)

// devCloudFile is the part of cloud.json the test reads.
type devCloudFile struct {
	APIURL    string `json:"api_url"`
	APIKey    string `json:"apikey"`
	SecretKey string `json:"secretkey"`
	Servers   []struct {
		ID     string `json:"id"`
		APIURL string `json:"api_url"`
		PID    int    `json:"pid"`
	} `json:"servers"`
	Hosts []struct {
		Name      string `json:"name"`
		PID       int    `json:"pid"`
		StatusURL string `json:"status_url"`
	} `json:"hosts"`
}

// agentStatusBody is the JSON of an agent's GET /v1/status.
type agentStatusBody struct {
	HostID  string `json:"host_id"`
	Name    string `json:"name"`
	Domains []struct {
		UUID  string `json:"uuid"`
		Name  string `json:"name"`
		Power string `json:"power"`
	} `json:"domains"`
}

// simHost is one simulated host: its agent process and status endpoint.
type simHost struct {
	name, statusURL, logPath string
	id                       string // host ID, from the agent's status
	devPID                   int    // the agent stratus dev started
	restarted                *proc  // the agent the test restarted, if any
}

// pid is the PID of the agent process running now.
func (h *simHost) pid() int {
	if h.restarted != nil {
		return h.restarted.pid()
	}
	return h.devPID
}

// devCloud is a running `stratus dev` with HAProxy in front of its servers.
type devCloud struct {
	t     *testing.T
	dir   string
	dev   *proc
	file  devCloudFile
	c     *testCluster // the dev servers seen as a test cluster: HAProxy, /v1/status, logs
	lb    *haproxyProc
	hosts []*simHost
	probe *http.Client

	serverPID map[string]int  // server id -> PID of the dev's child
	killed    map[string]bool // servers killed by the test and not restarted
	hostsWait time.Duration   // extra start-up time for many hosts
}

// startDevCloud runs stratus dev with 3 servers and n hosts, waits for its
// cloud.json and puts HAProxy in front of the servers.
func startDevCloud(t *testing.T, bin string, n int) *devCloud {
	t.Helper()
	return startDevCloudIn(t, bin, t.TempDir(), n)
}

// startDevCloudIn is startDevCloud on a directory the test prepared.
func startDevCloudIn(t *testing.T, bin, dir string, n int) *devCloud {
	t.Helper()
	d := &devCloud{t: t, dir: dir, probe: &http.Client{Timeout: 2 * time.Second},
		serverPID: map[string]int{}, killed: map[string]bool{},
		hostsWait: time.Duration(n) * time.Second} // dev gives many hosts this long to register
	d.dev = &proc{name: "stratus-dev", logPath: filepath.Join(dir, "dev.log"),
		args: []string{"dev", "--dir", dir, "--servers", "3", "--hosts", fmt.Sprint(n)}}
	t.Cleanup(d.cleanup)
	start := time.Now()
	if err := d.dev.start(bin); err != nil {
		t.Fatal(err)
	}
	if err := d.waitCloudFile(); err != nil {
		t.Fatal(err)
	}
	d.c = &testCluster{t: t, bin: bin, dir: dir, probe: d.probe,
		keys: adminKeys{APIKey: d.file.APIKey, SecretKey: d.file.SecretKey}}
	for _, fs := range d.file.Servers {
		u, err := url.Parse(fs.APIURL)
		if err != nil {
			t.Fatalf("cloud.json: server %s api_url %q: %v", fs.ID, fs.APIURL, err)
		}
		sdir := filepath.Join(dir, fs.ID)
		d.c.servers = append(d.c.servers, &server{id: fs.ID, dataDir: sdir, api: u.Host,
			proc: &proc{name: fs.ID, logPath: filepath.Join(sdir, "server.log")}})
		d.serverPID[fs.ID] = fs.PID
	}
	for _, fh := range d.file.Hosts {
		if fh.StatusURL == "" {
			t.Fatalf("cloud.json lists host %s without a status_url", fh.Name)
		}
		d.hosts = append(d.hosts, &simHost{name: fh.Name, statusURL: fh.StatusURL, devPID: fh.PID,
			logPath: filepath.Join(dir, "hosts", fh.Name, "agent.log")})
	}
	if len(d.hosts) != n {
		t.Fatalf("cloud.json lists %d hosts, want %d", len(d.hosts), n)
	}
	for _, h := range d.hosts {
		st, err := h.status(d.probe)
		if err != nil {
			t.Fatalf("host %s: %v", h.name, err)
		}
		if st.HostID == "" || st.Name != h.name {
			t.Fatalf("host %s: status answered host_id=%q name=%q", h.name, st.HostID, st.Name)
		}
		h.id = st.HostID
	}
	t.Logf("e2e: stratus dev up in %s: %d servers, %d hosts", time.Since(start).Round(time.Millisecond), len(d.c.servers), n)
	d.lb = d.c.startHAProxy()
	return d
}

// hostByID returns the simulated host with that host ID, or an empty one.
func (d *devCloud) hostByID(id string) *simHost {
	for _, h := range d.hosts {
		if h.id == id {
			return h
		}
	}
	return &simHost{}
}

// waitCloudFile waits until stratus dev has written a complete cloud.json.
func (d *devCloud) waitCloudFile() error {
	path := filepath.Join(d.dir, "cloud.json")
	deadline := time.Now().Add(devReadyTimeout + d.hostsWait)
	for {
		if b, err := os.ReadFile(path); err == nil {
			var f devCloudFile
			if json.Unmarshal(b, &f) == nil && f.APIKey != "" && len(f.Servers) > 0 {
				d.file = f
				return nil
			}
		}
		if !d.dev.running() {
			return fmt.Errorf("stratus dev exited before writing cloud.json: %v\n%s", d.dev.crashed(), d.dev.logTail(50))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stratus dev wrote no cloud.json within %s\n%s", devReadyTimeout+d.hostsWait, d.dev.logTail(50))
		}
		time.Sleep(pollEvery)
	}
}

// cleanup kills every process of the dev cloud: the dev's children first
// (while the dev has not reaped them their PIDs cannot be reused), then
// the processes the test restarted, the dev itself and HAProxy.
func (d *devCloud) cleanup() {
	for id, pid := range d.serverPID {
		if !d.killed[id] && pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	for _, h := range d.hosts {
		if h.restarted == nil {
			_ = syscall.Kill(h.devPID, syscall.SIGKILL)
		} else {
			h.restarted.kill9()
		}
	}
	d.dev.kill9()
	if d.c != nil {
		d.c.cleanup() // restarted servers and HAProxy; server logs on failure
	}
	if d.t.Failed() {
		d.t.Logf("e2e: log of stratus dev:\n%s", d.dev.logTail(50))
		if d.c == nil {
			// stratus dev gave up before cloud.json: its servers' logs say why.
			logs, _ := filepath.Glob(filepath.Join(d.dir, "*", "server.log"))
			for _, path := range logs {
				p := &proc{logPath: path}
				d.t.Logf("e2e: %s (last %d lines):\n%s", path, logTailOnError, p.logTail(logTailOnError))
			}
			keepLogs(d.t, d.dir)
		}
		for _, h := range d.hosts {
			p := &proc{logPath: h.logPath}
			d.t.Logf("e2e: log of agent %s (last %d lines):\n%s", h.name, logTailOnError, p.logTail(logTailOnError))
		}
	}
}

// status asks the host's agent for its live domain list.
func (h *simHost) status(client *http.Client) (*agentStatusBody, error) {
	resp, err := client.Get(h.statusURL)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d", h.statusURL, resp.StatusCode)
	}
	var st agentStatusBody
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("%s: %w", h.statusURL, err)
	}
	return &st, nil
}

// leader finds the Raft leader among the servers the test has not killed,
// as a majority of them report it.
func (d *devCloud) leader(ctx context.Context) (*server, uint64, error) {
	last := "no status yet"
	for {
		votes, answered := map[string]int{}, 0
		var leader *server
		var term uint64
		for _, s := range d.c.servers {
			if d.killed[s.id] {
				continue
			}
			st, err := d.c.status(s)
			if err != nil {
				last = err.Error()
				continue
			}
			answered++
			votes[st.LeaderID]++
			if st.Role == "leader" && st.ID == s.id {
				leader, term = s, st.Term
			}
		}
		if leader != nil && votes[leader.id]*2 > answered {
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

// procCommand reads the command line and environment of a running process.
func procCommand(pid int) (argv, env []string, err error) {
	split := func(b []byte) []string {
		var out []string
		for _, f := range bytes.Split(bytes.TrimRight(b, "\x00"), []byte{0}) {
			out = append(out, string(f))
		}
		return out
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil, nil, err
	}
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return nil, nil, err
	}
	argv = split(cmdline)
	if len(argv) == 0 || argv[0] == "" {
		return nil, nil, fmt.Errorf("pid %d has an empty command line (a zombie?)", pid)
	}
	return argv, split(environ), nil
}

// kill9PID kills a process that is not the test's child with SIGKILL and
// waits until it is dead (gone, or a zombie its parent has not reaped).
func kill9PID(pid int) error {
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill -9 %d: %w", pid, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		// The state follows the parenthesised command name.
		if i := bytes.LastIndexByte(b, ')'); err == nil && i > 0 && i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X') {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pid %d still alive 10s after SIGKILL", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// killServer kills a dev server with SIGKILL and returns how to start it
// again: its binary, and a proc with the command line and environment
// /proc showed.
func (d *devCloud) killServer(s *server) (*proc, string, error) {
	pid := d.serverPID[s.id]
	child := s.proc != nil && s.proc.pid() != 0 // started again by restartServer
	if child {
		pid = s.proc.pid()
	}
	argv, env, err := procCommand(pid)
	if err != nil {
		return nil, "", fmt.Errorf("read the command of %s (pid %d): %w", s.id, pid, err)
	}
	if child {
		s.proc.kill9() // the test's own child: kill and reap it
	} else if err := kill9PID(pid); err != nil {
		return nil, "", err
	}
	d.killed[s.id] = true
	return &proc{name: s.id, logPath: s.logPath, args: argv[1:], env: env}, argv[0], nil
}

// restartServer starts a killed server again with p and bin (from
// killServer) as the test's child and waits until it is ready and back in
// HAProxy.
func (d *devCloud) restartServer(ctx context.Context, s *server, p *proc, bin string) error {
	if err := p.start(bin); err != nil {
		return err
	}
	s.proc = p
	delete(d.killed, s.id)
	if err := d.c.waitReady(ctx, s); err != nil {
		return err
	}
	return d.lb.waitUp(ctx, d.probe, len(d.c.servers))
}

// restartAgent kills the host's agent with SIGKILL and starts it again
// with the same command line and environment, as the test's child.
func (d *devCloud) restartAgent(h *simHost) error {
	p, bin, err := d.killAgent(h)
	if err != nil {
		return err
	}
	return d.startAgent(h, p, bin)
}

// killAgent kills the host's agent with SIGKILL and returns how to start
// it again: its binary, and a proc with the command line and environment
// /proc showed.
func (d *devCloud) killAgent(h *simHost) (*proc, string, error) {
	pid := h.pid()
	argv, env, err := procCommand(pid)
	if err != nil {
		return nil, "", fmt.Errorf("read the command of agent %s (pid %d): %w", h.name, pid, err)
	}
	if h.restarted != nil {
		h.restarted.kill9()
	} else if err := kill9PID(pid); err != nil {
		return nil, "", err
	}
	if _, err := h.status(d.probe); err == nil {
		return nil, "", fmt.Errorf("agent %s still answers its status after kill -9", h.name)
	}
	p := &proc{name: "agent-" + h.name, logPath: h.logPath, args: argv[1:], env: env}
	if h.restarted != nil {
		p.cred = h.restarted.cred // the same user as well
	}
	return p, argv[0], nil
}

// startAgent starts a killed agent again with p and bin (from killAgent)
// as the test's child.
func (d *devCloud) startAgent(h *simHost, p *proc, bin string) error {
	if err := p.start(bin); err != nil {
		return err
	}
	h.restarted = p
	return nil
}

// newJobSDK is the SDK client that answers async commands with their job
// ID at once (the test waits for jobs itself, every 100 ms, instead of the
// async client's growing sleeps), with the load balancer's errors typed.
func newJobSDK(apiURL string, k adminKeys) *cloudstack.CloudStackClient {
	hc := &http.Client{Transport: gatewayTransport{base: newTransport()}, Timeout: 30 * time.Second}
	return cloudstack.NewClient(apiURL, k.APIKey, k.SecretKey, false, cloudstack.WithHTTPClient(hc))
}

// hostSampler asks every host for its domains, one after the other, every
// hostPollEvery, and records any VM seen on two hosts at once.
//
// Samples of different hosts are taken at different moments, so a VM
// handed over from A to B between two samples may show on both in one
// sweep without ever running twice. The sampler therefore only counts what
// proves simultaneity: a VM in two consecutive samples of host A and in a
// sample of host B taken between them. (It assumes no VM leaves A and
// comes back within one sweep, which this test never asks for.)
type hostSampler struct {
	hosts  []*simHost
	client *http.Client

	// observe, if set before run, is given every sample as it is taken.
	observe func(hostSample)

	mu         sync.Mutex
	hist       []hostSample
	sweeps     int
	failures   int // status requests that failed (an agent being restarted)
	violations []string
	total      int // violations found in all, also those check reported
}

type hostSample struct {
	host    string
	at      time.Time
	domains map[string]bool
}

func newHostSampler(hosts []*simHost) *hostSampler {
	return &hostSampler{hosts: hosts, client: &http.Client{Timeout: time.Second}}
}

// run samples until ctx ends.
func (s *hostSampler) run(ctx context.Context) {
	t := time.NewTicker(hostPollEvery)
	defer t.Stop()
	for {
		for _, h := range s.hosts {
			st, err := h.status(s.client)
			if err != nil {
				s.mu.Lock()
				s.failures++
				s.mu.Unlock()
				continue
			}
			doms := make(map[string]bool, len(st.Domains))
			for _, dom := range st.Domains {
				doms[dom.UUID] = true
			}
			n := hostSample{host: h.name, at: time.Now(), domains: doms}
			s.add(n)
			if s.observe != nil {
				s.observe(n)
			}
		}
		s.mu.Lock()
		s.sweeps++
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *hostSampler) add(n hostSample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := -1
	for i := len(s.hist) - 1; i >= 0; i-- {
		if s.hist[i].host == n.host {
			prev = i
			break
		}
	}
	if prev >= 0 {
		p := s.hist[prev]
		for _, mid := range s.hist[prev+1:] {
			for id := range mid.domains {
				if p.domains[id] && n.domains[id] && mid.host != n.host {
					s.total++
					s.violations = append(s.violations, fmt.Sprintf("VM %s ran on %s (samples at %s and %s) and on %s (sample at %s) at once",
						id, n.host, p.at.Format("15:04:05.000"), n.at.Format("15:04:05.000"), mid.host, mid.at.Format("15:04:05.000")))
				}
			}
		}
	}
	s.hist = append(s.hist, n)
	if len(s.hist) > 64 {
		s.hist = append([]hostSample(nil), s.hist[len(s.hist)-32:]...)
	}
}

// check fails the test for every VM seen on two hosts at once so far.
func (s *hostSampler) check(t *testing.T, phase string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.violations {
		t.Errorf("%s: %s", phase, v)
	}
	s.violations = nil
}

func (s *hostSampler) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("%d sweeps of %d hosts, %d failed status requests", s.sweeps, len(s.hosts), s.failures)
}

// sortedKeys returns the keys of m in order, for messages.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// shortIDs abbreviates VM IDs for messages.
func shortIDs(ids []string) string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id[:min(8, len(id))]
	}
	return "[" + strings.Join(out, " ") + "]"
}
