package ops

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/stratus-cloud/stratus/cluster"
)

// MaxAppliedLag is how many entries a voter's applied index may trail the
// leader's and still count as caught up. The indexes are read one server
// at a time over HTTP while writes go on, so a small lag is normal; a
// server that is restoring a snapshot or replaying its log trails by far
// more.
const MaxAppliedLag = 256

// UpgradeServer is one voter as the upgrade check sees it.
type UpgradeServer struct {
	ID             string `json:"id"`
	APIURL         string `json:"api_url,omitempty"`
	Version        string `json:"version"`
	CommandVersion uint16 `json:"command_version"`
	Leader         bool   `json:"leader"`
	Gossip         string `json:"gossip"`
	AppliedIndex   uint64 `json:"applied_index"`
	AppliedKnown   bool   `json:"applied_known"`
	Lag            uint64 `json:"lag"`
}

// UpgradeReport says whether the next server may be taken down for an
// upgrade, which one, and if not, why.
type UpgradeReport struct {
	Safe           bool            `json:"safe"`
	Reasons        []string        `json:"reasons,omitempty"` // why it is not safe; empty when Safe
	LeaderID       string          `json:"leader_id"`
	Next           string          `json:"next,omitempty"`     // the server to upgrade next
	Order          []string        `json:"order,omitempty"`    // the servers left to upgrade, Next first, the leader last
	Upgraded       []string        `json:"upgraded,omitempty"` // the servers already on the newest build seen
	NewestVersion  string          `json:"newest_version"`
	CommandVersion uint16          `json:"cluster_command_version"` // the lowest of the voters'
	Servers        []UpgradeServer `json:"servers"`
}

// UpgradeCheck judges whether the cluster can lose one voter for an
// upgrade now. It is pure: status is the asked server's view (raft
// configuration joined with gossip), members its gossip list, applied each
// server's applied index by ID as that server reported it (a missing
// entry means it could not be asked).
//
// Safe needs a known leader, every voter alive in gossip, a majority of
// voters left alive once the next one stops, and every voter within
// MaxAppliedLag of the leader's applied index. The order: when more than
// one build runs, the servers on the newest build are done and the rest
// come oldest build first; followers before the leader, which goes last
// (transfer leadership away before stopping it).
func UpgradeCheck(status cluster.Status, members []cluster.Member, applied map[string]uint64) UpgradeReport {
	r := UpgradeReport{LeaderID: status.LeaderID}
	gossip := map[string]cluster.Member{}
	for _, m := range members {
		gossip[m.ID] = m
	}
	for _, p := range status.Peers {
		if !p.Voter {
			continue
		}
		s := UpgradeServer{ID: p.ID, APIURL: p.APIURL, Version: p.Version, CommandVersion: p.CommandVersion,
			Leader: p.ID == status.LeaderID, Gossip: "unknown"}
		if m, ok := gossip[p.ID]; ok {
			s.APIURL, s.Version, s.CommandVersion, s.Gossip = m.APIURL, m.Version, m.CommandVersion, m.Status
		}
		s.AppliedIndex, s.AppliedKnown = applied[p.ID]
		r.Servers = append(r.Servers, s)
	}
	sort.Slice(r.Servers, func(i, j int) bool { return r.Servers[i].ID < r.Servers[j].ID })
	if len(r.Servers) == 0 {
		r.Reasons = append(r.Reasons, "no voters in the raft configuration: the cluster is not bootstrapped")
		return r
	}

	var leader *UpgradeServer
	alive := 0
	r.CommandVersion = r.Servers[0].CommandVersion
	for i := range r.Servers {
		s := &r.Servers[i]
		if s.Leader {
			leader = s
		}
		if s.Gossip == "alive" {
			alive++
		} else {
			r.Reasons = append(r.Reasons, fmt.Sprintf("%s is %s in gossip: bring it back before stopping another", s.ID, s.Gossip))
		}
		r.CommandVersion = min(r.CommandVersion, s.CommandVersion)
		if r.NewestVersion == "" || CompareVersions(s.Version, r.NewestVersion) > 0 {
			r.NewestVersion = s.Version
		}
	}
	if quorum := len(r.Servers)/2 + 1; alive-1 < quorum {
		r.Reasons = append(r.Reasons, fmt.Sprintf("%d of %d voters alive: stopping one more leaves fewer than the %d a quorum needs", alive, len(r.Servers), quorum))
	}
	switch {
	case status.LeaderID == "":
		r.Reasons = append(r.Reasons, "no leader known: wait for an election")
	case leader == nil:
		r.Reasons = append(r.Reasons, fmt.Sprintf("leader %s is not a voter of the raft configuration", status.LeaderID))
	case !leader.AppliedKnown:
		r.Reasons = append(r.Reasons, fmt.Sprintf("could not read the applied index of leader %s", leader.ID))
	}
	if leader != nil && leader.AppliedKnown {
		for i := range r.Servers {
			s := &r.Servers[i]
			switch {
			case !s.AppliedKnown:
				if s != leader {
					r.Reasons = append(r.Reasons, fmt.Sprintf("could not read the applied index of %s from its /v1/status", s.ID))
				}
			case s.AppliedIndex < leader.AppliedIndex:
				s.Lag = leader.AppliedIndex - s.AppliedIndex
				if s.Lag > MaxAppliedLag {
					r.Reasons = append(r.Reasons, fmt.Sprintf("%s is catching up: applied %d, the leader %d (%d behind, at most %d allowed)",
						s.ID, s.AppliedIndex, leader.AppliedIndex, s.Lag, MaxAppliedLag))
				}
			}
		}
	}

	mixed := false
	for _, s := range r.Servers {
		mixed = mixed || s.Version != r.NewestVersion
	}
	var todo []UpgradeServer
	for _, s := range r.Servers {
		if mixed && s.Version == r.NewestVersion {
			r.Upgraded = append(r.Upgraded, s.ID)
			continue
		}
		todo = append(todo, s)
	}
	sort.SliceStable(todo, func(i, j int) bool {
		a, b := todo[i], todo[j]
		if a.Leader != b.Leader {
			return b.Leader // followers first, the leader last
		}
		if c := CompareVersions(a.Version, b.Version); c != 0 {
			return c < 0 // oldest build first
		}
		return a.ID < b.ID
	})
	for _, s := range todo {
		r.Order = append(r.Order, s.ID)
	}
	if len(r.Order) > 0 {
		r.Next = r.Order[0]
	}
	r.Safe = len(r.Reasons) == 0
	return r
}

// CompareVersions orders build versions naturally: runs of digits compare
// as numbers ("1.10.0" after "1.9.2"), the rest as text. It returns -1, 0
// or 1.
func CompareVersions(a, b string) int {
	pa, pb := versionParts(a), versionParts(b)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		x, y := pa[i], pb[i]
		nx, ex := strconv.ParseUint(x, 10, 64)
		ny, ey := strconv.ParseUint(y, 10, 64)
		switch {
		case ex == nil && ey == nil:
			if nx != ny {
				if nx < ny {
					return -1
				}
				return 1
			}
		case x != y:
			return strings.Compare(x, y)
		}
	}
	switch {
	case len(pa) < len(pb):
		return -1
	case len(pa) > len(pb):
		return 1
	}
	return 0
}

func versionParts(v string) []string {
	var parts []string
	start := 0
	for i := 1; i <= len(v); i++ {
		if i == len(v) || unicode.IsDigit(rune(v[i])) != unicode.IsDigit(rune(v[i-1])) {
			parts = append(parts, v[start:i])
			start = i
		}
	}
	return parts
}

// PeerApplied asks each voter's GET /v1/status (unauthenticated, on its
// API URL) for its applied index, in parallel; the asked server's own is
// status.AppliedIndex, without a request. A server that does not answer
// (or where another server answers) is left out, which UpgradeCheck reports.
func PeerApplied(ctx context.Context, client *http.Client, status cluster.Status) map[string]uint64 {
	return AppliedIndexes(peerStatuses(ctx, client, status, true))
}
