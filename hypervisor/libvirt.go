package hypervisor

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"
)

// Libvirt is the Driver for a libvirt host: qemu:///system (or a remote
// qemu+tcp:// URI) in production, libvirt's test driver
// (test:///abs/path/host.xml, see WriteTestHost) in tests. The same code
// serves both; the few differences (domain type, migration, volume
// resize and copy) are switched on the connection's driver type.
//
// It keeps one connection. A call that fails with a connection error
// returns ErrConnection and drops the connection; the next call opens a
// new one and registers the event callbacks again. Lifecycle events that
// happen while disconnected are lost: subscribers should reconcile with
// Domains after ErrConnection.
type Libvirt struct {
	uri    string
	logger hclog.Logger
	events *eventHub

	mu       sync.Mutex
	conn     *lvConn // nil when not connected
	closed   bool
	test     bool   // libvirt's test driver
	domType  string // <domain type>: test, kvm, or qemu (TCG) without /dev/kvm
	hostname string // test driver: the simulated host's name
}

// lvConn is one open connection and the callbacks registered on it. dead
// is set from libvirt's event loop (close callback) without taking
// Libvirt.mu, so a callback never waits for a caller holding it.
type lvConn struct {
	c     *libvirt.Connect
	dead  atomic.Bool
	cbID  int
	hasCB bool
}

var (
	eventLoopOnce sync.Once
	eventLoopErr  error
)

// startEventLoop registers libvirt's default event loop implementation
// (it must happen before the first connection opens, once per process)
// and runs it on a goroutine for the life of the process.
func startEventLoop() error {
	eventLoopOnce.Do(func() {
		if err := libvirt.EventRegisterDefaultImpl(); err != nil {
			eventLoopErr = fmt.Errorf("register libvirt event loop: %w", err)
			return
		}
		go func() {
			for {
				if err := libvirt.EventRunDefaultImpl(); err != nil {
					hclog.Default().Named("libvirt").Error("libvirt event loop iteration failed", "error", err)
					time.Sleep(100 * time.Millisecond) // no hot loop
				}
			}
		}()
	})
	return eventLoopErr
}

// Open connects to the libvirt host at uri. It fails when the first
// connection cannot be opened; later connection losses are repaired on
// the next call.
func Open(uri string, logger hclog.Logger) (*Libvirt, error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	if err := startEventLoop(); err != nil {
		return nil, err
	}
	l := &Libvirt{uri: uri, logger: logger.Named("libvirt"), events: newEventHub()}
	if _, err := l.connect(); err != nil {
		return nil, err
	}
	return l, nil
}

// connect returns the live connection, opening a new one if there is
// none or the last one died.
func (l *Libvirt) connect() (*lvConn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, fmt.Errorf("libvirt %s: driver closed: %w", l.uri, ErrConnection)
	}
	if l.conn != nil && !l.conn.dead.Load() {
		return l.conn, nil
	}
	if l.conn != nil {
		l.logger.Warn("libvirt connection lost, reconnecting", "uri", l.uri)
		l.teardown(l.conn)
		l.conn = nil
	}
	c, err := libvirt.NewConnect(l.uri)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w: %w", l.uri, ErrConnection, err)
	}
	lc := &lvConn{c: c}
	typ, err := c.GetType()
	if err != nil {
		_, _ = c.Close()
		return nil, fmt.Errorf("connect %s: driver type: %w: %w", l.uri, ErrConnection, err)
	}
	l.test = strings.EqualFold(typ, "TEST")
	if l.test {
		l.hostname = testHostName(l.uri)
		l.domType = "test"
	} else {
		l.domType = l.qemuDomainType(c)
		if err := c.SetKeepAlive(5, 3); err != nil {
			// Local qemu:///system has no keepalive; remote URIs do.
			l.logger.Debug("libvirt keepalive not enabled", "uri", l.uri, "error", err)
		}
	}
	if err := c.RegisterCloseCallback(func(*libvirt.Connect, libvirt.ConnectCloseReason) {
		lc.dead.Store(true)
	}); err != nil {
		l.logger.Debug("libvirt close callback not registered", "uri", l.uri, "error", err)
	}
	id, err := c.DomainEventLifecycleRegister(nil, l.onLifecycle)
	if err != nil {
		l.teardown(lc)
		return nil, fmt.Errorf("connect %s: register lifecycle events: %w", l.uri, err)
	}
	lc.cbID, lc.hasCB = id, true
	l.conn = lc
	l.logger.Debug("libvirt connected", "uri", l.uri, "driver", typ)
	return lc, nil
}

// qemuDomainType is "kvm" when the host's capabilities offer KVM for
// x86_64 guests, else "qemu" (TCG emulation, for hosts without a usable
// /dev/kvm such as nested test machines).
func (l *Libvirt) qemuDomainType(c *libvirt.Connect) string {
	raw, err := c.GetCapabilities()
	if err != nil {
		l.logger.Warn("libvirt capabilities unreadable, assuming kvm", "uri", l.uri, "error", err)
		return "kvm"
	}
	var caps libvirtxml.Caps
	if err := caps.Unmarshal(raw); err != nil {
		l.logger.Warn("libvirt capabilities unparsable, assuming kvm", "uri", l.uri, "error", err)
		return "kvm"
	}
	for _, g := range caps.Guests {
		if g.OSType != "hvm" || g.Arch.Name != "x86_64" {
			continue
		}
		for _, d := range g.Arch.Domains {
			if d.Type == "kvm" {
				return "kvm"
			}
		}
	}
	l.logger.Warn("kvm not offered by this host, domains run under qemu emulation", "uri", l.uri)
	return "qemu"
}

// teardown deregisters lc's callbacks and closes it, ignoring errors: the
// connection is usually dead already.
func (l *Libvirt) teardown(lc *lvConn) {
	if lc.hasCB {
		_ = lc.c.DomainEventDeregister(lc.cbID)
	}
	_ = lc.c.UnregisterCloseCallback()
	_, _ = lc.c.Close()
}

// testHostName is the simulated host's name for a test:///path URI.
func testHostName(uri string) string {
	u, err := url.Parse(uri)
	if err != nil || u.Path == "" || u.Path == "/default" {
		return "test-default"
	}
	return readTestHostName(u.Path)
}

// isTest reports whether the connection is libvirt's test driver.
func (l *Libvirt) isTest() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.test
}

// domainType is the <domain type> for this host's domains.
func (l *Libvirt) domainType() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.domType
}

// fail wraps a libvirt error of op with our sentinels: not-found codes
// become ErrNotFound; connection errors become ErrConnection and mark lc
// dead so the next call reconnects.
func (l *Libvirt) fail(lc *lvConn, op string, err error) error {
	var lerr libvirt.Error
	if !errors.As(err, &lerr) {
		return fmt.Errorf("%s: %w", op, err)
	}
	switch {
	case isNotFound(lerr):
		return fmt.Errorf("%s: %w: %w", op, ErrNotFound, err)
	case isConnectionError(lerr):
		lc.dead.Store(true)
		l.logger.Warn("libvirt connection error", "uri", l.uri, "op", op, "error", err)
		return fmt.Errorf("%s: %w: %w", op, ErrConnection, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

func isNotFound(e libvirt.Error) bool {
	switch e.Code {
	case libvirt.ERR_NO_DOMAIN, libvirt.ERR_NO_STORAGE_VOL, libvirt.ERR_NO_STORAGE_POOL:
		return true
	}
	return false
}

func isConnectionError(e libvirt.Error) bool {
	switch e.Code {
	case libvirt.ERR_NO_CONNECT, libvirt.ERR_INVALID_CONN, libvirt.ERR_RPC, libvirt.ERR_AUTH_FAILED:
		return true
	case libvirt.ERR_SYSTEM_ERROR:
		// Socket errors of remote connections.
		return e.Domain == libvirt.FROM_RPC || e.Domain == libvirt.FROM_REMOTE
	}
	return e.Domain == libvirt.FROM_RPC && e.Code == libvirt.ERR_INTERNAL_ERROR
}

// hasCode reports whether err is a libvirt error with one of codes.
func hasCode(err error, codes ...libvirt.ErrorNumber) bool {
	var lerr libvirt.Error
	if !errors.As(err, &lerr) {
		return false
	}
	for _, c := range codes {
		if lerr.Code == c {
			return true
		}
	}
	return false
}

// Facts implements Driver.
func (l *Libvirt) Facts(ctx context.Context) (HostFacts, error) {
	if err := ctx.Err(); err != nil {
		return HostFacts{}, err
	}
	lc, err := l.connect()
	if err != nil {
		return HostFacts{}, err
	}
	info, err := lc.c.GetNodeInfo()
	if err != nil {
		return HostFacts{}, l.fail(lc, "node info", err)
	}
	hv, err := lc.c.GetVersion()
	if err != nil {
		return HostFacts{}, l.fail(lc, "hypervisor version", err)
	}
	lib, err := lc.c.GetLibVersion()
	if err != nil {
		return HostFacts{}, l.fail(lc, "libvirt version", err)
	}
	typ, err := lc.c.GetType()
	if err != nil {
		return HostFacts{}, l.fail(lc, "driver type", err)
	}
	f := HostFacts{
		CPUs:              int(info.Cpus),
		CPUSockets:        int(info.Sockets * info.Nodes),
		CPUMHz:            int64(info.MHz),
		MemoryBytes:       int64(info.Memory) * 1024,
		HypervisorVersion: strings.ToLower(typ) + " " + versionString(hv),
		LibvirtVersion:    versionString(lib),
		Arch:              info.Model,
	}
	if l.isTest() {
		l.mu.Lock()
		f.Hostname = l.hostname
		l.mu.Unlock()
		return f, nil
	}
	if f.Hostname, err = lc.c.GetHostname(); err != nil {
		return HostFacts{}, l.fail(lc, "hostname", err)
	}
	return f, nil
}

// versionString formats libvirt's major*1,000,000+minor*1,000+release.
func versionString(v uint32) string {
	return fmt.Sprintf("%d.%d.%d", v/1000000, v/1000%1000, v%1000)
}

// URI implements Driver. For a local qemu:///system connection it is
// qemu+tcp://<hostname>/system, the form peers migrate to; pass Open the
// URI peers should use (qemu+tls://, qemu+ssh://) to choose otherwise.
func (l *Libvirt) URI() string {
	u, err := url.Parse(l.uri)
	if err != nil || u.Scheme != "qemu" || u.Host != "" {
		return l.uri
	}
	l.mu.Lock()
	lc := l.conn
	l.mu.Unlock()
	if lc == nil {
		return l.uri
	}
	host, err := lc.c.GetHostname()
	if err != nil {
		return l.uri
	}
	return "qemu+tcp://" + host + u.Path
}

// Events implements Driver. Events come from libvirt's domain lifecycle
// callback, which fires on the test driver too (checked by the
// conformance suite), so no polling fallback is needed.
func (l *Libvirt) Events(ctx context.Context) (<-chan DomainEvent, error) {
	if _, err := l.connect(); err != nil {
		return nil, err
	}
	return l.events.subscribe(ctx), nil
}

// onLifecycle turns a libvirt lifecycle event of a managed domain into a
// DomainEvent. It runs on libvirt's event loop goroutine.
func (l *Libvirt) onLifecycle(_ *libvirt.Connect, d *libvirt.Domain, ev *libvirt.DomainEventLifecycle) {
	name, err := d.GetName()
	if err != nil || !strings.HasPrefix(name, DomainPrefix) {
		return
	}
	uuid, err := d.GetUUIDString()
	if err != nil {
		return
	}
	kind, power, ok := lifecycleKind(ev)
	if !ok {
		return
	}
	if kind == EventDefined {
		power = PowerStopped
		if st, _, err := d.GetState(); err == nil {
			power = powerOf(st)
		}
	}
	l.events.publish(DomainEvent{UUID: uuid, Name: name, Kind: kind, Power: power})
}

// lifecycleKind maps a libvirt lifecycle event to ours. Suspend, resume,
// and "guest is shutting down" carry no kind of ours and are dropped. The
// CRASHED event is dropped too: our domains use on_crash=destroy, so a
// crash always ends in STOPPED/CRASHED, which is reported once. Stopping
// because the domain migrated away is dropped: the undefine that follows
// reports EventRemoved.
func lifecycleKind(ev *libvirt.DomainEventLifecycle) (EventKind, PowerState, bool) {
	switch ev.Event {
	case libvirt.DOMAIN_EVENT_STARTED:
		return EventStarted, PowerRunning, true
	case libvirt.DOMAIN_EVENT_DEFINED:
		return EventDefined, PowerUnknown, true
	case libvirt.DOMAIN_EVENT_UNDEFINED:
		return EventRemoved, PowerStopped, true
	case libvirt.DOMAIN_EVENT_STOPPED:
		switch libvirt.DomainEventStoppedDetailType(ev.Detail) {
		case libvirt.DOMAIN_EVENT_STOPPED_SHUTDOWN:
			return EventShutdown, PowerStopped, true
		case libvirt.DOMAIN_EVENT_STOPPED_CRASHED, libvirt.DOMAIN_EVENT_STOPPED_FAILED:
			return EventCrashed, PowerStopped, true
		case libvirt.DOMAIN_EVENT_STOPPED_MIGRATED:
			return "", "", false
		}
		return EventStopped, PowerStopped, true
	}
	return "", "", false
}

// powerOf maps libvirt's domain state to ours.
func powerOf(s libvirt.DomainState) PowerState {
	switch s {
	case libvirt.DOMAIN_RUNNING, libvirt.DOMAIN_BLOCKED:
		return PowerRunning
	case libvirt.DOMAIN_PAUSED, libvirt.DOMAIN_PMSUSPENDED:
		return PowerPaused
	case libvirt.DOMAIN_SHUTDOWN:
		return PowerShutdown
	case libvirt.DOMAIN_SHUTOFF, libvirt.DOMAIN_CRASHED:
		return PowerStopped
	}
	return PowerUnknown
}

// stopReasonOf maps the reason virDomainGetState gives with a state to
// why a stopped domain stopped; it is empty for states powerOf does not
// map to PowerStopped. libvirt's test driver records SHUTDOWN for
// virDomainShutdown, DESTROYED for virDomainDestroy, SAVED for a managed
// save, CRASHED for virDomainCoreDump with VIR_DUMP_CRASH, and UNKNOWN for
// a domain defined and never started.
func stopReasonOf(s libvirt.DomainState, reason int) StopReason {
	switch s {
	case libvirt.DOMAIN_CRASHED:
		return StopCrashed
	case libvirt.DOMAIN_SHUTOFF:
	default:
		return ""
	}
	switch libvirt.DomainShutoffReason(reason) {
	case libvirt.DOMAIN_SHUTOFF_CRASHED, libvirt.DOMAIN_SHUTOFF_FAILED:
		// As lifecycleKind: a qemu that failed is a crash to us.
		return StopCrashed
	case libvirt.DOMAIN_SHUTOFF_SHUTDOWN:
		return StopGuestShutdown
	case libvirt.DOMAIN_SHUTOFF_DESTROYED, libvirt.DOMAIN_SHUTOFF_DAEMON:
		return StopDestroyed
	case libvirt.DOMAIN_SHUTOFF_SAVED:
		return StopSaved
	case libvirt.DOMAIN_SHUTOFF_MIGRATED:
		return StopMigrated
	}
	return StopUnknown
}

// Close implements Driver: it closes the connection and every Events
// channel. Later calls fail with ErrConnection.
func (l *Libvirt) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	l.events.close()
	if l.conn != nil {
		l.teardown(l.conn)
		l.conn = nil
	}
	return nil
}

var _ Driver = (*Libvirt)(nil)
