package fence

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Provider names, as hosts' HA providers (fsm.HAProvider*) name them.
const (
	ProviderLease   = "lease"
	ProviderIPMI    = "ipmi"
	ProviderCommand = "command"
	ProviderNone    = "none"
)

// More sentinel errors of the drivers.
var (
	// ErrUnknownProvider is a provider name no driver answers to.
	ErrUnknownProvider = errors.New("unknown fence provider")
	// ErrUnknownAction is a power action PowerAction does not know.
	ErrUnknownAction = errors.New("unknown power action")
	// ErrNotOff means an ipmi fence powered the host off but its BMC did
	// not report it off within the fence's timeout.
	ErrNotOff = errors.New("the host's BMC does not report it powered off")
)

// Lookup returns the fence drivers by provider name, as the HA controller
// wants them: commandPath is this server's fence command (empty when none
// is configured) and run runs ipmitool (nil: ExecRunner). A host with no
// provider set gets None: it is never fenced without an operator.
func Lookup(commandPath string, run Runner) func(provider string) (Fencer, error) {
	lease, ipmi, command, none := Lease(), IPMI(run), Command(commandPath), None()
	return func(provider string) (Fencer, error) {
		switch strings.ToLower(strings.TrimSpace(provider)) {
		case ProviderLease:
			return lease, nil
		case ProviderIPMI:
			return ipmi, nil
		case ProviderCommand:
			return command, nil
		case ProviderNone, "":
			return none, nil
		}
		return nil, fmt.Errorf("%w %q: use %s, %s, %s or %s", ErrUnknownProvider, provider, ProviderLease, ProviderIPMI, ProviderCommand, ProviderNone)
	}
}

// Lease returns the fence that trusts the host's own self-fence.
//
// Its Fence does nothing and returns nil, because by the time the leader
// calls it the host is already fenced: the leader calls it only once the
// host's lease plus the safety margin (host.lease.ttl + host.lease.margin,
// counted from when the leader received the last heartbeat) has passed,
// and the agent counts the same lease from when it sent that heartbeat, so
// its own deadline passed at least the margin earlier. An agent that
// cannot renew its lease kills its HA guests by its deadline (and a dead
// or hung agent stops petting its watchdog, which resets the host). The
// provider is only for hosts whose agent says it self-fences
// (fsm.Host.SelfFence); whether a host qualifies is for the API and the HA
// controller to check, not for this driver.
func Lease() Fencer { return leaseFencer{} }

type leaseFencer struct{}

func (leaseFencer) Name() string                        { return ProviderLease }
func (leaseFencer) Fence(context.Context, Target) error { return nil }

// None returns the fence of hosts that are never fenced automatically: its
// Fence always returns ErrManual, so the host's VMs stay where they are
// until an operator confirms the host is down (declareHostAsDegraded).
func None() Fencer { return noneFencer{} }

type noneFencer struct{}

func (noneFencer) Name() string { return ProviderNone }
func (noneFencer) Fence(_ context.Context, t Target) error {
	return fmt.Errorf("host %s: %w", t.label(), ErrManual)
}

// DefaultCommandTimeout bounds a fence command whose context has no
// deadline.
const DefaultCommandTimeout = 2 * time.Minute

// CommandFencer runs the operator's fence script. The script gets the host
// in its environment (STRATUS_HOST_ID, STRATUS_HOST_NAME,
// STRATUS_HOST_ADDRESS) and exits 0 only once the host is certainly off;
// any other end (an exit code, a signal, the timeout) leaves the host
// unfenced. Out-of-band credentials are not passed to it.
type CommandFencer struct {
	Path    string
	Timeout time.Duration // 0: DefaultCommandTimeout when ctx has no deadline
}

// Command returns the fence that runs the script at path; with an empty
// path its Fence returns ErrNotConfigured.
func Command(path string) *CommandFencer { return &CommandFencer{Path: path} }

// Name returns "command".
func (c *CommandFencer) Name() string { return ProviderCommand }

// Fence runs the script for t and returns nil when it exits 0.
func (c *CommandFencer) Fence(ctx context.Context, t Target) error {
	if c.Path == "" {
		return fmt.Errorf("host %s: no fence command is set on this server (stratus server -fence-command): %w", t.label(), ErrNotConfigured)
	}
	if _, ok := ctx.Deadline(); !ok || c.Timeout > 0 {
		d := c.Timeout
		if d <= 0 {
			d = DefaultCommandTimeout
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, c.Path)
	cmd.Env = append(os.Environ(),
		"STRATUS_HOST_ID="+t.HostID, "STRATUS_HOST_NAME="+t.Name, "STRATUS_HOST_ADDRESS="+t.Address)
	cmd.WaitDelay = 5 * time.Second // a child holding the output open cannot hang us
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return fmt.Errorf("fence command %s for host %s: %w%s", c.Path, t.label(), err, outputTail(out))
	}
	return nil
}

// label names a target in messages.
func (t Target) label() string {
	switch {
	case t.Name != "" && t.HostID != "":
		return t.Name + " (" + t.HostID + ")"
	case t.Name != "":
		return t.Name
	}
	return t.HostID
}

// outputTail returns the last few hundred bytes of a command's output, for
// an error message, or "" when there was none.
func outputTail(out []byte) string {
	s := strings.TrimSpace(string(out))
	if s == "" {
		return ""
	}
	if len(s) > 400 {
		s = "..." + s[len(s)-400:]
	}
	return ": " + strings.ReplaceAll(s, "\n", "; ")
}
