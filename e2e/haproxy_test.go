package e2e

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/stratus-cloud/stratus/ops"
)

// haproxyProc is a real HAProxy in front of the cluster's servers.
type haproxyProc struct {
	*proc
	addr      string // frontend host:port
	statsAddr string // stats page host:port
}

func (h *haproxyProc) apiURL() string { return "http://" + h.addr + "/client/api" }

// haproxyConfig balances round robin over the servers and keeps a server
// out of rotation while GET /v1/ready does not answer 200.
func haproxyConfig(frontend, stats string, servers []*server) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
    log stdout format raw local0
    maxconn 2048

defaults
    mode http
    log global
    option httplog
    option redispatch
    retries 3
    timeout connect 2s
    timeout client 30s
    timeout server 75s

frontend api
    bind %s
    default_backend stratus

backend stratus
    balance roundrobin
    option httpchk GET /v1/ready
    http-check expect status 200
    default-server inter 250ms fall 2 rise 2
`, frontend)
	for _, s := range servers {
		fmt.Fprintf(&b, "    server %s %s check\n", s.id, s.api)
	}
	fmt.Fprintf(&b, `
listen stats
    bind %s
    stats enable
    stats uri /stats
    stats refresh 1s
`, stats)
	return b.String()
}

// startHAProxy starts HAProxy in the foreground in front of every server
// and waits until it reports all of them UP.
func (c *testCluster) startHAProxy() *haproxyProc {
	c.t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		c.t.Fatalf("haproxy is not installed (make deps installs Debian's package): %v", err)
	}
	ports, err := ops.FreeLoopbackPorts(2)
	if err != nil {
		c.t.Fatal(err)
	}
	h := &haproxyProc{addr: fmt.Sprintf("127.0.0.1:%d", ports[0]), statsAddr: fmt.Sprintf("127.0.0.1:%d", ports[1])}
	cfg := filepath.Join(c.dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(haproxyConfig(h.addr, h.statsAddr, c.servers)), 0o600); err != nil {
		c.t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", cfg).CombinedOutput(); err != nil {
		c.t.Fatalf("haproxy rejects its config: %v\n%s", err, out)
	}
	h.proc = &proc{name: "haproxy", logPath: filepath.Join(c.dir, "haproxy.log"), args: []string{"-f", cfg, "-db"}}
	c.haproxy = h // from here on the cluster cleanup kills it
	if err := h.start(bin); err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := h.waitUp(ctx, c.probe, len(c.servers)); err != nil {
		c.t.Fatal(err)
	}
	c.t.Logf("e2e: haproxy %s balances %d servers (stats http://%s/stats)", h.addr, len(c.servers), h.statsAddr)
	return h
}

// backendStates reads the stats CSV: server name -> status (UP, DOWN, ...).
func (h *haproxyProc) backendStates(client *http.Client) (map[string]string, error) {
	resp, err := client.Get("http://" + h.statsAddr + "/stats;csv")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("haproxy stats: HTTP %d", resp.StatusCode)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(body), "# ")))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil || len(rows) == 0 {
		return nil, fmt.Errorf("haproxy stats: unreadable CSV: %v", err)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	px, sv, st := col["pxname"], col["svname"], col["status"]
	out := map[string]string{}
	for _, row := range rows[1:] {
		if len(row) > st && row[px] == "stratus" && row[sv] != "BACKEND" && row[sv] != "FRONTEND" {
			out[row[sv]] = row[st]
		}
	}
	return out, nil
}

// waitUp polls the stats page until n servers are UP.
func (h *haproxyProc) waitUp(ctx context.Context, client *http.Client, n int) error {
	last := "no stats yet"
	for {
		if !h.running() {
			return fmt.Errorf("haproxy exited: %v", h.crashed())
		}
		states, err := h.backendStates(client)
		if err == nil {
			up := 0
			for _, s := range states {
				if s == "UP" {
					up++
				}
			}
			if up == n {
				return nil
			}
			last = fmt.Sprint(states)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("haproxy does not see %d servers UP: %s", n, last)
		case <-time.After(pollEvery):
		}
	}
}
