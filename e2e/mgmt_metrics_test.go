package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// mgmtMetrics is the part of listManagementServersMetrics this test reads.
type mgmtMetrics struct {
	Count  int `json:"count"`
	Server []struct {
		Name           string   `json:"name"`
		State          string   `json:"state"`
		RaftRole       string   `json:"raftrole"`
		AppliedIndex   *uint64  `json:"appliedindex"`
		IndexSource    string   `json:"indexsource"`
		StatusError    string   `json:"statuserror"`
		AnsweredBy     string   `json:"answeredby"`
		ClusterLeader  string   `json:"clusterleader"`
		ClusterTerm    uint64   `json:"clusterterm"`
		UpgradeSafe    bool     `json:"upgradesafe"`
		UpgradeNext    string   `json:"upgradenext"`
		UpgradeOrder   []string `json:"upgradeorder"`
		UpgradeReasons []string `json:"upgradereasons"`
	} `json:"managementserver"`
}

// TestManagementServersMetricsAgreeWithUpgradeCheck: on a real three-server
// cluster, listManagementServersMetrics (what the console's cluster page
// shows) names the leader and term the servers report, reads every
// server's own applied index, and gives the verdict of `stratus operator
// upgrade-check`, before and after a follower is killed.
func TestManagementServersMetricsAgreeWithUpgradeCheck(t *testing.T) {
	bin := requireE2E(t)
	c := newCluster(t, bin, 3)
	c.startAll()
	client := &http.Client{Timeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	leader, _, err := c.findLeader(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var follower, asked *server
	for _, s := range c.servers {
		if s != leader {
			if follower == nil {
				follower = s
			} else {
				asked = s
			}
		}
	}

	// agree polls until the metrics and upgrade-check, both asked of the
	// same server, give the same verdict and cond holds for the metrics.
	agree := func(what string, cond func(mgmtMetrics) error) mgmtMetrics {
		t.Helper()
		var last string
		for {
			var m mgmtMetrics
			err := apiCall(client, asked, c.keys, "listManagementServersMetrics", nil, &m)
			if err == nil {
				err = cond(m)
			}
			if err == nil {
				out, errOut, runErr := operatorCLI(bin, asked.baseURL(), c.keys, "upgrade-check", "-json")
				var r upgradeReport
				if jerr := json.Unmarshal([]byte(out), &r); jerr != nil {
					err = fmt.Errorf("upgrade-check: %v %v: %s %s", runErr, jerr, out, errOut)
				} else if row := m.Server[0]; row.UpgradeSafe != r.Safe || row.UpgradeNext != r.Next ||
					!reflect.DeepEqual(row.UpgradeOrder, r.Order) || strings.Join(row.UpgradeReasons, "; ") != strings.Join(r.Reasons, "; ") {
					err = fmt.Errorf("metrics say safe=%v next=%s order=%v reasons=%q; upgrade-check safe=%v next=%s order=%v reasons=%q",
						row.UpgradeSafe, row.UpgradeNext, row.UpgradeOrder, row.UpgradeReasons, r.Safe, r.Next, r.Order, r.Reasons)
				}
			}
			if err == nil {
				return m
			}
			last = err.Error()
			select {
			case <-ctx.Done():
				t.Fatalf("%s: %s", what, last)
			case <-time.After(300 * time.Millisecond): // each round runs the operator CLI
			}
		}
	}

	m := agree("all up", func(m mgmtMetrics) error {
		if m.Count != 3 || len(m.Server) != 3 {
			return fmt.Errorf("%d servers listed, want 3", m.Count)
		}
		for _, s := range m.Server {
			if s.State != "Up" || s.AppliedIndex == nil || s.ClusterLeader != leader.id || s.AnsweredBy != asked.id || !s.UpgradeSafe {
				return fmt.Errorf("server %s: state %s applied %v leader %s answered by %s safe %v", s.Name, s.State, s.AppliedIndex, s.ClusterLeader, s.AnsweredBy, s.UpgradeSafe)
			}
			want := map[bool]string{true: "self", false: "status"}[s.Name == asked.id]
			if s.IndexSource != want {
				return fmt.Errorf("server %s: indexes from %q, want %q", s.Name, s.IndexSource, want)
			}
			if (s.Name == leader.id) != (s.RaftRole == "leader") {
				return fmt.Errorf("server %s has raft role %s; the leader is %s", s.Name, s.RaftRole, leader.id)
			}
		}
		return nil
	})
	st, err := c.status(leader)
	if err != nil {
		t.Fatal(err)
	}
	if m.Server[0].ClusterTerm != st.Term {
		t.Errorf("metrics say term %d, the leader's /v1/status %d", m.Server[0].ClusterTerm, st.Term)
	}

	follower.kill9()
	agree("a follower killed", func(m mgmtMetrics) error {
		for _, s := range m.Server {
			if s.Name != follower.id {
				continue
			}
			if s.State != "Down" || s.IndexSource != "none" || s.StatusError == "" || s.RaftRole != "unknown" {
				return fmt.Errorf("killed %s: state %s, indexes from %q, statuserror %q, role %s", s.Name, s.State, s.IndexSource, s.StatusError, s.RaftRole)
			}
			if s.UpgradeSafe || len(s.UpgradeReasons) == 0 {
				return fmt.Errorf("upgrade safe with %s dead: %v", s.Name, s.UpgradeReasons)
			}
			return nil
		}
		return fmt.Errorf("killed %s not listed", follower.id)
	})
}
