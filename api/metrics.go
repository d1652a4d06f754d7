package api

import (
	"net/http"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stratus-cloud/stratus/cluster/metrics"
	"github.com/stratus-cloud/stratus/fsm"
)

// PathMetrics serves Prometheus metrics. Like /v1/status it needs no
// credentials (Prometheus scrapes without signing); it names no secrets,
// only counts, states and latencies. Keep it off untrusted networks like the
// other /v1 status routes if even those should not be seen.
const PathMetrics = "/v1/metrics"

var (
	descRaftState    = prometheus.NewDesc("stratus_raft_state", "1 for this server's current raft role, 0 for the others.", []string{"state"}, nil)
	descRaftTerm     = prometheus.NewDesc("stratus_raft_term", "Current raft term.", nil, nil)
	descCommitIndex  = prometheus.NewDesc("stratus_raft_commit_index", "Highest log index known committed on this server.", nil, nil)
	descLastIndex    = prometheus.NewDesc("stratus_raft_last_index", "Last log index stored on this server.", nil, nil)
	descAppliedIndex = prometheus.NewDesc("stratus_fsm_applied_index", "Highest log index this server's state machine has applied.", nil, nil)
	descHasLeader    = prometheus.NewDesc("stratus_raft_has_leader", "1 when this server knows a leader.", nil, nil)
	descPeers        = prometheus.NewDesc("stratus_raft_peers", "Raft voters in this server's configuration.", nil, nil)
	descJobs         = prometheus.NewDesc("stratus_jobs", "Async jobs in the state, by command and state (pending, succeeded, failed).", []string{"cmd", "state"}, nil)
	descHosts        = prometheus.NewDesc("stratus_hosts", "Hosts by state (Up, Down, Disconnected, Alert, ...).", []string{"state"}, nil)
	descVMs          = prometheus.NewDesc("stratus_vms", "Virtual machines by state (Running, Stopped, Starting, ...).", []string{"state"}, nil)
)

var raftRoles = []string{"leader", "follower", "candidate", "shutdown"}

// stateCollector reads one server's raft status and state store at scrape
// time.
type stateCollector struct{ s *Server }

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRaftState, descRaftTerm, descCommitIndex, descLastIndex, descAppliedIndex, descHasLeader, descPeers, descJobs, descHosts, descVMs} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.c.Status()
	for _, role := range raftRoles {
		v := 0.0
		if st.Role == role {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descRaftState, prometheus.GaugeValue, v, role)
	}
	hasLeader := 0.0
	if st.LeaderID != "" {
		hasLeader = 1
	}
	voters := 0
	for _, p := range st.Peers {
		if p.Voter {
			voters++
		}
	}
	ch <- prometheus.MustNewConstMetric(descRaftTerm, prometheus.GaugeValue, float64(st.Term))
	ch <- prometheus.MustNewConstMetric(descCommitIndex, prometheus.GaugeValue, float64(st.CommitIndex))
	ch <- prometheus.MustNewConstMetric(descLastIndex, prometheus.GaugeValue, float64(st.LastIndex))
	ch <- prometheus.MustNewConstMetric(descAppliedIndex, prometheus.GaugeValue, float64(st.AppliedIndex))
	ch <- prometheus.MustNewConstMetric(descHasLeader, prometheus.GaugeValue, hasLeader)
	ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, float64(voters))

	store := c.s.c.State()
	type jobKey struct{ cmd, state string }
	jobs := map[jobKey]int{}
	if all, err := fsm.List[fsm.AsyncJob](store, nil, fsm.TableJobs, "id"); err == nil {
		for _, j := range all {
			jobs[jobKey{j.Cmd, jobStateName(j.Status)}]++
		}
	}
	for k, n := range jobs {
		ch <- prometheus.MustNewConstMetric(descJobs, prometheus.GaugeValue, float64(n), k.cmd, k.state)
	}
	hosts := map[string]int{}
	if all, err := fsm.List[fsm.Host](store, nil, fsm.TableHosts, "id"); err == nil {
		for _, h := range all {
			hosts[h.State]++
		}
	}
	for state, n := range hosts {
		ch <- prometheus.MustNewConstMetric(descHosts, prometheus.GaugeValue, float64(n), state)
	}
	vms := map[string]int{}
	if all, err := fsm.List[fsm.VM](store, nil, fsm.TableVMs, "id"); err == nil {
		for _, v := range all {
			vms[v.State]++
		}
	}
	for state, n := range vms {
		ch <- prometheus.MustNewConstMetric(descVMs, prometheus.GaugeValue, float64(n), state)
	}
}

func jobStateName(status int) string {
	switch status {
	case fsm.JobPending:
		return "pending"
	case fsm.JobSucceeded:
		return "succeeded"
	case fsm.JobFailed:
		return "failed"
	}
	return "unknown"
}

// metricsRoute mounts /v1/metrics: the process-wide collectors of package
// cluster/metrics plus this server's state gauges.
func (s *Server) metricsRoute(r *mux.Router) {
	local := prometheus.NewRegistry()
	local.MustRegister(stateCollector{s})
	h := promhttp.HandlerFor(prometheus.Gatherers{metrics.Registry, local}, promhttp.HandlerOpts{ErrorLog: nil})
	r.Handle(PathMetrics, h).Methods(http.MethodGet, http.MethodHead)
}

// observeAPI records one /client/api request. Names that are not commands
// of this server are counted as "unknown" so that callers cannot grow the
// label set.
func (s *Server) observeAPI(cmdName string, status int, seconds float64) {
	label := cmdName
	if _, ok := s.cmds[cmdName]; !ok && !isSessionCommand(cmdName) {
		label = "unknown"
	}
	metrics.APIRequests.WithLabelValues(label, metrics.StatusClass(status)).Observe(seconds)
}
