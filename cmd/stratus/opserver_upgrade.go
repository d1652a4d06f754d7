package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/stratus-cloud/stratus/api"
	"github.com/stratus-cloud/stratus/cluster"
	"github.com/stratus-cloud/stratus/ops"
)

// Server side of `stratus operator upgrade-check` and `stratus operator
// raft transfer-leadership`.

const (
	// peerStatusWait bounds the upgrade check's round of /v1/status calls.
	peerStatusWait = 3 * time.Second
	// newLeaderWait bounds how long a transfer waits to see the new leader.
	newLeaderWait = 10 * time.Second
	// forwardedHeader marks a transfer a follower forwarded to the leader,
	// so it is forwarded at most once (the signed parameters cannot carry it).
	forwardedHeader = "X-Stratus-Forwarded"
)

// transferAnswer is the answer of raft-transfer-leadership.
type transferAnswer struct {
	Server         string `json:"server"` // the server that ran the transfer
	PreviousLeader string `json:"previous_leader"`
	Leader         string `json:"leader"`
	Term           uint64 `json:"term"`
}

func init() {
	operatorEndpointGroups = append(operatorEndpointGroups, func(s *api.Server, node *cluster.Node, logger hclog.Logger) {
		logger = logger.Named("operator")
		s.HandleOperator("upgrade-check", func(r *api.OperatorRequest) (any, *api.Error) {
			ctx, cancel := context.WithTimeout(r.HTTP.Context(), peerStatusWait)
			defer cancel()
			st := node.Status()
			return ops.UpgradeCheck(st, node.Members(), ops.PeerApplied(ctx, node.Config().HTTPClient, st)), nil
		})
		s.HandleOperator("raft-transfer-leadership", func(r *api.OperatorRequest) (any, *api.Error) {
			return transferLeadership(r, node, logger)
		})
	})
}

// transferLeadership runs the transfer on the leader; a follower forwards
// the signed request, unchanged, to the leader it knows.
func transferLeadership(r *api.OperatorRequest, node *cluster.Node, logger hclog.Logger) (any, *api.Error) {
	to := strings.TrimSpace(r.Params.Values.Get("to"))
	if !node.IsLeader() {
		if r.HTTP.Header.Get(forwardedHeader) != "" {
			return nil, api.ErrUnavailable("leadership moved while the transfer was forwarded; retry")
		}
		return forwardTransfer(r, node)
	}
	prev := node.ID()
	if to == prev {
		st := node.Status()
		return transferAnswer{Server: prev, PreviousLeader: prev, Leader: prev, Term: st.Term}, nil
	}
	logger.Info("transferring leadership on request", "to", to, "caller", r.Caller.Username)
	if err := node.TransferLeadershipTo(to); err != nil {
		if errors.Is(err, cluster.ErrNotLeader) {
			return nil, api.ErrUnavailable("this server stopped leading before the transfer; retry")
		}
		return nil, api.ErrParam("%s", err.Error())
	}
	deadline := time.Now().Add(newLeaderWait)
	for {
		st := node.Status()
		if st.LeaderID != "" && st.LeaderID != prev && (to == "" || st.LeaderID == to) {
			return transferAnswer{Server: prev, PreviousLeader: prev, Leader: st.LeaderID, Term: st.Term}, nil
		}
		if time.Now().After(deadline) {
			return nil, api.ErrInternal(fmt.Sprintf("leadership was handed over but no new leader was seen within %s (leader now %q)", newLeaderWait, st.LeaderID))
		}
		select {
		case <-r.HTTP.Context().Done():
			return nil, api.ErrUnavailable("the request ended before a new leader was seen")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// forwardTransfer sends the caller's signed parameters to the leader's
// operator endpoint: the signature covers the parameters, not the host,
// so the leader checks the caller as this server did.
func forwardTransfer(r *api.OperatorRequest, node *cluster.Node) (any, *api.Error) {
	st := node.Status()
	var leaderURL string
	for _, p := range st.Peers {
		if p.ID == st.LeaderID && p.Gossip == "alive" {
			leaderURL = p.APIURL
		}
	}
	if leaderURL == "" {
		return nil, api.ErrUnavailable(fmt.Sprintf("no reachable leader known (leader %q); retry", st.LeaderID))
	}
	ctx, cancel := context.WithTimeout(r.HTTP.Context(), newLeaderWait+5*time.Second)
	defer cancel()
	u := strings.TrimRight(leaderURL, "/") + api.OperatorPathPrefix + "raft-transfer-leadership"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(r.Params.Values.Encode()))
	if err != nil {
		return nil, api.ErrInternal("build the forwarded request: " + err.Error())
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(forwardedHeader, node.ID())
	resp, err := node.Config().HTTPClient.Do(req)
	if err != nil {
		return nil, api.ErrUnavailable(fmt.Sprintf("forward to leader %s: %v; retry", st.LeaderID, err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, api.ErrUnavailable(fmt.Sprintf("read the answer of leader %s: %v; retry", st.LeaderID, err))
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Code int    `json:"errorcode"`
			Text string `json:"errortext"`
		}
		if json.Unmarshal(body, &e) != nil || e.Text == "" {
			e.Code, e.Text = api.ErrCodeInternal, fmt.Sprintf("leader %s answered HTTP %d", st.LeaderID, resp.StatusCode)
		}
		return nil, &api.Error{Code: e.Code, Text: e.Text}
	}
	var out transferAnswer
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, api.ErrInternal(fmt.Sprintf("leader %s answered something else than a transfer: %v", st.LeaderID, err))
	}
	return out, nil
}
