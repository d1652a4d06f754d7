package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/hypervisor/agent"
)

// The management side of the agent protocol (hypervisor/agent/proto.go).
// Every server answers agents, so they can sit behind the same load
// balancer as API users: reads come from the local state, writes go
// through raft like any API write.

// Timing told to agents.
const (
	agentMaxWait     = 60 * time.Second
	agentCommitTries = 8
)

// agentCall is one authenticated agent request.
type agentCall struct {
	host  *fsm.Host // nil for a first registration
	key   string    // the key the request was signed with
	nonce string
	body  []byte
	req   *http.Request
}

func (s *Server) agentRoutes(r *mux.Router) {
	r.HandleFunc(agent.PathRegister, s.agentHandler(s.agentRegister)).Methods(http.MethodPost)
	r.HandleFunc(agent.PathHeartbeat, s.agentHandler(s.agentHeartbeat)).Methods(http.MethodPost)
	r.HandleFunc(agent.PathDesired, s.agentHandler(s.agentDesired)).Methods(http.MethodGet)
	r.HandleFunc(agent.PathReport, s.agentHandler(s.agentReport)).Methods(http.MethodPost)
}

type agentError struct {
	status int
	text   string
	// relay, when set, is another server's whole answer (with its proof)
	// to pass back unchanged.
	relay []byte
	proof string
}

func (e *agentError) Error() string { return e.text }

func agentErr(status int, format string, args ...any) *agentError {
	return &agentError{status: status, text: fmt.Sprintf(format, args...)}
}

// agentHandler authenticates a request, runs h and signs its answer.
func (s *Server) agentHandler(h func(*agentCall) (any, *agentError)) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(io.LimitReader(req.Body, MaxBodyBytes+1))
		if err != nil || len(body) > MaxBodyBytes {
			writeAgent(w, "", "", http.StatusRequestEntityTooLarge, map[string]string{"error": "request body too large or unreadable"})
			return
		}
		call, ae := s.agentAuth(req, body)
		if ae != nil {
			writeAgent(w, "", "", ae.status, map[string]string{"error": ae.text})
			return
		}
		out, ae := h(call)
		if ae != nil && ae.relay != nil {
			w.Header().Set(agent.HeaderProof, ae.proof)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(ae.status)
			_, _ = w.Write(ae.relay)
			return
		}
		if ae != nil {
			s.logger.Warn("agent request refused", "path", req.URL.Path, "host_id", hostIDOf(call.host), "error", ae.text)
			writeAgent(w, call.key, call.nonce, ae.status, map[string]string{"error": ae.text})
			return
		}
		writeAgent(w, call.key, call.nonce, http.StatusOK, out)
	}
}

func hostIDOf(h *fsm.Host) string {
	if h == nil {
		return ""
	}
	return h.ID
}

func writeAgent(w http.ResponseWriter, key, nonce string, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b, status = []byte(`{"error":"answer does not encode"}`), http.StatusInternalServerError
	}
	if key != "" {
		w.Header().Set(agent.HeaderProof, agent.Proof(key, nonce, b))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// agentAuth checks the date and the signature: with the host's token when
// the request names its host, else with the registration token or, for an
// agent given its token by addHost, with the token of some host.
func (s *Server) agentAuth(req *http.Request, body []byte) (*agentCall, *agentError) {
	date, nonce, sig := req.Header.Get(agent.HeaderDate), req.Header.Get(agent.HeaderNonce), req.Header.Get(agent.HeaderSignature)
	t, err := time.Parse(time.RFC3339, date)
	if err != nil || nonce == "" || sig == "" {
		return nil, agentErr(http.StatusUnauthorized, "request lacks a valid date, nonce or signature")
	}
	if d := s.now().Sub(t); d > agent.MaxClockSkew || d < -agent.MaxClockSkew {
		return nil, agentErr(http.StatusUnauthorized, "request date %s is more than %s away from this server's clock; check the host's time", date, agent.MaxClockSkew)
	}
	msg := agent.Canonical(req.Method, req.URL.RequestURI(), date, nonce, body)
	call := &agentCall{nonce: nonce, body: body, req: req}
	st := s.c.State()
	if id := req.Header.Get(agent.HeaderHost); id != "" {
		h, err := fsm.Get[fsm.Host](st, nil, fsm.TableHosts, strings.ToLower(id))
		if err != nil || h == nil || h.Token == "" || !agent.Equal(sig, agent.Sign(h.Token, msg)) {
			return nil, agentErr(http.StatusUnauthorized, "unknown host or bad signature")
		}
		if !s.replays.fresh(h.ID, nonce, t) {
			return nil, agentErr(http.StatusUnauthorized, "request replayed (nonce seen before, or older than this host's newest by more than %s)", replayTolerance)
		}
		call.host, call.key = h, h.Token
		return call, nil
	}
	if req.URL.Path != agent.PathRegister {
		return nil, agentErr(http.StatusUnauthorized, "only registration may come without a host ID")
	}
	if s.regToken != "" && agent.Equal(sig, agent.Sign(s.regToken, msg)) {
		call.key = s.regToken
		return call, nil
	}
	hosts, err := fsm.List[fsm.Host](st, nil, fsm.TableHosts, "create")
	if err == nil {
		for _, h := range hosts {
			if h.Token != "" && agent.Equal(sig, agent.Sign(h.Token, msg)) {
				call.host, call.key = h, h.Token
				return call, nil
			}
		}
	}
	return nil, agentErr(http.StatusUnauthorized, "bad signature: the key is neither a host token nor the registration token")
}

// agentCommit applies ops built by build from the current state, again
// when a row changed in between (compare-and-set lost a race).
func (s *Server) agentCommit(ctx context.Context, build func(st *fsm.Store) ([]fsm.TxnOp, error)) (uint64, error) {
	var last error
	for range agentCommitTries {
		ops, err := build(s.c.State())
		if err != nil || len(ops) == 0 {
			return 0, err
		}
		idx, err := s.c.Apply(ctx, fsm.TxnRequestType, fsm.TxnRequest{Ops: ops})
		if err == nil {
			return idx, nil
		}
		last = err
		if !errors.Is(err, fsm.ErrStale) {
			return 0, err
		}
	}
	return 0, fmt.Errorf("gave up after %d tries: %w", agentCommitTries, last)
}

func decodeAgent(body []byte, v any) *agentError {
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return agentErr(http.StatusBadRequest, "body does not decode: %v", err)
	}
	return nil
}

// agentTimings returns the heartbeat interval and lease TTL a registering
// agent is told: the settings' (small-cloud) figures. A registration
// grants no lease; the first heartbeat's answer, from the leader, carries
// the timing in force, scaled to the cloud's size.
func (s *Server) agentTimings() (agent.Millis, agent.Millis) {
	t := s.c.State().BaseLeaseTiming()
	return agent.MillisOf(t.Interval), agent.MillisOf(t.TTL)
}
