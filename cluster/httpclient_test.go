package cluster

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// newConns runs rounds of n concurrent requests through c against a real
// server and returns how many connections the server accepted.
func newConns(t *testing.T, c *http.Client, rounds, n int) int64 {
	t.Helper()
	var accepted atomic.Int64
	release := make(chan struct{})
	var arrived sync.WaitGroup
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Done()
		<-release // every request of a round is in flight at once
		_, _ = io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			accepted.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	for range rounds {
		arrived.Add(n)
		var done sync.WaitGroup
		for range n {
			done.Go(func() {
				resp, err := c.Get(srv.URL)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			})
		}
		arrived.Wait()
		for range n { // one at a time: the round's connections go idle one by one
			release <- struct{}{}
		}
		done.Wait()
	}
	return accepted.Load()
}

func TestPooledClientReusesConnectionsOfConcurrentCalls(t *testing.T) {
	const rounds, n = 3, 48
	pooled := PooledClient(nil, InternalIdleConns, 10*time.Second)
	if got := newConns(t, pooled, rounds, n); got > n {
		t.Fatalf("pooled client: %d connections accepted over %d rounds of %d concurrent calls; want at most %d (one round's)", got, rounds, n, n)
	}
	// The same load through net/http's default pool of 2 idle connections
	// per host dials again in every round: the case PooledClient is for.
	plain := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), Timeout: 10 * time.Second}
	if got := newConns(t, plain, rounds, n); got <= n {
		t.Fatalf("default transport: %d connections over %d rounds; expected more than %d, so this test would not catch a lost pool", got, rounds, n)
	}
}

func TestPooledClientKeepsOtherClients(t *testing.T) {
	custom := &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, io.EOF })}
	if got := PooledClient(custom, 8, time.Second); got != custom {
		t.Fatal("a client with its own round tripper was replaced")
	}
	wide := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512}}
	if got := PooledClient(wide, 8, time.Second); got != wide {
		t.Fatal("a client that already keeps enough idle connections was replaced")
	}
	narrow := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4, MaxIdleConns: 10}}
	got := PooledClient(narrow, 64, time.Second)
	tr := got.Transport.(*http.Transport)
	if tr.MaxIdleConnsPerHost != 64 || tr.MaxIdleConns != 256 || got.Timeout != 3*time.Second {
		t.Fatalf("widened client: per host %d, in all %d, timeout %v; want 64, 256, 3s", tr.MaxIdleConnsPerHost, tr.MaxIdleConns, got.Timeout)
	}
	if narrow.Transport.(*http.Transport).MaxIdleConnsPerHost != 4 {
		t.Fatal("the caller's transport was changed in place")
	}
}

func TestConfigDefaultClientPoolsConnections(t *testing.T) {
	var c Config
	c.setDefaults()
	tr, ok := c.HTTPClient.Transport.(*http.Transport)
	if !ok || tr.MaxIdleConnsPerHost < InternalIdleConns {
		t.Fatalf("default internal client keeps %v idle connections per server; want %d", c.HTTPClient.Transport, InternalIdleConns)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
