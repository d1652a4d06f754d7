package hypervisor

import (
	"context"
	"encoding/xml"
	"fmt"
	"sort"
	"strings"

	"libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"
)

// MetadataNS is the namespace of Stratus's element in a domain's
// <metadata>; DomainSpec.Metadata is kept as its text.
const MetadataNS = "https://stratus-cloud.io/xmlns/domain/1"

// domainXML builds the libvirt definition of spec with domain type typ
// ("kvm", "qemu" or "test"): virtio disks and NICs, ACPI so Shutdown
// works; on qemu also CPU shares, VNC and a serial console.
func domainXML(spec DomainSpec, typ string) (string, error) {
	if spec.UUID == "" || spec.Name == "" {
		return "", fmt.Errorf("domain spec: uuid and name are required")
	}
	if !strings.HasPrefix(spec.Name, DomainPrefix) {
		return "", fmt.Errorf("domain spec %s: name must start with %q", spec.Name, DomainPrefix)
	}
	if spec.VCPUs <= 0 || spec.MemoryBytes <= 0 {
		return "", fmt.Errorf("domain spec %s: vcpus and memory are required", spec.Name)
	}
	var meta strings.Builder
	if err := xml.EscapeText(&meta, []byte(spec.Metadata)); err != nil {
		return "", fmt.Errorf("domain spec %s: metadata: %w", spec.Name, err)
	}
	d := &libvirtxml.Domain{
		Type:   typ,
		Name:   spec.Name,
		UUID:   spec.UUID,
		Memory: &libvirtxml.DomainMemory{Value: uint(spec.MemoryBytes / 1024), Unit: "KiB"},
		VCPU:   &libvirtxml.DomainVCPU{Placement: "static", Value: uint(spec.VCPUs)},
		Metadata: &libvirtxml.DomainMetadata{
			XML: `<stratus:instance xmlns:stratus="` + MetadataNS + `">` + meta.String() + `</stratus:instance>`,
		},
		OS: &libvirtxml.DomainOS{
			Type: &libvirtxml.DomainOSType{Type: "hvm", Arch: "x86_64"},
		},
		Features:   &libvirtxml.DomainFeatureList{ACPI: &libvirtxml.DomainFeature{}},
		OnPoweroff: "destroy",
		OnReboot:   "restart",
		OnCrash:    "destroy",
		Devices:    &libvirtxml.DomainDeviceList{},
	}
	if typ != "test" {
		if typ == "kvm" {
			d.CPU = &libvirtxml.DomainCPU{Mode: "host-model"}
		}
		if spec.CPUMHz > 0 {
			// Relative weight: a VM gets CPU time in proportion to
			// the MHz it was sold.
			d.CPUTune = &libvirtxml.DomainCPUTune{
				Shares: &libvirtxml.DomainCPUTuneShares{Value: uint(int64(spec.VCPUs) * spec.CPUMHz)},
			}
		}
		d.Devices.Graphics = []libvirtxml.DomainGraphic{{VNC: &libvirtxml.DomainGraphicVNC{Port: -1, AutoPort: "yes", Listen: "127.0.0.1"}}}
		d.Devices.Serials = []libvirtxml.DomainSerial{{}}
		d.Devices.Consoles = []libvirtxml.DomainConsole{{Target: &libvirtxml.DomainConsoleTarget{Type: "serial"}}}
	}
	for i, disk := range spec.Disks {
		dd, err := diskXML(disk, i)
		if err != nil {
			return "", fmt.Errorf("domain spec %s: %w", spec.Name, err)
		}
		d.Devices.Disks = append(d.Devices.Disks, dd)
	}
	if spec.BootISO != "" {
		d.Devices.Disks = append(d.Devices.Disks, libvirtxml.DomainDisk{
			Device:   "cdrom",
			Driver:   &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "raw"},
			Source:   &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: spec.BootISO}},
			Target:   &libvirtxml.DomainDiskTarget{Dev: "sda", Bus: "sata"},
			ReadOnly: &libvirtxml.DomainDiskReadOnly{},
			Boot:     &libvirtxml.DomainDeviceBoot{Order: 1},
		})
	}
	for _, nic := range spec.NICs {
		d.Devices.Interfaces = append(d.Devices.Interfaces, nicXML(nic))
	}
	out, err := d.Marshal()
	if err != nil {
		return "", fmt.Errorf("domain spec %s: marshal: %w", spec.Name, err)
	}
	return out, nil
}

// diskXML is disk i of a domain; the first disk boots (after an ISO).
func diskXML(disk DiskSpec, i int) (libvirtxml.DomainDisk, error) {
	format := disk.Format
	if format == "" {
		format = "qcow2"
	}
	if format != "qcow2" && format != "raw" {
		return libvirtxml.DomainDisk{}, fmt.Errorf("disk %s: format %q is neither qcow2 nor raw", disk.Device, format)
	}
	if disk.Path == "" || disk.Device == "" {
		return libvirtxml.DomainDisk{}, fmt.Errorf("disk %d: path and device are required", i)
	}
	dd := libvirtxml.DomainDisk{
		Device: "disk",
		Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: format, Cache: "none"},
		Source: &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: disk.Path}},
		Target: &libvirtxml.DomainDiskTarget{Dev: disk.Device, Bus: "virtio"},
		Serial: disk.Serial,
	}
	if i == 0 {
		dd.Boot = &libvirtxml.DomainDeviceBoot{Order: 2}
	}
	return dd, nil
}

// nicXML is a virtio NIC on a host bridge, or on libvirt's "default"
// network when no bridge is given (WriteTestHost defines one on test
// hosts).
func nicXML(nic NICSpec) libvirtxml.DomainInterface {
	ifc := libvirtxml.DomainInterface{
		Model: &libvirtxml.DomainInterfaceModel{Type: "virtio"},
	}
	if nic.MAC != "" {
		ifc.MAC = &libvirtxml.DomainInterfaceMAC{Address: nic.MAC}
	}
	if nic.Bridge != "" {
		ifc.Source = &libvirtxml.DomainInterfaceSource{Bridge: &libvirtxml.DomainInterfaceSourceBridge{Bridge: nic.Bridge}}
	} else {
		ifc.Source = &libvirtxml.DomainInterfaceSource{Network: &libvirtxml.DomainInterfaceSourceNetwork{Network: "default"}}
	}
	return ifc
}

// Domains implements Driver.
func (l *Libvirt) Domains(ctx context.Context) ([]DomainStatus, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	lc, err := l.connect()
	if err != nil {
		return nil, err
	}
	doms, err := lc.c.ListAllDomains(0)
	if err != nil {
		return nil, l.fail(lc, "list domains", err)
	}
	out := make([]DomainStatus, 0, len(doms))
	var firstErr error
	for i := range doms {
		st, err := l.status(lc, &doms[i])
		_ = doms[i].Free()
		switch {
		case err == nil:
			out = append(out, st)
		case hasCode(err, libvirt.ERR_NO_DOMAIN), st.Name != "" && !strings.HasPrefix(st.Name, DomainPrefix):
			// Removed while listing, or not ours.
		case firstErr == nil:
			firstErr = err
		}
	}
	if firstErr != nil {
		return nil, firstErr
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// errUnmanaged marks a domain without DomainPrefix; callers see it as
// ErrNotFound.
var errUnmanaged = fmt.Errorf("domain not managed by stratus: %w", ErrNotFound)

// status reads a domain's status; a domain without DomainPrefix gives
// errUnmanaged (with its name set in the result).
func (l *Libvirt) status(lc *lvConn, d *libvirt.Domain) (DomainStatus, error) {
	name, err := d.GetName()
	if err != nil {
		return DomainStatus{}, l.fail(lc, "domain name", err)
	}
	if !strings.HasPrefix(name, DomainPrefix) {
		return DomainStatus{Name: name}, fmt.Errorf("domain %s: %w", name, errUnmanaged)
	}
	uuid, err := d.GetUUIDString()
	if err != nil {
		return DomainStatus{}, l.fail(lc, "domain uuid", err)
	}
	state, reason, err := d.GetState()
	if err != nil {
		return DomainStatus{}, l.fail(lc, "domain "+name+" state", err)
	}
	return DomainStatus{UUID: uuid, Name: name, Power: powerOf(state), StopReason: stopReasonOf(state, reason)}, nil
}

// lookup finds a managed domain by UUID; callers Free it. Missing and
// unmanaged domains give ErrNotFound.
func (l *Libvirt) lookup(ctx context.Context, uuid string) (*lvConn, *libvirt.Domain, DomainStatus, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, DomainStatus{}, err
	}
	lc, err := l.connect()
	if err != nil {
		return nil, nil, DomainStatus{}, err
	}
	d, err := lc.c.LookupDomainByUUIDString(uuid)
	if err != nil {
		return lc, nil, DomainStatus{}, l.fail(lc, "domain "+uuid, err)
	}
	st, err := l.status(lc, d)
	if err != nil {
		_ = d.Free()
		return lc, nil, DomainStatus{}, fmt.Errorf("domain %s: %w", uuid, err)
	}
	return lc, d, st, nil
}

// Domain implements Driver.
func (l *Libvirt) Domain(ctx context.Context, uuid string) (DomainStatus, error) {
	_, d, st, err := l.lookup(ctx, uuid)
	if err != nil {
		return DomainStatus{}, err
	}
	_ = d.Free()
	return st, nil
}

// Start implements Driver. A paused domain is resumed.
func (l *Libvirt) Start(ctx context.Context, spec DomainSpec) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	lc, err := l.connect()
	if err != nil {
		return err
	}
	if old, err := lc.c.LookupDomainByUUIDString(spec.UUID); err == nil {
		name, nerr := old.GetName()
		_ = old.Free()
		if nerr == nil && !strings.HasPrefix(name, DomainPrefix) {
			return fmt.Errorf("start %s: uuid %s belongs to unmanaged domain %s", spec.Name, spec.UUID, name)
		}
	}
	x, err := domainXML(spec, l.domainType())
	if err != nil {
		return fmt.Errorf("start %s: %w", spec.Name, err)
	}
	d, err := lc.c.DomainDefineXML(x)
	if err != nil {
		return l.fail(lc, "define "+spec.Name, err)
	}
	defer func() { _ = d.Free() }()
	state, _, err := d.GetState()
	if err != nil {
		return l.fail(lc, "start "+spec.Name+": state", err)
	}
	switch state {
	case libvirt.DOMAIN_RUNNING, libvirt.DOMAIN_BLOCKED, libvirt.DOMAIN_SHUTDOWN:
		return nil
	case libvirt.DOMAIN_PAUSED:
		if err := d.Resume(); err != nil {
			return l.fail(lc, "resume "+spec.Name, err)
		}
		return nil
	}
	if err := d.Create(); err != nil {
		if hasCode(err, libvirt.ERR_OPERATION_INVALID) && isActive(d) {
			return nil // started by someone else meanwhile
		}
		return l.fail(lc, "start "+spec.Name, err)
	}
	l.logger.Debug("domain started", "domain", spec.Name, "uuid", spec.UUID)
	return nil
}

func isActive(d *libvirt.Domain) bool {
	ok, err := d.IsActive()
	return err == nil && ok
}

// Shutdown implements Driver. Shutting down a stopped domain is a no-op.
func (l *Libvirt) Shutdown(ctx context.Context, uuid string) error {
	lc, d, st, err := l.lookup(ctx, uuid)
	if err != nil {
		return err
	}
	defer func() { _ = d.Free() }()
	if st.Power == PowerStopped {
		return nil
	}
	if err := d.Shutdown(); err != nil {
		if hasCode(err, libvirt.ERR_OPERATION_INVALID) && !isActive(d) {
			return nil
		}
		return l.fail(lc, "shutdown "+st.Name, err)
	}
	return nil
}

// Stop implements Driver.
func (l *Libvirt) Stop(ctx context.Context, uuid string) error {
	lc, d, st, err := l.lookup(ctx, uuid)
	if err != nil {
		return err
	}
	defer func() { _ = d.Free() }()
	if st.Power == PowerStopped {
		return nil
	}
	if err := d.Destroy(); err != nil {
		if hasCode(err, libvirt.ERR_OPERATION_INVALID) && !isActive(d) {
			return nil
		}
		return l.fail(lc, "stop "+st.Name, err)
	}
	return nil
}

// Reboot implements Driver.
func (l *Libvirt) Reboot(ctx context.Context, uuid string) error {
	lc, d, st, err := l.lookup(ctx, uuid)
	if err != nil {
		return err
	}
	defer func() { _ = d.Free() }()
	if err := d.Reboot(0); err != nil {
		return l.fail(lc, "reboot "+st.Name, err)
	}
	return nil
}

// Destroy implements Driver.
func (l *Libvirt) Destroy(ctx context.Context, uuid string) error {
	lc, d, st, err := l.lookup(ctx, uuid)
	if err != nil {
		if isNotFoundErr(err) {
			return nil
		}
		return err
	}
	defer func() { _ = d.Free() }()
	if isActive(d) {
		if err := d.Destroy(); err != nil && !hasCode(err, libvirt.ERR_OPERATION_INVALID, libvirt.ERR_NO_DOMAIN) {
			return l.fail(lc, "destroy "+st.Name, err)
		}
	}
	flags := libvirt.DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
	if err := d.UndefineFlags(flags); err != nil && !hasCode(err, libvirt.ERR_NO_DOMAIN) {
		return l.fail(lc, "undefine "+st.Name, err)
	}
	l.logger.Debug("domain destroyed", "domain", st.Name, "uuid", uuid)
	return nil
}

// Migrate implements Driver. On qemu it is a peer-to-peer live migration
// that persists the domain on the target and undefines it here; ctx
// ending aborts it. libvirt's test driver cannot migrate
// (virDomainMigrate* is "not supported by the connection driver"), so
// there Migrate returns ErrMigrationUnsupported and the agent hands the
// VM over cold: it stops the domain here and the target starts it from
// the same shared volumes.
func (l *Libvirt) Migrate(ctx context.Context, uuid, destURI string) error {
	lc, d, st, err := l.lookup(ctx, uuid)
	if err != nil {
		return err
	}
	defer func() { _ = d.Free() }()
	if l.isTest() {
		return fmt.Errorf("migrate %s: test driver: %w", st.Name, ErrMigrationUnsupported)
	}
	flags := libvirt.MIGRATE_LIVE | libvirt.MIGRATE_PEER2PEER | libvirt.MIGRATE_PERSIST_DEST | libvirt.MIGRATE_UNDEFINE_SOURCE
	done := make(chan error, 1)
	go func() { done <- d.MigrateToURI3(destURI, &libvirt.DomainMigrateParameters{}, flags) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		if aerr := d.AbortJob(); aerr != nil {
			l.logger.Warn("abort migration failed", "domain", st.Name, "error", aerr)
		}
		err = <-done
		if err == nil {
			return nil // finished before the abort landed
		}
		return fmt.Errorf("migrate %s to %s: %w: %w", st.Name, destURI, ctx.Err(), err)
	}
	if err != nil {
		if hasCode(err, libvirt.ERR_NO_SUPPORT) {
			return fmt.Errorf("migrate %s: %w: %w", st.Name, ErrMigrationUnsupported, err)
		}
		return l.fail(lc, "migrate "+st.Name+" to "+destURI, err)
	}
	l.logger.Info("domain migrated", "domain", st.Name, "uuid", uuid, "dest", destURI)
	return nil
}
