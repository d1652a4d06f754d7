package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/ops"
)

// devLayout is what `stratus dev` keeps in DIR/dev.json so a second run on
// the same directory restarts the same cluster on the same ports.
type devLayout struct {
	Secret  string      `json:"secret"`
	Servers []devServer `json:"servers"`
}

type devServer struct {
	ID     string `json:"id"`
	API    string `json:"api"`
	Raft   string `json:"raft"`
	Gossip string `json:"gossip"`
}

// CloudFile is DIR/cloud.json: how tools and tests reach the dev cloud.
type CloudFile struct {
	APIURL    string        `json:"api_url"`
	APIKey    string        `json:"apikey"`
	SecretKey string        `json:"secretkey"`
	Username  string        `json:"username"`           // admin, in domain ROOT
	Password  string        `json:"password,omitempty"` // for login; empty for clouds seeded before passwords
	Servers   []CloudServer `json:"servers"`
	Hosts     []CloudHost   `json:"hosts"`
}

// CloudServer is one server process of the dev cloud.
type CloudServer struct {
	ID     string `json:"id"`
	APIURL string `json:"api_url"`
	PID    int    `json:"pid"`
}

// CloudHost is one simulated host agent process.
type CloudHost struct {
	Name      string `json:"name"`
	PID       int    `json:"pid"`
	StatusURL string `json:"status_url"` // the agent's GET /v1/status: its live domain list
}

// loadOrMakeLayout reads DIR/dev.json, or picks ports for a new cloud and
// writes it.
func loadOrMakeLayout(dir string, servers int) (*devLayout, error) {
	path := filepath.Join(dir, "dev.json")
	if b, err := os.ReadFile(path); err == nil {
		var l devLayout
		if err := json.Unmarshal(b, &l); err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		if len(l.Servers) != servers {
			return nil, fmt.Errorf("%s holds a cloud of %d servers; use --servers %d or a new --dir", dir, len(l.Servers), len(l.Servers))
		}
		return &l, nil
	}
	l := &devLayout{Secret: fsm.NewKey(32)}
	ports, err := ops.FreeLoopbackPorts(3 * servers)
	if err != nil {
		return nil, err
	}
	for i := 0; i < servers; i++ {
		s := devServer{ID: fmt.Sprintf("server-%d", i+1)}
		s.setPorts(ports[3*i:])
		l.Servers = append(l.Servers, s)
	}
	return l, l.save(dir)
}

// hasRaftState says whether any server of the layout has a raft log yet.
// Until one has, no raft configuration holds a server's address, so a
// server can still move to other ports.
func (l *devLayout) hasRaftState(dir string) bool {
	for _, s := range l.Servers {
		if _, err := os.Stat(filepath.Join(dir, s.ID, "raft", "raft.db")); err == nil {
			return true
		}
	}
	return false
}

func (s *devServer) setPorts(p []int) {
	s.API = fmt.Sprintf("127.0.0.1:%d", p[0])
	s.Raft = fmt.Sprintf("127.0.0.1:%d", p[1])
	s.Gossip = fmt.Sprintf("127.0.0.1:%d", p[2])
}

func (l *devLayout) save(dir string) error {
	path := filepath.Join(dir, "dev.json")
	b, _ := json.MarshalIndent(l, "", "  ")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// lockDevDir takes DIR/dev.lock for as long as this stratus dev runs, so a
// second one on the same directory stops at once with a clear error rather
// than starting servers on ports the first one's servers hold.
func lockDevDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, "dev.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another stratus dev (pid %s) is running the cloud in %s: stop it first, or use another --dir", strings.TrimSpace(string(holder)), dir)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(fmt.Sprintln(os.Getpid())), 0)
	}
	return func() { _ = f.Close() }, nil // closing the file releases the lock
}

// devChild is one process stratus dev started (a server or a host agent),
// watched from its start so that one that dies during start-up is noticed
// at once rather than when a wait for it runs out.
type devChild struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{} // closed once the process has exited; err is its status then
	err     error
}

func startDevChild(self, name, logPath string, args, env []string) (*devChild, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the log of %s: %w", name, err)
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &devChild{name: name, logPath: logPath, cmd: cmd, exited: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		_ = logFile.Close()
		close(c.exited)
	}()
	return c, nil
}

func (c *devChild) hasExited() bool {
	select {
	case <-c.exited:
		return true
	default:
		return false
	}
}

// lastLogLine is the last line the process wrote: for one that failed to
// start, its error.
func (c *devChild) lastLogLine() string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// portTaken says the process exited because one of its ports was taken,
// by another process that bound it after the port was picked.
func (c *devChild) portTaken() bool {
	return c.hasExited() && strings.Contains(c.lastLogLine(), "address already in use")
}

func (c *devChild) exitError() error {
	err := fmt.Errorf("%s exited during start-up (%v): %s (log: %s)", c.name, c.err, c.lastLogLine(), c.logPath)
	if c.portTaken() {
		// Only a new cloud's servers move; an existing one keeps the
		// addresses its raft configuration holds.
		err = fmt.Errorf("%w; another process holds that port: stop it (ss -tulpn names it) and run the same command again", err)
	}
	return err
}

// stopDevChildren asks every process to stop and waits until all have.
func stopDevChildren(children []*devChild) {
	for _, c := range children {
		if !c.hasExited() {
			_ = c.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, c := range children {
		<-c.exited
	}
}

// portRetries bounds how often one process of a new cloud is moved to new
// ports because another process took one of them.
const portRetries = 3

func runDev(args []string) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory for the cloud's data, logs and cloud.json (required; reused on the next run)")
	servers := fs.Int("servers", 3, "management servers to start")
	hosts := fs.Int("hosts", 0, "simulated hosts to start: host agents on libvirt's test driver, one host file each, in a seeded zone")
	logLevel := fs.String("log-level", "info", "servers' log level")
	useTLS := fs.Bool("tls", false, "serve HTTPS (API, internal endpoints, raft) with a throwaway CA and certificate made in --dir/tls; trust --dir/tls/ca.pem in clients")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *dir == "" {
		return errors.New("--dir is required, e.g. stratus dev --dir ./dev-cloud")
	}
	if *servers < 1 {
		return errors.New("--servers must be at least 1")
	}
	if *hosts < 0 {
		return errors.New("--hosts must not be negative")
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return fmt.Errorf("resolve --dir: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return fmt.Errorf("create --dir: %w", err)
	}
	unlock, err := lockDevDir(abs)
	if err != nil {
		return err
	}
	defer unlock()
	layout, err := loadOrMakeLayout(abs, *servers)
	if err != nil {
		return err
	}
	fresh := !layout.hasRaftState(abs)
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary: %w", err)
	}

	scheme, client := "http", &http.Client{Timeout: 30 * time.Second}
	var devTLS *tlsFlags
	if *useTLS {
		if devTLS, err = makeDevTLS(abs); err != nil {
			return err
		}
		if client, err = devTLS.httpClient(30 * time.Second); err != nil {
			return err
		}
		scheme = "https"
		// The agents started below inherit it.
		if err := os.Setenv("STRATUS_AGENT_TLS_CA", devTLS.ca); err != nil {
			return err
		}
	}
	var procs, agents []*devChild // servers and host agents
	stopAll := func() { stopDevChildren(append(append([]*devChild(nil), procs...), agents...)) }
	startServer := func(i int) (*devChild, error) {
		s := layout.Servers[i]
		dataDir := filepath.Join(abs, s.ID)
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", dataDir, err)
		}
		args := []string{"server", "-node-id", s.ID, "-data-dir", dataDir, "-bind", s.API,
			"-raft-bind", s.Raft, "-gossip-bind", s.Gossip, "-bootstrap-expect", fmt.Sprint(len(layout.Servers)),
			"-log-level", *logLevel}
		if devTLS != nil {
			args = append(args, "-tls-cert", devTLS.cert, "-tls-key", devTLS.key, "-tls-ca", devTLS.ca)
		}
		// Every server joins all the others: any one that answers will do.
		var join []string
		for j, o := range layout.Servers {
			if j != i {
				join = append(join, o.Gossip)
			}
		}
		if len(join) > 0 {
			args = append(args, "-join", strings.Join(join, ","))
		}
		// The secret travels in the environment, which ps does not show.
		return startDevChild(self, s.ID, filepath.Join(dataDir, "server.log"), args, []string{"STRATUS_CLUSTER_SECRET=" + layout.Secret})
	}
	for i := range layout.Servers {
		c, err := startServer(i)
		if err != nil {
			stopAll()
			return err
		}
		procs = append(procs, c)
	}
	// A new cloud's server whose port another process took in the moment
	// between picking it and binding it moves to new ports: it never
	// gossiped, so no other server knows the old ones.
	moves := make([]int, len(layout.Servers))
	restart := func(i int) (bool, error) {
		if !fresh || !procs[i].portTaken() || moves[i] >= portRetries {
			return false, nil
		}
		moves[i]++
		ports, err := ops.FreeLoopbackPorts(3)
		if err != nil {
			return false, err
		}
		fmt.Printf("%s: %s; moving it to new ports\n", layout.Servers[i].ID, procs[i].lastLogLine())
		layout.Servers[i].setPorts(ports)
		if err := layout.save(abs); err != nil {
			return false, err
		}
		c, err := startServer(i)
		if err != nil {
			return false, err
		}
		procs[i] = c
		return true, nil
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	fmt.Printf("starting %d servers in %s ...\n", len(procs), abs)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go func() {
		select {
		case <-sigs:
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := waitReady(ctx, layout, client, scheme, procs[:len(layout.Servers)], restart); err != nil {
		stopAll()
		return fmt.Errorf("cloud did not become ready (logs in %s/*/server.log): %w", abs, err)
	}
	cloud := CloudFile{Hosts: []CloudHost{}}
	for i, s := range layout.Servers {
		cloud.Servers = append(cloud.Servers, CloudServer{ID: s.ID, APIURL: scheme + "://" + s.API + "/client/api", PID: procs[i].cmd.Process.Pid})
	}
	cloud.APIURL = cloud.Servers[0].APIURL
	keys, err := findAdminKeys(ctx, abs, layout)
	if err != nil {
		stopAll()
		return err
	}
	cloud.APIKey, cloud.SecretKey, cloud.Username, cloud.Password = keys.APIKey, keys.SecretKey, "admin", keys.Password
	if *hosts > 0 {
		d := &devAPI{url: cloud.APIURL, key: keys.APIKey, secret: keys.SecretKey, client: client}
		fmt.Printf("seeding zone %s (pod, cluster, storage, offerings, template) ...\n", devZone)
		if err := seedDevZone(ctx, d, abs); err != nil {
			stopAll()
			return fmt.Errorf("seed the dev zone: %w", err)
		}
		ports, err := ops.FreeLoopbackPorts(*hosts)
		if err != nil {
			stopAll()
			return err
		}
		startHost := func(i, port int) error {
			c, h, err := startDevHost(abs, self, layout.Secret, cloud.Servers, i+1, port)
			if err != nil {
				return err
			}
			if i < len(agents) {
				agents[i], cloud.Hosts[i] = c, h
			} else {
				agents, cloud.Hosts = append(agents, c), append(cloud.Hosts, h)
			}
			return nil
		}
		for i, port := range ports {
			if err := startHost(i, port); err != nil {
				stopAll()
				return err
			}
		}
		// An agent's status port is picked anew on every run, so one that
		// was taken can always move.
		hostMoves := make([]int, *hosts)
		restartHost := func(i int) (bool, error) {
			if !agents[i].portTaken() || hostMoves[i] >= portRetries {
				return false, nil
			}
			hostMoves[i]++
			ports, err := ops.FreeLoopbackPorts(1)
			if err != nil {
				return false, err
			}
			fmt.Printf("%s: %s; moving it to a new port\n", agents[i].name, agents[i].lastLogLine())
			return true, startHost(i, ports[0])
		}
		fmt.Printf("starting %d simulated hosts ...\n", *hosts)
		// Many simulated hosts take a while to start and register.
		hostsCtx, hostsCancel := context.WithTimeout(context.Background(), 30*time.Second+time.Duration(*hosts)*time.Second)
		err = waitHostsUp(hostsCtx, d, agents, restartHost)
		hostsCancel()
		if err != nil {
			stopAll()
			return fmt.Errorf("hosts did not come up (agent logs in %s/hosts/*/agent.log): %w", abs, err)
		}
	}
	b, _ := json.MarshalIndent(cloud, "", "  ")
	if err := os.WriteFile(filepath.Join(abs, "cloud.json"), append(b, '\n'), 0o600); err != nil {
		stopAll()
		return fmt.Errorf("write cloud.json: %w", err)
	}
	printDevBanner(abs, cloud)
	if devTLS != nil {
		fmt.Printf("  TLS: trust %s (curl --cacert, SSL_CERT_FILE for stratus operator and other Go clients)\n", devTLS.ca)
	}

	// End the start-up watcher first, or it could take the signal meant
	// for the wait below.
	cancel()
	sig := <-sigs
	fmt.Printf("\n%s: stopping the cloud ...\n", sig)
	stopAll()
	fmt.Println("stopped; run the same command again to start it with all its state")
	return nil
}

// waitReady waits until every server answers ready, failing at once when
// one exits and restart does not start it again. It reads each server's
// address from layout on every try, since restart may move it.
func waitReady(ctx context.Context, layout *devLayout, client *http.Client, scheme string, servers []*devChild, restart func(i int) (bool, error)) error {
	start := time.Now()
	for i := range layout.Servers {
		last, told := "no answer", time.Now()
		for {
			if err := checkDevChildren(servers, restart); err != nil {
				return err
			}
			s := layout.Servers[i]
			rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
			req, _ := http.NewRequestWithContext(rctx, http.MethodGet, scheme+"://"+s.API+"/v1/ready", nil)
			resp, err := client.Do(req)
			if err == nil {
				var body struct {
					Reason string `json:"reason"`
				}
				_ = json.NewDecoder(resp.Body).Decode(&body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					rcancel()
					fmt.Printf("  %s ready (%d of %d) after %s\n", s.ID, i+1, len(layout.Servers), time.Since(start).Round(100*time.Millisecond))
					break
				}
				last = body.Reason
			} else {
				last = err.Error()
			}
			rcancel()
			if time.Since(told) >= 5*time.Second {
				fmt.Printf("  %s not ready yet: %s\n", s.ID, last)
				told = time.Now()
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s not ready: %s", s.ID, last)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// checkDevChildren returns the error of the first child that has exited
// and that restart (given its index) did not start again.
func checkDevChildren(children []*devChild, restart func(i int) (bool, error)) error {
	for i, c := range children {
		if !c.hasExited() {
			continue
		}
		moved, err := restart(i)
		if err != nil {
			return err
		}
		if !moved {
			return c.exitError()
		}
	}
	return nil
}

// findAdminKeys waits for the keys file the seeding leader writes.
func findAdminKeys(ctx context.Context, dir string, layout *devLayout) (*ops.AdminKeys, error) {
	for {
		for _, s := range layout.Servers {
			if k, err := ops.ReadAdminKeys(filepath.Join(dir, s.ID)); err == nil {
				return k, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no server of %s wrote %s", dir, ops.AdminKeysFile)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func printDevBanner(dir string, c CloudFile) {
	var b strings.Builder
	fmt.Fprintf(&b, "\nStratus dev cloud is ready: %d servers\n\n", len(c.Servers))
	for _, s := range c.Servers {
		fmt.Fprintf(&b, "  %-10s %s  (pid %d)\n", s.ID, s.APIURL, s.PID)
	}
	for _, h := range c.Hosts {
		fmt.Fprintf(&b, "  %-10s simulated host in zone %s  (agent pid %d)\n", h.Name, devZone, h.PID)
	}
	fmt.Fprintf(&b, "\n  API URL     %s\n  API key     %s\n  Secret key  %s\n", c.APIURL, c.APIKey, c.SecretKey)
	if c.Password != "" {
		fmt.Fprintf(&b, "  Login       %s / %s (domain ROOT)\n", c.Username, c.Password)
	}
	fmt.Fprintf(&b, "\n  Everything above is in %s/cloud.json; server logs in %s/<server>/server.log.\n", dir, dir)
	fmt.Fprintf(&b, "  Status of a server:  curl %s\n", strings.TrimSuffix(c.Servers[0].APIURL, "/client/api")+"/v1/status")
	fmt.Fprintf(&b, "  Press Ctrl-C to stop the cloud; run the same command again to restart it.\n")
	fmt.Print(b.String())
}
