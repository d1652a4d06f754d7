//go:build stratus_cmdv2

package main

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"

	"github.com/stratus-cloud/stratus/api"
	"github.com/stratus-cloud/stratus/cluster"
	"github.com/stratus-cloud/stratus/fsm"
)

// Only in builds with the stratus_cmdv2 tag (fsm.CommandVersion 2), which
// e2e's rolling upgrade uses as the next release: an operator call that
// commits a command at this build's command version, so the test sees the
// version gate refuse it while an older voter remains and accept it after.

func init() {
	operatorEndpointGroups = append(operatorEndpointGroups, func(s *api.Server, node *cluster.Node, _ hclog.Logger) {
		s.HandleOperator("command-version-probe", func(r *api.OperatorRequest) (any, *api.Error) {
			inner, err := fsm.EncodeVersion(fsm.NoopRequestType, false, fsm.CommandVersion, struct{}{})
			if err != nil {
				return nil, api.ErrInternal(err.Error())
			}
			data, err := fsm.Encode(fsm.OnceRequestType, false, fsm.OnceRequest{ID: uuid.NewString(), Time: time.Now().UTC(), Entry: inner})
			if err != nil {
				return nil, api.ErrInternal(err.Error())
			}
			idx, err := node.ApplyRaw(r.HTTP.Context(), data)
			switch {
			case errors.Is(err, cluster.ErrVersionGate):
				return nil, api.ErrInternal(err.Error())
			case cluster.Retriable(err):
				return nil, api.ErrUnavailable(err.Error())
			case err != nil:
				return nil, api.ErrInternal(err.Error())
			}
			return map[string]any{"index": idx, "command_version": fsm.CommandVersion}, nil
		})
	})
	registerOperator(&operatorCommand{name: "debug command-version-probe",
		desc: "(stratus_cmdv2 builds) commit a no-op at this build's command version",
		run: func(c *opClient, _ []string) error {
			var out struct {
				Index          uint64 `json:"index"`
				CommandVersion uint16 `json:"command_version"`
			}
			if err := c.call(http.MethodPost, "command-version-probe", nil, &out); err != nil {
				return err
			}
			_, err := fmt.Fprintf(c.out, "committed a command of version %d at index %d\n", out.CommandVersion, out.Index)
			return err
		}})
}
