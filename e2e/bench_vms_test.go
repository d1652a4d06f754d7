package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Deploy benchmark sizes: 100 simulated hosts, 64 clients, one window.
// STRATUS_BENCH_HOSTS and STRATUS_BENCH_CLIENTS change the first two (for
// quick runs and for finding what bounds the rate).
var (
	benchHosts   = envIntOr("STRATUS_BENCH_HOSTS", 100)
	benchClients = envIntOr("STRATUS_BENCH_CLIENTS", 64)
)

const benchDeployTime = 20 * time.Second

func envIntOr(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// deployBench drives deployVirtualMachine with raw signed requests, spread
// over the servers, and polls each job until the VM is Running.
type deployBench struct {
	d      *devCloud
	client *http.Client
	zone   string
	off    string
	tmpl   string
}

// call sends a signed POST to server i mod 3 and decodes the inner object.
func (b *deployBench) call(i int, command string, params url.Values, out any) error {
	s := b.d.c.servers[i%len(b.d.c.servers)]
	form := signedForm(command, params, b.d.c.keys)
	resp, err := b.client.Post(s.apiURL(), "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("transport: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return err
	}
	for _, inner := range top {
		return json.Unmarshal(inner, out)
	}
	return fmt.Errorf("empty answer")
}

func (b *deployBench) lookupIDs(t *testing.T) {
	var zones struct {
		Zone []struct{ ID, Name string } `json:"zone"`
	}
	var offs struct {
		ServiceOffering []struct{ ID, Name string } `json:"serviceoffering"`
	}
	var tmpls struct {
		Template []struct{ ID, Name string } `json:"template"`
	}
	if err := b.call(0, "listZones", url.Values{"name": {"dev-zone"}}, &zones); err != nil || len(zones.Zone) != 1 {
		t.Fatalf("listZones: %v %+v", err, zones)
	}
	if err := b.call(0, "listServiceOfferings", url.Values{"name": {"small"}}, &offs); err != nil || len(offs.ServiceOffering) != 1 {
		t.Fatalf("listServiceOfferings: %v %+v", err, offs)
	}
	if err := b.call(0, "listTemplates", url.Values{"name": {"dev-template"}, "templatefilter": {"all"}}, &tmpls); err != nil || len(tmpls.Template) == 0 {
		t.Fatalf("listTemplates: %v %+v", err, tmpls)
	}
	b.zone, b.off, b.tmpl = zones.Zone[0].ID, offs.ServiceOffering[0].ID, tmpls.Template[0].ID
}

// deployOne deploys a VM and waits for its job; it returns the time to
// the accepted answer and to Running.
func (b *deployBench) deployOne(client, seq int) (accepted, running time.Duration, err error) {
	start := time.Now()
	var acc struct {
		ID    string `json:"id"`
		JobID string `json:"jobid"`
	}
	p := url.Values{"zoneid": {b.zone}, "serviceofferingid": {b.off}, "templateid": {b.tmpl},
		"name": {fmt.Sprintf("b-%d-%d", client, seq)}}
	if err := b.call(client, "deployVirtualMachine", p, &acc); err != nil {
		return 0, 0, err
	}
	accepted = time.Since(start)
	for {
		var j struct {
			JobStatus     int `json:"jobstatus"`
			JobResultCode int `json:"jobresultcode"`
		}
		if err := b.call(client+1, "queryAsyncJobResult", url.Values{"jobid": {acc.JobID}}, &j); err != nil {
			return accepted, 0, err
		}
		switch j.JobStatus {
		case 1:
			return accepted, time.Since(start), nil
		case 2:
			return accepted, 0, fmt.Errorf("job failed %d", j.JobResultCode)
		}
		time.Sleep(20 * time.Millisecond) // polling interval of the client, as SDKs poll
	}
}

// TestBenchmarkDeploy measures deployVirtualMachine on 3 servers and
// benchHosts simulated hosts: placements per second (VMs that reached
// Running per second of the window), the time to the accepted answer and
// the time from deploy to Running. Figures only; nothing is asserted
// about them.
func TestBenchmarkDeploy(t *testing.T) {
	bin := requireBench(t)
	start := time.Now()
	if benchProfileDir() != "" {
		t.Setenv("STRATUS_PPROF_ADDR", "127.0.0.1:0") // stratus dev passes its environment to its servers
	}
	d := startDevCloud(t, bin, benchHosts)
	t.Logf("e2e: bench dev cloud with %d hosts up in %s", benchHosts, time.Since(start).Round(time.Millisecond))
	b := &deployBench{d: d, client: &http.Client{Transport: newTransport(), Timeout: 30 * time.Second}}
	b.lookupIDs(t)

	var (
		mu         sync.Mutex
		acceptLat  []time.Duration
		runningLat []time.Duration
		errs       = map[string]int{}
		ok         atomic.Int64
	)
	ctx, cancel := context.WithTimeout(context.Background(), benchDeployTime)
	defer cancel()
	var wg sync.WaitGroup
	t0 := time.Now()
	waitProfiles := profileServers(t, d.c, "deploy", benchDeployTime-2*time.Second)
	for c := 0; c < benchClients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for seq := 0; ctx.Err() == nil; seq++ {
				a, r, err := b.deployOne(c, seq)
				mu.Lock()
				if err != nil {
					errs[err.Error()]++
				} else {
					ok.Add(1)
					acceptLat, runningLat = append(acceptLat, a), append(runningLat, r)
				}
				mu.Unlock()
			}
		}(c)
	}
	wg.Wait()
	elapsed := time.Since(t0)
	waitProfiles()
	sort.Slice(acceptLat, func(i, j int) bool { return acceptLat[i] < acceptLat[j] })
	sort.Slice(runningLat, func(i, j int) bool { return runningLat[i] < runningLat[j] })
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n## VM deploy benchmark (%s)\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&sb, "- command: `STRATUS_BENCH=1 STRATUS_BIN=%s go test -count=1 -v -timeout 30m -run TestBenchmarkDeploy ./e2e/` (make bench)\n", bin)
	fmt.Fprintf(&sb, "- `stratus dev --servers 3 --hosts %d` (each host an agent process on libvirt's test driver); %d clients, each deploying a `small` VM and polling its job every 20 ms, spread over the 3 servers, for %s\n\n", benchHosts, benchClients, benchDeployTime)
	fmt.Fprintf(&sb, "| VMs Running | errors | placements/s | accepted p50 | accepted p99 | deploy -> Running p50 | deploy -> Running p99 |\n|---:|---:|---:|---:|---:|---:|---:|\n")
	fmt.Fprintf(&sb, "| %d | %d | %.0f | %s | %s | %s | %s |\n", ok.Load(), sumErrs(errs), float64(ok.Load())/elapsed.Seconds(),
		fmtDur(percentile(acceptLat, 0.50)), fmtDur(percentile(acceptLat, 0.99)),
		fmtDur(percentile(runningLat, 0.50)), fmtDur(percentile(runningLat, 0.99)))
	if len(errs) > 0 {
		fmt.Fprintf(&sb, "\nerrors: %v\n", errs)
	}
	d.c.checkNoCrash()
	fmt.Print(sb.String())
	if path := os.Getenv("STRATUS_BENCH_OUT"); path != "" {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			_, _ = f.WriteString(sb.String())
			_ = f.Close()
		}
	}
}

func sumErrs(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
