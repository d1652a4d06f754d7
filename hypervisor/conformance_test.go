package hypervisor

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// conformanceHost is one fresh, empty host for the conformance suite.
type conformanceHost struct {
	drv Driver
	// poolDir is a directory the suite may use for a storage pool.
	poolDir string
	// foreign defines a stopped domain Stratus does not manage.
	foreign func(t *testing.T, uuid, name string)
	// crash kills a running managed domain as a guest crash would.
	crash func(t *testing.T, uuid string)
}

// driverFactory makes a fresh host; it registers its own cleanup.
type driverFactory func(t *testing.T) conformanceHost

// waitTimeout bounds every wait for a condition in these tests.
const waitTimeout = 10 * time.Second

// runConformance checks that a Driver keeps the contract in driver.go.
func runConformance(t *testing.T, newHost driverFactory) {
	t.Run("Facts", func(t *testing.T) { testFacts(t, newHost(t)) })
	t.Run("Lifecycle", func(t *testing.T) { testLifecycle(t, newHost(t)) })
	t.Run("Idempotency", func(t *testing.T) { testIdempotency(t, newHost(t)) })
	t.Run("OnlyPrefixedDomains", func(t *testing.T) { testOnlyPrefixed(t, newHost(t)) })
	t.Run("Events", func(t *testing.T) { testEvents(t, newHost(t)) })
	t.Run("Volumes", func(t *testing.T) { testVolumes(t, newHost(t)) })
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, newHost(t)) })
	t.Run("Migrate", func(t *testing.T) { testMigrate(t, newHost(t)) })
	t.Run("StopReasons", func(t *testing.T) { testStopReasons(t, newHost(t)) })
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

func testSpec(n int, disk string) DomainSpec {
	s := DomainSpec{
		UUID:        fmt.Sprintf("6f1c1f5e-0000-4000-8000-%012d", n),
		Name:        fmt.Sprintf("%svm-%d", DomainPrefix, n),
		VCPUs:       1,
		CPUMHz:      500,
		MemoryBytes: 128 << 20,
		NICs:        []NICSpec{{MAC: fmt.Sprintf("52:54:00:00:00:%02x", n%256)}},
		Metadata:    `{"vm":"` + fmt.Sprint(n) + `"}`,
	}
	if disk != "" {
		s.Disks = []DiskSpec{{Path: disk, Format: "qcow2", Device: "vda", Serial: "root"}}
	}
	return s
}

// waitPower polls until the domain reaches want.
func waitPower(t *testing.T, d Driver, uuid string, want PowerState) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		st, err := d.Domain(context.Background(), uuid)
		if err == nil && st.Power == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("domain %s: want power %s, last %+v (err %v)", uuid, want, st, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitEvent reads ch until an event of kind about uuid arrives.
func waitEvent(t *testing.T, ch <-chan DomainEvent, uuid string, kind EventKind) DomainEvent {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	var seen []DomainEvent
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("events closed waiting for %s of %s; saw %+v", kind, uuid, seen)
			}
			if !strings.HasPrefix(ev.Name, DomainPrefix) {
				t.Fatalf("event of an unmanaged domain: %+v", ev)
			}
			if ev.UUID == uuid && ev.Kind == kind {
				return ev
			}
			seen = append(seen, ev)
		case <-timer.C:
			t.Fatalf("no %s event of %s; saw %+v", kind, uuid, seen)
		}
	}
}

func testFacts(t *testing.T, h conformanceHost) {
	f, err := h.drv.Facts(testCtx(t))
	if err != nil {
		t.Fatalf("facts: %v", err)
	}
	if f.CPUs <= 0 || f.MemoryBytes <= 0 || f.Hostname == "" || f.CPUMHz <= 0 {
		t.Fatalf("facts incomplete: %+v", f)
	}
	if h.drv.URI() == "" {
		t.Fatal("empty URI")
	}
}

func testLifecycle(t *testing.T, h conformanceHost) {
	ctx, d := testCtx(t), h.drv
	spec := testSpec(1, filepath.Join(h.poolDir, "root.qcow2"))
	if err := d.Start(ctx, spec); err != nil {
		t.Fatalf("start: %v", err)
	}
	waitPower(t, d, spec.UUID, PowerRunning)
	st, err := d.Domain(ctx, spec.UUID)
	if err != nil || st.Name != spec.Name || st.UUID != spec.UUID {
		t.Fatalf("domain: %+v, %v", st, err)
	}
	if err := d.Reboot(ctx, spec.UUID); err != nil {
		t.Fatalf("reboot: %v", err)
	}
	waitPower(t, d, spec.UUID, PowerRunning)
	if err := d.Stop(ctx, spec.UUID); err != nil {
		t.Fatalf("stop: %v", err)
	}
	waitPower(t, d, spec.UUID, PowerStopped)
	if err := d.Start(ctx, spec); err != nil {
		t.Fatalf("restart: %v", err)
	}
	waitPower(t, d, spec.UUID, PowerRunning)
	if err := d.Shutdown(ctx, spec.UUID); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	waitPower(t, d, spec.UUID, PowerStopped)
	if err := d.Start(ctx, spec); err != nil {
		t.Fatalf("start after shutdown: %v", err)
	}
	if err := d.Destroy(ctx, spec.UUID); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	if _, err := d.Domain(ctx, spec.UUID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("domain after destroy: want ErrNotFound, got %v", err)
	}
}

func testIdempotency(t *testing.T, h conformanceHost) {
	ctx, d := testCtx(t), h.drv
	spec := testSpec(2, "")
	for i := 0; i < 2; i++ {
		if err := d.Start(ctx, spec); err != nil {
			t.Fatalf("start #%d: %v", i+1, err)
		}
	}
	waitPower(t, d, spec.UUID, PowerRunning)
	for i := 0; i < 2; i++ {
		if err := d.Stop(ctx, spec.UUID); err != nil {
			t.Fatalf("stop #%d: %v", i+1, err)
		}
	}
	waitPower(t, d, spec.UUID, PowerStopped)
	for i := 0; i < 2; i++ {
		if err := d.Destroy(ctx, spec.UUID); err != nil {
			t.Fatalf("destroy #%d: %v", i+1, err)
		}
	}
	if err := d.Destroy(ctx, testSpec(99, "").UUID); err != nil {
		t.Fatalf("destroy missing: %v", err)
	}
}

func testOnlyPrefixed(t *testing.T, h conformanceHost) {
	ctx, d := testCtx(t), h.drv
	foreign := "6f1c1f5e-0000-4000-8000-ffffffffffff"
	h.foreign(t, foreign, "operator-vm")
	a, b := testSpec(3, ""), testSpec(4, "")
	for _, s := range []DomainSpec{a, b} {
		if err := d.Start(ctx, s); err != nil {
			t.Fatalf("start %s: %v", s.Name, err)
		}
	}
	if err := d.Stop(ctx, b.UUID); err != nil {
		t.Fatalf("stop: %v", err)
	}
	waitPower(t, d, b.UUID, PowerStopped)
	list, err := d.Domains(ctx)
	if err != nil {
		t.Fatalf("domains: %v", err)
	}
	got := map[string]PowerState{}
	for _, st := range list {
		got[st.UUID] = st.Power
	}
	want := map[string]PowerState{a.UUID: PowerRunning, b.UUID: PowerStopped}
	if len(got) != len(want) || got[a.UUID] != PowerRunning || got[b.UUID] != PowerStopped {
		t.Fatalf("domains: want %v, got %+v", want, list)
	}
	if _, err := d.Domain(ctx, foreign); !errors.Is(err, ErrNotFound) {
		t.Fatalf("foreign domain: want ErrNotFound, got %v", err)
	}
	if err := d.Destroy(ctx, foreign); err != nil {
		t.Fatalf("destroy foreign: %v", err)
	}
	bad := testSpec(5, "")
	bad.Name = "operator-2"
	if err := d.Start(ctx, bad); err == nil {
		t.Fatal("start without prefix: want error")
	}
}

func testEvents(t *testing.T, h conformanceHost) {
	ctx, d := testCtx(t), h.drv
	evCtx, cancel := context.WithCancel(ctx)
	ch, err := d.Events(evCtx)
	if err != nil {
		t.Fatalf("events: %v", err)
	}
	h.foreign(t, "6f1c1f5e-0000-4000-8000-fffffffffffe", "operator-vm")
	spec := testSpec(6, "")
	if err := d.Start(ctx, spec); err != nil {
		t.Fatalf("start: %v", err)
	}
	ev := waitEvent(t, ch, spec.UUID, EventStarted)
	if ev.Name != spec.Name || ev.Power != PowerRunning {
		t.Fatalf("started event: %+v", ev)
	}
	if err := d.Stop(ctx, spec.UUID); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if ev := waitEvent(t, ch, spec.UUID, EventStopped); ev.Power != PowerStopped {
		t.Fatalf("stopped event: %+v", ev)
	}
	if err := d.Start(ctx, spec); err != nil {
		t.Fatalf("start: %v", err)
	}
	waitEvent(t, ch, spec.UUID, EventStarted)
	if err := d.Shutdown(ctx, spec.UUID); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	waitEvent(t, ch, spec.UUID, EventShutdown)
	if err := d.Destroy(ctx, spec.UUID); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	waitEvent(t, ch, spec.UUID, EventRemoved)
	cancel()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timer.C:
			t.Fatal("events channel still open after cancel")
		}
	}
}

func testVolumes(t *testing.T, h conformanceHost) {
	ctx, d := testCtx(t), h.drv
	for i := 0; i < 2; i++ {
		if err := d.EnsurePool(ctx, "primary", h.poolDir); err != nil {
			t.Fatalf("ensure pool #%d: %v", i+1, err)
		}
	}
	spec := VolumeSpec{Pool: "primary", Name: "root-1.qcow2", SizeBytes: 1 << 30, Format: "qcow2"}
	var first VolumeInfo
	for i := 0; i < 2; i++ {
		vi, err := d.CreateVolume(ctx, spec)
		if err != nil {
			t.Fatalf("create volume #%d: %v", i+1, err)
		}
		if vi.Name != spec.Name || vi.Pool != "primary" || vi.Path == "" || vi.SizeBytes != spec.SizeBytes {
			t.Fatalf("create volume: %+v", vi)
		}
		first = vi
	}
	raw := VolumeSpec{Pool: "primary", Name: "data-1.raw", SizeBytes: 64 << 20, Format: "raw"}
	if _, err := d.CreateVolume(ctx, raw); err != nil {
		t.Fatalf("create raw volume: %v", err)
	}
	list, err := d.Volumes(ctx, "primary")
	if err != nil {
		t.Fatalf("volumes: %v", err)
	}
	if len(list) != 2 || list[0].Name != raw.Name || list[1] != first {
		t.Fatalf("volumes: %+v", list)
	}
	for i := 0; i < 2; i++ {
		if err := d.DeleteVolume(ctx, "primary", spec.Name); err != nil {
			t.Fatalf("delete volume #%d: %v", i+1, err)
		}
	}
	list, err = d.Volumes(ctx, "primary")
	if err != nil || len(list) != 1 || list[0].Name != raw.Name {
		t.Fatalf("volumes after delete: %+v, %v", list, err)
	}
}

func testNotFound(t *testing.T, h conformanceHost) {
	ctx, d := testCtx(t), h.drv
	missing := testSpec(42, "").UUID
	checks := map[string]error{}
	_, checks["Domain"] = d.Domain(ctx, missing)
	checks["Stop"] = d.Stop(ctx, missing)
	checks["Shutdown"] = d.Shutdown(ctx, missing)
	checks["Reboot"] = d.Reboot(ctx, missing)
	checks["Migrate"] = d.Migrate(ctx, missing, "test:///nowhere")
	_, checks["Volumes"] = d.Volumes(ctx, "no-such-pool")
	_, checks["CreateVolume"] = d.CreateVolume(ctx, VolumeSpec{Pool: "no-such-pool", Name: "x", SizeBytes: 1 << 20, Format: "raw"})
	checks["DeleteVolume"] = d.DeleteVolume(ctx, "no-such-pool", "x")
	if err := d.EnsurePool(ctx, "primary", h.poolDir); err != nil {
		t.Fatalf("ensure pool: %v", err)
	}
	checks["ResizeVolume"] = d.ResizeVolume(ctx, "primary", "no-such-volume", 1<<30)
	for name, err := range checks {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s of a missing object: want ErrNotFound, got %v", name, err)
		}
	}
}

func testMigrate(t *testing.T, h conformanceHost) {
	ctx, d := testCtx(t), h.drv
	spec := testSpec(7, "")
	if err := d.Start(ctx, spec); err != nil {
		t.Fatalf("start: %v", err)
	}
	err := d.Migrate(ctx, spec.UUID, "test:///elsewhere.xml")
	if !errors.Is(err, ErrMigrationUnsupported) {
		t.Fatalf("migrate: want ErrMigrationUnsupported, got %v", err)
	}
	waitPower(t, d, spec.UUID, PowerRunning)
}

// waitStopReason polls until the domain is Stopped with reason want, in
// Domain and in Domains.
func waitStopReason(t *testing.T, d Driver, uuid string, want StopReason) {
	t.Helper()
	waitPower(t, d, uuid, PowerStopped)
	st, err := d.Domain(context.Background(), uuid)
	if err != nil || st.StopReason != want {
		t.Fatalf("domain %s: want stop reason %q, got %+v (err %v)", uuid, want, st, err)
	}
	list, err := d.Domains(context.Background())
	if err != nil {
		t.Fatalf("domains: %v", err)
	}
	for _, s := range list {
		if s.UUID == uuid && s.StopReason != want {
			t.Fatalf("domains: %s: want stop reason %q, got %+v", uuid, want, s)
		}
	}
}

// waitRunningNoReason polls until the domain runs and checks that it
// reports no stop reason.
func waitRunningNoReason(t *testing.T, d Driver, uuid string) {
	t.Helper()
	waitPower(t, d, uuid, PowerRunning)
	if st, err := d.Domain(context.Background(), uuid); err != nil || st.StopReason != "" {
		t.Fatalf("running domain %s: want no stop reason, got %+v (err %v)", uuid, st, err)
	}
}

// testStopReasons checks that a stopped domain says why it stopped, long
// after the fact and whether or not anyone read the event.
func testStopReasons(t *testing.T, h conformanceHost) {
	ctx, d := testCtx(t), h.drv
	ch, err := d.Events(ctx)
	if err != nil {
		t.Fatalf("events: %v", err)
	}
	spec := testSpec(8, "")
	if err := d.Start(ctx, spec); err != nil {
		t.Fatalf("start: %v", err)
	}
	waitRunningNoReason(t, d, spec.UUID)
	if err := d.Stop(ctx, spec.UUID); err != nil {
		t.Fatalf("stop: %v", err)
	}
	waitStopReason(t, d, spec.UUID, StopDestroyed)

	if err := d.Start(ctx, spec); err != nil {
		t.Fatalf("start after stop: %v", err)
	}
	waitRunningNoReason(t, d, spec.UUID)
	if err := d.Shutdown(ctx, spec.UUID); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	waitStopReason(t, d, spec.UUID, StopGuestShutdown)

	if err := d.Start(ctx, spec); err != nil {
		t.Fatalf("start after shutdown: %v", err)
	}
	waitRunningNoReason(t, d, spec.UUID)
	h.crash(t, spec.UUID)
	waitStopReason(t, d, spec.UUID, StopCrashed)
	if ev := waitEvent(t, ch, spec.UUID, EventCrashed); ev.Power != PowerStopped {
		t.Fatalf("crashed event: %+v", ev)
	}
	// Stopping a stopped domain is a no-op and keeps the reason.
	if err := d.Stop(ctx, spec.UUID); err != nil {
		t.Fatalf("stop a crashed domain: %v", err)
	}
	waitStopReason(t, d, spec.UUID, StopCrashed)
	if err := d.Start(ctx, spec); err != nil {
		t.Fatalf("start after crash: %v", err)
	}
	waitRunningNoReason(t, d, spec.UUID)
}
