package fsm

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// Tables of the records every command writes: events, async jobs, tags.
const (
	TableEvents = "events"
	TableJobs   = "jobs"
	TableTags   = "tags"
)

// Snapshot record types of registered tables. Append only; each area of the
// state owns a range: identity 10-19, infrastructure 20-39, catalog 40-59,
// records 60-69, compute 70-89.
const (
	EventSnapshot SnapshotType = 60
	JobSnapshot   SnapshotType = 61
	TagSnapshot   SnapshotType = 62
)

// Event levels.
const (
	EventInfo  = "INFO"
	EventError = "ERROR"
)

// Event records who did what to which resource, for listEvents. Events are
// written in the same transaction as the change they describe.
type Event struct {
	ID           string    `json:"id"`
	Type         string    `json:"type"` // CloudStack event type, e.g. ZONE.CREATE
	Level        string    `json:"level"`
	State        string    `json:"state"` // Completed, Started, Scheduled
	Description  string    `json:"description"`
	AccountID    string    `json:"account_id"`
	DomainID     string    `json:"domain_id"`
	UserID       string    `json:"user_id,omitempty"`
	ResourceType string    `json:"resource_type,omitempty"`
	ResourceID   string    `json:"resource_id,omitempty"`
	JobID        string    `json:"job_id,omitempty"`
	Created      time.Time `json:"created"`
	Indexes
}

// GetID returns the event's UUID.
func (e *Event) GetID() string { return e.ID }

// Async job statuses as the API numbers them.
const (
	JobPending   = 0
	JobSucceeded = 1
	JobFailed    = 2
)

// AsyncJob is one asynchronous API command. The API commits it pending; the
// leader's job runner executes it in steps, committing each step's outcome,
// and finally commits the result. A new leader resumes unfinished jobs from
// Step.
type AsyncJob struct {
	ID        string            `json:"id"`
	Cmd       string            `json:"cmd"` // API command name, e.g. createTags
	AccountID string            `json:"account_id"`
	DomainID  string            `json:"domain_id"`
	UserID    string            `json:"user_id"`
	Params    map[string]string `json:"params,omitempty"` // what the runner needs, already validated
	// Status is JobPending, JobSucceeded or JobFailed.
	Status     int    `json:"status"`
	ProcStatus int    `json:"proc_status"`
	ResultCode int    `json:"result_code"`
	ResultType string `json:"result_type,omitempty"` // object or text; empty while pending
	// Result is the API result object, already wrapped in its object name
	// ({"success":true}, {"tag":{...}}), or {"errorcode":..,"errortext":..}.
	Result       json.RawMessage `json:"result,omitempty"`
	InstanceType string          `json:"instance_type,omitempty"`
	InstanceID   string          `json:"instance_id,omitempty"`
	Step         string          `json:"step,omitempty"` // last committed step of the runner
	Attempts     int             `json:"attempts,omitempty"`
	Created      time.Time       `json:"created"`
	Completed    time.Time       `json:"completed,omitempty"`
	Indexes
}

// GetID returns the job's UUID.
func (j *AsyncJob) GetID() string { return j.ID }

// Copy returns a copy safe to change and propose.
func (j *AsyncJob) Copy() *AsyncJob {
	c := *j
	if j.Params != nil {
		c.Params = make(map[string]string, len(j.Params))
		for k, v := range j.Params {
			c.Params[k] = v
		}
	}
	c.Result = append(json.RawMessage(nil), j.Result...)
	return &c
}

// Tag is a key/value label on a resource.
type Tag struct {
	ID           string    `json:"id"`
	Key          string    `json:"key"`
	Value        string    `json:"value"`
	ResourceType string    `json:"resource_type"`
	ResourceID   string    `json:"resource_id"`
	AccountID    string    `json:"account_id"`
	DomainID     string    `json:"domain_id"`
	Customer     string    `json:"customer,omitempty"`
	Created      time.Time `json:"created"`
	Indexes
}

// GetID returns the tag's UUID.
func (t *Tag) GetID() string { return t.ID }

func init() {
	RegisterTable(TableDef{
		Name: TableEvents, Noun: "event", Snapshot: EventSnapshot, New: func() Object { return new(Event) },
		Indexes: map[string]*memdb.IndexSchema{
			"create":  createOrder(),
			"account": createdBy("AccountID", false, false), // oldest first, as "create"
		},
	})
	RegisterTable(TableDef{
		Name: TableJobs, Noun: "async job", Snapshot: JobSnapshot, New: func() Object { return new(AsyncJob) },
		Indexes: map[string]*memdb.IndexSchema{
			"create":  createOrder(),
			"account": createdBy("AccountID", false, false), // oldest first, as "create"
			// Pending jobs only: what the runner resumes and what the checks
			// for a job in flight look for. A finished job, kept for
			// queryAsyncJobResult (job.expire.minutes), is in neither.
			"status": {AllowMissing: true, Indexer: pendingJobIndex{}},
			// The pending jobs of a resource (a VM's start, which its host's
			// report may finish: see scheduler.StartedOnReport).
			"pending_instance": {AllowMissing: true, Indexer: pendingJobIndex{byInstance: true}},
		},
	})
	RegisterTable(TableDef{
		Name: TableTags, Noun: "tag", Snapshot: TagSnapshot, New: func() Object { return new(Tag) },
		Indexes: map[string]*memdb.IndexSchema{
			"create":   createOrder(),
			"resource": {Indexer: &memdb.StringFieldIndex{Field: "ResourceID"}},
			"key": {Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
				&memdb.StringFieldIndex{Field: "ResourceID"}, caseless("Key")}}},
			"account": {Indexer: &memdb.StringFieldIndex{Field: "AccountID"}},
		},
		Unique: []UniqueKey{{Index: "key", What: "key on this resource", Args: func(o Object) []any {
			t := o.(*Tag)
			return []any{t.ResourceID, t.Key}
		}}},
		Label: func(o Object) string { return o.(*Tag).Key },
	})
}

// Owner returns the account and domain that own the tag.
func (t *Tag) Owner() (string, string) { return t.AccountID, t.DomainID }

// taggable maps CloudStack resource types (createTags resourcetype) to the
// table that holds them. Lookups ignore case, as CloudStack does.
var taggable = map[string]struct{ name, table string }{}

// RegisterTaggable lets createTags label rows of table as resourceType.
func RegisterTaggable(resourceType, table string) {
	taggable[strings.ToLower(resourceType)] = struct{ name, table string }{resourceType, table}
}

// TaggableTable returns the canonical resource type name and its table.
func TaggableTable(resourceType string) (name, table string, ok bool) {
	t, ok := taggable[strings.ToLower(resourceType)]
	return t.name, t.table, ok
}

// TaggableTypes lists the resource types createTags accepts, sorted.
func TaggableTypes() []string {
	out := make([]string, 0, len(taggable))
	for _, t := range taggable {
		out = append(out, t.name)
	}
	sort.Strings(out)
	return out
}

func init() {
	RegisterTaggable("Zone", tableZones)
	RegisterTaggable("Domain", tableDomains)
	RegisterTaggable("Account", tableAccounts)
	RegisterTaggable("User", tableUsers)
}

// pendingJobIndex indexes pending jobs: by status (a lookup takes
// JobPending, the only status it holds; another is refused, not answered
// empty) or, with byInstance, by the resource they work on. Each index of
// every finished job cost it about 500 bytes while nothing looked it up.
type pendingJobIndex struct{ byInstance bool }

// pendingKey is the key of every job of the status index.
var pendingKey = []byte{'p'}

func (x pendingJobIndex) FromObject(obj any) (bool, []byte, error) {
	j, ok := obj.(*AsyncJob)
	if !ok {
		return false, nil, fmt.Errorf("%T is not an async job", obj)
	}
	switch {
	case j.Status != JobPending:
		return false, nil, nil
	case !x.byInstance:
		return true, slices.Clone(pendingKey), nil
	case j.InstanceID == "":
		return false, nil, nil
	}
	return true, append([]byte(j.InstanceID), 0), nil
}

func (x pendingJobIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("pending job index takes one argument, got %d", len(args))
	}
	if !x.byInstance {
		if s, ok := args[0].(int); !ok || s != JobPending {
			return nil, fmt.Errorf("the job status index holds pending jobs only: asked for %#v", args[0])
		}
		return slices.Clone(pendingKey), nil
	}
	id, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("pending job index: argument must be a string: %#v", args[0])
	}
	return append([]byte(id), 0), nil
}
