package hypervisor

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"libvirt.org/go/libvirt"
)

// testLogger routes driver logs through t.Log.
func testLogger(t *testing.T) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Debug, Output: testWriter{t}})
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// openTestHost writes a test-driver host file in t.TempDir and opens it.
func openTestHost(t *testing.T, h TestHost) *Libvirt {
	t.Helper()
	path := filepath.Join(t.TempDir(), h.Name+".xml")
	if err := WriteTestHost(path, h); err != nil {
		t.Fatalf("write test host: %v", err)
	}
	l, err := Open("test://"+path, testLogger(t))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func newLibvirtHost(t *testing.T) conformanceHost {
	l := openTestHost(t, TestHost{Name: "kvm-1", CPUs: 8, MHz: 2400, MemoryMiB: 16384})
	return conformanceHost{
		drv:     l,
		poolDir: t.TempDir(),
		foreign: func(t *testing.T, uuid, name string) {
			t.Helper()
			lc, err := l.connect()
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			x := fmt.Sprintf(`<domain type="test"><name>%s</name><uuid>%s</uuid>`+
				`<memory unit="MiB">64</memory><os><type>hvm</type></os></domain>`, name, uuid)
			d, err := lc.c.DomainDefineXML(x)
			if err != nil {
				t.Fatalf("define foreign domain: %v", err)
			}
			_ = d.Free()
		},
		crash: func(t *testing.T, uuid string) {
			t.Helper()
			crashTestDomain(t, l, uuid)
		},
	}
}

// crashTestDomain crashes a domain of libvirt's test driver: a core dump
// with VIR_DUMP_CRASH is its one way to simulate a crash (the domain
// becomes SHUTOFF/CRASHED and a STOPPED/CRASHED event fires).
func crashTestDomain(t *testing.T, l *Libvirt, uuid string) {
	t.Helper()
	lc, err := l.connect()
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	d, err := lc.c.LookupDomainByUUIDString(uuid)
	if err != nil {
		t.Fatalf("lookup %s: %v", uuid, err)
	}
	defer func() { _ = d.Free() }()
	if err := d.CoreDump(filepath.Join(t.TempDir(), "core"), libvirt.DUMP_CRASH); err != nil {
		t.Fatalf("crash %s: %v", uuid, err)
	}
}

func TestLibvirtTestDriverConformance(t *testing.T) {
	runConformance(t, newLibvirtHost)
}

func TestLibvirtFactsOfTestHost(t *testing.T) {
	l := openTestHost(t, TestHost{Name: "kvm-7", CPUs: 12, MHz: 3100, MemoryMiB: 4096})
	f, err := l.Facts(context.Background())
	if err != nil {
		t.Fatalf("facts: %v", err)
	}
	if f.Hostname != "kvm-7" || f.CPUs != 12 || f.CPUMHz != 3100 || f.MemoryBytes != 4096<<20 || f.CPUSockets != 1 {
		t.Fatalf("facts: %+v", f)
	}
	if f.Arch != "x86_64" || !strings.HasPrefix(f.HypervisorVersion, "test ") || f.LibvirtVersion == "" {
		t.Fatalf("facts versions: %+v", f)
	}
}

// Two host files are two hosts: a domain started on one is not on the
// other, and the same UUID can run on both.
func TestLibvirtTestHostsAreIndependent(t *testing.T) {
	a := openTestHost(t, TestHost{Name: "kvm-a", CPUs: 2, MHz: 2000, MemoryMiB: 2048})
	b := openTestHost(t, TestHost{Name: "kvm-b", CPUs: 4, MHz: 2000, MemoryMiB: 4096})
	ctx := testCtx(t)
	spec := testSpec(1, "")
	if err := a.Start(ctx, spec); err != nil {
		t.Fatalf("start on a: %v", err)
	}
	if _, err := b.Domain(ctx, spec.UUID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("domain on b: want ErrNotFound, got %v", err)
	}
	if list, err := b.Domains(ctx); err != nil || len(list) != 0 {
		t.Fatalf("domains on b: %+v, %v", list, err)
	}
	// Cold hand-over: stop on a, start the same definition on b.
	if err := a.Stop(ctx, spec.UUID); err != nil {
		t.Fatalf("stop on a: %v", err)
	}
	if err := b.Start(ctx, spec); err != nil {
		t.Fatalf("start on b: %v", err)
	}
	waitPower(t, b, spec.UUID, PowerRunning)
	waitPower(t, a, spec.UUID, PowerStopped)
	fa, _ := a.Facts(ctx)
	fb, _ := b.Facts(ctx)
	if fa.Hostname != "kvm-a" || fb.Hostname != "kvm-b" || fa.CPUs != 2 || fb.CPUs != 4 {
		t.Fatalf("facts: a %+v, b %+v", fa, fb)
	}
}

func TestLibvirtTestDriverLimits(t *testing.T) {
	l := openTestHost(t, TestHost{Name: "kvm-1", CPUs: 2, MHz: 2000, MemoryMiB: 2048, PoolPath: "/var/lib/stratus/default"})
	ctx := testCtx(t)
	if err := l.EnsurePool(ctx, "default", "/var/lib/stratus/default"); err != nil {
		t.Fatalf("ensure pre-defined pool: %v", err)
	}
	if err := l.EnsurePool(ctx, "default", "/elsewhere"); err == nil {
		t.Fatal("ensure pool at another path: want error")
	}
	vi, err := l.CreateVolume(ctx, VolumeSpec{Pool: "default", Name: "root.qcow2", SizeBytes: 1 << 30, Format: "qcow2", BackingPath: "/nonexistent/template.qcow2"})
	if err != nil {
		t.Fatalf("create volume with backing: %v", err)
	}
	if vi.Path != "/var/lib/stratus/default/root.qcow2" {
		t.Fatalf("volume path: %+v", vi)
	}
	err = l.ResizeVolume(ctx, "default", "root.qcow2", 2<<30)
	if !errors.Is(err, errTestResize) {
		t.Fatalf("resize on test driver: want errTestResize, got %v", err)
	}
}

func TestDomainXML(t *testing.T) {
	spec := testSpec(1, "/pool/root.qcow2")
	spec.BootISO = "/iso/install.iso"
	spec.NICs = append(spec.NICs, NICSpec{MAC: "52:54:00:aa:bb:cc", Bridge: "br0"})
	spec.Metadata = `{"a":"<b>&"}`
	x, err := domainXML(spec, "kvm")
	if err != nil {
		t.Fatalf("domain xml: %v", err)
	}
	for _, want := range []string{
		`type="kvm"`, `<source file="/pool/root.qcow2">`, `type="qcow2"`, `bus="virtio"`,
		`<source bridge="br0">`, `<source network="default">`, `device="cdrom"`,
		`xmlns:stratus="` + MetadataNS + `"`, `{&#34;a&#34;:&#34;&lt;b&gt;&amp;&#34;}`,
		`<shares>500</shares>`, `<serial>root</serial>`,
	} {
		if !strings.Contains(x, want) {
			t.Errorf("domain xml lacks %s:\n%s", want, x)
		}
	}
	if x, _ := domainXML(spec, "test"); !strings.Contains(x, `type="test"`) {
		t.Errorf("test driver xml: %s", x)
	}
	spec.Name = "nope"
	if _, err := domainXML(spec, "kvm"); err == nil {
		t.Error("unprefixed name: want error")
	}
}

func TestLibvirtKeepsMetadata(t *testing.T) {
	l := openTestHost(t, TestHost{Name: "kvm-1", CPUs: 2, MHz: 2000, MemoryMiB: 2048})
	ctx := testCtx(t)
	spec := testSpec(1, "/pool/root.qcow2")
	spec.Metadata = `{"instance":"i-2-10-VM","account":"<admin>"}`
	if err := l.Start(ctx, spec); err != nil {
		t.Fatalf("start: %v", err)
	}
	lc, err := l.connect()
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	d, err := lc.c.LookupDomainByUUIDString(spec.UUID)
	if err != nil {
		t.Fatalf("lookup: %v", err)
	}
	defer func() { _ = d.Free() }()
	got, err := d.GetMetadata(libvirt.DOMAIN_METADATA_ELEMENT, MetadataNS, libvirt.DOMAIN_AFFECT_CONFIG)
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	var el struct {
		Text string `xml:",chardata"`
	}
	if err := xml.Unmarshal([]byte(got), &el); err != nil || el.Text != spec.Metadata {
		t.Fatalf("metadata: %q (%v), want text %q", got, err, spec.Metadata)
	}
}

// A dropped connection is reopened on the next call, with the event
// callback registered again. (A test:/// reconnect is a fresh host.)
func TestLibvirtReconnects(t *testing.T) {
	l := openTestHost(t, TestHost{Name: "kvm-1", CPUs: 2, MHz: 2000, MemoryMiB: 2048})
	ctx := testCtx(t)
	ch, err := l.Events(ctx)
	if err != nil {
		t.Fatalf("events: %v", err)
	}
	lc, err := l.connect()
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	err = l.fail(lc, "probe", libvirt.Error{Code: libvirt.ERR_INVALID_CONN, Domain: libvirt.FROM_RPC, Message: "broken pipe"})
	if !errors.Is(err, ErrConnection) {
		t.Fatalf("classify: want ErrConnection, got %v", err)
	}
	spec := testSpec(1, "")
	if err := l.Start(ctx, spec); err != nil {
		t.Fatalf("start after reconnect: %v", err)
	}
	waitEvent(t, ch, spec.UUID, EventStarted)
	if lc2, _ := l.connect(); lc2 == lc {
		t.Fatal("connection was not replaced")
	}
}

func TestLibvirtErrorClassification(t *testing.T) {
	l := &Libvirt{uri: "test:///x", logger: hclog.NewNullLogger()}
	cases := []struct {
		err  libvirt.Error
		want error
		dead bool
	}{
		{libvirt.Error{Code: libvirt.ERR_NO_DOMAIN}, ErrNotFound, false},
		{libvirt.Error{Code: libvirt.ERR_NO_STORAGE_VOL}, ErrNotFound, false},
		{libvirt.Error{Code: libvirt.ERR_NO_STORAGE_POOL}, ErrNotFound, false},
		{libvirt.Error{Code: libvirt.ERR_NO_CONNECT}, ErrConnection, true},
		{libvirt.Error{Code: libvirt.ERR_SYSTEM_ERROR, Domain: libvirt.FROM_RPC}, ErrConnection, true},
		{libvirt.Error{Code: libvirt.ERR_OPERATION_INVALID, Domain: libvirt.FROM_DOMAIN}, nil, false},
	}
	for _, c := range cases {
		lc := &lvConn{}
		err := l.fail(lc, "op", c.err)
		if c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%v: want %v, got %v", c.err, c.want, err)
		}
		if c.want == nil && (errors.Is(err, ErrNotFound) || errors.Is(err, ErrConnection)) {
			t.Errorf("%v: classified as %v", c.err, err)
		}
		var lerr libvirt.Error
		if !errors.As(err, &lerr) || lerr.Code != c.err.Code {
			t.Errorf("%v: libvirt error not kept in %v", c.err, err)
		}
		if lc.dead.Load() != c.dead {
			t.Errorf("%v: dead %v, want %v", c.err, lc.dead.Load(), c.dead)
		}
	}
}

func TestStopReasonOf(t *testing.T) {
	cases := []struct {
		state  libvirt.DomainState
		reason int
		want   StopReason
	}{
		{libvirt.DOMAIN_RUNNING, int(libvirt.DOMAIN_RUNNING_BOOTED), ""},
		{libvirt.DOMAIN_PAUSED, int(libvirt.DOMAIN_PAUSED_IOERROR), ""},
		{libvirt.DOMAIN_SHUTDOWN, int(libvirt.DOMAIN_SHUTDOWN_USER), ""},
		{libvirt.DOMAIN_CRASHED, int(libvirt.DOMAIN_CRASHED_PANICKED), StopCrashed},
		{libvirt.DOMAIN_SHUTOFF, int(libvirt.DOMAIN_SHUTOFF_CRASHED), StopCrashed},
		{libvirt.DOMAIN_SHUTOFF, int(libvirt.DOMAIN_SHUTOFF_FAILED), StopCrashed},
		{libvirt.DOMAIN_SHUTOFF, int(libvirt.DOMAIN_SHUTOFF_SHUTDOWN), StopGuestShutdown},
		{libvirt.DOMAIN_SHUTOFF, int(libvirt.DOMAIN_SHUTOFF_DESTROYED), StopDestroyed},
		{libvirt.DOMAIN_SHUTOFF, int(libvirt.DOMAIN_SHUTOFF_DAEMON), StopDestroyed},
		{libvirt.DOMAIN_SHUTOFF, int(libvirt.DOMAIN_SHUTOFF_SAVED), StopSaved},
		{libvirt.DOMAIN_SHUTOFF, int(libvirt.DOMAIN_SHUTOFF_MIGRATED), StopMigrated},
		{libvirt.DOMAIN_SHUTOFF, int(libvirt.DOMAIN_SHUTOFF_UNKNOWN), StopUnknown},
		{libvirt.DOMAIN_SHUTOFF, int(libvirt.DOMAIN_SHUTOFF_FROM_SNAPSHOT), StopUnknown},
	}
	for _, c := range cases {
		if got := stopReasonOf(c.state, c.reason); got != c.want {
			t.Errorf("state %d reason %d: got %q, want %q", c.state, c.reason, got, c.want)
		}
		if (c.want != "") != (powerOf(c.state) == PowerStopped) {
			t.Errorf("state %d: stop reason %q with power %s", c.state, c.want, powerOf(c.state))
		}
	}
}

// The test driver's own reasons: never started is UNKNOWN, and a managed
// save is SAVED (the conformance suite covers destroy, shutdown, crash).
func TestLibvirtTestDriverStopReasons(t *testing.T) {
	l := openTestHost(t, TestHost{Name: "kvm-1", CPUs: 2, MHz: 2000, MemoryMiB: 2048})
	ctx := testCtx(t)
	spec := testSpec(1, "")
	lc, err := l.connect()
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	x, err := domainXML(spec, "test")
	if err != nil {
		t.Fatalf("domain xml: %v", err)
	}
	d, err := lc.c.DomainDefineXML(x)
	if err != nil {
		t.Fatalf("define: %v", err)
	}
	defer func() { _ = d.Free() }()
	if st, err := l.Domain(ctx, spec.UUID); err != nil || st.Power != PowerStopped || st.StopReason != StopUnknown {
		t.Fatalf("never started: %+v, %v", st, err)
	}
	if err := l.Start(ctx, spec); err != nil {
		t.Fatalf("start: %v", err)
	}
	if err := d.ManagedSave(0); err != nil {
		t.Fatalf("managed save: %v", err)
	}
	if st, err := l.Domain(ctx, spec.UUID); err != nil || st.Power != PowerStopped || st.StopReason != StopSaved {
		t.Fatalf("saved: %+v, %v", st, err)
	}
}
