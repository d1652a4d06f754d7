package hypervisor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestLibvirtQemu runs the driver against a real libvirtd with QEMU. It
// is gated: set STRATUS_QEMU_URI (e.g. qemu:///system) to run it. The
// guest has an empty disk, so it sits in the BIOS: enough to exercise
// define, start, reboot, stop and destroy, and volumes with backing
// images and resize. STRATUS_QEMU_DOMAIN_TYPE=qemu forces TCG on hosts
// whose capabilities offer kvm that qemu cannot open (a /dev/kvm without
// the kvm group).
func TestLibvirtQemu(t *testing.T) {
	uri := os.Getenv("STRATUS_QEMU_URI")
	if uri == "" {
		t.Skip("STRATUS_QEMU_URI not set")
	}
	l, err := Open(uri, testLogger(t))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	if typ := os.Getenv("STRATUS_QEMU_DOMAIN_TYPE"); typ != "" {
		l.mu.Lock()
		l.domType = typ
		l.mu.Unlock()
	}
	// Starting qemu under TCG here takes up to a minute.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	f, err := l.Facts(ctx)
	if err != nil || f.CPUs <= 0 || f.Hostname == "" {
		t.Fatalf("facts: %+v, %v", f, err)
	}
	t.Logf("facts %+v, uri %s, domain type %s", f, l.URI(), l.domainType())

	// qemu runs as its own user: it must reach the images.
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatalf("chmod: %v", err)
		}
	}
	pool := "stratus-test-" + filepath.Base(dir)
	if err := l.EnsurePool(ctx, pool, dir); err != nil {
		t.Fatalf("ensure pool: %v", err)
	}
	t.Cleanup(func() { removePool(t, l, pool) })
	tmpl, err := l.CreateVolume(ctx, VolumeSpec{Pool: pool, Name: "template.qcow2", SizeBytes: 64 << 20, Format: "qcow2"})
	if err != nil {
		t.Fatalf("create template: %v", err)
	}
	root, err := l.CreateVolume(ctx, VolumeSpec{Pool: pool, Name: "root.qcow2", Format: "qcow2", BackingPath: tmpl.Path})
	if err != nil || root.SizeBytes != 64<<20 {
		t.Fatalf("create overlay: %+v, %v", root, err)
	}
	if _, err := l.CreateVolume(ctx, VolumeSpec{Pool: pool, Name: "copy.raw", Format: "raw", BackingPath: tmpl.Path}); err != nil {
		t.Fatalf("create raw copy: %v", err)
	}
	if err := l.ResizeVolume(ctx, pool, "root.qcow2", 128<<20); err != nil {
		t.Fatalf("resize: %v", err)
	}
	if vols, err := l.Volumes(ctx, pool); err != nil || len(vols) != 3 || vols[1].Name != "root.qcow2" || vols[1].SizeBytes != 128<<20 {
		t.Fatalf("volumes: %+v, %v", vols, err)
	}

	ch, err := l.Events(ctx)
	if err != nil {
		t.Fatalf("events: %v", err)
	}
	spec := testSpec(900, root.Path)
	spec.NICs = nil // a fresh libvirtd may have no default network
	if err := l.Start(ctx, spec); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { _ = l.Destroy(context.Background(), spec.UUID) })
	waitEvent(t, ch, spec.UUID, EventStarted)
	if err := l.Start(ctx, spec); err != nil {
		t.Fatalf("start again: %v", err)
	}
	if err := l.Reboot(ctx, spec.UUID); err != nil {
		t.Fatalf("reboot: %v", err)
	}
	if err := l.Migrate(ctx, spec.UUID, "qemu+tcp://stratus-no-such-host.invalid/system"); err == nil || errors.Is(err, ErrMigrationUnsupported) {
		t.Fatalf("migrate to nowhere: want a migration error, got %v", err)
	}
	waitPower(t, l, spec.UUID, PowerRunning)
	if err := l.Stop(ctx, spec.UUID); err != nil {
		t.Fatalf("stop: %v", err)
	}
	waitEvent(t, ch, spec.UUID, EventStopped)
	if err := l.Destroy(ctx, spec.UUID); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	waitEvent(t, ch, spec.UUID, EventRemoved)
}

// removePool deletes a test pool's volumes and the pool itself.
func removePool(t *testing.T, l *Libvirt, name string) {
	ctx := context.Background()
	vols, _ := l.Volumes(ctx, name)
	for _, v := range vols {
		_ = l.DeleteVolume(ctx, name, v.Name)
	}
	lc, p, err := l.pool(ctx, name)
	if err != nil {
		return
	}
	defer func() { _ = p.Free() }()
	if err := p.Destroy(); err != nil {
		t.Logf("destroy pool %s: %v", name, l.fail(lc, "destroy pool", err))
	}
	_ = p.Undefine()
}
