package fence

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratus-cloud/stratus/fsm"
)

const secret = "s3cret-Pa55"

// fakeBMC is a Runner that plays ipmitool against one BMC: it records each
// call and answers power commands.
type fakeBMC struct {
	mu    sync.Mutex
	calls [][]string // argv of each call
	envs  [][]string
	power string // "on" or "off"
	// offAfter is how many status queries after a power off still say on.
	offAfter int
	// failOff makes that many power off commands fail first.
	failOff int
	// neverOff keeps the power on whatever is asked.
	neverOff bool
}

func (b *fakeBMC) run(_ context.Context, argv, env []string) ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, slices.Clone(argv))
	b.envs = append(b.envs, slices.Clone(env))
	verb := argv[len(argv)-1]
	switch verb {
	case "status":
		if b.power == "off" && b.offAfter > 0 {
			b.offAfter--
			return []byte("Chassis Power is on\n"), nil
		}
		return []byte("Chassis Power is " + b.power + "\n"), nil
	case "off", "soft":
		if b.failOff > 0 {
			b.failOff--
			return []byte("Error: Unable to establish IPMI v2 / RMCP+ session"), errors.New("exit status 1")
		}
		if !b.neverOff {
			b.power = "off"
		}
	case "on", "cycle", "reset":
		b.power = "on"
	}
	return []byte("Chassis Power Control: " + verb + "\n"), nil
}

func (b *fakeBMC) verbs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, c := range b.calls {
		out = append(out, c[len(c)-1])
	}
	return out
}

// checkCalls checks every call was ipmitool on the BMC with the password
// only in the environment.
func (b *fakeBMC) checkCalls(t *testing.T, cfg *IPMIConfig) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.calls) == 0 {
		t.Fatal("ipmitool never ran")
	}
	for i, argv := range b.calls {
		line := strings.Join(argv, " ")
		if strings.Contains(line, cfg.Password) {
			t.Errorf("the password is on the command line: %s", line)
		}
		prefix := fmt.Sprintf("ipmitool -I lanplus -H %s -p %d -U %s -E chassis power ", cfg.Address, cfg.Port, cfg.Username)
		if !strings.HasPrefix(line, prefix) {
			t.Errorf("call %q does not start %q", line, prefix)
		}
		if !slices.Contains(b.envs[i], "IPMI_PASSWORD="+cfg.Password) {
			t.Errorf("call %q: IPMI_PASSWORD not in its environment %v", line, b.envs[i])
		}
	}
}

func bmcConfig() *IPMIConfig {
	return &IPMIConfig{Address: "10.9.0.5", Port: 6230, Username: "admin", Password: secret}
}

func TestIPMIFencePowersOffAndWaitsForOff(t *testing.T) {
	b := &fakeBMC{power: "on", offAfter: 2}
	f := IPMI(b.run)
	f.Poll = time.Millisecond
	cfg := bmcConfig()
	if err := f.Fence(context.Background(), Target{HostID: "h1", Name: "kvm1", Address: "10.0.0.1", IPMI: cfg}); err != nil {
		t.Fatalf("fence: %v", err)
	}
	if got, want := strings.Join(b.verbs(), ","), "off,status,status,status"; got != want {
		t.Errorf("ipmitool commands %s, want %s", got, want)
	}
	b.checkCalls(t, cfg)
	if f.Name() != "ipmi" {
		t.Errorf("name %q", f.Name())
	}
}

func TestIPMIFenceRetriesAFailedPowerOff(t *testing.T) {
	b := &fakeBMC{power: "on", failOff: 2}
	f := IPMI(b.run)
	f.Poll = time.Millisecond
	if err := f.Fence(context.Background(), Target{HostID: "h1", IPMI: bmcConfig()}); err != nil {
		t.Fatalf("fence: %v", err)
	}
	if got, want := strings.Join(b.verbs(), ","), "off,off,off,status"; got != want {
		t.Errorf("ipmitool commands %s, want %s", got, want)
	}
}

func TestIPMIFenceFailsWhenThePowerStaysOn(t *testing.T) {
	b := &fakeBMC{power: "on", neverOff: true}
	f := IPMI(b.run)
	f.Poll, f.Timeout = time.Millisecond, 30*time.Millisecond
	err := f.Fence(context.Background(), Target{HostID: "h1", Name: "kvm1", IPMI: bmcConfig()})
	if !errors.Is(err, ErrNotOff) || !strings.Contains(err.Error(), "kvm1") || !strings.Contains(err.Error(), "On") {
		t.Fatalf("fence of a host that stays on = %v, want ErrNotOff naming the host and its state", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("error shows the password: %v", err)
	}
	// A BMC that never answers fails too, with its last error.
	b = &fakeBMC{power: "on", failOff: 1 << 30}
	f = IPMI(b.run)
	f.Poll, f.Timeout = time.Millisecond, 20*time.Millisecond
	if err := f.Fence(context.Background(), Target{HostID: "h1", IPMI: bmcConfig()}); err == nil || !strings.Contains(err.Error(), "RMCP+") {
		t.Fatalf("fence through a dead BMC = %v, want its error", err)
	}
}

func TestIPMIFenceNeedsOutOfBandSettings(t *testing.T) {
	b := &fakeBMC{power: "on"}
	if err := IPMI(b.run).Fence(context.Background(), Target{HostID: "h1"}); !errors.Is(err, ErrNotConfigured) {
		t.Fatalf("fence without IPMI = %v, want ErrNotConfigured", err)
	}
	if len(b.verbs()) != 0 {
		t.Fatal("ipmitool ran without settings")
	}
}

func TestPowerActions(t *testing.T) {
	cfg := bmcConfig()
	for _, tc := range []struct {
		action, start, want, verbs string
	}{
		{"STATUS", "on", PowerOn, "status"},
		{"status", "off", PowerOff, "status"},
		{"OFF", "on", PowerOff, "off,status"},
		{"ON", "off", PowerOn, "on,status"},
		{"CYCLE", "on", PowerOn, "cycle,status"},
		{"RESET", "on", PowerOn, "reset,status"},
		{"SOFT", "on", PowerOff, "soft,status"},
	} {
		b := &fakeBMC{power: tc.start}
		got, err := PowerAction(context.Background(), b.run, cfg, tc.action)
		if err != nil || got != tc.want {
			t.Errorf("%s from %s = %q, %v; want %q", tc.action, tc.start, got, err, tc.want)
		}
		if v := strings.Join(b.verbs(), ","); v != tc.verbs {
			t.Errorf("%s ran %s, want %s", tc.action, v, tc.verbs)
		}
		b.checkCalls(t, cfg)
	}
	if _, err := PowerAction(context.Background(), (&fakeBMC{}).run, cfg, "EXPLODE"); !errors.Is(err, ErrUnknownAction) ||
		!strings.Contains(err.Error(), "ON, OFF, CYCLE, RESET, SOFT, STATUS") {
		t.Errorf("unknown action = %v", err)
	}
	if _, err := PowerAction(context.Background(), (&fakeBMC{}).run, nil, "STATUS"); !errors.Is(err, ErrNotConfigured) {
		t.Errorf("no settings = %v", err)
	}
	if got := parsePowerState("garbage"); got != PowerUnknown {
		t.Errorf("unparsable status = %q", got)
	}
	// The default port.
	b := &fakeBMC{power: "on"}
	if _, err := PowerAction(context.Background(), b.run, &IPMIConfig{Address: "10.9.0.6", Password: secret}, "STATUS"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(b.calls[0], " "); got != "ipmitool -I lanplus -H 10.9.0.6 -p 623 -E chassis power status" {
		t.Errorf("argv %q", got)
	}
}

func TestLeaseAndNone(t *testing.T) {
	if err := Lease().Fence(context.Background(), Target{HostID: "h1"}); err != nil || Lease().Name() != "lease" {
		t.Errorf("lease: %v %q", err, Lease().Name())
	}
	err := None().Fence(context.Background(), Target{HostID: "h1", Name: "kvm1"})
	if !errors.Is(err, ErrManual) || !strings.Contains(err.Error(), "kvm1") || None().Name() != "none" {
		t.Errorf("none: %v %q", err, None().Name())
	}
}

// writeScript writes an executable shell script into a temporary
// directory.
func writeScript(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fence.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o700); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCommandFenceRunsTheScriptWithTheHost(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	out := filepath.Join(t.TempDir(), "seen")
	path := writeScript(t, `echo "$STRATUS_HOST_ID $STRATUS_HOST_NAME $STRATUS_HOST_ADDRESS" > "`+out+`"`+"\n")
	c := Command(path)
	if c.Name() != "command" {
		t.Errorf("name %q", c.Name())
	}
	if err := c.Fence(context.Background(), Target{HostID: "h-1", Name: "kvm1", Address: "10.0.0.7", IPMI: bmcConfig()}); err != nil {
		t.Fatalf("fence: %v", err)
	}
	b, err := os.ReadFile(out)
	if err != nil || strings.TrimSpace(string(b)) != "h-1 kvm1 10.0.0.7" {
		t.Fatalf("the script saw %q (%v)", b, err)
	}
}

func TestCommandFenceFailures(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	path := writeScript(t, "echo 'pdu unreachable' >&2\nexit 3\n")
	err := Command(path).Fence(context.Background(), Target{HostID: "h-1", Name: "kvm1"})
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "pdu unreachable") || !strings.Contains(err.Error(), "kvm1") {
		t.Fatalf("failing script = %v, want its exit status and output", err)
	}
	slow := Command(writeScript(t, "exec sleep 10\n"))
	slow.Timeout = 50 * time.Millisecond
	start := time.Now()
	if err := slow.Fence(context.Background(), Target{HostID: "h-1"}); err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow script = %v, want a timeout", err)
	}
	if time.Since(start) > 8*time.Second {
		t.Fatal("the timeout did not stop the script")
	}
	if err := Command("").Fence(context.Background(), Target{HostID: "h-1"}); !errors.Is(err, ErrNotConfigured) {
		t.Fatalf("no command = %v, want ErrNotConfigured", err)
	}
}

func TestLookup(t *testing.T) {
	look := Lookup("/usr/local/bin/fence", (&fakeBMC{}).run)
	for provider, want := range map[string]string{
		fsm.HAProviderLease: "lease", fsm.HAProviderIPMI: "ipmi", fsm.HAProviderCommand: "command", fsm.HAProviderNone: "none",
		"": "none", "IPMI": "ipmi",
	} {
		f, err := look(provider)
		if err != nil || f.Name() != want {
			t.Errorf("Lookup(%q) = %v, %v; want %s", provider, f, err, want)
		}
	}
	if f, _ := look("command"); f.(*CommandFencer).Path != "/usr/local/bin/fence" {
		t.Error("the command fence lost its path")
	}
	if _, err := look("stonith"); !errors.Is(err, ErrUnknownProvider) {
		t.Errorf("unknown provider: %v", err)
	}
	// The provider names are fsm's.
	if ProviderLease != fsm.HAProviderLease || ProviderIPMI != fsm.HAProviderIPMI || ProviderCommand != fsm.HAProviderCommand || ProviderNone != fsm.HAProviderNone {
		t.Error("provider names differ from fsm's")
	}
}
