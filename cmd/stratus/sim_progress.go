package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// simCounts is one look at the simulated hosts.
type simCounts struct {
	started, registered, leased int
}

// count looks at every agent: registered once it has a host ID,
// leased while its last heartbeat's lease runs (the servers answered the
// heartbeat with the host Up).
func (s *simulator) count() simCounts {
	s.mu.Lock()
	agents := s.agents
	s.mu.Unlock()
	c := simCounts{started: len(agents)}
	now := time.Now()
	for _, a := range agents {
		if a.HostID() != "" {
			c.registered++
		}
		if sent, ttl := a.Lease(); !sent.IsZero() && now.Before(sent.Add(ttl)) {
			c.leased++
		}
	}
	return c
}

// reportProgress prints the counts every -progress and, once, the moment
// every host is registered and heartbeating. It closes done when ctx ends.
func (s *simulator) reportProgress(ctx context.Context, t0 time.Time, done chan<- struct{}) {
	defer close(done)
	every := s.f.progress
	check := every
	if check <= 0 || check > time.Second {
		check = time.Second
	}
	tick := time.NewTicker(check)
	defer tick.Stop()
	allUp := false
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		c := s.count()
		if every > 0 && time.Since(last) >= every {
			last = time.Now()
			fmt.Printf("sim: %s: %d/%d started, %d registered, %d heartbeating (Up), rss %s\n",
				time.Since(t0).Round(time.Second), c.started, s.f.hosts, c.registered, c.leased, selfRSS())
		}
		if !allUp && c.leased == s.f.hosts {
			allUp = true
			fmt.Printf("sim: all %d hosts registered and heartbeating after %s, rss %s\n",
				s.f.hosts, time.Since(t0).Round(100*time.Millisecond), selfRSS())
		}
		if allUp && c.leased < s.f.hosts*99/100 {
			allUp = false // print the line again when they are back
		}
	}
}

// selfRSS returns this process's resident set size, as /proc shows it.
func selfRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) == 2 && f[1] == "kB" {
				if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return fmt.Sprintf("%d MiB", kb>>10)
				}
			}
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// ensureSimClusters adds the clusters the hosts register into to the
// pod, as the root admin, keeping the ones that exist.
func ensureSimClusters(ctx context.Context, f *simFlags) error {
	d := &devAPI{url: f.apiURL, key: f.apiKey, secret: f.secret, client: &http.Client{Timeout: 30 * time.Second}}
	inner, err := d.call(ctx, "listZones", map[string]string{"name": f.zone})
	if err != nil {
		return fmt.Errorf("find zone %s: %w", f.zone, err)
	}
	zone := firstID(inner, "zone")
	if zone == "" {
		if inner, err = d.call(ctx, "listZones", map[string]string{"id": f.zone}); err == nil {
			zone = firstID(inner, "zone")
		}
	}
	if zone == "" {
		return fmt.Errorf("zone %s does not exist; create it first (-zone)", f.zone)
	}
	inner, err = d.call(ctx, "listPods", map[string]string{"name": f.pod, "zoneid": zone})
	if err != nil {
		return fmt.Errorf("find pod %s: %w", f.pod, err)
	}
	pod := firstID(inner, "pod")
	if pod == "" {
		return fmt.Errorf("pod %s does not exist in zone %s; create it first (-pod)", f.pod, f.zone)
	}
	names := f.clusterNames()
	for _, name := range names {
		if _, err := d.ensure(ctx, "listClusters", map[string]string{"name": name, "zoneid": zone}, "cluster", "addCluster",
			map[string]string{"clustername": name, "zoneid": zone, "podid": pod, "hypervisor": "KVM", "clustertype": "CloudManaged"}); err != nil {
			return fmt.Errorf("add cluster %s: %w", name, err)
		}
	}
	fmt.Printf("sim: %d clusters ready in zone %s, pod %s\n", len(names), f.zone, f.pod)
	return nil
}
