package fence

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Runner runs one command: argv[0] with arguments argv[1:], with env
// ("NAME=value") added to the server's environment, and returns what it
// printed, also when it fails (the drivers quote that in their errors).
// The ipmi driver runs ipmitool through it, so tests can fake the
// BMC.
type Runner func(ctx context.Context, argv []string, env []string) ([]byte, error)

// ExecRunner runs the command for real.
func ExecRunner(ctx context.Context, argv []string, env []string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("no command to run")
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		// argv never holds a secret (ipmitool reads the password from its
		// environment), so it may go into the message; the caller adds
		// the output.
		return out, fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	return out, nil
}

// Power states, as CloudStack's out-of-band management names them.
const (
	PowerOn      = "On"
	PowerOff     = "Off"
	PowerUnknown = "Unknown"
)

// DefaultIPMIPort is the BMC's RMCP+ port when the configuration has none.
const DefaultIPMIPort = 623

// Defaults of the ipmi fence.
const (
	DefaultIPMITimeout = 60 * time.Second // kvm.ha.fence.timeout's default
	DefaultIPMIPoll    = time.Second
)

// ipmiEnvPassword is where ipmitool -E reads the password: never on the
// command line, where ps would show it.
const ipmiEnvPassword = "IPMI_PASSWORD"

// ipmitool returns the argv and environment of one ipmitool command on
// cfg's BMC.
func ipmitool(cfg *IPMIConfig, args ...string) (argv, env []string) {
	port := cfg.Port
	if port <= 0 {
		port = DefaultIPMIPort
	}
	argv = []string{"ipmitool", "-I", "lanplus", "-H", cfg.Address, "-p", strconv.Itoa(port)}
	if cfg.Username != "" {
		argv = append(argv, "-U", cfg.Username)
	}
	argv = append(argv, "-E")
	return append(argv, args...), []string{ipmiEnvPassword + "=" + cfg.Password}
}

// powerActions maps CloudStack's power actions to ipmitool's chassis power
// verbs.
var powerActions = map[string]string{
	"ON": "on", "OFF": "off", "CYCLE": "cycle", "RESET": "reset", "SOFT": "soft", "STATUS": "status",
}

// PowerActions lists the actions PowerAction takes, as CloudStack names
// them.
func PowerActions() []string { return []string{"ON", "OFF", "CYCLE", "RESET", "SOFT", "STATUS"} }

// PowerAction runs a power action (ON, OFF, CYCLE, RESET, SOFT or STATUS,
// in any case) on a host's BMC and returns the power state the BMC reports
// afterwards (PowerOn, PowerOff or PowerUnknown). run nil is ExecRunner.
func PowerAction(ctx context.Context, run Runner, cfg *IPMIConfig, action string) (string, error) {
	verb, ok := powerActions[strings.ToUpper(strings.TrimSpace(action))]
	if !ok {
		return "", fmt.Errorf("%w %q: use one of %s", ErrUnknownAction, action, strings.Join(PowerActions(), ", "))
	}
	if cfg == nil || cfg.Address == "" {
		return "", fmt.Errorf("no out-of-band management address: %w", ErrNotConfigured)
	}
	if run == nil {
		run = ExecRunner
	}
	if verb != "status" {
		argv, env := ipmitool(cfg, "chassis", "power", verb)
		if out, err := run(ctx, argv, env); err != nil {
			return "", fmt.Errorf("power %s: %w%s", verb, err, outputTail(out))
		}
	}
	return powerStatus(ctx, run, cfg)
}

// powerStatus asks the BMC for the chassis power state.
func powerStatus(ctx context.Context, run Runner, cfg *IPMIConfig) (string, error) {
	argv, env := ipmitool(cfg, "chassis", "power", "status")
	out, err := run(ctx, argv, env)
	if err != nil {
		return PowerUnknown, fmt.Errorf("power status: %w%s", err, outputTail(out))
	}
	return parsePowerState(string(out)), nil
}

// parsePowerState reads ipmitool's "Chassis Power is on|off".
func parsePowerState(out string) string {
	s := strings.ToLower(out)
	switch {
	case strings.Contains(s, "power is on"):
		return PowerOn
	case strings.Contains(s, "power is off"):
		return PowerOff
	}
	return PowerUnknown
}

// IPMIFencer powers a host off through its BMC with ipmitool and returns
// only once the BMC reports the chassis off.
type IPMIFencer struct {
	Run     Runner        // nil: ExecRunner
	Timeout time.Duration // 0: DefaultIPMITimeout
	Poll    time.Duration // 0: DefaultIPMIPoll
}

// IPMI returns the ipmi fence; run nil is ExecRunner.
func IPMI(run Runner) *IPMIFencer { return &IPMIFencer{Run: run} }

// Name returns "ipmi".
func (f *IPMIFencer) Name() string { return ProviderIPMI }

// Fence issues "chassis power off" (again, while it fails) and polls
// "chassis power status" until it says off or the timeout passes.
func (f *IPMIFencer) Fence(ctx context.Context, t Target) error {
	if t.IPMI == nil || t.IPMI.Address == "" {
		return fmt.Errorf("host %s has no out-of-band management configured: %w", t.label(), ErrNotConfigured)
	}
	run, timeout, poll := f.Run, f.Timeout, f.Poll
	if run == nil {
		run = ExecRunner
	}
	if timeout <= 0 {
		timeout = DefaultIPMITimeout
	}
	if poll <= 0 {
		poll = DefaultIPMIPoll
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	offArgv, env := ipmitool(t.IPMI, "chassis", "power", "off")
	off, state := false, PowerUnknown
	var lastErr error
	for {
		if !off {
			if out, err := run(ctx, offArgv, env); err != nil {
				lastErr = fmt.Errorf("power off: %w%s", err, outputTail(out))
			} else {
				off, lastErr = true, nil
			}
		}
		if off {
			s, err := powerStatus(ctx, run, t.IPMI)
			if err == nil && s == PowerOff {
				return nil
			}
			state, lastErr = s, err
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return fmt.Errorf("ipmi fence of host %s within %s: %w", t.label(), timeout, lastErr)
			}
			return fmt.Errorf("ipmi fence of host %s: power is %s %s after power off: %w", t.label(), state, timeout, ErrNotOff)
		case <-time.After(poll):
		}
	}
}
