package cluster

import (
	"net/http"
	"time"
)

// InternalIdleConns is how many idle connections per server the client of
// forwarded writes and read-index calls keeps. net/http keeps 2 by
// default, so a follower relaying more than two writes at a time closed a
// connection after almost every call and dialed a new one: at 10,000 hosts
// and 256 API clients a follower spent a third of its CPU in connect(2),
// with 24,000 sockets in TIME_WAIT on the machine.
const InternalIdleConns = 256

// PooledClient returns c (nil: a client with the given timeout) with a
// transport that keeps at least idle idle connections per server. A client
// whose transport is not an *http.Transport (a test's round tripper) is
// returned as it is; so is one that already keeps as many.
func PooledClient(c *http.Client, idle int, timeout time.Duration) *http.Client {
	if c == nil {
		c = &http.Client{Timeout: timeout}
	}
	var tr *http.Transport
	switch t := c.Transport.(type) {
	case nil:
		tr = http.DefaultTransport.(*http.Transport).Clone()
	case *http.Transport:
		if t.MaxIdleConnsPerHost >= idle {
			return c
		}
		tr = t.Clone()
	default:
		return c
	}
	tr.MaxIdleConnsPerHost = idle
	// MaxIdleConns bounds the pool over all servers; 0 is no bound.
	if tr.MaxIdleConns != 0 {
		tr.MaxIdleConns = max(tr.MaxIdleConns, 4*idle)
	}
	out := *c
	out.Transport = tr
	return &out
}
