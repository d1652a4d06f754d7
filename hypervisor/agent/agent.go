package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/stratus-cloud/stratus/hypervisor"
)

// Defaults of the tunables in Config.
const (
	DefaultHeartbeatInterval = 10 * time.Second
	DefaultPollWait          = 30 * time.Second
	DefaultShutdownGrace     = 30 * time.Second
	DefaultRetryBase         = 500 * time.Millisecond
	DefaultRetryMax          = 30 * time.Second
)

// Files the agent keeps in its data dir.
const (
	hostFile   = "host.json"        // host ID and token
	rebootFile = "reboot-gens.json" // reboot generation carried out per VM
)

// Config configures an Agent.
type Config struct {
	// Servers are the management servers' base URLs (or one load balancer).
	Servers []string
	// DataDir keeps the host ID, its token and the reboot generations.
	DataDir string
	// Token is the host token from addHost; RegistrationToken the cloud's
	// registration token. One of them is needed unless the data dir
	// already holds a token from an earlier registration.
	Token             string
	RegistrationToken string
	// Name, Address, Zone, Pod and Cluster describe the host when it
	// registers; Address is its management IP.
	Name, Address, Zone, Pod, Cluster string
	Driver                            hypervisor.Driver
	Logger                            hclog.Logger
	// Now is the clock of request dates, the lease and shutdown grace;
	// default time.Now.
	Now func() time.Time

	// Optional tunables; zero means the default.

	// Version is sent as agent_version.
	Version string
	// PollWait is how long one desired-state request may block.
	PollWait time.Duration
	// ShutdownGrace is how long a guest may take to shut down before the
	// agent pulls the plug.
	ShutdownGrace time.Duration
	// RetryBase and RetryMax bound the backoff of the agent's loops and of
	// the client between servers.
	RetryBase, RetryMax time.Duration
	// HTTPClient sends the requests (TLS settings).
	HTTPClient *http.Client
	// Usage reports the host's CPU and memory use for heartbeats; by
	// default CPU is 0 and memory the sum of the running domains' specs.
	Usage func(ctx context.Context) (cpuPercent float64, memoryBytes int64)

	// Host HA (self-fencing, see lease.go and docs/ha.md).

	// StatusURL is the base URL (http://host:port) of the agent's status
	// server, which serves LeaseHandler at PathLease; peers ask it
	// before they fence themselves. Empty: this agent answers no peer.
	StatusURL string
	// Watchdog, when set, is the opened watchdog device: the agent writes
	// a byte to it every heartbeat interval (at most a second apart)
	// while its lease is valid, or while it has safely decided what to do
	// about a lost one; it stops when it cannot, so the watchdog resets
	// the host. With a watchdog the agent registers as able to
	// self-fence. The agent never closes it.
	Watchdog io.Writer
	// LeaseCheck is how often the lease is checked; default ttl/20, at
	// most 200ms.
	LeaseCheck time.Duration
	// PeerTimeout bounds the question to one peer; default 1s.
	PeerTimeout time.Duration
}

// Agent registers its host with the management servers, heartbeats,
// watches the host's desired state and reconciles the hypervisor to it.
type Agent struct {
	cfg    Config
	log    hclog.Logger
	client *Client
	driver hypervisor.Driver
	now    func() time.Time

	mu       sync.Mutex
	hostID   string
	token    string // host token: from Config, host.json or registration
	interval time.Duration
	leaseTTL time.Duration
	lastSent time.Time // when the last successful heartbeat was sent
	state    string    // host state in the last heartbeat answer
	facts    hypervisor.HostFacts
	memUsed  int64

	desiredMu   sync.Mutex
	desired     *Desired      // the newest verified answer not yet taken
	desiredNote chan struct{} // poked when desired is set
	kick        chan struct{} // asks the reconciler for a pass
	lost        chan struct{} // a 404 for the host: register again

	ls leaseState
	// startMu orders domain starts (read side) against a self-fence
	// (write side): no start runs while the agent fences, and every start
	// checks the lease inside it.
	startMu  sync.RWMutex
	peerHTTP *http.Client

	rep *reporter
	rec *reconciler
	// seenIndex is the highest desired-state index read in this
	// session; reports carry it (Report.Index).
	seenIndex atomic.Uint64
}

// hostRecord is host.json.
type hostRecord struct {
	HostID string `json:"host_id"`
	Token  string `json:"token"`
}

// New checks cfg and loads what an earlier run kept in the data dir.
func New(cfg Config) (*Agent, error) {
	switch {
	case len(cfg.Servers) == 0:
		return nil, ErrNoServers
	case cfg.DataDir == "":
		return nil, errors.New("agent: a data dir is required")
	case cfg.Driver == nil:
		return nil, errors.New("agent: a hypervisor driver is required")
	case cfg.Address == "":
		return nil, errors.New("agent: the host's management address is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PollWait <= 0 {
		cfg.PollWait = DefaultPollWait
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = DefaultShutdownGrace
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = DefaultRetryBase
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = DefaultRetryMax
	}
	log := cfg.Logger.Named("agent")
	client, err := NewClient(ClientConfig{
		Servers: cfg.Servers, HTTPClient: cfg.HTTPClient, Now: cfg.Now, Logger: log.Named("client"),
		BackoffBase: cfg.RetryBase, BackoffMax: min(cfg.RetryMax, 5*time.Second),
	})
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("agent: create data dir: %w", err)
	}
	a := &Agent{
		cfg: cfg, log: log, client: client, driver: cfg.Driver, now: cfg.Now,
		interval:    DefaultHeartbeatInterval,
		desiredNote: make(chan struct{}, 1),
		kick:        make(chan struct{}, 1),
		lost:        make(chan struct{}, 1),
		peerHTTP:    &http.Client{},
	}
	// The agent starts as after a lease loss: its first heartbeat waits
	// for a recovery pass over a full desired state.
	a.ls.lossGen = 1
	if err := a.loadLease(); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	var rec hostRecord
	switch err := readJSON(filepath.Join(cfg.DataDir, hostFile), &rec); {
	case err == nil:
		a.hostID, a.token = rec.HostID, rec.Token
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("agent: %w", err)
	}
	if cfg.Token != "" {
		if cfg.Token != a.token {
			a.hostID = "" // a new host token: the server tells who we are
		}
		a.token = cfg.Token
	}
	if a.token == "" && cfg.RegistrationToken == "" {
		return nil, errors.New("agent: a host token or the registration token is required")
	}
	gens := map[string]int{}
	if err := readJSON(filepath.Join(cfg.DataDir, rebootFile), &gens); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.rep = newReporter(a)
	a.rec = newReconciler(a, gens)
	return a, nil
}

// HostID returns the host's ID, empty before the first registration.
func (a *Agent) HostID() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.hostID
}

// Lease returns when the last successful heartbeat was sent and the lease
// TTL the servers gave: the host's lease runs until sent.Add(ttl). Host HA
// self-fencing counts from here, as the servers count their longer
// deadline from when they received it.
func (a *Agent) Lease() (sent time.Time, ttl time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastSent, a.leaseTTL
}

// creds returns the credentials of requests after registration.
func (a *Agent) creds() Credentials {
	a.mu.Lock()
	defer a.mu.Unlock()
	return Credentials{HostID: a.hostID, Key: a.token}
}

// Run registers the host and then heartbeats, watches the desired state,
// reconciles and reports until ctx ends; it then returns nil. It never
// stops domains because it stops, or because the servers are unreachable.
func (a *Agent) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	events := make(chan hypervisor.DomainEvent, 64)
	wg.Go(func() { a.watchEvents(ctx, events) })
	wg.Go(func() { a.rec.run(ctx, events) })
	wg.Go(func() { a.rep.run(ctx) })
	wg.Go(func() { a.monitorLease(ctx) })
	defer wg.Wait()
	for ctx.Err() == nil {
		if a.HostID() != "" {
			// Known host: destroy the copies of VMs placed elsewhere
			// before registering, which marks the host Up. If this
			// fails, the heartbeat loop does it before its first beat.
			if err := a.recoverLease(ctx); err != nil && ctx.Err() == nil {
				a.log.Debug("recovery pass before registration failed, retried before the first heartbeat", "error", err)
			}
		}
		if err := a.register(ctx); err != nil {
			break
		}
		select {
		case <-a.lost:
		default:
		}
		a.rep.resetSent()
		a.rec.newSession()
		a.seenIndex.Store(0) // the servers may have been restored
		sctx, cancel := context.WithCancel(ctx)
		var sw sync.WaitGroup
		sw.Go(func() { a.heartbeatLoop(sctx) })
		sw.Go(func() { a.watchDesired(sctx) })
		select {
		case <-ctx.Done():
		case <-a.lost:
			a.log.Warn("servers do not know this host, registering again", "host_id", a.HostID())
		}
		cancel()
		sw.Wait()
	}
	return nil
}

// markLost asks Run to register again (the servers answered 404 for the host).
func (a *Agent) markLost() {
	select {
	case a.lost <- struct{}{}:
	default:
	}
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// retryWait is the agent's backoff for its loops.
func (a *Agent) retryWait(attempt int) time.Duration {
	return Backoff(attempt, a.cfg.RetryBase, a.cfg.RetryMax)
}

// register retries registration until it succeeds or ctx ends.
func (a *Agent) register(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		err := a.registerOnce(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		a.log.Warn("registration failed", "attempt", attempt+1, "error", err)
		if !sleep(ctx, a.retryWait(attempt)) {
			return ctx.Err()
		}
	}
}

// registerOnce registers with the host token if the agent has one, and
// with the registration token when it has none or the servers refuse it.
func (a *Agent) registerOnce(ctx context.Context) error {
	facts, err := a.driver.Facts(ctx)
	if err != nil {
		return fmt.Errorf("read host facts: %w", err)
	}
	a.mu.Lock()
	a.facts = facts
	token := a.token
	a.mu.Unlock()
	if token != "" {
		err = a.registerWith(ctx, facts, token, false)
		if err == nil || a.cfg.RegistrationToken == "" {
			return err
		}
		st, _ := statusOf(err)
		if st != http.StatusUnauthorized && st != http.StatusForbidden && st != http.StatusNotFound {
			return err
		}
		a.log.Warn("host token refused, registering with the registration token", "status", st)
	}
	return a.registerWith(ctx, facts, a.cfg.RegistrationToken, true)
}

// registerWith sends one registration signed with key.
func (a *Agent) registerWith(ctx context.Context, facts hypervisor.HostFacts, key string, withRegToken bool) error {
	req := RegisterRequest{
		Name: a.cfg.Name, Address: a.cfg.Address, URI: a.driver.URI(),
		AgentVersion: a.cfg.Version, Facts: facts,
		StatusURL: a.cfg.StatusURL, SelfFence: a.SelfFence(),
	}
	if req.Name == "" {
		req.Name = facts.Hostname
	}
	if withRegToken {
		req.Zone, req.Pod, req.Cluster = a.cfg.Zone, a.cfg.Pod, a.cfg.Cluster
	}
	var resp RegisterResponse
	if err := a.client.Do(ctx, Credentials{Key: key}, Call{Method: http.MethodPost, Path: PathRegister, In: req, Out: &resp}); err != nil {
		return err
	}
	if resp.HostID == "" {
		return errors.New("registration answer without host_id")
	}
	if withRegToken && resp.Token == "" {
		return errors.New("registration with the registration token answered no host token")
	}
	token := key
	if resp.Token != "" {
		token = resp.Token
	}
	a.mu.Lock()
	old := hostRecord{HostID: a.hostID, Token: a.token}
	a.hostID, a.token = resp.HostID, token
	if d := resp.HeartbeatInterval.Duration(); d > 0 {
		a.interval = d
	}
	// A registration grants no lease: its TTL must not stretch a lease
	// the agent holds (the leader counts that one by the TTL it granted
	// with it). Without one, it only bounds the first heartbeat's tries.
	if d := resp.LeaseTTL.Duration(); d > 0 {
		if valid, _ := a.leaseValidLocked(a.now()); !valid {
			a.leaseTTL = d
		}
	}
	a.mu.Unlock()
	rec := hostRecord{HostID: resp.HostID, Token: token}
	if rec != old {
		if err := writeJSON(filepath.Join(a.cfg.DataDir, hostFile), rec); err != nil {
			return fmt.Errorf("keep host token: %w", err)
		}
	}
	a.log.Info("registered", "host_id", resp.HostID, "new_token", resp.Token != "", "heartbeat_interval", resp.HeartbeatInterval.Duration())
	return nil
}

// readJSON decodes the JSON file at path into v.
func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", filepath.Base(path), err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s: %w", filepath.Base(path), err)
	}
	return nil
}

// writeJSON replaces the file at path with v, mode 0600, atomically.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(append(b, '\n'))
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}
