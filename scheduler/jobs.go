package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/stratus-cloud/stratus/cluster"
	"github.com/stratus-cloud/stratus/fsm"
)

// Cluster is what the job runner needs of the replicated core.
type Cluster interface {
	State() *fsm.Store
	Apply(ctx context.Context, t fsm.MessageType, body any) (uint64, error)
}

// Step is what a job handler decided for one step of a job.
//
// A handler looks at the job (its Step and Params) and the state, and returns
// the operations of the next step. The runner commits them together with the
// job's new Step in one transaction that also checks the job is unchanged
// since it was read, so a step is never committed twice, even if a deposed
// leader's runner is still finishing its last step.
type Step struct {
	Ops  []fsm.TxnOp // changes this step makes
	Next string      // the job's Step after this one
	// Params are merged into the job's parameters with the step, for what
	// later steps must remember (hosts already tried, a deadline).
	Params map[string]string
	// Done ends the job: with Result (already wrapped in its object name,
	// e.g. {"success":true}) on success, with Err on failure.
	Done   bool
	Result any
	Err    *JobError
	// Wait, when set, means nothing can happen yet: the runner waits until
	// the channel closes (typically a state watch) or WaitMax passes, and
	// asks again. Ops must be empty then.
	Wait    <-chan struct{}
	WaitMax time.Duration
}

// JobError is the failure result of a job, as CloudStack reports it.
type JobError struct {
	Code int    `json:"errorcode"`
	Text string `json:"errortext"`
}

// Fail returns a Step that ends the job with an error.
func Fail(code int, format string, args ...any) Step {
	return Step{Done: true, Err: &JobError{Code: code, Text: fmt.Sprintf(format, args...)}}
}

// Succeed returns a Step that commits ops and ends the job with result.
func Succeed(result any, ops ...fsm.TxnOp) Step {
	return Step{Done: true, Result: result, Ops: ops}
}

// Handler runs one step of a kind of job. A returned error is transient
// (the runner retries with backoff); business failures end the job with
// Fail.
type Handler func(ctx context.Context, st *fsm.Store, job *fsm.AsyncJob) (Step, error)

// Codes of job failures the runner itself reports.
const (
	codeInternal = 530
	// maxAttempts is how many transient failures in a row fail a job.
	maxAttempts = 8
)

// Runner executes async jobs while this node leads. It is started by the
// establish-leadership hook and stopped by the revoke hook; the next leader's
// runner picks up every unfinished job from its last committed step.
type Runner struct {
	*cluster.LeaderTask // Establish and Revoke are leadership hooks
	c                   Cluster
	logger              hclog.Logger
	handlers            map[string]Handler
	now                 func() time.Time

	mu      sync.Mutex
	wg      sync.WaitGroup // job workers
	running map[string]bool
}

// NewRunner returns a runner with no job kinds; add them with Handle.
func NewRunner(c Cluster, logger hclog.Logger) *Runner {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	r := &Runner{c: c, logger: logger.Named("jobs"), handlers: map[string]Handler{}, now: time.Now, running: map[string]bool{}}
	r.LeaderTask = cluster.NewLeaderTask(r.lead)
	return r
}

// Handle registers the handler of jobs whose Cmd is cmd. Register every
// kind before the runner starts.
func (r *Runner) Handle(cmd string, h Handler) { r.handlers[cmd] = h }

// lead watches for jobs while this node leads, then waits for the workers
// it started, so a revoked runner has stopped for good when Revoke returns.
func (r *Runner) lead(ctx context.Context) {
	r.watch(ctx)
	r.wg.Wait()
}

// relistEvery is the shortest time between two listings of the pending
// jobs. Every change of the jobs table (each step of each job) wakes the
// watch, and a listing costs O(pending jobs); under load changes come far
// more often than this, so they are taken together, and a new job waits
// at most this long for its worker.
const relistEvery = 10 * time.Millisecond

// watch starts a worker for every pending job, now and whenever the jobs
// table changes.
func (r *Runner) watch(ctx context.Context) {
	var listed time.Time
	for {
		if wait := relistEvery - time.Since(listed); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		listed = time.Now()
		st := r.c.State()
		changed, err := st.Watch(fsm.TableJobs)
		if err != nil {
			r.logger.Error("cannot watch jobs", "error", err)
			return
		}
		pending, err := fsm.List[fsm.AsyncJob](st, nil, fsm.TableJobs, "status", fsm.JobPending)
		if err != nil {
			r.logger.Error("cannot list pending jobs", "error", err)
			return
		}
		for _, j := range pending {
			r.start(ctx, j.ID)
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-st.Abandoned(): // a restore swapped the store
		case <-time.After(5 * time.Second):
		}
	}
}

func (r *Runner) start(ctx context.Context, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running[id] || ctx.Err() != nil {
		return
	}
	r.running[id] = true
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer func() {
			r.mu.Lock()
			delete(r.running, id)
			r.mu.Unlock()
		}()
		r.run(ctx, id)
	}()
}

// run drives one job to its end or until leadership is lost.
func (r *Runner) run(ctx context.Context, id string) {
	backoff := 100 * time.Millisecond
	failures := 0
	for ctx.Err() == nil {
		job, err := fsm.Get[fsm.AsyncJob](r.c.State(), nil, fsm.TableJobs, id)
		if err != nil || job == nil || job.Status != fsm.JobPending {
			return
		}
		step, err := r.step(ctx, job)
		if err == nil && step.Wait != nil && !step.Done && len(step.Ops) == 0 {
			wait := step.WaitMax
			if wait <= 0 {
				wait = 30 * time.Second
			}
			select {
			case <-ctx.Done():
			case <-step.Wait:
			case <-time.After(wait):
			}
			continue
		}
		if err == nil {
			err = r.commit(ctx, job, step)
		}
		if err == nil {
			failures, backoff = 0, 100*time.Millisecond
			continue
		}
		var se *fsm.StateError
		if errors.As(err, &se) && errors.Is(se, fsm.ErrStale) {
			// The job or a row the step checked changed: read again, after
			// a pause so a handler that keeps losing cannot spin.
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		if ctx.Err() != nil {
			return
		}
		failures++
		r.logger.Warn("job step failed; retrying", "job", id, "cmd", job.Cmd, "instance_id", job.InstanceID, "step", job.Step,
			"attempt", failures, "error", err)
		if failures >= maxAttempts {
			_ = r.commit(ctx, job, Fail(codeInternal, "%s failed after %d attempts: %v", job.Cmd, failures, err))
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// step calls the job's handler, turning a panic into a transient error.
func (r *Runner) step(ctx context.Context, job *fsm.AsyncJob) (s Step, err error) {
	h, ok := r.handlers[job.Cmd]
	if !ok {
		return Fail(codeInternal, "this server does not know how to run %s jobs; upgrade every server to the same version", job.Cmd), nil
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler of %s panicked: %v", job.Cmd, p)
		}
	}()
	return h(ctx, r.c.State(), job)
}

// commit writes a step: its operations and the job's new state, in one
// transaction that holds only if the job is unchanged since it was read.
func (r *Runner) commit(ctx context.Context, job *fsm.AsyncJob, s Step) error {
	next := stepJob(job, s, r.now())
	_, err := r.c.Apply(ctx, fsm.TxnRequestType, fsm.TxnRequest{Ops: stepOps(next, s)})
	if err != nil {
		var se *fsm.StateError
		if s.Done && s.Err == nil && errors.As(err, &se) && !errors.Is(se, fsm.ErrStale) {
			// The step's own changes were refused (say, a name now taken):
			// that is the job's failure, not a transient one.
			return r.commit(ctx, job, Fail(431, "%s", se.Msg))
		}
		return fmt.Errorf("commit step %q of job %s: %w", s.Next, job.ID, err)
	}
	if s.Done {
		r.logger.Info("job finished", "job", job.ID, "cmd", job.Cmd, "status", next.Status,
			"instance_type", job.InstanceType, "instance_id", job.InstanceID)
	}
	return nil
}

// stepOps are the operations that commit step s, next being the job as
// the step leaves it (stepJob). The job's own update goes first: a job
// changed meanwhile (finished by an agent's report, or by the runner when
// the report lost) is refused as stale before any of the step's
// operations is judged.
func stepOps(next *fsm.AsyncJob, s Step) []fsm.TxnOp {
	return append([]fsm.TxnOp{fsm.Update(fsm.TableJobs, next)}, s.Ops...)
}

// stepJob is the job as committing step s at now leaves it.
func stepJob(job *fsm.AsyncJob, s Step, now time.Time) *fsm.AsyncJob {
	next := job.Copy()
	next.Step = s.Next
	if len(s.Params) > 0 && next.Params == nil {
		next.Params = map[string]string{}
	}
	for k, v := range s.Params {
		next.Params[k] = v
	}
	next.Attempts++
	if s.Done {
		next.Completed = now.UTC()
		next.ProcStatus = 0
		switch {
		case s.Err != nil:
			next.Status, next.ResultCode, next.ResultType = fsm.JobFailed, s.Err.Code, "object"
			next.Result = mustJSON(s.Err)
		default:
			result := s.Result
			if result == nil {
				result = map[string]any{"success": true}
			}
			next.Status, next.ResultCode, next.ResultType = fsm.JobSucceeded, 0, "object"
			next.Result = mustJSON(result)
		}
	}
	return next
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(JobError{Code: codeInternal, Text: fmt.Sprintf("result does not encode: %v", err)})
	}
	return b
}
