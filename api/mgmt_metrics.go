package api

import (
	"context"
	"sync"
	"time"

	"github.com/stratus-cloud/stratus/ops"
)

// mgmtStatusWait bounds the round of peer /v1/status reads one
// listManagementServersMetrics call makes: a dead server refuses at once,
// a cut-off one costs at most this. The console refreshes every 2 s.
const mgmtStatusWait = 1500 * time.Millisecond

// Index sources of a listManagementServersMetrics row.
const (
	indexFromSelf   = "self"   // the answering server's own raft state
	indexFromStatus = "status" // read from that server's /v1/status during the call
	indexUnknown    = "none"   // that server could not be read; see statuserror
)

// mgmtMetricsResponse is one server with its raft indexes, as the server
// itself reports them, plus the cluster's summary as the answering server
// sees it (repeated on every row, so one list call answers everything).
type mgmtMetricsResponse struct {
	mgmtServerResponse
	Gossip         string  `json:"gossip"`
	CollectionTime string  `json:"collectiontime"`
	Term           *uint64 `json:"term,omitempty"`
	AppliedIndex   *uint64 `json:"appliedindex,omitempty"`
	CommitIndex    *uint64 `json:"commitindex,omitempty"`
	LastIndex      *uint64 `json:"lastindex,omitempty"`
	Lag            *uint64 `json:"lag,omitempty"`
	IndexSource    string  `json:"indexsource"`
	StatusError    string  `json:"statuserror,omitempty"`
	LastContact    string  `json:"lastcontact,omitempty"`
	LeaderID       string  `json:"leaderid,omitempty"`

	AnsweredBy            string   `json:"answeredby"`
	ClusterLeader         string   `json:"clusterleader,omitempty"`
	ClusterTerm           uint64   `json:"clusterterm"`
	ClusterCommandVersion uint16   `json:"clustercommandversion"`
	NewestVersion         string   `json:"newestversion,omitempty"`
	UpgradeSafe           bool     `json:"upgradesafe"`
	UpgradeNext           string   `json:"upgradenext,omitempty"`
	UpgradeOrder          []string `json:"upgradeorder,omitempty"`
	Upgraded              []string `json:"upgraded,omitempty"`
	UpgradeReasons        []string `json:"upgradereasons,omitempty"`
}

var mgmtMetricsFields = append(mgmtServerFields[:len(mgmtServerFields):len(mgmtServerFields)],
	ResponseField{Name: "gossip", Type: "string", Description: "The server's gossip state as the answering server sees it: alive, suspect, dead, left or unknown."},
	ResponseField{Name: "collectiontime", Type: "date", Description: "When the answering server collected these figures."},
	ResponseField{Name: "term", Type: "long", Description: "The raft term the server itself reports."},
	ResponseField{Name: "appliedindex", Type: "long", Description: "The last raft index the server applied to its state, as it reports it."},
	ResponseField{Name: "commitindex", Type: "long", Description: "The last raft index the server knows committed."},
	ResponseField{Name: "lastindex", Type: "long", Description: "The last raft index in the server's log."},
	ResponseField{Name: "lag", Type: "long", Description: "How many entries the server's applied index trails the leader's."},
	ResponseField{Name: "indexsource", Type: "string", Description: "Where the indexes come from: self (the answering server), status (the server's /v1/status, read during this call) or none (it could not be read)."},
	ResponseField{Name: "statuserror", Type: "string", Description: "Why the server's status could not be read."},
	ResponseField{Name: "lastcontact", Type: "date", Description: "When the answering server last read this server's status."},
	ResponseField{Name: "leaderid", Type: "string", Description: "The leader the server itself knows."},
	ResponseField{Name: "answeredby", Type: "string", Description: "The management server that answered this call."},
	ResponseField{Name: "clusterleader", Type: "string", Description: "The cluster's leader, as the answering server knows it."},
	ResponseField{Name: "clusterterm", Type: "long", Description: "The answering server's raft term."},
	ResponseField{Name: "clustercommandversion", Type: "integer", Description: "The lowest command version of the voters: what the cluster may write."},
	ResponseField{Name: "newestversion", Type: "string", Description: "The newest build a voter runs."},
	ResponseField{Name: "upgradesafe", Type: "boolean", Description: "Whether the next server may be stopped for an upgrade now (the verdict of stratus operator upgrade-check)."},
	ResponseField{Name: "upgradenext", Type: "string", Description: "The server to upgrade next."},
	ResponseField{Name: "upgradeorder", Type: "list", Description: "The servers left to upgrade, next first, the leader last."},
	ResponseField{Name: "upgraded", Type: "list", Description: "The servers already on the newest build, while builds are mixed."},
	ResponseField{Name: "upgradereasons", Type: "list", Description: "Why an upgrade is not safe now; empty when it is."},
)

// mgmtContacts remembers, per API server, when each peer last answered a
// status read, so a server that went down shows since when.
var mgmtContacts sync.Map // *Server -> *contactBook

type contactBook struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func (s *Server) contacts() *contactBook {
	b, _ := mgmtContacts.LoadOrStore(s, &contactBook{seen: map[string]time.Time{}})
	return b.(*contactBook)
}

// note records the peers that answered at now and returns the last
// contact of every peer known.
func (b *contactBook) note(reports map[string]ops.PeerReport, now time.Time) map[string]time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, rep := range reports {
		if rep.Err == nil {
			b.seen[id] = now
		}
	}
	out := make(map[string]time.Time, len(b.seen))
	for id, t := range b.seen {
		out[id] = t
	}
	return out
}

func listManagementServersMetrics(r *Request) (any, *Error) {
	p := r.Params
	start, limit, e := p.Page(r.State().SettingInt("default.page.size"))
	if e != nil {
		return nil, e
	}
	if _, e := p.Bool("system", false); e != nil {
		return nil, e
	}
	f := newMgmtFilter(p)
	st := r.srv.c.Status()
	ctx, cancel := context.WithTimeout(r.Ctx, mgmtStatusWait)
	defer cancel()
	reports := ops.PeerStatuses(ctx, r.srv.forwardClient, st)
	now := r.srv.now()
	seen := r.srv.contacts().note(reports, now)
	verdict := ops.UpgradeCheck(st, ops.StatusMembers(st), ops.AppliedIndexes(reports))
	var leaderApplied *uint64
	if rep, ok := reports[st.LeaderID]; ok && rep.Err == nil {
		leaderApplied = &rep.Status.AppliedIndex
	}

	var out []mgmtMetricsResponse
	for _, peer := range st.Peers {
		m := mgmtMetricsResponse{mgmtServerResponse: mgmtServer(peer), Gossip: peer.Gossip,
			CollectionTime: FormatTime(now), IndexSource: indexUnknown, LastContact: FormatTime(seen[peer.ID]),
			AnsweredBy: st.ID, ClusterLeader: st.LeaderID, ClusterTerm: st.Term,
			ClusterCommandVersion: verdict.CommandVersion, NewestVersion: verdict.NewestVersion,
			UpgradeSafe: verdict.Safe, UpgradeNext: verdict.Next, UpgradeOrder: verdict.Order,
			Upgraded: verdict.Upgraded, UpgradeReasons: verdict.Reasons}
		if !f.keep(m.ID, m.Name) {
			continue
		}
		rep, asked := reports[peer.ID]
		switch {
		case asked && rep.Err == nil:
			own := rep.Status
			m.IndexSource = indexFromStatus
			if rep.Self {
				m.IndexSource = indexFromSelf
			}
			m.RaftRole, m.LeaderID = own.Role, own.LeaderID
			m.Term, m.AppliedIndex, m.CommitIndex, m.LastIndex = &own.Term, &own.AppliedIndex, &own.CommitIndex, &own.LastIndex
			if leaderApplied != nil {
				lag := uint64(0)
				if own.AppliedIndex < *leaderApplied {
					lag = *leaderApplied - own.AppliedIndex
				}
				m.Lag = &lag
			}
		case asked:
			m.StatusError = rep.Err.Error()
			if !peer.Leader {
				m.RaftRole = "unknown"
			}
		default:
			m.StatusError = "its status was not read"
		}
		out = append(out, m)
	}
	if f.id != "" && len(out) == 0 {
		return nil, ErrEntityNotFound(p.Cmd, "id", p.String("id"))
	}
	return ListBody("managementserver", len(out), Paginate(out, start, limit)), nil
}
