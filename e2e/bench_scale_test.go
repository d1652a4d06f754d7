package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The scale benchmark (make bench-scale): 3 servers, `stratus sim` posing
// as STRATUS_SCALE_HOSTS hosts, STRATUS_SCALE_VMS VMs deployed through the
// API by many clients; then list latencies on every node, RSS, snapshot,
// a new server's catch-up and leader failover at that size. Figures only:
// nothing about them is asserted (the goals of issue 7 are printed beside
// them), but every phase must work.

const envBenchScale = "STRATUS_BENCH_SCALE"

// scaleConfig is the benchmark's size and knobs, from the environment.
type scaleConfig struct {
	hosts, vms, clients  int
	perCluster           int
	listSamples          int
	failovers            int
	tenantEvery          int // every n-th client deploys as the tenant
	pollEvery            time.Duration
	deployTimeout        time.Duration
	stallLimit           time.Duration // no VM Running for this long stops the deploys
	idleFor              time.Duration // CPU of the hosts alone is measured this long
	profileDir, outPath  string
	simRamp              string
	hostMemGiB, hostCPUs int
	// simNice is the sim's nice value: the servers come first on a machine
	// that also plays every host (in a cloud the hosts are other machines).
	simNice    int
	simPerProc int // hosts per sim process (0: simHostsPerProc)
	// settings are global settings set before the hosts start
	// (STRATUS_SCALE_SETTINGS="name=value,name=value"), e.g.
	// host.heartbeat.rate.
	settings   [][2]string
	serverArgs []string // extra flags of every server (STRATUS_SCALE_SERVER_ARGS)
}

// defaultScaleServerArgs are the servers' flags at scale, as docs/deploy.md
// advises for a server holding this much on a busy machine: a soft memory
// limit under the 4 GiB goal, and a leader that tolerates a second (not
// half of one) without a quorum's answer before it steps down, and a
// collector that waits for the heap to reach four times what is live
// (-gc-percent 300) instead of twice, capped by the limit; none of them
// slows a failover after a crash, which the followers' heartbeat timeout
// (1 s) detects.
const defaultScaleServerArgs = "-memory-limit 3GiB -gc-percent 300 -raft-leader-lease-timeout 1s"

func scaleEnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func scaleEnvDur(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func scaleConfigFromEnv() scaleConfig {
	c := scaleConfig{
		hosts:         scaleEnvInt("STRATUS_SCALE_HOSTS", 10000),
		vms:           scaleEnvInt("STRATUS_SCALE_VMS", 100000),
		clients:       scaleEnvInt("STRATUS_SCALE_CLIENTS", 256),
		perCluster:    scaleEnvInt("STRATUS_SCALE_HOSTS_PER_CLUSTER", 500),
		listSamples:   scaleEnvInt("STRATUS_SCALE_LIST_SAMPLES", 100),
		failovers:     scaleEnvInt("STRATUS_SCALE_FAILOVERS", 3),
		tenantEvery:   8,
		pollEvery:     scaleEnvDur("STRATUS_SCALE_POLL", 100*time.Millisecond),
		deployTimeout: scaleEnvDur("STRATUS_SCALE_DEPLOY_TIMEOUT", 45*time.Minute),
		stallLimit:    scaleEnvDur("STRATUS_SCALE_STALL", 3*time.Minute),
		idleFor:       scaleEnvDur("STRATUS_SCALE_IDLE", 30*time.Second),
		profileDir:    os.Getenv("STRATUS_SCALE_PROFILES"),
		outPath:       os.Getenv("STRATUS_SCALE_OUT"),
		simRamp:       scaleEnvOr("STRATUS_SCALE_RAMP", "500"),
		serverArgs:    strings.Fields(scaleEnvOr("STRATUS_SCALE_SERVER_ARGS", defaultScaleServerArgs)),
		simNice:       scaleEnvInt("STRATUS_SCALE_SIM_NICE", 0),
		hostCPUs:      64,
		hostMemGiB:    256,
	}
	for _, kv := range strings.Split(os.Getenv("STRATUS_SCALE_SETTINGS"), ",") {
		if name, value, ok := strings.Cut(strings.TrimSpace(kv), "="); ok && name != "" {
			c.settings = append(c.settings, [2]string{name, value})
		}
	}
	if c.profileDir == "" {
		c.profileDir = filepath.Join(os.TempDir(), "stratus-scale-profiles-"+time.Now().UTC().Format("20060102-150405"))
	}
	return c
}

func scaleEnvOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// scaleAPI sends raw signed CloudStack requests (keep-alive, small client
// overhead) to a chosen server.
type scaleAPI struct {
	client *http.Client
}

func newScaleAPI() *scaleAPI {
	tr := newTransport()
	tr.MaxIdleConnsPerHost = 512
	return &scaleAPI{client: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

// call POSTs command to s as k and decodes the inner answer into out; a
// CloudStack error comes back as an error naming its code and text.
func (a *scaleAPI) call(s *server, k adminKeys, command string, params url.Values, out any) error {
	form := signedForm(command, params, k)
	resp, err := a.client.Post(s.apiURL(), "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("transport: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return fmt.Errorf("HTTP %d, undecodable body: %.200s", resp.StatusCode, body)
	}
	for _, inner := range top {
		if resp.StatusCode != http.StatusOK {
			var e struct {
				Code int    `json:"errorcode"`
				Text string `json:"errortext"`
			}
			_ = json.Unmarshal(inner, &e)
			return fmt.Errorf("%s: error %d: %s", command, e.Code, e.Text)
		}
		if out == nil {
			return nil
		}
		return json.Unmarshal(inner, out)
	}
	return fmt.Errorf("%s: empty answer", command)
}

// count returns the count of a list command's answer (pagesize 1).
func (a *scaleAPI) count(s *server, k adminKeys, command string, params url.Values) (int, error) {
	p := url.Values{"page": {"1"}, "pagesize": {"1"}}
	for name, v := range params {
		p[name] = v
	}
	var out struct {
		Count int `json:"count"`
	}
	err := a.call(s, k, command, p, &out)
	return out.Count, err
}

// TestBenchmarkScale is make bench-scale.
func TestBenchmarkScale(t *testing.T) {
	if os.Getenv(envBenchScale) != "1" {
		t.Skipf("scale benchmark: set %s=1 and %s=/path/to/stratus (or run make bench-scale)", envBenchScale, envBin)
	}
	bin := requireBin(t)
	cfg := scaleConfigFromEnv()
	rep := &scaleReport{Hosts: cfg.hosts, VMsWanted: cfg.vms, Clients: cfg.clients, Started: time.Now().UTC(),
		Command: fmt.Sprintf("STRATUS_BENCH_SCALE=1 STRATUS_SCALE_HOSTS=%d STRATUS_SCALE_VMS=%d STRATUS_SCALE_SERVER_ARGS=%q make bench-scale",
			cfg.hosts, cfg.vms, strings.Join(cfg.serverArgs, " "))}
	if len(cfg.settings) > 0 {
		var kvs []string
		for _, kv := range cfg.settings {
			kvs = append(kvs, kv[0]+"="+kv[1])
		}
		rep.Command = fmt.Sprintf("STRATUS_SCALE_SETTINGS=%q ", strings.Join(kvs, ",")) + rep.Command
	}
	defer func() { rep.print(t, cfg) }()

	c := newCluster(t, bin, 3)
	for _, s := range c.servers {
		s.args = append(s.args, cfg.serverArgs...)
	}
	prof := newProfiler(t, c, cfg.profileDir)
	c.startAll()
	api := newScaleAPI()
	z := setupScaleZone(t, c, api)
	setScaleSettings(t, c, cfg.settings)
	sim := startScaleSim(t, c, z, cfg)
	rep.SimProcs = len(sim)
	rep.HostsUp = waitScaleHostsUp(t, c, api, z, sim, cfg)
	rep.RSSAfterHosts = measureRSS(c, sim)
	// What the hosts alone cost (heartbeats, long polls): CPU time per
	// process over an idle window, less sensitive to a shared machine's
	// load than latencies are.
	idle0 := cpuUse(c, sim)
	time.Sleep(cfg.idleFor)
	rep.IdleCPU, rep.IdleFor = cpuSince(idle0, cpuUse(c, sim)), cfg.idleFor

	cpu0, load0, batches0 := cpuUse(c, sim), loadAvg(), scrapeBatches(t, c)
	rep.Deploy = runScaleDeploy(t, c, api, z, cfg, prof)
	rep.DeployCPU, rep.LoadAvg = cpuSince(cpu0, cpuUse(c, sim)), load0+" at the deploy's start, "+loadAvg()+" at its end"
	rep.DeployBatches = batchesSince(batches0, scrapeBatches(t, c))
	if rep.Deploy.Done == 0 {
		t.Errorf("no VM was deployed: errors %v", rep.Deploy.Errors)
	}
	rep.VMsRunning, _ = api.count(c.servers[0], c.keys, "listVirtualMachines", url.Values{"listall": {"true"}, "state": {"Running"}})
	rep.Lists = measureScaleLists(t, c, api, z, cfg, prof)
	rep.RSS = measureRSS(c, sim)
	rep.Memory = prof.heap(c)
	rep.Snapshot = measureScaleSnapshot(t, c, cfg.profileDir)
	rep.Failover = measureScaleFailover(t, c, cfg)
	rep.Join = measureScaleJoin(t, c, cfg)
	rep.RSSEnd = measureRSS(c, sim)
	rep.Profiles = prof.files
	if err := sim.crashed(); err != nil {
		t.Error(err)
	}
	c.checkNoCrash()
}
