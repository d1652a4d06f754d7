package hypervisor

import (
	"context"
	"errors"
)

// Driver is everything Stratus asks of a hypervisor, in our own types. The
// libvirt driver implements it for qemu:///system and libvirt's test
// driver; the fake implements it in memory for fast unit tests. A Driver
// is safe for concurrent use and reconnects by itself when its connection
// drops; it never hands out the raw connection.
type Driver interface {
	// Facts describes the host: CPUs, memory, hypervisor version.
	Facts(ctx context.Context) (HostFacts, error)
	// Domains lists every domain Stratus manages on the host (those whose
	// name starts with DomainPrefix), with its power state.
	Domains(ctx context.Context) ([]DomainStatus, error)
	// Domain returns one domain's status, or ErrNotFound.
	Domain(ctx context.Context, uuid string) (DomainStatus, error)

	// Start defines the domain from spec (replacing an older definition of
	// the same UUID) and starts it. Starting a running domain is a no-op.
	Start(ctx context.Context, spec DomainSpec) error
	// Shutdown asks the guest to power off (ACPI); it returns at once.
	Shutdown(ctx context.Context, uuid string) error
	// Stop powers the domain off at once (pulls the plug). Stopping a
	// stopped domain is a no-op.
	Stop(ctx context.Context, uuid string) error
	// Reboot restarts the guest.
	Reboot(ctx context.Context, uuid string) error
	// Destroy powers the domain off if it runs and removes its definition.
	// Destroying a missing domain is a no-op.
	Destroy(ctx context.Context, uuid string) error
	// Migrate live-migrates a running domain to the host whose libvirt URI
	// is destURI. Drivers that cannot (libvirt's test driver) return
	// ErrMigrationUnsupported and the agent hands the VM over cold instead.
	Migrate(ctx context.Context, uuid, destURI string) error

	// CreateVolume makes a volume in a storage pool of the host, optionally
	// as a copy of a template's image (BackingPath). Creating an existing
	// volume is a no-op.
	CreateVolume(ctx context.Context, v VolumeSpec) (VolumeInfo, error)
	// ResizeVolume grows a volume to sizeBytes.
	ResizeVolume(ctx context.Context, pool, name string, sizeBytes int64) error
	// DeleteVolume removes a volume; a missing one is a no-op.
	DeleteVolume(ctx context.Context, pool, name string) error
	// Volumes lists the volumes of a pool.
	Volumes(ctx context.Context, pool string) ([]VolumeInfo, error)
	// EnsurePool makes sure a directory storage pool of that name exists
	// and is active, defining it at path when it is missing.
	EnsurePool(ctx context.Context, name, path string) error

	// Events delivers domain lifecycle changes (started, stopped, crashed,
	// shut down from inside) until ctx ends. The channel closes then.
	Events(ctx context.Context) (<-chan DomainEvent, error)

	// URI is the libvirt URI other hosts use to reach this one.
	URI() string
	// Close releases the connection.
	Close() error
}

// DomainPrefix starts the libvirt name of every domain Stratus manages;
// domains without it are the operator's and are never touched.
const DomainPrefix = "stratus-"

// PowerState is a domain's observed power state.
type PowerState string

// Power states.
const (
	PowerRunning  PowerState = "Running"
	PowerStopped  PowerState = "Stopped" // defined, not running (shut off, crashed)
	PowerPaused   PowerState = "Paused"
	PowerShutdown PowerState = "ShuttingDown"
	PowerUnknown  PowerState = "Unknown"
)

// HostFacts is what a host reports about itself.
type HostFacts struct {
	Hostname          string `json:"hostname"`
	CPUs              int    `json:"cpus"`
	CPUSockets        int    `json:"cpu_sockets"`
	CPUMHz            int64  `json:"cpu_mhz"`      // per core
	MemoryBytes       int64  `json:"memory_bytes"` // physical
	HypervisorVersion string `json:"hypervisor_version"`
	LibvirtVersion    string `json:"libvirt_version"`
	Arch              string `json:"arch"`
}

// DomainSpec is what the agent asks the hypervisor to run.
type DomainSpec struct {
	UUID        string     `json:"uuid"`
	Name        string     `json:"name"` // libvirt name: DomainPrefix + the VM's instance name
	VCPUs       int        `json:"vcpus"`
	CPUMHz      int64      `json:"cpu_mhz,omitempty"` // for CPU shares/quota
	MemoryBytes int64      `json:"memory_bytes"`
	Disks       []DiskSpec `json:"disks,omitempty"`
	NICs        []NICSpec  `json:"nics,omitempty"`
	BootISO     string     `json:"boot_iso,omitempty"` // path of an ISO to boot from
	Metadata    string     `json:"metadata,omitempty"` // opaque text kept in the domain XML
}

// DiskSpec is one disk of a domain.
type DiskSpec struct {
	Path   string `json:"path"`   // file or block device on the host
	Format string `json:"format"` // qcow2 or raw
	Device string `json:"device"` // vda, vdb, ...
	Serial string `json:"serial,omitempty"`
}

// NICSpec is one network interface of a domain.
type NICSpec struct {
	MAC    string `json:"mac"`
	Bridge string `json:"bridge,omitempty"` // host bridge; empty for the default network
}

// StopReason is why a domain is shut off, as the hypervisor recorded it
// (libvirt: the reason virDomainGetState gives with VIR_DOMAIN_SHUTOFF).
// Unlike a lifecycle event it can be read at any time after the stop, so
// it does not depend on whether the event has been seen yet.
type StopReason string

// Stop reasons.
const (
	StopCrashed       StopReason = "crashed"        // the guest or its process died, or it failed to start
	StopGuestShutdown StopReason = "guest-shutdown" // the guest powered itself off (also after Shutdown's ACPI request)
	StopDestroyed     StopReason = "destroyed"      // powered off from outside the guest: Stop, Destroy, virsh destroy
	StopSaved         StopReason = "saved"          // its memory was saved to disk (managed save)
	StopMigrated      StopReason = "migrated"       // it migrated to another host
	StopUnknown       StopReason = "unknown"        // never started, or the hypervisor does not say
)

// DomainStatus is a domain as the hypervisor sees it.
type DomainStatus struct {
	UUID  string     `json:"uuid"`
	Name  string     `json:"name"`
	Power PowerState `json:"power"`
	// StopReason says why a Stopped domain is shut off; it is empty
	// unless Power is PowerStopped.
	StopReason StopReason `json:"stop_reason,omitempty"`
}

// VolumeSpec describes a volume to create.
type VolumeSpec struct {
	Pool        string `json:"pool"` // libvirt pool name
	Name        string `json:"name"`
	SizeBytes   int64  `json:"size_bytes"`
	Format      string `json:"format"`                 // qcow2 or raw
	BackingPath string `json:"backing_path,omitempty"` // template image to copy
}

// VolumeInfo is a volume as the hypervisor sees it.
type VolumeInfo struct {
	Pool      string `json:"pool"`
	Name      string `json:"name"`
	Path      string `json:"path"`
	SizeBytes int64  `json:"size_bytes"`
}

// EventKind names a lifecycle change.
type EventKind string

// Lifecycle changes.
const (
	EventStarted  EventKind = "started"
	EventStopped  EventKind = "stopped"  // powered off by Stratus or the guest
	EventCrashed  EventKind = "crashed"  // the guest or its process died
	EventShutdown EventKind = "shutdown" // the guest shut itself down
	EventDefined  EventKind = "defined"
	EventRemoved  EventKind = "removed"
)

// DomainEvent is one lifecycle change of a managed domain.
type DomainEvent struct {
	UUID  string     `json:"uuid"`
	Name  string     `json:"name"`
	Kind  EventKind  `json:"kind"`
	Power PowerState `json:"power"`
}

// Sentinel errors of drivers; match them with errors.Is.
var (
	// ErrNotFound means the domain, volume or pool does not exist.
	ErrNotFound = errors.New("not found on this host")
	// ErrMigrationUnsupported means the driver cannot live-migrate.
	ErrMigrationUnsupported = errors.New("live migration is not supported by this hypervisor driver")
	// ErrConnection means the hypervisor could not be reached; callers retry.
	ErrConnection = errors.New("hypervisor connection lost")
)
