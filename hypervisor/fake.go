package hypervisor

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"
)

// Fake is an in-memory Driver for unit tests. It keeps domains with their
// power states and volumes in pools, delivers lifecycle events, and has
// helpers that simulate what a guest does on its own (Crash,
// GuestShutdown), make the next call of a method fail (FailNext) and hold
// events back (HoldEvents). It is safe for concurrent use.
type Fake struct {
	mu       sync.Mutex
	facts    HostFacts
	uri      string
	domains  map[string]*fakeDomain
	pools    map[string]*fakePool
	failures map[string][]error
	events   *eventHub
	closed   bool
	// hold: events are kept in held instead of being delivered, until
	// ReleaseEvents.
	hold bool
	held []DomainEvent
}

type fakeDomain struct {
	spec  DomainSpec
	power PowerState
	// why a Stopped domain stopped, as libvirt's GetState reason
	stopReason StopReason
}

// setPower changes d's power and, when it stops, records why.
func (d *fakeDomain) setPower(p PowerState, why StopReason) {
	d.power = p
	d.stopReason = ""
	if p == PowerStopped {
		d.stopReason = why
	}
}

// status is d as Domain and Domains report it.
func (d *fakeDomain) status() DomainStatus {
	st := DomainStatus{UUID: d.spec.UUID, Name: d.spec.Name, Power: d.power}
	if d.power == PowerStopped {
		st.StopReason = d.stopReason
		if st.StopReason == "" {
			st.StopReason = StopUnknown
		}
	}
	return st
}

type fakePool struct {
	path    string
	volumes map[string]VolumeInfo
}

// NewFake returns an empty fake host reporting facts. Its URI is
// "fake:///" plus the hostname.
func NewFake(facts HostFacts) *Fake {
	return &Fake{
		facts:    facts,
		uri:      "fake:///" + facts.Hostname,
		domains:  make(map[string]*fakeDomain),
		pools:    make(map[string]*fakePool),
		failures: make(map[string][]error),
		events:   newEventHub(),
	}
}

// FailNext makes the next call of method (a Driver method name such as
// "Start" or "CreateVolume") return err instead of doing anything. Calls
// queue up: FailNext twice fails the next two calls.
func (f *Fake) FailNext(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures[method] = append(f.failures[method], err)
}

// Crash kills a running domain as if its guest crashed: it becomes
// Stopped with StopCrashed and subscribers get EventCrashed.
func (f *Fake) Crash(uuid string) error {
	return f.guestStop(uuid, EventCrashed, StopCrashed)
}

// GuestShutdown powers a running domain off as if its guest shut itself
// down: it becomes Stopped with StopGuestShutdown and subscribers get
// EventShutdown.
func (f *Fake) GuestShutdown(uuid string) error {
	return f.guestStop(uuid, EventShutdown, StopGuestShutdown)
}

// HoldEvents keeps every lifecycle event from now on from subscribers
// until ReleaseEvents, as a slow libvirt event loop would: tests use it to
// make the agent see a change in a pass before the event.
func (f *Fake) HoldEvents() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hold = true
}

// ReleaseEvents delivers the events held back since HoldEvents, in order,
// and delivers later events at once again.
func (f *Fake) ReleaseEvents() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hold = false
	for _, ev := range f.held {
		f.events.publish(ev)
	}
	f.held = nil
}

func (f *Fake) guestStop(uuid string, kind EventKind, why StopReason) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.managed(uuid)
	if !ok {
		return fmt.Errorf("fake domain %s: %w", uuid, ErrNotFound)
	}
	if d.power == PowerStopped {
		return nil
	}
	d.setPower(PowerStopped, why)
	f.emit(d, kind)
	return nil
}

// DefineForeign adds a stopped domain that Stratus does not manage (its
// name need not start with DomainPrefix), as an operator would. Driver
// methods never list or touch it unless its name has the prefix.
func (f *Fake) DefineForeign(uuid, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.domains[uuid] = &fakeDomain{spec: DomainSpec{UUID: uuid, Name: name}, power: PowerStopped, stopReason: StopUnknown}
}

// managed returns a domain Stratus manages. Callers hold f.mu.
func (f *Fake) managed(uuid string) (*fakeDomain, bool) {
	d, ok := f.domains[uuid]
	if !ok || !strings.HasPrefix(d.spec.Name, DomainPrefix) {
		return nil, false
	}
	return d, true
}

// Spec returns the spec a domain was last started with, so tests can
// check what the agent asked for.
func (f *Fake) Spec(uuid string) (DomainSpec, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.managed(uuid)
	if !ok {
		return DomainSpec{}, false
	}
	return d.spec, true
}

// SetPower forces a domain's power state without emitting an event, for
// tests that need a state the Driver methods cannot produce (Paused). A
// domain it stops gets StopUnknown: nobody said why.
func (f *Fake) SetPower(uuid string, p PowerState) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.managed(uuid)
	if !ok {
		return fmt.Errorf("fake domain %s: %w", uuid, ErrNotFound)
	}
	if p != PowerStopped || d.power != PowerStopped {
		d.setPower(p, StopUnknown)
	}
	return nil
}

// takeFailure pops a queued failure of method. Callers hold f.mu.
func (f *Fake) takeFailure(method string) error {
	if f.closed {
		return fmt.Errorf("fake %s: closed: %w", strings.ToLower(method), ErrConnection)
	}
	q := f.failures[method]
	if len(q) == 0 {
		return nil
	}
	err := q[0]
	if len(q) == 1 {
		delete(f.failures, method)
	} else {
		f.failures[method] = q[1:]
	}
	return err
}

// emit publishes an event about d, or keeps it while events are held.
// Callers hold f.mu.
func (f *Fake) emit(d *fakeDomain, kind EventKind) {
	ev := DomainEvent{UUID: d.spec.UUID, Name: d.spec.Name, Kind: kind, Power: d.power}
	if f.hold {
		f.held = append(f.held, ev)
		return
	}
	f.events.publish(ev)
}

// Facts implements Driver.
func (f *Fake) Facts(ctx context.Context) (HostFacts, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeFailure("Facts"); err != nil {
		return HostFacts{}, err
	}
	return f.facts, nil
}

// Domains implements Driver.
func (f *Fake) Domains(ctx context.Context) ([]DomainStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeFailure("Domains"); err != nil {
		return nil, err
	}
	out := make([]DomainStatus, 0, len(f.domains))
	for _, d := range f.domains {
		if strings.HasPrefix(d.spec.Name, DomainPrefix) {
			out = append(out, d.status())
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Domain implements Driver.
func (f *Fake) Domain(ctx context.Context, uuid string) (DomainStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeFailure("Domain"); err != nil {
		return DomainStatus{}, err
	}
	d, ok := f.managed(uuid)
	if !ok {
		return DomainStatus{}, fmt.Errorf("fake domain %s: %w", uuid, ErrNotFound)
	}
	return d.status(), nil
}

// Start implements Driver.
func (f *Fake) Start(ctx context.Context, spec DomainSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeFailure("Start"); err != nil {
		return err
	}
	if spec.UUID == "" || spec.Name == "" {
		return fmt.Errorf("fake start: uuid and name are required")
	}
	if !strings.HasPrefix(spec.Name, DomainPrefix) {
		return fmt.Errorf("fake start %s: name must start with %q", spec.Name, DomainPrefix)
	}
	for _, o := range f.domains {
		if o.spec.Name == spec.Name && o.spec.UUID != spec.UUID {
			return fmt.Errorf("fake start %s: name taken by domain %s", spec.Name, o.spec.UUID)
		}
	}
	d, ok := f.domains[spec.UUID]
	if ok && !strings.HasPrefix(d.spec.Name, DomainPrefix) {
		return fmt.Errorf("fake start %s: uuid taken by unmanaged domain %s", spec.Name, d.spec.Name)
	}
	if !ok {
		d = &fakeDomain{spec: spec, power: PowerStopped, stopReason: StopUnknown}
		f.domains[spec.UUID] = d
		f.emit(d, EventDefined)
	}
	d.spec = spec
	if d.power == PowerRunning {
		return nil
	}
	d.setPower(PowerRunning, "")
	f.emit(d, EventStarted)
	return nil
}

// Shutdown implements Driver. The fake guest obeys at once: the domain
// becomes Stopped with StopGuestShutdown (as libvirt records it) and
// subscribers get EventShutdown.
func (f *Fake) Shutdown(ctx context.Context, uuid string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeFailure("Shutdown"); err != nil {
		return err
	}
	d, ok := f.managed(uuid)
	if !ok {
		return fmt.Errorf("fake shutdown %s: %w", uuid, ErrNotFound)
	}
	if d.power == PowerStopped {
		return nil
	}
	d.setPower(PowerStopped, StopGuestShutdown)
	f.emit(d, EventShutdown)
	return nil
}

// Stop implements Driver. The domain stops with StopDestroyed.
func (f *Fake) Stop(ctx context.Context, uuid string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeFailure("Stop"); err != nil {
		return err
	}
	d, ok := f.managed(uuid)
	if !ok {
		return fmt.Errorf("fake stop %s: %w", uuid, ErrNotFound)
	}
	if d.power == PowerStopped {
		return nil
	}
	d.setPower(PowerStopped, StopDestroyed)
	f.emit(d, EventStopped)
	return nil
}

// Reboot implements Driver. The domain stays Running; no event is sent,
// as libvirt sends no lifecycle event for a guest reboot either.
func (f *Fake) Reboot(ctx context.Context, uuid string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeFailure("Reboot"); err != nil {
		return err
	}
	d, ok := f.managed(uuid)
	if !ok {
		return fmt.Errorf("fake reboot %s: %w", uuid, ErrNotFound)
	}
	if d.power != PowerRunning {
		return fmt.Errorf("fake reboot %s: domain is %s", uuid, d.power)
	}
	return nil
}

// Destroy implements Driver.
func (f *Fake) Destroy(ctx context.Context, uuid string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeFailure("Destroy"); err != nil {
		return err
	}
	d, ok := f.managed(uuid)
	if !ok {
		return nil
	}
	if d.power != PowerStopped {
		d.setPower(PowerStopped, StopDestroyed)
		f.emit(d, EventStopped)
	}
	delete(f.domains, uuid)
	f.emit(d, EventRemoved)
	return nil
}

// Migrate implements Driver: the fake cannot live-migrate.
func (f *Fake) Migrate(ctx context.Context, uuid, destURI string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeFailure("Migrate"); err != nil {
		return err
	}
	if _, ok := f.managed(uuid); !ok {
		return fmt.Errorf("fake migrate %s: %w", uuid, ErrNotFound)
	}
	return fmt.Errorf("fake migrate %s: %w", uuid, ErrMigrationUnsupported)
}

// CreateVolume implements Driver. The pool must exist (EnsurePool).
func (f *Fake) CreateVolume(ctx context.Context, v VolumeSpec) (VolumeInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeFailure("CreateVolume"); err != nil {
		return VolumeInfo{}, err
	}
	p, ok := f.pools[v.Pool]
	if !ok {
		return VolumeInfo{}, fmt.Errorf("fake pool %s: %w", v.Pool, ErrNotFound)
	}
	if vi, ok := p.volumes[v.Name]; ok {
		return vi, nil
	}
	vi := VolumeInfo{Pool: v.Pool, Name: v.Name, Path: path.Join(p.path, v.Name), SizeBytes: v.SizeBytes}
	p.volumes[v.Name] = vi
	return vi, nil
}

// ResizeVolume implements Driver. Shrinking is refused.
func (f *Fake) ResizeVolume(ctx context.Context, pool, name string, sizeBytes int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeFailure("ResizeVolume"); err != nil {
		return err
	}
	p, ok := f.pools[pool]
	if !ok {
		return fmt.Errorf("fake pool %s: %w", pool, ErrNotFound)
	}
	vi, ok := p.volumes[name]
	if !ok {
		return fmt.Errorf("fake volume %s/%s: %w", pool, name, ErrNotFound)
	}
	if sizeBytes < vi.SizeBytes {
		return fmt.Errorf("fake resize %s/%s: cannot shrink from %d to %d bytes", pool, name, vi.SizeBytes, sizeBytes)
	}
	vi.SizeBytes = sizeBytes
	p.volumes[name] = vi
	return nil
}

// DeleteVolume implements Driver.
func (f *Fake) DeleteVolume(ctx context.Context, pool, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeFailure("DeleteVolume"); err != nil {
		return err
	}
	p, ok := f.pools[pool]
	if !ok {
		return fmt.Errorf("fake pool %s: %w", pool, ErrNotFound)
	}
	delete(p.volumes, name)
	return nil
}

// Volumes implements Driver.
func (f *Fake) Volumes(ctx context.Context, pool string) ([]VolumeInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeFailure("Volumes"); err != nil {
		return nil, err
	}
	p, ok := f.pools[pool]
	if !ok {
		return nil, fmt.Errorf("fake pool %s: %w", pool, ErrNotFound)
	}
	out := make([]VolumeInfo, 0, len(p.volumes))
	for _, vi := range p.volumes {
		out = append(out, vi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// EnsurePool implements Driver.
func (f *Fake) EnsurePool(ctx context.Context, name, dir string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeFailure("EnsurePool"); err != nil {
		return err
	}
	if _, ok := f.pools[name]; !ok {
		f.pools[name] = &fakePool{path: dir, volumes: make(map[string]VolumeInfo)}
	}
	return nil
}

// Events implements Driver. Each call gets its own channel; events are
// buffered without bound and the channel closes when ctx ends or the fake
// is closed.
func (f *Fake) Events(ctx context.Context) (<-chan DomainEvent, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeFailure("Events"); err != nil {
		return nil, err
	}
	return f.events.subscribe(ctx), nil
}

// URI implements Driver.
func (f *Fake) URI() string { return f.uri }

// Close implements Driver. Later calls fail with ErrConnection and every
// Events channel closes.
func (f *Fake) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	f.events.close()
	return nil
}

var _ Driver = (*Fake)(nil)
