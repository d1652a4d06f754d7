package scheduler

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stratus-cloud/stratus/fsm"
)

// TestPurgerRemovesExpiredJobsAndEvents commits finished jobs and events
// on both sides of the retention cutoffs, more than one batch of them, and
// a pending job older than any cutoff; one sweep removes exactly the
// expired ones, a second (as by a new leader) removes nothing more.
func TestPurgerRemovesExpiredJobsAndEvents(t *testing.T) {
	m := newMemCluster()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	boot := &fsm.BootstrapRequest{
		Meta:    fsm.Meta{ClusterID: uuid.NewString(), Created: now, AdminUserID: "u-admin"},
		Domain:  fsm.Domain{ID: "d-root", Name: "ROOT", Path: "ROOT", Created: now},
		Account: fsm.Account{ID: "a-admin", Name: "admin", DomainID: "d-root", Type: fsm.AccountTypeAdmin, RoleType: "Admin", State: fsm.StateEnabled, Created: now},
		User:    fsm.User{ID: "u-admin", AccountID: "a-admin", DomainID: "d-root", Username: "admin", State: fsm.StateEnabled, Created: now},
	}
	if _, err := m.Apply(context.Background(), fsm.BootstrapRequestType, boot); err != nil {
		t.Fatal(err)
	}
	job := func(id string, status int, created, completed time.Time) fsm.TxnOp {
		return fsm.Create(fsm.TableJobs, &fsm.AsyncJob{ID: id, Cmd: "deployVirtualMachine", AccountID: "a-admin", DomainID: "d-root",
			UserID: "u-admin", Status: status, Created: created, Completed: completed})
	}
	event := func(id string, created time.Time) fsm.TxnOp {
		return fsm.Create(fsm.TableEvents, &fsm.Event{ID: id, Type: "VM.CREATE", Level: fsm.EventInfo, State: "Completed",
			AccountID: "a-admin", DomainID: "d-root", Created: created})
	}
	// Defaults: jobs 1440 minutes after they ended, events 15 days.
	oldJobs, oldEvents := purgeBatch+7, 2*purgeBatch+3
	var ops []fsm.TxnOp
	for i := range oldJobs {
		at := now.Add(-25 * time.Hour)
		ops = append(ops, job(fmt.Sprintf("j-old-%d", i), fsm.JobSucceeded, at, at.Add(time.Second)))
	}
	ops = append(ops,
		job("j-pending", fsm.JobPending, now.Add(-72*time.Hour), time.Time{}),
		job("j-failed-old", fsm.JobFailed, now.Add(-30*time.Hour), now.Add(-30*time.Hour)),
		// Started long ago but ended recently: kept.
		job("j-ended-recently", fsm.JobSucceeded, now.Add(-48*time.Hour), now.Add(-time.Hour)),
	)
	for i := range oldEvents {
		ops = append(ops, event(fmt.Sprintf("e-old-%d", i), now.AddDate(0, 0, -16)))
	}
	ops = append(ops, event("e-recent", now.AddDate(0, 0, -14)))
	if _, err := m.Apply(context.Background(), fsm.TxnRequestType, fsm.TxnRequest{Ops: ops}); err != nil {
		t.Fatal(err)
	}

	p := NewPurger(m, nil)
	p.now = func() time.Time { return now }
	jobs, events := p.sweep(context.Background())
	if jobs != oldJobs+1 || events != oldEvents {
		t.Fatalf("sweep removed %d jobs and %d events, want %d and %d", jobs, events, oldJobs+1, oldEvents)
	}
	ids := func(table string) map[string]bool {
		out := map[string]bool{}
		rows, _ := fsm.Rows[fsm.AsyncJob](m.State(), nil, table, "id")
		for j := range rows {
			out[j.ID] = true
		}
		return out
	}
	left := ids(fsm.TableJobs)
	if len(left) != 2 || !left["j-pending"] || !left["j-ended-recently"] {
		t.Fatalf("jobs left %v, want j-pending and j-ended-recently", left)
	}
	if n, _ := m.State().Count(fsm.TableEvents, "id"); n != 1 {
		t.Fatalf("%d events left, want only e-recent", n)
	}
	if ev, _ := fsm.Get[fsm.Event](m.State(), nil, fsm.TableEvents, "e-recent"); ev == nil {
		t.Fatalf("the recent event was removed")
	}
	if jobs, events := p.sweep(context.Background()); jobs != 0 || events != 0 {
		t.Fatalf("second sweep removed %d jobs and %d events, want none", jobs, events)
	}

	// 0 keeps everything for ever.
	if _, err := m.Apply(context.Background(), fsm.ConfigSetRequestType,
		fsm.ConfigSetRequest{Setting: fsm.Setting{Name: fsm.SettingEventPurgeDelay, Value: "0", Updated: now}}); err != nil {
		t.Fatal(err)
	}
	p.now = func() time.Time { return now.AddDate(1, 0, 0) }
	if _, events := p.sweep(context.Background()); events != 0 {
		t.Fatalf("with %s=0 the sweep removed %d events", fsm.SettingEventPurgeDelay, events)
	}
}
