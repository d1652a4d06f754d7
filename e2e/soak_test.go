package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The soak runs only when asked (make soak): it takes a long time.
const (
	envSoak       = "STRATUS_SOAK"        // 1 runs TestSoak
	envSoakRounds = "STRATUS_SOAK_ROUNDS" // rounds (default 100)
	envSoakSeed   = "STRATUS_SOAK_SEED"   // seed of the fault choice (default: the clock), to replay a run
	soakUIDBase   = 61000                 // host i's agent runs as soakUIDBase+i, so one host at a time can be cut off
)

// soakStats is what the soak did, printed at its end (also on failure).
type soakStats struct {
	rounds         int
	faults         map[string]int
	agentRestarts  int
	serverRestarts int
	haRestarts     int // HA VMs restarted on another host
	started        int // VMs found Stopped after a round and started again
	seed           uint64
}

func (s *soakStats) String() string {
	return fmt.Sprintf("seed %d: %d rounds, faults %v; restarts: %d agents, %d servers, %d HA VMs on other hosts, %d VMs started again",
		s.seed, s.rounds, s.faults, s.agentRestarts, s.serverRestarts, s.haRestarts, s.started)
}

// TestSoak runs rounds of a random fault against `stratus dev --servers 3
// --hosts 4` with 20 HA and 10 non-HA VMs and the double-run sampler
// running all along: kill -9 of a host's agent (and its restart), a
// host cut off from servers and peers (as root), or kill -9 of the Raft
// leader (and its restart). After every round the cloud must have
// settled (every host Up, every VM Running where the API places it, host
// capacity their sum) and no VM may have run on two hosts at once; a
// leader kill must fence no host. It prints rounds, restarts and
// violations, and fails on any violation.
func TestSoak(t *testing.T) {
	if os.Getenv(envSoak) != "1" {
		t.Skipf("soak: set %s=1 and %s=/path/to/stratus (or run make soak)", envSoak, envBin)
	}
	bin := requireBin(t)
	rounds := 100
	if v := os.Getenv(envSoakRounds); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number", envSoakRounds, v)
		}
		rounds = n
	}
	st := &soakStats{faults: map[string]int{}, seed: uint64(time.Now().UnixNano())}
	if v := os.Getenv(envSoakSeed); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", envSoakSeed, v, err)
		}
		st.seed = n
	}
	rng := rand.New(rand.NewPCG(st.seed, 0))
	begin := time.Now()
	d := startDevCloud(t, bin, 4)
	sampler, tl, stopSampler := startHASampler(d)
	defer stopSampler()
	r := newHARun(t, d, sampler, tl)
	defer func() {
		sampler.mu.Lock()
		violations := sampler.total
		sampler.mu.Unlock()
		t.Logf("e2e: soak: %s; double-run violations: %d; sampler: %s; %s", st, violations, sampler, time.Since(begin).Round(time.Second))
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rounds)*time.Minute+5*time.Minute)
	defer cancel()

	r.setSettings(fastHASettings)
	r.waitLeaseTTL(fastTTL)
	ha := r.deployWith(ctx, "deploy HA", "ha", r.haOffering, haVMs)
	plain := r.deployWith(ctx, "deploy non-HA", "plain", r.offering, plainVMs)
	ours := append(ha, plain...)
	r.expectVMs("deploy", ours, "Running")
	checkHostsMatchAPI(t, r.vmRun, "deploy")

	kinds := []string{"agent", "leader"}
	if why := canPartition(); why == "" {
		kinds = append(kinds, "partition")
		for i, h := range d.hosts {
			r.restartAgentAs(h, soakUIDBase+i)
			st.agentRestarts++
		}
		checkHostsMatchAPI(t, r.vmRun, "agents restarted under their own uids")
	} else {
		t.Logf("e2e: soak without partitions: %s", why)
	}
	t.Logf("e2e: soak: %d rounds of %v, seed %d (%s=%d replays the choices)", rounds, kinds, st.seed, envSoakSeed, st.seed)

	for round := 1; round <= rounds; round++ {
		kind := kinds[rng.IntN(len(kinds))]
		i := rng.IntN(len(d.hosts))
		h := d.hosts[i]
		t0 := time.Now()
		detail := ""
		switch kind {
		case "agent":
			res := r.killRound(h, true)
			st.agentRestarts++
			st.haRestarts += res.movedHA
			detail = fmt.Sprintf("%s: %d HA VMs moved in %s, %d non-HA kept", h.name, res.movedHA, fmtDur(res.toRunning), res.plainKept)
		case "partition":
			res := r.partitionRound(h, soakUIDBase+i)
			st.haRestarts += res.movedHA
			detail = fmt.Sprintf("%s: self-fenced %s after the cut, %d HA VMs moved in %s (lead %s..%s), %d non-HA ran on", h.name,
				fmtDur(res.toSelfFence), res.movedHA, fmtDur(res.toRunning), fmtDur(res.leadMin), fmtDur(res.leadMax), res.plainRunning)
		case "leader":
			detail = r.leaderKillRound(ctx)
			st.serverRestarts++
		}
		st.faults[kind]++
		st.rounds = round
		st.started += r.startStopped(ctx, ours)
		checkHostsMatchAPI(t, r.vmRun, fmt.Sprintf("round %d (%s)", round, kind))
		t.Logf("e2e: soak round %d/%d %s %s in %s", round, rounds, kind, detail, time.Since(t0).Round(time.Millisecond))
	}
	sampler.check(t, "soak end")
	d.c.checkNoCrash()
}

// leaderKillRound kills the Raft leader with SIGKILL, waits for a new one,
// starts the killed server again and then waits out the new leader's
// failover grace: no host may be declared lost meanwhile (no new
// HOST.DISCONNECT or HOST.FENCE event, every host Up).
func (r *haRun) leaderKillRound(ctx context.Context) string {
	t := r.t
	t.Helper()
	var hostIDs []string
	for _, h := range r.d.hosts {
		hostIDs = append(hostIDs, h.id)
	}
	before := r.eventIDs(hostIDs...)
	leader, term, err := r.d.leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r.allowRetries.Store(true)
	defer r.allowRetries.Store(false)
	p, pbin, err := r.d.killServer(leader)
	if err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	var next string
	r.waitFor("a new leader after killing "+leader.id, leaderTimeout, func() (bool, string) {
		lctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		nl, nt, err := r.d.leader(lctx)
		if err != nil {
			return false, err.Error()
		}
		next = nl.id
		return nt > term, fmt.Sprintf("%s leads in term %d", nl.id, nt)
	})
	elected := time.Since(killedAt)
	if err := r.d.restartServer(ctx, leader, p, pbin); err != nil {
		t.Fatalf("restart %s: %v", leader.id, err)
	}
	// The new leader armed every host with the grace (+10 % jitter) after
	// its election; wait past it and look for a host it declared lost.
	grace := 9 * time.Second
	until := killedAt.Add(elected + grace + grace/10 + 2*time.Second)
	r.waitFor("the new leader's failover grace to pass", time.Until(until)+time.Second, func() (bool, string) {
		return !time.Now().Before(until), "waiting"
	})
	hosts, err := r.hostsByID()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range hostIDs {
		for _, e := range r.events(id) {
			if !before[e.Id] && (e.Type == "HOST.DISCONNECT" || e.Type == "HOST.FENCE") {
				t.Errorf("leader kill: %s %s: %s", e.Type, e.Created, e.Description)
			}
		}
		if h := hosts[id]; h == nil || h.State != "Up" {
			t.Errorf("leader kill: host %s is %s", id, hostState(h))
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return fmt.Sprintf("%s (term %d) killed, %s elected in %s, restarted; no host fenced", leader.id, term, next, fmtDur(elected))
}

// startStopped starts any of the VMs ids that is Stopped (none should be
// once a round has settled; it keeps the population for the next rounds)
// and returns how many it started.
func (r *haRun) startStopped(ctx context.Context, ids []string) int {
	r.t.Helper()
	all, err := r.listVMs("")
	if err != nil {
		r.t.Fatal(err)
	}
	var stopped, odd []string
	for _, id := range ids {
		switch v := all[id]; {
		case v == nil:
			odd = append(odd, id+" not listed")
		case v.State == "Stopped":
			stopped = append(stopped, id)
		case v.State != "Running":
			odd = append(odd, v.Name+" "+v.State)
		}
	}
	if len(odd) > 0 {
		r.t.Fatalf("VMs neither Running nor Stopped after a round: %s", strings.Join(odd, ", "))
	}
	if len(stopped) > 0 {
		r.t.Logf("e2e: soak: starting %d Stopped VMs again: %s", len(stopped), shortIDs(stopped))
		r.vmJob(ctx, "start", stopped, r.start)
	}
	return len(stopped)
}
