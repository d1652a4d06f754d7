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
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/stratus-cloud/stratus/hypervisor"
	"github.com/stratus-cloud/stratus/hypervisor/agent"
)

type agentFlags struct {
	servers, dataDir, libvirtURI        string
	token, tokenFile                    string
	regToken, regTokenFile              string
	name, address, zone, pod, cluster   string
	logLevel, logFormat                 string
	statusAddr, watchdog                string
	tls                                 tlsFlags
	serverList                          []string
	resolvedToken, resolvedRegistration string
}

// parseAgentFlags reads the agent's flags; every flag also has an
// environment variable STRATUS_AGENT_<NAME>. Tokens are best given by
// environment or file, which ps does not show.
func parseAgentFlags(args []string) (*agentFlags, error) {
	f := &agentFlags{}
	host, _ := os.Hostname()
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.StringVar(&f.servers, "servers", envOr("AGENT_SERVERS", ""), "comma-separated base URLs of management servers or their load balancer (env STRATUS_AGENT_SERVERS; required)")
	fs.StringVar(&f.dataDir, "data-dir", envOr("AGENT_DATA_DIR", "/var/lib/stratus-agent"), "directory for the host ID, its token and agent state (env STRATUS_AGENT_DATA_DIR)")
	fs.StringVar(&f.libvirtURI, "libvirt-uri", envOr("AGENT_LIBVIRT_URI", "qemu:///system"), "libvirt URI of this host (env STRATUS_AGENT_LIBVIRT_URI)")
	fs.StringVar(&f.token, "token", "", "host token from addHost; prefer env STRATUS_AGENT_TOKEN or -token-file")
	fs.StringVar(&f.tokenFile, "token-file", envOr("AGENT_TOKEN_FILE", ""), "file holding the host token (env STRATUS_AGENT_TOKEN_FILE)")
	fs.StringVar(&f.regToken, "registration-token", "", "the cloud's registration token; prefer env STRATUS_AGENT_REGISTRATION_TOKEN or -registration-token-file")
	fs.StringVar(&f.regTokenFile, "registration-token-file", envOr("AGENT_REGISTRATION_TOKEN_FILE", ""), "file holding the registration token (env STRATUS_AGENT_REGISTRATION_TOKEN_FILE)")
	fs.StringVar(&f.name, "name", envOr("AGENT_NAME", host), "host name shown in the cloud (env STRATUS_AGENT_NAME)")
	fs.StringVar(&f.address, "address", envOr("AGENT_ADDRESS", ""), "management IP of this host (env STRATUS_AGENT_ADDRESS; required)")
	fs.StringVar(&f.zone, "zone", envOr("AGENT_ZONE", ""), "zone name or ID, for registration with the registration token (env STRATUS_AGENT_ZONE)")
	fs.StringVar(&f.pod, "pod", envOr("AGENT_POD", ""), "pod name or ID (env STRATUS_AGENT_POD)")
	fs.StringVar(&f.cluster, "cluster", envOr("AGENT_CLUSTER", ""), "cluster name or ID (env STRATUS_AGENT_CLUSTER)")
	fs.StringVar(&f.logLevel, "log-level", envOr("AGENT_LOG_LEVEL", "info"), "trace, debug, info, warn or error (env STRATUS_AGENT_LOG_LEVEL)")
	fs.StringVar(&f.logFormat, "log-format", envOr("AGENT_LOG_FORMAT", "text"), "text or json (env STRATUS_AGENT_LOG_FORMAT)")
	fs.StringVar(&f.statusAddr, "status-addr", envOr("AGENT_STATUS_ADDR", ""), "host:port serving GET /v1/status (host ID, name and the hypervisor's live domain list); empty turns it off. It is unauthenticated: bind loopback or a management network (env STRATUS_AGENT_STATUS_ADDR)")
	fs.StringVar(&f.watchdog, "watchdog", envOr("AGENT_WATCHDOG", ""), "watchdog device to arm, e.g. /dev/watchdog (hardware or softdog): petted only while the host's lease is valid (or the agent has safely decided about a lost one), so a hung or dead agent gets its host reset. Its timeout must be shorter than host.lease.margin. With it the host can be fenced by its lease (env STRATUS_AGENT_WATCHDOG)")
	f.tls.register(fs, "AGENT_", false)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	for _, s := range strings.Split(f.servers, ",") {
		if s = strings.TrimSpace(s); s != "" {
			f.serverList = append(f.serverList, s)
		}
	}
	var err error
	if f.resolvedToken, err = secretFrom(f.token, "AGENT_TOKEN", f.tokenFile); err != nil {
		return nil, fmt.Errorf("host token: %w", err)
	}
	if f.resolvedRegistration, err = secretFrom(f.regToken, "AGENT_REGISTRATION_TOKEN", f.regTokenFile); err != nil {
		return nil, fmt.Errorf("registration token: %w", err)
	}
	if f.resolvedToken == "" && f.resolvedRegistration == "" {
		if _, err := os.Stat(filepath.Join(f.dataDir, "host.json")); err != nil {
			return nil, errors.New("a host token (-token, -token-file) or the registration token (-registration-token, -registration-token-file) is required on first start")
		}
	}
	switch {
	case len(f.serverList) == 0:
		return nil, errors.New("-servers is required")
	case f.dataDir == "":
		return nil, errors.New("-data-dir is required")
	case f.address == "":
		return nil, errors.New("-address is required")
	case f.logFormat != "text" && f.logFormat != "json":
		return nil, fmt.Errorf("-log-format must be text or json, not %q", f.logFormat)
	case hclog.LevelFromString(f.logLevel) == hclog.NoLevel:
		return nil, fmt.Errorf("-log-level %q is not one of trace, debug, info, warn, error", f.logLevel)
	}
	if err := f.tls.validate(false); err != nil {
		return nil, err
	}
	return f, nil
}

// secretFrom returns the flag's value, else the environment variable
// STRATUS_<env>, else the trimmed content of file.
func secretFrom(flagValue, env, file string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if v := os.Getenv("STRATUS_" + env); v != "" {
		return v, nil
	}
	if file == "" {
		return "", nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", file, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// runAgent runs the host agent until SIGINT or SIGTERM. Stopping the
// agent leaves every domain as it is.
func runAgent(args []string) error {
	f, err := parseAgentFlags(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	logger := hclog.New(&hclog.LoggerOptions{
		Name: "stratus", Level: hclog.LevelFromString(f.logLevel), JSONFormat: f.logFormat == "json", Output: os.Stderr,
	})
	drv, err := hypervisor.Open(f.libvirtURI, logger)
	if err != nil {
		return fmt.Errorf("open libvirt %s: %w", f.libvirtURI, err)
	}
	defer drv.Close()
	cfg := agent.Config{
		Servers: f.serverList, DataDir: f.dataDir,
		Token: f.resolvedToken, RegistrationToken: f.resolvedRegistration,
		Name: f.name, Address: f.address, Zone: f.zone, Pod: f.pod, Cluster: f.cluster,
		Driver: drv, Logger: logger, Version: version,
	}
	if f.tls.ca != "" || f.tls.cert != "" {
		if cfg.HTTPClient, err = f.tls.httpClient(0); err != nil {
			return err
		}
	}
	var ln net.Listener
	if f.statusAddr != "" {
		if ln, err = net.Listen("tcp", f.statusAddr); err != nil {
			return fmt.Errorf("listen on -status-addr %s: %w", f.statusAddr, err)
		}
		defer ln.Close()
		cfg.StatusURL = statusURL(ln.Addr(), f.address)
	}
	if f.watchdog != "" {
		wd, err := os.OpenFile(f.watchdog, os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("open -watchdog %s: %w", f.watchdog, err)
		}
		// No magic close ('V') on exit, on purpose: a clean stop leaves
		// the watchdog armed. The HA guests keep running under libvirtd
		// without an agent, while the leader, once the lease plus its
		// margin has passed, trusts the lease as a fence and restarts them
		// elsewhere; disarming on SIGTERM would make `systemctl stop` a way
		// to run a VM twice. A restarted agent opens the device again and
		// pets it as soon as its lease is valid (a restart within the
		// watchdog's timeout is harmless); to stop the agent for longer,
		// first move the host's VMs off (maintenance) and stop the watchdog.
		defer wd.Close()
		cfg.Watchdog = wd
	}
	a, err := agent.New(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if ln != nil {
		stopStatus := serveAgentStatus(ln, a, f.name, drv, logger)
		defer stopStatus()
	}
	logger.Info("agent started", "servers", strings.Join(f.serverList, ","), "libvirt_uri", f.libvirtURI, "address", f.address,
		"version", version, "status_url", cfg.StatusURL, "watchdog", f.watchdog, "self_fence", a.SelfFence())
	err = a.Run(ctx)
	logger.Info("agent stopped", "host_id", a.HostID())
	return err
}

// agentStatus is the answer of the agent's GET /v1/status.
type agentStatus struct {
	HostID  string                    `json:"host_id"` // empty before the first registration
	Name    string                    `json:"name"`
	Domains []hypervisor.DomainStatus `json:"domains"`
}

// statusURL is the base URL peers reach the status server at: its
// listening address, with the host's management address in place of an
// unspecified IP (":8090", "0.0.0.0:8090").
func statusURL(addr net.Addr, mgmtAddress string) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String()
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = mgmtAddress
	}
	return "http://" + net.JoinHostPort(host, port)
}

// serveAgentStatus serves GET /v1/status and GET agent.PathLease on ln
// until the returned stop is called. Every status answer reads the domain
// list from the hypervisor at that moment, not from the agent's memory,
// so it shows what really runs on the host; a hypervisor that cannot be
// read answers 503. The lease answer is what peers ask before they fence
// themselves.
func serveAgentStatus(ln net.Listener, a *agent.Agent, name string, drv hypervisor.Driver, logger hclog.Logger) (stop func()) {
	mux := http.NewServeMux()
	mux.Handle("GET "+agent.PathLease, a.LeaseHandler())
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		doms, err := drv.Domains(r.Context())
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		if doms == nil {
			doms = []hypervisor.DomainStatus{}
		}
		_ = json.NewEncoder(w).Encode(agentStatus{HostID: a.HostID(), Name: name, Domains: doms})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log := logger.Named("status")
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("status server stopped", "error", err)
		}
	}()
	log.Info("serving status", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
}
