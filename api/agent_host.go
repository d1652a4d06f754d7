package api

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/stratus-cloud/stratus/cluster"
	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/hypervisor/agent"
)

// hostDetailURI is where a host's libvirt URI is kept: peers migrate to it.
const hostDetailURI = "libvirt_uri"

// applyFacts copies what an agent reports onto a host row and says whether
// anything changed.
// With setUp the host also goes Up; where an HA controller runs, only it
// moves a host's state (in order with its lease timers and fencing).
func applyFacts(h *fsm.Host, req *agent.RegisterRequest, setUp bool) bool {
	before := *h
	f := req.Facts
	h.CPUNumber, h.CPUSockets, h.CPUSpeed, h.MemoryTotal = f.CPUs, f.CPUSockets, f.CPUMHz, f.MemoryBytes
	h.HypervisorVersion, h.Version = f.HypervisorVersion, req.AgentVersion
	if setUp {
		h.State = fsm.HostStateUp
	}
	changed := before.CPUNumber != h.CPUNumber || before.CPUSockets != h.CPUSockets || before.CPUSpeed != h.CPUSpeed ||
		before.MemoryTotal != h.MemoryTotal || before.HypervisorVersion != h.HypervisorVersion || before.Version != h.Version ||
		before.State != h.State
	if h.StatusURL != req.StatusURL || h.SelfFence != req.SelfFence {
		h.StatusURL, h.SelfFence = req.StatusURL, req.SelfFence
		changed = true
	}
	if req.URI != "" && h.Details[hostDetailURI] != req.URI {
		if h.Details == nil {
			h.Details = map[string]string{}
		}
		h.Details[hostDetailURI] = req.URI
		changed = true
	}
	return changed
}

func (s *Server) agentRegister(c *agentCall) (any, *agentError) {
	var req agent.RegisterRequest
	if e := decodeAgent(c.body, &req); e != nil {
		return nil, e
	}
	interval, ttl := s.agentTimings()
	resp := agent.RegisterResponse{HeartbeatInterval: interval, LeaseTTL: ttl}
	var token string
	_, err := s.agentCommit(c.req.Context(), func(st *fsm.Store) ([]fsm.TxnOp, error) {
		if c.host != nil {
			h, err := fsm.Get[fsm.Host](st, nil, fsm.TableHosts, c.host.ID)
			if err != nil || h == nil {
				return nil, err
			}
			h = h.Copy()
			resp.HostID = h.ID
			if !applyFacts(h, &req, s.hb == nil) {
				return nil, nil
			}
			return []fsm.TxnOp{fsm.Update(fsm.TableHosts, h)}, nil
		}
		ops, h, ae := s.registerByToken(st, &req)
		if ae != nil {
			return nil, ae
		}
		resp.HostID, token = h.ID, h.Token
		return ops, nil
	})
	if err != nil {
		var ae *agentError
		if errors.As(err, &ae) {
			return nil, ae
		}
		return nil, agentErr(http.StatusServiceUnavailable, "could not record the host: %v", err)
	}
	resp.Token = token
	s.logger.Info("host agent registered", "host_id", resp.HostID, "address", req.Address)
	return resp, nil
}

// registerByToken finds the host an agent with the registration token
// stands for (by address in its zone) or adds it to the named cluster, and
// gives it a fresh token.
func (s *Server) registerByToken(st *fsm.Store, req *agent.RegisterRequest) ([]fsm.TxnOp, *fsm.Host, *agentError) {
	if req.Address == "" || req.Zone == "" {
		return nil, nil, agentErr(http.StatusBadRequest, "registration needs the host's address and zone")
	}
	zone, _ := st.Zone(nil, strings.ToLower(req.Zone))
	if zone == nil {
		zone, _ = st.ZoneByName(nil, req.Zone)
	}
	if zone == nil {
		return nil, nil, agentErr(http.StatusBadRequest, "zone %s does not exist; create it first", req.Zone)
	}
	var h *fsm.Host
	if hs, _ := fsm.List[fsm.Host](st, nil, fsm.TableHosts, "address", zone.ID, req.Address); len(hs) > 0 {
		h = hs[0].Copy()
	}
	var ops []fsm.TxnOp
	if h == nil {
		cl := findByNameOrID[fsm.Cluster](st, fsm.TableClusters, zone.ID, req.Cluster)
		if cl == nil {
			return nil, nil, agentErr(http.StatusBadRequest, "cluster %q does not exist in zone %s; add it first", req.Cluster, zone.Name)
		}
		name := req.Name
		if name == "" {
			name = req.Address
		}
		h = &fsm.Host{
			ID: newID(), Name: name, ZoneID: zone.ID, PodID: cl.PodID, ClusterID: cl.ID, Type: fsm.HostTypeRouting,
			HypervisorType: fsm.HypervisorKVM, IPAddress: req.Address, URL: "http://" + hostForURL(req.Address),
			State: fsm.HostStateDisconnected, ResourceState: fsm.ResourceStateEnabled, HAState: fsm.HAStateDisabled, Created: s.now().UTC(),
		}
		applyFacts(h, req, s.hb == nil)
		h.Token = fsm.NewKey(32)
		return append(ops, fsm.Create(fsm.TableHosts, h)), h, nil
	}
	applyFacts(h, req, s.hb == nil)
	h.Token = fsm.NewKey(32)
	return append(ops, fsm.Update(fsm.TableHosts, h)), h, nil
}

// findByNameOrID finds a row of a zone's table by ID or caseless name.
func findByNameOrID[T any](st *fsm.Store, table, zoneID, key string) *T {
	if key == "" {
		return nil
	}
	if row, _ := fsm.Get[T](st, nil, table, strings.ToLower(key)); row != nil {
		return row
	}
	if rows, _ := fsm.List[T](st, nil, table, "name", zoneID, key); len(rows) > 0 {
		return rows[0]
	}
	return nil
}

func (s *Server) agentHeartbeat(c *agentCall) (any, *agentError) {
	var hb agent.Heartbeat
	if e := decodeAgent(c.body, &hb); e != nil {
		return nil, e
	}
	// Heartbeats live in the leader's memory (its HA controller's lease
	// timers): a follower passes them on. The answer carries exactly the
	// timing the leader armed the host's timer with.
	var grant fsm.LeaseTiming
	if s.hb != nil {
		g, ok := s.hb.Heartbeat(c.host.ID, hb.SentAt, s.now())
		if !ok {
			return nil, s.forwardToLeader(c)
		}
		grant = g
	} else {
		grant = s.c.State().BaseLeaseTiming()
	}
	// Only a change of state goes through raft: a heartbeat of a host that
	// is already Up with the same hardware costs no write.
	state := fsm.HostStateUp
	_, err := s.agentCommit(c.req.Context(), func(st *fsm.Store) ([]fsm.TxnOp, error) {
		h, err := fsm.Get[fsm.Host](st, nil, fsm.TableHosts, c.host.ID)
		if err != nil || h == nil {
			return nil, err
		}
		state = h.State
		h = h.Copy()
		if !applyFacts(h, &agent.RegisterRequest{Facts: hb.Facts, AgentVersion: h.Version, StatusURL: h.StatusURL, SelfFence: h.SelfFence}, s.hb == nil) {
			return nil, nil
		}
		state = h.State // as committed
		return []fsm.TxnOp{fsm.Update(fsm.TableHosts, h)}, nil
	})
	if err != nil {
		return nil, agentErr(http.StatusServiceUnavailable, "could not record the heartbeat: %v", err)
	}
	return agent.HeartbeatResponse{State: state, HeartbeatInterval: agent.MillisOf(grant.Interval), LeaseTTL: agent.MillisOf(grant.TTL)}, nil
}

// HeartbeatSink takes host heartbeats on the leader: the HA controller's
// lease timers. Heartbeat returns false on a node that does not lead, and
// the API then passes the request on to the leader; on the leader it
// returns the timing to answer with (the lease the host's timer counts).
type HeartbeatSink interface {
	Heartbeat(hostID string, sent, received time.Time) (fsm.LeaseTiming, bool)
}

// headerForwarded marks an agent request a follower passed to the leader,
// so it is never passed on twice.
const headerForwarded = "X-Stratus-Forwarded-By"

// forwardToLeader sends the agent's request, as it came (its signature
// covers it), to the leader and answers with the leader's answer, whose
// proof the agent checks as usual.
func (s *Server) forwardToLeader(c *agentCall) *agentError {
	if c.req.Header.Get(headerForwarded) != "" {
		return agentErr(http.StatusServiceUnavailable, "this server is no longer the leader; retry")
	}
	leader := s.leaderAPIURL()
	if leader == "" {
		return agentErr(http.StatusServiceUnavailable, "no leader known; retry")
	}
	req, err := http.NewRequestWithContext(c.req.Context(), c.req.Method, strings.TrimSuffix(leader, "/")+c.req.URL.RequestURI(), bytes.NewReader(c.body))
	if err != nil {
		return agentErr(http.StatusInternalServerError, "forward: %v", err)
	}
	for _, h := range []string{agent.HeaderHost, agent.HeaderDate, agent.HeaderNonce, agent.HeaderSignature, "Content-Type"} {
		req.Header.Set(h, c.req.Header.Get(h))
	}
	req.Header.Set(headerForwarded, s.c.ID())
	resp, err := s.forwardClient.Do(req)
	if err != nil {
		return agentErr(http.StatusServiceUnavailable, "forward to the leader: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBodyBytes))
	if err != nil {
		return agentErr(http.StatusServiceUnavailable, "read the leader's answer: %v", err)
	}
	return &agentError{status: resp.StatusCode, relay: body, proof: resp.Header.Get(agent.HeaderProof)}
}

// leaderURLer is the cheap way to the leader's API address (cluster.Node
// has it: raft's leader and a gossip member lookup, no status assembly).
type leaderURLer interface {
	LeaderAPIURL() string
}

// leaderAPIURL returns the leader's API address, or "" when none is known.
func (s *Server) leaderAPIURL() string {
	if l, ok := s.c.(leaderURLer); ok {
		return l.LeaderAPIURL()
	}
	for _, p := range s.c.Status().Peers {
		if p.Leader {
			return p.APIURL
		}
	}
	return ""
}

// relayIdleConns is how many idle connections to the leader a follower
// keeps for relayed heartbeats: net/http keeps 2 per host by default, so
// a busy relay would open (and leave in TIME_WAIT) a connection for
// almost every heartbeat.
const relayIdleConns = 128

// relayClient returns c (nil: a plain client with a 10 s timeout) with a
// transport that keeps relayIdleConns idle connections per server.
func relayClient(c *http.Client) *http.Client {
	return cluster.PooledClient(c, relayIdleConns, 10*time.Second)
}
