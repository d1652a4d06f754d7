package cluster

import (
	"errors"
	"time"

	"github.com/hashicorp/raft"

	"github.com/stratus-cloud/stratus/cluster/metrics"
	"github.com/stratus-cloud/stratus/fsm"
)

// timedFSM is the state machine raft drives, timing each Apply for the
// stratus_fsm_apply_duration_seconds histogram and counting the entries'
// bytes for the snapshot threshold. Snapshot and Restore are the embedded
// FSM's.
type timedFSM struct {
	*fsm.FSM
	volume *logVolume
}

func (t timedFSM) Apply(l *raft.Log) any {
	t.volume.add(l)
	start := time.Now()
	defer func() { metrics.FSMApply.Observe(time.Since(start).Seconds()) }()
	return t.FSM.Apply(l)
}

// forwardEndpoint names an internal path for the forwarded-requests metric.
func forwardEndpoint(path string) string {
	switch path {
	case PathApply:
		return "apply"
	case PathReadIndex:
		return "read_index"
	}
	return "other"
}

// forwardOutcome labels the result of one forwarded call: ok, not_sent,
// one of the internal protocol's codes (not_leader, no_leader, ...), or
// error (failed on the way or with an unexpected status).
func forwardOutcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, errNotSent):
		return "not_sent"
	}
	if code := codeOf(err); code != "internal" {
		return code
	}
	return "error"
}
