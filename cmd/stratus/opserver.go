package main

import (
	"github.com/hashicorp/go-hclog"

	"github.com/stratus-cloud/stratus/api"
	"github.com/stratus-cloud/stratus/cluster"
)

// Server side of `stratus operator`: each area registers its endpoints
// from its own file (opserver_*.go) into operatorEndpointGroups; the
// server adds them all to its API at start.
var operatorEndpointGroups []func(s *api.Server, node *cluster.Node, logger hclog.Logger)

func registerOperatorEndpoints(s *api.Server, node *cluster.Node, logger hclog.Logger) {
	for _, g := range operatorEndpointGroups {
		g(s, node, logger)
	}
}

func init() {
	operatorEndpointGroups = append(operatorEndpointGroups, func(s *api.Server, node *cluster.Node, _ hclog.Logger) {
		// members: the gossip view; raft-peers: raft's configuration joined
		// with it (the same as /v1/status peers, from the server asked).
		s.HandleOperator("members", func(*api.OperatorRequest) (any, *api.Error) {
			return map[string]any{"server": node.ID(), "members": node.Members()}, nil
		})
		s.HandleOperator("raft-peers", func(*api.OperatorRequest) (any, *api.Error) {
			st := node.Status()
			return map[string]any{"server": st.ID, "leader_id": st.LeaderID, "term": st.Term, "peers": st.Peers}, nil
		})
	})
}
