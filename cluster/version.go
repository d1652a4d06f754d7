package cluster

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/raft"

	"github.com/stratus-cloud/stratus/fsm"
)

// ErrVersionGate means a command needs a command version that not every
// voter supports yet: some server still runs an older build. Upgrade it,
// then retry. It is not retriable in the API sense: it lasts until an
// operator acts.
var ErrVersionGate = errors.New("not every server supports this command version yet")

// BaseCommandVersion is the command version every released build
// understands and the one ordinary commands are written at (fsm.Encode),
// so they are never gated. A voter this node has not seen in gossip counts as this
// version: an unknown voter may be old, so nothing newer may be emitted,
// but it can still apply everything of the baseline (so writes keep
// working while gossip converges after a restart).
const BaseCommandVersion = fsm.BaseCommandVersion

// VoterVersion is one voter's gossiped versions, as the gate sees them.
type VoterVersion struct {
	ID             string `json:"id"`
	Version        string `json:"version"`         // build version; "" when not seen in gossip
	CommandVersion uint16 `json:"command_version"` // BaseCommandVersion when not seen in gossip
	Seen           bool   `json:"seen"`            // gossip knows it (alive or not: its last meta counts)
}

// voterVersions joins the raft configuration with gossip: one entry per
// voter, sorted by ID. A voter's last gossiped meta counts even while it is
// dead or left: a stopped server comes back with the same or a newer build,
// and only once it gossips again do we learn which.
func voterVersions(servers []raft.Server, members []Member) []VoterVersion {
	byID := make(map[string]Member, len(members))
	for _, m := range members {
		byID[m.ID] = m
	}
	var out []VoterVersion
	for _, s := range servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		v := VoterVersion{ID: string(s.ID), CommandVersion: BaseCommandVersion}
		if m, ok := byID[string(s.ID)]; ok {
			v.Version, v.CommandVersion, v.Seen = m.Version, m.CommandVersion, true
			if v.CommandVersion == 0 {
				v.CommandVersion = BaseCommandVersion // gossiped by a build before command versions
			}
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// lowestCommandVersion is the gate's rule: the lowest command version of
// the voters, or this build's when there are none (not yet bootstrapped:
// nothing can commit anyway).
func lowestCommandVersion(voters []VoterVersion) uint16 {
	if len(voters) == 0 {
		return fsm.CommandVersion
	}
	low := voters[0].CommandVersion
	for _, v := range voters[1:] {
		low = min(low, v.CommandVersion)
	}
	return low
}

// checkCommandVersion returns nil when every voter supports v, else
// ErrVersionGate wrapped with the servers that hold it back.
func checkCommandVersion(voters []VoterVersion, v uint16) error {
	if v <= BaseCommandVersion || len(voters) == 0 {
		return nil
	}
	var behind []string
	for _, vv := range voters {
		if vv.CommandVersion >= v {
			continue
		}
		build := vv.Version
		if !vv.Seen {
			build = "unknown: not seen in gossip"
		}
		behind = append(behind, fmt.Sprintf("%s is at %d (build %s)", vv.ID, vv.CommandVersion, build))
	}
	if len(behind) == 0 {
		return nil
	}
	return fmt.Errorf("%w: this needs every server at command version %d; %s: upgrade %s first",
		ErrVersionGate, v, strings.Join(behind, ", "), pluralIt(len(behind)))
}

func pluralIt(n int) string {
	if n == 1 {
		return "it"
	}
	return "them"
}

// VoterVersions returns each voter's gossiped build and command version.
func (n *Node) VoterVersions() []VoterVersion {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	return voterVersions(f.Configuration().Servers, n.Members())
}

// ClusterCommandVersion is the highest command version every voter
// supports: the lowest one gossiped by the voters of the raft
// configuration. A voter not seen in gossip counts as BaseCommandVersion.
// The leader emits a command of a newer version only once this reaches it.
func (n *Node) ClusterCommandVersion() uint16 {
	return lowestCommandVersion(n.VoterVersions())
}

// RequireCommandVersion returns nil when every voter supports command
// version v, else an error wrapping ErrVersionGate that names the servers
// to upgrade. Call it before building a command that needs v; Apply calls
// it too, with the version in the entry's envelope.
func (n *Node) RequireCommandVersion(v uint16) error {
	if v > fsm.CommandVersion {
		return fmt.Errorf("%w: command version %d is newer than this server's build knows (%d)", ErrVersionGate, v, fsm.CommandVersion)
	}
	if v <= BaseCommandVersion {
		return nil
	}
	return checkCommandVersion(n.VoterVersions(), v)
}

// entryCommandVersion is the command version an encoded entry needs: the
// highest of its envelope and, for a once-wrapper, the wrapped command's.
func entryCommandVersion(data []byte) uint16 {
	env, err := fsm.DecodeEnvelope(data)
	if err != nil {
		return 0
	}
	v := env.Version
	if env.Type == fsm.OnceRequestType {
		if once, err := fsm.DecodeOnce(env.Body); err == nil {
			if iv, err := fsm.DecodeEnvelope(once.Entry); err == nil {
				v = max(v, iv.Version)
			}
		}
	}
	return v
}

// TransferLeadershipTo hands leadership to the voter id ("" for any
// voter raft picks). It fails with ErrNotLeader on a follower.
func (n *Node) TransferLeadershipTo(id string) error {
	if n.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	if id == "" {
		if err := n.raft.LeadershipTransfer().Error(); err != nil {
			return fmt.Errorf("transfer leadership: %w", err)
		}
		return nil
	}
	if id == n.cfg.NodeID {
		return nil // already leads
	}
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("transfer leadership: raft configuration: %w", err)
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) != id {
			continue
		}
		if s.Suffrage != raft.Voter {
			return fmt.Errorf("transfer leadership: %s is not a voter", id)
		}
		if err := n.raft.LeadershipTransferToServer(s.ID, s.Address).Error(); err != nil {
			return fmt.Errorf("transfer leadership to %s: %w", id, err)
		}
		return nil
	}
	return fmt.Errorf("transfer leadership: %s is not in the raft configuration", id)
}
