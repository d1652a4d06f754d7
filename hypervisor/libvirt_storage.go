package hypervisor

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"
)

// errTestResize is why ResizeVolume fails on libvirt's test driver.
var errTestResize = errors.New("libvirt's test driver cannot resize volumes")

func isNotFoundErr(err error) bool { return errors.Is(err, ErrNotFound) }

// pool looks a storage pool up by name; callers Free it.
func (l *Libvirt) pool(ctx context.Context, name string) (*lvConn, *libvirt.StoragePool, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	lc, err := l.connect()
	if err != nil {
		return nil, nil, err
	}
	p, err := lc.c.LookupStoragePoolByName(name)
	if err != nil {
		return lc, nil, l.fail(lc, "pool "+name, err)
	}
	return lc, p, nil
}

// EnsurePool implements Driver. A pool of that name at another path is
// an error: volumes would land where peers sharing the storage do not
// look. On the test driver the pool lives in memory only.
func (l *Libvirt) EnsurePool(ctx context.Context, name, path string) error {
	lc, p, err := l.pool(ctx, name)
	switch {
	case err == nil:
	case isNotFoundErr(err):
		if p, err = l.definePool(lc, name, path); err != nil {
			return err
		}
	default:
		return err
	}
	defer func() { _ = p.Free() }()
	raw, err := p.GetXMLDesc(0)
	if err != nil {
		return l.fail(lc, "pool "+name+" xml", err)
	}
	var def libvirtxml.StoragePool
	if err := def.Unmarshal(raw); err != nil {
		return fmt.Errorf("pool %s: parse xml: %w", name, err)
	}
	if def.Target != nil && def.Target.Path != path {
		return fmt.Errorf("pool %s: defined at %s, not %s", name, def.Target.Path, path)
	}
	active, err := p.IsActive()
	if err != nil {
		return l.fail(lc, "pool "+name+" state", err)
	}
	if !active {
		if err := p.Create(0); err != nil {
			return l.fail(lc, "start pool "+name, err)
		}
		l.logger.Info("storage pool started", "pool", name, "path", path)
	}
	return nil
}

// definePool defines a persistent, autostarted dir pool and builds it
// (creates the directory).
func (l *Libvirt) definePool(lc *lvConn, name, path string) (*libvirt.StoragePool, error) {
	def := libvirtxml.StoragePool{
		Type:   "dir",
		Name:   name,
		Target: &libvirtxml.StoragePoolTarget{Path: path},
	}
	raw, err := def.Marshal()
	if err != nil {
		return nil, fmt.Errorf("pool %s: marshal: %w", name, err)
	}
	p, err := lc.c.StoragePoolDefineXML(raw, 0)
	if err != nil {
		return nil, l.fail(lc, "define pool "+name, err)
	}
	if err := p.Build(0); err != nil && !hasCode(err, libvirt.ERR_NO_SUPPORT) {
		_ = p.Undefine()
		_ = p.Free()
		return nil, l.fail(lc, "build pool "+name, err)
	}
	if err := p.SetAutostart(true); err != nil {
		l.logger.Warn("pool autostart not set", "pool", name, "error", err)
	}
	l.logger.Info("storage pool defined", "pool", name, "path", path)
	return p, nil
}

// volumeInfo reads a volume's path and capacity.
func (l *Libvirt) volumeInfo(lc *lvConn, pool string, v *libvirt.StorageVol) (VolumeInfo, error) {
	name, err := v.GetName()
	if err != nil {
		return VolumeInfo{}, l.fail(lc, "volume name", err)
	}
	path, err := v.GetPath()
	if err != nil {
		return VolumeInfo{}, l.fail(lc, "volume "+name+" path", err)
	}
	info, err := v.GetInfo()
	if err != nil {
		return VolumeInfo{}, l.fail(lc, "volume "+name+" info", err)
	}
	return VolumeInfo{Pool: pool, Name: name, Path: path, SizeBytes: int64(info.Capacity)}, nil
}

// CreateVolume implements Driver. With BackingPath on qemu, a qcow2
// volume is a thin overlay on the template image (a qcow2 backing store)
// and a raw volume is a full copy of it (the template must then be a
// volume of some pool). The test driver has no images: it only creates a
// volume of the size asked (or of the template's size when it can read
// the template file).
func (l *Libvirt) CreateVolume(ctx context.Context, spec VolumeSpec) (VolumeInfo, error) {
	lc, p, err := l.pool(ctx, spec.Pool)
	if err != nil {
		return VolumeInfo{}, err
	}
	defer func() { _ = p.Free() }()
	if v, err := p.LookupStorageVolByName(spec.Name); err == nil {
		defer func() { _ = v.Free() }()
		return l.volumeInfo(lc, spec.Pool, v)
	}
	format := spec.Format
	if format == "" {
		format = "qcow2"
	}
	if format != "qcow2" && format != "raw" {
		return VolumeInfo{}, fmt.Errorf("create volume %s/%s: format %q is neither qcow2 nor raw", spec.Pool, spec.Name, format)
	}
	size := spec.SizeBytes
	var backing imageInfo
	if spec.BackingPath != "" {
		backing, err = readImageInfo(spec.BackingPath)
		if err != nil && !l.isTest() {
			return VolumeInfo{}, fmt.Errorf("create volume %s/%s: %w", spec.Pool, spec.Name, err)
		}
		if size < backing.size {
			size = backing.size
		}
	}
	if size <= 0 {
		return VolumeInfo{}, fmt.Errorf("create volume %s/%s: size is required", spec.Pool, spec.Name)
	}
	def := libvirtxml.StorageVolume{
		Name:       spec.Name,
		Capacity:   &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: uint64(size)},
		Allocation: &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: 0},
		Target:     &libvirtxml.StorageVolumeTarget{Format: &libvirtxml.StorageVolumeTargetFormat{Type: format}},
	}
	v, err := l.createVolume(lc, p, spec, format, backing, &def)
	if err != nil {
		return VolumeInfo{}, err
	}
	defer func() { _ = v.Free() }()
	l.logger.Debug("volume created", "pool", spec.Pool, "volume", spec.Name, "size_bytes", size, "backing", spec.BackingPath)
	return l.volumeInfo(lc, spec.Pool, v)
}

// createVolume creates def in p: plain, as a qcow2 overlay on the
// backing image, or (raw) as a copy of the backing volume.
func (l *Libvirt) createVolume(lc *lvConn, p *libvirt.StoragePool, spec VolumeSpec, format string, backing imageInfo, def *libvirtxml.StorageVolume) (*libvirt.StorageVol, error) {
	op := "create volume " + spec.Pool + "/" + spec.Name
	var src *libvirt.StorageVol
	if spec.BackingPath != "" && !l.isTest() {
		if format == "qcow2" {
			def.BackingStore = &libvirtxml.StorageVolumeBackingStore{
				Path:   spec.BackingPath,
				Format: &libvirtxml.StorageVolumeTargetFormat{Type: backing.format},
			}
		} else {
			var err error
			if src, err = lc.c.LookupStorageVolByPath(spec.BackingPath); err != nil {
				return nil, l.fail(lc, op+": template "+spec.BackingPath+" is not a libvirt volume", err)
			}
			defer func() { _ = src.Free() }()
		}
	}
	raw, err := def.Marshal()
	if err != nil {
		return nil, fmt.Errorf("%s: marshal: %w", op, err)
	}
	var v *libvirt.StorageVol
	if src != nil {
		v, err = p.StorageVolCreateXMLFrom(raw, src, 0)
	} else {
		v, err = p.StorageVolCreateXML(raw, 0)
	}
	if err != nil {
		if hasCode(err, libvirt.ERR_STORAGE_VOL_EXIST) {
			if v, lerr := p.LookupStorageVolByName(spec.Name); lerr == nil {
				return v, nil // created meanwhile
			}
		}
		return nil, l.fail(lc, op, err)
	}
	return v, nil
}

// ResizeVolume implements Driver. It grows the image file only; a
// running domain using it sees the new size after a restart. libvirt's
// test driver cannot resize volumes: there it fails with a wrapped
// errTestResize.
func (l *Libvirt) ResizeVolume(ctx context.Context, pool, name string, sizeBytes int64) error {
	lc, p, err := l.pool(ctx, pool)
	if err != nil {
		return err
	}
	defer func() { _ = p.Free() }()
	v, err := p.LookupStorageVolByName(name)
	if err != nil {
		return l.fail(lc, "volume "+pool+"/"+name, err)
	}
	defer func() { _ = v.Free() }()
	if l.isTest() {
		return fmt.Errorf("resize volume %s/%s: %w", pool, name, errTestResize)
	}
	if err := v.Resize(uint64(sizeBytes), 0); err != nil {
		return l.fail(lc, "resize volume "+pool+"/"+name, err)
	}
	return nil
}

// DeleteVolume implements Driver.
func (l *Libvirt) DeleteVolume(ctx context.Context, pool, name string) error {
	lc, p, err := l.pool(ctx, pool)
	if err != nil {
		return err
	}
	defer func() { _ = p.Free() }()
	v, err := p.LookupStorageVolByName(name)
	if err != nil {
		if hasCode(err, libvirt.ERR_NO_STORAGE_VOL) {
			return nil
		}
		return l.fail(lc, "volume "+pool+"/"+name, err)
	}
	defer func() { _ = v.Free() }()
	if err := v.Delete(0); err != nil && !hasCode(err, libvirt.ERR_NO_STORAGE_VOL) {
		return l.fail(lc, "delete volume "+pool+"/"+name, err)
	}
	return nil
}

// Volumes implements Driver. The pool is refreshed first so files that
// other hosts created on shared storage show up.
func (l *Libvirt) Volumes(ctx context.Context, pool string) ([]VolumeInfo, error) {
	lc, p, err := l.pool(ctx, pool)
	if err != nil {
		return nil, err
	}
	defer func() { _ = p.Free() }()
	if err := p.Refresh(0); err != nil {
		l.logger.Debug("pool refresh failed", "pool", pool, "error", err)
	}
	vols, err := p.ListAllStorageVolumes(0)
	if err != nil {
		return nil, l.fail(lc, "list volumes of "+pool, err)
	}
	out := make([]VolumeInfo, 0, len(vols))
	var firstErr error
	for i := range vols {
		vi, err := l.volumeInfo(lc, pool, &vols[i])
		_ = vols[i].Free()
		if err != nil {
			if firstErr == nil && !isNotFoundErr(err) {
				firstErr = err
			}
			continue
		}
		out = append(out, vi)
	}
	if firstErr != nil {
		return nil, firstErr
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// imageInfo is what a template image's header says.
type imageInfo struct {
	format string // qcow2 or raw
	size   int64  // virtual size in bytes
}

// readImageInfo reads a disk image's format and virtual size: a qcow2
// header (magic "QFI\xfb", size at byte 24), else raw of the file's size.
func readImageInfo(path string) (imageInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return imageInfo{}, fmt.Errorf("template image: %w", err)
	}
	defer f.Close()
	var hdr [32]byte
	_, err = io.ReadFull(f, hdr[:])
	if err == nil && string(hdr[:4]) == "QFI\xfb" {
		return imageInfo{format: "qcow2", size: int64(binary.BigEndian.Uint64(hdr[24:32]))}, nil
	}
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return imageInfo{}, fmt.Errorf("template image %s: read header: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		return imageInfo{}, fmt.Errorf("template image %s: %w", path, err)
	}
	return imageInfo{format: "raw", size: st.Size()}, nil
}
