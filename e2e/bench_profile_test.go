package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Benchmark knobs for profiling (issue 7):
//
//	STRATUS_BENCH_PROFILE=DIR  servers serve pprof (-pprof-addr 127.0.0.1:0)
//	                           and each measured phase saves a CPU profile of
//	                           every server to DIR/<phase>-<server>.pprof
//	STRATUS_BENCH_QUICK=1      TestBenchmarks runs only the 64-client write
//	                           phase (for quick before/after runs)

// benchProfileDir is the directory of CPU profiles, or "".
func benchProfileDir() string { return os.Getenv("STRATUS_BENCH_PROFILE") }

// benchQuick reports whether only the main write phase runs.
func benchQuick() bool { return os.Getenv("STRATUS_BENCH_QUICK") != "" }

// enablePprof makes the servers of c, not yet started, serve pprof.
func enablePprof(c *testCluster) {
	for _, s := range c.servers {
		s.args = append(s.args, "-pprof-addr", "127.0.0.1:0")
	}
}

// profileServers starts a CPU profile of d on every server of c and
// returns a function that waits for them and writes them to the profile
// directory. Without STRATUS_BENCH_PROFILE it does nothing.
func profileServers(t *testing.T, c *testCluster, phase string, d time.Duration) (wait func()) {
	dir := benchProfileDir()
	if dir == "" {
		return func() {}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("e2e: bench profile dir: %v", err)
		return func() {}
	}
	var wg sync.WaitGroup
	secs := max(1, int(d.Seconds()))
	for _, s := range c.servers {
		b, err := os.ReadFile(filepath.Join(s.dataDir, "pprof-addr"))
		if err != nil {
			t.Logf("e2e: bench profile: %s has no pprof-addr: %v", s.id, err)
			continue
		}
		addr := strings.TrimSpace(string(b))
		out := filepath.Join(dir, fmt.Sprintf("%s-%s.pprof", phase, s.id))
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &http.Client{Timeout: d + 30*time.Second}
			resp, err := cl.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs))
			if err != nil {
				t.Logf("e2e: bench profile %s: %v", s.id, err)
				return
			}
			defer resp.Body.Close()
			f, err := os.Create(out)
			if err != nil {
				t.Logf("e2e: bench profile %s: %v", s.id, err)
				return
			}
			defer f.Close()
			if _, err := io.Copy(f, resp.Body); err != nil {
				t.Logf("e2e: bench profile %s: %v", s.id, err)
			}
		}()
	}
	return func() { wg.Wait(); t.Logf("e2e: bench CPU profiles of %s in %s", phase, dir) }
}
