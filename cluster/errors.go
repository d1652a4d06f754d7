package cluster

import "errors"

// Sentinel errors. The API layer maps them to CloudStack errors: the
// retriable ones become a 503 that tells the client to try again.
var (
	// ErrNoLeader means no leader was known within the hold timeout.
	ErrNoLeader = errors.New("no cluster leader elected within the hold timeout; retry the request")
	// ErrNotLeader is returned by leader-only internal endpoints on a follower.
	ErrNotLeader = errors.New("this node is not the cluster leader")
	// ErrNotReady means the leader has not finished establishing leadership.
	ErrNotReady = errors.New("the leader is still establishing leadership; retry the request")
	// ErrUncertain means a write was sent but its outcome is unknown because the
	// leader changed or the connection broke mid-flight. Read back before retrying.
	ErrUncertain = errors.New("the leader changed while the write was in flight: it may or may not have been committed; check, then retry")
	// ErrUnauthorized means an internal request lacked a valid cluster signature.
	ErrUnauthorized = errors.New("internal request not signed with the cluster secret")
	// ErrShutdown means the node is shutting down.
	ErrShutdown = errors.New("node is shutting down")
)

// Retriable reports whether err is one a client may retry once the cluster
// has a leader again.
func Retriable(err error) bool {
	return errors.Is(err, ErrNoLeader) || errors.Is(err, ErrNotReady) ||
		errors.Is(err, ErrUncertain) || errors.Is(err, ErrShutdown) || errors.Is(err, ErrNotLeader)
}
