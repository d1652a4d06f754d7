package api

import (
	"net/url"
	"runtime"
	"strings"

	"github.com/google/uuid"

	"github.com/stratus-cloud/stratus/cluster"
)

// mgmtNamespace derives stable UUIDs for management servers from their
// node IDs, since CloudStack clients expect a UUID id.
var mgmtNamespace = uuid.MustParse("5d6f1a0e-3b59-4c1e-9a57-2f4a3f3b8c11")

func mgmtServerID(nodeID string) string { return uuid.NewSHA1(mgmtNamespace, []byte(nodeID)).String() }

type mgmtServerResponse struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	State     string `json:"state"`
	Version   string `json:"version"`
	ServiceIP string `json:"serviceip,omitempty"`
	OSDistro  string `json:"osdistribution"`
	// Stratus additions: the node's place in the raft cluster.
	RaftRole       string `json:"raftrole"`
	Voter          bool   `json:"voter"`
	CommandVersion uint16 `json:"commandversion,omitempty"`
}

var mgmtServerFields = []ResponseField{
	{Name: "id", Type: "string", Description: "ID of the management server, derived from its node ID."},
	{Name: "name", Type: "string", Description: "Node ID of the management server."},
	{Name: "state", Type: "string", Description: "Up when the server gossips as alive, else Down."},
	{Name: "version", Type: "string", Description: "Build version the server runs."},
	{Name: "serviceip", Type: "string", Description: "Address its API listens on."},
	{Name: "osdistribution", Type: "string", Description: "Operating system of the server."},
	{Name: "raftrole", Type: "string", Description: "leader or follower in the replicated state machine."},
	{Name: "voter", Type: "boolean", Description: "Whether the server votes in raft elections."},
	{Name: "commandversion", Type: "integer", Description: "Highest replicated command version the server understands, as it gossips."},
}

var mgmtFilterParams = []ParamSpec{
	{Name: "id", Type: "uuid", Description: "Only the server with this ID."},
	{Name: "name", Type: "string", Description: "Only the server with this name."},
}

func init() {
	registerCommands(func(*Server) []*Command {
		return []*Command{{
			Name: "listManagementServers", Description: "Lists the management servers of this cloud: the Stratus cluster's nodes.",
			Access: AccessRootAdmin, ObjectName: "managementserver", Response: mgmtServerFields,
			Params:  withPaging(mgmtFilterParams...),
			Handler: listManagementServers,
		}, {
			Name: "listManagementServersMetrics",
			Description: "Lists the management servers with their raft indexes, the cluster's leader and term, " +
				"and whether the next server may be upgraded now.",
			Access: AccessRootAdmin, ObjectName: "managementserver", Response: mgmtMetricsFields,
			Params: withPaging(append(mgmtFilterParams[:len(mgmtFilterParams):len(mgmtFilterParams)],
				ParamSpec{Name: "system", Type: "boolean", Description: "Accepted for CloudStack clients; Stratus reports no JVM or host statistics."})...),
			Handler: listManagementServersMetrics,
		}}
	})
}

// mgmtFilter is the id, name and keyword filter both list commands take.
type mgmtFilter struct{ id, name, keyword string }

func newMgmtFilter(p Params) mgmtFilter {
	return mgmtFilter{id: strings.ToLower(p.String("id")), name: p.String("name"), keyword: strings.ToLower(p.String("keyword"))}
}

func (f mgmtFilter) keep(id, name string) bool {
	return (f.id == "" || id == f.id) && (f.name == "" || name == f.name) &&
		(f.keyword == "" || strings.Contains(strings.ToLower(name), f.keyword))
}

// mgmtServer is a peer as the answering server's raft configuration and
// gossip show it.
func mgmtServer(peer cluster.Peer) mgmtServerResponse {
	m := mgmtServerResponse{ID: mgmtServerID(peer.ID), Name: peer.ID, State: "Down", Version: peer.Version,
		OSDistro: runtime.GOOS, RaftRole: "follower", Voter: peer.Voter, CommandVersion: peer.CommandVersion}
	if peer.Gossip == "alive" {
		m.State = "Up"
	}
	if peer.Leader {
		m.RaftRole = "leader"
	}
	if u, err := url.Parse(peer.APIURL); err == nil {
		m.ServiceIP = u.Hostname()
	}
	return m
}

func listManagementServers(r *Request) (any, *Error) {
	p := r.Params
	start, limit, e := p.Page(r.State().SettingInt("default.page.size"))
	if e != nil {
		return nil, e
	}
	f := newMgmtFilter(p)
	var out []mgmtServerResponse
	for _, peer := range r.srv.c.Status().Peers {
		if m := mgmtServer(peer); f.keep(m.ID, m.Name) {
			out = append(out, m)
		}
	}
	if f.id != "" && len(out) == 0 {
		return nil, ErrEntityNotFound(p.Cmd, "id", p.String("id"))
	}
	return ListBody("managementserver", len(out), Paginate(out, start, limit)), nil
}
