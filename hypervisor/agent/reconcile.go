package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/stratus-cloud/stratus/hypervisor"
)

// reconciler makes the hypervisor match the desired state. One goroutine
// owns it: it reconciles every VM of the newest verified desired state in
// a pass, acts on domain events between passes and wakes itself up for
// guests that are shutting down and for retries after failures.
//
// Its rules: it reads the domain's state from the hypervisor before each
// action and starts a domain only when it is stopped or undefined, so it
// never starts one twice; it does nothing destructive on its own (no
// orphan removal) except in a pass over a fresh desired state, one just
// read from a server; and when a domain that should run stops by itself,
// it holds it down until the servers have seen the report.
type reconciler struct {
	a   *Agent
	log hclog.Logger

	cur      *Desired // the desired state being reconciled, nil before the first
	minIndex uint64   // answers at lower indexes come from lagging servers
	session  atomic.Bool
	vms      map[string]*vmState
	gens     map[string]int // reboot generation carried out per VM ID, kept on disk
	dirty    bool           // gens changed since written
	stopping map[string]time.Time
	wakeAt   time.Time
	poll     time.Duration
	events   <-chan hypervisor.DomainEvent
	syncReq  chan syncReq // recovery passes asked by the heartbeat loop
}

// syncReq asks the reconciler for a fresh pass over d; done is closed
// after it.
type syncReq struct {
	d      *Desired
	starts uint64 // > 0: the read after the renewal ending this loss; starts may follow
	done   chan struct{}
}

// vmState is what the agent remembers about one VM between passes.
type vmState struct {
	rebootDone int
	stopAsked  time.Time // when the guest was asked to shut down
	wasRunning bool      // last seen running, and the agent has not stopped it since
	volumes    []VolumeReport

	// held: the domain stopped on its own while it should run.
	held        bool
	holdReason  string
	holdRelease uint64 // desired index that reflects the report; 0 until acknowledged

	failures int
	failedOn string // fingerprint of the desired VM the last failure was for
	// migrateFailed: fingerprint of the desired VM whose outgoing
	// migration failed. The servers cancel a migration at its first
	// reported error, so it is never tried again for the same entry.
	migrateFailed string
	retryAt       time.Time
	lastErr       string
}

func newReconciler(a *Agent, gens map[string]int) *reconciler {
	poll := min(max(a.cfg.ShutdownGrace/10, 50*time.Millisecond), time.Second)
	return &reconciler{
		a: a, log: a.log.Named("reconcile"), vms: map[string]*vmState{}, gens: gens,
		stopping: map[string]time.Time{}, poll: poll, syncReq: make(chan syncReq),
	}
}

// newSession accepts the next desired state whatever its index (the host
// registered again; the servers may have been restored).
func (r *reconciler) newSession() { r.session.Store(true) }

// run reconciles until ctx ends.
func (r *reconciler) run(ctx context.Context, events <-chan hypervisor.DomainEvent) {
	r.events = events
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-r.a.desiredNote:
			if d := r.a.takeDesired(); d != nil && r.accept(d) {
				r.pass(ctx, true)
			}
		case ev := <-events:
			r.event(ctx, ev)
		case req := <-r.syncReq:
			// A full, consistent read: it is the current state whatever
			// the index of what came before.
			r.session.Store(false)
			r.minIndex, r.cur = req.d.Index, req.d
			if req.starts > 0 {
				// From now on r.cur is this state or a newer one.
				r.a.allowStarts(req.starts)
			}
			r.pass(ctx, true)
			close(req.done)
		case <-r.a.kick:
			r.pass(ctx, false)
		case <-timer.C:
			r.pass(ctx, false)
		}
		timer.Stop()
		if !r.wakeAt.IsZero() {
			timer.Reset(max(time.Until(r.wakeAt), time.Millisecond))
		}
	}
}

// syncPass has the reconciler run a fresh pass over d and waits for it.
func (r *reconciler) syncPass(ctx context.Context, d *Desired) error {
	return r.syncPassFor(ctx, d, 0)
}

// syncPassFor is syncPass over the full read after the renewal ending
// loss gen (0: none): the reconciler allows starts as it takes d.
func (r *reconciler) syncPassFor(ctx context.Context, d *Desired, gen uint64) error {
	req := syncReq{d: d, starts: gen, done: make(chan struct{})}
	select {
	case r.syncReq <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-req.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// accept takes d as the current desired state unless it is older than
// the one already acted on.
func (r *reconciler) accept(d *Desired) bool {
	if r.session.Swap(false) {
		r.minIndex = 0
	}
	if d.Index < r.minIndex {
		r.log.Debug("ignoring an older desired state", "index", d.Index, "have", r.minIndex)
		return false
	}
	r.minIndex = d.Index
	r.cur = d
	return true
}

// domainUUID is the libvirt UUID of a desired VM.
func domainUUID(vm *DesiredVM) string {
	if vm.Spec.UUID != "" {
		return vm.Spec.UUID
	}
	return vm.ID
}

// pass reconciles every VM of the current desired state and queues the
// reports. fresh allows removing orphan domains.
func (r *reconciler) pass(ctx context.Context, fresh bool) {
	d := r.cur
	r.wakeAt = time.Time{}
	if d == nil {
		return
	}
	r.drain()
	want := make(map[string]bool, 2*len(d.VMs))
	var reps []VMReport
	var vols []VolumeReport
	var mem int64
	for i := range d.VMs {
		if ctx.Err() != nil {
			return
		}
		vm := &d.VMs[i]
		want[domainUUID(vm)], want[vm.ID] = true, true
		st := r.state(vm)
		rep, wait := r.reconcileVM(ctx, d.Index, vm, st)
		if rep != nil {
			reps = append(reps, *rep)
			if rep.Power == hypervisor.PowerRunning {
				mem += vm.Spec.MemoryBytes
			}
		}
		vols = append(vols, st.volumes...)
		r.wakeIn(wait)
	}
	if fresh && ctx.Err() == nil {
		r.removeOrphans(ctx, want)
	}
	r.prune(d)
	r.saveGens()
	r.a.rep.offer(reps, vols)
	r.a.mu.Lock()
	r.a.memUsed = mem
	r.a.mu.Unlock()
}

// wakeIn makes the reconciler run a pass after d at the latest (0: no).
func (r *reconciler) wakeIn(d time.Duration) {
	if d <= 0 {
		return
	}
	at := time.Now().Add(d)
	if r.wakeAt.IsZero() || at.Before(r.wakeAt) {
		r.wakeAt = at
	}
}

// state returns the memory of vm, adopting its reboot generation as
// carried out when the agent has never seen it.
func (r *reconciler) state(vm *DesiredVM) *vmState {
	if st, ok := r.vms[vm.ID]; ok {
		return st
	}
	st := &vmState{}
	if g, ok := r.gens[vm.ID]; ok {
		st.rebootDone = g
	} else {
		st.rebootDone = vm.RebootGen
		r.gens[vm.ID] = vm.RebootGen
		r.dirty = true
	}
	r.vms[vm.ID] = st
	return st
}

// setGen records that reboot generation gen of vm was carried out.
func (r *reconciler) setGen(id string, st *vmState, gen int) {
	if st.rebootDone != gen {
		st.rebootDone = gen
		r.gens[id] = gen
		r.dirty = true
	}
}

// prune forgets VMs that are no longer in the desired state.
func (r *reconciler) prune(d *Desired) {
	in := make(map[string]bool, len(d.VMs))
	for i := range d.VMs {
		in[d.VMs[i].ID] = true
	}
	for id := range r.vms {
		if !in[id] {
			delete(r.vms, id)
			r.a.rep.clearAck(id)
		}
	}
	for id := range r.gens {
		if !in[id] {
			delete(r.gens, id)
			r.dirty = true
		}
	}
	now := r.a.now()
	for id, until := range r.stopping {
		if now.After(until) {
			delete(r.stopping, id)
		}
	}
}

// saveGens writes the reboot generations when they changed.
func (r *reconciler) saveGens() {
	if !r.dirty {
		return
	}
	if err := writeJSON(filepath.Join(r.a.cfg.DataDir, rebootFile), r.gens); err != nil {
		r.log.Error("cannot keep reboot generations", "error", err)
		return
	}
	r.dirty = false
}

// report is the VM report of vm with power p.
func report(vm *DesiredVM, st *vmState, p hypervisor.PowerState) *VMReport {
	return &VMReport{ID: vm.ID, Power: p, RebootGen: st.rebootDone}
}

// absent is the report of a VM with no domain on this host.
func absent(vm *DesiredVM, st *vmState) *VMReport {
	rep := report(vm, st, hypervisor.PowerStopped)
	rep.Absent = true
	return rep
}

// observe reads a domain's state; exists is false when it is not defined.
func (r *reconciler) observe(ctx context.Context, uuid string) (hypervisor.DomainStatus, bool, error) {
	s, err := r.a.driver.Domain(ctx, uuid)
	switch {
	case errors.Is(err, hypervisor.ErrNotFound):
		return hypervisor.DomainStatus{UUID: uuid, Power: hypervisor.PowerStopped}, false, nil
	case err != nil:
		return s, false, fmt.Errorf("read domain %s: %w", uuid, err)
	}
	return s, true, nil
}

// powerOf is the power to report after an action failed.
func (r *reconciler) powerOf(ctx context.Context, uuid string) hypervisor.PowerState {
	s, exists, err := r.observe(ctx, uuid)
	switch {
	case err != nil:
		return hypervisor.PowerUnknown
	case !exists:
		return hypervisor.PowerStopped
	}
	return s.Power
}

// mayTry reports whether a failed action may be tried again: at once when
// the servers changed what they want of the VM, else after its backoff.
// (A new desired index alone is not enough: every report moves it.)
func (st *vmState) mayTry(vm *DesiredVM, now time.Time) bool {
	return st.failures == 0 || fingerprint(vm) != st.failedOn || !now.Before(st.retryAt)
}

// fail records a failed action and returns when to retry it.
func (r *reconciler) fail(st *vmState, vm *DesiredVM, err error) time.Duration {
	wait := r.a.retryWait(st.failures)
	st.failures++
	st.failedOn = fingerprint(vm)
	st.retryAt = r.a.now().Add(wait)
	st.lastErr = err.Error()
	return wait
}

// fingerprint identifies what the servers want of a VM.
func fingerprint(vm *DesiredVM) string {
	b, err := json.Marshal(vm)
	if err != nil {
		return ""
	}
	return string(b)
}

// succeeded clears the failures of st.
func (st *vmState) succeeded() { st.failures, st.lastErr = 0, "" }

// failed is the report of an action that failed with st.lastErr.
func (r *reconciler) failed(ctx context.Context, vm *DesiredVM, st *vmState) *VMReport {
	rep := report(vm, st, r.powerOf(ctx, domainUUID(vm)))
	rep.Error = st.lastErr
	return rep
}

// retryLeft is how long until st may be tried again.
func (r *reconciler) retryLeft(st *vmState) time.Duration {
	return max(st.retryAt.Sub(r.a.now()), time.Millisecond)
}

// markStopping excuses the stop events of uuid for a while: the agent
// itself stops the domain.
func (r *reconciler) markStopping(uuid string) {
	r.stopping[uuid] = r.a.now().Add(r.a.cfg.ShutdownGrace + 10*time.Second)
}

// reconcileVM makes one VM match its desired state and returns its report
// (nil: nothing to report) and when to look again (0: at the next pass).
func (r *reconciler) reconcileVM(ctx context.Context, index uint64, vm *DesiredVM, st *vmState) (*VMReport, time.Duration) {
	if vm.Incoming && vm.Power != WantAbsent {
		// This host is the target of a migration: the source moves the
		// domain here; wait until the servers make the VM ours.
		return nil, 0
	}
	if vm.Power != WantRunning || vm.MigrateTo != "" {
		st.wasRunning = false // any stop from now on is the agent's
		if st.held {
			st.held = false
			r.a.rep.clearAck(vm.ID)
		}
	}
	if vm.Power != WantStopped || vm.MigrateTo != "" {
		st.stopAsked = time.Time{}
	}
	if vm.MigrateTo == "" {
		st.migrateFailed = "" // the failed migration is over for the servers too
	}
	uuid := domainUUID(vm)
	status, exists, err := r.observe(ctx, uuid)
	if err != nil {
		r.log.Warn("cannot read the domain's state", "vm_id", vm.ID, "error", err)
		return nil, r.a.retryWait(0)
	}
	switch {
	case vm.Power == WantAbsent:
		return r.ensureAbsent(ctx, vm, st, exists)
	case vm.MigrateTo != "":
		return r.migrateOut(ctx, vm, st, status, exists)
	case vm.Power == WantRunning:
		return r.ensureRunning(ctx, index, vm, st, status, exists)
	case vm.Power == WantStopped:
		return r.ensureStopped(ctx, vm, st, status, exists)
	}
	r.log.Warn("unknown desired power state", "vm_id", vm.ID, "power", vm.Power)
	return nil, 0
}

// ensureRunning starts a stopped or undefined domain, after making its
// volumes, and carries out reboots asked of a running one.
func (r *reconciler) ensureRunning(ctx context.Context, index uint64, vm *DesiredVM, st *vmState, status hypervisor.DomainStatus, exists bool) (*VMReport, time.Duration) {
	if exists {
		switch status.Power {
		case hypervisor.PowerRunning:
			if st.held {
				st.held = false
				r.a.rep.clearAck(vm.ID)
			}
			st.wasRunning = true
			return r.maybeReboot(ctx, vm, st)
		case hypervisor.PowerShutdown:
			return report(vm, st, status.Power), r.poll
		case hypervisor.PowerPaused, hypervisor.PowerUnknown:
			return report(vm, st, status.Power), 0
		}
	}
	if st.wasRunning && r.a.wasFenced(domainUUID(vm)) {
		st.wasRunning = false // the agent's own self-fence stopped it
	}
	if st.wasRunning {
		// It ran and stopped without the agent asking, whether or not
		// an event said so yet: the same as an event, with the reason
		// the hypervisor recorded, so the report does not depend on
		// which of the two the agent saw first.
		if reason := stopReason(status, exists); reason == ReasonCrashed || !r.excused(domainUUID(vm)) {
			r.hold(vm, reason)
		}
	}
	if st.held {
		if !r.released(index, vm, st) {
			rep := report(vm, st, hypervisor.PowerStopped)
			rep.Reason, rep.Absent = st.holdReason, !exists
			return rep, 0
		}
		st.held = false
		r.a.rep.clearAck(vm.ID)
	}
	now := r.a.now()
	if !st.mayTry(vm, now) {
		rep := report(vm, st, status.Power)
		rep.Error, rep.Absent = st.lastErr, !exists
		return rep, r.retryLeft(st)
	}
	held := func() (*VMReport, time.Duration) {
		// No lease (or its loss not recovered from): the leader may be
		// starting this VM elsewhere. A renewed lease kicks a pass;
		// nothing is reported meanwhile, as nothing was done.
		return nil, 0
	}
	if !r.a.mayStart() {
		return held()
	}
	paths, err := r.ensureVolumes(ctx, vm, st)
	if err == nil {
		r.a.startMu.RLock()
		if !r.a.mayStart() {
			r.a.startMu.RUnlock()
			return held()
		}
		err = r.a.driver.Start(ctx, withVolumePaths(vm.Spec, paths))
		r.a.startMu.RUnlock()
	}
	if err != nil {
		wait := r.fail(st, vm, err)
		r.log.Error("cannot start domain", "vm_id", vm.ID, "uuid", domainUUID(vm), "error", err)
		return r.failed(ctx, vm, st), wait
	}
	st.succeeded()
	st.wasRunning = true
	delete(r.stopping, domainUUID(vm))
	r.a.clearFenced(domainUUID(vm))
	// A fresh boot carries out every reboot asked so far.
	r.setGen(vm.ID, st, vm.RebootGen)
	r.log.Info("domain started", "vm_id", vm.ID, "uuid", domainUUID(vm))
	return report(vm, st, hypervisor.PowerRunning), 0
}

// stopReason is the Reason of a VM whose domain stopped by itself, from
// why the hypervisor says it stopped: the pass's counterpart of note's
// mapping of events. An undefined domain and any stop other than a crash
// or a guest shutdown were done outside. (As in note, the caller holds a
// crash even while the agent's own stop is excused.)
func stopReason(status hypervisor.DomainStatus, exists bool) string {
	if !exists {
		return ReasonStoppedOutside
	}
	switch status.StopReason {
	case hypervisor.StopCrashed:
		return ReasonCrashed
	case hypervisor.StopGuestShutdown:
		return ReasonGuestShutdown
	}
	return ReasonStoppedOutside
}

// released reports whether a held VM may start again: the servers have
// read its report and still want it to run.
func (r *reconciler) released(index uint64, vm *DesiredVM, st *vmState) bool {
	if st.holdRelease == 0 {
		ack, ok := r.a.rep.ack(vm.ID)
		if !ok {
			return false
		}
		if ack == 0 {
			ack = r.cur.Index + 1 // the servers gave no index: wait for a change
		}
		st.holdRelease = ack
	}
	return index >= st.holdRelease
}

// maybeReboot reboots a running domain when a newer reboot was asked.
func (r *reconciler) maybeReboot(ctx context.Context, vm *DesiredVM, st *vmState) (*VMReport, time.Duration) {
	rep := report(vm, st, hypervisor.PowerRunning)
	if vm.RebootGen <= st.rebootDone {
		return rep, 0
	}
	if !st.mayTry(vm, r.a.now()) {
		rep.Error = st.lastErr
		return rep, r.retryLeft(st)
	}
	if err := r.a.driver.Reboot(ctx, domainUUID(vm)); err != nil {
		wait := r.fail(st, vm, err)
		r.log.Error("cannot reboot domain", "vm_id", vm.ID, "error", err)
		return r.failed(ctx, vm, st), wait
	}
	st.succeeded()
	r.setGen(vm.ID, st, vm.RebootGen)
	r.log.Info("domain rebooted", "vm_id", vm.ID, "reboot_gen", vm.RebootGen)
	rep.RebootGen = st.rebootDone
	return rep, 0
}

// ensureStopped asks the guest to shut down, and powers it off when it has
// not within the grace period (at once with ForceStop).
func (r *reconciler) ensureStopped(ctx context.Context, vm *DesiredVM, st *vmState, status hypervisor.DomainStatus, exists bool) (*VMReport, time.Duration) {
	if !exists {
		st.stopAsked = time.Time{}
		return absent(vm, st), 0
	}
	if status.Power == hypervisor.PowerStopped {
		st.stopAsked = time.Time{}
		return report(vm, st, hypervisor.PowerStopped), 0
	}
	uuid := domainUUID(vm)
	now := r.a.now()
	force := vm.ForceStop || status.Power == hypervisor.PowerPaused
	if !force && st.stopAsked.IsZero() {
		r.markStopping(uuid)
		if err := r.a.driver.Shutdown(ctx, uuid); err != nil {
			r.log.Warn("guest shutdown failed, powering off", "vm_id", vm.ID, "error", err)
			force = true
		} else {
			st.stopAsked = now
			r.log.Info("asked the guest to shut down", "vm_id", vm.ID, "grace", r.a.cfg.ShutdownGrace)
			if r.powerOf(ctx, uuid) == hypervisor.PowerStopped {
				st.stopAsked = time.Time{}
				return report(vm, st, hypervisor.PowerStopped), 0
			}
		}
	}
	if !force {
		left := st.stopAsked.Add(r.a.cfg.ShutdownGrace).Sub(now)
		if left > 0 {
			return report(vm, st, hypervisor.PowerShutdown), min(left, r.poll)
		}
		r.log.Warn("guest did not shut down in time, powering off", "vm_id", vm.ID, "grace", r.a.cfg.ShutdownGrace)
	}
	r.markStopping(uuid)
	if err := r.a.driver.Stop(ctx, uuid); err != nil && !errors.Is(err, hypervisor.ErrNotFound) {
		wait := r.fail(st, vm, err)
		r.log.Error("cannot power off domain", "vm_id", vm.ID, "error", err)
		return r.failed(ctx, vm, st), wait
	}
	st.succeeded()
	st.stopAsked = time.Time{}
	r.log.Info("domain powered off", "vm_id", vm.ID)
	return report(vm, st, r.powerOf(ctx, uuid)), 0
}

// ensureAbsent destroys the domain of a VM that must not be on this host.
// Its volumes are left alone: the servers delete those through storage.
func (r *reconciler) ensureAbsent(ctx context.Context, vm *DesiredVM, st *vmState, exists bool) (*VMReport, time.Duration) {
	st.volumes = nil
	if exists {
		uuid := domainUUID(vm)
		r.markStopping(uuid)
		if err := r.a.driver.Destroy(ctx, uuid); err != nil {
			wait := r.fail(st, vm, err)
			r.log.Error("cannot destroy domain", "vm_id", vm.ID, "error", err)
			return r.failed(ctx, vm, st), wait
		}
		st.succeeded()
		r.log.Info("domain destroyed", "vm_id", vm.ID, "uuid", uuid)
	}
	return absent(vm, st), 0
}

// migrateOut moves the domain of vm to its MigrateTo host: live when the
// driver can, else by a cold hand-over (power off and undefine here; the
// target starts it once the servers see MigratedOut).
func (r *reconciler) migrateOut(ctx context.Context, vm *DesiredVM, st *vmState, status hypervisor.DomainStatus, exists bool) (*VMReport, time.Duration) {
	handedOver := func() *VMReport {
		rep := absent(vm, st)
		rep.MigratedOut = true
		return rep
	}
	if !exists {
		return handedOver(), 0
	}
	if vm.MigrateToURI == "" {
		rep := report(vm, st, status.Power)
		rep.Error = "migration asked without migrate_to_uri"
		return rep, 0
	}
	if st.migrateFailed != "" && st.migrateFailed == fingerprint(vm) {
		// The servers cancel a migration at its first reported error: a
		// retry that succeeded would put the domain on the target while
		// they think it runs here. Wait for a new desired state.
		rep := report(vm, st, status.Power)
		rep.Error = st.lastErr
		return rep, 0
	}
	if !st.mayTry(vm, r.a.now()) {
		rep := report(vm, st, status.Power)
		rep.Error = st.lastErr
		return rep, r.retryLeft(st)
	}
	uuid := domainUUID(vm)
	r.markStopping(uuid)
	if status.Power == hypervisor.PowerRunning || status.Power == hypervisor.PowerPaused {
		err := r.a.driver.Migrate(ctx, uuid, vm.MigrateToURI)
		switch {
		case err == nil:
			r.log.Info("domain migrated", "vm_id", vm.ID, "to", vm.MigrateTo)
		case errors.Is(err, hypervisor.ErrMigrationUnsupported):
			r.log.Info("live migration unsupported, handing the domain over cold", "vm_id", vm.ID, "to", vm.MigrateTo)
		default:
			r.fail(st, vm, err)
			st.migrateFailed = fingerprint(vm)
			r.log.Error("cannot migrate domain, not retrying it for this desired state", "vm_id", vm.ID, "to", vm.MigrateTo, "error", err)
			return r.failed(ctx, vm, st), 0
		}
	}
	if err := r.handOver(ctx, uuid); err != nil {
		wait := r.fail(st, vm, err)
		r.log.Error("cannot hand the domain over", "vm_id", vm.ID, "error", err)
		return r.failed(ctx, vm, st), wait
	}
	st.succeeded()
	return handedOver(), 0
}

// handOver powers the domain off here and removes its definition. A domain
// still running after a successful live migration is an error: it must
// never run on two hosts, and killing it is not the agent's call.
func (r *reconciler) handOver(ctx context.Context, uuid string) error {
	s, exists, err := r.observe(ctx, uuid)
	if err != nil || !exists {
		return err
	}
	if err := r.a.driver.Stop(ctx, uuid); err != nil && !errors.Is(err, hypervisor.ErrNotFound) {
		return fmt.Errorf("power off %s: %w (was %s)", uuid, err, s.Power)
	}
	if err := r.a.driver.Destroy(ctx, uuid); err != nil {
		return fmt.Errorf("undefine %s: %w", uuid, err)
	}
	return nil
}

// ensureVolumes makes the pools and volumes of vm and returns the path of
// each volume by ID; st.volumes gets their reports.
func (r *reconciler) ensureVolumes(ctx context.Context, vm *DesiredVM, st *vmState) (map[string]string, error) {
	paths := make(map[string]string, len(vm.Volumes))
	reps := make([]VolumeReport, 0, len(vm.Volumes))
	defer func() { st.volumes = reps }()
	pools := map[string]bool{}
	for _, v := range vm.Volumes {
		if !pools[v.Pool] {
			if err := r.a.driver.EnsurePool(ctx, v.Pool, v.PoolPath); err != nil {
				err = fmt.Errorf("pool %s at %s: %w", v.Pool, v.PoolPath, err)
				reps = append(reps, VolumeReport{ID: v.ID, Error: err.Error()})
				return paths, err
			}
			pools[v.Pool] = true
		}
		info, err := r.a.driver.CreateVolume(ctx, hypervisor.VolumeSpec{
			Pool: v.Pool, Name: v.Name, SizeBytes: v.SizeBytes, Format: v.Format, BackingPath: v.TemplatePath,
		})
		if err != nil {
			err = fmt.Errorf("volume %s in pool %s: %w", v.Name, v.Pool, err)
			reps = append(reps, VolumeReport{ID: v.ID, Error: err.Error()})
			return paths, err
		}
		reps = append(reps, VolumeReport{ID: v.ID, Path: info.Path, SizeBytes: info.SizeBytes})
		paths[v.ID] = info.Path
	}
	return paths, nil
}

// withVolumePaths fills the empty Path of each disk whose Serial is the
// ID of a volume the agent made.
func withVolumePaths(spec hypervisor.DomainSpec, paths map[string]string) hypervisor.DomainSpec {
	if len(paths) == 0 {
		return spec
	}
	disks := make([]hypervisor.DiskSpec, len(spec.Disks))
	copy(disks, spec.Disks)
	for i := range disks {
		if disks[i].Path == "" {
			disks[i].Path = paths[disks[i].Serial]
		}
	}
	spec.Disks = disks
	return spec
}

// removeOrphans destroys managed domains that are in no desired VM: VMs
// expunged or moved away while the agent was not looking. Only a fresh
// desired state may justify this.
func (r *reconciler) removeOrphans(ctx context.Context, want map[string]bool) {
	doms, err := r.a.driver.Domains(ctx)
	if err != nil {
		r.log.Warn("cannot list domains, orphans left for the next pass", "error", err)
		return
	}
	for _, dom := range doms {
		if want[dom.UUID] || !strings.HasPrefix(dom.Name, hypervisor.DomainPrefix) {
			continue
		}
		r.markStopping(dom.UUID)
		if err := r.a.driver.Destroy(ctx, dom.UUID); err != nil {
			r.log.Error("cannot destroy orphan domain", "uuid", dom.UUID, "name", dom.Name, "error", err)
			continue
		}
		r.log.Info("orphan domain destroyed", "uuid", dom.UUID, "name", dom.Name, "was", dom.Power)
	}
}

// event acts on one lifecycle event and runs a pass when it concerns a
// desired VM.
func (r *reconciler) event(ctx context.Context, ev hypervisor.DomainEvent) {
	if r.note(ev) {
		r.pass(ctx, false)
	}
}

// drain notes the events already queued, so that a pass sees what the
// hypervisor said before it acts on what it observes.
func (r *reconciler) drain() {
	for {
		select {
		case ev := <-r.events:
			r.note(ev)
		default:
			return
		}
	}
}

// note records one lifecycle event: a domain that should run and stopped
// without the agent asking is held down, to be reported with a Reason.
// It reports whether the event concerns a desired VM.
func (r *reconciler) note(ev hypervisor.DomainEvent) bool {
	r.log.Debug("domain event", "uuid", ev.UUID, "kind", ev.Kind, "power", ev.Power)
	vm := r.find(ev.UUID)
	if vm == nil {
		return false
	}
	var reason string
	switch ev.Kind {
	case hypervisor.EventCrashed:
		reason = ReasonCrashed
	case hypervisor.EventShutdown, hypervisor.EventStopped, hypervisor.EventRemoved:
		if r.excused(ev.UUID) {
			break // the agent stopped it
		}
		reason = ReasonStoppedOutside
		if ev.Kind == hypervisor.EventShutdown {
			reason = ReasonGuestShutdown
		}
	case hypervisor.EventStarted, hypervisor.EventDefined:
		return false // the agent's own start, or seen at the next pass
	}
	if reason != "" {
		r.hold(vm, reason)
	}
	return true
}

// hold keeps a VM that should run and stopped by itself down until the
// servers have seen why. A more precise reason replaces a guessed one
// (stopped-outside, from a domain that says no more than that it is off).
func (r *reconciler) hold(vm *DesiredVM, reason string) {
	if vm.Power != WantRunning || vm.MigrateTo != "" || vm.Incoming {
		return
	}
	st := r.state(vm)
	if st.held && st.holdReason == reason {
		return
	}
	if st.held && reason == ReasonStoppedOutside {
		return // the event said more than a pass can guess
	}
	st.held, st.holdReason, st.holdRelease, st.wasRunning = true, reason, 0, false
	r.a.rep.clearAck(vm.ID)
	r.log.Warn("domain stopped unexpectedly", "vm_id", vm.ID, "uuid", domainUUID(vm), "reason", reason)
}

// excused reports whether the agent itself stopped uuid lately.
func (r *reconciler) excused(uuid string) bool {
	if until, ok := r.stopping[uuid]; ok && r.a.now().Before(until) {
		return true
	}
	return r.a.wasFenced(uuid) // killed by the agent's self-fence
}

// find returns the desired VM of a domain UUID, or nil.
func (r *reconciler) find(uuid string) *DesiredVM {
	if r.cur == nil {
		return nil
	}
	for i := range r.cur.VMs {
		if vm := &r.cur.VMs[i]; domainUUID(vm) == uuid || vm.ID == uuid {
			return vm
		}
	}
	return nil
}
