package hypervisor

import (
	"context"
	"errors"
	"testing"
	"time"
)

func newFakeHost(t *testing.T) conformanceHost {
	f := NewFake(HostFacts{Hostname: "fake-1", CPUs: 4, CPUSockets: 1, CPUMHz: 2000, MemoryBytes: 8 << 30})
	t.Cleanup(func() { _ = f.Close() })
	return conformanceHost{
		drv:     f,
		poolDir: "/var/lib/stratus/primary",
		foreign: func(t *testing.T, uuid, name string) { f.DefineForeign(uuid, name) },
		crash: func(t *testing.T, uuid string) {
			t.Helper()
			if err := f.Crash(uuid); err != nil {
				t.Fatalf("crash: %v", err)
			}
		},
	}
}

func TestFakeConformance(t *testing.T) {
	runConformance(t, newFakeHost)
}

func TestFakeCrashAndGuestShutdown(t *testing.T) {
	f := newFakeHost(t).drv.(*Fake)
	ctx := testCtx(t)
	ch, err := f.Events(ctx)
	if err != nil {
		t.Fatalf("events: %v", err)
	}
	a, b := testSpec(1, ""), testSpec(2, "")
	for _, s := range []DomainSpec{a, b} {
		if err := f.Start(ctx, s); err != nil {
			t.Fatalf("start: %v", err)
		}
	}
	if err := f.Crash(a.UUID); err != nil {
		t.Fatalf("crash: %v", err)
	}
	if ev := waitEvent(t, ch, a.UUID, EventCrashed); ev.Power != PowerStopped {
		t.Fatalf("crashed event: %+v", ev)
	}
	if err := f.GuestShutdown(b.UUID); err != nil {
		t.Fatalf("guest shutdown: %v", err)
	}
	waitEvent(t, ch, b.UUID, EventShutdown)
	waitPower(t, f, a.UUID, PowerStopped)
	waitPower(t, f, b.UUID, PowerStopped)
	if err := f.Crash("missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("crash missing: %v", err)
	}
	if got, ok := f.Spec(a.UUID); !ok || got.Metadata != a.Metadata {
		t.Fatalf("spec: %+v %v", got, ok)
	}
}

func TestFakeFailNext(t *testing.T) {
	f := newFakeHost(t).drv.(*Fake)
	ctx := context.Background()
	boom := errors.New("boom")
	f.FailNext("Start", boom)
	f.FailNext("Start", ErrConnection)
	spec := testSpec(1, "")
	if err := f.Start(ctx, spec); !errors.Is(err, boom) {
		t.Fatalf("first start: want boom, got %v", err)
	}
	if err := f.Start(ctx, spec); !errors.Is(err, ErrConnection) {
		t.Fatalf("second start: want ErrConnection, got %v", err)
	}
	if _, err := f.Domain(ctx, spec.UUID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("failed start defined the domain: %v", err)
	}
	if err := f.Start(ctx, spec); err != nil {
		t.Fatalf("third start: %v", err)
	}
}

func TestFakeClose(t *testing.T) {
	f := NewFake(HostFacts{Hostname: "h"})
	ch, err := f.Events(context.Background())
	if err != nil {
		t.Fatalf("events: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	for range ch {
	}
	if _, err := f.Domains(context.Background()); !errors.Is(err, ErrConnection) {
		t.Fatalf("after close: want ErrConnection, got %v", err)
	}
}

func TestFakeStopReasonsAndHeldEvents(t *testing.T) {
	f := newFakeHost(t).drv.(*Fake)
	ctx := testCtx(t)
	ch, err := f.Events(ctx)
	if err != nil {
		t.Fatalf("events: %v", err)
	}
	a, b := testSpec(1, ""), testSpec(2, "")
	for _, s := range []DomainSpec{a, b} {
		if err := f.Start(ctx, s); err != nil {
			t.Fatalf("start: %v", err)
		}
		waitEvent(t, ch, s.UUID, EventStarted)
	}
	f.HoldEvents()
	if err := f.Crash(a.UUID); err != nil {
		t.Fatalf("crash: %v", err)
	}
	if err := f.GuestShutdown(b.UUID); err != nil {
		t.Fatalf("guest shutdown: %v", err)
	}
	// The state says why at once; the events wait.
	waitStopReason(t, f, a.UUID, StopCrashed)
	waitStopReason(t, f, b.UUID, StopGuestShutdown)
	select {
	case ev := <-ch:
		t.Fatalf("event delivered while held: %+v", ev)
	case <-time.After(20 * time.Millisecond):
	}
	f.ReleaseEvents()
	waitEvent(t, ch, a.UUID, EventCrashed)
	waitEvent(t, ch, b.UUID, EventShutdown)
	// SetPower stops without saying why.
	if err := f.Start(ctx, a); err != nil {
		t.Fatalf("start: %v", err)
	}
	waitEvent(t, ch, a.UUID, EventStarted)
	if err := f.SetPower(a.UUID, PowerStopped); err != nil {
		t.Fatalf("set power: %v", err)
	}
	waitStopReason(t, f, a.UUID, StopUnknown)
	if err := f.SetPower(b.UUID, PowerStopped); err != nil {
		t.Fatalf("set power: %v", err)
	}
	waitStopReason(t, f, b.UUID, StopGuestShutdown)
	if err := f.SetPower(b.UUID, PowerPaused); err != nil {
		t.Fatalf("set power: %v", err)
	}
	if st, err := f.Domain(ctx, b.UUID); err != nil || st.StopReason != "" {
		t.Fatalf("paused: %+v, %v", st, err)
	}
}
