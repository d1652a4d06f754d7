package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
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

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

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
	for i := 0; i < servers; i++ {
		var addrs [3]string
		for j := range addrs {
			a, err := freePort()
			if err != nil {
				return nil, err
			}
			addrs[j] = a
		}
		l.Servers = append(l.Servers, devServer{ID: fmt.Sprintf("server-%d", i+1), API: addrs[0], Raft: addrs[1], Gossip: addrs[2]})
	}
	b, _ := json.MarshalIndent(l, "", "  ")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return l, nil
}

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
	layout, err := loadOrMakeLayout(abs, *servers)
	if err != nil {
		return err
	}
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
	var procs []*exec.Cmd
	stopAll := func() {
		for _, p := range procs {
			_ = p.Process.Signal(syscall.SIGTERM)
		}
		for _, p := range procs {
			_ = p.Wait()
		}
	}
	cloud := CloudFile{Hosts: []CloudHost{}}
	for i, s := range layout.Servers {
		dataDir := filepath.Join(abs, s.ID)
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			stopAll()
			return fmt.Errorf("create %s: %w", dataDir, err)
		}
		logFile, err := os.OpenFile(filepath.Join(dataDir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			stopAll()
			return fmt.Errorf("open server log: %w", err)
		}
		cmdArgs := []string{"server", "-node-id", s.ID, "-data-dir", dataDir, "-bind", s.API,
			"-raft-bind", s.Raft, "-gossip-bind", s.Gossip, "-bootstrap-expect", fmt.Sprint(len(layout.Servers)),
			"-log-level", *logLevel}
		if devTLS != nil {
			cmdArgs = append(cmdArgs, "-tls-cert", devTLS.cert, "-tls-key", devTLS.key, "-tls-ca", devTLS.ca)
		}
		if i > 0 {
			cmdArgs = append(cmdArgs, "-join", layout.Servers[0].Gossip)
		} else if len(layout.Servers) > 1 {
			cmdArgs = append(cmdArgs, "-join", layout.Servers[1].Gossip)
		}
		cmd := exec.Command(self, cmdArgs...)
		// The secret travels in the environment, which ps does not show.
		cmd.Env = append(os.Environ(), "STRATUS_CLUSTER_SECRET="+layout.Secret)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err := cmd.Start(); err != nil {
			stopAll()
			return fmt.Errorf("start %s: %w", s.ID, err)
		}
		procs = append(procs, cmd)
		cloud.Servers = append(cloud.Servers, CloudServer{ID: s.ID, APIURL: scheme + "://" + s.API, PID: cmd.Process.Pid})
	}
	cloud.APIURL = cloud.Servers[0].APIURL + "/client/api"
	for i := range cloud.Servers {
		cloud.Servers[i].APIURL += "/client/api"
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
	if err := waitReady(ctx, layout, client, scheme); err != nil {
		stopAll()
		return fmt.Errorf("cloud did not become ready (logs in %s/*/server.log): %w", abs, err)
	}
	keys, err := findAdminKeys(ctx, abs, layout)
	if err != nil {
		stopAll()
		return err
	}
	cloud.APIKey, cloud.SecretKey, cloud.Username, cloud.Password = keys.APIKey, keys.SecretKey, "admin", keys.Password
	if *hosts > 0 {
		d := &devAPI{url: cloud.APIURL, key: keys.APIKey, secret: keys.SecretKey, client: client}
		if err := seedDevZone(ctx, d, abs); err != nil {
			stopAll()
			return fmt.Errorf("seed the dev zone: %w", err)
		}
		agents, hostList, err := startDevHosts(abs, self, layout.Secret, cloud.Servers, *hosts)
		procs = append(procs, agents...)
		if err != nil {
			stopAll()
			return err
		}
		cloud.Hosts = hostList
		// Many simulated hosts take a while to start and register.
		hostsCtx, hostsCancel := context.WithTimeout(context.Background(), 30*time.Second+time.Duration(*hosts)*time.Second)
		err = waitHostsUp(hostsCtx, d, *hosts)
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

func waitReady(ctx context.Context, layout *devLayout, client *http.Client, scheme string) error {
	for _, s := range layout.Servers {
		last := "no answer"
		for {
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
					break
				}
				last = body.Reason
			} else {
				last = err.Error()
			}
			rcancel()
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s not ready: %s", s.ID, last)
			case <-time.After(100 * time.Millisecond):
			}
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
