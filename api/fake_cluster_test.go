package api

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stratus-cloud/stratus/cluster"
	"github.com/stratus-cloud/stratus/fsm"
)

// fakeCluster applies commands straight to an FSM: a fast stand-in for
// cluster.Node in handler tests. The real node is exercised by the cluster
// package's tests and the e2e suite.
type fakeCluster struct {
	mu    sync.Mutex
	f     *fsm.FSM
	index uint64
	// reads counts consistent reads, so tests can tell stale from consistent.
	reads int
}

func (c *fakeCluster) ID() string { return "fake" }

func (c *fakeCluster) Apply(_ context.Context, t fsm.MessageType, body any) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.index++
	return c.index, c.f.ApplyCommand(c.index, t, body)
}

func (c *fakeCluster) ConsistentRead(context.Context) error {
	c.mu.Lock()
	c.reads++
	c.mu.Unlock()
	return nil
}
func (c *fakeCluster) State() *fsm.Store                    { return c.f.State() }
func (c *fakeCluster) Status() cluster.Status               { return cluster.Status{ID: "fake", Role: "leader"} }
func (c *fakeCluster) Ready(context.Context) (bool, string) { return true, "ready" }
func (c *fakeCluster) InternalHandler() http.Handler        { return http.NotFoundHandler() }

const (
	adminKey    = "admin-api-key"
	adminSecret = "admin-secret-key"
)

var fixedNow = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// newTestServer returns a server over a seeded fake cluster: the admin, and
// nothing else.
func newTestServer(t testing.TB) (*Server, *fakeCluster) {
	t.Helper()
	c := &fakeCluster{f: fsm.New(nil)}
	seed := fsm.BootstrapRequest{
		Meta:    fsm.Meta{ClusterID: "c1", Created: fixedNow, AdminUserID: "11111111-1111-4111-8111-111111111111"},
		Domain:  fsm.Domain{ID: "22222222-2222-4222-8222-222222222222", Name: "ROOT", Path: "ROOT", Created: fixedNow},
		Account: fsm.Account{ID: "33333333-3333-4333-8333-333333333333", Name: "admin", DomainID: "22222222-2222-4222-8222-222222222222", Type: fsm.AccountTypeAdmin, RoleType: "Admin", State: fsm.StateEnabled, Created: fixedNow},
		User:    fsm.User{ID: "11111111-1111-4111-8111-111111111111", AccountID: "33333333-3333-4333-8333-333333333333", DomainID: "22222222-2222-4222-8222-222222222222", Username: "admin", State: fsm.StateEnabled, APIKey: adminKey, SecretKey: adminSecret, Created: fixedNow},
	}
	if _, err := c.Apply(context.Background(), fsm.BootstrapRequestType, seed); err != nil {
		t.Fatal(err)
	}
	// The built-in roles, as the seed hook commits them on a real leader.
	var roles []fsm.TxnOp
	for _, role := range fsm.BuiltinRoles() {
		roles = append(roles, fsm.Create(fsm.TableRoles, &role))
	}
	if _, err := c.Apply(context.Background(), fsm.TxnRequestType, fsm.TxnRequest{Ops: roles}); err != nil {
		t.Fatal(err)
	}
	s := New(Config{Cluster: c, Version: "test", Now: func() time.Time { return fixedNow }})
	return s, c
}
