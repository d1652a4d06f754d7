package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/stratus-cloud/stratus/hypervisor"
	"github.com/stratus-cloud/stratus/hypervisor/agent"
)

// stratus sim: many simulated hosts in one process, each a real host agent
// (hypervisor/agent: registration, heartbeats, desired-state long polls,
// reconciliation, reports) on its own hypervisor, so that one machine can
// pose as thousands of hosts. See simUsage for why the hypervisor under
// each agent is the in-memory hypervisor.Fake by default.

const simUsage = `Usage: stratus sim -hosts N [-cloud DIR/cloud.json | -servers URL,...] [flags]

Runs N simulated hosts in this one process. Each is a real host agent (the
same loop as stratus agent: it registers with the registration token,
heartbeats, long-polls its desired state, reconciles and reports) on its
own hypervisor, sharing one HTTP transport. Hosts start at -ramp per second
and are spread over clusters of -hosts-per-cluster hosts; progress is
printed every -progress.

Hypervisor (-driver):
  fake     (default) hypervisor.Fake, in memory. Measured on this machine
           kind (2 cores): about 4 KB per host and 1 KB and 3 µs per VM
           (volume + define + start). libvirt's test driver costs 0.28 ms
           and 14 KB per connection (10,000 hosts: 2.8 s and 135 MB, which
           is affordable) but 0.46 ms of CPU and 6.6 KB per domain
           define+start: 100,000 VMs take 46 s of CPU inside libvirt (and
           660 MB), CPU that on a small benchmark machine is taken from the
           servers being measured. The fake keeps the simulator out of the
           figures; the agents' protocol traffic is the same either way.
  libvirt  libvirt's test:/// driver, one host file (and connection) per
           host in -data-dir/hosts/NAME/host.xml, as stratus dev does.

Host HA: simulated hosts serve no status endpoint (no listener per host)
and arm no watchdog, so they register as unable to self-fence and peers
cannot ask them about their lease; the lease monitor runs every
-lease-check. An HA VM on a sim host that the leader declares Down is not
restarted elsewhere unless fenced by other means. Do not benchmark host HA
with sim.

Credentials: the registration token from -registration-token-file, env
STRATUS_AGENT_REGISTRATION_TOKEN, or derived from env STRATUS_CLUSTER_SECRET;
with -cloud, from the dev cloud's dev.json beside cloud.json. With root admin
keys (-cloud, or STRATUS_API_KEY and STRATUS_SECRET_KEY) sim adds the
clusters it needs to -pod; without them the clusters must exist.

Flags:
`

// simFlags are the parsed flags of stratus sim.
type simFlags struct {
	hosts, first, perCluster int
	servers, cloudFile       string
	regTokenFile             string
	zone, pod, cluster       string
	prefix, addressBase      string
	dataDir, driver          string
	logLevel, pprofAddr      string
	cpus, memGiB, mhz        int
	ramp                     float64
	progress, leaseCheck     time.Duration
	pollWait                 time.Duration

	serverList       []string
	regToken         string
	apiKey, secret   string
	apiURL           string
	baseAddr         netip.Addr
	createdDataDir   bool
	clusterPerFormat bool
}

func parseSimFlags(args []string) (*simFlags, error) {
	f := &simFlags{}
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), simUsage); fs.PrintDefaults() }
	fs.IntVar(&f.hosts, "hosts", 0, "simulated hosts to run (required)")
	fs.IntVar(&f.first, "first", 1, "number of the first host: hosts are PREFIX<first> .. PREFIX<first+hosts-1>; give a second sim process another range")
	fs.StringVar(&f.servers, "servers", envOr("SIM_SERVERS", ""), "comma-separated base URLs of the servers or their load balancer (env STRATUS_SIM_SERVERS); each host starts at a different one")
	fs.StringVar(&f.cloudFile, "cloud", "", "cloud.json of stratus dev: its servers, admin keys and (from dev.json beside it) the registration token")
	fs.StringVar(&f.regTokenFile, "registration-token-file", envOr("AGENT_REGISTRATION_TOKEN_FILE", ""), "file holding the registration token (env STRATUS_AGENT_REGISTRATION_TOKEN_FILE)")
	fs.StringVar(&f.zone, "zone", devZone, "zone name or ID the hosts register in")
	fs.StringVar(&f.pod, "pod", devPod, "pod name or ID of the clusters")
	fs.StringVar(&f.cluster, "cluster", "sim-cluster-%d", "cluster name; a %d in it numbers the clusters (1, 2, ...), -hosts-per-cluster hosts each")
	fs.IntVar(&f.perCluster, "hosts-per-cluster", 500, "hosts per cluster when -cluster has a %d")
	fs.StringVar(&f.prefix, "prefix", "sim-host-", "host name prefix")
	fs.StringVar(&f.addressBase, "address-base", "10.128.0.0", "management IPv4 of host number 0; host n gets this address plus n (addresses are unique per zone)")
	fs.StringVar(&f.dataDir, "data-dir", "", "directory for each host's agent data (DIR/hosts/NAME); default a temporary directory in /dev/shm (tmpfs: each agent fsyncs its lease file at every heartbeat) removed at exit. Reuse it to restart the same hosts with their host tokens")
	fs.StringVar(&f.driver, "driver", "fake", "hypervisor under each agent: fake or libvirt (see above)")
	fs.StringVar(&f.logLevel, "log-level", "error", "agents' log level: trace, debug, info, warn or error (warn logs every host's start-up lease loss)")
	fs.IntVar(&f.cpus, "host-cpus", 64, "CPUs of each simulated host")
	fs.IntVar(&f.mhz, "host-mhz", 2000, "MHz per CPU of each simulated host")
	fs.IntVar(&f.memGiB, "host-memory-gib", 256, "memory of each simulated host, GiB")
	fs.Float64Var(&f.ramp, "ramp", 500, "hosts started per second")
	fs.DurationVar(&f.progress, "progress", 2*time.Second, "how often to print progress; 0 prints only when all hosts are registered and heartbeating")
	fs.DurationVar(&f.leaseCheck, "lease-check", time.Second, "how often each agent checks its lease (stratus agent: ttl/20, at most 200ms)")
	fs.DurationVar(&f.pollWait, "poll-wait", agent.DefaultPollWait, "how long one desired-state long poll may block")
	fs.StringVar(&f.pprofAddr, "pprof-addr", "", "serve Go's pprof profiles of the simulator on this address (as stratus server; port 0 picks one, written to <data-dir>/pprof-addr); off when empty")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := f.validate(); err != nil {
		return nil, err
	}
	if err := f.resolve(); err != nil {
		return nil, err
	}
	return f, nil
}

// validate checks the flags that need no files or environment.
func (f *simFlags) validate() error {
	switch {
	case f.hosts <= 0:
		return errors.New("-hosts must be at least 1")
	case f.first < 0:
		return errors.New("-first must not be negative")
	case f.perCluster <= 0:
		return errors.New("-hosts-per-cluster must be at least 1")
	case f.ramp <= 0:
		return errors.New("-ramp must be positive")
	case f.driver != "fake" && f.driver != "libvirt":
		return fmt.Errorf("-driver must be fake or libvirt, not %q", f.driver)
	case f.cpus <= 0 || f.mhz <= 0 || f.memGiB <= 0:
		return errors.New("-host-cpus, -host-mhz and -host-memory-gib must be positive")
	case hclog.LevelFromString(f.logLevel) == hclog.NoLevel:
		return fmt.Errorf("-log-level %q is not one of trace, debug, info, warn, error", f.logLevel)
	case f.zone == "" || f.pod == "" || f.cluster == "":
		return errors.New("-zone, -pod and -cluster must not be empty")
	case strings.Count(f.cluster, "%") > 1 || (strings.Contains(f.cluster, "%") && !strings.Contains(f.cluster, "%d")):
		return fmt.Errorf("-cluster %q: the only verb allowed is one %%d", f.cluster)
	}
	addr, err := netip.ParseAddr(f.addressBase)
	if err != nil || !addr.Is4() {
		return fmt.Errorf("-address-base %q is not an IPv4 address", f.addressBase)
	}
	last := addr.As4()
	n := uint32(last[0])<<24 | uint32(last[1])<<16 | uint32(last[2])<<8 | uint32(last[3])
	if uint64(n)+uint64(f.first)+uint64(f.hosts) > 1<<32 {
		return fmt.Errorf("-address-base %s has no room for %d hosts from number %d", f.addressBase, f.hosts, f.first)
	}
	f.baseAddr = addr
	f.clusterPerFormat = strings.Contains(f.cluster, "%d")
	return nil
}

// resolve reads the servers and credentials from -cloud, the flags and
// the environment.
func (f *simFlags) resolve() error {
	f.apiKey, f.secret = os.Getenv("STRATUS_API_KEY"), os.Getenv("STRATUS_SECRET_KEY")
	if f.cloudFile != "" {
		if err := f.readCloud(); err != nil {
			return err
		}
	}
	for _, s := range strings.Split(f.servers, ",") {
		if s = strings.TrimSuffix(strings.TrimSpace(s), "/"); s != "" {
			f.serverList = append(f.serverList, s)
		}
	}
	if len(f.serverList) == 0 {
		return errors.New("give the servers with -servers (or -cloud)")
	}
	if f.apiURL == "" && f.apiKey != "" {
		f.apiURL = f.serverList[0] + "/client/api"
	}
	if f.regToken == "" {
		tok, err := secretFrom("", "AGENT_REGISTRATION_TOKEN", f.regTokenFile)
		if err != nil {
			return fmt.Errorf("registration token: %w", err)
		}
		f.regToken = tok
	}
	if f.regToken == "" {
		f.regToken = agent.RegistrationToken(os.Getenv("STRATUS_CLUSTER_SECRET"))
	}
	if f.regToken == "" {
		return errors.New("the registration token is required: -registration-token-file, STRATUS_AGENT_REGISTRATION_TOKEN, STRATUS_CLUSTER_SECRET or -cloud")
	}
	return nil
}

// readCloud takes servers, admin keys and the registration token from a
// dev cloud's cloud.json (and the dev.json beside it), unless flags or the
// environment gave them.
func (f *simFlags) readCloud() error {
	b, err := os.ReadFile(f.cloudFile)
	if err != nil {
		return fmt.Errorf("read -cloud: %w", err)
	}
	var cf CloudFile
	if err := json.Unmarshal(b, &cf); err != nil {
		return fmt.Errorf("-cloud %s is not a cloud.json: %w", f.cloudFile, err)
	}
	if f.servers == "" {
		var urls []string
		for _, s := range cf.Servers {
			urls = append(urls, strings.TrimSuffix(s.APIURL, "/client/api"))
		}
		f.servers = strings.Join(urls, ",")
	}
	if f.apiKey == "" {
		f.apiKey, f.secret, f.apiURL = cf.APIKey, cf.SecretKey, cf.APIURL
	}
	var layout devLayout
	if b, err := os.ReadFile(filepath.Join(filepath.Dir(f.cloudFile), "dev.json")); err == nil && json.Unmarshal(b, &layout) == nil {
		f.regToken = agent.RegistrationToken(layout.Secret)
	}
	return nil
}

// hostName, hostAddress and hostCluster describe simulated host number n.
func (f *simFlags) hostName(n int) string { return fmt.Sprintf("%s%d", f.prefix, n) }

func (f *simFlags) hostAddress(n int) string {
	a := f.baseAddr.As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += uint32(n)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}).String()
}

func (f *simFlags) hostCluster(n int) string {
	if !f.clusterPerFormat {
		return f.cluster
	}
	return fmt.Sprintf(f.cluster, (n-f.first)/f.perCluster+1)
}

// clusterNames lists the clusters the hosts register into, in order.
func (f *simFlags) clusterNames() []string {
	var names []string
	seen := map[string]bool{}
	for n := f.first; n < f.first+f.hosts; n++ {
		if c := f.hostCluster(n); !seen[c] {
			seen[c] = true
			names = append(names, c)
		}
	}
	return names
}

// simTempRoot is where the default data dir goes: /dev/shm when it is
// there. Every agent writes and fsyncs its lease file at each heartbeat
// (cheap for one host, but profiled at more than half of the simulator's
// CPU for 2,000 hosts on ext4, fsyncs that also slow the servers' raft
// log on the same disk); on tmpfs they cost next to nothing.
func simTempRoot() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if probe, err := os.MkdirTemp("/dev/shm", ".stratus-sim-probe-"); err == nil {
			_ = os.Remove(probe)
			return "/dev/shm"
		}
	}
	return os.TempDir()
}

// simTransport is the one HTTP transport of every simulated host: each
// host keeps a long poll open, so it may hold about one connection per
// host per server plus the heartbeats and reports in flight.
func simTransport(hosts int) *http.Transport {
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        0, // no limit overall; per server below
		MaxIdleConnsPerHost: hosts + 256,
		IdleConnTimeout:     90 * time.Second,
	}
}

// runSim runs the simulated hosts until SIGINT or SIGTERM.
func runSim(args []string) error {
	f, err := parseSimFlags(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if f.dataDir == "" {
		if f.dataDir, err = os.MkdirTemp(simTempRoot(), "stratus-sim-"); err != nil {
			return fmt.Errorf("make a data dir: %w", err)
		}
		f.createdDataDir = true
		defer os.RemoveAll(f.dataDir)
	}
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return fmt.Errorf("create -data-dir: %w", err)
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "sim", Level: hclog.LevelFromString(f.logLevel), Output: os.Stderr})
	if f.pprofAddr != "" {
		stopPprof, err := startPprof(f.pprofAddr, f.dataDir, logger)
		if err != nil {
			return err
		}
		defer stopPprof()
		if b, err := os.ReadFile(filepath.Join(f.dataDir, pprofAddrFile)); err == nil {
			fmt.Printf("sim: pprof on http://%s/debug/pprof/\n", strings.TrimSpace(string(b)))
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if f.apiKey != "" {
		if err := ensureSimClusters(ctx, f); err != nil {
			return err
		}
	}
	s := &simulator{f: f, logger: logger, http: &http.Client{Transport: simTransport(f.hosts)}}
	err = s.run(ctx)
	s.wg.Wait()
	s.closeDrivers()
	fmt.Printf("sim: stopped %d hosts\n", s.started())
	return err
}

// simulator runs the hosts.
type simulator struct {
	f      *simFlags
	logger hclog.Logger
	http   *http.Client
	wg     sync.WaitGroup

	mu      sync.Mutex
	agents  []*agent.Agent
	drivers []hypervisor.Driver
}

func (s *simulator) started() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.agents)
}

// run starts the hosts at the ramp rate, reports progress and waits for ctx.
func (s *simulator) run(ctx context.Context) error {
	f := s.f
	fmt.Printf("sim: starting %d hosts (%s%d..%s%d, driver %s) at %.0f/s against %s; data in %s\n",
		f.hosts, f.prefix, f.first, f.prefix, f.first+f.hosts-1, f.driver, f.ramp, strings.Join(f.serverList, ","), f.dataDir)
	t0 := time.Now()
	done := make(chan struct{})
	go s.reportProgress(ctx, t0, done)
	for i := 0; i < f.hosts; i++ {
		due := t0.Add(time.Duration(float64(i) / f.ramp * float64(time.Second)))
		if d := time.Until(due); d > 0 && !sleepCtx(ctx, d) {
			break
		}
		if err := s.startHost(ctx, i); err != nil {
			return err
		}
	}
	<-ctx.Done()
	<-done
	return nil
}

// startHost makes host number first+i and runs its agent.
func (s *simulator) startHost(ctx context.Context, i int) error {
	f := s.f
	n := f.first + i
	name := f.hostName(n)
	hdir := filepath.Join(f.dataDir, "hosts", name)
	drv, err := s.openDriver(name, hdir)
	if err != nil {
		return err
	}
	servers := make([]string, 0, len(f.serverList))
	for j := range f.serverList {
		servers = append(servers, f.serverList[(i+j)%len(f.serverList)])
	}
	a, err := agent.New(agent.Config{
		Servers: servers, DataDir: hdir, RegistrationToken: f.regToken,
		Name: name, Address: f.hostAddress(n), Zone: f.zone, Pod: f.pod, Cluster: f.hostCluster(n),
		Driver: drv, Logger: s.logger.With("host", name), Version: version,
		HTTPClient: s.http, PollWait: f.pollWait, LeaseCheck: f.leaseCheck,
	})
	if err != nil {
		_ = drv.Close()
		return fmt.Errorf("host %s: %w", name, err)
	}
	s.mu.Lock()
	s.agents = append(s.agents, a)
	s.drivers = append(s.drivers, drv)
	s.mu.Unlock()
	s.wg.Go(func() {
		if err := a.Run(ctx); err != nil {
			s.logger.Error("agent stopped", "host", name, "error", err)
		}
	})
	return nil
}

// openDriver opens the hypervisor of one simulated host.
func (s *simulator) openDriver(name, hdir string) (hypervisor.Driver, error) {
	f := s.f
	if f.driver == "fake" {
		return hypervisor.NewFake(hypervisor.HostFacts{
			Hostname: name, CPUs: f.cpus, CPUSockets: 1, CPUMHz: int64(f.mhz), MemoryBytes: int64(f.memGiB) << 30,
			HypervisorVersion: "sim", LibvirtVersion: "sim", Arch: "x86_64",
		}), nil
	}
	if err := os.MkdirAll(hdir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", hdir, err)
	}
	xml := filepath.Join(hdir, "host.xml")
	if err := hypervisor.WriteTestHost(xml, hypervisor.TestHost{Name: name, CPUs: f.cpus, MHz: f.mhz, MemoryMiB: int64(f.memGiB) << 10}); err != nil {
		return nil, err
	}
	drv, err := hypervisor.Open("test://"+xml, s.logger)
	if err != nil {
		return nil, fmt.Errorf("open libvirt test driver of %s: %w", name, err)
	}
	return drv, nil
}

func (s *simulator) closeDrivers() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.drivers {
		_ = d.Close()
	}
}

// sleepCtx waits d or until ctx ends; it reports whether ctx is live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
