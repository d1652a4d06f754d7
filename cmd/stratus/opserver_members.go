package main

import (
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/stratus-cloud/stratus/api"
	"github.com/stratus-cloud/stratus/cluster"
)

// serverAutopilot is this server's autopilot (one server per process);
// remove-peer applies its minimum quorum.
var serverAutopilot atomic.Pointer[cluster.Autopilot]

// startAutopilot wires the dead-server autopilot into node's leadership.
func startAutopilot(node *cluster.Node, minQuorum int, threshold time.Duration, logger hclog.Logger) {
	ap := cluster.NewAutopilot(node, cluster.AutopilotConfig{MinQuorum: minQuorum, DeadServerThreshold: threshold, Logger: logger})
	node.AddLeadershipHooks("autopilot", ap.Establish, ap.Revoke)
	serverAutopilot.Store(ap)
}

func init() {
	operatorEndpointGroups = append(operatorEndpointGroups, func(s *api.Server, node *cluster.Node, logger hclog.Logger) {
		logger = logger.Named("operator")
		// raft-remove-peer runs on the leader only; the CLI finds the
		// leader through raft-peers and calls it there. A follower's
		// answer names the leader so a CLI that raced an election can
		// try again.
		s.HandleOperator("raft-remove-peer", func(r *api.OperatorRequest) (any, *api.Error) {
			if r.HTTP.Method != http.MethodPost {
				return nil, &api.Error{Code: api.ErrCodeMethodNotAllowed, Text: "raft-remove-peer changes the cluster: use POST"}
			}
			id := r.Params.String("id")
			if id == "" {
				return nil, api.ErrParam("give the ID of the server to remove (-id; stratus operator raft list-peers shows them)")
			}
			minQuorum := cluster.DefaultMinQuorum
			if ap := serverAutopilot.Load(); ap != nil {
				minQuorum = ap.MinQuorum()
			}
			peers, err := node.RemovePeer(r.HTTP.Context(), id, minQuorum)
			switch {
			case errors.Is(err, cluster.ErrNotLeader):
				st := node.Status()
				return nil, &api.Error{Code: api.ErrCodeServiceUnavailable,
					Text: "server " + node.ID() + " is not the leader (leader: " + st.LeaderID + "): call remove-peer on the leader: " + err.Error()}
			case errors.Is(err, cluster.ErrPeerNotFound):
				return nil, &api.Error{Code: http.StatusNotFound, Text: err.Error()}
			case errors.Is(err, cluster.ErrRemoveLeader), errors.Is(err, cluster.ErrLastVoter),
				errors.Is(err, cluster.ErrBelowMinQuorum), errors.Is(err, cluster.ErrQuorumUnsafe):
				return nil, &api.Error{Code: http.StatusConflict, Text: "refused: " + err.Error()}
			case err != nil:
				return nil, &api.Error{Code: api.ErrCodeInternal, Text: err.Error()}
			}
			logger.Info("raft peer removed", "removed_id", id, "by_user", r.Caller.ID)
			st := node.Status()
			return map[string]any{"server": st.ID, "removed": id, "leader_id": st.LeaderID, "term": st.Term,
				"min_quorum": minQuorum, "peers": peers}, nil
		})
	})
}
