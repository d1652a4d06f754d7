package e2e

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
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
		out := filepath.Join(dir, fmt.Sprintf("%s-%s.pprof", phase, s.id))
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := fetchPprof(s, fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), d+30*time.Second)
			if err == nil {
				err = os.WriteFile(out, b, 0o644)
			}
			if err != nil {
				t.Logf("e2e: bench profile %s: %v", s.id, err)
			}
		}()
	}
	return func() { wg.Wait(); t.Logf("e2e: bench CPU profiles of %s in %s", phase, dir) }
}

// fetchPprof GETs path (with its query) from the pprof endpoint of s,
// whose address the server wrote to <dataDir>/pprof-addr.
func fetchPprof(s *server, path string, timeout time.Duration) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(s.dataDir, "pprof-addr"))
	if err != nil {
		return nil, fmt.Errorf("%s has no pprof-addr: %w", s.id, err)
	}
	cl := &http.Client{Timeout: timeout}
	resp, err := cl.Get("http://" + strings.TrimSpace(string(b)) + path)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get %s: HTTP %d: %.200s", path, resp.StatusCode, body)
	}
	return body, nil
}

// memStats is what the runtime.MemStats trailer of a text heap profile
// (/debug/pprof/heap?debug=1) tells of a server's memory, in bytes.
type memStats struct {
	HeapAlloc     int64   `json:"heap_alloc"` // reachable objects, and garbage not yet swept
	HeapInuse     int64   `json:"heap_inuse"`
	HeapIdle      int64   `json:"heap_idle"`
	HeapReleased  int64   `json:"heap_released"`
	HeapSys       int64   `json:"heap_sys"`
	HeapObjects   int64   `json:"heap_objects"`
	Sys           int64   `json:"sys"`
	StackInuse    int64   `json:"stack_inuse"`
	StackSys      int64   `json:"stack_sys"`
	MSpanSys      int64   `json:"mspan_sys"`
	GCSys         int64   `json:"gc_sys"`
	OtherSys      int64   `json:"other_sys"`
	NextGC        int64   `json:"next_gc"`
	NumGC         int64   `json:"num_gc"`
	GCCPUFraction float64 `json:"gc_cpu_fraction"`
	MaxRSS        int64   `json:"max_rss"` // only on some systems (Linux has it)
}

// parseMemStats reads the "# Name = value" lines after "# runtime.MemStats"
// (runtime/pprof writeHeapInternal). Stack and MSpan are "inuse / sys";
// the PauseNs arrays and the fields not kept are skipped.
func parseMemStats(text string) (memStats, error) {
	var m memStats
	_, trailer, ok := strings.Cut(text, "# runtime.MemStats\n")
	if !ok {
		return m, errors.New("no # runtime.MemStats trailer")
	}
	ints := map[string][]*int64{
		"HeapAlloc": {&m.HeapAlloc}, "HeapInuse": {&m.HeapInuse}, "HeapIdle": {&m.HeapIdle},
		"HeapReleased": {&m.HeapReleased}, "HeapSys": {&m.HeapSys}, "HeapObjects": {&m.HeapObjects},
		"Sys": {&m.Sys}, "Stack": {&m.StackInuse, &m.StackSys}, "MSpan": {nil, &m.MSpanSys},
		"GCSys": {&m.GCSys}, "OtherSys": {&m.OtherSys}, "NextGC": {&m.NextGC}, "NumGC": {&m.NumGC},
		"MaxRSS": {&m.MaxRSS},
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(trailer, "\n") {
		name, value, ok := strings.Cut(strings.TrimPrefix(line, "# "), " = ")
		if !ok || !strings.HasPrefix(line, "# ") {
			continue
		}
		if name == "GCCPUFraction" {
			f, err := strconv.ParseFloat(value, 64)
			if err != nil {
				return m, fmt.Errorf("MemStats %s: %w", name, err)
			}
			m.GCCPUFraction, seen[name] = f, true
			continue
		}
		dst, ok := ints[name]
		if !ok {
			continue
		}
		parts := strings.Split(value, " / ")
		if len(parts) != len(dst) {
			return m, fmt.Errorf("MemStats %s = %q: want %d numbers", name, value, len(dst))
		}
		for i, p := range parts {
			v, err := strconv.ParseInt(p, 10, 64)
			if err != nil {
				return m, fmt.Errorf("MemStats %s: %w", name, err)
			}
			if dst[i] != nil {
				*dst[i] = v
			}
		}
		seen[name] = true
	}
	for _, need := range []string{"HeapAlloc", "HeapSys", "HeapReleased", "Sys"} {
		if !seen[need] {
			return m, fmt.Errorf("MemStats has no %s", need)
		}
	}
	return m, nil
}

// memStatsSample is the start and the trailer of a text heap profile of a
// stratus server (Go 1.26, the tiny scale benchmark run), its stack
// records cut to one and its PauseNs/PauseEnd arrays to 3 of 256 values.
const memStatsSample = `heap profile: 13: 23136 [235: 9722776] @ heap/1048576
0: 0 [1: 40960] @ 0x49b093 0x4a0489 0x94fd1d 0x95a145
#	0x94fd1c	github.com/stratus-cloud/stratus/fsm.EncodeVersion+0x13c					/work/main/fsm/command.go:104
#	0x95a144	github.com/stratus-cloud/stratus/fsm.Encode+0xe4						/work/main/fsm/command.go:92

# runtime.MemStats
# Alloc = 8303304
# TotalAlloc = 114799912
# Sys = 44476696
# Lookups = 0
# Mallocs = 755082
# Frees = 681330
# HeapAlloc = 8303304
# HeapSys = 35291136
# HeapIdle = 19873792
# HeapInuse = 15417344
# HeapReleased = 12337152
# HeapObjects = 73752
# Stack = 2457600 / 2457600
# MSpan = 315040 / 391680
# MCache = 4592 / 16072
# BuckHashSys = 1499358
# GCSys = 4061952
# OtherSys = 758898
# NextGC = 17256602
# LastGC = 1796191025498967185
# PauseNs = [1086478 76431 75116]
# PauseEnd = [1796190958826495071 1796190960164482677 1796190960856237929]
# NumGC = 20
# NumForcedGC = 1
# GCCPUFraction = 0.0013161609204235794
# DebugGC = false
# MaxRSS = 69685248
`

// TestParseMemStats needs no cluster: it reads the figures the scale
// benchmark reports out of a real trailer, and refuses broken ones.
func TestParseMemStats(t *testing.T) {
	got, err := parseMemStats(memStatsSample)
	if err != nil {
		t.Fatal(err)
	}
	want := memStats{HeapAlloc: 8303304, HeapInuse: 15417344, HeapIdle: 19873792, HeapReleased: 12337152,
		HeapSys: 35291136, HeapObjects: 73752, Sys: 44476696, StackInuse: 2457600, StackSys: 2457600,
		MSpanSys: 391680, GCSys: 4061952, OtherSys: 758898, NextGC: 17256602, NumGC: 20,
		GCCPUFraction: 0.0013161609204235794, MaxRSS: 69685248}
	if got != want {
		t.Errorf("parseMemStats:\n got %+v\nwant %+v", got, want)
	}

	trailer := memStatsSample[strings.Index(memStatsSample, "# runtime.MemStats"):]
	for name, text := range map[string]string{
		"no trailer":           memStatsSample[:strings.Index(memStatsSample, "# runtime.MemStats")],
		"no HeapReleased":      strings.Replace(trailer, "# HeapReleased = 12337152\n", "", 1),
		"Stack not a pair":     strings.Replace(trailer, "# Stack = 2457600 / 2457600", "# Stack = 2457600", 1),
		"HeapSys not a number": strings.Replace(trailer, "# HeapSys = 35291136", "# HeapSys = 35M", 1),
	} {
		if m, err := parseMemStats(text); err == nil {
			t.Errorf("%s: parseMemStats gave %+v, want an error", name, m)
		}
	}
}
