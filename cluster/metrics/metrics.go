// Package metrics holds the process-wide Prometheus collectors that the
// cluster, scheduler and api packages update as things happen (latencies,
// counters). It sits inside cluster so that every package from cluster up
// may import it. Gauges read from the state at scrape time live with the
// /v1/metrics route in package api.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Namespace prefixes every Stratus metric.
const Namespace = "stratus"

// Registry holds the collectors of this package plus the Go runtime and
// process collectors. It is process-wide: several servers in one process
// (tests) share these counters.
var Registry = prometheus.NewRegistry()

// batchBuckets counts entries from 1 to 256 (raft's MaxAppendEntries is 128).
var batchBuckets = prometheus.ExponentialBuckets(1, 2, 9)

// latencyBuckets spans 0.5 ms to about 16 s.
var latencyBuckets = prometheus.ExponentialBuckets(0.0005, 2, 16)

var (
	// CommitLatency is the time from a raft Apply on the leader to the
	// entry being committed and applied there (the future resolves after
	// the leader's FSM applied it).
	CommitLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: "raft", Name: "commit_duration_seconds",
		Help:    "Time from a raft Apply on the leader until the entry is committed and applied there.",
		Buckets: latencyBuckets,
	})
	// FSMApply is how long the state machine takes to apply one entry.
	FSMApply = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: "fsm", Name: "apply_duration_seconds",
		Help:    "Time the state machine takes to apply one committed log entry.",
		Buckets: prometheus.ExponentialBuckets(0.00001, 2, 16),
	})
	// FSMBatch is how many committed entries the state machine applies at
	// once (one memdb transaction, fsm.FSM.ApplyBatch).
	FSMBatch = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: "fsm", Name: "apply_batch_entries",
		Help:    "Committed log entries the state machine applied in one batch.",
		Buckets: batchBuckets,
	})
	// LogStoreBatch is how many entries each write of raft's log on disk
	// holds (one bbolt transaction and fsync): on the leader what its loop
	// gathered, on a follower what one AppendEntries carried.
	LogStoreBatch = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: "raft", Name: "log_store_batch_entries",
		Help:    "Log entries written to raft.db in one transaction (one fsync).",
		Buckets: batchBuckets,
	})
	// Forwarded counts calls from this server to the leader's internal
	// endpoints (forwarded writes, read-index), by endpoint and outcome.
	Forwarded = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Subsystem: "cluster", Name: "forwarded_requests_total",
		Help: "Requests forwarded to the leader (endpoint apply or read_index) by outcome.",
	}, []string{"endpoint", "outcome"})
	// EarlyElections counts elections this server stood for at once because
	// its silent leader's raft port refused connections (cluster/leader_crash.go).
	EarlyElections = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: Namespace, Subsystem: "cluster", Name: "early_elections_total",
		Help: "Elections this server stood for without waiting for raft's heartbeat timer, its leader's process being gone.",
	})
	// APIRequests is the latency of API commands by command and status
	// class; its _count is the number of requests.
	APIRequests = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: "api", Name: "request_duration_seconds",
		Help:    "API requests on /client/api by command and HTTP status class (2xx, 4xx, 5xx).",
		Buckets: latencyBuckets,
	}, []string{"command", "code"})
	// HostsFenced counts hosts the HA controller committed Down + Fenced.
	HostsFenced = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: Namespace, Subsystem: "ha", Name: "hosts_fenced_total",
		Help: "Hosts this server (as leader) committed Down and Fenced.",
	})
	// HostsAlert counts hosts the HA controller could not fence.
	HostsAlert = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: Namespace, Subsystem: "ha", Name: "hosts_alert_total",
		Help: "Hosts this server (as leader) committed Alert because they could not be fenced.",
	})
	// HARestarts counts HA VM restarts committed (start jobs scheduled).
	HARestarts = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: Namespace, Subsystem: "ha", Name: "vm_restarts_total",
		Help: "HA virtual machines of fenced hosts this server (as leader) scheduled to start elsewhere.",
	})
)

func init() {
	Registry.MustRegister(CommitLatency, FSMApply, FSMBatch, LogStoreBatch, Forwarded, EarlyElections, APIRequests, HostsFenced, HostsAlert, HARestarts,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// StatusClass turns an HTTP status into its class label: 2xx, 4xx, ...
func StatusClass(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	return string(rune('0'+code/100)) + "xx"
}
