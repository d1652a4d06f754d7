package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratus-cloud/stratus/ops"
)

// devLayoutFile is DIR/dev.json as stratus dev writes it.
type devLayoutFile struct {
	Secret  string            `json:"secret"`
	Servers []devLayoutServer `json:"servers"`
}

type devLayoutServer struct {
	ID     string `json:"id"`
	API    string `json:"api"`
	Raft   string `json:"raft"`
	Gossip string `json:"gossip"`
}

// A new dev cloud whose server finds one of its ports taken (another
// process bound it after stratus dev picked it) moves that server to new
// ports and comes up whole, instead of waiting a minute for a cluster that
// can never bootstrap. A second stratus dev on the same directory refuses
// at once.
func TestDevCloudMovesServerOffTakenPort(t *testing.T) {
	bin := requireE2E(t)
	dir := t.TempDir()
	ports, err := ops.FreeLoopbackPorts(9)
	if err != nil {
		t.Fatal(err)
	}
	var layout devLayoutFile
	layout.Secret = "e2e-dev-secret-0123456789abcdef"
	for i := 0; i < 3; i++ {
		layout.Servers = append(layout.Servers, devLayoutServer{fmt.Sprintf("server-%d", i+1), fmt.Sprintf("127.0.0.1:%d", ports[3*i]),
			fmt.Sprintf("127.0.0.1:%d", ports[3*i+1]), fmt.Sprintf("127.0.0.1:%d", ports[3*i+2])})
	}
	b, _ := json.Marshal(layout)
	if err := os.WriteFile(filepath.Join(dir, "dev.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	// Take the UDP side of server-2's gossip port: its TCP side binds,
	// then memberlist fails on UDP, as when a stranger got there first.
	taken := layout.Servers[1].Gossip
	pc, err := net.ListenPacket("udp", taken)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()

	d := startDevCloudIn(t, bin, dir, 1)

	log := d.dev.logTail(200)
	if !strings.Contains(log, "server-2: ") || !strings.Contains(log, "moving it to new ports") {
		t.Errorf("stratus dev did not say it moved server-2:\n%s", log)
	}
	var after devLayoutFile
	if b, err = os.ReadFile(filepath.Join(dir, "dev.json")); err == nil {
		err = json.Unmarshal(b, &after)
	}
	if err != nil {
		t.Fatalf("dev.json after start: %v", err)
	}
	if got := after.Servers[1]; got.Gossip == taken || got.ID != "server-2" {
		t.Errorf("dev.json keeps server-2 on the taken port %s: %+v", taken, got)
	}
	if after.Servers[0] != layout.Servers[0] || after.Servers[2] != layout.Servers[2] {
		t.Errorf("servers whose ports were free moved: before %+v, after %+v", layout.Servers, after.Servers)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, s := range d.c.servers {
		if err := d.c.waitVoters(ctx, s); err != nil {
			t.Fatal(err)
		}
	}

	// The directory is in use: a second stratus dev must not start servers
	// on the first one's ports.
	out, err := exec.CommandContext(ctx, bin, "dev", "--dir", dir, "--servers", "3").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "another stratus dev") {
		t.Errorf("a second stratus dev on %s: err=%v, output:\n%s", dir, err, out)
	}
	d.c.checkNoCrash()
}
